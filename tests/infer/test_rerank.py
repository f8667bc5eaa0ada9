"""CLAP re-ranked decoding: text/audio embeddings vs transformers, best-candidate choice, decode end to end, errors.

A tiny random ``ClapModel`` (the ``test`` audio preset: 1 s windows of 16 mels; a one-layer text
tower) is saved with a RoBERTa byte-level tokenizer (no merges) and its feature extractor, all offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import pre_tokenizers
from transformers import ClapAudioModelWithProjection, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig, RobertaTokenizer

from slamkit.config import ConfigError, DecodeConfig
from slamkit.data.audio import load_audio
from slamkit.data.manifest import read_manifest
from slamkit.infer.decode import decode
from slamkit.infer.rerank import build_reranker, pick_best
from slamkit.models.encoders.clap.audio import CLAPEncoder, clap_preset, load_clap_audio
from slamkit.models.encoders.clap.text import ClapSimilarity
from slamkit.train.loop import train

from conftest import tiny_config

SR = 48_000
TEXT = ClapTextConfig(vocab_size=264, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=40)
TEXTS = ["a dog barks", "rain on a tin roof, a car passes", "", "beep"]


def _tokenizer() -> RobertaTokenizer:
    """A RoBERTa byte-level BPE without merges: every byte is one token (LAION CLAP's tokenizer class)."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=[])


def _extractor() -> ClapFeatureExtractor:
    """The test preset's front end as transformers computes it (Slaney filters: ``rand_trunc``)."""
    _, s = clap_preset("test")
    return ClapFeatureExtractor(feature_size=s.n_mels, max_length_s=int(s.max_length_s), frequency_min=s.f_min, frequency_max=s.f_max, truncation="rand_trunc")


def _save_clap(path: Path, tokenizer: bool = True) -> Path:
    audio, _ = clap_preset("test")
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=TEXT.to_dict(), audio_config=audio.to_dict(), projection_dim=16)).eval()
    bn = model.audio_model.audio_encoder.batch_norm  # non-trivial running statistics
    bn.running_mean.normal_(mean=-40.0, std=5.0)
    bn.running_var.uniform_(50.0, 200.0)
    model.save_pretrained(path)
    _extractor().save_pretrained(path)
    if tokenizer:
        _tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory) -> Path:
    return _save_clap(tmp_path_factory.mktemp("clap") / "tiny-clap")


@pytest.fixture(scope="module")
def hf_clap(clap_dir: Path) -> ClapModel:
    return ClapModel.from_pretrained(clap_dir).eval()


