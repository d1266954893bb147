"""Inputs: flags, an optional spec file and environment variables, folded into one ``Spec``.

Precedence, highest first: command-line flags, the spec file, ``NAMESPACE`` /
``RELEASE_NAME_POSTFIX`` (as in the upstream guides) and ``LLMD_VERSION``, the guide's and hardware
profile's defaults.
"""

from __future__ import annotations

import os
import re
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

from ..base.errors import HF_TOKEN, InputError, mask, suggest
from ..base.schema import check
from ..base.yamlio import Document, load_file, load_text
from .charts import check_repository

_LAYOUT = re.compile(r"^\s*([0-9]+)\s*(?:[xX]\s*(\S.*?))?\s*$")
_SHAPE = re.compile(r"(TP|DP)([0-9]+)|(EP)", re.IGNORECASE)
RELEASE_KEYS = ("infra", "gaie", "router", "ms")  # the releases --set and --values may address (router: llm-d >= v0.8)


class RoleLayout(NamedTuple):
    """Replicas and the parallelism of each: ``4xTP1`` is four pods with one GPU each; ``2xDP8EP`` is
    two instances, each eight data-parallel ranks with expert parallelism (spread over as many
    nodes as the hardware profile's GPUs per node need)."""

    replicas: int
    tensor: int = 1
    data: int = 1
    expert: bool = False

    def __str__(self) -> str:
        if self.data == 1 and not self.expert:
            return f"{self.replicas}xTP{self.tensor}"
        return f"{self.replicas}x" + (f"DP{self.data}" if self.data > 1 else "") + (f"TP{self.tensor}" if self.tensor > 1 or self.data == 1 else "") + ("EP" if self.expert else "")

    @property
    def gpus(self) -> int:
        """GPUs of one instance (all its ranks, on every node it spans)."""
        return self.tensor * self.data


def input_name(key: str, flag: str, origin: Mapping[str, str], spec_file: str | None) -> str:
    """How an error names an input: the flag, or the spec file's key when it came from there."""
    return f"{spec_file}: {key}" if origin.get(key, "").startswith("spec file") else flag


def parse_layout(text: Any, flag: str) -> RoleLayout:
    """Parse ``4xTP1``, ``1xTP8``, ``2`` (TP1), ``0`` (role absent) or a data/expert-parallel shape
    such as ``1xDP8EP`` or ``2xDP4TP2EP`` (TP, DP and EP in any order, each at most once)."""
    usage = (f"{flag} '{text}': expected REPLICASxTPN such as 4xTP1 or 1xTP8, a data/expert-parallel shape such as 1xDP8EP "
             f"(or 0 for no {flag.split()[-1].strip('-')} pods)")
    m = _LAYOUT.match(str(text))
    if not m:
        raise InputError(usage)
    replicas, shape = int(m.group(1)), (m.group(2) or "").replace(" ", "")
    parts: dict[str, int] = {}
    pos = 0
    for part in _SHAPE.finditer(shape):
        key = (part.group(1) or part.group(3)).upper()
        if part.start() != pos or key in parts:
            raise InputError(usage)
        parts[key] = int(part.group(2)) if part.group(2) else 1
        pos = part.end()
    if pos != len(shape) or (shape and not parts):
        raise InputError(usage)
    tensor, data = parts.get("TP", 1), parts.get("DP", 1)
    if tensor < 1 or data < 1:
        raise InputError(f"{flag} '{text}': tensor and data parallelism must be at least 1")
    if tensor & (tensor - 1):
        raise InputError(f"{flag} '{text}': tensor parallelism must be a power of two (1, 2, 4, 8, ...); vLLM splits attention heads evenly")
    if replicas > 512:
        raise InputError(f"{flag} '{text}': {replicas} replicas is more than llmdctl accepts (512)")
    if data > 256:
        raise InputError(f"{flag} '{text}': DP{data} is more than llmdctl accepts (256 ranks per instance)")
    return RoleLayout(replicas, tensor, data, "EP" in parts)


class Override(NamedTuple):
    """One ``--set`` (path, value) or ``--values`` (file) override, in the order given."""

    release: str
    path: str | None = None  # dotted path inside the release, for --set
    value: Any = None
    file: str | None = None  # for --values
    data: Any = None
    doc: Document | None = None
    from_spec: bool = False  # came from the spec file, so `-f` reproduces it


