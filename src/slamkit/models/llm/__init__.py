"""The causal LLM: loading (HF directory, hub id, GGUF, offline presets) and prompt building."""

from slamkit.models.llm.gguf import gguf_cache_dir, load_gguf
from slamkit.models.llm.load import LLM_PRESETS, byte_tokenizer, load_llm
from slamkit.models.llm.prompt import PromptBuilder

__all__ = ["LLM_PRESETS", "PromptBuilder", "byte_tokenizer", "gguf_cache_dir", "load_gguf", "load_llm"]
