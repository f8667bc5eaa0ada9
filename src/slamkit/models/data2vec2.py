"""data2vec 2.0 pieces shared by the ``eat`` and ``emotion2vec`` encoders.

Both models are fairseq ``data2vec_multi`` networks: one modality encoder
(``modality_encoders.{IMAGE|AUDIO}``: local encoder, positions, optional extra tokens, a
``context_encoder`` with a LayerNorm and "prenet" blocks) followed by the shared transformer
``blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``. This module holds what both
use:

- :func:`read_fairseq_checkpoint`: the released ``.pt`` (a dict with ``cfg`` — or the older
  ``args`` — and ``model``) read **without fairseq**. It is first tried with
  ``torch.load(weights_only=True)``; fairseq pickles its config as omegaconf ``DictConfig``
  objects (and enums of the user module), which that refuses, so the fallback is an unpickler
  that resolves only the globals torch's weights-only loader allows (tensor rebuilding, storages,
  dtypes, ``OrderedDict`` …) and turns every other class it names into an inert stand-in
  (:class:`_Stub`) — no foreign code is imported or run. :func:`plain` then turns the
  stand-ins into dicts, lists and values.
- :class:`Block` (post-LN ``AltBlock``: attention with a fused ``qkv`` linear, ``proj``, timm
  ``Mlp``), :class:`ContextEncoder` and :class:`Data2VecModel` (``modality_encoders`` +
  ``blocks``), whose ``state_dict`` keys are the official ones.
- :func:`drop_ignored`: removes the pre-training-only keys each encoder lists explicitly
  (EMA teacher, decoders, heads); anything else unexpected still fails in
  :func:`~slamkit.models.checkpoints.check_state_dict`.

Attention runs through ``F.scaled_dot_product_attention`` with one additive mask that holds the
ALiBi bias (emotion2vec) and ``-inf`` on padded keys. Dropout, drop-path and layer drop of
pre-training are left out (identity at inference). Only post-LN models
(``layer_norm_first: false``) exist among the released checkpoints; a pre-LN config is refused
with a clear error rather than guessed at.
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import logging
import pickle
import re
import types
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slamkit.models.checkpoints import CheckpointError
from slamkit.models.encoders import LayerSelector

log = logging.getLogger(__name__)

FAIRSEQ_FORMAT = "fairseq data2vec 2.0 .pt (cfg + model)"

# ---------------------------------------------------------------------------------------------
# Reading fairseq checkpoints without fairseq
# ---------------------------------------------------------------------------------------------


class _Stub:
    """Inert stand-in for a class a pickle names but we never import (omegaconf, fairseq, enums …).

    It records what the pickle gives it: constructor arguments (``args``), ``state`` (BUILD),
    and items appended or set (for list / dict subclasses). :func:`plain` reads them back.
    """

    origin: str = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Stub":
        obj = object.__new__(cls)
        obj.args, obj.state, obj.items, obj.entries = args, None, [], {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.entries[key] = value

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self.items.extend(values)

    def __repr__(self) -> str:
        return f"<stub {self.origin}>"


_STUBS: dict[tuple[str, str], type[_Stub]] = {}


def _stub_class(module: str, name: str) -> type[_Stub]:
    key = (module, name)
    if key not in _STUBS:
        _STUBS[key] = type(name, (_Stub,), {"origin": f"{module}.{name}"})
    return _STUBS[key]


def _stub_reconstructor(cls: Any, base: Any, state: Any) -> _Stub:
    """``copyreg._reconstructor`` (protocol 0/1 objects) without calling ``base``: a stub."""
    obj = (cls if isinstance(cls, type) and issubclass(cls, _Stub) else _stub_class("copyreg", "object"))()
    obj.state = state
    return obj


def _allowed_globals() -> dict[str, Any]:
    """The callables a checkpoint may reach: those torch's own weights-only loader allows (tensor and
    parameter rebuilding, storages, dtypes, ``OrderedDict`` …), plus a stub-making ``copyreg._reconstructor``."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = dict(_get_allowed_globals())
    except (ImportError, AttributeError):  # private API: keep a minimal list if it ever moves
        rebuild = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state")
        allowed = {f"torch._utils.{n}": getattr(torch._utils, n) for n in rebuild if hasattr(torch._utils, n)}
        allowed.update({"collections.OrderedDict": collections.OrderedDict, "torch.Size": torch.Size, "_codecs.encode": codecs.encode})
    allowed["copyreg._reconstructor"] = _stub_reconstructor
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :func:`_allowed_globals`; every other name becomes a stub class (never imported)."""

    allowed: dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        if not _RestrictedUnpickler.allowed:
            _RestrictedUnpickler.allowed = _allowed_globals()
        found = self.allowed.get(f"{module}.{name}")
        return found if found is not None else _stub_class(module, name)


def _restricted_pickle_module() -> types.ModuleType:
    module = types.ModuleType("slamkit_restricted_pickle")
    module.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
    module.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()  # type: ignore[attr-defined]
    return module


def load_torch_file(path: Path, what: str) -> Any:
    """``torch.load`` of ``path`` on the CPU: weights-only first, else through the restricted unpickler.

    Raises:
        CheckpointError: the file cannot be unpickled at all (names the file and ``what``).
    """
    mmap = zipfile.is_zipfile(path)  # torch's zip format (every torch.save since 1.6) can be mapped
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        log.info("%s: not loadable weights-only (%s); reading it with stubs for foreign classes", path, str(err).splitlines()[0])
    except Exception as err:  # garbled files raise several types
        raise CheckpointError(f"{path}: cannot be read as {what}: {err}") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module(), mmap=mmap)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot be read as {what} (even with omegaconf/fairseq classes stubbed): {err}") from err


def plain(obj: Any, depth: int = 0) -> Any:
    """Stubs (omegaconf ``DictConfig``/nodes, ``Namespace``, enums …) -> plain dicts, lists and values.

    omegaconf containers keep their content under ``_content`` and value nodes under ``_val``; an
    enum member is rebuilt from its value, so ``Modality.AUDIO`` becomes its number.
    """
    if depth > 64:
        raise CheckpointError("config nested deeper than 64 levels (a cycle?)")
    if isinstance(obj, _Stub):
        return plain(_stub_value(obj), depth + 1)
    if isinstance(obj, Mapping):
        return {k if isinstance(k, str) else str(plain(k, depth + 1)): plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, depth + 1) for v in obj]
    return obj


def _stub_value(obj: _Stub) -> Any:
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):  # (state, slotstate)
        state = {**(state[0] or {}), **state[1]}
    if isinstance(state, dict):
        for key in ("_content", "_val"):  # omegaconf container / value node
            if key in state:
                return state[key]
        return state
    if obj.entries:
        return obj.entries
    if obj.items:
        return obj.items
    if len(obj.args) == 1:  # enum member (or any one-argument reduce)
        return obj.args[0]
    return None


def read_fairseq_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config (plain nested dict) and raw ``model`` state of a fairseq checkpoint ``.pt``.

    Returns:
        ``(cfg, state)``: ``cfg`` has the fairseq sections (``model``, ``task`` …) — from ``cfg``,
        or converted from an argparse ``args``; ``state`` is ``ckpt["model"]`` as stored (may
        hold non-tensor entries such as ``_ema``; callers drop them with :func:`drop_ignored`).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: not a dict with ``model`` and ``cfg``/``args`` (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} is not a file")
    ckpt = load_torch_file(path, FAIRSEQ_FORMAT)
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping):
        keys = list(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a {FAIRSEQ_FORMAT} checkpoint: expected a dict with 'model' (a state dict) and 'cfg', found {keys}")
    cfg = plain(ckpt.get("cfg"))
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("model"), Mapping):
        args = plain(ckpt.get("args"))
        if isinstance(args, Mapping) and args:
            cfg = {"model": dict(args), "task": dict(args)}
        else:
            raise CheckpointError(f"{path}: {FAIRSEQ_FORMAT} checkpoint without a usable 'cfg' (with a 'model' section) or 'args'")
    return dict(cfg), dict(ckpt["model"])


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
