"""Data sets of R packages, read without R: the lazy-load database ``data/Rdata.rdx`` + ``Rdata.rdb``.

Debian ships CRAN packages (``r-cran-*``) whose data sets are public-domain books (Jane Austen's
novels in ``janeaustenr``, *Moby Dick* in ``tokenizers``). R stores them in a lazy-load database:
``Rdata.rdx`` is a compressed serialised index ``list(variables = list(name = c(offset, length)),
…)``; each variable is a compressed serialised object at ``offset`` in ``Rdata.rdb``.

Only what those data sets need is read: R's XDR serialisation (format 2 or 3) of ``NULL``,
logical/integer/double/character vectors, lists, pairlists and symbols. A character vector comes
back as ``list[str | None]`` (``None`` is ``NA``), a named list as ``dict``. Anything else (closures,
environments, ALTREP objects, …) raises :class:`RDataError` naming the type.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from pathlib import Path
from typing import Any

# SEXP types (R Internals, "Serialization formats").
_SYMSXP, _LISTSXP, _CHARSXP, _LGLSXP, _INTSXP, _REALSXP, _STRSXP, _VECSXP = 1, 2, 9, 10, 13, 14, 16, 19
_REFSXP, _NILVALUE_SXP, _GLOBALENV_SXP, _EMPTYENV_SXP, _BASEENV_SXP = 255, 254, 253, 242, 241
_HAS_ATTR, _HAS_TAG = 1 << 9, 1 << 10
_LATIN1 = 1 << 2  # in a CHARSXP's levels (flags >> 12)
_TYPE_NAMES = {3: "closure", 4: "environment", 6: "language object", 238: "ALTREP object", 24: "raw vector",
               15: "complex vector", 25: "S4 object", 7: "special", 8: "builtin", 22: "external pointer"}


class RDataError(ValueError):
    """An R data file is missing, damaged, or holds something this reader does not handle."""


def decompress(data: bytes, where: str) -> bytes:
    """``data`` decompressed by its magic bytes (gzip, bzip2, xz), or as is when it has none."""
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:3] == b"BZh":
            return bz2.decompress(data)
        if data[:6] == b"\xfd7zXZ\x00":
            return lzma.decompress(data)
    except (OSError, EOFError, lzma.LZMAError, ValueError) as err:
        raise RDataError(f"{where}: cannot decompress ({err})") from err
    return data


class _Reader:
    """One pass over R's XDR serialisation of a single object."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.pos, self.where = data, 0, where
        self.refs: list[Any] = []

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise RDataError(f"{self.where}: truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def _int(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def header(self) -> None:
        """Check the ``X\\n`` (XDR) header and skip the versions (and, in format 3, the encoding)."""
        magic = self._take(2)
        if magic != b"X\n":
            raise RDataError(f"{self.where}: not R's XDR serialisation (starts with {magic!r})")
        version = self._int()
        self._int(), self._int()  # writer's R version, minimal reader version
        if version == 3:
            self._take(self._int())  # native encoding name
        elif version != 2:
            raise RDataError(f"{self.where}: serialisation format {version} is not supported (2 or 3)")

    def item(self) -> Any:
        """The next serialised object."""
        flags = self._int()
        kind = flags & 0xFF
        if kind in (_NILVALUE_SXP, _GLOBALENV_SXP, _EMPTYENV_SXP, _BASEENV_SXP):
            return None
        if kind == _REFSXP:
            index = (flags >> 8) or self._int()
            return self.refs[index - 1]
        if kind == _SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == _LISTSXP:
            return self._pairlist(flags)
        if kind == _CHARSXP:
            length = self._int()
            if length == -1:
                return None
            return self._take(length).decode("latin-1" if (flags >> 12) & _LATIN1 else "utf-8", errors="replace")
        value = self._vector(kind)
        if flags & _HAS_ATTR:
            attributes = self.item()
            names = attributes.get("names") if isinstance(attributes, dict) else None
            if kind == _VECSXP and names is not None:
                return dict(zip(names, value))
        return value

    def _pairlist(self, flags: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        while True:
            if flags & _HAS_ATTR:
                self.item()
            tag = self.item() if flags & _HAS_TAG else len(out)
            out[tag] = self.item()
            flags = self._int()
            if flags & 0xFF != _LISTSXP:
                self.pos -= 4
                tail = self.item()
                if isinstance(tail, dict):
                    out.update(tail)
                return out

    def _vector(self, kind: int) -> list[Any]:
        if kind not in (_STRSXP, _VECSXP, _LGLSXP, _INTSXP, _REALSXP):
            raise RDataError(f"{self.where}: R type {kind} ({_TYPE_NAMES.get(kind, 'unknown')}) is not supported")
        length = self._int()
        if kind in (_STRSXP, _VECSXP):
            return [self.item() for _ in range(length)]
        if kind in (_LGLSXP, _INTSXP):
            return list(struct.unpack(f">{length}i", self._take(4 * length)))
        return list(struct.unpack(f">{length}d", self._take(8 * length)))


def unserialize(data: bytes, where: str = "<bytes>") -> Any:
    """One object from R's XDR serialisation (``serialize(x, NULL)``, an ``.rds`` file once decompressed)."""
    reader = _Reader(data, where)
    reader.header()
    return reader.item()


def _entry(blob: bytes, compression: int, where: str) -> bytes:
    """One value of an ``.rdb`` file: a 4-byte length, then zlib data (``compressed = 1``) or a type
    byte and bzip2 (``2``), xz (``Z``) or stored (``0``) data (``compressed = 2`` or ``3``)."""
    if len(blob) < 5:
        raise RDataError(f"{where}: entry of {len(blob)} bytes is too short")
    try:
        if compression in (2, 3):
            kind, body = blob[4:5], blob[5:]
            if kind == b"0":
                return body
            if kind == b"2":
                return bz2.decompress(body)
            if kind == b"Z":
                return lzma.decompress(body)
            raise RDataError(f"{where}: unknown compression type {kind!r}")
        return zlib.decompress(blob[4:])
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as err:
        if isinstance(err, RDataError):
            raise
        raise RDataError(f"{where}: cannot decompress ({err})") from err


def lazyload_index(folder: str | Path) -> tuple[dict[str, tuple[int, int]], int]:
    """``({variable: (offset, length)}, compression)`` of the lazy-load database in ``folder``
    (read from its ``Rdata.rdx``; compression 1 is zlib, 2 bzip2, 3 xz)."""
    path = Path(folder) / "Rdata.rdx"
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise RDataError(f"{path}: cannot read ({err.strerror}); an R package's data folder holds "
                         "Rdata.rdx and Rdata.rdb") from err
    index = unserialize(decompress(raw, str(path)), str(path))
    variables = index.get("variables") if isinstance(index, dict) else None
    if not isinstance(variables, dict):
        raise RDataError(f"{path}: no `variables` list in the index")
    compression = int((index.get("compressed") or [1])[0])
    return {str(name): (int(where[0]), int(where[1])) for name, where in variables.items()}, compression


def read_lazyload(folder: str | Path, names: list[str] | None = None) -> dict[str, Any]:
    """The variables ``names`` (default: all, in the index's order) of the lazy-load database in ``folder``."""
    folder = Path(folder)
    index, compression = lazyload_index(folder)
    wanted = list(index) if names is None else names
    missing = [n for n in wanted if n not in index]
    if missing:
        raise RDataError(f"{folder}: no variable {missing} (it has {', '.join(index)})")
    rdb = folder / "Rdata.rdb"
    try:
        data = rdb.read_bytes()
    except OSError as err:
        raise RDataError(f"{rdb}: cannot read ({err.strerror})") from err
    out = {}
    for name in wanted:
        offset, length = index[name]
        where = f"{rdb}[{name}]"
        if offset + length > len(data):
            raise RDataError(f"{where}: entry runs past the end of the file (truncated?)")
        out[name] = unserialize(_entry(data[offset:offset + length], compression, where), where)
    return out


def read_character_vector(folder: str | Path, name: str) -> list[str]:
    """The character vector ``name`` of the lazy-load database in ``folder`` (``NA`` as empty strings)."""
    value = read_lazyload(folder, [name])[name]
    if not isinstance(value, list) or not all(v is None or isinstance(v, str) for v in value):
        raise RDataError(f"{folder}: variable {name!r} is not a character vector")
    return [v or "" for v in value]
