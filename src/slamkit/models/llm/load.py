"""Causal LLM + tokenizer loading and the audio placeholder token.

An LLM comes from a local Hugging Face directory, a hub id (only when the user names one), a
GGUF file (:mod:`slamkit.models.llm.gguf`), or a random-weight preset built entirely offline
(``tiny``: a 2-layer Llama with a byte-level tokenizer), so tests and the tiny recipe need no download.

The audio placeholder is a special token added to the tokenizer. Its embedding is never looked
up (audio embeddings replace it), so the LLM's embedding matrix is not resized.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from slamkit.assets import resolve_path
from slamkit.config import LLMConfig
from slamkit.models.llm.gguf import load_gguf
from slamkit.registry import Registry

log = logging.getLogger(__name__)

LLM_PRESETS: Registry[Callable[[LLMConfig], tuple[nn.Module, PreTrainedTokenizerBase]]] = Registry("LLM preset")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def byte_tokenizer() -> PreTrainedTokenizerBase:
    """A byte-level tokenizer built offline: 256 byte symbols + <s>, </s>, <pad>.

    Every string round-trips exactly; no file or download is needed.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _llama_preset(hidden: int, layers: int, heads: int, kv_heads: int, ffn: int, init: float) -> Callable[[LLMConfig], tuple[nn.Module, PreTrainedTokenizerBase]]:
    """A random Llama with the byte tokenizer.

    ``init`` is the weight std. Small random models need a larger one than Llama's 0.02: the
    output head sees RMS-normalised states, so with std 0.02 and hidden 64 no logit can exceed
    ~1.3 and a frozen random LLM could never become confident, whatever LoRA learns.
    """

    def build(cfg: LLMConfig) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        tok = byte_tokenizer()
        config = LlamaConfig(
            vocab_size=len(tok), hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=2048,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            tie_word_embeddings=False, initializer_range=init,
        )
        return LlamaForCausalLM(config), tok

    return build


LLM_PRESETS.register("tiny")(_llama_preset(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, init=0.2))
LLM_PRESETS.register("small")(_llama_preset(hidden=256, layers=4, heads=4, kv_heads=4, ffn=768, init=0.1))


def _vicuna_7b_config() -> LlamaConfig:
    return LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                       bos_token_id=1, eos_token_id=2, pad_token_id=0)


def _big_preset(make_config: Callable[[], LlamaConfig]) -> Callable[[LLMConfig], tuple[nn.Module, PreTrainedTokenizerBase]]:
    """Real-size random architectures (for shape checks; build them under ``torch.device('meta')``).

    They pair with the byte tokenizer, so token ids are only meaningful for the tiny presets.
    """

    def build(cfg: LLMConfig) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        tok = byte_tokenizer()
        return LlamaForCausalLM(make_config()), tok

    return build


LLM_PRESETS.register("vicuna-7b")(_big_preset(_vicuna_7b_config))


def load_llm(cfg: LLMConfig) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """Load (or build) the causal LM and its tokenizer; add the audio placeholder token."""
    if cfg.path is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.init_seed)
            model, tok = LLM_PRESETS.get(cfg.preset)(cfg)
        model = model.to(_DTYPES[cfg.dtype])  # presets honour model.llm.dtype as checkpoints do
    else:
        model, tok = _load_pretrained(dataclasses.replace(cfg, path=resolve_path(cfg.path)))
    if tok.pad_token_id is None:
        # Many LLM tokenizers have no pad token; padding positions are masked, so eos serves.
        tok.pad_token = tok.eos_token
    tok.add_special_tokens({"additional_special_tokens": [cfg.audio_token]})
    return model, tok


def _load_pretrained(cfg: LLMConfig) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    path = cfg.path
    assert path is not None
    local = Path(path).expanduser()
    if local.suffix.lower() == ".gguf":
        return load_gguf(local, _DTYPES[cfg.dtype])
    if local.exists() and not (local / "config.json").is_file():
        raise FileNotFoundError(f"model.llm.path={path}: no config.json in that directory (expected a Hugging Face model directory)")
    if not local.exists() and (path.startswith((".", "/", "~")) or path.count("/") != 1):
        raise FileNotFoundError(f"model.llm.path={path}: no such directory (and it is not a hub id of the form org/name)")
    src = str(local) if local.exists() else path
    log.info("loading LLM from %s", src)
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=_DTYPES[cfg.dtype])
    return model, tok
