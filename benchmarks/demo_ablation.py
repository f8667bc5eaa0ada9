"""What each part of the demo's training data is worth: `slamkit demo` rerun with one thing changed.

    python benchmarks/demo_ablation.py --out runs/ablation                      # every row (≈ 45 min each)
    python benchmarks/demo_ablation.py --out runs/ablation --rows no-piper,no-augment
    python benchmarks/demo_ablation.py --out runs/ablation --report all=runs/demo/report.json

Each row is one ``slamkit demo --out <out>/<row> --no-whisper --no-reference`` with the demo's
defaults except the flags of :data:`ROWS` (voices, augmentation, text, pseudo-speakers, encoder):
the same recipe, seed and 30-minute training budget, evaluated on the demo's three sets (the
synthetic held-out clips of *that row's* data, the 553 Asterisk prompts, the 5 LibriVox clips).
A row whose ``report.json`` exists is read, not rerun, so the table fills in over several
sessions; ``--report ROW=PATH`` reads a row from an existing demo report (e.g. a default
``make demo`` as ``all``). The training budget is wall-clock time: run the rows on an otherwise
idle machine, and compare the steps column. Prints a markdown table (WER %, Whisper normaliser,
greedy) and writes ``<out>/ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# Row name -> (what changes, the `slamkit demo` flags). `all` is the demo as shipped.
ROWS: dict[str, tuple[str, list[str]]] = {
    "all": ("nothing: the demo's defaults", []),
    "no-piper": ("voices: flite + espeak-ng only (no neural voice)", ["--engines", "flite:0.6,espeak-ng:0.4"]),
    "piper-heavy": ("voices: Piper takes 70 % of the clips (flite 0.2, espeak-ng 0.1)",
                    ["--engines", "piper:0.7,flite:0.2,espeak-ng:0.1"]),
    "festival": ("voices: Festival added (a quarter of the clips)", ["--engines", "piper:0.4,flite:0.2,espeak-ng:0.15,festival:0.25"]),
    "kokoro": ("voices: Kokoro takes half of Piper's share (5 voices and their mixes)",
               ["--engines", "piper:0.25,kokoro:0.25,flite:0.3,espeak-ng:0.2"]),
    "neural": ("voices: 80 % neural (Piper 0.4, Kokoro 0.4, flite 0.1, espeak-ng 0.1)",
               ["--engines", "piper:0.4,kokoro:0.4,flite:0.1,espeak-ng:0.1"]),
    "no-pseudo": ("voices: no pitch/tempo pseudo-speakers", ["--pseudo-speakers", "0"]),
    "no-augment": ("augmentation: none (no rooms, noise, telephone, speed)", ["--augment", ""]),
    "fortune-text": ("text: the fortune file only", ["--text", "fortune"]),
    "base": ("encoder: Whisper base instead of tiny.en", ["--encoder", "base"]),
    "no-cooldown": ("schedule: the learning rate stays at its peak to the end (no cooldown in the last 6 minutes)",
                    ["--cooldown", "0"]),
}
SETS = ("synthetic", "asterisk", "librivox")


def run_row(name: str, out: Path, extra: list[str]) -> Path:
    """Run the row's demo unless its report exists; return the report's path."""
    report = out / name / "report.json"
    if not report.is_file():
        cmd = [sys.executable, "-m", "slamkit", "demo", "--out", str(out / name), "--no-whisper", "--no-reference",
               *ROWS[name][1], *extra]
        print("$ slamkit " + " ".join(repr(a) if a == "" else a for a in cmd[3:]), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
    return report


def row_result(name: str, report: Path) -> dict[str, Any]:
    """One table row from a demo report: WER and errors by kind per set, steps reached, data and training seconds."""
    r = json.loads(report.read_text())
    curve = r.get("wer_by_step") or []
    return {"row": name, "change": ROWS[name][0] if name in ROWS else name, "report": str(report),
            "steps": curve[-1]["step"] if curve else None, "data_s": r.get("timings", {}).get("data"),
            "train_s": r.get("train_seconds"), "wer": {s: r["wer"].get(s) for s in SETS},
            "errors": {s: _errors((r.get("details") or {}).get("ours", {}).get(s)) for s in SETS}}


def _errors(score: dict[str, Any] | None) -> dict[str, int] | None:
    """Substitutions, deletions and insertions of one set's score (None when the report has no details)."""
    if not score:
        return None
    return {kind: score[kind] for kind in ("substitutions", "deletions", "insertions")}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per row, WER % per set and the Asterisk errors by kind."""
    lines = ["| row | what changes | steps | synthetic | Asterisk | LibriVox | Asterisk errors S / D / I |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        wer = [f"{100 * row['wer'][s]:.1f} %" if row["wer"][s] is not None else "–" for s in SETS]
        kinds = (row.get("errors") or {}).get("asterisk")
        errors = " / ".join(str(kinds[k]) for k in ("substitutions", "deletions", "insertions")) if kinds else "–"
        lines.append(f"| {row['row']} | {row['change']} | {row['steps'] or '–'} | " + " | ".join(wer) + f" | {errors} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/ablation"), help="one demo folder per row under it")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows (default all: {', '.join(ROWS)})")
    p.add_argument("--report", action="append", default=[], metavar="ROW=PATH",
                   help="read ROW from an existing demo report.json instead of running it (repeatable)")
    a, a.extra = p.parse_known_args(argv)  # anything else goes to every row's `slamkit demo` (e.g. --minutes 30)
    given = dict(item.split("=", 1) for item in a.report)
    names = [n for n in a.rows.split(",") if n]
    if unknown := [n for n in names + list(given) if n not in ROWS]:
        raise SystemExit(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    rows = []
    for name in names:
        report = Path(given[name]) if name in given else run_row(name, a.out, a.extra)
        rows.append(row_result(name, report))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
