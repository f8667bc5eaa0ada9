"""The long-form test's recording decoded one by one and long-form, for any run (docs/longform.md).

    python benchmarks/longform_gap.py RUN [--segments vad utterance] [--merge-pause 0.6 …] [--out result.json]

``tests/infer/test_longform_real.py`` requires the shipped reference adapter's long-form WER on its 185 s
recording (the 5 LibriVox clips, then Asterisk prompts of 1.5–6 s spread over the set, 1 s pauses) to be no more
than 3 points above the same clips decoded one by one. This measures that gap for another run (``RUN``: a run
folder, or ``reference``) before it is shipped: greedy, segments of at most 6 s, the run's other decoding
settings (its ``decode.merge_pause`` included), as the test decodes. Prints one line per method (WER and errors
by kind, Whisper's normaliser) and writes them as JSON to ``--out``. ``--merge-pause P`` adds a ``vad`` decode
with ``decode.merge_pause=P`` (row ``vad<=P``; ``none``: join across any pause, row ``vad<=any``) for each value.
Needs the ``asterisk-sounds``, ``pocketsphinx-testdata``, ``whisper-tiny.en`` and ``smollm2-135m-instruct-gguf``
assets (``make reference``) and silero-vad.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from slamkit.data.audio import load_audio
from slamkit.data.manifest import Record, read_manifest
from slamkit.eval.metrics import word_error

SR = 16_000
LONG_SECONDS = 185.0  # as tests/infer/test_longform_real.py
WINDOW = 6.0


def gap_recording(folder: Path) -> list[Record]:
    """The test's clips, in order: the LibriVox clips, then Asterisk prompts until the joined length reaches 185 s."""
    from slamkit.prepare import prepare_asterisk, prepare_librivox

    prepare_librivox(folder)
    prepare_asterisk(folder)
    picked = read_manifest(folder / "librivox.jsonl")
    prompts = [r for r in read_manifest(folder / "asterisk.jsonl") if 1.5 <= (r.duration or 0.0) <= 6.0]
    total = sum(r.duration or 0.0 for r in picked) + len(picked) - 1
    for rec in prompts[:: max(1, len(prompts) // 60)]:
        if total >= LONG_SECONDS:
            break
        picked.append(rec)
        total += (rec.duration or 0.0) + 1.0
    return picked


def measure(run: Path, segments: list[str], folder: Path, merge_pauses: tuple[float | None, ...] = ()) -> dict[str, dict]:
    """WER one by one, with each ``decode.segment`` method (the run's ``decode.merge_pause``) and with ``vad`` at
    each of ``merge_pauses`` on the joined recording."""
    from slamkit.infer.decode import decode_manifest, load_run

    clips = gap_recording(folder)
    pause = np.zeros(SR, dtype=np.float32)
    audio = np.concatenate([p for r in clips for p in (load_audio(r.source, SR, r.offset, r.duration), pause)][:-1])
    sf.write(str(folder / "long.wav"), audio, SR)
    (folder / "clips.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in clips))
    reference = " ".join(r.target for r in clips)
    (folder / "long.jsonl").write_text(json.dumps({"key": "long", "source": str(folder / "long.wav"), "target": reference}) + "\n")
    cfg, model = load_run(run, ["decode.beam_size=1"])
    decode_manifest(cfg, model, folder / "clips.jsonl", folder / "clips.hyp.jsonl")
    rows = [json.loads(line) for line in (folder / "clips.hyp.jsonl").read_text().splitlines()]
    result = {"one_by_one": word_error([r["hyp"] for r in rows], [r["ref"] for r in rows])}
    own = cfg.decode.merge_pause
    variants = [(m if own is None or m != "vad" else f"vad<={own:g}", m, own) for m in segments]
    variants += [(f"vad<={'any' if p is None else format(p, 'g')}", "vad", p) for p in merge_pauses]
    for i, (name, method, pause) in enumerate(variants):
        long_cfg = dataclasses.replace(cfg, decode=dataclasses.replace(cfg.decode, max_segment_seconds=WINDOW, segment=method,
                                                                       merge_pause=pause))
        decode_manifest(long_cfg, model, folder / "long.jsonl", folder / f"long-{i}.hyp.jsonl")
        (row,) = [json.loads(line) for line in (folder / f"long-{i}.hyp.jsonl").read_text().splitlines()]
        result[name] = word_error([row["hyp"]], [row["ref"]])
    return result


def _pause(text: str) -> float | None:
    """A ``--merge-pause`` value: seconds, or ``none`` (join across any pause)."""
    return None if text.lower() in ("none", "null") else float(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run folder, or `reference` for the shipped adapter")
    p.add_argument("--segments", nargs="+", default=["vad", "utterance"], help="decode.segment methods (default vad utterance)")
    p.add_argument("--merge-pause", nargs="+", type=_pause, default=[], metavar="P",
                   help="also decode with vad and decode.merge_pause=P (seconds, or none), once per value")
    p.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    a = p.parse_args(argv)
    if a.run == "reference":
        from slamkit.infer.reference import reference_run_dir

        run = reference_run_dir("tiny.en")
    else:
        run = Path(a.run)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(run, a.segments, Path(tmp), tuple(a.merge_pause))
    base = result["one_by_one"]["wer"]
    for name, score in result.items():
        gap = "" if name == "one_by_one" else f"  ({100 * (score['wer'] - base):+.1f} points)"
        print(f"{name:11s} WER {100 * score['wer']:.1f} %  S/D/I {score['substitutions']}/{score['deletions']}/{score['insertions']}{gap}")
    if a.out:
        a.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
