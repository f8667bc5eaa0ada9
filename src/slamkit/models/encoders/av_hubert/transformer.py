"""The transformer of AV-HuBERT, in fairseq's wav2vec 2.0 ``TransformerEncoder`` layout.

Parameter names match the checkpoint's ``encoder.*`` tensors: ``pos_conv.0.{weight_g, weight_v,
bias}`` (a grouped Conv1d under weight normalisation over dim 2, kernel ``conv_pos``, "same"
padding with the extra frame of an even kernel dropped, then GELU), ``layer_norm``, and per layer
``self_attn.{q,k,v,out}_proj``, ``self_attn_layer_norm``, ``fc1``, ``fc2``, ``final_layer_norm``
(LoRA finds ``q_proj``/``v_proj`` by these names). AV-HuBERT uses pre-LN layers
(``layer_norm_first``: the final ``layer_norm`` after the last layer); post-LN is supported for
other configurations (``layer_norm`` before the first layer, each layer normalising after its
residual sums).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WeightNormConv1d(nn.Module):
    """Conv1d whose weight is ``weight_v * weight_g / ||weight_v||`` (norm over all dims but 2, fairseq's ``dim=2``)."""

    def __init__(self, dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.randn(dim, dim // groups, kernel) * (4.0 / (kernel * dim)) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.padding, self.groups = kernel // 2, groups
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm(dim=(0, 1), keepdim=True))

    def forward(self, x: Tensor) -> Tensor:
        """``[b, d, t]`` -> ``[b, d, t + 1 - kernel % 2]``."""
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class PositionalConv(nn.Sequential):
    """The convolutional relative position embedding: ``[b, t, d]`` -> ``[b, t, d]``."""

    def __init__(self, dim: int, kernel: int, groups: int) -> None:
        super().__init__(WeightNormConv1d(dim, kernel, groups))
        self.trim = 1 if kernel % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        y = self[0](x.transpose(1, 2))
        if self.trim:
            y = y[:, :, : -self.trim]
        return F.gelu(y).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention with fairseq's projection names."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``x [b, t, d]``, ``mask [b, 1, 1, t]`` (True = attend) -> ``[b, t, d]``."""
        b, t, d = x.shape
        q, k, v = (p(x).view(b, t, self.heads, d // self.heads).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """One transformer layer (fairseq ``TransformerSentenceEncoderLayer``), GELU feed-forward."""

    def __init__(self, dim: int, heads: int, ffn: int, layer_norm_first: bool) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = layer_norm_first

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if self.layer_norm_first:
            x = x + self.self_attn(self.self_attn_layer_norm(x), mask)
            return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        x = self.self_attn_layer_norm(x + self.self_attn(x, mask))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class TransformerEncoder(nn.Module):
    """Positional conv + layers: ``[b, t, d]``, valid ``[b, t]`` bool -> hidden states, bottom to top.

    ``forward`` returns ``layers + 1`` tensors: the input of the first layer (after the positional
    convolution) then each layer's output; the last one has the final ``layer_norm`` applied when
    ``layer_norm_first`` (fairseq's output).
    """

    def __init__(self, dim: int, layers: int, heads: int, ffn: int, conv_pos: int, conv_pos_groups: int,
                 layer_norm_first: bool) -> None:
        super().__init__()
        self.pos_conv = PositionalConv(dim, conv_pos, conv_pos_groups)
        self.layer_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn, layer_norm_first) for _ in range(layers))
        self.layer_norm_first = layer_norm_first

    def forward(self, x: Tensor, valid: Tensor) -> list[Tensor]:
        x = x.masked_fill(~valid[..., None], 0.0)  # padding never reaches valid frames through the conv
        x = x + self.pos_conv(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        mask = valid[:, None, None, :]
        hidden = [x]
        for layer in self.layers:
            x = layer(x, mask)
            hidden.append(x)
        if self.layer_norm_first:
            hidden[-1] = self.layer_norm(hidden[-1])
        return hidden
