"""Batched generation over a manifest -> hypothesis JSONL (``{"key", "hyp", "ref"}`` lines).

Batches are formed from clips of similar duration (less padding), left-padded, and decoded with
greedy or beam search. Each sample's audio features and prompt are independent of its batch, so
greedy output is the same for batch size 1 and N. Lines are written in manifest order, one per
non-blank input line: a line that cannot be used (not JSON, a missing field, a repeated key) or a
clip that cannot be loaded gets an empty ``hyp`` and an ``error`` field with its ``where``
(``file:line``) and ``reason``; every other record is decoded. Clips
longer than the encoder's window are segmented and joined, or decoded whole with
``decode.segment=windowed`` (:mod:`slamkit.infer.longform`). With
``decode.rerank`` set, N candidates per clip are scored and the best kept (:mod:`slamkit.infer.rerank`);
the lines then also carry ``candidates``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from tqdm import tqdm

from slamkit.config import Config, load_config
from slamkit.data.manifest import Record, scan_manifest
from slamkit.data.skips import DUPLICATE_KEY, UNUSABLE_AUDIO, Skip
from slamkit.data.tasks import record_task
from slamkit.infer.longform import WINDOWED, generation_settings, join_segments, plan_segments, prepare_long_form, segment_span
from slamkit.infer.rerank import build_reranker, rerank_batch
from slamkit.infer.segment import vad_available
from slamkit.models.speech_llm import SpeechLLM, build_model
from slamkit.train import checkpoint as ckpt
from slamkit.train.data import Loader, build_loader
from slamkit.train.distributed import AUTOCAST_DTYPES, Dist, autocast, resolve_device, setup, teardown

log = logging.getLogger("slamkit")


def load_run(run_dir: str | Path, overrides: list[str] | None = None, device: str | None = None) -> tuple[Config, SpeechLLM]:
    """Rebuild a trained model from its run directory (config.yaml + a checkpoint)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (is this a slamkit run directory?)")
    cfg = load_config(run_dir / "config.yaml", overrides)
    model = build_model(cfg)
    path = ckpt.resolve_checkpoint(run_dir, cfg.decode.checkpoint)
    ckpt.load_weights(model, path)
    log.info("loaded %s", path)
    model.to(resolve_device(device or cfg.train.device)).eval()
    _store_llm_in(cfg.decode.precision, model)
    return cfg, model


def _store_llm_in(precision: str, model: SpeechLLM) -> None:
    """Under ``decode.precision`` bf16/fp16, keep the LLM's weights in that dtype: autocast would cast
    every weight at every generated token (measured on this CPU: bf16 autocast over fp32 weights decodes
    slower than fp32; over bf16 weights 1.5x faster). The weights are rounded as autocast rounds them; the
    norms' products then round in bf16 too, so a text can differ from autocast's now and then."""
    device = next(model.parameters()).device
    autocast(precision, device, "decode.precision")  # refuses fp16 on CPU, or an unknown name, before any cast
    if precision != "fp32":
        model.llm.to(AUTOCAST_DTYPES[precision])


