"""Which TTS engine speaks each utterance: a list of engine names, or names with weights.

Two forms, from the command line (``--engines``) or Python (``engines=``):

- plain: ``flite espeak-ng`` (or ``flite,espeak-ng``): each utterance draws one name with equal
  chance; a name listed twice counts twice. This draws exactly as before weights existed, so
  corpora made with the plain form keep their voices.
- weighted: ``piper:0.6,flite:0.2,espeak-ng:0.2`` (or a mapping ``{"piper": 0.6, …}``): relative
  weights (they need not sum to 1); weight 0 leaves an engine out. Every name needs a weight.

Draws use the utterance's own seeded generator, so which engine speaks which line depends on the
seed alone, never on the number of workers. A bad spec raises :class:`EngineSpecError` naming the
option and the offending item.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from slamkit.prepare.voices import TTS_ENGINES


class EngineSpecError(ValueError, KeyError):
    """A bad ``--engines`` item (unknown engine, bad or negative weight); a ValueError and, as an
    unknown name always was, a KeyError. The message names the option and the item."""

    __str__ = ValueError.__str__  # KeyError's would quote the whole message


@dataclass(frozen=True)
class EngineMix:
    """Engine names and their weights (``None``: the plain form, equal chances)."""

    names: tuple[str, ...]
    weights: tuple[float, ...] | None = None

    def draw(self, rng: random.Random) -> str:
        """One engine name, from ``rng`` (one draw of it)."""
        if self.weights is None:
            return rng.choice(self.names)
        return rng.choices(self.names, weights=self.weights)[0]

    def shares(self) -> dict[str, float]:
        """Each engine's expected share of the utterances."""
        weights = self.weights or (1.0,) * len(self.names)
        total = sum(weights)
        out: dict[str, float] = {}
        for name, weight in zip(self.names, weights):
            out[name] = out.get(name, 0.0) + weight / total
        return out


def _items(specs: str | Iterable[str]) -> list[str]:
    """Every comma-separated item of ``specs``, stripped, empty ones dropped."""
    parts = [specs] if isinstance(specs, str) else list(specs)
    return [item.strip() for part in parts for item in str(part).split(",") if item.strip()]


def _known(name: str, item: str, option: str) -> str:
    """``name`` if it is a registered engine, else an EngineSpecError listing the registered ones."""
    if name not in TTS_ENGINES:
        raise EngineSpecError(f"{option} {item!r}: unknown TTS engine {name!r}; registered: "
                              f"{', '.join(TTS_ENGINES.names())}")
    return name


def _weight(text: str, item: str, option: str) -> float:
    """The weight in ``NAME:WEIGHT``: a finite number >= 0."""
    try:
        weight = float(text)
    except ValueError:
        raise EngineSpecError(f"{option} {item!r}: weight {text!r} is not a number (write NAME:WEIGHT, "
                              f"e.g. piper:0.6)") from None
    if not math.isfinite(weight) or weight < 0:
        raise EngineSpecError(f"{option} {item!r}: the weight must be a finite number >= 0")
    return weight


def _weighted(pairs: Sequence[tuple[str, float]], option: str) -> EngineMix:
    """The weighted form: no name twice, positive total; weight-0 engines left out."""
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise EngineSpecError(f"{option}: engine {name!r} is given a weight twice")
        seen.add(name)
    kept = [(name, weight) for name, weight in pairs if weight > 0]
    if not kept:
        raise EngineSpecError(f"{option}: every weight is 0; give at least one engine a positive weight")
    return EngineMix(tuple(n for n, _ in kept), tuple(w for _, w in kept))


def parse_engines(specs: str | Iterable[str] | Mapping[str, float] | EngineMix, option: str = "engines") -> EngineMix:
    """The :class:`EngineMix` of ``specs`` (see the module docstring for the forms)."""
    if isinstance(specs, EngineMix):
        return specs
    if isinstance(specs, Mapping):
        pairs = [(_known(str(n), str(n), option), _weight(str(w), f"{n}:{w}", option)) for n, w in specs.items()]
        return _weighted(pairs, option)
    items = _items(specs)
    if not items:
        raise EngineSpecError(f"{option}: no engine given; registered: {', '.join(TTS_ENGINES.names())}")
    weighted = [":" in item for item in items]
    if any(weighted) and not all(weighted):
        raise EngineSpecError(f"{option} {','.join(items)!r}: give every engine a weight (NAME:WEIGHT) or none")
    if not any(weighted):
        return EngineMix(tuple(_known(item, item, option) for item in items))
    pairs = []
    for item in items:
        name, _, weight = item.partition(":")
        pairs.append((_known(name.strip(), item, option), _weight(weight.strip(), item, option)))
    return _weighted(pairs, option)
