"""Stable identities: a digest of JSON-able values and the identity of a file on disk.

Shared by the runtime data path (clip keys) and the models (encoder fingerprints of the feature
cache), which must agree on what "the same file" means without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def digest(obj: Any) -> str:
    """Hex sha256 of ``obj`` rendered as canonical JSON (sorted keys; other objects as ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_identity(path: str | Path, content_hash: bool = False) -> dict[str, Any]:
    """Resolved path, size and mtime (ns) of a file; with ``content_hash`` also the sha256 of its bytes."""
    path = Path(path).resolve()
    st = path.stat()
    ident: dict[str, Any] = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if content_hash:
        content = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                content.update(block)
        ident["sha256"] = content.hexdigest()
    return ident
