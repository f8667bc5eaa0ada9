"""Tests for slamkit.models.projectors: lengths, masking, batch invariance, seeding, sizes."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor

from slamkit.config import ProjectorConfig
from slamkit.models.projectors import (
    PROJECTORS,
    Projector,
    attention_ignore_mask,
    build_projector,
    projector_names,
)

D_IN, D_OUT = 24, 40
T = 13  # not a multiple of k=3 or window=4, so every projector has a partial last group
LENGTHS = [13, 7, 1]  # the last sample leaves whole windows/groups of padding

# Each case: config overrides and the expected output lengths for LENGTHS.
CASES: dict[str, tuple[dict, list[int]]] = {
    "linear": ({"name": "linear"}, [5, 3, 1]),
    "conv1d": ({"name": "conv1d"}, [5, 3, 1]),
    "mlp": ({"name": "mlp"}, [5, 3, 1]),
    "qformer": ({"name": "qformer", "window": None}, [2, 2, 2]),
    "qformer_windowed": ({"name": "qformer", "window": 4}, [8, 4, 2]),
    "hybrid": ({"name": "hybrid"}, [7, 5, 3]),  # 2 global queries + ceil(len / 3)
}


def make(case: str, seed: int = 0, dropout: float = 0.0) -> Projector:
    """A tiny projector for ``case`` in eval mode."""
    overrides, _ = CASES[case]
    cfg = ProjectorConfig(
        k=3, hidden=32, num_queries=2, num_layers=2, num_heads=2, dropout=dropout, init_seed=seed, **overrides
    )
    return build_projector(cfg, D_IN, D_OUT).eval()


def padded_batch(fill: float = 1e3) -> tuple[Tensor, Tensor]:
    """``[3, T, D_IN]`` features whose padding frames hold ``fill`` (garbage) and ``[3]`` lengths."""
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(len(LENGTHS), T, D_IN, generator=gen)
    lengths = torch.tensor(LENGTHS)
    pad = ~(torch.arange(T)[None, :] < lengths[:, None])
    return feats.masked_fill(pad[..., None], fill), lengths


def test_every_registered_projector_is_tested() -> None:
    assert set(projector_names()) == {overrides["name"] for overrides, _ in CASES.values()}
    assert projector_names() == PROJECTORS.names()


@pytest.mark.parametrize("case", CASES)
def test_shape_and_lengths(case: str) -> None:
    proj = make(case)
    feats, lengths = padded_batch()
    with torch.no_grad():
        out, out_lengths = proj(feats, lengths)
    expected = torch.tensor(CASES[case][1])
    assert out.shape == (len(LENGTHS), int(proj.output_lengths(torch.tensor([T]))), D_OUT)
    assert torch.equal(out_lengths, expected)
    assert torch.equal(proj.output_lengths(lengths), expected)
    # Exactly the first out_lengths positions carry embeddings; the rest are zero padding.
    nonzero = out.abs().sum(-1) != 0
    assert torch.equal(nonzero.sum(1), expected)
    assert torch.equal(nonzero, torch.arange(out.shape[1])[None, :] < expected[:, None])


@pytest.mark.parametrize("case", CASES)
def test_batch_invariance(case: str) -> None:
    proj = make(case)
    feats, lengths = padded_batch(fill=1e3)
    with torch.no_grad():
        out, out_lengths = proj(feats, lengths)
        for i, n in enumerate(LENGTHS):
            alone, alone_len = proj(feats[i : i + 1, :n], lengths[i : i + 1])
            m = int(out_lengths[i])
            assert int(alone_len) == m
            torch.testing.assert_close(out[i, :m], alone[0, :m], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_no_nan_with_padding_tail(case: str) -> None:
    # NaN padding and a fully padded sample: masking must select, not multiply.
    proj = make(case).train()
    feats, lengths = padded_batch(fill=float("nan"))
    lengths = torch.tensor([13, 1, 0])
    feats[1:, 1:] = float("nan")
    feats[2] = float("nan")
    out, _ = proj(feats, lengths)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    for name, p in proj.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_fully_padded_window_is_not_fully_masked() -> None:
    # Some attention kernels return zeros for an all-masked row, others NaN (the math path used
    # with need_weights=True): the mask itself must never mask a whole row.
    valid = torch.tensor([[True, True, False], [False, False, False]])
    ignore = attention_ignore_mask(valid)
    assert torch.equal(ignore, torch.tensor([[False, False, True], [False, False, False]]))
    attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    q, kv = torch.randn(2, 2, 8), torch.zeros(2, 3, 8)
    out, _ = attn(q, kv, kv, key_padding_mask=ignore, need_weights=True)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("case", CASES)
def test_gradients_reach_every_parameter(case: str) -> None:
    proj = make(case).train()
    feats, lengths = padded_batch()
    feats.requires_grad_(True)
    out, _ = proj(feats, lengths)
    # Random weights, not a plain sum: the sum of a LayerNorm output has zero gradient.
    (out * torch.randn_like(out)).sum().backward()
    for name, p in proj.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert feats.grad is not None and torch.equal(feats.grad[2, 1:], torch.zeros_like(feats.grad[2, 1:]))


@pytest.mark.parametrize("case", ["linear", "conv1d", "mlp", "qformer_windowed"])
def test_outputs_are_local_and_in_time_order(case: str) -> None:
    # Changing frame 5 may only change the output positions of its group (k=3) or window (W=4).
    proj = make(case)
    feats, lengths = padded_batch()
    changed = feats.clone()
    changed[0, 5] += 1.0
    with torch.no_grad():
        diff = (proj(changed, lengths)[0] - proj(feats, lengths)[0]).abs().sum(-1)[0]
    touched = torch.nonzero(diff > 1e-6).flatten().tolist()
    assert touched == ([1] if case != "qformer_windowed" else [2, 3])


@pytest.mark.parametrize("case", CASES)
def test_same_seed_same_weights(case: str) -> None:
    state = torch.random.get_rng_state()
    a, b, c = make(case, seed=3), make(case, seed=3), make(case, seed=4)
    # Building does not move the global RNG.
    assert torch.equal(state, torch.random.get_rng_state())
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_dropout_is_used_in_training_only() -> None:
    proj = make("linear", dropout=0.5)
    feats, lengths = padded_batch()
    with torch.no_grad():
        assert torch.equal(proj(feats, lengths)[0], proj(feats, lengths)[0])
        proj.train()
        assert not torch.equal(proj(feats, lengths)[0], proj(feats, lengths)[0])


def test_paper_linear_projector_size() -> None:
    # SLAM-ASR: Whisper-large (1280) -> k=5 concat -> 2048 -> Vicuna-7B (4096).
    k, d_in, hidden, d_out = 5, 1280, 2048, 4096
    proj = build_projector(ProjectorConfig(name="linear", k=k, hidden=hidden), d_in, d_out)
    expected = k * d_in * hidden + hidden + hidden * d_out + d_out
    assert sum(p.numel() for p in proj.parameters()) == expected


def test_bad_config_and_input_fail_clearly() -> None:
    with pytest.raises(KeyError, match="Registered: conv1d, hybrid, linear, mlp, qformer"):
        build_projector(ProjectorConfig(name="linaer"), D_IN, D_OUT)
    with pytest.raises(ValueError, match="projector.k"):
        build_projector(ProjectorConfig(k=0), D_IN, D_OUT)
    with pytest.raises(ValueError, match="projector.window"):
        build_projector(ProjectorConfig(name="qformer", hidden=32, window=0), D_IN, D_OUT)
    bad_heads = dataclasses.replace(ProjectorConfig(name="qformer"), hidden=30, num_heads=4)
    with pytest.raises(ValueError, match="divisible"):
        build_projector(bad_heads, D_IN, D_OUT)
    with pytest.raises(ValueError, match=r"\[b, t, 24\]"):
        make("linear")(torch.zeros(2, 5, D_IN + 1), torch.tensor([5, 5]))
