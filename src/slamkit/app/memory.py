"""Per-GPU memory of a recipe for 1…N GPUs under DDP and FSDP, computed from the model's real sizes.

The model is built at its real size on the meta device (no memory, no weights), so every parameter
count and dtype is the recipe's own, after slamkit's precision rule (trainable weights in fp32).
Terms, in bytes per GPU:

- **weights**: every parameter at its dtype (a frozen bf16 LLM: 2 B each; a frozen fp32 encoder: 4 B);
  FSDP divides them by the number of GPUs and adds the two largest layers gathered at once
  (the one running and the one prefetched);
- **training state**: per trainable parameter its fp32 gradient and AdamW's two fp32 moments
  (12 B; the fp32 weight is in *weights*); FSDP divides it by the number of GPUs;
- **LLM activations** for ``tokens`` tokens per GPU and micro-batch, from the decoder's width ``h`` and
  depth ``L`` in bf16 (Korthikanti et al., 2022, with fused attention): ``34·h`` bytes per token and layer
  kept for the backward pass, or, with activation checkpointing, each layer's input (``2·h``) plus
  one layer's ``34·h`` recomputed at a time. The frozen encoder runs without gradients and keeps no
  activations; its transient working memory, the CUDA context and allocator fragmentation come
  on top (typically 1–3 GB), which is why these are estimates, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slamkit.config import Config
from slamkit.models.speech_llm import build_model
from slamkit.train.distributed import decoder_layers, shard_units

GB = 1024**3
ACTIVATION_BYTES = 34  # per token, hidden unit and layer, bf16 (fused attention: no s² term)


@dataclass(frozen=True)
class ModelSizes:
    """What the estimate needs from a model."""

    weight_bytes: int
    trainable: int
    largest_unit_bytes: int
    hidden: int
    layers: int


def model_sizes(cfg: Config) -> ModelSizes:
    """Parameter bytes and counts of ``cfg``'s model, built on the meta device."""
    with torch.device("meta"):
        model = build_model(cfg)
    units = shard_units(model)
    llm_config = model.llm.config
    return ModelSizes(
        weight_bytes=_bytes(model),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        largest_unit_bytes=max((_bytes(u) for u in units), default=0),
        hidden=int(llm_config.hidden_size),
        layers=len(decoder_layers(model.llm)) or int(llm_config.num_hidden_layers),
    )


def _bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def per_gpu_gb(sizes: ModelSizes, gpus: int, strategy: str, tokens: int, activation_checkpointing: bool) -> dict[str, float]:
    """The estimate's terms (GB) for one GPU of ``gpus`` under ``strategy`` (``ddp`` or ``fsdp``)."""
    share = gpus if strategy == "fsdp" else 1
    weights = sizes.weight_bytes / share + (2 * sizes.largest_unit_bytes if strategy == "fsdp" and gpus > 1 else 0)
    state = 12 * sizes.trainable / share
    per_layer = ACTIVATION_BYTES * sizes.hidden * tokens
    activations = (2 * sizes.hidden * tokens * sizes.layers + per_layer) if activation_checkpointing else per_layer * sizes.layers
    terms = {"weights": weights / GB, "training_state": state / GB, "activations": activations / GB}
    terms["total"] = sum(terms.values())
    return terms


def memory_table(cfg: Config, gpus: tuple[int, ...] = (1, 2, 4, 8), tokens: int = 2048,
                 activation_checkpointing: bool = True) -> list[dict[str, float | int | str]]:
    """One row per (strategy, GPU count): the per-GPU terms in GB."""
    sizes = model_sizes(cfg)
    rows: list[dict[str, float | int | str]] = []
    for strategy in ("ddp", "fsdp"):
        for n in gpus:
            terms = per_gpu_gb(sizes, n, strategy, tokens, activation_checkpointing)
            rows.append({"strategy": strategy, "gpus": n, **{k: round(v, 2) for k, v in terms.items()}})
    return rows


def format_markdown(rows: list[dict[str, float | int | str]]) -> str:
    """The rows as a Markdown table (GB per GPU)."""
    lines = ["| strategy | GPUs | weights | grads + AdamW | activations | total per GPU |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['gpus']} | {r['weights']:.2f} | {r['training_state']:.2f} | "
                     f"{r['activations']:.2f} | **{r['total']:.2f} GB** |")
    return "\n".join(lines)
