"""emotion2vec encoder: both official layouts, fairseq pickles without fairseq, errors, lengths, padding, layers."""

from __future__ import annotations

import copy
import enum
import os
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from slamkit.config import EncoderConfig
from slamkit.models.weights import CheckpointError
from slamkit.models.encoders.data2vec2.fairseq import read_fairseq_checkpoint
from slamkit.models.encoders.data2vec2.emotion2vec import EMOTION2VEC_PRESETS, Emotion2vecEncoder, alibi_slopes, parse_conv_spec
from slamkit.models.encoders.base import build_encoder


def _encoder(**kwargs: Any) -> Emotion2vecEncoder:
    encoder = build_encoder(EncoderConfig(name="emotion2vec", preset="test", **kwargs))
    assert isinstance(encoder, Emotion2vecEncoder)
    return encoder


def _official_keys(prenet: int, depth: int, convs: int, pos_layers: int) -> set[str]:
    """The state-dict keys of fairseq's ``Data2VecMultiModel`` (AUDIO) without its pre-training parts."""
    block = [f"{m}.{w}" for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2") for w in ("weight", "bias")]
    enc = "modality_encoders.AUDIO."
    keys = {enc + "extra_tokens", enc + "alibi_scale", enc + "context_encoder.norm.weight", enc + "context_encoder.norm.bias"}
    keys |= {enc + f"project_features.{i}.{w}" for i in (1, 2) for w in ("weight", "bias")}
    keys |= {enc + f"local_encoder.conv_layers.{i}.{k}" for i in range(convs) for k in ("0.weight", "2.1.weight", "2.1.bias")}
    keys |= {enc + f"relative_positional_encoder.{i + 1}.0.{w}" for i in range(pos_layers) for w in ("weight", "bias")}
    keys |= {enc + f"context_encoder.blocks.{i}.{k}" for i in range(prenet) for k in block}
    return keys | {f"blocks.{i}.{k}" for i in range(depth) for k in block}


def _pretraining_extras(dim: int) -> dict[str, Any]:
    """Entries a real pre-training checkpoint also holds: the EMA teacher and the decoder."""
    return {
        "_ema": {"blocks.0.norm1.weight": torch.ones(dim)},
        "modality_encoders.AUDIO.decoder.blocks.0.0.weight": torch.zeros(8, 4, 3),
        "modality_encoders.AUDIO.decoder.proj.weight": torch.zeros(dim, 8),
    }


def _save_fairseq(path: Path, encoder: Emotion2vecEncoder, model_cfg: dict[str, Any] | None = None, **extra: Any) -> Path:
    cfg = {"model": copy.deepcopy(model_cfg or EMOTION2VEC_PRESETS["test"]), "task": {"_name": "audio_pretraining", "normalize": True}}
    state = {**encoder.model.state_dict(), **_pretraining_extras(encoder.hidden_size)}
    torch.save({"cfg": cfg, "model": state, "args": None, "optimizer_history": [], **extra}, path)
    return path


def _audio(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(len(lengths), max(lengths), generator=gen), torch.tensor(lengths)


def _same_outputs(a: Emotion2vecEncoder, b: Emotion2vecEncoder) -> None:
    audio, lengths = _audio([8000, 5000])
    with torch.no_grad():
        expected, frames = a(audio, lengths)
        got, got_frames = b(audio, lengths)
    assert torch.equal(frames, got_frames)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_fairseq_layout_round_trip(tmp_path: Path) -> None:
    encoder = _encoder(init_seed=3)
    with torch.no_grad():
        encoder.model.encoder.alibi_scale.uniform_(0.2, 2.0)
    assert set(encoder.model.state_dict()) == _official_keys(prenet=1, depth=2, convs=7, pos_layers=2)
    path = _save_fairseq(tmp_path / "emotion2vec_test.pt", encoder)
    loaded = build_encoder(EncoderConfig(name="emotion2vec", path=str(path)))
    _same_outputs(encoder, loaded)  # type: ignore[arg-type]


def _fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **members: Any) -> None:
    """Install ``name`` (and its parent packages) in ``sys.modules`` with ``members``."""
    parts = name.split(".")
    for i in range(1, len(parts)):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), sys.modules.get(".".join(parts[:i])) or types.ModuleType(".".join(parts[:i])))
    module = types.ModuleType(name)
    for key, value in members.items():
        value.__module__, value.__qualname__ = name, key
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


