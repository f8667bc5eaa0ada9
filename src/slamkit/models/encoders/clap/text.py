"""CLAP's text branch, and audio-text similarity from one local ``ClapModel`` directory.

**Checkpoint.** A Hugging Face ``ClapModel`` directory (``config.json`` with ``model_type: clap``,
e.g. ``laion/clap-htsat-unfused`` saved locally) with its tokenizer files (LAION's is a RoBERTa
byte-level BPE: ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``). :func:`load_clap_text`
reads only ``text_model.*`` and ``text_projection.*``; the audio side is read by
:func:`slamkit.models.encoders.clap.audio.load_clap_audio`, whose front end (48 kHz log-mel, 10 s windows)
is reused as is. A missing or unexpected text key is a :class:`CheckpointError` naming the file.

**Embeddings.** :meth:`ClapTextEncoder.embed` is HF's ``ClapModel.get_text_features``: tokens
(right-padded, truncated to what the position table holds) -> RoBERTa text model -> pooled ``<s>``
output -> projection MLP -> L2 normalisation, ``[n, projection_dim]``. The audio embedding is
:meth:`CLAPEncoder.embed` (``get_audio_features`` for clips of at most one window; longer clips
average their windows). Both are unit vectors, so a dot product is their cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import (
    AutoTokenizer,
    ClapConfig,
    ClapTextConfig,
    PreTrainedTokenizerBase,
)
from transformers.models.clap.modeling_clap import ClapProjectionLayer, ClapTextModel

from slamkit.models.weights import (
    CheckpointError,
    check_state_dict,
    hf_weight_files,
    read_hf_config,
    read_hf_tensors,
)
from slamkit.models.encoders.clap.audio import CLAPEncoder, load_clap_audio

CLAP_TEXT_FORMAT = "Hugging Face ClapModel directory (text tower)"
_TEXT_PREFIXES = ("text_model.", "text_projection.")
_DERIVED = ("embeddings.position_ids", "embeddings.token_type_ids")  # constant buffers; may be absent from a save


class ClapTextEncoder(nn.Module):
    """Texts -> L2-normalised CLAP text embeddings ``[n, projection_dim]``.

    Args:
        model: transformers' ``ClapTextModel`` (with its pooler).
        projection: the ``ClapModel``'s ``text_projection``.
        tokenizer: the checkpoint's tokenizer; its pad id must be the model's ``pad_token_id``
            (RoBERTa positions count non-pad tokens).
    """

    def __init__(self, model: ClapTextModel, projection: ClapProjectionLayer, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__()
        config: ClapTextConfig = model.config
        if tokenizer.pad_token_id != config.pad_token_id:
            raise CheckpointError(f"CLAP tokenizer pads with id {tokenizer.pad_token_id}, the text model expects pad_token_id {config.pad_token_id}")
        self.model = model
        self.projection = projection
        self.tokenizer = tokenizer
        # RoBERTa positions start after the pad id: this many tokens fit the position table.
        self.max_tokens = min(int(tokenizer.model_max_length), config.max_position_embeddings - config.pad_token_id - 1)
        self.train(False)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ClapTextEncoder:
        """The text tower, projection and tokenizer of the ``ClapModel`` directory ``path``."""
        return cls(*load_clap_text(path))

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """``input_ids`` and ``attention_mask`` ``[n, s]`` (right-padded, truncated), on this module's device."""
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        device = self.projection.linear1.weight.device
        return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}

    @torch.no_grad()
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """``n`` strings -> unit vectors ``[n, projection_dim]`` (float32), in chunks of ``batch_size``."""
        if not texts:
            return torch.zeros(0, self.projection.linear2.out_features, device=self.projection.linear1.weight.device)
        chunks = []
        for start in range(0, len(texts), batch_size):
            pooled = self.model(**self.tokenize(texts[start : start + batch_size])).pooler_output  # [c, hidden]
            chunks.append(F.normalize(self.projection(pooled).float(), dim=-1))
        return torch.cat(chunks)


