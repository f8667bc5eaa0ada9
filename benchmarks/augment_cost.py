"""Cost per clip of each augmentation kind (the table of docs/augmentation.md), in one process.

    python benchmarks/augment_cost.py MANIFEST [--clips 40] [--seed 0]

Loads the first ``--clips`` clips of MANIFEST (16 kHz mono), then, for each kind alone with probability 1
(and the noise kind once per source), times ``augment_clip`` over them and prints JSON lines: ms per clip,
ms per second of audio, and the real-time factor. ``room`` is timed twice: with a filled RIR pool (the
steady state of a run; filling it, once per worker, is timed apart as ``ms_per_pooled_rir``) and with
``room.pool=0`` (a new RIR per clip, which is what the pool saves). Setup (codec probes, asset lookups) is not counted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from slamkit.data.audio import load_audio
from slamkit.data.manifest import read_manifest
from slamkit.prepare.augment import Clip, SetupContext, augment_clip, build_plan
from slamkit.prepare.augment_kinds import pooled_rir

CASES = (
    ("speed", ()),
    ("room", ()),
    ("room", ("room.pool=0",)),
    ("noise", ("noise.sources=colored",)),
    ("noise", ("noise.sources=babble",)),
    ("noise", ("noise.sources=moh",)),
    ("noise", ("noise.sources=sonicpi",)),
    ("telephone", ()),
    ("telephone", ("telephone.codecs=ulaw",)),
    ("telephone", ("telephone.codecs=gsm",)),
    ("telephone", ("telephone.codecs=opus",)),
    ("telephone", ("telephone.codecs=mp3",)),
    ("telephone", ("telephone.codecs=vorbis",)),
)


def _time(waves: list[np.ndarray], kind: str, params: tuple[str, ...], manifest: Path, seed: int, clips: int) -> dict:
    plan = build_plan(f"{kind}:1", params, SetupContext(seed=seed, manifest=manifest, clips=clips))
    extra = {}
    if kind == "room" and not params:  # fill the pool first: a run pays each pooled RIR once per worker
        state = plan.steps[0].state
        start = time.perf_counter()
        for index in range(state.params.pool):
            pooled_rir(state.params, state.seed, index)
        extra = {"pool": state.params.pool, "ms_per_pooled_rir": round(1000 * (time.perf_counter() - start) / state.params.pool, 1)}
    start = time.perf_counter()
    for i, wave in enumerate(waves):
        augment_clip(wave, plan, Clip(i, f"clip{i}"), 1)
    elapsed = time.perf_counter() - start
    audio = sum(len(w) for w in waves) / 16000
    return {"kind": kind, "params": list(params), "ms_per_clip": round(1000 * elapsed / len(waves), 2),
            "ms_per_audio_second": round(1000 * elapsed / audio, 2), "x_realtime": round(audio / elapsed, 1), **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", help="JSONL manifest of speech clips")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    records = read_manifest(args.manifest)
    waves = [load_audio(r.source, 16000, r.offset, r.duration) for r in records[: args.clips]]
    print(json.dumps({"clips": len(waves), "mean_seconds": round(float(np.mean([len(w) for w in waves])) / 16000, 2)}))
    for kind, params in CASES:
        print(json.dumps(_time(waves, kind, params, Path(args.manifest), args.seed, len(records))), flush=True)


if __name__ == "__main__":
    main()
