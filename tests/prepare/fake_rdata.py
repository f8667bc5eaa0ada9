"""Writes tiny R lazy-load databases (``Rdata.rdx`` + ``Rdata.rdb``) the way R does, for tests.

Only what :mod:`slamkit.prepare.rdata` reads: character vectors, integer/logical vectors and named
lists, in R's XDR serialisation format 3; the symbol ``names`` is written once and then referred
to (REFSXP), as R does.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from pathlib import Path

HEADER = b"X\n" + struct.pack(">iii", 3, 0x040201, 0x030500) + struct.pack(">i", 5) + b"UTF-8"
_UTF8, _LATIN1 = 1 << 3, 1 << 2


class _Writer:
    def __init__(self) -> None:
        self.symbols: list[str] = []

    def char(self, text: str | None, latin1: bool = False) -> bytes:
        if text is None:
            return struct.pack(">ii", 9, -1)
        data = text.encode("latin-1" if latin1 else "utf-8")
        return struct.pack(">ii", 9 | ((_LATIN1 if latin1 else _UTF8) << 12), len(data)) + data

    def symbol(self, name: str) -> bytes:
        if name in self.symbols:
            return struct.pack(">i", ((self.symbols.index(name) + 1) << 8) | 255)
        self.symbols.append(name)
        return struct.pack(">i", 1) + self.char(name)

    def value(self, value: object) -> bytes:
        if value is None:
            return struct.pack(">i", 254)
        if isinstance(value, tuple) and value and value[0] == "latin1":
            return struct.pack(">ii", 16, 1) + self.char(str(value[1]), latin1=True)
        if isinstance(value, bool):
            return struct.pack(">iii", 10, 1, int(value))
        if isinstance(value, list) and all(isinstance(v, int) for v in value) and value:
            return struct.pack(">ii", 13, len(value)) + struct.pack(f">{len(value)}i", *value)
        if isinstance(value, list):
            return struct.pack(">ii", 16, len(value)) + b"".join(self.char(v) for v in value)
        if isinstance(value, dict):
            body = struct.pack(">ii", 19 | (1 << 9), len(value)) + b"".join(self.value(v) for v in value.values())
            names = struct.pack(">i", 2 | (1 << 10)) + self.symbol("names") + self.value(list(value))
            return body + names + struct.pack(">i", 254)
        raise TypeError(f"cannot write {value!r}")


def serialize(value: object) -> bytes:
    """``value`` in R's XDR serialisation."""
    return HEADER + _Writer().value(value)


def write_lazyload(folder: Path, variables: dict[str, object], compression: int = 1) -> Path:
    """``folder/Rdata.rdx`` + ``Rdata.rdb`` holding ``variables`` (compression 1 zlib, 2 bzip2, 3 xz)."""
    folder.mkdir(parents=True, exist_ok=True)
    rdb, index = b"", {}
    for name, value in variables.items():
        data = serialize(value)
        body = {1: lambda d: zlib.compress(d), 2: lambda d: b"2" + bz2.compress(d), 3: lambda d: b"Z" + lzma.compress(d)}
        blob = struct.pack(">i", len(data)) + body[compression](data)
        index[name] = [len(rdb), len(blob)]
        rdb += blob
    (folder / "Rdata.rdb").write_bytes(rdb)
    rdx = {"variables": index, "references": {}, "compressed": True if compression == 1 else [compression]}
    (folder / "Rdata.rdx").write_bytes(gzip.compress(serialize(rdx)))
    return folder
