"""What every backbone offers the engines: named layers, its own input normalisation, frozen weights."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from brushwork.errors import BrushworkError

#: (kernel, stride, padding before) of one spatial operation along one axis.
SpatialOp = tuple[int, int, int]


@dataclass(frozen=True)
class TileGeometry:
    """What cutting an image into tiles must respect for the tiles' features to be exact.

    A tile owns the input rows/columns between two multiples of ``stride`` and is run with
    ``halo`` more pixels on each side: every feature of its own region then sees exactly the
    pixels it sees in the whole image, so per-tile Gram sums and gradients add up to the
    whole image's.
    """

    stride: int  #: the deepest layer's total stride; tile edges fall on its multiples
    halo: int  #: input pixels each side a tile needs, a multiple of ``stride``
    layer_strides: dict[str, int]
    #: Image sides must be multiples of this for tiles to see the same sampling grid as the whole
    #: image (TF "same" padding depends on the size's parity); 1 when any size works.
    size_multiple: int = 1


class FeatureExtractor(nn.Module):
    """A frozen image network read out at named layers.

    Callers pass RGB images in 0..1; each backbone converts to the input its weights were trained
    on. ``forward`` stops at the deepest layer asked for, so nothing past it is computed.
    """

    name: str = "backbone"
    #: Which weights, where the architecture's name alone does not say (``vgg19-caffe-q8``, ``vgg19-torchvision``).
    weights_name: str | None = None
    layer_names: tuple[str, ...] = ()
    content_layers: tuple[str, ...] = ()
    style_layers: tuple[str, ...] = ()

    @property
    def variant(self) -> str:
        """The name a record gives this backbone: its weights' name when it has one, else the architecture's."""
        return self.weights_name or self.name

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def iter_layers(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield (layer name, activation) in forward order."""
        raise NotImplementedError

    def layers_of(self, image: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """``iter_layers`` of the preprocessed ``image``; a backbone may fold the preprocessing into its first layer."""
        return self.iter_layers(self.preprocess(image))

    def check_layers(self, layers: Sequence[str]) -> None:
        unknown = [name for name in layers if name not in self.layer_names]
        if unknown:
            raise BrushworkError(
                f"{self.name} has no layer {', '.join(unknown)}; its layers are: {', '.join(self.layer_names)}"
            )

    def forward(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        self.check_layers(layers)
        wanted = set(layers)
        features: dict[str, torch.Tensor] = {}
        for name, x in self.layers_of(image):
            if name in wanted:
                features[name] = x
                if len(features) == len(wanted):
                    break
        return features

    def spatial_ops(self) -> Iterator[tuple[str, list[SpatialOp]]]:
        """(layer name, the spatial operations from the previous layer to it) in forward order.
        Backbones that do not say cannot be tiled."""
        raise NotImplementedError(f"{self.name} cannot be tiled")

    @property
    def tileable(self) -> bool:
        return type(self).spatial_ops is not FeatureExtractor.spatial_ops

    def tile_size_multiple(self, stride: int) -> int:
        return 1

    def tile_geometry(self, layers: Sequence[str]) -> TileGeometry:
        """Receptive-field arithmetic over ``spatial_ops`` down to the deepest of ``layers``."""
        self.check_layers(layers)
        wanted = set(layers)
        start, span, jump, halo = 0, 1, 1, 0  # a layer-output position i sees input [i*jump+start, +span)
        strides: dict[str, int] = {}
        for name, ops in self.spatial_ops():
            for kernel, stride, pad in ops:
                start -= pad * jump
                span += (kernel - 1) * jump
                jump *= stride
            if name in wanted:
                strides[name] = jump
                # Own positions cover [i*jump, (i+1)*jump); what they see reaches -start before and
                # start + span - jump after.
                halo = max(halo, -start, start + span - jump)
                if len(strides) == len(wanted):
                    break
        stride = max(strides.values())
        return TileGeometry(stride, math.ceil(halo / stride) * stride, strides, self.tile_size_multiple(stride))

    def freeze(self) -> FeatureExtractor:
        self.eval()
        self.requires_grad_(False)
        return self
