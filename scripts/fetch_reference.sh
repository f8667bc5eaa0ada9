#!/usr/bin/env bash
# Fetch reference files the test-suite compares against (no install, nothing imported at run time).
#
# openai-whisper's sdist holds whisper/audio.py and whisper/assets/mel_filters.npz, the reference
# for slamkit's Whisper log-mel front end (tests/models/encoders/whisper/test_whisper_frontend.py). It is downloaded, not
# installed: installing it pulls numba and triton. Files land in .cache/reference/ (gitignored);
# tests also accept SLAMKIT_WHISPER_SDIST=/path/to/openai_whisper-20250625.tar.gz or its extracted dir.
#
# Usage: scripts/fetch_reference.sh            (from anywhere; uses $PYTHON or python3)
set -euo pipefail

VERSION="20250625"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.cache/reference"
PYTHON="${PYTHON:-python3}"
SDIST="$DEST/openai_whisper-$VERSION.tar.gz"

mkdir -p "$DEST"
if [[ ! -f "$SDIST" ]]; then
    # --no-binary :all: selects the sdist (openai-whisper publishes no wheel for this version anyway).
    "$PYTHON" -m pip download --no-deps --no-binary :all: "openai-whisper==$VERSION" -d "$DEST"
fi
tar -xzf "$SDIST" -C "$DEST"
test -f "$DEST/openai_whisper-$VERSION/whisper/audio.py"
test -f "$DEST/openai_whisper-$VERSION/whisper/assets/mel_filters.npz"
echo "reference ready: $DEST/openai_whisper-$VERSION"
