"""On-disk cache of frozen-encoder outputs: one safetensors file per clip.

A frozen encoder gives the same features for a clip every epoch and every run, and on a CPU it
can cost as much as the rest of a training step. The cache stores each clip's valid frames
``[t_e, d]`` once and serves them afterwards.

Two keys make a stale entry unreachable rather than detected:

- the **clip key** (:func:`slamkit.data.dataset.clip_key`, computed by the dataset, which knows nothing of the model)
  covers the audio file's identity (resolved path, size, mtime in ns; optionally a hash of its
  bytes), the crop (offset, duration) and the sample rate it is loaded at;
- the **encoder fingerprint** (:func:`encoder_fingerprint`) covers every encoder setting that
  changes its output, the identity of the weight files it reads, a digest of the weights actually
  in memory (:func:`weights_digest`, which catches weights loaded from a checkpoint) and
  :data:`CACHE_VERSION`. Each fingerprint is a folder of its own.

Files are sharded by the first two hex digits of the clip key (256 folders), written to a temp
file and renamed (a killed writer leaves no half file under the real name), and a file that
cannot be read back (or holds the wrong number of frames) is treated as a miss, reported
with a warning, and rewritten.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from slamkit.config import EncoderConfig
from slamkit.fingerprint import digest, file_identity

log = logging.getLogger(__name__)

# Bump whenever encoder code changes what it outputs for the same config and weights.
CACHE_VERSION = 1

_DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Settings that do not change a frozen encoder's output.
_NOT_OUTPUT = ("trainable", "cache_dir", "cache_dtype")

Encode = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _weights_identity(path: str | None) -> list[dict[str, Any]]:
    """Identity of the weight file, or of every file in the weight folder (recursively, sorted)."""
    if not path:
        return []
    root = Path(path).expanduser()
    if root.is_file():
        return [file_identity(root)]
    if not root.is_dir():
        return [{"path": str(root), "missing": True}]
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [file_identity(p) for p in files]


def encoder_fingerprint(cfg: EncoderConfig) -> str:
    """Hex digest of every encoder setting that changes its output, plus its weight files.

    All config fields count except those that cannot change a frozen encoder's output (so a field
    added later invalidates old entries rather than being silently ignored); ``init_seed`` counts
    only for random weights (``path`` null).
    """
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_OUTPUT}
    if cfg.path:
        settings.pop("init_seed", None)
        settings["path"] = str(Path(cfg.path).expanduser().resolve())
    return digest({"version": CACHE_VERSION, "settings": settings, "weights": _weights_identity(cfg.path)})


@torch.no_grad()
def weights_digest(module: nn.Module) -> str:
    """Digest of the weights in memory: per tensor its shape, sum and sum of squares (float64).

    One pass over the parameters (about a second for a 600 M-parameter encoder); it catches
    weights that came from somewhere other than the configured files, e.g. a fine-tuned checkpoint.
    """
    parts = []
    for name, t in sorted(module.state_dict().items()):
        x = t.detach().double()
        parts.append((name, list(t.shape), float(x.sum()), float((x * x).sum())))
    return digest(parts)


class FeatureCache:
    """Per-clip encoder features under ``root/<fingerprint>/<key[:2]>/<key>.safetensors``.

    Args:
        root: cache folder (shared by any number of encoders and corpora).
        fingerprint: encoder fingerprint; entries of other fingerprints are never read.
        dtype: storage precision, ``float16`` (half the disk) or ``float32`` (bit-exact).
    """

    def __init__(self, root: str | Path, fingerprint: str, dtype: Literal["float32", "float16"] = "float16") -> None:
        self.dir = Path(root).expanduser() / fingerprint
        self.fingerprint = fingerprint
        self.dtype = _DTYPES[dtype]
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    @classmethod
    def for_encoder(cls, root: str | Path, config_fingerprint: str, encoder: nn.Module,
                    dtype: Literal["float32", "float16"] = "float16") -> "FeatureCache":
        """The cache of ``encoder``: its config fingerprint joined with the digest of its weights."""
        return cls(root, digest([config_fingerprint, weights_digest(encoder)])[:32], dtype)

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.safetensors"

    def get(self, key: str, frames: int | None = None) -> Tensor | None:
        """The stored ``[t_e, d]`` features of ``key`` (storage dtype, CPU), or None (a miss).

        With ``frames``, an entry of another length counts as corrupt (a miss).
        """
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        feats = self._decode(data, path)
        if feats is not None and frames is not None and feats.shape[0] != frames:
            log.warning("feature cache: %s holds %d frames, expected %d; recomputing it", path, feats.shape[0], frames)
            feats = None
        if feats is None:
            self.corrupt += 1
            self.misses += 1
            return None
        self.hits += 1
        return feats

    def _decode(self, data: bytes, path: Path) -> Tensor | None:
        try:
            feats = st_load(data).get("feats")
        except (SafetensorError, ValueError, RuntimeError) as exc:
            log.warning("feature cache: unreadable %s (%s); recomputing it", path, exc)
            return None
        if feats is None or feats.ndim != 2:
            log.warning("feature cache: %s holds no [frames, dim] 'feats' tensor; recomputing it", path)
            return None
        return feats

    def put(self, key: str, feats: Tensor) -> None:
        """Store the valid frames ``feats [t_e, d]`` of ``key`` (atomic: temp file + rename)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = st_save({"feats": feats.detach().to("cpu", self.dtype).contiguous()}, metadata={"key": key})
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def stats(self) -> dict[str, int]:
        """Counters since creation: ``cache_hits``, ``cache_misses`` (corrupt files included), ``cache_corrupt``."""
        return {"cache_hits": self.hits, "cache_misses": self.misses, "cache_corrupt": self.corrupt}


