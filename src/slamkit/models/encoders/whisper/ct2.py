"""Reader for faster-whisper / CTranslate2 ``model.bin`` Whisper checkpoints (the ``ctranslate2`` format).

fp32, fp16, bf16, int8 or int16 weights, whole or split into ``model.bin.part1``, ``model.bin.part2`` …
Read by our own binary reader; only the encoder's bytes are read. Gives the float32 encoder state
dict in Hugging Face ``WhisperEncoder`` naming.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from transformers import WhisperConfig

from slamkit.models.encoders.whisper.formats import WhisperCheckpointFormat, register_format, whisper_encoder_config
from slamkit.models.weights import CheckpointError

log = logging.getLogger(__name__)


_CT2_BINARY_VERSION = 6
_CT2_WHISPER_REVISION = 3
_CT2_DTYPES = {0: torch.float32, 1: torch.int8, 2: torch.int16, 3: torch.int32, 4: torch.float16, 5: torch.bfloat16}
_CT2_PART = re.compile(r"model\.bin\.part(\d+)")

# Module paths (CTranslate2 -> HF) and parameter names; the fused self_attention/linear_0 is split apart.
_CT2_GLOBAL = {"conv1": "conv1", "conv2": "conv2", "position_encodings": "embed_positions", "layer_norm": "layer_norm"}
_CT2_LAYER = {
    "self_attention/layer_norm": "self_attn_layer_norm",
    "self_attention/linear_1": "self_attn.out_proj",
    "ffn/layer_norm": "final_layer_norm",
    "ffn/linear_0": "fc1",
    "ffn/linear_1": "fc2",
}
_CT2_PARAM = {"weight": "weight", "bias": "bias", "gamma": "weight", "beta": "bias", "encodings": "weight"}
_CT2_LAYER_NAME = re.compile(r"layer_(\d+)/(.+)")


@dataclass(frozen=True)
class _Ct2Variable:
    """Where one variable's bytes lie in a CTranslate2 model: ``dims`` of ``dtype`` at byte ``offset``."""

    name: str
    dims: tuple[int, ...]
    dtype: torch.dtype
    offset: int
    nbytes: int


class _PartStream:
    """Read-only random access to files laid end to end (one model split into parts)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.label = " + ".join(str(p) for p in paths)
        sizes = [p.stat().st_size for p in paths]  # FileNotFoundError names a missing part
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 (closed in close())
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self.size = sum(sizes)
        self.pos = 0

    def read(self, n: int) -> bytearray:
        """Exactly ``n`` bytes from the current position (possibly spanning parts)."""
        if n > self.size - self.pos:
            raise CheckpointError(f"{self.label}: truncated: {n} bytes wanted at byte {self.pos} of {self.size}")
        out = bytearray(n)
        view, got = memoryview(out), 0
        while got < n:
            i = bisect.bisect_right(self._starts, self.pos) - 1
            part = self._files[i]
            part.seek(self.pos - self._starts[i])
            k = part.readinto(view[got:])  # stops at the end of the part; the loop moves on to the next
            if not k:
                raise CheckpointError(f"{self.label}: part {i + 1} is shorter than when it was opened")
            got, self.pos = got + k, self.pos + k
        return out

    def unpack(self, fmt: str) -> tuple[int, ...]:
        """Little-endian ``struct`` values at the current position."""
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        """A CTranslate2 string: ``uint16`` length, then that many bytes ending in NUL."""
        start = self.pos
        (length,) = self.unpack("H")
        raw = self.read(length)
        if not length or raw[-1] != 0:
            raise CheckpointError(f"{self.label}: not a CTranslate2 model (bad string at byte {start})")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{self.label}: not a CTranslate2 model (bad string at byte {start})") from None

    def skip(self, n: int) -> None:
        if n > self.size - self.pos:
            raise CheckpointError(f"{self.label}: truncated: {n} bytes of data at byte {self.pos} of {self.size}")
        self.pos += n

    def close(self) -> None:
        for f in self._files:
            f.close()


@dataclass
class _Ct2Index:
    """The table of contents of a CTranslate2 model: spec, variables (no data read yet), aliases."""

    spec: str
    revision: int
    variables: dict[str, _Ct2Variable]
    aliases: dict[str, str]  # alias name -> variable name


def _scan_ct2(stream: _PartStream) -> _Ct2Index:
    """Read the header, every variable's metadata and the aliases, skipping over the data."""
    (version,) = stream.unpack("I")
    if version != _CT2_BINARY_VERSION:
        raise CheckpointError(f"{stream.label}: CTranslate2 binary version {version} is not supported (this reader knows {_CT2_BINARY_VERSION})")
    spec = stream.string()
    (revision,) = stream.unpack("I")
    (count,) = stream.unpack("I")
    variables = {}
    for _ in range(count):
        var = _scan_variable(stream)
        variables[var.name] = var
    (n_aliases,) = stream.unpack("I")
    aliases = {stream.string(): stream.string() for _ in range(n_aliases)}
    if stream.pos != stream.size:
        raise CheckpointError(f"{stream.label}: {stream.size - stream.pos} unexpected bytes after the aliases (garbled or wrongly joined parts)")
    return _Ct2Index(spec, revision, variables, aliases)


