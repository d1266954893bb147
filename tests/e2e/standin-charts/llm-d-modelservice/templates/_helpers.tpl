{{/* llmdctl e2e stand-in helpers; names, labels and computations follow upstream
     llm-d-modelservice v0.4.9 (templates/_helpers.tpl, _helpers-dra.tpl). Helpers that take a
     role get a dict: root (the chart context), role ("prefill" | "decode"), and where needed
     container. */}}

{{/* <release>-llm-d-modelservice cut to 55 characters (room for "-prefill"); the release name
     alone if it already contains the chart name; or fullnameOverride. */}}
{{- define "standin.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- $chart := .Values.nameOverride | default .Chart.Name -}}
{{- if contains $chart .Release.Name -}}
{{- .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $chart | trunc 55 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "standin.serviceAccount" -}}
{{- .Values.serviceAccountOverride | default (include "standin.fullname" .) -}}
{{- end -}}

{{/* Labels on the chart's own objects (not on pods). */}}
{{- define "standin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Pod labels and Deployment selector: modelArtifacts.labels + llm-d.ai/role. */}}
{{- define "standin.roleLabels" -}}
{{ toYaml .root.Values.modelArtifacts.labels }}
llm-d.ai/role: {{ .role }}
{{- end -}}

{{/* Parallelism; the argument is <role>.parallelism. */}}
{{- define "standin.tp" -}}
{{- if and . .tensor -}}{{ .tensor }}{{- else -}}1{{- end -}}
{{- end -}}

{{- define "standin.dp" -}}
{{- if and . .data -}}{{ .data }}
{{- else if and . .dataLocal .workers -}}{{ mul .dataLocal .workers }}
{{- else if and . .dataLocal -}}{{ .dataLocal }}
{{- else -}}1{{- end -}}
{{- end -}}

{{- define "standin.dpLocal" -}}
{{- if and . .dataLocal -}}{{ .dataLocal }}
{{- else if and . .data .workers -}}
  {{- if ne (int .data) (mul (div (int .data) (int .workers)) .workers) -}}
    {{- fail "parallelism.data must be a multiple of parallelism.workers" -}}
  {{- end -}}
  {{- div (int .data) (int .workers) -}}
{{- else if and . .data -}}{{ .data }}
{{- else -}}1{{- end -}}
{{- end -}}

{{/* Accelerators per pod: dataLocal x tensor. */}}
{{- define "standin.gpus" -}}
{{- mul (include "standin.dpLocal" .) (include "standin.tp" .) -}}
{{- end -}}

{{/* Accelerator type: <role>.accelerator.type, else accelerator.type, else nvidia
     (without a role: accelerator.type). */}}
{{- define "standin.accelType" -}}
{{- $V := .root.Values -}}
{{- $own := dict -}}
{{- if .role -}}{{- $own = (index $V .role).accelerator | default dict -}}{{- end -}}
{{- if hasKey $own "type" -}}{{- $own.type -}}{{- else -}}{{- $V.accelerator.type | default "nvidia" -}}{{- end -}}
{{- end -}}

{{- define "standin.draEnabled" -}}
{{- $V := .root.Values -}}
{{- $own := dict -}}
{{- if .role -}}{{- $own = (index $V .role).accelerator | default dict -}}{{- end -}}
{{- if hasKey $own "dra" -}}{{- ternary "true" "false" (not (not $own.dra)) -}}
{{- else -}}{{- ternary "true" "false" (not (not $V.accelerator.dra)) -}}{{- end -}}
{{- end -}}

{{/* Device-plugin resource of the accelerator: none for the inference simulator image or cpu;
     accelerator.resources[type]; nvidia.com/gpu for unknown types. */}}
{{- define "standin.accelResource" -}}
{{- $type := include "standin.accelType" . -}}
{{- $image := (.container | default dict).image | default "" | toString -}}
{{- if contains "llm-d-inference-sim" $image -}}
{{- else if eq $type "cpu" -}}
{{- else if hasKey .root.Values.accelerator.resources $type -}}
{{- index .root.Values.accelerator.resources $type -}}
{{- else -}}
nvidia.com/gpu
{{- end -}}
{{- end -}}

{{/* vLLM port: routing.servicePort for prefill or without the proxy, else routing.proxy.targetPort. */}}
{{- define "standin.vllmPort" -}}
{{- $r := .root.Values.routing -}}
{{- if or (eq .role "prefill") (eq $r.proxy.enabled false) -}}{{ $r.servicePort }}{{- else -}}{{ $r.proxy.targetPort }}{{- end -}}
{{- end -}}

{{/* modelArtifacts.uri split into protocol and the rest. */}}
{{- define "standin.uri" -}}
{{- $parts := regexSplit "://" .Values.modelArtifacts.uri -1 -}}
{{- dict "protocol" (first $parts) "rest" (last $parts) | toJson -}}
{{- end -}}

{{/* DRA claims of a role (the accelerator claim when DRA is on, then <role>.resourceClaims), as JSON list. */}}
{{- define "standin.claims" -}}
{{- $V := .root.Values -}}
{{- $claims := list -}}
{{- if eq (include "standin.draEnabled" .) "true" -}}
  {{- $type := include "standin.accelType" . -}}
  {{- $tmpl := index $V.accelerator.resourceClaimTemplates $type | default dict -}}
  {{- $claimName := printf "%s-%s-claim" $type .role -}}
  {{- $templateName := printf "%s-%s-claim-template" $type .role -}}
  {{- if $tmpl.name -}}
    {{- $claimName = printf "%s-%s-claim" (trimSuffix "-claim-template" $tmpl.name) .role -}}
    {{- $templateName = printf "%s-%s" $tmpl.name .role -}}
  {{- end -}}
  {{- $claims = append $claims (dict "name" $claimName "resourceClaimTemplateName" $templateName) -}}
{{- end -}}
{{- with (index $V .role).resourceClaims -}}{{- $claims = concat $claims . -}}{{- end -}}
{{- toJson $claims -}}
{{- end -}}

{{/* Annotation text when the first container's accelerator limit differs from parallelism
     (uses the global accelerator type, as upstream does here). */}}
{{- define "standin.accelWarning" -}}
{{- $pd := index .root.Values .role -}}
{{- with $pd.containers -}}
{{- $c := first . -}}
{{- $gpus := int (include "standin.gpus" $pd.parallelism) -}}
{{- $res := include "standin.accelResource" (dict "root" $.root "container" $c) -}}
{{- $limits := ($c.resources | default dict).limits | default dict -}}
{{- if and (ge $gpus 1) $res (hasKey $limits $res) -}}
{{- $user := int (index $limits $res) -}}
{{- if ne $user $gpus -}}
{{- printf "Accelerator mismatch: %s is set to %d but parallelism calculates %d. Using %d." $res $user $gpus $user -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Render a value that may hold templates (bitnami common.tplvalues.render). */}}
{{- define "standin.render" -}}
{{- if kindIs "string" .value -}}{{- tpl .value .context -}}{{- else -}}{{- tpl (toYaml .value) .context -}}{{- end -}}
{{- end -}}
