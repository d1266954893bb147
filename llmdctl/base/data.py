"""Where the packaged data lives: the catalog, templates and schemas.

``$LLMDCTL_CATALOG`` (a folder with profiles/, gateways/, guides/, templates/, schemas/) wins;
else ``llmdctl/data`` inside an installed wheel; else the top of a source checkout, so a test run
from the working tree reads the working tree's catalog.

Paths on the render path are strings handled with ``os.path``: importing pathlib costs more than
a tenth of a render.
"""

from __future__ import annotations

import os

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_root() -> str:
    override = os.environ.get("LLMDCTL_CATALOG")
    if override:
        return override
    installed = os.path.join(_PACKAGE, "data")
    return installed if os.path.isdir(os.path.join(installed, "profiles")) else os.path.dirname(_PACKAGE)


def data_path(*parts: str) -> str:
    return os.path.join(data_root(), *parts)


def read_bytes(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as f:
        return f.read()