def _scan_variable(stream: _PartStream) -> _Ct2Variable:
    name = stream.string()
    (rank,) = stream.unpack("B")
    dims = stream.unpack("I" * rank)
    (dtype_id,) = stream.unpack("B")
    (nbytes,) = stream.unpack("I")
    dtype = _CT2_DTYPES.get(dtype_id)
    if dtype is None or nbytes != math.prod(dims) * dtype.itemsize:
        raise CheckpointError(f"{stream.label}: variable {name!r} has dtype id {dtype_id} and {nbytes} bytes for dims {list(dims)} (garbled file)")
    var = _Ct2Variable(name, tuple(dims), dtype, stream.pos, nbytes)
    stream.skip(nbytes)
    return var


def _load_ct2_tensor(stream: _PartStream, var: _Ct2Variable) -> Tensor:
    """The raw tensor of ``var`` (its stored dtype, ``var.dims``)."""
    stream.pos = var.offset
    if not var.nbytes:
        return torch.empty(var.dims, dtype=var.dtype)
    return torch.frombuffer(stream.read(var.nbytes), dtype=var.dtype).reshape(var.dims)


def _ct2_tensors(stream: _PartStream, index: _Ct2Index, prefix: str) -> dict[str, Tensor]:
    """Variables (and aliases) whose name starts with ``prefix``, aliases resolved; raw dtypes.

    An alias may point outside ``prefix`` (CTranslate2 keeps the alphabetically first of
    identical variables, often a decoder one), so targets are read wherever they lie.
    """
    names = [n for n in [*index.variables, *index.aliases] if n.startswith(prefix)]
    loaded: dict[str, Tensor] = {}
    out = {}
    for name in names:
        target = name
        for _ in range(len(index.aliases) + 1):
            if target not in index.aliases:
                break
            target = index.aliases[target]
        if target not in index.variables:
            raise CheckpointError(f"{stream.label}: alias {name!r} points to the missing variable {target!r}")
        if target not in loaded:
            loaded[target] = _load_ct2_tensor(stream, index.variables[target])
        out[name] = loaded[target]
    return out


