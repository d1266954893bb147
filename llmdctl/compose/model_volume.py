"""The model a stack serves, as the charts need it: its URI, served name, label and the size of
the volume its weights need (from the catalog's guides/models.yaml when the name says nothing)."""

from __future__ import annotations

import math
import re

from ..base.errors import InputError

_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)?")
_HF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_URI_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]*")
_PARAMS = re.compile(r"(?<![A-Za-z0-9])(\d+(?:\.\d+)?)[Bb](?![A-Za-z])")


def model_facts(model: str, size: str | None, sizing: dict) -> tuple[dict, list[str]]:
    """From an HF id (or an hf://, pvc://, oci:// URI) to the chart's URI, name, size and label.

    ``sizing`` is the catalog's guides/models.yaml; the notes say when the size is a guess.
    """
    if "://" in model:
        uri = model
        scheme, name = model.split("://", 1)
        if uri.startswith("pvc://"):
            name = "/".join(name.split("/")[1:]) or name
        if scheme not in ("hf", "pvc", "pvc+hf", "oci") or not _URI_PART.fullmatch(name):
            raise InputError(
                f"--model '{model}': a model URI is hf://ORG/NAME, pvc://CLAIM/PATH or oci://IMAGE, with a name after the scheme",
                hint="e.g. --model hf://Qwen/Qwen3-8B or --model Qwen/Qwen3-8B",
            )
    else:
        if not _HF_ID.fullmatch(model):
            raise InputError(
                f"--model '{model}': expected a Hugging Face id such as Qwen/Qwen2.5-7B-Instruct, "
                "or a URI (hf://, pvc://CLAIM/PATH, oci://IMAGE)"
            )
        uri = f"hf://{model}"
        name = model
    short = name.rsplit("/", 1)[-1]
    label = re.sub(r"[^A-Za-z0-9._-]", "-", short)[:63].strip("-._") or "model"
    notes: list[str] = []
    if size is not None and not _QUANTITY.fullmatch(str(size)):
        raise InputError(
            f"--model-size {size!r}: a Kubernetes quantity in binary units, such as 100Gi or 1.5Ti (Ki, Mi, Gi, Ti; not GB)",
            hint="e.g. --model-size 200Gi",
        )
    if size is None:
        size = estimate_volume(name, sizing)
        if size is None:
            size = sizing["volume"]["unknownSize"]
            notes.append(f"model volume {size}: {name} has no parameter count in its name and is not in the "
                         "catalog's known models; pass --model-size if the weights need more")
    moe = any(re.search(p, name, re.I) for p in sizing.get("mixtureOfExperts") or ())
    return {"id": model, "uri": uri, "name": name, "size": size, "label": label, "moe": moe}, notes


def estimate_volume(name: str, sizing: dict) -> str | None:
    """Room for the weights: parameters x bytes per parameter x headroom, rounded up to a step."""
    rules = sizing["volume"]
    known = sizing["known"].get(name)
    m = _PARAMS.search(name)
    if known:
        params = float(known["parametersB"])
    elif m:
        params = float(m.group(1))
    else:
        return None
    per_param = (known or {}).get("bytesPerParameter")
    if per_param is None:
        per_param = next((r["bytes"] for r in rules["bytesPerParameter"] if re.search(r["match"], name, re.I)),
                         rules["defaultBytesPerParameter"])
    step = rules["stepGi"]
    gib = max(rules["minimumGi"], math.ceil(params * per_param * rules["headroom"] / step) * step)
    return f"{gib}Gi"
