"""data2vec 2.0 pieces shared by the ``eat`` and ``emotion2vec`` encoders.

Both models are fairseq ``data2vec_multi`` networks: one modality encoder
(``modality_encoders.{IMAGE|AUDIO}``: local encoder, positions, optional extra tokens, a
``context_encoder`` with a LayerNorm and "prenet" blocks) followed by the shared transformer
``blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``. This module holds what both
use:

- config readers for the ``cfg.model`` section (:func:`cfg_value`, :func:`cfg_section`,
  :class:`TransformerConfig`); the checkpoint itself is read by
  :func:`~slamkit.models.encoders.data2vec2.fairseq.read_fairseq_checkpoint`.
- :class:`Block` (post-LN ``AltBlock``: attention with a fused ``qkv`` linear, ``proj``, timm
  ``Mlp``), :class:`ContextEncoder` and :class:`Data2VecModel` (``modality_encoders`` +
  ``blocks``), whose ``state_dict`` keys are the official ones.
- :func:`drop_ignored`: removes the pre-training-only keys each encoder lists explicitly
  (EMA teacher, decoders, heads); anything else unexpected still fails in
  :func:`~slamkit.models.weights.check_state_dict`.

Attention runs through ``F.scaled_dot_product_attention`` with one additive mask that holds the
ALiBi bias (emotion2vec) and ``-inf`` on padded keys. Dropout, drop-path and layer drop of
pre-training are left out (identity at inference). Only post-LN models
(``layer_norm_first: false``) exist among the released checkpoints; a pre-LN config is refused
with a clear error rather than guessed at.
"""

from __future__ import annotations

import logging
import dataclasses
import re
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slamkit.models.weights import CheckpointError
from slamkit.models.encoders.base import LayerSelector

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Config fields
# ---------------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([\w.]+)\}")


def cfg_value(section: Mapping[str, Any], key: str, default: Any, root: Mapping[str, Any] | None = None) -> Any:
    """``section[key]`` with simple omegaconf interpolations (``${model.num_heads}``) resolved in ``root``.

    Missing keys, ``None``, ``???`` (omegaconf MISSING) and unresolvable interpolations give ``default``.
    """
    value = section.get(key, default)
    for _ in range(8):
        match = _INTERPOLATION.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            break
        node: Any = root or {}
        for part in match.group(1).split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        value = node
    return default if value is None or value == "???" or (isinstance(value, str) and "${" in value) else value


def coerce(value: Any, like: Any) -> Any:
    """``value`` as the type of ``like`` (YAML configs may hold ``"1e-05"`` or ``"true"`` as strings)."""
    if isinstance(like, bool):
        return value.strip().lower() in ("true", "1", "yes") if isinstance(value, str) else bool(value)
    return type(like)(value) if isinstance(like, (int, float, str)) else value


def cfg_section(cfg: Mapping[str, Any], *path: str, source: str) -> dict[str, Any]:
    """The nested dict at ``path`` in ``cfg``; a :class:`CheckpointError` naming ``source`` if absent."""
    node: Any = cfg
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        raise CheckpointError(f"{source}: config has no '{'.'.join(path)}' section")
    return dict(node)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """The fields of a ``data2vec_multi`` model config that shape its transformer blocks."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    norm_affine: bool = True

    @classmethod
    def from_model_cfg(cls, model: Mapping[str, Any], source: str) -> "TransformerConfig":
        """Read from the ``model`` section; refuses pre-LN (``layer_norm_first``) configs."""
        if cfg_value(model, "layer_norm_first", False):
            raise CheckpointError(f"{source}: layer_norm_first=true (pre-LN) data2vec 2.0 models are not supported; the released EAT/emotion2vec models are post-LN")
        defaults = cls()
        root = {"model": model}
        config = cls(**{f.name: coerce(cfg_value(model, f.name, getattr(defaults, f.name), root), getattr(defaults, f.name)) for f in dataclasses.fields(cls)})
        if config.embed_dim % config.num_heads:
            raise CheckpointError(f"{source}: {config.num_heads} heads do not divide embed_dim={config.embed_dim}")
        return config

    def layer_norm(self) -> nn.LayerNorm:
        """A LayerNorm as the model's blocks use (``norm_eps``, ``norm_affine``)."""
        return nn.LayerNorm(self.embed_dim, eps=self.norm_eps, elementwise_affine=self.norm_affine)


