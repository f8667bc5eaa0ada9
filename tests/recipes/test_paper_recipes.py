"""Every recipe trains one step at tiny size; every paper recipe's header is a how-to that works.

``test_recipes.py`` builds each recipe at its real size on the meta device. Here the same recipes,
with only their sizes shrunk (a random ``test``-preset encoder of the same family, the tiny Llama,
a narrow projector, no feature cache), go through the real data path (manifest -> dataset with the
recipe's task and prompt -> collator) and one forward/backward pass under the recipe's precision.

A *paper recipe* is one whose LLM is weights the user brings (a directory or hub id, not a preset or
an ``asset:``). Its header must state the reproduction target, and the ``slamkit`` commands in it
must parse: ``train`` names the recipe itself with valid overrides, ``decode`` reads the run
directory that training writes, ``score`` reads what ``decode`` wrote, ``prepare`` names a real
corpus with real options. Recipes are found by glob, so a new recipe is checked without edits here.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch

from slamkit.cli import build_parser
from slamkit.config import Config, load_config
from slamkit.models.speech_llm import build_model, parameter_report
from slamkit.train.distributed import autocast
from slamkit.train.data import build_loader
from slamkit.train.objectives import LanguageModelObjective

from conftest import REPO
from fake_video import video_corpus

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
README = REPO / "README.md"

# Sizes only: every other setting (encoder family and read-out, projector type and k, which parts
# train, LoRA targets, task, prompt, template, precision) stays the recipe's own. A Q-Former of
# width 48 keeps 4+ dims per head for any head count the recipes use (8 or 12).
TINY = (
    "model.encoder.path=null", "model.encoder.preset=test", "model.encoder.cache_dir=null",
    "model.llm.path=null", "model.llm.preset=tiny",  # the recipe's own dtype: the paper recipes load the LLM in bf16
    "model.projector.hidden=48", "model.projector.num_layers=2",
    "data.batch_size=2", "data.batch_seconds=null", "data.num_workers=0",
)

# Words in the stand-in biasing list beyond the corpus's own: LibriSpeech's published test lists
# draw up to 2000 distractors per utterance.
BIASING_FILLERS = 2000

# The sizes the paper's recipes publish (millions of trainable parameters; SLAM-ASR's are checked
# in test_recipes.py): EAT linear 16.26 M and LoRA 4.19 M (aac_audiocaps), MusicFM linear 18.88 M
# (mc_musiccaps; MERT-v1-330M is as wide as MusicFM, so the projector matches).
PAPER_SIZES = {
    "aac_audiocaps_eat_vicuna": {"projector": 16.26, "llm": 4.19},
    "mc_musiccaps_mert_linear_vicuna": {"projector": 18.88},
}
PAPER_RECIPES_AT_LEAST = {
    "asr_librispeech_hubert_vicuna", "asr_librispeech_wavlm_vicuna", "asr_librispeech_whisper_vicuna",
    "aac_audiocaps_eat_vicuna", "aac_clotho_beats_qformer_vicuna",
    "sec_emotioncaps_emotion2vec_qformer_vicuna", "mc_musiccaps_mert_linear_vicuna",
}
# A command line in a header: an optional label ("Run:", "Data:") then `slamkit …`.
COMMAND = re.compile(r"^(?:[A-Z][A-Za-z ]*:)?\s*(slamkit\s.*)$")


def is_paper_recipe(path: Path) -> bool:
    """The LLM is weights the user brings (not a random preset, not a pinned asset)."""
    llm_path = load_config(path).model.llm.path
    return llm_path is not None and not llm_path.startswith("asset:")


PAPER_RECIPES = [p for p in RECIPES if is_paper_recipe(p)]


def header_lines(path: Path) -> list[str]:
    """The recipe's leading comment block, without the ``#`` and one following space."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    return lines