def _hf_text(model: ClapModel, texts: list[str]) -> torch.Tensor:
    inputs = _tokenizer()(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.get_text_features(**inputs).pooler_output


def _hf_audio(model: ClapModel, wave: np.ndarray) -> torch.Tensor:
    """transformers' normalised audio embedding of a clip of at most one window."""
    features = _extractor()(wave.astype(np.float64), sampling_rate=SR, return_tensors="pt")["input_features"].float()
    with torch.no_grad():
        return model.get_audio_features(input_features=features, is_longer=torch.zeros(1, 1, dtype=torch.bool)).pooler_output[0]


def _wave(n: int, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_embeddings_match_transformers(clap_dir: Path, hf_clap: ClapModel) -> None:
    clap = ClapSimilarity.from_pretrained(clap_dir)
    assert clap.sample_rate == SR
    ours = clap.embed_text(TEXTS)
    torch.testing.assert_close(ours, _hf_text(hf_clap, TEXTS), atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(len(TEXTS)))
    assert not torch.allclose(ours[0], ours[1], atol=1e-3)  # the texts really differ
    # 40 positions after the pad id hold 38 tokens: <s> + 36 bytes + </s>; longer texts are cut, not fatal
    torch.testing.assert_close(clap.embed_text(["ab" * 50]), clap.embed_text(["ab" * 18]), atol=1e-6, rtol=0)
    waves = [_wave(30_000, 1), _wave(12_345, 2)]  # one padded batch; each within one 1 s window
    audio = clap.embed_audio(waves)
    for i, wave in enumerate(waves):
        torch.testing.assert_close(audio[i], _hf_audio(hf_clap, wave), atol=1e-5, rtol=0)


def test_reranker_picks_the_most_similar_candidate(clap_dir: Path, hf_clap: ClapModel) -> None:
    wave = _wave(40_000, 3)
    hf_scores = (_hf_text(hf_clap, TEXTS) @ _hf_audio(hf_clap, wave)).tolist()
    texts = sorted(TEXTS, key=lambda t: hf_scores[TEXTS.index(t)])  # ascending: the best is the last "beam"
    reranker = build_reranker(DecodeConfig(rerank="clap", rerank_model=str(clap_dir)))
    assert reranker is not None and reranker.sample_rate == SR
    (scores,) = reranker.score([wave], [texts])
    np.testing.assert_allclose(scores, sorted(hf_scores), atol=1e-5, rtol=0)
    result = pick_best(texts, scores)
    assert result.hyp == texts[-1] != texts[0]
    assert [c["text"] for c in result.candidates] == texts and [c["score"] for c in result.candidates] == scores


def test_pick_best_ties_and_empty() -> None:
    assert pick_best(["a", "b", "c"], [0.1, 0.5, 0.5]).hyp == "b"  # the earlier beam wins a tie
    assert pick_best([], []).hyp == ""
    with pytest.raises(ValueError, match="2 candidates but 1 scores"):
        pick_best(["a", "b"], [0.3])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tone_corpus) -> Path:
    run = tmp_path_factory.mktemp("rerank") / "run"
    train(tiny_config(run, tone_corpus, "train.max_steps=20", "train.valid_every=0"))
    return run


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_decode_with_clap_rerank(run_dir: Path, tone_corpus: dict[str, Path], clap_dir: Path, hf_clap: ClapModel, tmp_path: Path) -> None:
    n, out, one, beam = 3, tmp_path / "rerank.jsonl", tmp_path / "rerank1.jsonl", tmp_path / "beam.jsonl"
    rerank = ["decode.max_new_tokens=6", "decode.rerank=clap", f"decode.rerank_model={clap_dir}", f"decode.rerank_candidates={n}"]
    decode(run_dir, tone_corpus["valid"], out, rerank + ["decode.batch_size=4"])
    decode(run_dir, tone_corpus["valid"], one, rerank + ["decode.batch_size=1"])
    decode(run_dir, tone_corpus["valid"], beam, ["decode.max_new_tokens=6", "decode.batch_size=4", f"decode.beam_size={n}"])
    rows, beams = _read(out), _read(beam)
    for row, alone in zip(rows, _read(one)):  # batch size 1 and N agree
        assert row["hyp"] == alone["hyp"] and [c["text"] for c in row["candidates"]] == [c["text"] for c in alone["candidates"]]
        np.testing.assert_allclose([c["score"] for c in row["candidates"]], [c["score"] for c in alone["candidates"]], atol=1e-5, rtol=0)
    records = read_manifest(tone_corpus["valid"])
    assert [r["key"] for r in rows] == [rec.key for rec in records]
    audio_tower = CLAPEncoder(*load_clap_audio(clap_dir)).eval()  # clips exceed one window: windows averaged
    best_not_first = 0
    for row, plain, rec in zip(rows, beams, records):
        texts = [c["text"] for c in row["candidates"]]
        assert len(texts) == n == len(set(texts))
        assert texts[0] == plain["hyp"], "candidates start with the plain beam-search hypothesis"
        wave = torch.from_numpy(load_audio(rec.source, SR))
        with torch.no_grad():
            clip = audio_tower.embed(wave[None], torch.tensor([len(wave)]))[0]
        expected = (_hf_text(hf_clap, texts) @ clip).tolist()
        scores = [c["score"] for c in row["candidates"]]
        np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)
        assert row["hyp"] == texts[int(np.argmax(expected))]
        best_not_first += row["hyp"] != texts[0]
    assert best_not_first > 0, "re-ranking should change some hypotheses"


def test_bad_rerank_settings_name_the_key(clap_dir: Path, tmp_path: Path, run_dir: Path, tone_corpus: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"decode\.rerank_model"):
        build_reranker(DecodeConfig(rerank="clap"))
    with pytest.raises(ConfigError, match=r"decode\.rerank_model=.*nowhere"):
        build_reranker(DecodeConfig(rerank="clap", rerank_model=str(tmp_path / "nowhere")))
    audio_only = tmp_path / "audio-only"
    ClapAudioModelWithProjection(clap_preset("test")[0]).save_pretrained(audio_only)
    with pytest.raises(ConfigError, match=r"decode\.rerank_model=.*model_type 'clap_audio_model'"):
        build_reranker(DecodeConfig(rerank="clap", rerank_model=str(audio_only)))
    no_tokenizer = _save_clap(tmp_path / "no-tokenizer", tokenizer=False)
    with pytest.raises(ConfigError, match=r"decode\.rerank_model=.*tokenizer"):
        build_reranker(DecodeConfig(rerank="clap", rerank_model=str(no_tokenizer)))
    with pytest.raises(ConfigError, match=r"decode\.rerank: unknown re-ranker 'clip'"):
        build_reranker(DecodeConfig(rerank="clip", rerank_model=str(clap_dir)))
    with pytest.raises(ConfigError, match=r"decode\.rerank_candidates"):
        build_reranker(DecodeConfig(rerank="clap", rerank_model=str(clap_dir), rerank_candidates=0))
    out = tmp_path / "never.jsonl"
    with pytest.raises(ConfigError, match=r"decode\.rerank_model"):  # fails before any decoding
        decode(run_dir, tone_corpus["valid"], out, ["decode.rerank=clap", f"decode.rerank_model={tmp_path / 'nowhere'}"])
    assert not out.exists()
