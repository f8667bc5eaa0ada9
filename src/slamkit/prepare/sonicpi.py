"""Sonic Pi's samples as a small non-speech captioning corpus (task ``aac``), offline.

Debian's ``sonic-pi-samples`` (asset ``sonic-pi-samples``) ships 165 FLAC clips at 44.1 kHz whose
file names say what they are: a category prefix (``tabla_``, ``drum_``, ``bd_``, ``loop_`` …) and
words (``drum_tom_hi_soft``, ``elec_hollow_kick``, ``bass_voxy_hit_c``). There are no human
captions, so :func:`prepare_sonicpi` writes *templated* ones, built only from what is honest to
know about a clip:

- the category and the descriptive words of its name (``hi`` → "high", ``filt`` → "filtered");
  words that are proper names (``bd_zome``, ``loop_garzul``) are dropped, tabla strokes keep their
  syllable (``tabla_na_o`` → "na-o"), a trailing note letter becomes "in C";
- two measured properties of the audio as the model hears it (mono, 16 kHz): a duration class
  ("very short" < 0.3 s ≤ "short" < 1.5 s ≤ "medium-length" < 4 s ≤ "long") and, when clear,
  a loudness class (RMS ≥ -12 dBFS "loud", ≤ -25 dBFS "quiet").

Each clip gets five differently worded references (``references``, what the caption metrics score
against); ``target`` is the first. The split is deterministic and stratified by category: in each
category a seeded hash orders the clips and the first ``round(n * test_fraction)`` (at least one,
never all) go to test. Two model-free baselines are written next to the manifests as hypothesis
files that ``slamkit score`` reads like a decoder's output:

- ``baseline_majority.hyp.jsonl``: the most frequent training caption for every test clip;
- ``baseline_nearest.hyp.jsonl``: the caption of the training clip nearest in duration and
  loudness (what the measured words alone give, with no idea of the sound's category).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slamkit.data.audio import load_audio
from slamkit.data.manifest import read_manifest, write_manifest
from slamkit.prepare.base import CORPORA, CorpusError
from slamkit.data.tasks import TASKS
from slamkit.registry import Registry

logger = logging.getLogger(__name__)

ASSET = "sonic-pi-samples"
SAMPLES_DIR = "usr/share/sonic-pi/samples"  # below the Debian package's extraction root
SAMPLE_RATE = 16000  # loudness is measured on what a 16 kHz encoder hears
TASK = "aac"

# Duration classes: (upper bound in seconds, words); the last class has no bound.
DURATION_CLASSES = ((0.3, "very short"), (1.5, "short"), (4.0, "medium-length"), (math.inf, "long"))
LOUD_DBFS = -12.0
QUIET_DBFS = -25.0


@dataclass(frozen=True)
class Category:
    """A file-name prefix and how its clips are described.

    Attributes:
        prefix: the name prefix (``drum`` in ``drum_tom_hi_soft``).
        label: the category in a word or two ("drum kit"), for "a short drum kit sample".
        phrases: two noun-phrase templates; ``{d}`` takes the clip's descriptive words.
        default: the words used for ``{d}`` when the name has none.
        syllables: the name's words are syllables (tabla strokes): kept as written, joined by "-".
    """

    prefix: str
    label: str
    phrases: tuple[str, str]
    default: str = ""
    syllables: bool = False


CATEGORIES: Registry[Category] = Registry("Sonic Pi sample category")

for _cat in (
    Category("ambi", "ambient", ("ambient {d}", "atmospheric {d}"), "sound"),
    Category("bass", "bass", ("{d} bass sound", "{d} synth bass note")),
    Category("bd", "bass drum", ("{d} bass drum hit", "{d} kick drum")),
    Category("drum", "drum kit", ("{d} from a drum kit", "acoustic drum kit {d}"), "sound"),
    Category("elec", "electronic", ("electronic {d} sound", "synthesised {d}"), "tone"),
    Category("glitch", "glitch", ("glitchy {d} sound", "{d} glitch effect")),
    Category("guit", "guitar", ("guitar {d}", "{d} played on a guitar"), "notes"),
    Category("loop", "loop", ("{d} loop", "repeating {d} pattern"), "rhythm"),
    Category("mehackit", "sound effect", ("{d} sound effect", "electronic {d} noise")),
    Category("misc", "sound effect", ("{d} sound", "{d} sound effect")),
    Category("perc", "percussion", ("{d} percussion sound", "percussive {d}"), "hit"),
    Category("sn", "snare drum", ("{d} snare drum hit", "{d} snare")),
    Category("tabla", "tabla", ("tabla {d} stroke", "{d} stroke played on a tabla"), syllables=True),
    Category("vinyl", "vinyl", ("vinyl {d}", "{d} of a vinyl record"), "noise"),
):
    CATEGORIES.register(_cat.prefix)(_cat)

# Name words that describe the sound. Anything else (proper names such as ``zome``, ``garzul``)
# is dropped: a caption says only what the name tells a listener.
ADJECTIVES = {
    "soft": "soft", "hard": "hard", "hi": "high", "lo": "low", "mid": "mid", "dark": "dark",
    "haunted": "haunted", "thick": "thick", "heavy": "heavy", "closed": "closed", "open": "open",
    "fat": "fat", "pure": "pure", "hollow": "hollow", "filt": "filtered", "fuzz": "fuzzy",
    "full": "full", "weirdo": "weird", "electric": "electric", "industrial": "industrial",
    "boom": "booming", "woodsy": "woody", "voxy": "vocal", "generic": "plain", "trance": "trance",
    "dub": "dub", "haus": "house", "klub": "club", "808": "808", "dnb": "drum and bass",
}
NOUNS = {
    "choir": "choir", "woosh": "whoosh", "drone": "drone", "glass": "glass", "hum": "hum",
    "rub": "rub", "piano": "piano", "buzz": "buzz", "swoosh": "swoosh", "drop": "drop",
    "hit": "hit", "cowbell": "cowbell", "cymbal": "cymbal", "pedal": "pedal", "kick": "kick",
    "roll": "roll", "snare": "snare", "splash": "splash", "tom": "tom", "beep": "beep",
    "bell": "bell", "blip": "blip", "blup": "bloop", "bong": "bong", "chime": "chime",
    "flip": "flip", "ping": "ping", "plip": "plip", "pop": "pop", "tick": "tick",
    "triangle": "triangle", "twang": "twang", "wood": "wood block", "perc": "percussion",
    "robot": "robot", "fifths": "chord of fifths", "slide": "slide", "em9": "E minor ninth chord",
    "harmonics": "harmonic", "3d": "3D", "printer": "printer", "amen": "Amen break",
    "breakbeat": "breakbeat", "tabla": "tabla", "phone": "phone", "burp": "burp",
    "cineboom": "cinematic boom", "crow": "crow", "door": "door", "impact": "impact",
    "snap": "snap", "swash": "swash", "till": "cash till", "backspin": "backspin", "hiss": "hiss",
    "rewind": "rewind", "scratch": "scratch", "bass": "bass",
}
# Words whose meaning depends on the category.
CATEGORY_NOUNS = {("drum", "bass"): "bass drum", ("drum", "roll"): "drum roll"}
NOTE_LETTERS = frozenset("abcdefg")


class SonicPiError(CorpusError):
    """The samples folder is missing or holds no usable sample; the message names the folder."""


@dataclass(frozen=True)
class Sample:
    """One clip with what its captions are built from."""

    name: str  # file name without suffix, e.g. ``drum_tom_hi_soft``
    path: Path
    category: Category
    details: str  # descriptive words, e.g. "high soft tom" ("" when the name has none)
    note: str | None  # "C" for ``bass_hard_c``
    duration: float  # seconds
    rms_dbfs: float  # RMS level of the mono 16 kHz signal, dB re full scale


# --------------------------------------------------------------------------- names


def _clean_word(word: str) -> str:
    """A name word without its take number (``blip2`` → ``blip``); bare numbers are dropped."""
    if word in ADJECTIVES or word in NOUNS:
        return word  # "808", "em9", "3d"
    return "" if word.isdigit() else re.sub(r"(?<=[a-z])\d+$", "", word)


def describe_name(name: str) -> tuple[Category, str, str | None]:
    """``(category, descriptive words, note)`` from a sample's file name (no suffix).

    Raises:
        KeyError: the prefix is not a registered category (the message lists them).
    """
    prefix, *raw = name.lower().split("_")
    category = CATEGORIES.get(prefix)
    words = [w for w in map(_clean_word, raw) if w]
    notes = [] if category.syllables else [w for w in words if w in NOTE_LETTERS]
    note = notes[0].upper() if notes else None
    words = [w for w in words if w not in notes]
    if category.syllables:
        return category, "-".join(words), note
    adjectives = [ADJECTIVES[w] for w in words if w in ADJECTIVES]
    nouns = [CATEGORY_NOUNS.get((prefix, w), NOUNS.get(w, "")) for w in words if w not in ADJECTIVES]
    return category, " ".join(adjectives + [n for n in nouns if n]), note


# --------------------------------------------------------------------------- captions


def duration_class(seconds: float) -> str:
    """The duration words of a clip ("very short", "short", "medium-length", "long")."""
    return next(words for bound, words in DURATION_CLASSES if seconds < bound)


def loudness_class(rms_dbfs: float) -> str | None:
    """"loud", "quiet", or ``None`` in between (no claim is made there)."""
    if rms_dbfs >= LOUD_DBFS:
        return "loud"
    if rms_dbfs <= QUIET_DBFS:
        return "quiet"
    return None


def seconds_words(seconds: float) -> str:
    """A spoken length: "a fraction of a second", "about one second", "about 7 seconds"."""
    whole = round(seconds)
    if seconds < 0.75:
        return "a fraction of a second"
    return "about one second" if whole == 1 else f"about {whole} seconds"


def _article(phrase: str) -> str:
    """``phrase`` with "a" or "an" in front (by the sound of its first word)."""
    first = phrase.split()[0]
    vowel = first[0].lower() in "aeiou8" or (len(first) == 1 and first in "AEFHILMNORSX")
    return f"{'an' if vowel else 'a'} {phrase}"


def _join(*words: str | None) -> str:
    return " ".join(w for w in words if w)


def _phrase(sample: Sample, which: int) -> str:
    """Noun phrase ``which`` (0 or 1) of the sample's category, filled with its words and note."""
    details = sample.details or sample.category.default
    text = " ".join(sample.category.phrases[which].format(d=details).split())
    return _join(text, f"in {sample.note}" if sample.note else None)


