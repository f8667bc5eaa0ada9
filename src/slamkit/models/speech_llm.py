"""SpeechLLM: encode -> project -> splice into token embeddings -> causal LLM; generate().

The model owns the length arithmetic (:meth:`SpeechLLM.token_counter`, a pure rule the collator
uses without calling the model), the feature cache of a frozen encoder
(:mod:`slamkit.models.feature_cache`: clips are looked up by the keys the dataset computed and
only the misses run through the encoder), the splice with its count check, the forward pass up
to the logits at target positions, and batched generation with left padding where audio enters
only in the prefill. What is optimised (LM loss, pre-alignment, CTC) is not its business: the
training objectives (:mod:`slamkit.train.objectives`) read :class:`ForwardOutput`.

Rows without audio (``audio_lengths`` 0: text-only records, docs/text-only.md) get no audio
embeddings; the encoder runs only on the rows that have audio, and not at all on an all-text batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from slamkit.config import Config, DecodeConfig, EncoderConfig
from slamkit.models.feature_cache import FeatureCache, cached_encode, encoder_fingerprint
from slamkit.batch import IGNORE_INDEX, Batch
from slamkit.models.encoders.base import AudioEncoder, build_encoder, frame_mask, unfreeze_encoder_parts
from slamkit.models.lengths import AudioTokenCounter
from slamkit.models.llm import PromptBuilder, load_llm
from slamkit.models.lora import apply_trainability, count_parameters, keep_trainable_fp32
from slamkit.models.projectors import Projector, build_projector

log = logging.getLogger(__name__)


class SpliceError(ValueError):
    """The number of audio placeholders does not match the number of audio embeddings."""


@dataclass
class ForwardOutput:
    """What one forward pass produces; the training objectives turn it into a loss."""

    audio_embeds: Tensor  # [b, t_p, d_llm] projector outputs (rows past audio_lengths are padding)
    audio_lengths: Tensor  # [b] valid audio embeddings per row
    logits: Tensor | None  # [n_targets, vocab] at the positions whose next token is a target; None without the LLM pass
    targets: Tensor | None  # [n_targets] those next tokens; None without the LLM pass
    anchor: Tensor | None = None  # an empty batch's stand-in: 0, but with a gradient path to every trainable weight


class SpeechLLM(nn.Module):
    """Audio encoder + projector + causal LLM."""

    def __init__(self, encoder: AudioEncoder, projector: Projector, llm: nn.Module, prompts: PromptBuilder) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.llm = llm
        self.prompts = prompts
        self.audio_token_id = prompts.audio_token_id
        self.train_encoder = any(p.requires_grad for p in encoder.parameters())
        self.feature_cache: FeatureCache | None = None
        self.full_logits = False  # model.llm.full_logits: the output head over every position
        self._cache_spec: tuple[str, str, str] | None = None  # (root, config fingerprint, dtype)

    # ---- lengths -------------------------------------------------------------------------
    def token_counter(self) -> AudioTokenCounter:
        """Audio embeddings per clip as a pure, picklable rule of the encoder's and projector's
        configuration (what the collator uses; no call into this module)."""
        return AudioTokenCounter(self.encoder.length_rule(), self.projector.length_rule())

    def audio_token_count(self, num_samples: int) -> int:
        """Audio embeddings produced for a clip of ``num_samples`` samples."""
        return self.token_counter()(num_samples)

    @property
    def embedding_table(self) -> Tensor:
        """The LLM's input embedding table ``[vocab, d_llm]`` (what audio embeddings are aligned to)."""
        return self.llm.get_input_embeddings().weight

    @property
    def pad_token_id(self) -> int:
        """The tokenizer's pad token (the CTC blank of the alignment objectives)."""
        return int(self.prompts.tokenizer.pad_token_id)

    # ---- the feature cache ---------------------------------------------------------------
    def attach_feature_cache(self, cfg: EncoderConfig) -> None:
        """Serve this (frozen) encoder's outputs from ``cfg.cache_dir``.

        The cache folder is chosen at first use, from the config fingerprint and a digest of the
        encoder's weights as they are then (after any checkpoint was loaded).
        """
        if self.train_encoder:
            log.warning("model.encoder.cache_dir is set but the encoder trains (trainable=%s): features are not cached", cfg.trainable)
            return
        assert cfg.cache_dir is not None
        self._cache_spec = (cfg.cache_dir, encoder_fingerprint(cfg), cfg.cache_dtype)

    def _active_cache(self) -> FeatureCache | None:
        if self._cache_spec is None or self.train_encoder:
            return None
        if self.feature_cache is None:
            root, fingerprint, dtype = self._cache_spec
            self.feature_cache = FeatureCache.for_encoder(root, fingerprint, self.encoder, dtype)  # type: ignore[arg-type]
            log.info("encoder feature cache: %s", self.feature_cache.dir)
        return self.feature_cache

    def cache_stats(self) -> dict[str, int]:
        """Feature-cache counters (``cache_hits``, ``cache_misses``, …); empty when no cache is attached."""
        if self._cache_spec is None or self.train_encoder:
            return {}
        return self.feature_cache.stats() if self.feature_cache else {"cache_hits": 0, "cache_misses": 0, "cache_corrupt": 0}

    # ---- the path of one batch -----------------------------------------------------------
    def encode_audio(self, audio: Tensor, lengths: Tensor, cache_keys: list[str | None] | None = None) -> tuple[Tensor, Tensor]:
        """[b, t] waveform, [b] samples -> [b, t_p, d_llm] embeddings, [b] valid positions.

        ``cache_keys`` ([b] clip keys, None entries allowed) lets a frozen encoder with an attached
        cache read stored features and run only on the clips it has not seen.
        """
        if self.train_encoder:
            feats, feat_lengths = self.encoder(audio, lengths)
        else:
            with torch.no_grad():
                feats, feat_lengths = self._frozen_features(audio, lengths, cache_keys)
        return self.projector(feats, feat_lengths)

    def _frozen_features(self, audio: Tensor, lengths: Tensor, cache_keys: list[str | None] | None) -> tuple[Tensor, Tensor]:
        """Encoder features ``[b, t_e, d_e]``, frames ``[b]``, through the cache when one is active."""
        cache = self._active_cache()
        if cache is None or not cache_keys or all(k is None for k in cache_keys):
            return self.encoder(audio, lengths)
        frames = self.encoder.output_lengths(lengths)
        dtype = next(self.encoder.parameters()).dtype
        return cached_encode(cache, self.encoder, audio, lengths, list(cache_keys), frames, dtype)

    def splice(self, input_ids: Tensor, audio_embeds: Tensor, audio_lengths: Tensor) -> Tensor:
        """Token embeddings of ``input_ids`` [b, s] with audio written at placeholder positions.

        Row i must hold exactly ``audio_lengths[i]`` placeholders; they receive the first
        ``audio_lengths[i]`` rows of ``audio_embeds[i]`` in order.
        """
        is_audio = input_ids == self.audio_token_id
        counts = is_audio.sum(dim=1)
        if not torch.equal(counts.cpu(), audio_lengths.cpu()):
            raise SpliceError(f"audio placeholders per row {counts.tolist()} != audio embeddings per row {audio_lengths.tolist()}")
        embed = self.llm.get_input_embeddings()
        # The placeholder id may lie outside the embedding table; its rows are overwritten anyway.
        embeds = embed(input_ids.masked_fill(is_audio, 0))
        valid = frame_mask(audio_lengths, audio_embeds.shape[1])
        return embeds.masked_scatter(is_audio.unsqueeze(-1), audio_embeds[valid].to(embeds.dtype))

    def encode_batch(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """:meth:`encode_audio` of a batch's rows that have audio: ``[b, t_p, d_llm]`` embeddings
        and ``[b]`` lengths, zero (no embeddings) on rows with ``audio_lengths`` 0 (text-only)."""
        has_audio = batch.audio_lengths > 0
        if bool(has_audio.all()):
            return self.encode_audio(batch.audio, batch.audio_lengths, batch.cache_keys)
        b, table = batch.audio.shape[0], self.embedding_table
        lengths = torch.zeros(b, dtype=torch.long, device=batch.audio_lengths.device)
        if not bool(has_audio.any()):  # all text: the encoder (and its feature cache) is not touched
            return table.new_zeros(b, 0, table.shape[1]), lengths
        rows = has_audio.nonzero().squeeze(1)
        width = int(batch.audio_lengths.max())
        keys = [batch.cache_keys[i] for i in rows.tolist()] if batch.cache_keys else None
        embeds, row_lengths = self.encode_audio(batch.audio[rows, :width], batch.audio_lengths[rows], keys)
        out = embeds.new_zeros(b, *embeds.shape[1:])
        out[rows] = embeds
        lengths[rows] = row_lengths.to(lengths)
        return out, lengths

    def inputs_embeds(self, batch: Batch) -> Tensor:
        """The LLM input embeddings [b, s, d_llm] for a collated batch."""
        audio_embeds, audio_lengths = self.encode_batch(batch)
        return self.splice(batch.input_ids, audio_embeds, audio_lengths)

    def forward(self, batch: Batch, with_llm: bool = True) -> ForwardOutput:
        """Encode and project the audio; with ``with_llm``, splice and run the LLM to the logits
        at every position whose next token is a target (``labels[:, 1:] != IGNORE_INDEX``).

        An empty batch (a process whose share of a global batch is empty) returns only an ``anchor``:
        a zero connected to every trainable weight, so that the process still takes part in the
        gradient all-reduce and contributes nothing to it.
        """
        if batch.audio.shape[0] == 0:
            anchor = sum((p.reshape(-1)[:1].sum() for p in self.parameters() if p.requires_grad),
                         torch.zeros((), device=self.embedding_table.device)) * 0.0
            empty = torch.zeros(0, device=anchor.device)
            return ForwardOutput(empty, empty.long(), None, None, anchor)
        audio_embeds, audio_lengths = self.encode_batch(batch)
        if not with_llm:
            return ForwardOutput(audio_embeds, audio_lengths, None, None)
        embeds = self.splice(batch.input_ids, audio_embeds, audio_lengths)
        labels = batch.labels[:, 1:]
        mask = labels != IGNORE_INDEX  # [b, s-1]: positions whose next token is a target
        logits = self.target_logits(embeds, batch.attention_mask, mask)  # [n_targets, vocab]
        return ForwardOutput(audio_embeds, audio_lengths, logits, labels[mask])

    def target_logits(self, embeds: Tensor, attention_mask: Tensor, mask: Tensor) -> Tensor:
        """Logits [n, vocab] at the positions ``mask`` [b, s-1] selects.

        The output head runs only where a target is predicted (a third of the positions or
        fewer): with a 49 k vocabulary the head over every position costs a fifth of a step.
        Models whose head is more than a linear layer (logit soft-capping) take the full path, as
        does ``model.llm.full_logits`` (the original's computation, for benchmarks).
        """
        body, head = getattr(self.llm, "model", None), self.llm.get_output_embeddings()
        if self.full_logits or body is None or head is None or getattr(self.llm.config, "final_logit_softcapping", None):
            return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).logits[:, :-1][mask]
        hidden = body(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state
        return head(hidden[:, :-1][mask])

    @torch.no_grad()
    def generate(self, batch: Batch, cfg: DecodeConfig, streamer: Any = None) -> list[str]:
        """Decode a left-padded batch (no targets in ``input_ids``) to text. ``streamer`` (greedy
        decoding only): a transformers ``BaseStreamer`` handed each step's new tokens ``[b]``."""
        embeds = self.inputs_embeds(batch)
        tok = self.prompts.tokenizer
        extra = {"streamer": streamer} if streamer is not None else {}
        out = self.llm.generate(
            inputs_embeds=embeds, attention_mask=batch.attention_mask, max_new_tokens=cfg.max_new_tokens,
            do_sample=False, num_beams=cfg.beam_size, length_penalty=cfg.length_penalty,
            repetition_penalty=cfg.repetition_penalty, no_repeat_ngram_size=cfg.no_repeat_ngram_size,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **self._suppress(), **extra,
        )
        return [self.prompts.decode(row.tolist()) for row in out]

    @torch.no_grad()
    def generate_candidates(self, batch: Batch, cfg: DecodeConfig, n: int) -> list[list[str]]:
        """Up to ``n`` distinct hypotheses per clip, best beam first: ``[b][<= n]`` texts.

        One beam search of ``max(n, cfg.beam_size)`` beams returns all its finished beams
        (``num_return_sequences``), ordered by beam score; texts are de-duplicated (two beams may
        decode to the same string) and the first ``n`` kept. The audio is encoded once. This is
        SLAM-AAC's CLAP-Refine candidate set in a single pass instead of one search per beam size.
        """
        if n < 1:
            raise ValueError(f"decode.rerank_candidates must be >= 1, got {n}")
        beams = max(n, cfg.beam_size)
        tok = self.prompts.tokenizer
        out = self.llm.generate(
            inputs_embeds=self.inputs_embeds(batch), attention_mask=batch.attention_mask, max_new_tokens=cfg.max_new_tokens,
            do_sample=False, num_beams=beams, num_return_sequences=beams, length_penalty=cfg.length_penalty,
            repetition_penalty=cfg.repetition_penalty, no_repeat_ngram_size=cfg.no_repeat_ngram_size,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **self._suppress(),
        )
        texts = [self.prompts.decode(row.tolist()) for row in out]  # [b * beams], clip-major
        return [list(dict.fromkeys(texts[i * beams : (i + 1) * beams]))[:n] for i in range(len(batch.keys))]

    def _suppress(self) -> dict:
        vocab = self.llm.get_output_embeddings().weight.shape[0]
        return {"suppress_tokens": [self.audio_token_id]} if self.audio_token_id < vocab else {}

    # ---- modes ---------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "SpeechLLM":
        """Train mode for the parts that train; frozen parts stay in eval (no dropout)."""
        super().train(mode)
        for part in (self.encoder, self.projector, self.llm):
            if not any(p.requires_grad for p in part.parameters()):
                part.eval()
        return self


def build_model(cfg: Config) -> SpeechLLM:
    """Build the full model from a config (pretrained parts loaded, random parts seeded)."""
    m = cfg.model
    encoder = build_encoder(m.encoder)
    llm, tokenizer = load_llm(m.llm)
    d_llm = llm.get_input_embeddings().weight.shape[1]
    projector = build_projector(m.projector, encoder.hidden_size, d_llm)
    encoder = apply_trainability(encoder, m.encoder.trainable, m.lora, m.lora.encoder_target_modules)
    unfreeze_encoder_parts(encoder, m.encoder.unfreeze_top)
    projector = apply_trainability(projector, m.projector.trainable, m.lora, m.lora.target_modules)
    llm = apply_trainability(llm, m.llm.trainable, m.lora, m.lora.target_modules)
    for part in (encoder, projector, llm):
        keep_trainable_fp32(part)
    model = SpeechLLM(encoder, projector, llm, PromptBuilder(tokenizer, m.llm))
    model.full_logits = m.llm.full_logits
    if m.encoder.cache_dir:
        model.attach_feature_cache(m.encoder)
    return model


def parameter_report(model: SpeechLLM) -> dict[str, tuple[int, int]]:
    """(trainable, total) parameters per part and overall."""
    report = {name: count_parameters(getattr(model, name)) for name in ("encoder", "projector", "llm")}
    report["total"] = count_parameters(model)
    return report
