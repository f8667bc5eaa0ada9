"""Prompt building: (prompt text, target text) -> token ids around one audio placeholder."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from slamkit.config import LLMConfig


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
