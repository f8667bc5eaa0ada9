"""The demo's report folder: report.json, report.md, loss.png and sample transcripts.

``report.json`` holds ``{"wer": {set: fraction}, "reference_wer": {…}, "whisper_wer": {…},
"train_seconds", "peak_rss_mb", …}``; ``report.md`` puts the same numbers in tables next to the
baselines measured before the project existed, with the exact command, config and timings.
"""

from __future__ import annotations

import json
import resource
import shlex
import sys
from pathlib import Path
from typing import Any

from slamkit.train.log import read_metrics

# Measured on this project's machine before any code existed (shared ASSETS.md): WER with
# lower-casing and punctuation stripped, no number normalisation.
ASSET_BASELINES = {
    "Whisper tiny.en (faster-whisper int8, greedy)": {"librivox": 0.113, "asterisk": 0.036},
    "Whisper base": {"librivox": 0.028, "asterisk": 0.028},
    "pocketsphinx": {"librivox": 0.282, "asterisk": 0.759},
}
SET_TITLES = {"synthetic": "synthetic held-out (the run's TTS voices)", "asterisk": "Asterisk prompts (real, 8 kHz phone)",
              "librivox": "LibriVox clips (real read speech)"}


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def _wers(scores: dict[str, dict] | None) -> dict[str, float] | None:
    return None if scores is None else {name: s["wer"] for name, s in scores.items()}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def loss_plot(run_dir: Path, path: Path) -> bool:
    """Training and validation loss against step, as a PNG. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = read_metrics(run_dir)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    valid = [(r["step"], r["valid_loss"]) for r in rows if "valid_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1)
    if valid:
        ax.plot(*zip(*valid), "o-", label="valid loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy per target token")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _samples(scores: dict[str, dict], n: int = 20) -> list[dict]:
    """Up to ``n`` (reference, hypothesis) pairs spread over the evaluation sets."""
    picked: list[dict] = []
    per_set = max(n // max(len(scores), 1), 1)
    for name, s in scores.items():
        lines = [json.loads(line) for line in Path(s["hyps"]).read_text().splitlines()]
        picked += [{"set": name, "key": r["key"], "ref": r["ref"], "hyp": r["hyp"]} for r in lines[:per_set]]
    return picked[:n]


def _markdown(report: dict[str, Any], samples: list[dict], has_plot: bool) -> str:
    sets = list(report["wer"])
    titles = dict(SET_TITLES)
    if engines := report.get("options", {}).get("engines"):
        titles["synthetic"] = f"synthetic held-out ({engines})"
    head = "| system | " + " | ".join(titles.get(s, s) for s in sets) + " |\n|---|" + "---|" * len(sets) + "\n"
    rows = [("this run (trained here)", report["wer"]), ("shipped reference adapter", report["reference_wer"]),
            ("Whisper's own decoder, same encoder", report["whisper_wer"])]
    rows += [(f"{name} (ASSETS.md baseline)", vals) for name, vals in ASSET_BASELINES.items()]
    table = head + "".join(f"| {name} | " + " | ".join(_pct((vals or {}).get(s)) for s in sets) + " |\n" for name, vals in rows)
    curve = "| step | WER |\n|---|---|\n" + "".join(f"| {c['step']} | {_pct(c['wer'])} |\n" for c in report["wer_by_step"])
    sample_rows = "| set | reference | hypothesis |\n|---|---|---|\n" + "".join(
        f"| {s['set']} | {s['ref']} | {s['hyp']} |\n" for s in samples)
    timings = "".join(f"- {k}: {v:.0f} s\n" for k, v in report["timings"].items())
    parts = [
        "# slamkit demo report\n",
        f"Command: `{report['command']}`\n",
        "## Word error rate (Whisper English normaliser)\n", table,
        "\nBaselines from ASSETS.md were scored with lower-casing and punctuation stripping only.\n",
        "## WER on held-out synthetic clips by checkpoint\n", curve,
        "\n## Loss\n", "![loss](loss.png)\n" if has_plot else "(matplotlib not installed: no plot)\n",
        "\n## Sample transcripts\n", sample_rows,
        "\n## Timings and memory\n", timings, f"- peak resident memory: {report['peak_rss_mb']:.0f} MB\n",
        f"\nConfig: `{report['run_dir']}/config.yaml`; metrics: `{report['run_dir']}/metrics.jsonl`.\n",
    ]
    return "\n".join(parts)


def write_report(out: Path, *, options: dict, ours: dict, reference: dict | None, whisper: dict | None,
                 curve: list[dict], run_dir: Path, timings: dict[str, float], peak_rss: float,
                 reference_dir: Path | None) -> dict[str, Any]:
    """Write report.json, report.md, loss.png into ``out``; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "wer": _wers(ours), "reference_wer": _wers(reference), "whisper_wer": _wers(whisper),
        "train_seconds": round(timings.get("train", 0.0), 1), "peak_rss_mb": peak_rss,
        "wer_by_step": curve, "details": {"ours": ours, "reference": reference, "whisper": whisper},
        "timings": {k: round(v, 1) for k, v in timings.items()}, "options": {k: str(v) if isinstance(v, Path) else v for k, v in options.items()},
        "run_dir": str(run_dir), "reference_dir": str(reference_dir) if reference_dir else None,
        "command": " ".join(shlex.quote(a) for a in ["slamkit", *sys.argv[1:]]),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    has_plot = loss_plot(run_dir, out / "loss.png")
    samples = _samples(ours)
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (out / "report.md").write_text(_markdown(report, samples, has_plot))
    return report
