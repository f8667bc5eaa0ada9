"""``python -m slamkit.cli …`` (same as ``python -m slamkit …``)."""

from slamkit.cli import main

raise SystemExit(main())
