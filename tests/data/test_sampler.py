"""Tests for slamkit.data.sampler: coverage, budget, determinism, resume, padding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from slamkit.data.sampler import BucketBatchSampler, padding_waste


def _durations(n: int = 1000, seed: int = 0) -> list[float]:
    return np.random.default_rng(seed).uniform(1.0, 20.0, n).round(3).tolist()


def _flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("batch_seconds", [None, 60.0])
def test_every_item_once_and_budget_respected(
    bucket: bool, shuffle: bool, batch_seconds: float | None
) -> None:
    durations = _durations(500) + [90.0]  # one item longer than the budget
    sampler = BucketBatchSampler(durations, 8, batch_seconds, shuffle=shuffle, bucket=bucket)
    for epoch in range(3):
        batches = sampler.batches(epoch)
        assert sorted(_flat(batches)) == list(range(len(durations)))
        for batch in batches:
            assert 1 <= len(batch) <= 8
            cost = max(durations[i] for i in batch) * len(batch)
            if batch_seconds is not None and cost > batch_seconds:
                assert len(batch) == 1  # only a lone over-long item may exceed the budget


def test_no_shuffle_no_bucket_is_manifest_order() -> None:
    sampler = BucketBatchSampler(_durations(20), 6, shuffle=False, bucket=False)
    assert sampler.batches(0) == [list(range(0, 6)), list(range(6, 12)),
                                  list(range(12, 18)), [18, 19]]
    assert sampler.batches(0) == sampler.batches(5)


def test_no_shuffle_bucket_sorts_by_duration() -> None:
    durations = _durations(50)
    sampler = BucketBatchSampler(durations, 4, shuffle=False, bucket=True)
    assert _flat(sampler.batches(0)) == sorted(range(50), key=lambda i: durations[i])


def test_deterministic_per_seed_and_epoch() -> None:
    durations = _durations(300)
    a = BucketBatchSampler(durations, 8, 80.0, seed=3)
    b = BucketBatchSampler(durations, 8, 80.0, seed=3)
    assert a.batches(2) == b.batches(2)
    assert a.batches(0) != a.batches(1)
    assert a.batches(0) != BucketBatchSampler(durations, 8, 80.0, seed=4).batches(0)


def test_global_rngs_untouched() -> None:
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    sampler = BucketBatchSampler(_durations(100), 4)
    list(sampler)
    sampler.batches(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_iter_starts_at_position_and_does_not_advance() -> None:
    sampler = BucketBatchSampler(_durations(100), 4, seed=1)
    sampler.set_epoch(2)
    full = sampler.batches(2)
    assert len(sampler) == len(full) == sampler.num_batches(2)
    sampler.position = 5
    assert list(sampler) == full[5:]
    assert len(sampler) == len(full) - 5
    assert (sampler.epoch, sampler.position) == (2, 5)


def test_state_dict_round_trip_resumes_at_same_batch() -> None:
    durations = _durations(200)
    run = BucketBatchSampler(durations, 8, 60.0, seed=7)
    run.set_epoch(1)
    consumed = []
    for batch in run:  # the loop advances position as it consumes batches
        consumed.append(batch)
        run.position += 1
        if len(consumed) == 4:
            break
    state = run.state_dict()
    assert state == {"epoch": 1, "position": 4, "seed": 7, "num_items": 200, "num_replicas": 1}

    resumed = BucketBatchSampler(durations, 8, 60.0, seed=0)
    resumed.load_state_dict(state)
    assert resumed.seed == 7 and (resumed.epoch, resumed.position) == (1, 4)
    assert consumed + list(resumed) == BucketBatchSampler(durations, 8, 60.0, seed=7).batches(1)


def test_load_state_dict_rejects_changed_dataset() -> None:
    state = BucketBatchSampler(_durations(200), 8).state_dict()
    with pytest.raises(ValueError, match="saved for 200 items but the dataset has 199"):
        BucketBatchSampler(_durations(199), 8).load_state_dict(state)
    bad = dict(state, position=10_000)
    with pytest.raises(ValueError, match="position 10000 is outside epoch 0"):
        BucketBatchSampler(_durations(200), 8).load_state_dict(bad)
    with pytest.raises(ValueError, match="missing"):
        BucketBatchSampler(_durations(200), 8).load_state_dict({"epoch": 0})


def test_bucketing_cuts_padding() -> None:
    durations = _durations(2000, seed=5)
    bucketed = BucketBatchSampler(durations, 16, 200.0, bucket=True)
    plain = BucketBatchSampler(durations, 16, 200.0, bucket=False)
    waste_bucketed = padding_waste(bucketed.batches(0), durations)
    waste_plain = padding_waste(plain.batches(0), durations)
    assert waste_bucketed < 0.05
    assert waste_bucketed < waste_plain / 4


def test_works_as_dataloader_batch_sampler() -> None:
    data = torch.arange(30)
    sampler = BucketBatchSampler([1.0] * 30, 4, seed=2)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
    seen = torch.cat(list(loader))
    assert sorted(seen.tolist()) == list(range(30))
    assert len(loader) == len(sampler) == 8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"durations": [1.0, float("nan")]}, "item 1"),
        ({"durations": [-1.0]}, "item 0"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_seconds": 0.0}, "batch_seconds"),
        ({"seed": -1}, "seed"),
        ({"short_first_epochs": -1}, "short_first_epochs"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"durations": [1.0, 2.0], "batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        BucketBatchSampler(**args)


def test_empty_dataset() -> None:
    sampler = BucketBatchSampler([], 4)
    assert sampler.batches(0) == [] and len(sampler) == 0 and list(sampler) == []


def test_short_first_epochs_run_shortest_to_longest_then_shuffle() -> None:
    durations = [round(d, 1) for d in _durations(400)]  # rounded: many ties
    sampler = BucketBatchSampler(durations, 8, 60.0, seed=1, short_first_epochs=2)
    for epoch in (0, 1):
        batches = sampler.batches(epoch)
        flat = _flat(batches)
        assert sorted(flat) == list(range(400))
        lengths = [durations[i] for i in flat]
        assert lengths == sorted(lengths)  # the whole epoch runs short -> long
        assert all(max(durations[i] for i in b) * len(b) <= 60.0 or len(b) == 1 for b in batches)
    assert sampler.batches(0) != sampler.batches(1)  # ties broken differently per epoch
    later = [durations[i] for i in _flat(sampler.batches(2))]
    assert later != sorted(later)  # back to shuffled buckets
    plain = BucketBatchSampler(durations, 8, 60.0, seed=1)
    assert sampler.batches(2) == plain.batches(2)


def test_short_first_resumes_mid_epoch() -> None:
    durations = _durations(100)
    a = BucketBatchSampler(durations, 4, seed=5, short_first_epochs=1)
    a.position = 7
    b = BucketBatchSampler(durations, 4, seed=5, short_first_epochs=1)
    b.load_state_dict(a.state_dict())
    assert list(b) == a.batches(0)[7:]


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("batch_seconds", [None, 6.0])
def test_ranks_share_each_global_batch(world: int, batch_seconds) -> None:
    """N ranks with batch b see exactly the batches one process with batch N·b sees, split, with
    no item twice or skipped and the same number of batches on every rank."""
    rng = np.random.default_rng(3)
    durations = rng.uniform(0.5, 4.0, size=103).tolist()
    one = BucketBatchSampler(durations, 4 * world, None if batch_seconds is None else batch_seconds * world, seed=5)
    ranks = [BucketBatchSampler(durations, 4, batch_seconds, seed=5, num_replicas=world, rank=r) for r in range(world)]
    for epoch in (0, 1):
        one.set_epoch(epoch)
        for sampler in ranks:
            sampler.set_epoch(epoch)
        shares = [list(sampler) for sampler in ranks]
        assert len({len(share) for share in shares}) == 1, "every rank runs the same number of batches"
        whole = list(one)
        assert len(whole) == len(shares[0])
        for i, batch in enumerate(whole):
            parts = [share[i] for share in shares]
            assert sorted(sum(parts, [])) == sorted(batch), "the ranks' parts make up the global batch"
            assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_rank_must_lie_inside_the_world() -> None:
    with pytest.raises(ValueError, match="rank 2"):
        BucketBatchSampler([1.0] * 4, 2, num_replicas=2, rank=2)


def test_resume_on_another_number_of_ranks_says_what_changes(caplog) -> None:
    durations = [1.0] * 40
    two = BucketBatchSampler(durations, 2, seed=1, num_replicas=2, rank=0)
    two.position = 3  # 3 global batches of 4 items: 12 items consumed
    state = two.state_dict()
    four = BucketBatchSampler(durations, 2, seed=1, num_replicas=4, rank=0)
    with caplog.at_level("WARNING"):
        four.load_state_dict(state)
    assert four.position == 2  # global batches of 8: 12 consumed -> continue after the 2nd batch (16 items)
    assert "saved with 2 processes on 4" in caplog.text and "global batch changes from 4 to 8" in caplog.text
