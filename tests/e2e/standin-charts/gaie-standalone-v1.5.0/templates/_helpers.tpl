{{/* llmdctl e2e stand-in helpers; names follow GAIE v1.5.0 epplib templates/_helpers.tpl. */}}
{{- define "standin.pool" -}}
{{- .Release.Name | default "default-pool" | lower | trim | trunc 40 -}}
{{- end -}}

{{- define "standin.epp" -}}
{{- printf "%s-epp" (include "standin.pool" .) -}}
{{- end -}}

{{- define "standin.standalone" -}}
{{- if eq .Chart.Name "standalone" }}true{{ end -}}
{{- end -}}

{{- define "standin.labels" -}}
app.kubernetes.io/name: {{ include "standin.epp" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "standin.selectorLabels" -}}
inferencepool: {{ include "standin.epp" . }}
{{- end -}}