# where llm-d's quickstart (install-prometheus-grafana.sh) installs Prometheus: the namespace the
# NetworkPolicies admit the metrics scraper from unless --metrics-namespace says otherwise
DEFAULT_METRICS_NAMESPACE = "llm-d-monitoring"


class Spec(NamedTuple):
    environments: tuple[str, ...] = ()
    namespace: str | None = None
    postfix: str | None = None
    guide: str = "pd-disaggregation"
    llmd_version: str | None = None
    model: str | None = None
    model_size: str | None = None
    prefill: RoleLayout | None = None
    decode: RoleLayout | None = None
    pd_threshold: int | None = None
    prefix_cache: str = "approx"  # approx (the EPP guesses from its own routing) | precise (vLLM KV events), --prefix-cache
    autoscale: tuple[tuple[str, int, int], ...] = ()  # (role, min, max) per --autoscale
    attach_gateway: tuple[str, str] | None = None  # (namespace or "", name): route through another stack's or a shared Gateway
    route_by_model: bool = False  # the route matches the request's model name (implied by attach_gateway)
    hf_secret: str = "llm-d-hf-token"
    rdma_resource: str | None = None
    tolerations: tuple[Toleration, ...] = ()  # pod tolerations beyond the profile's (--toleration, spec file)
    tolerations_from_spec: int = 0
    # how a change replaces the vLLM pods, per role: surge | in-place | recreate (--rollout sets every
    # role; apply picks per role from the live stack and free capacity when none is given)
    rollout: tuple[tuple[str, str], ...] = ()
    # NetworkPolicies in the bundle (--network-policy on|off), and where the Prometheus that scrapes
    # the stack runs (--metrics-namespace): the policies admit the metrics ports from there
    network_policy: bool = True
    metrics_namespace: str = DEFAULT_METRICS_NAMESPACE
    overrides: tuple[Override, ...] = ()
    charts: str | None = None  # absolute path of a local chart folder (--charts)
    chart_repository: str | None = None  # mirror repository for every chart (--chart-repo)
    scorers: tuple[tuple[str | None, str, int], ...] = ()  # (profile or None for all, scorer, weight), --scorer
    scheduler_params: tuple[tuple[str, str, Any], ...] = ()  # (plugin, parameter, value), --scheduler-param
    scorers_from_spec: int = 0  # how many of each come first from the spec file (so -f reproduces them, flags the rest)
    params_from_spec: int = 0
    planned_by: str | None = None  # the `llmdctl plan` command that chose this layout (spec files it writes)
    spec_file: str | None = None  # as the user typed it
    origin: Mapping[str, str] = MappingProxyType({})  # input name -> where it came from (flag, spec, env, default)


PREFIX_CACHE_MODES = ("approx", "precise")
NETWORK_POLICY_MODES = ("on", "off")
ROLLOUTS = ("surge", "in-place", "recreate")


def parse_autoscale(text: str, origin: str = "--autoscale") -> tuple[str, int, int]:
    """``decode=1-4`` -> ('decode', 1, 4): the role's HPA keeps it between 1 and 4 replicas."""
    m = re.fullmatch(r"\s*(prefill|decode)\s*=\s*([0-9]+)\s*-\s*([0-9]+)\s*", str(text))
    if not m:
        raise InputError(f"{origin} {text!r}: expected ROLE=MIN-MAX with ROLE prefill or decode, e.g. decode=1-4")
    role, low, high = m.group(1), int(m.group(2)), int(m.group(3))
    if low < 1 or high < low:
        raise InputError(f"{origin} {text!r}: need 1 <= MIN <= MAX (an HPA cannot scale to zero)",
                         hint="e.g. decode=1-4")
    return role, low, high