def header_commands(path: Path) -> list[list[str]]:
    """Every ``slamkit …`` command of the header as argv, continuation lines (``\\``) joined."""
    logical, current = [], ""
    for line in header_lines(path):
        current = f"{current} {line.strip()}" if current else line.strip()
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        logical.append(current)
        current = ""
    commands = []
    for line in logical:
        match = COMMAND.match(line)
        if match:
            commands.append(shlex.split(match.group(1))[1:])
    return commands


def parse_command(argv: list[str], recipe: Path):
    """Parse ``slamkit ARGV`` as the CLI does (trailing key=value pairs are overrides)."""
    try:
        args, extra = build_parser().parse_known_args(argv)
    except SystemExit:
        pytest.fail(f"{recipe.name}: header command `slamkit {shlex.join(argv)}` does not parse (see stderr)")
    assert all("=" in e and not e.startswith("-") for e in extra), f"{recipe.name}: unknown arguments {extra} in `slamkit {shlex.join(argv)}`"
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def first_batch_loss(cfg: Config) -> tuple[torch.nn.Module, torch.Tensor, int]:
    """Build the model, collate the first batch of ``data.train``, run forward + backward."""
    torch.manual_seed(0)
    model = build_model(cfg).train()
    assert any(p.requires_grad for p in model.parameters()), "nothing trains: every part is frozen"
    data = build_loader(cfg, model, cfg.data.train, "valid")
    batch = data.collator([data.dataset[i] for i in next(iter(data.sampler))])
    objective = LanguageModelObjective(0.0, lambda: model.embedding_table, model.pad_token_id)
    with autocast(cfg.train.precision, torch.device("cpu")):
        out = objective(model, batch)
    loss = out.loss_sum / max(out.num_tokens, 1)
    loss.backward()
    return model, loss.detach(), out.num_tokens


def has_gradient(params: dict[str, torch.nn.Parameter], prefix: str, part: str = "") -> bool:
    """Some parameter named ``prefix…part…`` got a non-zero gradient (LoRA's A gets none at step 0: B starts at 0)."""
    return any(bool(p.grad.abs().sum() > 0) for n, p in params.items() if n.startswith(prefix) and part in n)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, tone_corpus) -> dict[str, Path]:
    """The tone training clips with what any task's prompt may ask of a record, and a word list.

    Each record gains ``biasing_words`` (its first word), so a contextual-biasing recipe's prompt
    can be filled; ``words.txt`` lists every target word plus fillers (enough for the largest
    published distractor count), standing in for a recipe's ``data.biasing_list``. Sources become
    absolute, since the manifest moves.
    """
    src = Path(tone_corpus["train"])
    out = tmp_path_factory.mktemp("recipe_data")
    records = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    for record in records:
        record["source"] = str((src.parent / record["source"]).resolve())
        record["biasing_words"] = record["target"].split()[:1]
        record["target_language"] = "German"  # the translation tasks' prompts name it
    manifest, words = out / "train.jsonl", out / "words.txt"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    vocabulary = sorted({w for r in records for w in r["target"].split()}) + [f"filler{i:04d}" for i in range(BIASING_FILLERS)]
    words.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    text = out / "text.jsonl"  # the same targets as text-only records (no `source`), for text-adaptation recipes
    text.write_text("".join(json.dumps({"key": r["key"], "target": r["target"]}) + "\n" for r in records), encoding="utf-8")
    return {"train": manifest, "words": words, "video": video_corpus(out / "video", 4), "text": text}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_trains_one_step_at_tiny_size(recipe: Path, tiny_data: dict[str, Path]) -> None:
    base = load_config(recipe)
    video = base.model.encoder.name.startswith("av_hubert")  # lip reading: mouth-crop clips, not tones
    text_only = base.data.text_records == "only"  # text adaptation: no audio reaches the projector
    overrides = [*TINY, f"data.train={tiny_data['text' if text_only else 'video' if video else 'train']}"]
    if getattr(load_config(recipe).data, "biasing_list", None):  # a file the user brings, like weights
        overrides.append(f"data.biasing_list={tiny_data['words']}")
    cfg = load_config(recipe, overrides)
    model, loss, tokens = first_batch_loss(cfg)
    assert tokens > 0 and torch.isfinite(loss) and loss > 0
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for name, p in trainable.items():
        if text_only and name.startswith("projector."):
            assert p.grad is None or not p.grad.any(), f"{name}: a text-only batch reached the projector"
            continue
        assert p.grad is not None, f"{name} is trainable but got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient"
    assert text_only or has_gradient(trainable, "projector."), "the projector gets no gradient"
    if cfg.model.llm.trainable == "lora":
        assert has_gradient(trainable, "llm.", "lora_"), "LoRA on the LLM gets no gradient"
    # the recipe's own LLM dtype is what runs (the paper recipes: a bf16 base), and what trains stays fp32
    frozen = {p.dtype for n, p in model.llm.named_parameters() if not p.requires_grad}
    assert frozen <= {getattr(torch, cfg.model.llm.dtype)}, (cfg.model.llm.dtype, frozen)
    assert all(p.dtype == torch.float32 for p in trainable.values())


