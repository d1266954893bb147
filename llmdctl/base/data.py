"""Where the packaged data lives: the catalog, templates and schemas.

``$LLMDCTL_CATALOG`` (a folder with profiles/, gateways/, guides/, templates/, schemas/) wins;
else ``llmdctl/data`` inside an installed wheel; else the top of a source checkout, so a test run
from the working tree reads the working tree's catalog.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    override = os.environ.get("LLMDCTL_CATALOG")
    if override:
        return Path(override)
    installed = _PACKAGE / "data"
    return installed if (installed / "profiles").is_dir() else _PACKAGE.parent


def data_path(*parts: str) -> Path:
    return data_root().joinpath(*parts)