# ---------------------------------------------------------------------------------------------
# Transformer blocks (official names: blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2})
# ---------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` linear (LoRA targets: ``qkv``, ``proj``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``x [b, n, d]``, ``mask`` (bool, True = attend, or additive float; broadcast to ``[b, h, n, n]``) -> ``[b, n, d]``."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """timm's ``Mlp``: ``fc1`` -> GELU (erf) -> ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``[b, n, d]`` -> ``[b, n, d]``."""
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """data2vec 2.0's post-LN ``AltBlock``: ``x = norm1(x + attn(x)); x = norm2(x + mlp(x))``."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = config.layer_norm()
        self.attn = Attention(config.embed_dim, config.num_heads)
        self.norm2 = config.layer_norm()
        self.mlp = Mlp(config.embed_dim, int(config.embed_dim * config.mlp_ratio))

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``x [b, n, d]`` -> ``[b, n, d]`` (see :meth:`Attention.forward` for ``mask``)."""
        x = self.norm1(x + self.attn(x, mask))
        return self.norm2(x + self.mlp(x))


class ContextEncoder(nn.Module):
    """The modality encoder's ``context_encoder``: a LayerNorm, then ``prenet_depth`` blocks (post-LN order)."""

    def __init__(self, config: TransformerConfig, prenet_depth: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(config) for _ in range(prenet_depth))
        self.norm = config.layer_norm()

    def forward(self, x: Tensor, masks: Iterable[Tensor | None]) -> Tensor:
        """``x [b, n, d]`` -> ``[b, n, d]``; the ``i``-th of ``masks`` is block ``i``'s attention mask."""
        x = self.norm(x)
        for block, mask in zip(self.blocks, masks):
            x = block(x, mask)
        return x


class Data2VecModel(nn.Module):
    """``modality_encoders.{MODALITY}`` + ``blocks``: the official module tree of ``data2vec_multi``.

    Args:
        modality: ``"IMAGE"`` (EAT) or ``"AUDIO"`` (emotion2vec).
        encoder: the modality encoder (its own ``forward`` is called by the owning encoder).
        config: transformer shape.
    """

    def __init__(self, modality: str, encoder: nn.Module, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.modality = modality
        self.modality_encoders = nn.ModuleDict({modality: encoder})
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))

    @property
    def encoder(self) -> nn.Module:
        """The one modality encoder."""
        return self.modality_encoders[self.modality]

    def run_blocks(self, x: Tensor, masks: Iterable[Tensor | None], selector: LayerSelector) -> Tensor:
        """Hidden state ``[b, n, d]`` chosen by ``selector`` (0 = input of ``blocks[0]``, i = output of block i).

        Blocks above the selected one are not run; a weighted sum runs them all.
        """
        weighted = selector.weights is not None
        upto = len(self.blocks) if weighted else selector.index
        states = [x]
        for block, mask in zip(self.blocks[:upto], masks):
            x = block(x, mask)
            if weighted:
                states.append(x)
        return selector(states) if weighted else x


def attention_mask(valid: Tensor | None, bias: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """The SDPA mask for keys ``valid [b, n]`` (None = all valid) and an additive ``bias [1|b, h, n, n]``.

    Returns None, a bool ``[b, 1, 1, n]`` (True = attend) or the float bias with ``-inf`` at padded keys.
    """
    if bias is None:
        return None if valid is None else valid[:, None, None, :]
    bias = bias.to(dtype)
    return bias if valid is None else bias.masked_fill(~valid[:, None, None, :], float("-inf"))


def drop_ignored(state: Mapping[str, Any], patterns: Sequence[str], source: str) -> dict[str, Tensor]:
    """``state`` without the keys matching any regex in ``patterns`` (pre-training-only parts), as float32.

    Raises:
        CheckpointError: a kept entry is not a tensor.
    """
    ignore = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
    kept: dict[str, Tensor] = {}
    dropped = 0
    for key, value in state.items():
        if ignore is not None and ignore.fullmatch(key):
            dropped += 1
            continue
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{source}: state entry {key!r} is a {type(value).__name__}, not a tensor")
        kept[key] = value.float() if value.is_floating_point() else value
    if dropped:
        log.info("%s: ignored %d pre-training-only entries (EMA teacher, decoders, heads)", source, dropped)
    return kept


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Keys starting with ``prefix`` without it; other keys kept unchanged."""
    return {k.removeprefix(prefix): v for k, v in state.items()}
