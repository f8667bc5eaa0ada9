"""Causal LLM + tokenizer loading, the audio placeholder token, and prompt building.

An LLM comes from a local Hugging Face directory, a hub id (only when the user names one), a
GGUF file, or a random-weight preset built entirely offline (``tiny``: a 2-layer Llama with a
byte-level tokenizer), so tests and the tiny recipe need no download.

A GGUF file is loaded through transformers' GGUF support and dequantised to float32, which takes
seconds to minutes. The result is saved once as an ordinary Hugging Face directory under
``$SLAMKIT_CACHE`` (default ``~/.cache/slamkit``) in ``llm/<name>-<size>-<hash>/``, keyed by the
file's resolved path, size and mtime, so later loads read safetensors and take well under a second.

The audio placeholder is a special token added to the tokenizer. Its embedding is never looked
up (audio embeddings replace it), so the LLM's embedding matrix is not resized.
"""

from __future__ import annotations

import hashlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from slamkit.assets import resolve_path
from slamkit.config import LLMConfig
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


# ---------------------------------------------------------------------------------------------
# GGUF files, dequantised once into an on-disk cache
# ---------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """slamkit's cache folder: ``$SLAMKIT_CACHE`` or ``~/.cache/slamkit``."""
    return Path(os.environ.get("SLAMKIT_CACHE") or "~/.cache/slamkit").expanduser()


def gguf_cache_dir(file: Path) -> Path:
    """Where the dequantised copy of the GGUF ``file`` lives: ``llm/<name>-<size>-<hash>/``.

    The hash covers the resolved path, size and mtime, so a replaced file gets a new entry.
    """
    file = file.resolve()
    st = file.stat()
    digest = hashlib.sha256(f"{file}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root() / "llm" / f"{file.stem}-{st.st_size}-{digest}"


def load_gguf(file: Path, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """Causal LM + tokenizer of a GGUF file, from the dequantised cache (built on first use)."""
    if not file.is_file():
        raise FileNotFoundError(f"model.llm.path={file}: no such GGUF file")
    cached = gguf_cache_dir(file)
    if not (cached / "config.json").is_file():
        model, tok = _dequantise_gguf(file)
        try:
            _save_atomically(model, tok, cached)
        except OSError as exc:  # a read-only cache costs time, not the run
            log.warning("could not write the LLM cache %s (%s); set SLAMKIT_CACHE to a writable folder", cached, exc)
        return model.to(dtype), tok
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(cached))
    model = AutoModelForCausalLM.from_pretrained(str(cached), dtype=dtype)
    log.info("loaded LLM %s from its dequantised cache %s in %.2f s", file.name, cached, time.perf_counter() - start)
    return model, tok


def _dequantise_gguf(file: Path) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """Model (float32, serialisable) and tokenizer read from the GGUF ``file`` itself (slow)."""
    log.info("dequantising %s to float32 (once; later loads read the cache)", file)
    start = time.perf_counter()
    folder, name = str(file.resolve().parent), file.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = _plain_copy(loaded)
    log.info("dequantised %s in %.1f s", file.name, time.perf_counter() - start)
    return model, tok


def _save_atomically(model: nn.Module, tok: PreTrainedTokenizerBase, cached: Path) -> None:
    """Save model + tokenizer into ``cached`` via a temp folder and a rename."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cached.name}.", dir=cached.parent))
    try:
        tmp.chmod(0o755)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, cached)
        except OSError:
            if not (cached / "config.json").is_file():  # a concurrent writer that won is fine
                raise
        log.info("saved the dequantised LLM to %s", cached)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _plain_copy(loaded: nn.Module) -> nn.Module:
    """A serialisable twin of a GGUF-loaded model (same weights, no quantizer attached).

    transformers refuses to ``save_pretrained`` a model loaded with ``gguf_file`` ("quantized with
    gguf and is not serializable"), although its weights are plain float32 tensors.
    """
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = loaded.generation_config
    return model.eval()


@dataclass
class PromptBuilder:
    """Turns (prompt text, target text) into token ids around one audio placeholder.

    With a chat template the user turn holds the audio placeholder and the prompt, and the
    assistant turn is the target; otherwise ``plain_template`` is used. The returned prompt ids
    contain the placeholder exactly once; the collator expands it to the model's audio length.
    """

    tokenizer: PreTrainedTokenizerBase
    cfg: LLMConfig

    @property
    def audio_token_id(self) -> int:
        return int(self.tokenizer.convert_tokens_to_ids(self.cfg.audio_token))

    @property
    def uses_chat_template(self) -> bool:
        return self.cfg.use_chat_template and bool(getattr(self.tokenizer, "chat_template", None))

    def _content(self, prompt: str) -> str:
        audio = self.cfg.audio_token
        return f"{audio}{prompt}" if self.cfg.audio_position == "before" else f"{prompt}{audio}"

    def prompt_text(self, prompt: str) -> str:
        """The rendered prompt (everything before the target), with one audio token."""
        content = self._content(prompt)
        if self.uses_chat_template:
            messages = []
            if self.cfg.system_prompt is not None:
                messages.append({"role": "system", "content": self.cfg.system_prompt})
            messages.append({"role": "user", "content": content})
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        text = self.cfg.plain_template.format(content=content)
        bos = self.tokenizer.bos_token
        return f"{bos}{text}" if bos and not text.startswith(bos) else text

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of the prompt; contains the audio placeholder id exactly once."""
        ids = self.tokenizer(self.prompt_text(prompt), add_special_tokens=False)["input_ids"]
        count = ids.count(self.audio_token_id)
        if count != 1:
            raise ValueError(f"the rendered prompt holds the audio token {count} times (expected 1): {self.prompt_text(prompt)!r}")
        return ids

    def target_ids(self, target: str) -> list[int]:
        """Token ids of the target followed by the end-of-sequence token."""
        ids = self.tokenizer(target, add_special_tokens=False)["input_ids"]
        return ids + [int(self.tokenizer.eos_token_id)]

    def decode(self, ids: list[int]) -> str:
        """Generated ids -> text, without special tokens."""
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()