def _dequantize(tensors: dict[str, Tensor], label: str) -> dict[str, Tensor]:
    """Float32 tensors: int8 / int16 weights divided by their ``…_scale`` (per row or scalar); ints kept.

    CTranslate2 quantises as ``q = round(w * scale)`` with ``scale = 127 / max|row|`` (int8) or
    one ``2**10 / max|w|`` (int16), so ``w = q / scale``.
    """
    out = {}
    for name, t in tensors.items():
        if name.endswith("_scale"):
            continue
        if name + "_zero" in tensors:
            raise CheckpointError(f"{label}: {name!r} uses zero-point (AWQ) quantisation, which this reader does not support")
        scale = tensors.get(name + "_scale")
        if scale is not None:
            if scale.numel() not in (1, t.shape[0] if t.dim() else 1):
                raise CheckpointError(f"{label}: {name!r} has {scale.numel()} scales for shape {list(t.shape)}")
            scale = scale.float()
            t = t.float() / (scale.reshape(-1, *[1] * (t.dim() - 1)) if scale.dim() else scale)
        out[name] = t.float() if t.is_floating_point() else t
    return out


def ctranslate2_parts(directory: Path) -> list[Path]:
    """``model.bin`` of ``directory``, or its ``model.bin.part1``, ``part2`` … in order (checked contiguous)."""
    if (directory / "model.bin").is_file():
        return [directory / "model.bin"]
    numbered = {int(m.group(1)): p for p in directory.iterdir() if (m := _CT2_PART.fullmatch(p.name))}
    if not numbered:
        raise CheckpointError(f"{directory}: no model.bin or model.bin.part1, part2, …")
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise CheckpointError(f"{directory}: model.bin parts {sorted(numbered)} are not numbered 1..{len(numbered)}")
    return [numbered[i] for i in sorted(numbered)]


def read_ctranslate2_whisper(parts: Sequence[str | Path], config_json: str | Path | None = None) -> tuple[WhisperConfig, dict[str, Tensor]]:
    """Whisper encoder of a CTranslate2 model given as one ``model.bin`` or its parts, in order.

    Args:
        parts: ``[model.bin]`` or ``[model.bin.part1, model.bin.part2, …]`` (may lie in different
            directories); their concatenation is the model.
        config_json: the model's ``config.json``, consulted for the head count only when the model
            does not store ``encoder/num_heads``; default: the one beside the first part.

    Returns:
        The config and the float32 encoder state dict in HF naming (checked by the caller, or
        call :func:`check_encoder_state`).
    """
    paths = [Path(p) for p in parts]
    if not paths:
        raise ValueError("read_ctranslate2_whisper: no model file or parts given")
    stream = _PartStream(paths)
    try:
        index = _scan_ct2(stream)
        if index.spec != "WhisperSpec":
            raise CheckpointError(f"{stream.label}: a CTranslate2 {index.spec!r} model, not a Whisper one")
        if index.revision > _CT2_WHISPER_REVISION:
            log.warning("%s: WhisperSpec revision %d is newer than the %d this reader was checked on", stream.label, index.revision, _CT2_WHISPER_REVISION)
        raw = _dequantize(_ct2_tensors(stream, index, "encoder/"), stream.label)
    finally:
        stream.close()
    json_path = Path(config_json) if config_json is not None else paths[0].parent / "config.json"
    heads = raw.pop("encoder/num_heads", None)
    state = _rename_ct2(raw)
    config = _config_from_state(state, _ct2_heads(heads, json_path, state), stream.label)
    return config, state