def captions(sample: Sample) -> list[str]:
    """Five templated captions of ``sample``; the first is the training target."""
    dur = duration_class(sample.duration)
    loud = loudness_class(sample.rms_dbfs)
    first, second = _phrase(sample, 0), _phrase(sample, 1)
    texts = [
        _article(_join(dur, loud, first)),
        _article(second) + f" lasting {seconds_words(sample.duration)}",
        _article(_join(loud, first)) + f" that is {dur}",
        _join("the", loud, "sound of", _article(second)),
        _article(dur) + (f", {loud} " if loud else " ") + f"{sample.category.label} sample",
    ]
    return [text[0].upper() + text[1:] + "." for text in texts]


# --------------------------------------------------------------------------- files


def find_samples_dir(root: str | Path) -> Path:
    """The folder of ``*.flac`` samples: ``root`` itself or ``root/usr/share/sonic-pi/samples``."""
    root = Path(root)
    if not root.is_dir():
        raise SonicPiError(f"{root}: no such folder (pass the Sonic Pi samples folder or the extraction root "
                           f"of the Debian package, or install it: `slamkit assets install {ASSET}`)")
    for folder in (root, root / SAMPLES_DIR):
        if folder.is_dir() and any(folder.glob("*.flac")):
            return folder
    raise SonicPiError(f"{root}: no *.flac samples in it or in {root / SAMPLES_DIR}")


