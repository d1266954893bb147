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

{{/* Pod and container specs of a role, built as maps and written with toYaml. extraConfig
     (pod or container) is rendered first; the chart's own fields are set over it. */}}

{{/* Model argument(s) by URI protocol: hf://<model> (templates allowed), pvc://<claim>/<path>,
     pvc+hf://<claim>/<cache path>/<org>/<model>; oci:// fails as upstream. JSON list. */}}
{{- define "standin.modelArgs" -}}
{{- $V := .root.Values -}}
{{- $uri := include "standin.uri" .root | fromJson -}}
{{- $args := list -}}
{{- $model := "" -}}
{{- if eq $uri.protocol "hf" -}}
  {{- $model = include "standin.render" (dict "value" $uri.rest "context" .root) -}}
{{- else if eq $uri.protocol "pvc" -}}
  {{- $model = printf "%s/%s" $V.modelArtifacts.mountPath (last (regexSplit "/" $uri.rest 2)) -}}
{{- else if eq $uri.protocol "pvc+hf" -}}
  {{- $parts := regexSplit "/" $uri.rest -1 -}}
  {{- $model = printf "%s/%s" (index $parts (sub (len $parts) 2)) (last $parts) -}}
{{- else if eq $uri.protocol "oci" -}}
  {{- fail "arguments for oci:// not implemented" -}}
{{- end -}}
{{- if $model -}}
  {{- if .modelArg -}}{{- $args = append $args "--model" -}}{{- end -}}
  {{- $args = append $args $model -}}
{{- end -}}
{{- toJson $args -}}
{{- end -}}

