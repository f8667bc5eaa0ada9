"""The shipped reference adapters: run directories inside the package (``slamkit/reference/``).

``slamkit demo`` scores them beside the model it trains, and ``slamkit serve reference`` serves
one. Only the trained weights are shipped; the frozen encoder and LLM come from installed assets.
"""

from __future__ import annotations

from pathlib import Path

from slamkit.train import checkpoint as ckpt

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/slamkit


def reference_run_dir(encoder: str = "tiny.en") -> Path | None:
    """The shipped reference adapter for ``encoder`` (a run directory inside the package), if any."""
    folder = PACKAGE_DIR / "reference" / f"demo_asr_{encoder.replace('.', '_')}"
    return folder if ckpt.latest_checkpoint(folder) is not None else None
