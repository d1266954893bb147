"""Text templates from the catalog's ``templates/`` folder, filled with ``string.Template``.

``$name`` placeholders only, no logic: loops and choices are made in Python by whoever fills the
template, and a missing name is an error (``substitute``), never a silently empty hole. Jinja2
would cost more to import than a whole render.
"""

from __future__ import annotations

from functools import lru_cache
from string import Template

from .data import data_path, read_bytes


@lru_cache(maxsize=None)
def _template(name: str) -> Template:
    return Template(read_bytes(data_path("templates", name)).decode("utf-8"))


def render_template(name: str, **params: object) -> str:
    return _template(name).substitute(params)


def reset_template_cache() -> None:
    _template.cache_clear()
