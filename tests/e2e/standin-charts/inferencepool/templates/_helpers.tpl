{{/* llmdctl e2e stand-in helpers; names and labels follow upstream inferencepool v1.4.0 and its
     epplib library chart (templates/_helpers.tpl there). */}}

{{/* EPP name: the release name (lower-cased, trimmed, cut to 40) + "-epp". */}}
{{- define "standin.epp" -}}
{{- printf "%s-epp" (.Release.Name | default "default-pool" | lower | trim | trunc 40) -}}
{{- end -}}

{{/* Name of the cluster-wide metrics RBAC objects: <release>-<namespace>-epp (quoted, like upstream). */}}
{{- define "standin.clusterRbacName" -}}
{{- $base := .Release.Name | default "default-pool" | lower | trim | trunc 40 -}}
{{- $ns := .Release.Namespace | default "default" | lower | trim | trunc 40 -}}
{{- printf "%s-%s-epp" $base $ns | quote | trunc 84 -}}
{{- end -}}

{{- define "standin.labels" -}}
app.kubernetes.io/name: {{ include "standin.epp" . }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* EPP pod selector (InferencePool mode). */}}
{{- define "standin.selectorLabels" -}}
inferencepool: {{ include "standin.epp" . }}
{{- end -}}

{{- define "standin.modeLabels" -}}
inference.networking.k8s.io/igw-mode: inferencepool
{{- end -}}

{{/* API group of inferencePool.apiVersion (inference.networking.k8s.io for v1). */}}
{{- define "standin.poolGroup" -}}
{{- (split "/" .Values.inferencePool.apiVersion)._0 -}}
{{- end -}}

{{- define "standin.provider" -}}
{{- .Values.provider.name | default "none" | lower -}}
{{- end -}}

{{/* Whether the EPP metrics token Secret and ServiceMonitor are rendered (not on GKE). */}}
{{- define "standin.prometheus" -}}
{{- $p := .Values.inferenceExtension.monitoring.prometheus -}}
{{- if and $p.enabled (ne (include "standin.provider" .) "gke") -}}true{{- end -}}
{{- end -}}
