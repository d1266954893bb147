{{/* llmdctl e2e stand-in helpers; names and decisions follow upstream llm-d-infra v1.4.0
     (templates/gateway-infrastructure/_helpers.tpl and the bitnami common labels). */}}

{{/* Gateway name: <release>-inference-gateway unless overridden, at most 63 characters. */}}
{{- define "standin.gatewayName" -}}
{{- $g := .Values.gateway -}}
{{- if $g.fullnameOverride -}}
{{- $g.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name ($g.nameOverride | default "inference-gateway") | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Provider: the explicit gateway.provider, else inferred from gateway.gatewayClassName. */}}
{{- define "standin.provider" -}}
{{- $provider := .Values.gateway.provider | default "" -}}
{{- $class := .Values.gateway.gatewayClassName | default "" -}}
{{- if $provider -}}
  {{- if not (has $provider (list "istio" "kgateway" "agentgateway" "gke-l7-regional-external-managed")) -}}
    {{- fail (printf "unsupported gateway.provider %q" $provider) -}}
  {{- end -}}
  {{- $provider -}}
{{- else if has $class (list "" "istio" "data-science-gateway-class") -}}
istio
{{- else if has $class (list "kgateway" "agentgateway" "agentgateway-v2") -}}
agentgateway
{{- else if eq $class "gke-l7-regional-external-managed" -}}
gke-l7-regional-external-managed
{{- else -}}
  {{- fail (printf "gateway.provider must be set when using custom gateway.gatewayClassName %q" $class) -}}
{{- end -}}
{{- end -}}

{{/* GatewayClass written on the Gateway: kgateway and agentgateway-v2 become agentgateway;
     empty means the provider's default class. */}}
{{- define "standin.className" -}}
{{- $class := .Values.gateway.gatewayClassName | default "" -}}
{{- if has $class (list "kgateway" "agentgateway-v2") -}}
agentgateway
{{- else if $class -}}
{{- $class -}}
{{- else -}}
  {{- $provider := include "standin.provider" . -}}
  {{- if has $provider (list "kgateway" "agentgateway") -}}agentgateway{{- else -}}{{- $provider -}}{{- end -}}
{{- end -}}
{{- end -}}

{{- define "standin.agentgatewayParams" -}}
{{- if has (include "standin.provider" .) (list "kgateway" "agentgateway") -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* Effective Service type: gateway.service.type, else from gateway.exposure.type, else from the
     provider (istio internal -> ClusterIP; agentgateway/kgateway/gke external -> LoadBalancer). */}}
{{- define "standin.serviceType" -}}
{{- $type := .Values.gateway.service.type | default "" -}}
{{- if not (has $type (list "" "ClusterIP" "LoadBalancer" "NodePort")) -}}
  {{- fail (printf "unsupported gateway.service.type %q" $type) -}}
{{- end -}}
{{- if $type -}}
{{- $type -}}
{{- else -}}
  {{- $exposure := .Values.gateway.exposure.type | default "" -}}
  {{- if not (has $exposure (list "" "internal" "external")) -}}
    {{- fail (printf "unsupported gateway.exposure.type %q" $exposure) -}}
  {{- end -}}
  {{- if not $exposure -}}
    {{- $exposure = ternary "external" "internal" (has (include "standin.provider" .) (list "kgateway" "agentgateway" "gke-l7-regional-external-managed")) -}}
  {{- end -}}
  {{- ternary "LoadBalancer" "ClusterIP" (eq $exposure "external") -}}
{{- end -}}
{{- end -}}

{{/* Render a value that may hold templates (bitnami common.tplvalues.render). */}}
{{- define "standin.render" -}}
{{- if kindIs "string" .value -}}{{- tpl .value .context -}}{{- else -}}{{- tpl (toYaml .value) .context -}}{{- end -}}
{{- end -}}

{{/* Labels of every gateway object: bitnami standard labels + gateway name/component + commonLabels. */}}
{{- define "standin.labels" -}}
app.kubernetes.io/name: {{ .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/gateway: {{ include "standin.gatewayName" . }}
app.kubernetes.io/component: inference-gateway
{{- with .Values.commonLabels }}
{{ include "standin.render" (dict "value" . "context" $) }}
{{- end }}
{{- end -}}

{{/* commonAnnotations (+ gateway.annotations when .withGateway), as a YAML map or nothing. */}}
{{- define "standin.annotations" -}}
{{- with .root.Values.commonAnnotations }}
{{ include "standin.render" (dict "value" . "context" $.root) }}
{{- end }}
{{- if .withGateway }}
{{- with .root.Values.gateway.annotations }}
{{ include "standin.render" (dict "value" . "context" $.root) }}
{{- end }}
{{- end }}
{{- end -}}