def measure(path: Path) -> tuple[float, float]:
    """``(duration in seconds, RMS in dBFS)`` of ``path`` as mono 16 kHz audio."""
    wave = load_audio(path, SAMPLE_RATE)
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    return round(wave.size / SAMPLE_RATE, 3), round(20.0 * math.log10(max(rms, 1e-10)), 2)


def read_samples(folder: Path) -> tuple[list[Sample], list[str]]:
    """Every ``*.flac`` of ``folder`` with a known prefix, by name; plus the names skipped."""
    samples, skipped = [], []
    for path in sorted(folder.glob("*.flac")):
        try:
            category, details, note = describe_name(path.stem)
        except KeyError:
            skipped.append(path.name)
            continue
        duration, rms = measure(path)
        samples.append(Sample(path.stem, path.absolute(), category, details, note, duration, rms))
    if not samples:
        raise SonicPiError(f"{folder}: none of its .flac files has a known prefix ({', '.join(CATEGORIES.names())})")
    return samples, skipped


def split_by_category(samples: Sequence[Sample], test_fraction: float, seed: int) -> dict[str, str]:
    """``{name: "train" | "test"}``, stratified by category (see the module docs)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    by_category: dict[str, list[str]] = {}
    for sample in samples:
        by_category.setdefault(sample.category.prefix, []).append(sample.name)
    split = {}
    for names in by_category.values():
        order = sorted(names, key=lambda n: hashlib.sha1(f"{seed}:{n}".encode()).hexdigest())
        n_test = min(max(round(len(order) * test_fraction), 1), len(order) - 1)
        split.update({name: "test" if i < n_test else "train" for i, name in enumerate(order)})
    return split


def sample_record(sample: Sample, split: str) -> dict[str, Any]:
    """The manifest line of one clip (target: the first caption; all five in ``references``)."""
    refs = captions(sample)
    return {"key": f"sonicpi-{sample.name}", "source": str(sample.path), "target": refs[0], "task": TASK,
            "duration": sample.duration, "references": refs, "split": split,
            "category": sample.category.prefix, "rms_dbfs": sample.rms_dbfs}


def _per_caption(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per reference (key ``<clip>#<n>``): more varied targets for training."""
    return [{**rec, "key": f"{rec['key']}#{n}", "target": ref}
            for rec in records for n, ref in enumerate(rec["references"], start=1)]


