"""Object names of a stack, derived from namespace and postfix, and the limits they must respect.

Every name an effect looks up comes from here, so two stacks in one namespace differ in every
name by their postfix, and a name Kubernetes or Helm would reject is refused before rendering.
"""

from __future__ import annotations

from ..base.errors import Finding, InputError, ValidationError
from ..inputs.spec import DNS1123_LABEL, DNS1123_SUBDOMAIN

HELM_RELEASE_MAX = 53
K8S_NAME_MAX = 63
# modelservice names its objects <release>-llm-d-modelservice, truncated to this many characters
MS_FULLNAME_MAX = 55
RELEASE_KEYS = ("infra", "gaie", "ms")  # the helmfile generation (llm-d <= v0.6.0), in needs order
ROUTER_RELEASE_KEYS = ("gateway", "router", "ms")  # the router generation (llm-d >= v0.8.0); gateway only in gateway mode
ALL_RELEASE_KEYS = ("infra", "gaie", "gateway", "router", "ms")
# a generated chart's names (llmdctl writes them into the bundle; `helm list` shows <name>-<llmdctl version>)
GENERATED_CHARTS = {"gateway": "llmdctl-gateway", "ms": "llmdctl-model-servers"}


def release_names(postfix: str) -> dict[str, str]:
    """Every release name a stack with this postfix can have, in either generation: what destroy
    and status look for when they do not know which llm-d version made the stack."""
    return {key: f"{key}-{postfix}" for key in ALL_RELEASE_KEYS}


def stack_names(namespace: str, postfix: str, gateway_provider: str | None = None, generation: str = "helmfile") -> dict[str, str]:
    if generation == "router":
        return router_stack_names(postfix, gateway_provider)
    names = {
        "infra": f"infra-{postfix}",
        "gaie": f"gaie-{postfix}",
        "ms": f"ms-{postfix}",
        "gateway": f"infra-{postfix}-inference-gateway",
        "pool": f"gaie-{postfix}",
        "epp": f"gaie-{postfix}-epp",
        "route": f"llm-d-{postfix}",
        "stackLabel": f"llm-d-{postfix}",
        "msFullname": f"ms-{postfix}-llm-d-modelservice",
        "prefill": f"ms-{postfix}-llm-d-modelservice-prefill",
        "decode": f"ms-{postfix}-llm-d-modelservice-decode",
        "metricsSecret": f"gaie-{postfix}-sa-metrics-reader-secret",
    }
    if gateway_provider == "istio":
        names["gatewayService"] = f"{names['gateway']}-istio"
    else:
        names["gatewayService"] = names["gateway"]
    return names


def router_stack_names(postfix: str, gateway_provider: str | None = None) -> dict[str, str]:
    """Names of a router-generation stack. The router chart names the pool after its release and
    the EPP <release>-epp; every name llmdctl chooses carries the postfix, including the ones
    upstream fixes (the standalone Envoy ConfigMap `envoy`, the metrics Secret, GKE claim templates)."""
    router = f"router-{postfix}"
    ms = f"ms-{postfix}"
    names = {
        "router": router,
        "ms": ms,
        "gateway": f"gateway-{postfix}",  # release and Gateway (gateway mode only)
        "pool": router,
        "epp": f"{router}-epp",
        "envoyConfigMap": f"{router}-envoy",
        "route": router,  # the gateway chart's HTTPRoute is named after the release
        "stackLabel": f"llm-d-{postfix}",
        "serviceAccount": ms,
        "prefill": f"{ms}-prefill",
        "decode": f"{ms}-decode",
        "metricsSecret": f"{router}-sa-metrics-reader-secret",
        "claimTemplate": f"{ms}-accel",  # one claim per GPU (and, on GKE, its NIC)
        "computeDomain": f"{ms}-compute-domain",  # GB200 NVLink fabric, and the claim template it makes
        "render": f"{ms}-render",  # --prefix-cache precise: the token producer's Service in front of the decode pods
    }
    names["gatewayService"] = f"{names['gateway']}-istio" if gateway_provider == "istio" else names["gateway"]
    return names


def check_names(namespace: str, postfix: str, gateway_provider: str | None = None) -> None:
    """Refuse names Kubernetes or Helm would reject, before anything is rendered."""
    problems = []
    if not DNS1123_LABEL.fullmatch(namespace) or len(namespace) > K8S_NAME_MAX:
        problems.append(
            f"namespace {namespace!r} is not a DNS-1123 label (lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit, at most {K8S_NAME_MAX} characters)"
        )
    if not DNS1123_LABEL.fullmatch(postfix):
        problems.append(
            f"postfix {postfix!r} is not a DNS-1123 label (lower-case letters, digits and '-', "
            "starting and ending with a letter or digit)"
        )
    if not problems:
        names = stack_names(namespace, postfix, gateway_provider)
        limits = [(names[k], HELM_RELEASE_MAX, "Helm release name") for k in ("infra", "gaie", "ms")]
        router = router_stack_names(postfix, gateway_provider)
        # the router chart cuts the release name to 40 characters before it adds -epp: past that
        # two stacks could share an EPP
        limits += [(router["router"], 40, "router release name (the router chart truncates longer ones)"),
                   (router["prefill"], K8S_NAME_MAX, "prefill Deployment name"),
                   (router["claimTemplate"], K8S_NAME_MAX, "ResourceClaimTemplate name"),
                   (router["computeDomain"], K8S_NAME_MAX, "ComputeDomain name"),
                   (router["render"], K8S_NAME_MAX, "render Service name")]
        limits += [
            (names["gateway"], K8S_NAME_MAX, "Gateway name"),
            (names["gatewayService"], K8S_NAME_MAX, "gateway Service name"),
            (names["epp"], K8S_NAME_MAX, "EPP Service name"),
            (names["msFullname"], MS_FULLNAME_MAX, "modelservice full name (the chart truncates longer ones, so stacks could collide)"),
            (names["prefill"], K8S_NAME_MAX, "prefill Deployment name"),
            (names["route"], K8S_NAME_MAX, "HTTPRoute name and stack label value"),
            (names["metricsSecret"], K8S_NAME_MAX, "EPP metrics Secret name"),
        ]
        for name, limit, what in limits:
            if len(name) > limit:
                problems.append(f"{what} '{name}' is {len(name)} characters; the limit is {limit}")
        if problems:
            room = min(limit - (len(name) - len(postfix)) for name, limit, _ in limits)
            problems.append(f"keep the postfix at most {room} characters")
    if problems:
        findings = [Finding("names", "error", p, "Helm release names are limited to 53 characters, Kubernetes names and label values to 63") for p in problems]
        raise ValidationError("names Kubernetes or Helm would reject:\n  " + "\n  ".join(problems), findings)


def check_secret_name(secret: str, origin: str = "--hf-secret") -> None:
    """The HF token Secret is referenced by name; Kubernetes accepts only DNS-1123 subdomains."""
    if not DNS1123_SUBDOMAIN.fullmatch(secret) or len(secret) > 253:
        raise InputError(
            f"{origin} {secret!r}: not a valid Secret name (lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters)",
            hint="e.g. --hf-secret llm-d-hf-token",
        )


def hf_secret_command(namespace: str, secret: str) -> str:
    """The command that creates the token Secret the vLLM pods read (the token stays in $HF_TOKEN)."""
    return f'kubectl create secret generic {secret} --namespace {namespace} --from-literal=HF_TOKEN="$HF_TOKEN"'
