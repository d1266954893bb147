"""Text templates from the catalog's ``templates/`` folder, filled with ``string.Template``.

``$name`` placeholders only, no logic: loops and choices are made in Python by whoever fills the
template, and a missing name is an error (``substitute``), never a silently empty hole. Jinja2
would cost more to import than a whole render.
"""

from __future__ import annotations

from functools import lru_cache
from string import Template

from .data import data_path, read_bytes
from .errors import CatalogError


@lru_cache(maxsize=None)
def _template(name: str) -> Template:
    return Template(read_bytes(data_path("templates", name)).decode("utf-8"))


def render_template(name: str, **params: object) -> str:
    try:
        text = _template(name).substitute(params)
    except OSError as exc:
        raise CatalogError(f"cannot read template {data_path('templates', name)}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CatalogError(f"template {data_path('templates', name)}: not a UTF-8 text file") from None
    except KeyError as exc:
        raise CatalogError(f"template {data_path('templates', name)} uses ${{{exc.args[0]}}}, which llmdctl does not fill",
                           hint=f"it fills: {', '.join(sorted(params))}; write $$ for a literal $") from None
    except ValueError as exc:  # a lone "$" or a malformed placeholder
        raise CatalogError(f"template {data_path('templates', name)}: {exc}", hint="write $$ for a literal $") from None
    if not text.strip():
        raise CatalogError(f"template {data_path('templates', name)} is empty")
    return text


def reset_template_cache() -> None:
    _template.cache_clear()