def _ct2_heads(stored: Tensor | None, config_json: Path, state: dict[str, Tensor]) -> int:
    """Heads from the model's ``encoder/num_heads``, else its config.json, else d_model / 64."""
    if stored is not None:
        return int(stored)
    if config_json.is_file():
        try:
            meta = json.loads(config_json.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{config_json}: not valid JSON ({err})") from None
        for key in ("encoder_attention_heads", "num_encoder_heads", "n_audio_head", "num_heads"):
            if isinstance(meta.get(key), int):
                return meta[key]
    d_model = state["conv1.weight"].shape[0] if "conv1.weight" in state else 64
    log.warning("no encoder head count stored; assuming d_model / 64 = %d (every Whisper size uses 64-dim heads)", d_model // 64)
    return max(d_model // 64, 1)


def _rename_ct2(raw: dict[str, Tensor]) -> dict[str, Tensor]:
    """CTranslate2 ``encoder/…`` names -> HF names; the fused q|k|v is split. Unknown names are kept."""
    state: dict[str, Tensor] = {}
    for name, t in raw.items():
        module, _, param = name.removeprefix("encoder/").rpartition("/")
        layer = _CT2_LAYER_NAME.fullmatch(module)
        if module in _CT2_GLOBAL and param in _CT2_PARAM:
            state[f"{_CT2_GLOBAL[module]}.{_CT2_PARAM[param]}"] = t
        elif layer and layer.group(2) in _CT2_LAYER and param in _CT2_PARAM:
            state[f"layers.{layer.group(1)}.{_CT2_LAYER[layer.group(2)]}.{_CT2_PARAM[param]}"] = t
        elif layer and layer.group(2) == "self_attention/linear_0" and param in ("weight", "bias"):
            state.update(_split_qkv(f"layers.{layer.group(1)}.self_attn", param, t))
        else:
            state[name] = t  # reported as unexpected by check_encoder_state
    return state


def _split_qkv(prefix: str, kind: str, fused: Tensor) -> dict[str, Tensor]:
    """Fused ``[3d, d]`` weight or ``[3d]`` bias -> q, k, v parts.

    Whisper's key projection has no bias; the converter stores zeros there. Dropping it is exact
    even when it is not zero: a key bias adds ``q · b_k`` to every logit of a query alike, which
    the softmax cancels.
    """
    q, k, v = fused.chunk(3, dim=0)
    if kind == "bias":
        return {f"{prefix}.q_proj.bias": q, f"{prefix}.v_proj.bias": v}
    return {f"{prefix}.q_proj.{kind}": q, f"{prefix}.k_proj.{kind}": k, f"{prefix}.v_proj.{kind}": v}


def _config_from_state(state: dict[str, Tensor], heads: int, source: str) -> WhisperConfig:
    """The encoder's config read off its tensors' shapes (conv1 ``[d, n_mels, 3]``, fc1 ``[ffn, d]`` …)."""
    needed = ("conv1.weight", "embed_positions.weight", "layers.0.fc1.weight")
    if any(k not in state for k in needed):
        missing = [k for k in needed if k not in state]
        raise CheckpointError(f"{source}: no Whisper encoder found (missing {missing})")
    if state["conv1.weight"].dim() != 3 or state["layers.0.fc1.weight"].dim() != 2:
        raise CheckpointError(f"{source}: conv1 / fc1 weights have the wrong rank (garbled file)")
    d_model, n_mels, _ = state["conv1.weight"].shape
    layers = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    ffn = state["layers.0.fc1.weight"].shape[0]
    return whisper_encoder_config(d_model, layers, heads, ffn, n_mels, state["embed_positions.weight"].shape[0])


def _looks_like_ct2(path: Path) -> bool:
    """The file starts with a CTranslate2 header: binary version, then a ``…Spec`` string."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
        version, length = struct.unpack_from("<IH", head)
        return 1 <= version <= 100 and head[6 : 6 + length].rstrip(b"\0").endswith(b"Spec")
    except (OSError, struct.error):
        return False


def is_ctranslate2_model(path: Path) -> bool:
    """``path`` is a CTranslate2 model: a directory with ``model.bin`` (or parts), or such a ``.bin`` file."""
    if path.is_dir():
        return (path / "model.bin").is_file() or any(_CT2_PART.fullmatch(p.name) for p in path.iterdir())
    return path.suffix == ".bin" and _looks_like_ct2(path)


def _read_ct2(path: Path) -> tuple[WhisperConfig, dict[str, Tensor]]:
    parts = ctranslate2_parts(path) if path.is_dir() else [path]
    return read_ctranslate2_whisper(parts)


register_format(
    WhisperCheckpointFormat(
        "ctranslate2",
        "a faster-whisper/CTranslate2 directory with model.bin (or model.bin.part1, part2, …), or such a model.bin file",
        is_ctranslate2_model,
        _read_ct2,
    )
)
