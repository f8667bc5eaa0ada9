"""SpeechLLM: audio token counts match real outputs, the splice checks counts, prompts."""

from __future__ import annotations

import pytest
import torch

from slamkit.config import load_config
from slamkit.data.collate import Collator, Example
from slamkit.models.speech_llm import SpliceError, build_model, parameter_report

from conftest import TINY_RECIPE


@pytest.fixture(scope="module")
def model():
    return build_model(load_config(TINY_RECIPE)).eval()


def test_audio_token_count_matches_projector_output(model):
    for n in (1600, 8000, 12345, 16000 * 3):
        audio = torch.randn(1, n)
        embeds, lengths = model.encode_audio(audio, torch.tensor([n]))
        assert int(lengths[0]) == model.audio_token_count(n)
        assert embeds.shape[1] == model.audio_token_count(n)


def test_splice_count_mismatch_raises(model):
    prompts = model.prompts
    ex = Example("k", torch.randn(8000).numpy(), prompts.prompt_ids("hi"), prompts.target_ids("a b"), "a b")
    batch = Collator(model.audio_token_id, prompts.tokenizer.pad_token_id, model.token_counter())([ex])
    embeds, lengths = model.encode_audio(batch.audio, batch.audio_lengths)
    out = model.splice(batch.input_ids, embeds, lengths)
    assert out.shape[:2] == batch.input_ids.shape
    with pytest.raises(SpliceError, match="placeholders"):
        model.splice(batch.input_ids, embeds, lengths - 1)


def test_splice_places_audio_at_placeholders(model):
    prompts = model.prompts
    ex = Example("k", torch.randn(8000).numpy(), prompts.prompt_ids("hi"), prompts.target_ids("x"), "x")
    batch = Collator(model.audio_token_id, prompts.tokenizer.pad_token_id, model.token_counter())([ex])
    embeds, lengths = model.encode_audio(batch.audio, batch.audio_lengths)
    out = model.splice(batch.input_ids, embeds, lengths)
    pos = (batch.input_ids[0] == model.audio_token_id).nonzero().squeeze(1)
    torch.testing.assert_close(out[0, pos], embeds[0, : len(pos)])
    other = (batch.input_ids[0] != model.audio_token_id).nonzero().squeeze(1)
    torch.testing.assert_close(out[0, other], model.llm.get_input_embeddings()(batch.input_ids[0, other]))


def test_prompt_builder_plain_template_and_position():
    cfg = load_config(TINY_RECIPE, ["model.llm.audio_position=after"])
    m = build_model(cfg)
    text = m.prompts.prompt_text("Say it.")
    assert text.endswith("Say it.<|audio|>\nASSISTANT: ")
    assert m.prompts.prompt_ids("Say it.").count(m.audio_token_id) == 1
    assert m.prompts.target_ids("ab")[-1] == m.prompts.tokenizer.eos_token_id


def test_trainability_and_parameter_counts():
    model = build_model(load_config(TINY_RECIPE, ["model.encoder.trainable=frozen", "model.llm.trainable=lora"]))
    report = parameter_report(model)
    assert report["encoder"][0] == 0 and report["encoder"][1] > 0
    assert report["projector"][0] == report["projector"][1] > 0
    llm_trainable, llm_total = report["llm"]
    assert 0 < llm_trainable < llm_total
    assert all("lora_" in n for n, p in model.llm.named_parameters() if p.requires_grad)


def test_full_and_frozen_modes():
    m = build_model(load_config(TINY_RECIPE, ["model.llm.trainable=full", "model.encoder.trainable=full", "model.projector.trainable=frozen"]))
    report = parameter_report(m)
    assert report["llm"][0] == report["llm"][1]
    assert report["encoder"][0] == report["encoder"][1]
    assert report["projector"][0] == 0


def test_lora_on_missing_module_names_the_module():
    with pytest.raises(ValueError, match="nope_proj"):
        build_model(load_config(TINY_RECIPE, ["model.lora.target_modules=[nope_proj]"]))


def test_llm_from_local_directory_and_chat_template(tmp_path):
    """A saved HF model directory loads through `model.llm.path`; its chat template builds the prompt."""
    from slamkit.models.llm import load_llm

    cfg = load_config(TINY_RECIPE)
    llm, tok = load_llm(cfg.model.llm)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    llm.save_pretrained(tmp_path / "llm")
    tok.save_pretrained(tmp_path / "llm")
    loaded = build_model(load_config(TINY_RECIPE, [f"model.llm.path={tmp_path / 'llm'}", "model.llm.system_prompt=Be brief."]))
    text = loaded.prompts.prompt_text("Transcribe.")
    assert text == "<system>Be brief.</s><user><|audio|>Transcribe.</s><assistant>"
    ids = torch.tensor([[5, 6, 7]])
    torch.testing.assert_close(loaded.llm(input_ids=ids).logits, llm(input_ids=ids).logits)
    plain = build_model(load_config(TINY_RECIPE, [f"model.llm.path={tmp_path / 'llm'}", "model.llm.use_chat_template=false"]))
    assert plain.prompts.prompt_text("Hi.") == "<s>USER: <|audio|>Hi.\nASSISTANT: "


def test_missing_llm_directory_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_model(load_config(TINY_RECIPE, [f"model.llm.path={tmp_path}"]))
    with pytest.raises(FileNotFoundError, match="no such directory"):
        build_model(load_config(TINY_RECIPE, [f"model.llm.path={tmp_path / 'nope' / 'deeper'}"]))


def test_full_logits_computes_the_same_target_logits(model):
    """model.llm.full_logits (the original's head over every position) changes the work, not the result."""
    prompts = model.prompts
    examples = [Example(f"k{i}", torch.randn(4000 * (i + 1)).numpy(), prompts.prompt_ids("hi"), prompts.target_ids("a b c"[: 2 * i + 1]),
                        "x") for i in range(3)]
    batch = Collator(model.audio_token_id, prompts.tokenizer.pad_token_id, model.token_counter())(examples)
    with torch.no_grad():
        targets_only = model(batch)
        model.full_logits = True
        try:
            full = model(batch)
        finally:
            model.full_logits = False
    assert targets_only.logits.shape == full.logits.shape and targets_only.logits.shape[0] == int((batch.labels != -100).sum())
    torch.testing.assert_close(full.logits, targets_only.logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(full.targets, targets_only.targets)