def decode_manifest(cfg: Config, model: SpeechLLM, manifest: str | Path, out: str | Path, dist: Dist | None = None) -> int:
    """Decode every record of ``manifest`` into ``out``; returns the number of lines written.

    Records longer than the segment window (:func:`segment_window`) are split into segments
    (:mod:`slamkit.infer.longform`), decoded in batches with the rest, and joined: their line
    carries the joined text and ``segments`` (``start``, ``end``, ``text``); with
    ``decode.segment=windowed`` they are decoded whole by the encoder's windowed mode. With several
    processes (``dist``), each plans and decodes its share and rank 0 writes the one output file,
    in manifest order: the same file one process writes.
    """
    dist = dist or Dist(0, 1, 0, next(model.parameters()).device, "single")
    records, bad_lines = scan_manifest(manifest)
    plans = _plan(cfg, model, records, dist)
    hyps: dict[str, str] = {}
    extra: dict[str, dict] = {}
    failed: dict[str, Skip] = {}
    if records:
        data = build_loader(cfg, model, [sub for plan in plans for sub in plan], "decode", rank=dist.rank, world=dist.world)
        hyps, extra, failed = _decode_share(cfg, model, data, dist.is_main)
        failed.update({s.key: s for s in data.skips if s.key})
    parts = dist.gather((hyps, extra, failed))
    if dist.is_main:
        for part_hyps, part_extra, part_failed in parts[1:]:
            hyps.update(part_hyps)
            extra.update(part_extra)
            failed.update(part_failed)
        _join(records, plans, hyps, extra, failed)
        lines = sorted([*records, *bad_lines], key=_line_number)
        _write_hypotheses(lines, hyps, Path(out), cfg.data.task, extra, failed)
        _report(model, len(records) - len(hyps), len(bad_lines), len(lines))
    dist.barrier()
    return len(records) + len(bad_lines)


def _line_number(item: Record | Skip) -> int:
    """The manifest line of a record or of an unusable line (``file:line``)."""
    return item.line if isinstance(item, Record) else int(item.where.rsplit(":", 1)[1])


def _plan(cfg: Config, model: SpeechLLM, records: list[Record], dist: Dist) -> list[list[Record]]:
    """Each record's segments (:func:`plan_segments`); ranks plan a share each and exchange them."""
    window, dc = prepare_long_form(cfg, model), cfg.decode
    mine = {i: plan_segments(records[i], model.encoder.sample_rate, window, dc.segment, dc.segment_overlap,
                             dc.merge_pause)
            for i in range(dist.rank, len(records), dist.world)}
    merged: dict[int, list[Record]] = {}
    for part in dist.gather(mine):
        merged.update(part)
    plans = [merged[i] for i in range(len(records))]
    if dc.segment == WINDOWED:
        limit = model.encoder.max_seconds
        long = sum(1 for r in records if limit is not None and r.duration is not None and r.duration > limit)
        if long:
            log.info("%d clips longer than %g s are encoded in %g s windows, decoded whole (windowed)", long, limit, limit)
        return plans
    split = [plan for rec, plan in zip(records, plans) if plan != [rec]]
    if split:
        method = dc.segment if dc.segment != "vad" or vad_available() else "fixed: silero-vad is not installed"
        log.info("%d clips longer than %g s were split into %d segments (%s)", len(split), window, sum(map(len, split)), method)
    return plans


def _join(records: list[Record], plans: list[list[Record]], hyps: dict[str, str], extra: dict[str, dict],
          failed: dict[str, Skip]) -> None:
    """Replace segmented records' per-segment results in ``hyps``/``extra`` by one joined entry each.

    A segmented clip's line gets ``segments`` (with each segment's ``candidates`` when re-ranking);
    a long clip without speech gets an empty text and no segments; a segment that failed to load
    leaves the clip without a hypothesis (its line then carries the error).
    """
    for rec, plan in zip(records, plans):
        if plan == [rec]:
            continue
        texts = [hyps.pop(sub.key, None) for sub in plan]
        text, segments = join_segments([(segment_span(sub), t or "") for sub, t in zip(plan, texts)])
        for sub, seg in zip(plan, segments):
            seg.update(extra.pop(sub.key, {}))
        extra[rec.key] = {"segments": segments}
        if all(t is not None for t in texts):
            hyps[rec.key] = text
        else:
            skip = next((failed[sub.key] for sub, t in zip(plan, texts) if t is None and sub.key in failed), None)
            if skip is not None:
                failed[rec.key] = skip