{{/* command/args of a vLLM container by modelCommand (vllmServe | imageDefault | custom, default custom). */}}
{{- define "standin.command" -}}
{{- $V := .root.Values -}}
{{- $c := .container -}}
{{- $p := (index $V .role).parallelism -}}
{{- $mode := $c.modelCommand | default "custom" -}}
{{- $out := dict -}}
{{- if has $mode (list "vllmServe" "imageDefault") -}}
  {{- $args := include "standin.modelArgs" (dict "root" .root "modelArg" (eq $mode "imageDefault")) | fromJsonArray -}}
  {{- $args = concat $args (list "--port" (include "standin.vllmPort" .)) -}}
  {{- $tp := include "standin.tp" $p -}}
  {{- if gt (int $tp) 1 }}{{ $args = concat $args (list "--tensor-parallel-size" $tp) }}{{ end -}}
  {{- $dp := include "standin.dp" $p -}}
  {{- if gt (int $dp) 1 }}{{ $args = concat $args (list "--data-parallel-size" $dp) }}{{ end -}}
  {{- $dpl := include "standin.dpLocal" $p -}}
  {{- if gt (int $dpl) 1 }}{{ $args = concat $args (list "--data-parallel-size-local" $dpl) }}{{ end -}}
  {{- $args = concat $args (list "--served-model-name" (toString $V.modelArtifacts.name)) -}}
  {{- if and $V.tracing $V.tracing.enabled -}}
    {{- $args = concat $args (list "--otlp-traces-endpoint" (toString $V.tracing.otlpEndpoint) "--collect-detailed-traces" (toString $V.tracing.vllm.collectDetailedTraces)) -}}
  {{- end -}}
  {{- with $c.args }}{{ $args = concat $args . }}{{ end -}}
  {{- if eq $mode "vllmServe" }}{{ $_ := set $out "command" (list "vllm" "serve") }}{{ end -}}
  {{- $_ := set $out "args" $args -}}
{{- else if eq $mode "custom" -}}
  {{- if not $c.command -}}
    {{- fail "When .container.modelCommand not set or `custom`, a `command` is required." -}}
  {{- end -}}
  {{- $_ := set $out "command" $c.command -}}
  {{- with $c.args }}{{ $_ := set $out "args" . }}{{ end -}}
{{- else -}}
  {{- fail ".container.modelCommand is not as expected. Valid values are `vllmServe`, `imageDefault` and `custom`." -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* env of a vLLM container: the user's (templates allowed), parallelism sizes, HF_HOME /
     HF_HUB_CACHE, HF_TOKEN from modelArtifacts.authSecretName, accelerator env, tracing env. */}}
{{- define "standin.env" -}}
{{- $V := .root.Values -}}
{{- $c := .container -}}
{{- $p := (index $V .role).parallelism -}}
{{- $env := list -}}
{{- with $c.env }}{{ $env = include "standin.render" (dict "value" . "context" $.root) | fromYamlArray }}{{ end -}}
{{- $env = append $env (dict "name" "DP_SIZE" "value" (include "standin.dp" $p)) -}}
{{- $env = append $env (dict "name" "TP_SIZE" "value" (include "standin.tp" $p)) -}}
{{- $env = append $env (dict "name" "DP_SIZE_LOCAL" "value" (include "standin.dpLocal" $p)) -}}
{{- $uri := include "standin.uri" .root | fromJson -}}
{{- if and (eq $uri.protocol "hf") $c.mountModelVolume -}}
  {{- $env = append $env (dict "name" "HF_HOME" "value" (toString $V.modelArtifacts.mountPath)) -}}
{{- else if and (eq $uri.protocol "pvc+hf") $c.mountModelVolume -}}
  {{- $parts := regexSplit "/" $uri.rest -1 -}}
  {{- $cache := slice $parts 1 (sub (len $parts) 2) | join "/" -}}
  {{- $env = append $env (dict "name" "HF_HUB_CACHE" "value" (printf "/model-cache/%s" $cache)) -}}
{{- end -}}
{{- with $V.modelArtifacts.authSecretName -}}
  {{- $env = append $env (dict "name" "HF_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" "HF_TOKEN"))) -}}
{{- end -}}
{{- $type := include "standin.accelType" . -}}
{{- if and (ne $type "cpu") (hasKey $V.accelerator.env $type) -}}
  {{- range index $V.accelerator.env $type -}}
    {{- $env = append $env (dict "name" .name "value" (toString .value)) -}}
  {{- end -}}
{{- end -}}
{{- if and $V.tracing $V.tracing.enabled -}}
  {{- $t := $V.tracing -}}
  {{- $service := ternary $t.serviceNames.vllmDecode $t.serviceNames.vllmPrefill (eq .role "decode") -}}
  {{- range $pair := list (list "OTEL_SERVICE_NAME" $service) (list "OTEL_EXPORTER_OTLP_ENDPOINT" $t.otlpEndpoint) (list "OTEL_TRACES_EXPORTER" "otlp") (list "OTEL_TRACES_SAMPLER" $t.sampling.sampler) (list "OTEL_TRACES_SAMPLER_ARG" $t.sampling.samplerArg) -}}
    {{- $env = append $env (dict "name" (first $pair) "value" (toString (last $pair))) -}}
  {{- end -}}
{{- end -}}
{{- toJson $env -}}
{{- end -}}

