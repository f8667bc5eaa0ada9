"""Pre-rendered augmentation of training audio: the kinds, the ``--augment`` spec, per-clip seeds, the chain.

Augmented copies are written once as ordinary WAV files with their own manifest lines
(:mod:`slamkit.prepare.augment_run`), so the feature cache, the sampler and the dataset treat them as any
other clip. This module decides what happens to one clip:

- :data:`AUGMENTS` registers the kinds (``speed``, ``room``, ``noise``, ``telephone``); each has a
  ``stage`` that fixes the order they combine in (speaker → room → background → channel);
- :func:`parse_spec` reads ``"room:0.3,noise:0.5,telephone:0.1,speed:0.3"``: the probability that each
  kind is applied to a copy (a kind without ``:P`` has probability 1);
- :func:`parse_params` reads ``--param KIND.NAME=VALUE`` items into each kind's params dataclass
  (:func:`params_help` lists them);
- :func:`augment_clip` runs the chain on one copy. Every kind draws from its own generator seeded by
  ``(run seed, clip key, copy index, kind)``: the output of a clip does not depend on the worker count, on
  the other clips, or on which other kinds are in the spec.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slamkit.prepare.augment_base import AugmentSetupError, Clip, SetupContext, derive_seed
from slamkit.prepare.augment_kinds import (
    RoomParams,
    SpeedParams,
    TelephoneParams,
    apply_room,
    apply_speed,
    apply_telephone,
    setup_room,
    setup_speed,
    setup_telephone,
)
from slamkit.prepare.augment_noise import NoiseParams, apply_noise, setup_noise
from slamkit.registry import Registry

__all__ = ["AUGMENTS", "DEFAULT_SPEC", "AugmentKind", "AugmentSetupError", "AugmentSpecError", "Clip", "Plan", "SetupContext",
           "augment_clip", "build_plan", "params_help", "parse_params", "parse_spec"]

DEFAULT_SPEC = "room:0.3,noise:0.5,telephone:0.1,speed:0.3"
# An augmented copy whose peak passes this is scaled down as a whole (16-bit PCM clips at 1.0).
PEAK = 0.99

Apply = Callable[[np.ndarray, np.random.Generator, Any, Clip], tuple[np.ndarray, dict[str, Any]]]


class AugmentSpecError(ValueError):
    """A bad ``--augment`` spec or ``--param`` item; the message names the option and the item."""


@dataclass(frozen=True)
class AugmentKind:
    """One kind of augmentation.

    Attributes:
        stage: position in the chain (lower runs first).
        summary: one line for help texts.
        params: frozen dataclass of the kind's options (fields made with :func:`~slamkit.prepare.augment_base.option`).
        setup: ``(params, ctx) -> state``, once per run in the parent process; the state is picklable.
        apply: ``(wave [t] float32 16 kHz, rng, state, clip) -> (wave [t'], info)``, pure.
    """

    stage: int
    summary: str
    params: type
    setup: Callable[[Any, SetupContext], Any]
    apply: Apply


AUGMENTS: Registry[AugmentKind] = Registry("augmentation kind")
AUGMENTS.register("speed")(AugmentKind(10, "speed perturbation (tempo and pitch, Kaldi-style resampling)", SpeedParams, setup_speed, apply_speed))
AUGMENTS.register("room")(AugmentKind(20, "simulated room reverberation (pyroomacoustics shoebox RIR)", RoomParams, setup_room, apply_room))
AUGMENTS.register("noise")(AugmentKind(30, "additive noise at a drawn SNR (music on hold, Sonic Pi, babble, coloured)", NoiseParams,
                                       setup_noise, apply_noise))
AUGMENTS.register("telephone")(AugmentKind(40, "telephone channel: 8 kHz, 300-3400 Hz, a speech codec", TelephoneParams,
                                           setup_telephone, apply_telephone))


def _known() -> str:
    return ", ".join(AUGMENTS.names())


def _probability(item: str, text: str, option: str) -> float:
    """The probability of one spec item (``"0.3"``), a finite number in ``[0, 1]``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise AugmentSpecError(f"{option}: {item!r}: the probability must be a number in [0, 1], got {text!r}")
    return value


def parse_spec(text: str, option: str = "--augment") -> dict[str, float]:
    """``"room:0.3,noise:0.5"`` → ``{kind: probability}`` in chain order (``"room"`` alone means ``room:1``).

    Raises:
        AugmentSpecError: empty spec, unknown kind, a repeated kind, or a probability that is not a
            number in [0, 1]; the message names ``option`` and the item.
    """
    probabilities: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise AugmentSpecError(f"{option}: empty item in {text!r} (expected KIND:P,KIND:P with kinds {_known()})")
        name, sep, prob = (s.strip() for s in item.partition(":"))
        if name not in AUGMENTS:
            raise AugmentSpecError(f"{option}: unknown kind {name!r} in {item!r} (known: {_known()})")
        if name in probabilities:
            raise AugmentSpecError(f"{option}: kind {name!r} is given twice in {text!r}")
        probabilities[name] = _probability(item, prob, option) if sep else 1.0
    return {name: probabilities[name] for name in sorted(probabilities, key=lambda n: AUGMENTS.get(n).stage)}


def _param_fields(kind: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(AUGMENTS.get(kind).params)}


def parse_params(items: Sequence[str], kinds: Sequence[str], option: str = "--param") -> dict[str, Any]:
    """``["room.rt60=0.3,0.9", …]`` → ``{kind: params}`` for every kind in ``kinds`` (defaults where not set).

    Raises:
        AugmentSpecError: not ``KIND.NAME=VALUE``, a kind not in the spec, an unknown name, or a value its
            parser rejects; the message names ``option`` and the item.
    """
    values: dict[str, dict[str, Any]] = {kind: {} for kind in kinds}
    for item in items:
        target, sep, text = item.partition("=")
        kind, dot, name = target.strip().partition(".")
        if not sep or not dot or not name:
            raise AugmentSpecError(f"{option}: expected KIND.NAME=VALUE, got {item!r}")
        if kind not in values:
            where = "unknown kind" if kind not in AUGMENTS else "kind not in --augment"
            raise AugmentSpecError(f"{option}: {item!r}: {where} {kind!r} (in the spec: {', '.join(kinds) or 'none'})")
        fields = _param_fields(kind)
        if name not in fields:
            raise AugmentSpecError(f"{option}: {item!r}: {kind} has no parameter {name!r} (known: {', '.join(fields)})")
        try:
            values[kind][name] = fields[name].metadata["parse"](text.strip())
        except ValueError as err:
            raise AugmentSpecError(f"{option} {kind}.{name}: {err}") from None
    return {kind: AUGMENTS.get(kind).params(**given) for kind, given in values.items()}


def _format_default(value: Any) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, tuple) else str(value)


def params_help() -> str:
    """Every kind and its ``--param`` options with defaults, one per line (for ``--help`` and the docs)."""
    lines = []
    for name in sorted(AUGMENTS.names(), key=lambda n: AUGMENTS.get(n).stage):
        lines.append(f"{name}: {AUGMENTS.get(name).summary}")
        for field in dataclasses.fields(AUGMENTS.get(name).params):
            lines.append(f"  {name}.{field.name}={_format_default(field.default)}  {field.metadata['doc']}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Step:
    """One kind of the chain, resolved: its name, probability, registered kind and run state."""

    name: str
    probability: float
    kind: AugmentKind
    state: Any


@dataclass(frozen=True)
class Plan:
    """What a run applies: the seed and the resolved steps in chain order (small and picklable)."""

    seed: int
    steps: tuple[Step, ...]

    @property
    def spec(self) -> str:
        """The spec in canonical form (chain order, every probability written)."""
        return ",".join(f"{s.name}:{s.probability:g}" for s in self.steps)


def build_plan(spec: str | Mapping[str, float], params: Sequence[str] = (), ctx: SetupContext | None = None) -> Plan:
    """Parse ``spec`` and ``params`` and set every kind up for a run (``ctx``: seed, manifest, install).

    Raises:
        AugmentSpecError: a bad spec or param item.
        AugmentSetupError: a kind cannot run here (missing library, asset or codec).
    """
    ctx = ctx or SetupContext(seed=0)
    probabilities = parse_spec(spec) if isinstance(spec, str) else parse_spec(",".join(f"{k}:{v}" for k, v in spec.items()))
    resolved = parse_params(params, list(probabilities))
    steps = tuple(Step(name, p, AUGMENTS.get(name), AUGMENTS.get(name).setup(resolved[name], ctx)) for name, p in probabilities.items())
    return Plan(ctx.seed, steps)


def limit_peak(wave: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """``wave`` scaled down as a whole when its peak passes ``peak`` (never scaled up)."""
    top = float(np.max(np.abs(wave))) if wave.size else 0.0
    return (wave * (peak / top)).astype(np.float32) if top > peak else wave


def augment_clip(wave: np.ndarray, plan: Plan, clip: Clip, copy: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Copy ``copy`` of ``clip``: each step applied with its probability, in chain order.

    Args:
        wave: ``[t]`` float32 mono 16 kHz.
        plan: from :func:`build_plan`.
        clip: the clip's position and key (the seed and babble's "not this clip" come from it).
        copy: copy index (1, 2, …); each copy draws anew.

    Returns:
        ``(wave [t'], info)``: ``info`` maps each applied kind to what it drew (empty: nothing applied, and
        ``wave`` is the input). ``t'`` differs from ``t`` only under ``speed``.
    """
    info: dict[str, Any] = {}
    for step in plan.steps:
        rng = np.random.default_rng(derive_seed(plan.seed, clip.key, copy, step.name))
        if rng.random() < step.probability:
            wave, info[step.name] = step.kind.apply(wave, rng, step.state, clip)
    return (limit_peak(wave), info) if info else (wave, info)
