"""Tests for slamkit.models.projector_hybrid: the length rule, layout, batch invariance, gradients, recipe."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import Tensor

from slamkit.config import ProjectorConfig, load_config
from slamkit.models.lengths import AudioTokenCounter, conv_output_frames
from slamkit.models.projector_hybrid import HybridProjector, queries_then_groups
from slamkit.models.projectors import build_projector

from conftest import REPO

D_IN, D_OUT = 24, 40
RECIPE = REPO / "recipes" / "mix_asr_aac_hybrid_tiny_en.yaml"


def make(k: int = 3, num_queries: int = 2, seed: int = 0, **extra) -> HybridProjector:
    """A tiny hybrid projector in eval mode."""
    cfg = ProjectorConfig(name="hybrid", k=k, hidden=32, num_queries=num_queries, num_layers=2, num_heads=2,
                          init_seed=seed, **extra)
    proj = build_projector(cfg, D_IN, D_OUT).eval()
    assert isinstance(proj, HybridProjector)
    return proj


def batch(lengths: list[int], t: int, fill: float = 1e3) -> tuple[Tensor, Tensor]:
    """``[b, t, D_IN]`` random features with ``fill`` (garbage) in the padding, and ``[b]`` lengths."""
    gen = torch.Generator().manual_seed(7)
    feats = torch.randn(len(lengths), t, D_IN, generator=gen)
    lens = torch.tensor(lengths)
    pad = torch.arange(t)[None, :] >= lens[:, None]
    return feats.masked_fill(pad[..., None], fill), lens


@pytest.mark.parametrize(("k", "num_queries"), [(3, 2), (5, 4), (1, 1)])
def test_output_shape_and_lengths_follow_the_rule(k: int, num_queries: int) -> None:
    lengths = [17, 9, 5, 1]  # odd lengths: every k leaves a partial last group
    proj = make(k=k, num_queries=num_queries)
    feats, lens = batch(lengths, 17)
    with torch.no_grad():
        out, out_lens = proj(feats, lens)
    expected = torch.tensor([num_queries + -(-n // k) for n in lengths])
    assert torch.equal(out_lens, expected)
    assert torch.equal(proj.output_lengths(lens), expected)
    assert torch.equal(queries_then_groups(lens, k=k, num_queries=num_queries), expected)
    assert out.shape == (len(lengths), num_queries + -(-17 // k), D_OUT)
    # Valid positions first and contiguous, zero padding after them (what the splice expects).
    nonzero = out.abs().sum(-1) != 0
    assert torch.equal(nonzero, torch.arange(out.shape[1])[None, :] < expected[:, None])


def test_rule_is_pure_and_composes_into_the_placeholder_count() -> None:
    proj = make(k=5, num_queries=4)
    rule = pickle.loads(pickle.dumps(proj.length_rule()))  # DataLoader workers receive it pickled
    encoder_rule = lambda n: conv_output_frames(n, (400,), (160,))  # noqa: E731 (a stand-in encoder)
    counter = AudioTokenCounter(encoder_rule, rule)
    for samples in (16000, 16001, 4321, 400):
        frames = int(encoder_rule(torch.tensor([samples]))[0])
        assert counter(samples) == 4 + -(-frames // 5)
        feats = torch.randn(1, frames, D_IN)
        with torch.no_grad():
            out, out_lens = proj(feats, torch.tensor([frames]))
        assert out.shape[1] == int(out_lens[0]) == counter(samples)


def test_padded_item_equals_the_item_alone() -> None:
    lengths = [13, 7, 1, 4]
    proj = make()
    feats, lens = batch(lengths, 13, fill=float("nan"))  # NaN padding must not leak either
    with torch.no_grad():
        out, out_lens = proj(feats, lens)
        assert torch.isfinite(out).all()
        for i, n in enumerate(lengths):
            alone, alone_len = proj(feats[i : i + 1, :n], lens[i : i + 1])
            m = int(out_lens[i])
            assert int(alone_len[0]) == m == alone.shape[1]
            torch.testing.assert_close(out[i, :m], alone[0], atol=1e-5, rtol=1e-5)


def test_summary_is_global_and_frames_are_local_in_time_order() -> None:
    # Frame 7 of sample 0 (k=3: group 2) may change every summary query but, of the time-ordered
    # positions, only its own group's: positions [0, Q) are global, Q + j is group j.
    proj = make(k=3, num_queries=2)
    feats, lens = batch([13, 7], 13)
    changed = feats.clone()
    changed[0, 7] += 1.0
    with torch.no_grad():
        diff = (proj(changed, lens)[0] - proj(feats, lens)[0]).abs().sum(-1)
    assert torch.nonzero(diff[0] > 1e-6).flatten().tolist() == [0, 1, 2 + 2]
    assert torch.equal(diff[1], torch.zeros_like(diff[1]))


def test_gradients_reach_every_parameter_and_not_the_padding() -> None:
    proj = make().train()
    feats, lens = batch([13, 7, 1], 13, fill=0.0)
    feats.requires_grad_(True)
    out, _ = proj(feats, lens)
    # Random weights, not a plain sum: the sum of a LayerNorm output has zero gradient.
    (out * torch.randn_like(out)).sum().backward()
    names = [name for name, _ in proj.named_parameters()]
    assert any(n.startswith("summary.") for n in names) and any(n.startswith("time.") for n in names)
    for name, p in proj.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert feats.grad is not None
    assert torch.equal(feats.grad[2, 1:], torch.zeros_like(feats.grad[2, 1:]))
    assert feats.grad[0].abs().sum() > 0


def test_query_width_defaults_to_the_encoder_and_bad_values_name_the_key() -> None:
    assert make().summary.queries.shape == (2, D_IN)
    assert make(query_hidden=16).summary.queries.shape == (2, 16)
    with pytest.raises(ValueError, match=r"projector.query_hidden \(18\).*num_heads \(4\)"):
        build_projector(ProjectorConfig(name="hybrid", query_hidden=18, num_heads=4), D_IN, D_OUT)
    with pytest.raises(ValueError, match="projector.query_hidden must be >= 1"):
        build_projector(ProjectorConfig(name="hybrid", query_hidden=0, num_heads=1), D_IN, D_OUT)
    with pytest.raises(ValueError, match="projector.k"):
        build_projector(ProjectorConfig(name="hybrid", k=0, num_heads=1), D_IN, D_OUT)


def test_recipe_instantiates_with_the_hybrid_projector() -> None:
    from slamkit.models.speech_llm import build_model

    cfg = load_config(RECIPE, ["model.encoder.path=null", "model.llm.path=null"])
    assert cfg.model.projector.name == "hybrid"
    with torch.device("meta"):
        model = build_model(cfg)
    assert isinstance(model.projector, HybridProjector)
    pc = cfg.model.projector
    counter = model.token_counter()
    frames = int(model.encoder.length_rule()(torch.tensor([3 * 16000]))[0])
    assert counter(3 * 16000) == pc.num_queries + -(-frames // pc.k)
    assert all(p.requires_grad for p in model.projector.parameters())