{{/* resources of a container: the user's limits/requests, with <accelerator resource>:
     "<dataLocal x tensor>" added to each of them when absent (device-plugin mode); DRA claims. */}}
{{- define "standin.resources" -}}
{{- $V := .root.Values -}}
{{- $res := .container.resources | default dict -}}
{{- $limits := deepCopy ($res.limits | default dict) -}}
{{- $requests := deepCopy ($res.requests | default dict) -}}
{{- if ne (include "standin.draEnabled" .) "true" -}}
  {{- $gpus := int (include "standin.gpus" (index $V .role).parallelism) -}}
  {{- $name := include "standin.accelResource" . -}}
  {{- if and (ge $gpus 1) $name -}}
    {{- if not (hasKey $limits $name) }}{{ $_ := set $limits $name (toString $gpus) }}{{ end -}}
    {{- if not (hasKey $requests $name) }}{{ $_ := set $requests $name (toString $gpus) }}{{ end -}}
  {{- end -}}
{{- end -}}
{{- $out := dict "limits" $limits "requests" $requests -}}
{{- $claims := list -}}
{{- range include "standin.claims" . | fromJsonArray }}{{ $claims = append $claims (dict "name" .name) }}{{ end -}}
{{- with $claims }}{{ $_ := set $out "claims" . }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/* One container of <role>.containers, as a YAML list item. */}}
{{- define "standin.container" -}}
{{- $V := .root.Values -}}
{{- $c := .container -}}
{{- $out := dict -}}
{{- with $c.extraConfig }}{{ $out = include "standin.render" (dict "value" . "context" $.root) | fromYaml }}{{ end -}}
{{- $_ := set $out "name" ($c.name | default "vllm") -}}
{{- $_ := set $out "image" (required "image of container is required" $c.image) -}}
{{- range $key := list "securityContext" "imagePullPolicy" "livenessProbe" "readinessProbe" "startupProbe" "workingDir" "stdin" "tty" -}}
  {{- with index $c $key }}{{ $_ := set $out $key . }}{{ end -}}
{{- end -}}
{{- $out = merge (include "standin.command" . | fromJson) $out -}}
{{- $_ := set $out "env" (include "standin.env" . | fromJsonArray) -}}
{{- with $c.ports }}{{ $_ := set $out "ports" (include "standin.render" (dict "value" . "context" $.root) | fromYamlArray) }}{{ end -}}
{{- $_ := set $out "resources" (include "standin.resources" . | fromJson) -}}
{{- if or $c.volumeMounts $c.mountModelVolume -}}
  {{- $mounts := $c.volumeMounts | default list -}}
  {{- if $c.mountModelVolume -}}
    {{- $mount := dict "name" "model-storage" "mountPath" $V.modelArtifacts.mountPath -}}
    {{- if has (include "standin.uri" $.root | fromJson).protocol (list "oci" "pvc") }}{{ $_ := set $mount "readOnly" true }}{{ end -}}
    {{- $mounts = append $mounts $mount -}}
  {{- end -}}
  {{- $_ := set $out "volumeMounts" $mounts -}}
{{- end -}}
{{- toYaml (list $out) -}}
{{- end -}}

{{/* The decode pods' routing sidecar: an init container with restartPolicy Always. */}}
{{- define "standin.routingProxy" -}}
{{- $V := .Values -}}
{{- $proxy := $V.routing.proxy -}}
{{- $port := $V.routing.servicePort | default 8000 -}}
{{- $args := list (printf "--port=%v" $port) (printf "--vllm-port=%v" ($proxy.targetPort | default 8200)) (printf "--connector=%v" ($proxy.connector | default "nixlv2")) -}}
{{- range $pair := list (list "zapDevel" "zap-devel") (list "zapEncoder" "zap-encoder") (list "zapLogLevel" "zap-log-level") (list "zapStacktraceLevel" "zap-stacktrace-level") (list "zapTimeEncoding" "zap-time-encoding") (list "secure" "secure-proxy") (list "prefillerUseTLS" "prefiller-use-tls") (list "certPath" "cert-path") -}}
  {{- if hasKey $proxy (first $pair) }}{{ $args = append $args (printf "--%s=%v" (last $pair) (index $proxy (first $pair))) }}{{ end -}}
{{- end -}}
{{- $env := list -}}
{{- if and $V.tracing $V.tracing.enabled -}}
  {{- $t := $V.tracing -}}
  {{- range $pair := list (list "OTEL_SERVICE_NAME" $t.serviceNames.routingProxy) (list "OTEL_EXPORTER_OTLP_ENDPOINT" $t.otlpEndpoint) (list "OTEL_TRACES_EXPORTER" "otlp") (list "OTEL_TRACES_SAMPLER" $t.sampling.sampler) (list "OTEL_TRACES_SAMPLER_ARG" $t.sampling.samplerArg) -}}
    {{- $env = append $env (dict "name" (first $pair) "value" (toString (last $pair))) -}}
  {{- end -}}
{{- end -}}
{{- $c := dict "name" "routing-proxy" "args" $args "image" (required "routing.proxy.image must be specified" $proxy.image) "imagePullPolicy" ($proxy.imagePullPolicy | default "Always") "env" $env "ports" (list (dict "containerPort" $port)) "resources" dict "restartPolicy" "Always" "securityContext" (dict "allowPrivilegeEscalation" false "runAsNonRoot" true) -}}
{{- toYaml (list $c) -}}
{{- end -}}

