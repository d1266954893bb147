"""The catalog: hardware profiles, overlays, gateways, guides, llm-d release pins and -e aliases.

Every catalog file is checked against its schema when it is loaded, so a broken profile fails
with its file, line and key path, never deep inside composition.
"""

from __future__ import annotations

from functools import lru_cache
import os
from typing import Any, NamedTuple

from ..base import cache
from ..base.data import data_root, read_bytes
from ..base.errors import CatalogError, InputError, LlmdctlError, suggest
from ..base.merge import merge_values
from ..base.schema import check, reset_schema_caches, schema_bytes
from ..base.templates import reset_template_cache
from ..base.yamlio import Document, load_text

LAYER_FOLDERS = {"hardware": "profiles", "overlay": "profiles", "gateway": "gateways", "guide": "guides"}


# files under guides/ that hold catalog data, not a guide layer
DATA_FILES = ("versions", "environments", "models", "rules", "planner")


class Layer(NamedTuple):
    """One catalog file, with its ``extends`` chain already folded in (base first)."""

    kind: str
    name: str
    summary: str
    description: str
    source: str
    chain: tuple[str, ...]  # names from the root base to this layer
    defaults: dict
    hardware: dict
    gateway: dict
    values: tuple[tuple[str, dict], ...]  # (layer name, values) per chain member, base first
    disaggregated: tuple[tuple[str, dict], ...]
    aggregated: tuple[tuple[str, dict], ...]
    aggregated_only: bool
    abstract: bool
    raw: dict


class Release(NamedTuple):
    """One llm-d release: its pinned charts, images and chart-key dialect."""

    name: str
    summary: str
    charts: dict
    images: dict
    dialect: dict
    contract: dict  # ports and defaults of the pinned charts' values contract
    prerequisites: dict
    epp: dict  # plugins the pinned EPP registers that --scorer / --scheduler-param may name
    generation: str = "helmfile"  # helmfile: infra + gaie + modelservice; router: router chart + generated model servers
    model_server_defaults: dict = {}  # values / disaggregatedValues / aggregatedValues the release's overlays set on vLLM pods
    autoscaling: dict = {}  # --autoscale: the metrics each role's HPA reads (router generation)
    engine: dict = {}  # vLLM's version and the flag tables of the programs in the model-server pods

    @property
    def release_keys(self) -> tuple[str, ...]:
        """The releases a stack of this llm-d version has, in needs order (what --set may address)."""
        return ("router", "ms") if self.generation == "router" else ("infra", "gaie", "ms")


