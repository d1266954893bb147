"""A content-addressed cache of parsed, validated catalog files.

Parsing YAML and checking it against its schema costs more than the rest of a render. A catalog
file that has not changed gives the same plain data every time, so the result is kept under
``$LLMDCTL_CACHE_DIR`` (default ``$XDG_CACHE_HOME/llmdctl`` or ``~/.cache/llmdctl``), keyed by a
hash of everything it depends on: llmdctl's version, the schema and the file's bytes. An entry is
never updated in place, so a stale entry cannot be read. A cache that cannot be read or written
(read-only home, ``LLMDCTL_CACHE_DIR=off``) only costs time, never correctness. Entries are small
and never pruned; delete the folder to reclaim the space.
"""

from __future__ import annotations

import marshal
import os
import zlib
from typing import Any, Callable

from .. import __version__

# Part of every key. Bump it when the code that parses or checks a cached file changes what it
# returns (yamlio's plain data, a schema dialect): the version alone changes only on releases.
_FORMAT = b"llmdctl-cache-1"


def cache_dir() -> str | None:
    configured = os.environ.get("LLMDCTL_CACHE_DIR")
    if configured:
        return None if configured == "off" else configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "llmdctl")


def key(*parts: bytes) -> str:
    """A digest of the parts (and of llmdctl's version): CRC-32 and Adler-32 over the framed bytes.

    Not cryptographic: it tells an edited catalog file from the one cached before, which is all a
    local cache needs, and zlib loads in a fraction of the time hashlib's OpenSSL start-up takes.
    """
    crc, adler, total = 0, 1, 0
    for part in (_FORMAT, __version__.encode(), *parts):
        framed = len(part).to_bytes(8, "big") + part
        crc, adler, total = zlib.crc32(framed, crc), zlib.adler32(framed, adler), total + len(framed)
    return f"{crc:08x}{adler:08x}{total:012x}"


def cached(digest: str, compute: Callable[[], Any]) -> Any:
    """``compute()``'s result (plain data only), from the cache when an entry for ``digest`` exists."""
    folder = cache_dir()
    entry = os.path.join(folder, digest[:2], f"{digest}.marshal") if folder else None
    if entry is not None:
        try:
            with open(entry, "rb") as f:
                return marshal.loads(f.read())
        except (OSError, EOFError, ValueError, TypeError):
            pass
    value = compute()
    if entry is not None:
        try:
            os.makedirs(os.path.dirname(entry), exist_ok=True)
            tmp = f"{entry}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(marshal.dumps(value))
            os.replace(tmp, entry)
        except (OSError, ValueError):
            pass
    return value
