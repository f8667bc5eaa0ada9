"""The reference adapter's second data set, and its run started from the 30-minute demo checkpoint.

    python scripts/reference_data.py data  runs/reference-data [--sets 1] [--from-set 1] [--prompts N] [--joined N]   # ≈ 7–25 min a set on 2 cores
    python scripts/reference_data.py start runs/reference_tiny_en runs/reference-data/train.jsonl [--from-run RUN]
    python scripts/reference_data.py mix runs/reference-data/train.jsonl OUT --seen N --replay K [--seed 16]

``data`` speaks ``--sets`` × 8 000 more utterances (folders ``seed1``, ``seed2``, …; one made
before is reused) the way ``slamkit demo`` speaks its own (same engines, pseudo-speakers, share of
short phrases, telephone share and augmentation) but with seed S and with sentences the demo did
not use: the demo's seed-0 shuffle of the text mix is redone and set S takes the S-th block of
sentences after the ones the demo spoke, so no set repeats another's sentences and no held-out
(test or validation) sentence of the demo is ever trained on. Sets 1–3 use up the demo's mix; the blocks after
it come from ``EXTRA_MIX`` (more of the same sources), less every sentence the demo's mix holds. The last block takes
what is left.
With ``--prompts N``, each set made then also gets N generated phone-menu and spelling phrases
(:mod:`slamkit.prepare.prompt_phrases`, seed 200 + S), less those that overlap an evaluation
transcript. It then writes ``train.jsonl``: the
demo's augmented training split (made first, without training, if ``--demo`` lacks it) followed by each set's
augmented clips (``--from-set S``: only sets S … ``--sets``) (keys prefixed ``sS-``;
paths made absolute), then ``--joined`` clips that join 2–3 of the new sets' clean clips with pauses
(``slamkit prepare concat``, folder ``joined``, keys prefixed ``j-``), augmented the same way: training for segments that hold several sentences (measured in
docs/longform.md: not helpful in a short run, so the shipped runs use none).

``start`` copies the demo run's last checkpoint (step 4 046 for the shipped demo), or that of
``--from-run RUN`` (the 15 800-clip run, to go on with a third set), into a new run
folder with the sampler's dataset size set to the union's and its position to the start of the
epoch, so ``slamkit train … train.resume=true`` continues with the same weights, optimizer and
schedule on the larger data. Only for a new manifest: to go on with the same data, resume a copy of the run folder
(it keeps the sampler's position). The commands that follow are in
``src/slamkit/reference/demo_asr_tiny_en/README.md``.

``mix`` writes a shorter manifest for going on with a new set: every line after the first ``--seen`` (the clips the
run has not trained on) and ``--replay`` lines drawn from the first ``--seen`` (so that it keeps what it learnt),
shuffled together with seed ``--seed``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import random
import shutil
import sys
from pathlib import Path

DEMO = Path("runs/demo")
DEMO_DATA = "data/tts-8000-0-short800-9a138708"  # `slamkit demo` defaults, seed 0
DEMO_AUGMENTED = "augment-7a16b86e/train.jsonl"
PROMPT_SEED = 200  # the prompt phrases of set S are drawn with seed PROMPT_SEED + S
JOINED_SEED = 100  # the joined set's draws (pairs, pauses, augmentation), apart from the sets' seeds 1, 2, …
# The text after the demo's mix (DEFAULT_MIX caps WordNet, Austen, Moby-Dick and the Jargon File): more of the same
# sources, WordNet still capped so that its short examples do not crowd out whole sentences (docs/text-sources.md)
EXTRA_MIX = "wordnet:14000,austen,moby-dick,jargon"


def new_sentences(count: int, block: int) -> list[str]:
    """Block ``block`` (0, 1, …) of ``count`` sentences of the demo's text mix that the seed-0 demo did not speak
    (the last block: what is left of the mix)."""
    sentences, spoken = _mix()
    fresh = sentences[spoken + block * count:spoken + (block + 1) * count]
    if not fresh:
        raise SystemExit(f"the text mix has {len(sentences) - spoken} unused sentences, {(block + 1) * count} needed")
    return fresh


@functools.lru_cache(maxsize=1)
def _mix() -> tuple[list[str], int]:
    """The demo's text mix in the demo's seed-0 order (held-out first, then training), then the sentences of
    :data:`EXTRA_MIX` that the demo's mix does not hold (shuffled), and how many sentences the demo speaks.

    Sets 1–3 used 21 600 of the demo's mix's 23 825 unspoken sentences; set 4 goes on into the extra text."""
    from slamkit.app.demo import DemoOptions
    from slamkit.prepare.text import mix_sentences, word_key

    opts = DemoOptions()
    sentences = list(mix_sentences(opts.text, exclude=_eval_texts(), seed=opts.seed, install=True).sentences)
    random.Random(opts.seed).shuffle(sentences)
    known = {word_key(s) for s in sentences}
    extra = [s for s in mix_sentences(EXTRA_MIX, exclude=_eval_texts(), seed=opts.seed, install=True).sentences
             if word_key(s) not in known]
    random.Random(f"{opts.seed}:extra").shuffle(extra)
    return sentences + extra, opts.utterances - round(opts.utterances * opts.short_fraction)


@functools.lru_cache(maxsize=1)
def _eval_texts() -> tuple[str, ...]:
    """Every transcript of the real evaluation sets (Asterisk, LibriVox), read once."""
    from slamkit.app.demo import DemoOptions, ensure_assets
    from slamkit.prepare.text import evaluation_texts

    assets = ensure_assets(DemoOptions())
    return tuple(evaluation_texts(assets["asterisk-sounds"], assets["pocketsphinx-testdata"]))


def set_lines(seed: int, prompts: int = 0) -> list[tuple[int, str]]:
    """Set ``seed``'s lines: its block of unused sentences (the last block: what is left of the mix), short phrases
    in the demo's share, and ``prompts`` generated phone-menu/spelling phrases
    (:mod:`slamkit.prepare.prompt_phrases`), those that overlap an evaluation transcript dropped."""
    from slamkit.app.demo import DemoOptions
    from slamkit.prepare.prompt_phrases import prompt_phrases
    from slamkit.prepare.tts import interleave, with_short_phrases

    opts = DemoOptions()
    sentences = new_sentences(opts.utterances - round(opts.utterances * opts.short_fraction), seed - 1)
    short = round(len(sentences) * opts.short_fraction / (1 - opts.short_fraction))
    lines = with_short_phrases(list(enumerate(sentences, start=1)), short, seed)
    kept: list[str] = []
    if prompts:
        from slamkit.prepare.text import EvalGuard

        guard = EvalGuard(_eval_texts())
        kept = [p for p in prompt_phrases(prompts, seed=PROMPT_SEED + seed) if not guard.overlaps(p)]
    print(f"set {seed}: {len(sentences)} sentences, {short} short phrases, {len(kept)} of {prompts} prompt phrases "
          f"({prompts - len(kept)} overlap an evaluation transcript)")
    return interleave(lines, kept)


def make_set(out: Path, seed: int, prompts: int = 0) -> Path:
    """Speak and augment set ``seed`` (1, 2, …) in ``out`` unless made already; its augmented manifest."""
    from slamkit.app.demo import DemoOptions
    from slamkit.prepare import prepare_tts
    from slamkit.prepare.augment_run import prepare_augment
    from slamkit.prepare.text import write_text_file

    manifest = out / "augment" / "train.jsonl"
    if manifest.is_file():
        return manifest
    opts = DemoOptions()
    made = json.loads((out / "set.json").read_text()) if (out / "set.json").is_file() else None
    if made is not None and made["prompts"] != prompts:
        raise SystemExit(f"{out} was begun with --prompts {made['prompts']}, not {prompts}: rerun with that, or delete the folder")
    if not (out / "lines.txt").is_file():
        lines = [text for _, text in set_lines(seed, prompts)]
        write_text_file(lines, out / "lines.txt")
        (out / "set.json").write_text(json.dumps({"seed": seed, "prompts": prompts, "lines": len(lines)}))
    if not (out / "tts.jsonl").is_file():
        count = len((out / "lines.txt").read_text().splitlines())
        prepare_tts(out / "lines.txt", out, engines=opts.engines, num_utterances=count, seed=seed,
                    telephone_fraction=0.3, pseudo_speakers=opts.pseudo_speakers)
    prepare_augment(out / "tts.jsonl", out / "augment", spec=opts.augment, seed=seed, name="train", install=True)
    return manifest


def make_joined(out: Path, sets: int, count: int, spec: str | None = None, first: int = 1) -> Path:
    """``count`` clips joining 2–3 clean clips of sets ``first`` … ``sets`` (made unless made already), augmented by
    ``spec`` (default: the demo's)."""
    from slamkit.app.demo import DemoOptions
    from slamkit.prepare.augment_run import prepare_augment
    from slamkit.prepare.concat import prepare_concat

    manifest = out / "joined" / "augment" / "train.jsonl"
    if manifest.is_file():
        return manifest
    clean = write_union(out / "joined" / "clean.jsonl", [(out / f"seed{s}" / "tts.jsonl", f"s{s}-") for s in range(first, sets + 1)])
    if not (out / "joined" / "concat.jsonl").is_file():
        print(prepare_concat(clean, out / "joined", count=count, seed=JOINED_SEED))
    prepare_augment(out / "joined" / "concat.jsonl", out / "joined" / "augment", spec=spec or DemoOptions().augment, seed=JOINED_SEED,
                    name="train", install=True)
    return manifest


def make_data(out: Path, demo: Path, sets: int, joined: int = 0, prompts: int = 0, first: int = 1) -> Path:
    """Sets ``first`` … ``sets`` and ``joined`` joined clips under ``out``; write and return the union
    ``out/train.jsonl`` (the demo's training split, then those sets)."""
    parts = [(demo_training_split(demo), "")]
    parts += [(make_set(out / f"seed{s}", s, prompts), f"s{s}-") for s in range(first, sets + 1)]
    if joined:
        parts.append((make_joined(out, sets, joined, first=first), "j-"))
    return drop_near_evaluation(write_union(out / "train.jsonl", parts))


def demo_training_split(demo: Path) -> Path:
    """The augmented training split of ``slamkit demo --out DEMO`` (default settings), made (≈ 12 min: its TTS and
    augmentation, no training) if that folder lacks it."""
    manifest = demo / DEMO_DATA / DEMO_AUGMENTED
    if not manifest.is_file():
        from slamkit.app.demo import DemoOptions, ensure_assets, prepare_data

        opts = DemoOptions(out=demo)
        made = prepare_data(opts, ensure_assets(opts))["train"]
        if made.resolve() != manifest.resolve():
            raise SystemExit(f"the demo's data was made as {made}, not {manifest}: DEMO_DATA is out of date")
    return manifest


def drop_near_evaluation(manifest: Path) -> Path:
    """Rewrite ``manifest`` without the clips whose transcript is a run of an evaluation transcript with at most one
    word replaced (:meth:`EvalGuard.near`; template phrases such as "Press one to undelete this message" come that
    close to a prompt without sharing a whole run of it)."""
    from slamkit.prepare.text import EvalGuard

    guard = EvalGuard(_eval_texts())
    lines = manifest.read_text().splitlines()
    kept = [line for line in lines if not guard.near(json.loads(line)["target"])]
    manifest.write_text("".join(line + "\n" for line in kept))
    print(f"{manifest}: {len(kept)} clips; {len(lines) - len(kept)} dropped (one word from a run of an evaluation transcript)")
    return manifest


def write_union(dest: Path, parts: list[tuple[Path, str]]) -> Path:
    """Concatenate manifests, prefixing each part's keys and making its audio paths absolute."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w") as f:
        for manifest, prefix in parts:
            if not manifest.is_file():
                raise SystemExit(f"{manifest}: not found")
            for line in manifest.read_text().splitlines():
                record = json.loads(line)
                record["key"] = prefix + record["key"]
                record["source"] = str((manifest.parent / record["source"]).resolve())
                f.write(json.dumps(record) + "\n")
    return dest


def start_run(demo_run: Path, run: Path, manifest: Path) -> None:
    """``run``: the config, log and last checkpoint of ``demo_run`` (the demo's run, or any run to go on
    from), the sampler resized to ``manifest``."""
    import torch

    from slamkit.train import checkpoint as ckpt

    last = ckpt.intact_checkpoint(demo_run)
    if last is None:
        raise SystemExit(f"{demo_run}: no checkpoint")
    dest = run / "checkpoints" / last.path.name
    if dest.exists():
        raise SystemExit(f"{dest} exists already")
    dest.mkdir(parents=True)
    for name in ("config.yaml", "metrics.jsonl"):
        shutil.copy(demo_run / name, run / name)
    for name in ("model.safetensors", "meta.json"):
        shutil.copy(last.path / name, dest / name)
    state = ckpt.load_state(last.path)
    items = sum(1 for _ in manifest.open())
    if items == state["sampler"]["num_items"] and state["sampler"]["position"]:
        print(f"warning: {manifest} has as many lines ({items}) as {demo_run}'s sampler had items: if it is the same data, the "
              f"new run replays the {state['sampler']['position']} batches already trained on in this pass; to go on "
              "with the same data, resume a copy of the run folder itself (it keeps the sampler's position)", file=sys.stderr)
    state["sampler"].update(num_items=items, position=0)
    torch.save(state, dest / "state.pt")
    meta = json.loads((dest / "meta.json").read_text())
    data = (dest / "state.pt").read_bytes()
    meta["files"]["state.pt"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (dest / "meta.json").write_text(json.dumps(meta))
    print(f"{dest}: sampler {state['sampler']}")


def mix_manifest(manifest: Path, out: Path, seen: int, replay: int, seed: int) -> tuple[int, int]:
    """Write ``out``: the lines of ``manifest`` after its first ``seen`` and ``replay`` of the first ``seen`` drawn
    with ``seed``, shuffled with the same generator. Returns (new lines, replayed lines)."""
    lines = manifest.read_text().splitlines(keepends=True)
    if not 0 < seen < len(lines):
        raise SystemExit(f"{manifest}: --seen {seen} must be between 1 and {len(lines) - 1} (the manifest has {len(lines)} lines)")
    if not 0 <= replay <= seen:
        raise SystemExit(f"--replay {replay} must be between 0 and --seen ({seen})")
    rng = random.Random(seed)
    new = lines[seen:]
    mixed = new + rng.sample(lines[:seen], replay)
    rng.shuffle(mixed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(mixed))
    return len(new), replay


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data", help="speak and augment the second set; write the union manifest")
    d.add_argument("out", type=Path)
    d.add_argument("--demo", type=Path, default=DEMO, help="the demo's --out folder (default runs/demo)")
    d.add_argument("--sets", type=int, default=1, help="8 000-utterance sets to add (default 1: 15 800 clips; the shipped adapter used 3: 34 035 clips; set 4 and later speak EXTRA_MIX's text once the demo's mix is used up)")
    d.add_argument("--prompts", type=int, default=0, help="generated phone-menu and spelling phrases added to each set made now (sets made before are reused as they are; default 0; sets 3 and 4 were made with 2 500)")
    d.add_argument("--from-set", type=int, default=1, help="make and join only sets FROM_SET … SETS (default 1: all); the 2026-12-08 run (step 12) used sets 4 and 5 after the demo's split")
    d.add_argument("--joined", type=int, default=0, help="clips joining 2-3 of the new sets' clips with pauses, added to the union (default 0: none, as in the 15 800-clip run)")
    s = sub.add_parser("start", help="a new run folder from the demo run's last checkpoint")
    s.add_argument("run", type=Path)
    s.add_argument("manifest", type=Path)
    s.add_argument("--demo", type=Path, default=DEMO, help="the demo's --out folder (default runs/demo)")
    s.add_argument("--from-run", type=Path, default=None, help="start from this run's last checkpoint instead of the demo run's")
    m = sub.add_parser("mix", help="a manifest of the clips after the first --seen and --replay of those before")
    m.add_argument("manifest", type=Path)
    m.add_argument("out", type=Path)
    m.add_argument("--seen", type=int, required=True, help="how many of the manifest's first lines the run has trained on (34 035 before set 4)")
    m.add_argument("--replay", type=int, required=True, help="how many of those to draw into the mix (10 000 for the set-4 run)")
    m.add_argument("--seed", type=int, default=16, help="the draw's and the shuffle's seed (default 16)")
    a = p.parse_args(argv)
    if a.cmd == "data":
        a.out.mkdir(parents=True, exist_ok=True)
        if a.sets < 1:
            p.error("--sets must be at least 1")
        if a.joined < 0:
            p.error("--joined must be 0 or more")
        if a.prompts < 0:
            p.error("--prompts must be 0 or more")
        if not 1 <= a.from_set <= a.sets:
            p.error(f"--from-set must be between 1 and --sets ({a.sets})")
        print(make_data(a.out, a.demo, a.sets, a.joined, a.prompts, a.from_set))
    elif a.cmd == "mix":
        new, replay = mix_manifest(a.manifest, a.out, a.seen, a.replay, a.seed)
        print(f"{a.out}: {new} new + {replay} replayed = {new + replay} lines")
    else:
        start_run(a.from_run or a.demo / "run", a.run, a.manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
