"""Frozen-encoder feature cache: keys, fingerprints, stale and corrupt entries, equality with the
encoder, and training runs that hit the cache."""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from slamkit.config import EncoderConfig, load_config
from slamkit.data.dataset import clip_key
from slamkit.models.feature_cache import FeatureCache, cached_encode, encoder_fingerprint
from slamkit.data.collate import Collator
from slamkit.data.dataset import SpeechDataset
from slamkit.data.manifest import Record
from slamkit.models.speech_llm import build_model
from slamkit.train.log import read_metrics
from slamkit.train.loop import train

from conftest import TINY_RECIPE, tiny_config

FROZEN = ("model.encoder.trainable=frozen",)
# 24 clips, batch 4: one epoch is 6 steps, so 12 steps are two epochs.
TWO_EPOCHS = ("train.max_steps=12", "train.log_every=6", "train.valid_every=0", "data.batch_size=4")


def _wav(path, seconds: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
    return path


@pytest.fixture(scope="module")
def frozen_model(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("featcache")
    cfg = load_config(TINY_RECIPE, [*FROZEN, f"model.encoder.cache_dir={cache_dir}", "model.encoder.cache_dtype=float32"])
    return build_model(cfg).eval()


# ---- keys and fingerprints ----------------------------------------------------------------------


def test_clip_key_tracks_file_and_crop(tmp_path):
    wav = _wav(tmp_path / "a.wav")
    key = clip_key(wav, 0.0, None, 16000)
    assert key == clip_key(str(tmp_path / "." / "a.wav"), 0.0, None, 16000), "same file, same key"
    assert key != clip_key(wav, 0.1, None, 16000)
    assert key != clip_key(wav, 0.0, 0.3, 16000)
    assert key != clip_key(wav, 0.0, None, 8000)
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    touched = clip_key(wav, 0.0, None, 16000)
    assert touched != key, "a new mtime gives a new key"
    # Same size and mtime, other bytes (a copy tool that keeps times): only the content hash sees it.
    hashed = clip_key(wav, 0.0, None, 16000, content_hash=True)
    _wav(wav, seed=1)
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert clip_key(wav, 0.0, None, 16000) == touched
    assert clip_key(wav, 0.0, None, 16000, content_hash=True) != hashed
    other = _wav(tmp_path / "b.wav")
    assert clip_key(other, 0.0, None, 16000) != touched


def test_encoder_fingerprint_covers_output_settings(tmp_path):
    base = EncoderConfig(preset="test")
    fp = encoder_fingerprint(base)
    for change in ({"name": "hf_ssl"}, {"preset": "tiny"}, {"model_type": "wavlm"}, {"pad_to_30s": True},
                   {"layer": -2}, {"init_seed": 1}):
        assert encoder_fingerprint(dataclasses.replace(base, **change)) != fp, change
    for same in ({"trainable": "full"}, {"cache_dir": "/elsewhere"}, {"cache_dtype": "float32"}):
        assert encoder_fingerprint(dataclasses.replace(base, **same)) == fp, same
    weights = tmp_path / "enc"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"0" * 64)
    with_path = dataclasses.replace(base, path=str(weights))
    fp_path = encoder_fingerprint(with_path)
    assert encoder_fingerprint(dataclasses.replace(with_path, init_seed=7)) == fp_path, "seed is moot with real weights"
    (weights / "model.safetensors").write_bytes(b"1" * 65)
    assert encoder_fingerprint(with_path) != fp_path, "changed weight file, new fingerprint"


def test_weights_in_memory_choose_the_cache_folder(tmp_path):
    cfg = load_config(TINY_RECIPE, [*FROZEN, f"model.encoder.cache_dir={tmp_path}"])
    a, b = build_model(cfg), build_model(cfg)
    with torch.no_grad():
        b.encoder.model.conv1.weight.add_(1e-3)  # e.g. fine-tuned weights loaded from a checkpoint
    audio = torch.randn(1, 8000)
    a.encode_audio(audio, torch.tensor([8000]), ["k" * 64])
    b.encode_audio(audio, torch.tensor([8000]), ["k" * 64])
    assert a.feature_cache.dir != b.feature_cache.dir
    assert b.cache_stats()["cache_misses"] == 1


# ---- the store ----------------------------------------------------------------------------------


def test_put_get_roundtrip_and_sharding(tmp_path):
    cache = FeatureCache(tmp_path, "fp", "float16")
    key = "ab" + "0" * 62
    assert cache.get(key) is None
    feats = torch.randn(7, 5)
    cache.put(key, feats)
    got = cache.get(key)
    assert got.dtype == torch.float16 and got.shape == (7, 5)
    torch.testing.assert_close(got.float(), feats, atol=1e-2, rtol=1e-3)
    assert (tmp_path / "fp" / "ab" / f"{key}.safetensors").is_file()
    assert not list((tmp_path / "fp").rglob("*.tmp"))
    assert cache.stats() == {"cache_hits": 1, "cache_misses": 1, "cache_corrupt": 0}
    assert FeatureCache(tmp_path, "another-fingerprint").get(key) is None, "other encoders never read it"


def test_corrupt_file_is_a_miss_and_rewritten(tmp_path, frozen_model, caplog):
    cache = FeatureCache(tmp_path, "fp", "float32")
    key = "cd" + "1" * 62
    cache.put(key, torch.randn(4, 3))
    path = tmp_path / "fp" / "cd" / f"{key}.safetensors"
    path.write_bytes(path.read_bytes()[:-9])  # truncated
    with caplog.at_level(logging.WARNING):
        assert cache.get(key) is None
    assert "unreadable" in caplog.text and cache.corrupt == 1
    cache.put(key, torch.ones(4, 3))
    assert torch.equal(cache.get(key), torch.ones(4, 3))
    assert cache.get(key, frames=5) is None, "wrong length is treated as corrupt"

    # Through the model: a truncated entry is recomputed and written again.
    audio, lengths, keys = torch.randn(1, 8000), torch.tensor([8000]), ["ef" + "2" * 62]
    frozen_model.encode_audio(audio, lengths, keys)
    entry = frozen_model.feature_cache._path(keys[0])
    entry.write_bytes(b"garbage")
    frozen_model.encode_audio(audio, lengths, keys)
    assert frozen_model.feature_cache.get(keys[0]) is not None


# ---- equality with the encoder ------------------------------------------------------------------


# The encoder is batch-invariant up to float rounding (~1e-6), not bit for bit.
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float16", 2e-3)])
def test_cached_features_equal_encoder_output(tmp_path, frozen_model, dtype, tol):
    encoder = frozen_model.encoder
    lengths = torch.tensor([16000, 5000, 12000, 9000])
    audio = torch.randn(4, 16000) * (torch.arange(16000)[None] < lengths[:, None])
    keys = [f"{i:02d}" + "a" * 62 for i in range(3)] + [None]
    with torch.no_grad():
        want, want_frames = encoder(audio, lengths)
    cache = FeatureCache(tmp_path, "fp", dtype)
    frames = encoder.output_lengths(lengths)
    with torch.no_grad():
        cached_encode(cache, encoder, audio[1:2, :5000], lengths[1:2], keys[1:2], frames[1:2])  # warm one row
        got, got_frames = cached_encode(cache, encoder, audio, lengths, keys, frames)
        again, _ = cached_encode(cache, encoder, audio, lengths, keys, frames)
    assert cache.hits == 1 + 3 and cache.misses == 1 + 2, "row 1 hit, rows 0 and 2 missed, then all three hit"
    assert torch.equal(got_frames, want_frames) and got.shape == want.shape
    torch.testing.assert_close(got, want, atol=tol, rtol=tol)
    assert torch.equal(again[:3], got[:3]), "computed rows pass through the storage dtype: same values when read back"
    torch.testing.assert_close(again[3], want[3], atol=1e-5, rtol=1e-5)  # no key: computed, at full precision


def test_dataset_and_collator_carry_keys(tmp_path, frozen_model):
    wav = _wav(tmp_path / "a.wav")
    recs = [Record("a", str(wav), "x"), Record("b", str(wav), "x", offset=0.1), Record("c", str(tmp_path / "gone.wav"), "x")]
    prompts = frozen_model.prompts
    ds = SpeechDataset(recs, 16000, prompts.prompt_ids, prompts.target_ids, lambda rec: "hi")
    assert ds[0].cache_key == clip_key(wav, 0.0, None, 16000)
    assert ds[1].cache_key not in (None, ds[0].cache_key)
    batch = Collator(frozen_model.audio_token_id, prompts.tokenizer.pad_token_id, frozen_model.token_counter())([ds[0], ds[1], ds[2]])
    assert batch.cache_keys == [ds[0].cache_key, ds[1].cache_key] and batch.skipped == 1


def test_changed_audio_file_is_never_served_stale(tmp_path, frozen_model):
    wav = _wav(tmp_path / "a.wav", seed=0)
    prompts = frozen_model.prompts
    ds = SpeechDataset([Record("a", str(wav), "x")], 16000, prompts.prompt_ids, prompts.target_ids, lambda rec: "hi")
    collate = Collator(frozen_model.audio_token_id, prompts.tokenizer.pad_token_id, frozen_model.token_counter())
    with torch.no_grad():
        first = frozen_model.inputs_embeds(collate([ds[0]]))
        misses = frozen_model.cache_stats()["cache_misses"]
        st = wav.stat()
        _wav(wav, seed=3)
        os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a new file can share the old mtime second
        batch = collate([ds[0]])
        second = frozen_model.inputs_embeds(batch)
        assert frozen_model.cache_stats()["cache_misses"] == misses + 1
        fresh = frozen_model.splice(batch.input_ids, *frozen_model.encode_audio(batch.audio, batch.audio_lengths))
    assert not torch.equal(first, second)
    assert torch.equal(second, fresh)


def test_trainable_encoder_is_not_cached(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        model = build_model(load_config(TINY_RECIPE, [f"model.encoder.cache_dir={tmp_path}"]))  # trainable: full
    assert "not cached" in caplog.text
    model.encode_audio(torch.randn(1, 8000), torch.tensor([8000]), ["k" * 64])
    assert model.cache_stats() == {} and not any(tmp_path.iterdir())


# ---- training -----------------------------------------------------------------------------------


def _cache_log(run_dir) -> list[tuple[int, int, int, float]]:
    return [(r["step"], r["cache_hits"], r["cache_misses"], r["loss"]) for r in read_metrics(run_dir) if "loss" in r]


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float16", 1e-3)])
def test_training_hits_the_cache_and_matches_uncached(tmp_path, tone_corpus, dtype, tol):
    cache = (f"model.encoder.cache_dir={tmp_path / 'cache'}", f"model.encoder.cache_dtype={dtype}")
    plain = train(tiny_config(tmp_path / "plain", tone_corpus, *FROZEN, *TWO_EPOCHS))
    first = train(tiny_config(tmp_path / "first", tone_corpus, *FROZEN, *TWO_EPOCHS, *cache))
    second = train(tiny_config(tmp_path / "second", tone_corpus, *FROZEN, *TWO_EPOCHS, *cache))
    log1, log2 = _cache_log(tmp_path / "first"), _cache_log(tmp_path / "second")
    assert [(s, h, m) for s, h, m, _ in log1] == [(6, 0, 24), (12, 24, 24)], "epoch 1 all misses, epoch 2 all hits"
    assert [(s, h, m) for s, h, m, _ in log2] == [(6, 24, 0), (12, 48, 0)], "a second run reads everything"
    assert [loss for *_, loss in log1] == [loss for *_, loss in log2], "cache state never changes the numbers"
    plain_losses = [r["loss"] for r in read_metrics(tmp_path / "plain") if "loss" in r]
    assert "cache_hits" not in read_metrics(tmp_path / "plain")[0]
    for a, b in zip(plain_losses, [loss for *_, loss in log1]):
        assert abs(a - b) <= tol, (a, b)
    assert abs(plain.valid_loss - second.valid_loss) <= tol and first.valid_loss == second.valid_loss


def test_decode_reads_the_cache_and_logs_counts(tmp_path, tone_corpus, caplog):
    from slamkit.infer.decode import decode

    run = tmp_path / "run"
    train(tiny_config(run, tone_corpus, *FROZEN, "train.max_steps=2", f"model.encoder.cache_dir={tmp_path / 'cache'}"))
    with caplog.at_level(logging.INFO, logger="slamkit"):
        decode(run, tone_corpus["valid"], tmp_path / "hyp.jsonl", ["decode.max_new_tokens=2"])
    assert "encoder feature cache: 6 hits, 0 misses" in caplog.text, "validation at the end of training filled it"


def _hammer(root: str, seed: int, rounds: int) -> int:
    """Write the same 4 keys ``rounds`` times (each key always gets the same features) and read
    them back; returns how many reads came back wrong (should be 0)."""
    import torch as _torch

    from slamkit.models.feature_cache import FeatureCache as _Cache

    cache = _Cache(root, "shared", "float32")
    wanted = {f"{k:02x}" * 32: _torch.arange(12.0 * (k + 1)).reshape(-1, 4) for k in range(4)}
    bad = 0
    for i in range(rounds):
        for key, feats in wanted.items():
            cache.put(key, feats)
            got = cache.get(key)
            bad += got is None or not _torch.equal(got, feats)
    return bad


def test_concurrent_writers_never_leave_a_half_entry(tmp_path) -> None:
    """Two processes writing and reading the same clips (two ranks encoding the same clip)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        bad = pool.starmap(_hammer, [(str(tmp_path), seed, 150) for seed in range(2)])
    assert bad == [0, 0]
    leftovers = [p.name for p in tmp_path.rglob("*.tmp")]
    assert not leftovers, f"temporary files left behind: {leftovers[:3]}"
