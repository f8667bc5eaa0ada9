"""``python -m slamkit …`` runs the command line (what ``torchrun -m slamkit train …`` starts)."""

from slamkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
