"""Reading fairseq data2vec 2.0 checkpoints **without fairseq** (used by ``eat`` and ``emotion2vec``).

:func:`read_fairseq_checkpoint` reads the released ``.pt`` (a dict with ``cfg`` — or the older
``args`` — and ``model``). It is first tried with ``torch.load(weights_only=True)``; fairseq
pickles its config as omegaconf ``DictConfig`` objects (and enums of the user module), which that
refuses, so the fallback is an unpickler that resolves only the globals torch's weights-only
loader allows (tensor rebuilding, storages, dtypes, ``OrderedDict`` …) and turns every other class
it names into an inert stand-in (:class:`_Stub`) — no foreign code is imported or run.
:func:`plain` then turns the stand-ins into dicts, lists and values.
"""


from __future__ import annotations

import logging
import codecs
import collections
import pickle
import types
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
import yaml

from slamkit.models.weights import CheckpointError

log = logging.getLogger(__name__)


FAIRSEQ_FORMAT = "fairseq data2vec 2.0 .pt (cfg + model)"


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


def read_funasr_dir(path: Path, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``model_conf`` of ``config.yaml`` and the state dict of ``model.pt`` in a FunASR model directory
    (emotion2vec's other layout); ``what`` names the format in errors."""
    config_file, weights = path / "config.yaml", path / "model.pt"
    if not config_file.is_file() or not weights.is_file():
        raise CheckpointError(f"{path}: not a {what}: a FunASR directory needs config.yaml and model.pt")
    try:
        conf = yaml.safe_load(config_file.read_text())
    except yaml.YAMLError as err:
        raise CheckpointError(f"{config_file}: not valid YAML ({err})") from None
    if not isinstance(conf, Mapping) or not isinstance(conf.get("model_conf"), Mapping):
        raise CheckpointError(f"{config_file}: no 'model_conf' section (not a FunASR emotion2vec config)")
    state = load_torch_file(weights, what)
    for key in ("state_dict", "model_state_dict", "model"):  # FunASR's loader unwraps these
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{weights}: not a state dict ({type(state).__name__})")
    return dict(conf["model_conf"]), dict(state)