# Kubernetes object names (fullmatch: no trailing newline slips through); compose.names checks the stack's with them
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# a taint key is a qualified name (an optional DNS-subdomain prefix, then a name of at most 63 characters)
_TAINT_KEY = re.compile(r"(?:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_TAINT_VALUE = re.compile(r"(?:[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


class Toleration(NamedTuple):
    """One pod toleration: ``value`` None tolerates the key with any value (operator Exists);
    ``effect`` None every effect."""

    key: str
    value: str | None = None
    effect: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"key": self.key, "operator": "Exists" if self.value is None else "Equal"}
        if self.value is not None:
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        return out

    def text(self) -> str:
        """The ``--toleration`` form (the bundle README's command)."""
        return self.key + (f"={self.value}" if self.value is not None else "") + (f":{self.effect}" if self.effect else "")


def parse_toleration(text: str, origin: str = "--toleration") -> Toleration:
    """``dedicated=llm:NoSchedule`` -> a toleration of exactly that taint; ``nvidia.com/gpu:NoSchedule``
    (no value) tolerates the key with any value; without ``:EFFECT`` every effect of the taint."""
    body, _, effect = str(text).strip().partition(":")
    key, eq, value = body.partition("=")
    example = "e.g. dedicated=llm:NoSchedule or nvidia.com/gpu:NoSchedule"
    if not key or not _TAINT_KEY.fullmatch(key):
        raise InputError(f"{origin} {text!r}: expected KEY[=VALUE][:EFFECT] with a taint key such as nvidia.com/gpu ({example})",
                         hint="kubectl describe node NAME | grep Taints shows the taints your GPU nodes carry")
    if eq and not (value and _TAINT_VALUE.fullmatch(value)):
        raise InputError(f"{origin} {text!r}: the value after '=' must be a label value (letters, digits, '-', '_', '.'; at most 63)",
                         hint=f"leave out '=VALUE' to tolerate the key with any value ({example})")
    if effect and effect not in TAINT_EFFECTS:
        raise InputError(f"{origin} {text!r}: effect {effect!r} is none of {', '.join(TAINT_EFFECTS)}",
                         hint="leave out ':EFFECT' to tolerate every effect of the taint")
    return Toleration(key, value if eq else None, effect or None)


def parse_gateway_ref(text: str, origin: str = "--attach-gateway") -> tuple[str, str]:
    """``gateway-pd`` -> ('', 'gateway-pd'); ``infra/shared-gw`` -> ('infra', 'shared-gw')."""
    ns, _, name = text.strip().rpartition("/")
    if not (DNS1123_SUBDOMAIN.fullmatch(name) and len(name) <= 253) or (ns and not (DNS1123_LABEL.fullmatch(ns) and len(ns) <= 63)):
        raise InputError(f"{origin} {text!r}: expected [NAMESPACE/]NAME of a Gateway (lower-case DNS names), e.g. gateway-pd or gateways/shared",
                         hint="kubectl get gateways -A lists them; another llmdctl stack's Gateway is gateway-<its postfix>")
    return ns, name


def gateway_ref_text(ref: tuple[str, str]) -> str:
    """('infra', 'shared-gw') -> 'infra/shared-gw', ('', 'gateway-pd') -> 'gateway-pd': as --attach-gateway takes it."""
    return "/".join(p for p in ref if p)


def parse_set(text: str, origin: str = "--set") -> Override:
    """``ms.decode.replicas=2`` -> Override(release='ms', path='decode.replicas', value=2)."""
    if "=" not in text:
        raise InputError(f"{origin} '{text}': expected RELEASE.PATH=VALUE, e.g. ms.decode.replicas=2")
    path, raw = text.split("=", 1)
    return _override_for_path(path.strip(), _scalar(raw, origin, path), origin)


def _override_for_path(path: str, value: Any, origin: str) -> Override:
    release, _, rest = path.partition(".")
    if release not in RELEASE_KEYS:
        raise InputError(
            f"{origin} '{path}': the path must start with a release: infra, gaie, router or ms" + suggest(release, list(RELEASE_KEYS)),
            hint="e.g. --set ms.decode.replicas=2 or --set gaie.inferenceExtension.replicas=2",
        )
    if not rest:
        raise InputError(f"{origin} '{path}': give a key path inside the release, e.g. {release}.some.key=value")
    return Override(release=release, path=rest, value=value)


def _scalar(raw: str, origin: str, path: str) -> Any:
    """Values are YAML scalars or flow collections, as with ``helm --set``: 2, true, null, [a, b]."""
    if raw == "":
        return ""
    try:
        return load_text(raw, f"{origin} {path}").data
    except InputError:
        return raw


_SCORER = re.compile(r"^(?:([a-z0-9-]+):)?([a-z0-9-]+)=([0-9]+)$")


def parse_scorer(text: str, origin: str = "--scorer") -> tuple[str | None, str, int]:
    """``prefix-cache=2`` (every scheduling profile) or ``decode:queue=3`` -> (profile, scorer, weight)."""
    m = _SCORER.match(text.strip())
    if not m:
        raise InputError(f"{origin} '{text}': expected [PROFILE:]SCORER=WEIGHT with a whole-number weight, e.g. prefix-cache=2 or decode:queue=3",
                         hint="weight 0 removes the scorer; the names are the EPP's plugin types (llmdctl versions -o json lists them)")
    return m.group(1), m.group(2), int(m.group(3))


def parse_scheduler_param(text: str, origin: str = "--scheduler-param") -> tuple[str, str, Any]:
    """``approx-prefix-cache-producer.maxPrefixTokensToMatch=65536`` -> (plugin, parameter, value)."""
    key, sep, raw = text.partition("=")
    plugin, dot, param = key.strip().rpartition(".")
    if not sep or not dot or not plugin or not param:
        raise InputError(f"{origin} '{text}': expected PLUGIN.PARAMETER=VALUE, e.g. prefix-based-pd-decider.nonCachedTokens=64")
    return plugin, param, _scalar(raw, origin, key)


def _flow(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def parse_values_flag(text: str, base: str | None = None, origin: str = "--values") -> Override:
    """``ms=extra.yaml`` -> the file's content as an override for release ``ms``."""
    release, sep, file = text.partition("=")
    if not sep or release not in RELEASE_KEYS or not file:
        raise InputError(f"{origin} '{text}': expected RELEASE=FILE with RELEASE one of infra, gaie, router, ms (e.g. ms=my-values.yaml)")
    path = os.path.join(base, file) if base is not None else file  # a spec file's paths are relative to it
    doc = load_file(path, what="values file")
    refuse_tokens(doc.data, path)
    if doc.data is None:
        data = {}
    elif not isinstance(doc.data, dict):
        raise InputError(f"{path}: a values file must be a YAML mapping, not {type(doc.data).__name__}")
    else:
        data = doc.data
    return Override(release=release, file=file, data=data, doc=doc)  # the path as written: bundles must not depend on the cwd


def refuse_tokens(value: Any, where: str) -> None:
    """A Hugging Face token must live in a Secret; refuse one typed anywhere else, masked."""
    if isinstance(value, dict):
        for k, v in value.items():
            refuse_tokens(k, where)
            refuse_tokens(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            refuse_tokens(v, f"{where}[{i}]")
    elif isinstance(value, str):
        m = HF_TOKEN.search(value)
        if m:
            raise InputError(
                f"{where}: looks like a Hugging Face token ({mask(m.group(0))}); llmdctl never takes tokens",
                hint='store it in a Secret and pass its name: kubectl create secret generic llm-d-hf-token --from-literal=HF_TOKEN="$HF_TOKEN" (then --hf-secret llm-d-hf-token)',
            )


def load_spec(path: str) -> tuple[dict, Document]:
    doc = load_file(path, what="spec file")
    refuse_tokens(doc.data, path)
    if doc.data is None:
        raise InputError(f"{path}: the spec file is empty", hint="see `llmdctl render --help` for an example spec")
    if not isinstance(doc.data, dict):
        raise InputError(f"{path}: a spec file must be a YAML mapping, not {type(doc.data).__name__}")
    check(doc.data, "spec.schema.json", doc=doc)
    return doc.data, doc


def build_spec(
    *,
    spec_file: str | None = None,
    environments: list[str] | None = None,
    namespace: str | None = None,
    postfix: str | None = None,
    guide: str | None = None,
    llmd_version: str | None = None,
    model: str | None = None,
    model_size: str | None = None,
    prefill: str | None = None,
    decode: str | None = None,
    pd_threshold: int | None = None,
    prefix_cache: str | None = None,
    autoscale: list[str] | None = None,
    attach_gateway: str | None = None,
    route_by_model: bool | None = None,
    hf_secret: str | None = None,
    rdma_resource: str | None = None,
    tolerations: list[str] | None = None,
    rollout: str | None = None,
    network_policy: str | None = None,
    metrics_namespace: str | None = None,
    sets: list[str] | None = None,
    values: list[str] | None = None,
    charts: str | None = None,
    chart_repo: str | None = None,
    scorers: list[str] | None = None,
    scheduler_params: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Spec:
    """Fold flags over the spec file over environment variables. Flags left ``None`` were not given."""
    env = os.environ if env is None else env
    flags = {
        "-e": environments, "--namespace": namespace, "--postfix": postfix, "--guide": guide,
        "--llmd-version": llmd_version, "--model": model, "--model-size": model_size, "--prefill": prefill,
        "--decode": decode, "--prefix-cache": prefix_cache, "--autoscale": autoscale, "--attach-gateway": attach_gateway, "--hf-secret": hf_secret, "--rdma-resource": rdma_resource, "--toleration": tolerations, "--rollout": rollout,
        "--network-policy": network_policy, "--metrics-namespace": metrics_namespace, "--set": sets, "--values": values,
        "--charts": charts, "--chart-repo": chart_repo, "--scorer": scorers, "--scheduler-param": scheduler_params,
    }
    for flag, value in flags.items():
        refuse_tokens(value, flag)
    for var in ("NAMESPACE", "RELEASE_NAME_POSTFIX", "LLMD_VERSION"):
        refuse_tokens(env.get(var), f"${var}")
    file: dict = {}
    base: str | None = None
    if spec_file:
        file, _ = load_spec(spec_file)
        base = os.path.dirname(os.path.abspath(spec_file))
    origin: dict[str, str] = {}

    def pick(name: str, flag_value: Any, file_key: str, env_var: str | None = None) -> Any:
        if flag_value is not None:
            origin[name] = "flag"
            return flag_value
        if file_key in file:
            origin[name] = f"spec file {spec_file}"
            return file[file_key]
        if env_var and env.get(env_var):
            origin[name] = f"${env_var}"
            return env[env_var]
        return None

    overrides: list[Override] = []
    # The spec file's overrides come first so that flags, applied later, win.
    for rel, files in (file.get("values") or {}).items():
        for f in [files] if isinstance(files, str) else files:
            overrides.append(parse_values_flag(f"{rel}={f}", base, origin=f"spec file values.{rel}")._replace(from_spec=True))
    file_sets = file.get("set") or {}
    if isinstance(file_sets, dict):
        overrides += [_override_for_path(str(k), v, "spec file set")._replace(from_spec=True) for k, v in file_sets.items()]
    else:
        overrides += [parse_set(s, "spec file set")._replace(from_spec=True) for s in file_sets]
    overrides += [parse_values_flag(v) for v in values or []]
    overrides += [parse_set(s) for s in sets or []]

    envs = environments if environments else file.get("environments")
    if environments:
        origin["environments"] = "flag"
    elif envs:
        origin["environments"] = f"spec file {spec_file}"

    prefill_text = pick("prefill", prefill, "prefill")
    decode_text = pick("decode", decode, "decode")
    threshold = pick("pdThreshold", pd_threshold, "pdThreshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0):
        raise InputError(f"--pd-threshold {threshold!r}: expected a whole number of tokens >= 0")

    cache = pick("prefixCache", prefix_cache, "prefixCache") or "approx"
    if cache not in PREFIX_CACHE_MODES:
        raise InputError(f"{input_name('prefixCache', '--prefix-cache', origin, spec_file)} {cache!r}: expected one of " + ", ".join(PREFIX_CACHE_MODES),
                         hint="approx: the EPP infers cache contents from its own routing; precise: it reads vLLM's KV events")

    how = pick("rollout", rollout, "rollout")
    if how is not None and how not in ROLLOUTS:
        raise InputError(f"{input_name('rollout', '--rollout', origin, spec_file)} {how!r}: expected one of " + ", ".join(ROLLOUTS),
                         hint="surge: new pods first (needs spare GPUs); in-place: one pod at a time, old first; recreate: all old pods first (the stack goes down)")

    policy = pick("networkPolicy", network_policy, "networkPolicy")
    if isinstance(policy, bool):  # YAML 1.1 reads a bare on/off as a boolean
        policy = "on" if policy else "off"
    if policy is not None and policy not in NETWORK_POLICY_MODES:
        raise InputError(f"{input_name('networkPolicy', '--network-policy', origin, spec_file)} {policy!r}: expected on or off",
                         hint="off leaves the NetworkPolicies out, for clusters whose network plugin does not enforce them (llmdctl doctor tells)")
    scrape_ns = pick("metricsNamespace", metrics_namespace, "metricsNamespace")
    if scrape_ns is not None and (not DNS1123_LABEL.fullmatch(str(scrape_ns)) or len(str(scrape_ns)) > 63):
        raise InputError(f"{input_name('metricsNamespace', '--metrics-namespace', origin, spec_file)} {scrape_ns!r}: not a namespace name "
                         "(a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters)",
                         hint=f"the namespace your Prometheus runs in, e.g. {DEFAULT_METRICS_NAMESPACE} or monitoring")

    scaling = [parse_autoscale(f"{k}={v}", "spec file autoscale") for k, v in (file.get("autoscale") or {}).items()]
    scaling += [parse_autoscale(t) for t in autoscale or []]
    by_role = {role: (role, low, high) for role, low, high in scaling}  # a flag overrides the spec file's role

    attach_text = pick("attachGateway", attach_gateway, "attachGateway")
    attach = parse_gateway_ref(str(attach_text), input_name("attachGateway", "--attach-gateway", origin, spec_file)) if attach_text is not None else None
    by_model = pick("routeByModel", route_by_model, "routeByModel")

    charts_dir = pick("charts", charts, "charts")
    if charts_dir is not None and origin["charts"] != "flag":
        charts_dir = os.path.join(base or "", str(charts_dir))  # a spec file's paths are relative to it
    repo = pick("chartRepository", chart_repo, "chartRepository")
    if charts_dir is not None and repo is not None:
        raise InputError("--charts and --chart-repo both say where the charts come from; give one",
                         hint="--charts DIR for charts on disk (air-gapped), --chart-repo URL for a mirror registry")

    scorer_list = [parse_scorer(f"{k}={v}", "spec file scorers") for k, v in (file.get("scorers") or {}).items()]
    from_spec = len(scorer_list)
    scorer_list += [parse_scorer(t) for t in scorers or []]
    param_list = [parse_scheduler_param(f"{k}={_flow(v)}", "spec file schedulerParams") for k, v in (file.get("schedulerParams") or {}).items()]
    params_from_spec = len(param_list)
    param_list += [parse_scheduler_param(t) for t in scheduler_params or []]

    toleration_list = [parse_toleration(str(x), "spec file tolerations") for x in (file.get("tolerations") or [])]
    from_file_tolerations = len(toleration_list)
    toleration_list += [parse_toleration(x) for x in tolerations or []]

    return Spec(
        environments=tuple(envs or ()),
        namespace=pick("namespace", namespace, "namespace", "NAMESPACE"),
        postfix=pick("postfix", postfix, "postfix", "RELEASE_NAME_POSTFIX"),
        guide=pick("guide", guide, "guide") or "pd-disaggregation",
        llmd_version=pick("llmdVersion", llmd_version, "llmdVersion", "LLMD_VERSION"),
        model=pick("model", model, "model"),
        model_size=pick("modelSize", model_size, "modelSize"),
        prefill=parse_layout(prefill_text, input_name("prefill", "--prefill", origin, spec_file)) if prefill_text is not None else None,
        decode=parse_layout(decode_text, input_name("decode", "--decode", origin, spec_file)) if decode_text is not None else None,
        pd_threshold=threshold,
        prefix_cache=cache,
        autoscale=tuple(by_role[r] for r in ("prefill", "decode") if r in by_role),
        attach_gateway=attach, route_by_model=attach is not None if by_model is None else bool(by_model),
        hf_secret=pick("hfSecret", hf_secret, "hfSecret") or "llm-d-hf-token",
        rdma_resource=pick("rdmaResource", rdma_resource, "rdmaResource"),
        rollout=tuple((role, how) for role in ("prefill", "decode")) if how else (),
        network_policy=policy != "off", metrics_namespace=str(scrape_ns) if scrape_ns is not None else DEFAULT_METRICS_NAMESPACE,
        tolerations=tuple(dict.fromkeys(toleration_list)), tolerations_from_spec=len(set(toleration_list[:from_file_tolerations])),
        overrides=tuple(overrides),
        charts=os.path.abspath(charts_dir) if charts_dir is not None else None,
        chart_repository=check_repository(str(repo), input_name("chartRepository", "--chart-repo", origin, spec_file)) if repo is not None else None,
        scorers=tuple(scorer_list), scheduler_params=tuple(param_list), scorers_from_spec=from_spec, params_from_spec=params_from_spec,
        planned_by=str(file["plannedBy"]) if file.get("plannedBy") else None,
        spec_file=spec_file,
        origin=origin,
    )


_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*")


def parse_duration(text: str, flag: str = "--timeout") -> float:
    """``90s``, ``20m``, ``1h`` (a bare number is seconds) -> seconds."""
    m = _DURATION.fullmatch(text or "")
    if not m:
        raise InputError(f"{flag} {text}: not a duration", hint="use e.g. 90s, 20m or 1h")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
