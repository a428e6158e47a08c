"""What every backbone offers the engines: named layers, its own input normalisation, frozen weights."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from brushwork.errors import BrushworkError


class FeatureExtractor(nn.Module):
    """A frozen image network read out at named layers.

    Callers pass RGB images in 0..1; each backbone converts to the input its weights were trained
    on. ``forward`` stops at the deepest layer asked for, so nothing past it is computed.
    """

    name: str = "backbone"
    layer_names: tuple[str, ...] = ()
    content_layers: tuple[str, ...] = ()
    style_layers: tuple[str, ...] = ()

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def iter_layers(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield (layer name, activation) in forward order."""
        raise NotImplementedError

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
        for name, x in self.iter_layers(self.preprocess(image)):
            if name in wanted:
                features[name] = x
                if len(features) == len(wanted):
                    break
        return features

    def freeze(self) -> FeatureExtractor:
        self.eval()
        self.requires_grad_(False)
        return self
