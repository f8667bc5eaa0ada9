"""Loading a checkpoint's trainable weights: exact names, and a clear message when they differ."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slamkit.models.lora import load_trainable_state_dict, trainable_state_dict


def _model(projector_trains: bool) -> nn.Module:
    model = nn.ModuleDict({"projector": nn.Linear(4, 3), "llm": nn.Linear(3, 2)})
    model["projector"].requires_grad_(projector_trains)
    return model


def test_trainable_weights_round_trip():
    torch.manual_seed(0)
    source, target = _model(True), _model(True)
    load_trainable_state_dict(target, trainable_state_dict(source), "ckpt/model.safetensors")
    for name, p in target.named_parameters():
        assert torch.equal(p, dict(source.named_parameters())[name])


def test_a_part_frozen_here_but_trained_in_the_checkpoint_is_named():
    state = trainable_state_dict(_model(True))
    with pytest.raises(ValueError, match=r"ckpt/model\.safetensors.*unexpected \['projector\.bias'.*"
                                         r"2 of the unexpected names are frozen in this model \(e\.g\. projector\.bias\)"):
        load_trainable_state_dict(_model(False), state, "ckpt/model.safetensors")


def test_names_the_model_lacks_get_no_frozen_hint():
    state = {**trainable_state_dict(_model(True)), "other.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected \['other\.weight'\]$"):
        load_trainable_state_dict(_model(True), state, "ckpt/model.safetensors")