class _Evil:
    """Pickles as a call to ``os.system``: a loader that executes it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _omegaconf_like(monkeypatch: pytest.MonkeyPatch, cfg: Any) -> Any:
    """``cfg`` rebuilt from look-alikes of omegaconf's DictConfig/AnyNode and fairseq's Modality enum."""

    class DictConfig:
        def __init__(self, content: dict[str, Any]) -> None:
            self._metadata, self._parent = {"object_type": dict}, None
            self._content = {k: wrap(v, self) for k, v in content.items()}

        def __getstate__(self) -> dict[str, Any]:
            return dict(self.__dict__)

    class AnyNode:
        def __init__(self, value: Any, parent: Any) -> None:
            self._val, self._parent, self._metadata = value, parent, {"optional": True}

        def __getstate__(self) -> dict[str, Any]:
            return dict(self.__dict__)

    class Modality(enum.Enum):
        AUDIO = 1
        IMAGE = 2

    def wrap(value: Any, parent: Any) -> Any:
        if isinstance(value, dict):
            node = DictConfig(value)
            node._parent = parent  # omegaconf keeps back-references: the pickle has cycles
            return node
        return AnyNode(Modality.AUDIO if value == "AUDIO" else value, parent)

    _fake_module(monkeypatch, "omegaconf.dictconfig", DictConfig=DictConfig)
    _fake_module(monkeypatch, "omegaconf.nodes", AnyNode=AnyNode)
    _fake_module(monkeypatch, "examples.data2vec.data.modality", Modality=Modality)
    return DictConfig(cfg)


def test_fairseq_pickles_load_without_omegaconf_or_fairseq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = _encoder(init_seed=5)
    marker = tmp_path / "pwned"
    path = tmp_path / "emotion2vec_omegaconf.pt"
    with monkeypatch.context() as m:
        cfg = _omegaconf_like(m, {"model": EMOTION2VEC_PRESETS["test"], "task": {"normalize": True}})
        torch.save({"cfg": cfg, "model": {**encoder.model.state_dict(), **_pretraining_extras(32)}, "extra_state": _Evil(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # the plain safe loader refuses these classes
    cfg_read, _ = read_fairseq_checkpoint(path)
    assert not marker.exists(), "a global from the pickle was executed"
    assert cfg_read["model"]["modalities"]["audio"]["num_alibi_heads"] == "${model.num_heads}"
    assert cfg_read["model"]["supported_modality"] == 1  # the enum member's value
    _same_outputs(encoder, build_encoder(EncoderConfig(name="emotion2vec", path=str(path))))  # type: ignore[arg-type]


def test_funasr_directory_layout(tmp_path: Path) -> None:
    encoder = _encoder(init_seed=6)
    conf = copy.deepcopy(EMOTION2VEC_PRESETS["test"])
    conf.update(norm_eps="1e-05", normalize=True)  # YAML 1.1 reads 1e-05 as a string
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": "Emotion2vec", "model_conf": conf, "tokenizer": "CharTokenizer"}))
    head = {"proj.weight": torch.zeros(9, 32), "proj.bias": torch.zeros(9)}  # the emotion2vec+ classifier
    state = encoder.model.state_dict()
    state["modality_encoders.AUDIO.alibi_scale"] = state["modality_encoders.AUDIO.alibi_scale"][0]  # the older 4-D layout
    torch.save({"state_dict": {**state, **head}}, tmp_path / "model.pt")
    _same_outputs(encoder, build_encoder(EncoderConfig(name="emotion2vec", path=str(tmp_path))))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ("missing", "blocks.1.mlp.fc2.bias"),
        ("unexpected", "blocks.0.attn.q_proj.weight"),
        ("shape", "modality_encoders.AUDIO.alibi_scale"),
        ("no_cfg", "'cfg'"),
        ("not_a_dict", "expected a dict"),
        ("image_model", "modalities.audio"),
    ],
)
def test_wrong_checkpoint_names_file_and_keys(tmp_path: Path, edit: str, needle: str) -> None:
    encoder = _encoder()
    path = tmp_path / "bad.pt"
    state = encoder.model.state_dict()
    model_cfg = copy.deepcopy(EMOTION2VEC_PRESETS["test"])
    if edit == "missing":
        del state[needle]
    elif edit == "unexpected":
        state[needle] = torch.zeros(3)
    elif edit == "shape":
        state[needle] = torch.ones(1, 1, 1, 1, 1)
    elif edit == "image_model":
        model_cfg["modalities"] = {"image": {"in_chans": 1}}
    payload: Any = {"cfg": {"model": model_cfg}, "model": state}
    if edit == "no_cfg":
        payload = {"model": state}
    elif edit == "not_a_dict":
        payload = [state]
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as err:
        build_encoder(EncoderConfig(name="emotion2vec", path=str(path)))
    assert str(path) in str(err.value) and needle in str(err.value)


def test_missing_file_and_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_encoder(EncoderConfig(name="emotion2vec", path=str(tmp_path / "nope.pt")))
    with pytest.raises(CheckpointError, match="config.yaml"):
        build_encoder(EncoderConfig(name="emotion2vec", path=str(tmp_path)))
    (tmp_path / "garbled.pt").write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError, match="garbled.pt"):
        build_encoder(EncoderConfig(name="emotion2vec", path=str(tmp_path / "garbled.pt")))
    with pytest.raises(ValueError, match="unknown emotion2vec preset"):
        _encoder().from_config(EncoderConfig(name="emotion2vec", preset="huge"))


def test_output_lengths_match_forward() -> None:
    encoder = _encoder()
    lengths = [400, 401, 719, 720, 1040, 3201, 8000, 12345]
    audio, lens = _audio(lengths)
    with torch.no_grad():
        feats, frames = encoder(audio, lens)
    assert frames.tolist() == encoder.output_lengths(lens).tolist() == [(n - 80) // 320 for n in lengths]
    assert feats.shape == (len(lengths), max(frames), 32) and encoder.frame_rate == 50.0
    for i, n in enumerate(frames.tolist()):
        assert feats[i, n:].abs().sum() == 0 and feats[i, n - 1].abs().sum() > 0
    with pytest.raises(ValueError, match="at least 400 samples"):
        encoder(torch.zeros(1, 399), torch.tensor([399]))


def test_batch_equals_single() -> None:
    encoder = _encoder(init_seed=1)
    lengths = [12345, 3201, 400]
    audio, lens = _audio(lengths, seed=2)
    audio[1, 3201:] = 5.0  # padding contents must not matter
    with torch.no_grad():
        feats, frames = encoder(audio, lens)
        for i, n in enumerate(lengths):
            alone, count = encoder(audio[i : i + 1, :n], torch.tensor([n]))
            assert count.item() == frames[i]
            torch.testing.assert_close(feats[i, : frames[i]], alone[0], rtol=0, atol=1e-5)


def test_waveform_normalisation() -> None:
    encoder = _encoder(init_seed=2)
    audio, lens = _audio([6000])
    with torch.no_grad():
        a, _ = encoder(audio, lens)
        b, _ = encoder(7.0 * audio + 0.3, lens)  # per-clip zero mean / unit variance removes both
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_layer_choice_and_weighted_sum_trains() -> None:
    audio, lens = _audio([6000, 4000])
    with torch.no_grad():
        last, _ = _encoder(init_seed=4)(audio, lens)
        first, _ = _encoder(init_seed=4, layer=0)(audio, lens)
        top, _ = _encoder(init_seed=4, layer=-1)(audio, lens)
    torch.testing.assert_close(top, last, rtol=0, atol=0)
    assert not torch.allclose(first, last)
    summed = _encoder(init_seed=4, layer_sum=True).train()
    feats, _ = summed(audio, lens)
    feats.square().mean().backward()
    assert summed.selector.weights is not None and summed.selector.weights.grad is not None
    assert summed.selector.weights.grad.abs().sum() > 0


def test_layers_lora_names_and_base_size() -> None:
    encoder = _encoder()
    assert encoder.transformer_layers() is encoder.model.blocks and len(encoder.transformer_layers()) == 2
    names = {name.rsplit(".", 1)[-1] for name, _ in encoder.named_modules()}
    assert {"qkv", "proj"} <= names and "q_proj" not in names
    with torch.device("meta"):
        base = Emotion2vecEncoder.from_config(EncoderConfig(name="emotion2vec", preset="base"))
    assert sum(p.numel() for p in base.parameters()) == 93_171_212
    assert base.hidden_size == 768 and base.frame_rate == 50.0 and len(base.transformer_layers()) == 8


def test_conv_spec_and_alibi_slopes() -> None:
    assert parse_conv_spec("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]") == [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    with pytest.raises(ValueError):
        parse_conv_spec("[(512, 10, 5)] + __import__('os').system('true')")
    assert alibi_slopes(8) == [2.0 ** -(i + 1) for i in range(8)]
    assert alibi_slopes(12)[8:] == alibi_slopes(16)[0::2][:4]
