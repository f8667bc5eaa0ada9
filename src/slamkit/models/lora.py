"""Trainability per part (frozen | lora | full), LoRA through peft, and trainable-state filters.

Every part of the model (encoder, projector, LLM) gets one of three modes. ``lora`` injects
peft LoRA adapters into the part's modules named in the config and trains only those; ``full``
trains every parameter; ``frozen`` trains nothing. The checkpoint holds exactly the parameters
that train, so a run directory stays a few MB even for a 7 B LLM.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from slamkit.config import LoraConfig
from slamkit.registry import Registry

log = logging.getLogger(__name__)

TRAINABILITY: Registry = Registry("trainability mode")


@TRAINABILITY.register("frozen")
def _frozen(part: nn.Module, lora: LoraConfig, targets: list[str]) -> nn.Module:
    part.requires_grad_(False)
    return part


@TRAINABILITY.register("full")
def _full(part: nn.Module, lora: LoraConfig, targets: list[str]) -> nn.Module:
    part.requires_grad_(True)
    return part


@TRAINABILITY.register("lora")
def _lora(part: nn.Module, lora: LoraConfig, targets: list[str]) -> nn.Module:
    from peft import LoraConfig as PeftLoraConfig
    from peft import inject_adapter_in_model

    part.requires_grad_(False)
    present = {name.rsplit(".", 1)[-1] for name, _ in part.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ValueError(
            f"LoRA target modules {missing} are not in {type(part).__name__}; "
            f"linear layer names found: {sorted(n for n, m in _linear_names(part))[:20]}"
        )
    peft_cfg = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(targets))
    part = inject_adapter_in_model(peft_cfg, part)
    for name, p in part.named_parameters():
        p.requires_grad_("lora_" in name)
    return part


def _linear_names(part: nn.Module) -> set[tuple[str, str]]:
    return {(name.rsplit(".", 1)[-1], type(m).__name__) for name, m in part.named_modules() if isinstance(m, nn.Linear)}


def apply_trainability(part: nn.Module, mode: str, lora: LoraConfig, targets: list[str]) -> nn.Module:
    """Set ``part`` to ``mode`` (frozen | lora | full) and return it (LoRA modifies it in place)."""
    return TRAINABILITY.get(mode)(part, lora, targets)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    total = sum(p.numel() for p in module.parameters())
    return trainable, total


def trainable_state_dict(module: nn.Module) -> dict:
    """The parameters that train, by name (what a checkpoint stores)."""
    return {name: p.detach() for name, p in module.named_parameters() if p.requires_grad}


def load_trainable_state_dict(module: nn.Module, state: dict, source: str) -> None:
    """Load trainable weights; any missing or unexpected name fails naming ``source``.

    A name the checkpoint has but that is frozen in ``module`` (e.g. a projector trained there and
    ``model.projector.trainable=frozen`` here) is named as such: checkpoints hold trainable weights
    only, so a frozen part would not be saved again and the run could not be decoded.
    """
    params = dict(module.named_parameters())
    expected = {name for name, p in params.items() if p.requires_grad}
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        frozen = [name for name in unexpected if name in params]
        hint = (f"; {len(frozen)} of the unexpected names are frozen in this model (e.g. {frozen[0]}): make that part "
                "trainable as it was in the checkpoint's run" if frozen else "")
        raise ValueError(
            f"{source}: checkpoint does not match the model's trainable parameters; "
            f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}"
            + hint
        )
    for name, value in state.items():
        if params[name].shape != value.shape:
            raise ValueError(f"{source}: {name} has shape {tuple(value.shape)}, the model expects {tuple(params[name].shape)}")
        params[name].data.copy_(value)


def keep_trainable_fp32(module: nn.Module) -> int:
    """Cast every trainable floating-point parameter of ``module`` to float32; returns how many were cast.

    A base loaded in bf16/fp16 hands its dtype to the LoRA weights peft injects and to layers made
    trainable; AdamW would then update bf16 weights with no fp32 master copy, and the fp16
    GradScaler refuses fp16 gradients. Trainable weights (and so their gradients and optimizer
    state) stay float32; the frozen base keeps its dtype, and autocast (or peft's own casting)
    runs the mixed forward.
    """
    cast = 0
    for p in module.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()
            cast += 1
    return cast
