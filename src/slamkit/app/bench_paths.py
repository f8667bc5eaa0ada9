"""The two training paths `slamkit bench train` compares, and what it measures about them in-process.

:data:`PATHS` holds each path's config overrides; :func:`count_flops` runs the path's batches
forward and backward under ``torch.utils.flop_counter.FlopCounterMode`` (the FLOPs the path really
does, padding and re-encoding included); :func:`padding_fraction` and :func:`first_batch_losses`
read the same batches; :func:`matmul_peak` times a large matrix multiply, the machine's practical peak.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from slamkit.config import Config
from slamkit.models.speech_llm import build_model
from slamkit.train.data import build_loader
from slamkit.train.distributed import autocast


class CorpusLike(Protocol):
    """The clip set, real length and padded to 30 s (:class:`slamkit.app.bench_train.Corpus`)."""

    real: Path
    padded: Path


@dataclass(frozen=True)
class Path_:
    """One training path: a label, its overrides (``root`` folder, fastest precision) and how many epochs it runs."""

    label: str
    overrides: Callable[[Path, str], list[str]]
    epochs: int


PATHS: dict[str, Path_] = {
    "original": Path_("the original's path (30 s padding, random batches, no cache, full logits, fp32)",
                      lambda root, fastest: ["data.bucket=false", "model.encoder.cache_dir=null", "model.llm.full_logits=true",
                                             "train.precision=fp32"], 1),
    # bf16: the frozen LLM is also stored in bf16 (no per-step casts of its weights; LoRA and the projector stay fp32)
    "slamkit": Path_("slamkit's path (real length, buckets, feature cache, target logits)",
                     lambda root, fastest: ["data.bucket=true", f"model.encoder.cache_dir={root / 'cache'}", "model.llm.full_logits=false",
                                            f"train.precision={fastest}", *(["model.llm.dtype=bfloat16"] if fastest == "bf16" else [])], 2),
}


def matmul_peak(device: torch.device, precision: str, size: int = 1024, seconds: float = 0.5) -> float:
    """FLOP/s of repeated ``size``² matrix multiplies in ``precision`` (fp32 or bf16) on ``device``."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    (a @ b).sum().item()  # warm-up
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        c = a @ b
        runs += 1
    c.sum().item()
    return 2 * size**3 * runs / (time.perf_counter() - start)


def _model_and_loader(cfg: Config, manifest: Path, cache: Path | None):
    cfg = copy.deepcopy(cfg)
    cfg.model.encoder.cache_dir = str(cache) if cache is not None and cfg.model.encoder.cache_dir else None
    model = build_model(cfg).to(cfg.train.device if cfg.train.device != "auto" else "cpu")
    model.train()
    return cfg, model, build_loader(cfg, model, manifest, "train", seed=cfg.train.seed)


def _step(cfg: Config, model, batch) -> torch.Tensor:
    """One forward + backward of the LM loss (what a training step computes); returns the loss."""
    device = next(model.parameters()).device
    with autocast(cfg.train.precision, device):
        out = model(batch.to(device))
        loss = F.cross_entropy(out.logits.float(), out.targets)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return loss.detach()


def count_flops(cfg: Config, manifest: Path, epochs: int) -> list[float]:
    """FLOPs of each epoch of ``cfg``'s path over ``manifest`` (its own feature cache, warm from epoch 2)."""
    with tempfile.TemporaryDirectory(prefix="slamkit-flops-") as tmp:
        cfg, model, loader = _model_and_loader(cfg, manifest, Path(tmp))
        totals = []
        for epoch in range(epochs):
            loader.sampler.set_epoch(epoch)
            counter = FlopCounterMode(display=False)
            with counter:
                for batch in loader.dataloader():
                    _step(cfg, model, batch)
            totals.append(float(counter.get_total_flops()))
        return totals


def padding_fraction(cfg: Config, manifest: Path) -> float:
    """Padded audio tokens / all audio tokens over one epoch of the path's batches (the original's clips
    are already 30 s long, so its padding is the zeros in the clips themselves: 1 - real / 30 s)."""
    cfg, model, loader = _model_and_loader(cfg, manifest, None)
    counter = model.token_counter()
    real = padded = 0
    for indices in loader.sampler:
        recs = [loader.records[i] for i in indices]
        real_tokens = [counter(int(round(float(r.extra.get("real_duration", r.duration)) * 16000))) for r in recs]
        slot_tokens = [counter(int(round(float(r.duration) * 16000))) for r in recs]
        real += sum(real_tokens)
        padded += max(slot_tokens) * len(recs)
    return 1.0 - real / padded


def first_batch_losses(original: Config, slamkit: Config, corpus: CorpusLike) -> tuple[float, float]:
    """The untrained model's loss on the same first clips through both paths (padding changes the features a little)."""
    losses = []
    for cfg, manifest in ((original, corpus.padded), (slamkit, corpus.real)):
        cfg, model, loader = _model_and_loader(cfg, manifest, None)
        model.eval()
        n = min(len(loader.records), cfg.data.batch_size)
        batch = loader.collator([loader.dataset[i] for i in range(n)])
        with torch.no_grad(), autocast(cfg.train.precision, next(model.parameters()).device):
            out = model(batch)
            losses.append(float(F.cross_entropy(out.logits.float(), out.targets)))
    return losses[0], losses[1]


def profile_top(cfg: Config, manifest: Path, batches: int = 4, top: int = 12) -> list[dict]:
    """``torch.profiler``'s top operators by self time over ``batches`` warm training steps of ``cfg``'s path
    (the feature cache filled by one epoch first): where slamkit's step spends its time."""
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory(prefix="slamkit-profile-") as tmp:
        cfg, model, loader = _model_and_loader(cfg, manifest, Path(tmp))
        for batch in loader.dataloader():  # warm: the cache, the allocator, the kernels
            _step(cfg, model, batch)
        loader.sampler.set_epoch(1)
        chosen = [b for _, b in zip(range(batches), loader.dataloader())]
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        with profile(activities=activities) as prof:
            for batch in chosen:
                _step(cfg, model, batch)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key, "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1000, 1),
             "share": round(e.self_cpu_time_total / total, 3)} for e in events[:top]]
