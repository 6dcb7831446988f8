"""Small file utilities used everywhere: atomic text writes, file hashes, JSON-safe values.

Each exists once: run directories, records, reports, exports and tuning results all
write through `atomic_write_text` (temporary name in the same folder, fsync, rename),
so a reader never sees half a file and a killed writer leaves the old one.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any


def atomic_write_text(path: str, text: str) -> None:
    """Writes `text` to `path` atomically (a per-process temporary name, fsync, rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sha256_file(path: str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def json_safe(obj: Any):
    """`obj` as plain JSON values: NumPy scalars become numbers, other unknowns strings.

    Non-finite floats become None, so the result always serialises as strict JSON.
    """

    def default(o):
        return o.item() if hasattr(o, "item") else str(o)

    value = json.loads(json.dumps(obj, default=default))
    return _finite(value)


def _finite(value):
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
