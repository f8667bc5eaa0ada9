# slamkit: `make demo` runs `slamkit demo` (real Whisper + SmolLM2 trained on this CPU, tested on
# recorded speech); `make demo-tiny` runs the tiny recipe end to end; `make test` runs the suite.
# All start with `make setup`, which is idempotent: a .venv at the repository root, torch==2.13.0
# installed first, pinned, so no later resolver swaps in a different (e.g. CUDA) torch build, then
# slamkit with its dev and demo extras.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.slamkit-installed
DEMO   ?= runs/demo

.PHONY: setup test demo demo-tiny reference clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev,demo,augment]"
	touch $(STAMP)

# Reference files and real assets the tests compare against: openai-whisper's front end, the
# Debian speech data, the GGUF LLM, the TTS programs (apt, when root). On a laptop this is best
# effort (the tests that need a missing one are skipped with the reason); under CI=true a failure
# here fails the run, and so does any skipped test (tests/conftest.py).
ASSETS := whisper-tiny.en whisper-base smollm2-135m-instruct-gguf asterisk-sounds pocketsphinx-testdata fortunes flite espeak-ng festival sonic-pi-samples asterisk-moh wordnet austen-novels moby-dick jargon-file freedict-eng-fra kokoro-82m kokoro-voices
reference: setup
	PYTHON=$(BIN)/python bash scripts/fetch_reference.sh || [ "$$CI" != "true" ]
	for a in $(ASSETS); do $(BIN)/slamkit assets install $$a || { echo "asset $$a could not be installed" >&2; [ "$$CI" != "true" ] || exit 1; }; done

test: setup reference
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# The main job: real Whisper + SmolLM2 trained on this CPU, tested on real recorded speech.
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/slamkit demo --out $(DEMO)

# The tiny recipe end to end in about a minute (random weights, synthetic tone speech).
demo-tiny: setup
	HF_HUB_OFFLINE=1 $(BIN)/slamkit prepare tones --out $(DEMO)-tiny/data
	rm -rf $(DEMO)-tiny/run
	HF_HUB_OFFLINE=1 $(BIN)/slamkit train recipes/tiny_asr.yaml train.output_dir=$(DEMO)-tiny/run \
		data.train=$(DEMO)-tiny/data/train.jsonl data.valid=$(DEMO)-tiny/data/valid.jsonl
	HF_HUB_OFFLINE=1 $(BIN)/slamkit decode $(DEMO)-tiny/run --manifest $(DEMO)-tiny/data/test.jsonl --out $(DEMO)-tiny/test.hyp.jsonl
	HF_HUB_OFFLINE=1 $(BIN)/slamkit score $(DEMO)-tiny/test.hyp.jsonl

clean:
	rm -rf $(VENV) .cache runs
