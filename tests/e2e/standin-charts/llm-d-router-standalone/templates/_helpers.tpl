{{/* llmdctl e2e stand-in helpers; names follow llm-d-router v0.10.0 routerlib templates/_helpers.tpl. */}}

{{/* The router name: the release name, lower-cased, trimmed and cut to 40 characters. */}}
{{- define "standin.router" -}}
{{- .Release.Name | default "default-pool" | lower | trim | trunc 40 -}}
{{- end -}}

{{- define "standin.epp" -}}
{{- printf "%s-epp" (include "standin.router" .) -}}
{{- end -}}

{{- define "standin.standalone" -}}
{{- if hasPrefix "llm-d-router-standalone" .Chart.Name }}true{{ end -}}
{{- end -}}

{{- define "standin.labels" -}}
app.kubernetes.io/name: {{ include "standin.epp" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* The EPP pod's selector label, as routerlib's llm-d-router.selectorLabels (v0.9.0, v0.10.0): the
     gateway key whenever the chart creates the InferencePool (the standalone chart too), the
     standalone key when router.inferencePool.create is false. */}}
{{- define "standin.selectorLabels" -}}
{{- if eq .Values.router.inferencePool.create false -}}
llm-d-router-standalone: {{ include "standin.epp" . }}
{{- else -}}
llm-d-router-gateway: {{ include "standin.epp" . }}
{{- end -}}
{{- end -}}
