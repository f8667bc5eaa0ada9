"""The clip set of the README's `slamkit bench serve` table: 32 Asterisk prompts of 1.5–8 s.

    python benchmarks/asterisk_clips.py --out asterisk32.jsonl
    slamkit bench serve --run reference --manifest asterisk32.jsonl

Needs the `asterisk-sounds` asset (`slamkit assets install asterisk-sounds`); the draw is seeded.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import soundfile as sf

from slamkit.assets import resolve_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="manifest to write")
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = Path(resolve_path("asset:asterisk-sounds/usr")) / "share/asterisk/sounds/en_US_f_Allison"
    clips = sorted(folder.glob("*.wav"))
    random.Random(args.seed).shuffle(clips)
    rows = []
    for clip in clips:
        seconds = sf.info(str(clip)).duration
        if 1.5 <= seconds <= 8 and len(rows) < args.count:
            rows.append({"key": clip.stem, "source": str(clip), "target": "", "duration": seconds})
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(json.dumps({"out": args.out, "clips": len(rows), "seconds": round(sum(r["duration"] for r in rows), 1)}))


if __name__ == "__main__":
    main()