# --------------------------------------------------------------------------- baselines


def majority_caption(train: Sequence[dict[str, Any]]) -> str:
    """The most frequent training target (ties: the alphabetically first)."""
    counts = Counter(rec["target"] for rec in train)
    return min(counts, key=lambda text: (-counts[text], text))


def nearest_caption(test: dict[str, Any], train: Sequence[dict[str, Any]]) -> str:
    """The target of the training clip nearest in log duration and loudness (6 dB ~ a doubling)."""
    def distance(rec: dict[str, Any]) -> tuple[float, str]:
        octaves = abs(math.log2(max(rec["duration"], 1e-3) / max(test["duration"], 1e-3)))
        return octaves + abs(rec["rms_dbfs"] - test["rms_dbfs"]) / 6.0, rec["key"]

    return min(train, key=distance)["target"]


def write_baselines(train: Sequence[dict[str, Any]], test_manifest: Path, out_dir: Path) -> dict[str, str]:
    """Hypothesis files of the two baselines for ``test_manifest``, in ``slamkit decode``'s format."""
    task = TASKS.get(TASK)
    tests = read_manifest(test_manifest)
    common = majority_caption(train)
    pickers: dict[str, Callable[[dict[str, Any]], str]] = {
        "majority": lambda clip: common, "nearest": lambda clip: nearest_caption(clip, train)}
    outputs = {}
    for name, pick in pickers.items():
        path = out_dir / f"baseline_{name}.hyp.jsonl"
        lines = [task.hypothesis_line(rec, pick({"duration": rec.duration, **rec.extra})) for rec in tests]
        write_manifest(lines, path)
        outputs[name] = str(path)
    return outputs


# --------------------------------------------------------------------------- entry point


def _locate(root: str | Path | None, install: bool) -> Path:
    if root is not None:
        return find_samples_dir(root)
    from slamkit.assets import asset_path

    return find_samples_dir(asset_path(ASSET, install=install))


@CORPORA.register("sonicpi")
def prepare_sonicpi(out_dir: str | Path, root: str | Path | None = None, install: bool = False,
                    test_fraction: float = 0.2, seed: int = 0, per_caption: bool = False) -> dict[str, Any]:
    """Write ``train.jsonl`` and ``test.jsonl`` (task ``aac``) and the baseline hypotheses into ``out_dir``.

    Args:
        out_dir: output folder (created).
        root: the samples folder, or the Debian package's extraction root; default: the installed
            ``sonic-pi-samples`` asset (``install`` fetches it when missing).
        test_fraction: share of each category held out for testing.
        seed: changes which clips of a category are held out.
        per_caption: training manifest with one line per reference (5 per clip) instead of one
            per clip; the test manifest always has one line per clip.

    Returns:
        Summary: manifests, clips per split, clips per category, minutes, skipped files, baselines.
    """
    folder = _locate(root, install)
    samples, skipped = read_samples(folder)
    split = split_by_category(samples, test_fraction, seed)
    records = [sample_record(s, split[s.name]) for s in samples]
    train = [r for r in records if r["split"] == "train"]
    test = [r for r in records if r["split"] == "test"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(_per_caption(train) if per_caption else train, out / "train.jsonl")
    write_manifest(test, out / "test.jsonl")
    baselines = write_baselines(train, out / "test.jsonl", out)
    for name in skipped:
        logger.warning("sonicpi: skipped %s (unknown prefix)", folder / name)
    return {"folder": str(folder), "train": str(out / "train.jsonl"), "test": str(out / "test.jsonl"),
            "clips": {"train": len(train), "test": len(test)},
            "categories": dict(sorted(Counter(s.category.prefix for s in samples).items())),
            "minutes": round(sum(s.duration for s in samples) / 60, 2), "skipped": skipped, "baselines": baselines}