def _decode_share(cfg: Config, model: SpeechLLM, data: Loader,
                  show: bool) -> tuple[dict[str, str], dict[str, dict], dict[str, Skip]]:
    """Hypotheses (and re-ranking candidates) of this process's share of the loader's batches, and the
    clips that failed to load (by key)."""
    device = next(model.parameters()).device
    reranker = build_reranker(cfg.decode, device)  # before decoding: a bad rerank_model fails at once
    by_key = {rec.key: rec for rec in data.records}
    hyps: dict[str, str] = {}
    extra: dict[str, dict] = {}
    failed: dict[str, Skip] = {}
    share = sum(len(batch) for batch in data.sampler)
    autocast(cfg.decode.precision, device, "decode.precision")  # refuse a bad setting before any work
    with tqdm(total=share, desc="decode", unit="utt", dynamic_ncols=True, mininterval=1.0, disable=not show) as bar:
        for batch in data.dataloader():
            with autocast(cfg.decode.precision, device, "decode.precision"):
                settings = generation_settings(cfg, model, batch.audio_lengths)
                if batch.keys and reranker is not None:
                    for key, result in rerank_batch(model, batch.to(device), by_key, reranker, settings).items():
                        hyps[key], extra[key] = result.hyp, {"candidates": result.candidates}
                elif batch.keys:
                    texts = model.generate(batch.to(device), settings)
                    hyps.update(zip(batch.keys, texts))
            failed.update((s.key, s) for s in batch.skips if s.key)
            bar.update(len(batch.keys) + batch.skipped)
    return hyps, extra, failed


def _report(model: SpeechLLM, failed: int, bad_lines: int, total: int) -> None:
    """Log the feature cache's counters, the clips that could not be loaded and the unusable lines."""
    stats = model.cache_stats()
    if stats:
        log.info("encoder feature cache: %d hits, %d misses (%d corrupt files rewritten)", stats["cache_hits"], stats["cache_misses"], stats["cache_corrupt"])
    if failed:
        log.warning("%d of %d clips could not be loaded; their lines carry an \"error\" field and an empty hypothesis", failed, total)
    if bad_lines:
        log.warning("%d of %d manifest lines could not be used (see `slamkit validate`); their output lines carry an \"error\" "
                    "field", bad_lines, total)


def _write_hypotheses(lines: list[Record | Skip], hyps: dict[str, str], out: Path, run_task: str,
                      extra: dict[str, dict] | None = None, failed: dict[str, Skip] | None = None) -> None:
    """Write one line per manifest line, in its order, atomically (each task adds what its metric needs;
    ``extra[key]`` adds fields). A record without a hypothesis, and an unusable line, carry ``error``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w") as f:
        for item in lines:
            f.write(json.dumps(_output_line(item, hyps, run_task, extra or {}, failed or {}), ensure_ascii=False) + "\n")
    os.replace(tmp, out)


def _output_line(item: Record | Skip, hyps: dict[str, str], run_task: str, extra: dict[str, dict],
                 failed: dict[str, Skip]) -> dict:
    """The output line of one manifest line (see :func:`_write_hypotheses`)."""
    if isinstance(item, Skip):
        return {"key": item.key if item.reason != DUPLICATE_KEY else None, "hyp": "", "ref": None, "error": item.detail,
                "reason": item.reason, "where": item.where}
    line = record_task(item, run_task).hypothesis_line(item, hyps.get(item.key, ""))
    line.update(extra.get(item.key, {}))
    if item.key not in hyps:
        skip = failed.get(item.key)
        line.update(error=skip.detail if skip else f"audio could not be loaded: {item.source}",
                    reason=skip.reason if skip else UNUSABLE_AUDIO, where=item.where)
    return line


@torch.no_grad()
def decode(run_dir: str | Path, manifest: str | Path, out: str | Path, overrides: list[str] | None = None) -> int:
    """Load a run and decode a manifest (the ``slamkit decode`` command); under torchrun the
    processes share the work and rank 0 writes ``out``."""
    dist = setup("auto")
    try:
        cfg, model = load_run(run_dir, overrides, device=str(dist.device) if dist.distributed else None)
        return decode_manifest(cfg, model, manifest, out, dist)
    finally:
        teardown()