def load_clap_text(path: str | Path) -> tuple[ClapTextModel, ClapProjectionLayer, PreTrainedTokenizerBase]:
    """The text tower (float32), text projection and tokenizer of the ``ClapModel`` directory ``path``.

    Raises:
        FileNotFoundError: ``path`` is not a directory.
        CheckpointError: not a ``ClapModel`` directory, text weights that do not fit its config
            exactly (names the file and keys), or no loadable tokenizer.
    """
    path = Path(path)
    read_hf_config(path, ("clap",))  # a ClapAudioModel(WithProjection) save has no text tower
    config = ClapConfig.from_pretrained(path).text_config
    files = hf_weight_files(path)
    source = ", ".join(str(f) for f in files)
    state = {k: v.float() if v.is_floating_point() else v for k, v in read_hf_tensors(files, keep=lambda k: k.startswith(_TEXT_PREFIXES)).items()}
    model, projection = ClapTextModel(config), ClapProjectionLayer(config)
    expected = {f"text_model.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    expected.update({f"text_projection.{k}": tuple(v.shape) for k, v in projection.state_dict().items()})
    expected = {k: s for k, s in expected.items() if k in state or not k.endswith(_DERIVED)}
    check_state_dict(expected, state, source, CLAP_TEXT_FORMAT)
    model.load_state_dict({k.removeprefix("text_model."): v for k, v in state.items() if k.startswith("text_model.")}, strict=False)
    projection.load_state_dict({k.removeprefix("text_projection."): v for k, v in state.items() if k.startswith("text_projection.")})
    return model.eval(), projection.eval(), _load_tokenizer(path)


def _load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: no loadable CLAP tokenizer (tokenizer.json, or vocab.json + merges.txt): {err}") from None


class ClapSimilarity(nn.Module):
    """Both towers of one ``ClapModel``: clips and texts -> unit embeddings -> cosine similarities."""

    def __init__(self, audio: CLAPEncoder, text: ClapTextEncoder) -> None:
        super().__init__()
        if audio.projection is None:
            raise CheckpointError("CLAP similarity needs the audio projection (a ClapModel directory)")
        if audio.projection.linear2.out_features != text.projection.linear2.out_features:
            raise CheckpointError("CLAP audio and text projections differ in size")
        self.audio = audio
        self.text = text
        self.sample_rate = audio.sample_rate

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ClapSimilarity:
        """Both towers and the front end of the ``ClapModel`` directory ``path`` (text side checked first)."""
        text = ClapTextEncoder.from_pretrained(path)
        return cls(CLAPEncoder(*load_clap_audio(path)), text)

    @torch.no_grad()
    def embed_audio(self, waves: Sequence[np.ndarray | Tensor]) -> Tensor:
        """Mono clips ``[t_i]`` at :attr:`sample_rate` -> unit vectors ``[b, projection_dim]`` (one padded batch)."""
        device = self.audio.projection.linear1.weight.device  # type: ignore[union-attr]
        clips = [torch.as_tensor(w, dtype=torch.float32) for w in waves]
        lengths = torch.tensor([len(c) for c in clips], device=device)
        audio = nn.utils.rnn.pad_sequence(clips, batch_first=True).to(device)
        return self.audio.embed(audio, lengths).float()

    def embed_text(self, texts: Sequence[str]) -> Tensor:
        """Strings -> unit vectors ``[n, projection_dim]``."""
        return self.text.embed(texts)

    def scores(self, waves: Sequence[np.ndarray | Tensor], texts: Sequence[Sequence[str]]) -> list[list[float]]:
        """Cosine similarity of clip ``i`` with each of its texts ``texts[i]`` (one text batch for all)."""
        if len(waves) != len(texts):
            raise ValueError(f"{len(waves)} clips but {len(texts)} text lists")
        audio = self.embed_audio(waves)  # [b, p]
        flat = [t for group in texts for t in group]
        text = self.embed_text(flat)  # [sum n_i, p]
        out, start = [], 0
        for i, group in enumerate(texts):
            out.append((text[start : start + len(group)] @ audio[i]).tolist())
            start += len(group)
        return out