def test_paper_recipes_are_recognised() -> None:
    """The paper/demo split above is not vacuous: the known paper recipes count as such."""
    assert PAPER_RECIPES_AT_LEAST <= {p.stem for p in PAPER_RECIPES}
    assert not is_paper_recipe(REPO / "recipes" / "tiny_asr.yaml")


@pytest.mark.parametrize("recipe", PAPER_RECIPES, ids=lambda p: p.stem)
def test_paper_recipe_header_states_target_and_working_commands(recipe: Path) -> None:
    lines = header_lines(recipe)
    at = [i for i, line in enumerate(lines) if line.startswith("Reproduction target")]
    assert at, f"{recipe.name}: no 'Reproduction target' line in the header"
    assert re.search(r"\d+\.\d+", " ".join(lines[at[0]:at[0] + 4])), f"{recipe.name}: the reproduction target names no figure"
    commands = [parse_command(argv, recipe) for argv in header_commands(recipe)]
    by_name: dict[str, list] = {}
    for args in commands:
        by_name.setdefault(args.command, []).append(args)
    for needed in ("train", "decode", "score"):
        assert needed in by_name, f"{recipe.name}: the header names no `slamkit {needed}` command"
    train = by_name["train"][0]
    assert Path(train.config) == Path("recipes") / recipe.name, f"{recipe.name}: `slamkit train` runs {train.config}"
    cfg = load_config(REPO / train.config, train.overrides)  # the documented overrides are valid keys and types
    assert cfg.data.train, f"{recipe.name}: the train command sets no data.train"
    decoded = set()
    for args in by_name["decode"]:
        assert args.run_dir == cfg.train.output_dir, f"{recipe.name}: decode reads {args.run_dir}, training writes {cfg.train.output_dir}"
        decoded.add(args.out)
    for args in by_name["score"]:
        assert args.hyps in decoded, f"{recipe.name}: score reads {args.hyps}, which no decode command writes"


@pytest.mark.parametrize("stem", sorted(PAPER_SIZES))
def test_paper_recipe_sizes_match_the_published_ones(stem: str) -> None:
    cfg = load_config(REPO / "recipes" / f"{stem}.yaml", ["model.encoder.path=null", "model.llm.path=null"])
    with torch.device("meta"):
        report = parameter_report(build_model(cfg))
    for part, millions in PAPER_SIZES[stem].items():
        assert round(report[part][0] / 1e6, 2) == millions, f"{stem}: {part} trains {report[part][0]:,} parameters"


def test_readme_recipe_table_lists_every_recipe() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Recipes\n", 1)
    assert len(section) == 2, "README has no '## Recipes' section"
    table = section[1].split("\n## ", 1)[0]
    missing = [p.name for p in RECIPES if f"`recipes/{p.name}`" not in table and f"`{p.name}`" not in table]
    assert not missing, f"README's Recipes table lacks {missing}"
