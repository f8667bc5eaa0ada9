"""GGUF LLM files, loaded through transformers' GGUF support and dequantised once into an on-disk cache.

Dequantising to float32 takes seconds to minutes. The result is saved once as an ordinary Hugging
Face directory under ``$SLAMKIT_CACHE`` (default ``~/.cache/slamkit``) in ``llm/<name>-<size>-<hash>/``,
keyed by the file's resolved path, size and mtime, so later loads read safetensors and take well
under a second.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from slamkit.assets import cache_root

log = logging.getLogger(__name__)


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