def cached_encode(
    cache: FeatureCache, encode: Encode, audio: Tensor, lengths: Tensor, keys: list[str | None], frames: Tensor,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Encoder features for a batch, read from ``cache`` where present, computed for the rest.

    Args:
        cache: the feature cache.
        encode: the (frozen) encoder, ``(audio [n, t], lengths [n]) -> (feats [n, t_e, d], frames [n])``.
        audio: ``[b, t]`` zero-padded waveforms.
        lengths: ``[b]`` valid samples.
        keys: clip key per row (None: not cacheable, always computed).
        frames: ``[b]`` valid output frames per row (the encoder's ``output_lengths``).
        dtype: dtype of the returned features (the encoder's).

    Returns:
        ``feats [b, max(frames), d]`` (zero past each row's frames) and ``frames [b]``, as the
        encoder would return them. Computed rows pass through the storage dtype, so a clip's
        features are the same whether they were computed in this call or read back later.
    """
    rows: list[Tensor | None] = [None if key is None else cache.get(key, int(n)) for key, n in zip(keys, frames.tolist())]
    missing = [i for i, row in enumerate(rows) if row is None]
    if missing:
        for i, feats in zip(missing, _encode_rows(encode, audio, lengths, missing)):
            if keys[i] is not None:
                cache.put(keys[i], feats)
            rows[i] = feats.to(cache.dtype) if keys[i] is not None else feats
    return _assemble(rows, frames, audio.device, dtype), frames


def _encode_rows(encode: Encode, audio: Tensor, lengths: Tensor, rows: list[int]) -> list[Tensor]:
    """Run the encoder on a sub-batch (trimmed to its longest clip); each row's valid frames ``[t_e_i, d]``."""
    index = torch.tensor(rows, device=audio.device)
    sub_lengths = lengths.to(audio.device)[index]
    sub_audio = audio[index, : int(sub_lengths.max())]
    feats, sub_frames = encode(sub_audio, sub_lengths)
    return [feats[j, : int(n)] for j, n in enumerate(sub_frames.tolist())]


def _assemble(rows: list[Tensor], frames: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Rows ``[t_e_i, d]`` -> zero-padded ``[b, max(frames), d]`` of ``dtype`` on ``device``."""
    out = torch.zeros(len(rows), int(frames.max()), rows[0].shape[-1], dtype=dtype, device=device)
    for i, row in enumerate(rows):
        out[i, : row.shape[0]] = row.to(device=device, dtype=dtype)
    return out