{{/* Pod spec of a role (without the Deployment-specific fields, which the Deployment adds). */}}
{{- define "standin.podSpec" -}}
{{- $root := .root -}}
{{- $V := $root.Values -}}
{{- $pd := index $V .role -}}
{{- $spec := dict -}}
{{- with $pd.extraConfig }}{{ $spec = include "standin.render" (dict "value" . "context" $root) | fromYaml }}{{ end -}}
{{- with $pd.imagePullSecrets }}{{ $_ := set $spec "imagePullSecrets" . }}{{ end -}}
{{- with ($pd.schedulerName | default $V.schedulerName) }}{{ $_ := set $spec "schedulerName" . }}{{ end -}}
{{- if and $pd.priorityClassName (ne (lower $pd.priorityClassName) "none") }}{{ $_ := set $spec "priorityClassName" $pd.priorityClassName }}{{ end -}}
{{- with $pd.podSecurityContext }}{{ $_ := set $spec "securityContext" . }}{{ end -}}
{{- $_ := set $spec "serviceAccountName" (include "standin.serviceAccount" $root) -}}
{{- with $pd.acceleratorTypes -}}
  {{- if .labelKey -}}
    {{- $expr := dict "key" .labelKey "operator" "In" -}}
    {{- with .labelValues }}{{ $_ := set $expr "values" . }}{{ end -}}
    {{- $_ := set $spec "affinity" (dict "nodeAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (dict "nodeSelectorTerms" (list (dict "matchExpressions" (list $expr)))))) -}}
  {{- end -}}
{{- end -}}
{{- $volumes := $pd.volumes | default list -}}
{{- $modelVolume := false -}}
{{- range $pd.containers }}{{ if .mountModelVolume }}{{ $modelVolume = true }}{{ end }}{{ end -}}
{{- if $modelVolume -}}
  {{- $ma := $V.modelArtifacts -}}
  {{- $uri := include "standin.uri" $root | fromJson -}}
  {{- if eq $uri.protocol "hf" -}}
    {{- $volumes = append $volumes (dict "name" "model-storage" "emptyDir" (dict "sizeLimit" ($ma.size | default "0"))) -}}
  {{- else if hasPrefix "pvc" $uri.protocol -}}
    {{- $volumes = append $volumes (dict "name" "model-storage" "persistentVolumeClaim" (dict "claimName" (first (regexSplit "/" $uri.rest -1)) "readOnly" true)) -}}
  {{- else if eq $uri.protocol "oci" -}}
    {{- $volumes = append $volumes (dict "name" "model-storage" "image" (dict "reference" $uri.rest "pullPolicy" ($ma.imagePullPolicy | default "Always"))) -}}
  {{- end -}}
{{- end -}}
{{- $_ := set $spec "volumes" $volumes -}}
{{- with include "standin.claims" . | fromJsonArray }}{{ $_ := set $spec "resourceClaims" . }}{{ end -}}
{{- with $pd.nodeSelector }}{{ $_ := set $spec "nodeSelector" . }}{{ end -}}
{{- $inits := list -}}
{{- if eq .role "decode" -}}
  {{- if or $pd.initContainers (eq $V.routing.proxy.enabled true) -}}
    {{- $proxy := $V.routing.proxy -}}
    {{- if or (not (hasKey $proxy "enabled")) (ne $proxy.enabled false) -}}
      {{- $inits = include "standin.routingProxy" $root | fromYamlArray -}}
    {{- end -}}
    {{- $inits = concat $inits ($pd.initContainers | default list) -}}
  {{- end -}}
{{- else -}}
  {{- $inits = $pd.initContainers | default list -}}
{{- end -}}
{{- with $inits }}{{ $_ := set $spec "initContainers" . }}{{ end -}}
{{- range $key := list "enableServiceLinks" "terminationGracePeriodSeconds" -}}
  {{- if hasKey $pd $key }}{{ $_ := set $spec $key (index $pd $key) }}{{ end -}}
{{- end -}}
{{- with $pd.containers -}}
  {{- $containers := list -}}
  {{- range . -}}
    {{- $containers = concat $containers (include "standin.container" (dict "root" $root "role" $.role "container" .) | fromYamlArray) -}}
  {{- end -}}
  {{- $_ := set $spec "containers" $containers -}}
{{- end -}}
{{- with $pd.tolerations }}{{ $_ := set $spec "tolerations" . }}{{ end -}}
{{- toYaml $spec -}}
{{- end -}}
