"""Config: YAML + overrides, unknown keys and wrong types name the key, round trip."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from slamkit.config import (CONFIG_REFERENCE_BEGIN, CONFIG_REFERENCE_END, ConfigError, config_reference,
                            config_reference_markdown, dump_config, load_config, parse_override, update_config_reference)

README = Path(__file__).resolve().parents[1] / "docs" / "config.md"
REGENERATE = "slamkit config --write-readme docs/config.md"


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_steps: 7\nmodel:\n  projector:\n    k: 3\n")
    cfg = load_config(path, ["train.lr=0.5", "++model.llm.audio_position=after", "+data.batch_seconds=12"])
    assert cfg.train.max_steps == 7
    assert cfg.model.projector.k == 3
    assert cfg.train.lr == 0.5
    assert cfg.model.llm.audio_position == "after"
    assert cfg.data.batch_seconds == 12.0
    assert cfg.model.encoder.name == "whisper"


def test_unknown_key_names_key_and_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'train.max_step'.*train.max_steps"):
        load_config(None, ["train.max_step=3"])
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  projector:\n    hiden: 5\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key 'model.projector.hiden'.*model.projector.hidden"):
        load_config(path)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.max_steps=ten", r"'train.max_steps' expects int"),
        ("train.lr=[1]", r"'train.lr' expects float"),
        ("model.llm.trainable=half", r"'model.llm.trainable' expects 'frozen' \| 'lora' \| 'full'"),
        ("train.resume=maybe", r"'train.resume' expects bool"),
        ("model.lora.target_modules=q_proj", r"'model.lora.target_modules' expects list of str"),
        ("train=3", r"'train' expects a mapping"),
    ],
)
def test_wrong_type_names_key_and_type(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(None, [override])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.max_steps")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_dump_round_trip(tmp_path):
    cfg = load_config(None, ["model.encoder.layer=-2", "data.train=a.jsonl", "model.llm.system_prompt=null"])
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_every_key_documented():
    rows = config_reference()
    assert len(rows) > 50
    assert all(help_text for _, _, _, help_text in rows)


def test_markdown_reference_has_one_row_per_key_in_schema_order():
    text = config_reference_markdown()
    assert text == config_reference_markdown() and text.endswith("|\n")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [key for key, _, _, _ in config_reference()]
    titles = [line.strip("*") for line in text.splitlines() if line.startswith("**")]
    assert titles == ["model.encoder", "model.projector", "model.llm", "model.lora", "data", "train", "decode"]
    assert all(row.replace("\\|", "").count("|") == 5 for row in rows)  # 4 cells: every other | is escaped
    assert "| `model.llm.plain_template` | str | `\"USER: {content}\\nASSISTANT: \"` |" in text
    assert "| `model.llm.audio_token` | str | `<\\|audio\\|>` |" in text


def _stale_config_reference(readme: str) -> str | None:
    """None when the README's generated config reference matches the schema, else why not and the fix."""
    try:
        expected = update_config_reference(readme)
    except ValueError as exc:
        return f"docs/config.md's config reference block is broken ({exc}); restore the markers, then run `{REGENERATE}`"
    if expected == readme:
        return None
    diff = difflib.unified_diff(readme.splitlines(), expected.splitlines(), "docs/config.md", "schema", lineterm="", n=0)
    return f"docs/config.md's config reference differs from the schema in src/slamkit/config.py; run `{REGENERATE}`:\n" + "\n".join(diff)


def test_readme_config_reference_is_generated_from_the_schema():
    problem = _stale_config_reference(README.read_text(encoding="utf-8"))
    assert problem is None, problem


def test_a_drifted_readme_config_reference_is_flagged():
    readme = README.read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `train.max_steps` |"))
    edits = {
        "changed default": readme.replace(row, row.replace("`1000`", "`500`")),
        "dropped row": readme.replace(row + "\n", ""),
        "hand-written row": readme.replace(row, row + "\n| `train.max_stepz` | int | `1` | Typo. |"),
        "no end marker": readme.replace(CONFIG_REFERENCE_END, ""),
        "two begin markers": readme.replace(CONFIG_REFERENCE_BEGIN, CONFIG_REFERENCE_BEGIN * 2),
    }
    for what, edited in edits.items():
        assert edited != readme, what
        problem = _stale_config_reference(edited)
        assert problem is not None and REGENERATE in problem, what
    assert update_config_reference(edits["changed default"]) == readme  # regenerating repairs it
    assert "+| `train.max_steps` | int | `1000` |" in (_stale_config_reference(edits["changed default"]) or "")


def test_update_config_reference_replaces_only_the_block():
    text = f"# Title\n\nintro\n{CONFIG_REFERENCE_BEGIN}\nold table\n{CONFIG_REFERENCE_END}\n\n## Next\n"
    updated = update_config_reference(text)
    assert updated == f"# Title\n\nintro\n{CONFIG_REFERENCE_BEGIN}\n\n{config_reference_markdown()}\n{CONFIG_REFERENCE_END}\n\n## Next\n"
    assert update_config_reference(updated) == updated
    with pytest.raises(ValueError, match="before"):
        update_config_reference(f"{CONFIG_REFERENCE_END}\n{CONFIG_REFERENCE_BEGIN}\n")


def test_llm_dtype_is_checked_by_name() -> None:
    from slamkit.config import load_config

    from conftest import TINY_RECIPE

    with pytest.raises(ValueError, match="model.llm.dtype"):
        load_config(TINY_RECIPE, ["model.llm.dtype=bf16"])


def test_projector_lora_is_refused_naming_the_key() -> None:
    """LoRA targets the LLM's module names, which no projector has: the choice does not exist for the projector."""
    from slamkit.config import load_config

    from conftest import TINY_RECIPE

    with pytest.raises(ValueError, match="model.projector.trainable"):
        load_config(TINY_RECIPE, ["model.projector.trainable=lora"])
