"""AV-HuBERT's visual front end: a 3D convolution over time and a ResNet-18 trunk per frame.

Module names follow the official ``avhubert/resnet.py`` (``frontend3D.0`` the 5×7×7 Conv3d,
``.1`` its BatchNorm3d, ``.2`` the PReLU/ReLU, ``.3`` the MaxPool3d; ``trunk.layerN.M.{conv1,
bn1, relu1, conv2, bn2, relu2, downsample.0, downsample.1}``), so a checkpoint's
``feature_extractor_video.resnet.*`` tensors load as they are. Widths are parameters only so that
tests can build a tiny network; the official one has 64 front-end channels and widths 64–512.

Only the first convolution mixes time (kernel 5, padding 2, stride 1): the trunk runs on each
frame alone. The encoder zeroes padded frames before it, so a clip's valid frames never depend
on what it is batched with (in eval mode: BatchNorm then uses its running statistics).
"""

from __future__ import annotations

from torch import Tensor, nn


def _act(prelu: bool, channels: int) -> nn.Module:
    return nn.PReLU(num_parameters=channels) if prelu else nn.ReLU()


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 convs with BatchNorm, a shortcut (1×1 conv + BN when the shape changes)."""

    def __init__(self, inplanes: int, planes: int, stride: int, prelu: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = _act(prelu, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = _act(prelu, planes)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
                           if stride != 1 or inplanes != planes else None)

    def forward(self, x: Tensor) -> Tensor:
        """``[n, c_in, h, w]`` -> ``[n, planes, h / stride, w / stride]``."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + (x if self.downsample is None else self.downsample(x)))


class ResNetTrunk(nn.Module):
    """Four stages of two basic blocks (ResNet-18), then global average pooling."""

    def __init__(self, inplanes: int, widths: tuple[int, ...], prelu: bool) -> None:
        super().__init__()
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(inplanes, planes, stride, prelu),
                                                         BasicBlock(planes, planes, 1, prelu)))
            inplanes = planes
        self.num_stages = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        """``[n, c, h, w]`` -> ``[n, widths[-1]]``."""
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.avgpool(x).flatten(1)


class ResEncoder(nn.Module):
    """Grayscale frames ``[b, 1, t, h, w]`` -> per-frame features ``[b, widths[-1], t]``."""

    def __init__(self, front: int = 64, widths: tuple[int, ...] = (64, 128, 256, 512), prelu: bool = True) -> None:
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, front, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(front),
            _act(prelu, front),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.trunk = ResNetTrunk(front, widths, prelu)
        self.out_dim = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        b, _, t = x.shape[:3]
        x = self.frontend3D(x)  # [b, front, t, h', w']
        x = x.transpose(1, 2).reshape(b * t, *x.shape[1:2], *x.shape[3:])
        return self.trunk(x).view(b, t, -1).transpose(1, 2)
