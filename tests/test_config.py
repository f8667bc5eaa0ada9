"""Config: YAML + overrides, unknown keys and wrong types name the key, round trip."""

from __future__ import annotations

import pytest

from slamkit.config import ConfigError, config_reference, dump_config, load_config, parse_override


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


def test_readme_documents_every_key():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [key for key, _, _, _ in config_reference() if f"`{key}`" not in readme]
    assert not missing, f"README's config reference lacks {missing}"
