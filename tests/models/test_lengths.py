"""Length rules: the audio-token count is a pure, picklable function of the configuration."""

from __future__ import annotations

import pickle

import pytest
import torch

from slamkit.config import EncoderConfig, load_config
from slamkit.data.collate import Collator, Example
from slamkit.models.encoders import ENCODERS, build_encoder
from slamkit.models.lengths import AudioTokenCounter, ceil_div, conv_output_frames
from slamkit.models.speech_llm import build_model

from conftest import TINY_RECIPE

LENGTHS = torch.tensor([400, 401, 1599, 1600, 16000, 16001, 47999, 160000, 480000, 480001])


@pytest.mark.parametrize("name", ENCODERS.names())
def test_every_encoder_rule_is_small_and_picklable(name: str) -> None:
    """Built on the meta device (no weights): the rule needs nothing but numbers."""
    with torch.device("meta"):
        encoder = build_encoder(EncoderConfig(name=name, preset=ENCODERS.get(name).preset_names()[0]))
    rule = encoder.length_rule()
    blob = pickle.dumps(rule)
    assert len(blob) < 1024, f"{name}: the length rule pickles to {len(blob)} bytes; it must hold plain numbers only"
    again = pickle.loads(blob)
    assert torch.equal(again(LENGTHS), rule(LENGTHS)) and torch.equal(rule(LENGTHS), encoder.output_lengths(LENGTHS))


@pytest.mark.parametrize("name", ["hubert", "wav2vec2", "wavlm", "data2vec_audio"])
def test_ssl_rule_matches_transformers(name: str) -> None:
    encoder = build_encoder(EncoderConfig(name=name, preset="test"))
    expected = encoder.model._get_feat_extract_output_lengths(LENGTHS).clamp(min=0)
    assert torch.equal(encoder.length_rule()(LENGTHS), expected)


def test_generic_rules() -> None:
    assert ceil_div(torch.tensor([0, 1, 5, 6]), 5).tolist() == [0, 1, 1, 2]
    assert conv_output_frames(torch.tensor([0, 9, 10, 400]), (10, 3), (5, 2)).tolist() == [0, 0, 0, 39]


def test_counter_matches_the_model_and_the_collator_holds_no_model() -> None:
    model = build_model(load_config(TINY_RECIPE))
    counter = model.token_counter()
    assert isinstance(counter, AudioTokenCounter)
    for n in (160, 1600, 16000, 48000):
        feats, lengths = model.encode_audio(torch.zeros(1, n), torch.tensor([n]))
        assert counter(n) == int(lengths[0]) == feats.shape[1]
    prompts = model.prompts
    collator = Collator(model.audio_token_id, int(prompts.tokenizer.pad_token_id), counter)
    assert len(pickle.dumps(collator)) < 4096, "the collator must not carry the model into DataLoader workers"
    ex = Example("k", torch.zeros(16000).numpy(), prompts.prompt_ids("hi"), prompts.target_ids("a"), "a")
    batch = collator([ex])
    assert int((batch.input_ids == model.audio_token_id).sum()) == counter(16000)


def test_ssl_rule_counts_the_adapter_like_transformers() -> None:
    encoder = build_encoder(EncoderConfig(name="wav2vec2", preset="test"))
    config = encoder.model.config
    config.add_adapter, config.num_adapter_layers, config.adapter_stride = True, 2, 2
    expected = encoder.model._get_feat_extract_output_lengths(LENGTHS, add_adapter=True).clamp(min=0)
    assert torch.equal(encoder.length_rule()(LENGTHS), expected)
    assert not torch.equal(expected, encoder.model._get_feat_extract_output_lengths(LENGTHS, add_adapter=False).clamp(min=0))
