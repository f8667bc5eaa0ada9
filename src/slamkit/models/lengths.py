"""Length arithmetic as pure rules: clip samples -> encoder frames -> audio tokens.

Every encoder and projector states its length arithmetic once, as a :data:`LengthRule`: a
module-level function, or a ``functools.partial`` of one over plain numbers, mapping valid
lengths ``[b]`` to valid output lengths ``[b]``. ``output_lengths`` of the module applies it, and
:class:`AudioTokenCounter` composes an encoder's rule with a projector's into the count of audio
placeholders a clip needs — what a processor computes from the checkpoint's configuration. The
counter holds no module or tensor, so the collator (and every DataLoader worker it is pickled
into) computes placeholder counts without touching the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

LengthRule = Callable[[Tensor], Tensor]  # valid input lengths [b] (long) -> valid output lengths [b]


def ceil_div(lengths: Tensor, k: int) -> Tensor:
    """``ceil(lengths / k)`` on an integer tensor ``[b]`` (floor division of ``lengths + k - 1``)."""
    return torch.div(lengths + (k - 1), k, rounding_mode="floor")


def conv_output_frames(lengths: Tensor, kernels: tuple[int, ...], strides: tuple[int, ...]) -> Tensor:
    """Samples ``[b]`` -> frames ``[b]`` after unpadded strided convs (0 when too short)."""
    n = lengths.to(torch.long)
    for k, s in zip(kernels, strides):
        n = (torch.div(n - k, s, rounding_mode="floor") + 1).clamp(min=0)
    return n


def fixed_count(lengths: Tensor, count: int) -> Tensor:
    """``count`` for every clip, whatever its length (global queries)."""
    return torch.full_like(lengths, count)


@dataclass(frozen=True)
class AudioTokenCounter:
    """Audio placeholders for a clip of N samples: ``projector_rule(encoder_rule(N))``.

    Built once from the encoder's and the projector's rules (:meth:`SpeechLLM.token_counter`);
    a pure, picklable function of their configuration.
    """

    encoder: LengthRule
    projector: LengthRule

    def frames(self, samples: Tensor) -> Tensor:
        """Audio tokens ``[b]`` for clips of ``samples`` ``[b]``."""
        return self.projector(self.encoder(samples.to(torch.long)))

    def __call__(self, num_samples: int) -> int:
        """Audio tokens for one clip of ``num_samples`` samples."""
        return int(self.frames(torch.tensor([num_samples]))[0])