class Catalog:
    """Loads and caches the catalog files under :func:`data_root` (or another root, for tests)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = os.fspath(root) if root else data_root()
        self._docs: dict[str, Document] = {}
        self._layers: dict[str, Layer] = {}
        self._files_cache: dict[str, str] | None = None

    # -- files ----------------------------------------------------------------------------
    def _load(self, rel: str, schema: str) -> Document:
        """One catalog file, parsed and checked against its schema (or both from the cache)."""
        if rel not in self._docs:
            path = os.path.join(self.root, rel)
            try:
                raw = read_bytes(path)
                schema_raw = schema_bytes(schema)
            except OSError as exc:
                raise CatalogError(f"cannot read catalog file {path}: {exc.strerror}") from None
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CatalogError(f"{path}: not a UTF-8 text file") from None

            def parse_and_check():
                try:
                    doc = load_text(text, str(path))
                except LlmdctlError as exc:
                    raise CatalogError(exc.message, hint=exc.hint) from None
                if not isinstance(doc.data, dict):
                    raise CatalogError(f"{path}: expected a YAML mapping at the top level")
                try:
                    check(doc.data, schema, doc=doc)
                except LlmdctlError as exc:
                    raise CatalogError(exc.message) from None
                return doc.data

            data = cache.cached(cache.key(schema.encode(), schema_raw, raw), parse_and_check)
            self._docs[rel] = Document(data, str(path), text=text)
        return self._docs[rel]

    def _files(self, kind_folder: str) -> dict[str, str]:
        """Layer name -> relative path, for every ``*.yaml`` in a folder (file stem = layer name)."""
        try:
            names = sorted(n for n in os.listdir(os.path.join(self.root, kind_folder)) if n.endswith(".yaml"))
        except OSError as exc:
            raise CatalogError(f"cannot list the catalog folder {os.path.join(self.root, kind_folder)}: {exc.strerror}") from None
        return {n[: -len(".yaml")]: f"{kind_folder}/{n}" for n in names}

    def _raw_layers(self) -> dict[str, str]:
        if self._files_cache is None:
            self._files_cache = self._list_layers()
        return self._files_cache

    def _list_layers(self) -> dict[str, str]:
        files: dict[str, str] = {}
        for folder in ("profiles", "gateways", "guides"):
            for name, rel in self._files(folder).items():
                if folder == "guides" and name in DATA_FILES:
                    continue
                if name in files:
                    raise CatalogError(f"layer name '{name}' is defined twice: {files[name]} and {rel}")
                files[name] = rel
        return files

    # -- layers ---------------------------------------------------------------------------
    def layer(self, name: str) -> Layer:
        if name not in self._layers:
            self._layers[name] = self._build_layer(name, ())
        return self._layers[name]

    def _build_layer(self, name: str, seen: tuple[str, ...]) -> Layer:
        files = self._raw_layers()
        if name not in files:
            raise InputError(f"unknown layer '{name}'")
        doc = self._load(files[name], "layer.schema.json")
        raw = doc.data
        if raw["name"] != name:
            raise CatalogError(f"{doc.source}: name '{raw['name']}' must match the file name '{name}'")
        base: Layer | None = None
        if "extends" in raw:
            parent = raw["extends"]
            if parent in seen + (name,):
                raise CatalogError(f"{doc.source}: 'extends' loops: {' -> '.join(seen + (name, parent))}")
            if parent not in files:
                raise CatalogError(f"{doc.where('extends')}: extends unknown layer '{parent}'")
            base = self._build_layer(parent, seen + (name,))
            if base.kind != raw["kind"]:
                raise CatalogError(f"{doc.where('extends')}: a {raw['kind']} cannot extend a {base.kind} ('{parent}')")

        def fold(key: str, own: dict | None) -> dict:
            merged = dict(getattr(base, key)) if base else {}
            return merge_values(merged, own or {})

        def chain_values(attr: str, key: str) -> tuple[tuple[str, dict], ...]:
            inherited = getattr(base, attr) if base else ()
            own = raw.get(key)
            return inherited + (((name, own),) if own else ())

        return Layer(
            kind=raw["kind"],
            name=name,
            summary=raw["summary"],
            description=raw.get("description", "").strip(),
            source=doc.source,
            chain=(base.chain if base else ()) + (name,),
            defaults=fold("defaults", raw.get("defaults")),
            hardware=fold("hardware", raw.get("hardware")),
            gateway=fold("gateway", raw.get("gateway")),
            values=chain_values("values", "values"),
            disaggregated=chain_values("disaggregated", "disaggregatedValues"),
            aggregated=chain_values("aggregated", "aggregatedValues"),
            aggregated_only=raw.get("aggregatedOnly", base.aggregated_only if base else False),
            abstract=raw.get("abstract", False),
            raw=raw,
        )

    def layers(self, *kinds: str) -> list[Layer]:
        out = [self.layer(n) for n in self._raw_layers()]
        return [l for l in out if (not kinds or l.kind in kinds) and not l.abstract]

    def names(self, *kinds: str) -> list[str]:
        return [l.name for l in self.layers(*kinds)]

    def layer_text(self, name: str) -> str:
        return read_bytes(os.path.join(self.root, self._raw_layers()[name])).decode("utf-8")

    # -- releases and aliases ---------------------------------------------------------------
    @property
    def versions(self) -> dict:
        return self._load("guides/versions.yaml", "versions.schema.json").data

    def release(self, name: str | None) -> Release:
        versions = self.versions
        name = name or versions["default"]
        releases = versions["releases"]
        if name not in releases:
            raise InputError(
                f"unknown llm-d version '{name}'" + suggest(name, list(releases)),
                hint=f"known versions: {', '.join(releases)}",
            )
        r = releases[name]
        return Release(name, r["summary"], r["charts"], r["images"], r["dialect"], r["contract"], r.get("prerequisites", {}),
                       r.get("epp") or {"scorers": []}, r.get("generation", "helmfile"),
                       r.get("modelServerDefaults") or {}, r.get("autoscaling") or {}, r.get("engine") or {})

    @property
    def models(self) -> dict:
        """Model-volume sizing rules and the known-model table (guides/models.yaml)."""
        return self._load("guides/models.yaml", "models.schema.json").data

    @property
    def planner(self) -> dict:
        """Accelerators, networks, priors and model architectures for `llmdctl plan` (guides/planner.yaml)."""
        return self._load("guides/planner.yaml", "planner.schema.json").data

    @property
    def rules(self) -> dict:
        """Rule ID -> severity, title, why and source (guides/rules.yaml)."""
        return self._load("guides/rules.yaml", "rules.schema.json").data["rules"]

    @property
    def environments(self) -> dict:
        return self._load("guides/environments.yaml", "environments.schema.json").data

    def resolve_environments(self, names: list[str], generation: str = "helmfile") -> dict[str, Any]:
        """Turn ``-e`` names into {hardware, overlays, gateway}, with conflicts refused.

        A hardware profile named by -e leaves the gateway at its default and vice versa. Names a
        multi-layer alias brings in are implied: an explicitly named layer of the same kind wins
        over them (``-e nvidia-ib -e gke`` is nvidia-ib behind the GKE gateway), while a one-layer
        alias (``amd``) is just another spelling. Two different explicit hardware profiles (or
        gateways) are a conflict: they set contradicting accelerator, image and RDMA keys (V-01).
        """
        env = self.environments
        if generation == "router" and "router" in env:
            # the router generation has its own defaults and its own meaning for some aliases (gke)
            env = {"default": env["router"]["default"], "aliases": {**env["aliases"], **env["router"]["aliases"]}}
        chosen: dict[str, dict[str, list[str]]] = {
            kind: {"explicit": [], "implied": []} for kind in ("hardware", "gateway", "overlay")
        }
        known = set(self._raw_layers())
        for given in names:
            expansion = env["aliases"].get(given, [given])
            for name in expansion:
                if name not in known:
                    candidates = sorted(set(self.names("hardware", "overlay", "gateway")) | set(env["aliases"]))
                    raise InputError(
                        f"unknown environment '{name}'" + suggest(name, candidates),
                        hint="list them with: llmdctl profiles; llmdctl gateways",
                    )
                layer = self.layer(name)
                if layer.kind not in chosen:
                    raise InputError(f"'{name}' is a {layer.kind}, not an environment; use --guide {name}")
                strength = "explicit" if len(expansion) == 1 or name == given else "implied"
                bucket = chosen[layer.kind][strength]
                if name not in bucket:
                    bucket.append(name)

        def pick(kind: str, rule: str) -> str | None:
            explicit, implied = chosen[kind]["explicit"], chosen[kind]["implied"]
            candidates = explicit or implied
            if len(candidates) > 1:
                raise InputError(
                    f"{rule}{' '.join('-e ' + c for c in candidates)}: conflicting {kind} "
                    f"{'profiles' if kind == 'hardware' else 'providers'}: pick one",
                    hint="hardware profiles set contradicting accelerator, image and RDMA keys; only overlays (host-network) stack"
                    if kind == "hardware" else "a stack has one gateway",
                )
            return candidates[0] if candidates else None

        overlays = chosen["overlay"]["explicit"] + [o for o in chosen["overlay"]["implied"] if o not in chosen["overlay"]["explicit"]]
        return {
            "hardware": pick("hardware", "V-01: ") or env["default"]["hardware"],
            "gateway": pick("gateway", "") or env["default"]["gateway"],
            "overlays": overlays,
        }

    def guide(self, name: str) -> Layer:
        # only the named guide is read; listing every guide is for the error message
        if self._raw_layers().get(name, "").startswith("guides/"):
            layer = self.layer(name)
            if layer.kind == "guide" and not layer.abstract:
                return layer
        guides = self.names("guide")
        raise InputError(f"unknown guide '{name}'" + suggest(name, guides), hint=f"known guides: {', '.join(guides)}")


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    return Catalog()


def reset_caches() -> None:
    """Forget loaded catalog files, schemas and templates (after changing $LLMDCTL_CATALOG)."""
    default_catalog.cache_clear()
    reset_schema_caches()
    reset_template_cache()
