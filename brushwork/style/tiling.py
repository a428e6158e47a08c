"""Exact tiled loss and gradient, so print sizes fit in memory.

The style loss needs Gram matrices summed over the whole image, but a Gram matrix is a sum over
positions, and its gradient with respect to the features is local once the Gram is known. So one
step runs in two passes over overlapping tiles:

1. without gradients: each tile's own features are added into the Gram sums and content errors;
   the losses (and dLoss/dGram, a few small matrices) follow from those sums;
2. with gradients: each tile again, back-propagating a surrogate whose gradient is exactly that
   tile's share (<dLoss/dGram, F Fᵀ>/N for style, the local squared error for content); the tile
   gradients add up into the whole image's.

Tiles own regions between multiples of the backbone's stride and see a halo of at least its
receptive reach (``FeatureExtractor.tile_geometry``), so their features are the whole image's,
pooling grids included: loss and gradient equal the untiled ones up to float rounding, so there are
no seams to hide. The price is one extra forward pass and the halos, in exchange for memory bounded
by the tile size instead of the image size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from brushwork.backbones.base import FeatureExtractor, TileGeometry
from brushwork.style.losses import (
    EPS,
    GuidedTargets,
    masks_at,
    style_loss_from_grams,
    tv_loss,
    weighted_gram,
)

Box = tuple[int, int, int, int]  # y0, y1, x0, x1


@dataclass(frozen=True)
class Tile:
    own: Box  #: the input region whose features this tile contributes
    crop: Box  #: the input the network sees: ``own`` plus the halo, clipped to the image


def _spans(length: int, step: int) -> list[tuple[int, int]]:
    edges = list(range(0, length, step)) + [length]
    if len(edges) > 2 and edges[-1] - edges[-2] < step // 2:
        del edges[-2]  # fold a thin last strip into its neighbour
    return list(zip(edges[:-1], edges[1:], strict=True))


def plan_tiles(height: int, width: int, tile: int, geometry: TileGeometry) -> list[Tile]:
    """Tiles of about ``tile`` px (a multiple of the stride) covering a ``height`` x ``width`` image."""
    step = max(geometry.stride, tile // geometry.stride * geometry.stride)
    halo = geometry.halo
    return [
        Tile((y0, y1, x0, x1), (max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo)))
        for y0, y1 in _spans(height, step)
        for x0, x1 in _spans(width, step)
    ]


def _own_part(feature: torch.Tensor, tile: Tile, stride: int, image_hw: tuple[int, int]) -> torch.Tensor:
    """The rows and columns of a tile's feature map that belong to its own region."""
    (oy0, oy1, ox0, ox1), (cy0, _, cx0, _) = tile.own, tile.crop
    y_end = (oy1 - cy0) // stride if oy1 < image_hw[0] else feature.shape[-2]
    x_end = (ox1 - cx0) // stride if ox1 < image_hw[1] else feature.shape[-1]
    return feature[..., (oy0 - cy0) // stride : y_end, (ox0 - cx0) // stride : x_end]


class TiledFeatures:
    """A backbone read out tile by tile over images of one size."""

    def __init__(self, backbone: FeatureExtractor, layers: list[str], image_hw: tuple[int, int], tile: int):
        self.backbone, self.image_hw = backbone, image_hw
        self.geometry = backbone.tile_geometry(layers)
        self.tiles = plan_tiles(*image_hw, tile, self.geometry)

    def own_features(self, piece: torch.Tensor, tile: Tile, layers: list[str]) -> dict[str, torch.Tensor]:
        """Features of ``tile``'s own region, from ``piece``, the image cropped to ``tile.crop``."""
        feats = self.backbone(piece, layers)
        return {k: _own_part(v, tile, self.geometry.layer_strides[k], self.image_hw) for k, v in feats.items()}

    @torch.no_grad()
    def per_tile(self, image: torch.Tensor, layers: list[str]) -> Iterator[dict[str, torch.Tensor]]:
        for tile in self.tiles:
            y0, y1, x0, x1 = tile.crop
            yield self.own_features(image[..., y0:y1, x0:x1], tile, layers)

    @torch.no_grad()
    def grams(self, image: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """The whole image's Gram matrices (as ``gram_matrix`` gives them), summed over tiles."""
        sums = _GramSums()
        for feats in self.per_tile(image, layers):
            for name, f in feats.items():
                sums.add(name, f)
        return {name: sums.mean(name) for name in layers}


class _GramSums:
    """Per-layer sums of F Fᵀ over tiles and the positions they cover; the sums are kept in float64 so
    millions of positions add cleanly."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, name, features: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        """Add a tile's features (and, for a guided Gram, its part of the region mask) under key ``name``."""
        flat = features.float().flatten(2)
        weighted = flat if weight is None else flat * weight.float().flatten(2)
        part = torch.bmm(weighted, flat.transpose(1, 2)).double()
        self.sums[name] = self.sums[name] + part if name in self.sums else part
        mass = flat.shape[-1] if weight is None else weight.double().sum().item()
        self.counts[name] = self.counts.get(name, 0) + mass

    def mean(self, name) -> torch.Tensor:
        """The whole image's Gram matrix, as ``gram_matrix`` (or ``weighted_gram``) gives it."""
        return (self.sums[name] / self.counts[name]).float()


def _squared_error(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (features.float() - target.float()).pow(2).sum()


class TiledObjective:
    """Loss and gradient of the Gatys objective over tiles; same values as the whole-image objective.

    ``style_targets`` are one Gram target per layer, or ``GuidedTargets`` (a style per masked region):
    each region is then a Gram sum of its own, its mask averaged down to each layer of the whole image
    and cut along the same tile boundaries as the features."""

    def __init__(
        self,
        backbone: FeatureExtractor,
        content: torch.Tensor,
        style_targets: Mapping[str, torch.Tensor] | GuidedTargets,
        content_layers: list[str],
        weights: tuple[float, float, float],
        tile: int,
    ):
        self.content_weight, self.style_weight, self.tv_weight = weights
        if isinstance(style_targets, GuidedTargets):
            self.regions = [dict(g) for g in style_targets.grams]
            self.shares = list(style_targets.shares)
            style_names = style_targets.layers
        else:
            self.regions, self.shares = [dict(style_targets)], [1.0]
            style_names = list(style_targets)
        self.style_names = style_names
        self.content_layers = content_layers
        self.layers = list(dict.fromkeys([*content_layers, *style_names]))
        self.reader = TiledFeatures(backbone, self.layers, tuple(content.shape[-2:]), tile)
        # Content targets stay split by tile: each tile compares against its own part.
        self.content_targets = list(self.reader.per_tile(content, content_layers))
        self.content_norms = {
            name: sum(t[name].double().pow(2).sum() for t in self.content_targets).float() for name in content_layers
        }
        # Per tile, per region, per style layer: the tile's cut of the region's layer mask (None: unguided).
        self.tile_masks: list[list[dict[str, torch.Tensor | None]]] = [
            [dict.fromkeys(style_names) for _ in self.regions] for _ in self.tiles
        ]
        self.masses: dict[tuple[int, str], torch.Tensor] = {}
        if isinstance(style_targets, GuidedTargets):
            self._cut_masks(content, style_targets.masks)

    def _cut_masks(self, content: torch.Tensor, masks: torch.Tensor) -> None:
        """Each layer's mask at the whole image's feature size, cut into the tiles' own parts (a tile's own
        features start at row ``own_y0 / stride`` of the whole map: tiles start on stride multiples)."""
        spans, strides = [], self.reader.geometry.layer_strides
        for tile, feats in zip(self.tiles, self.reader.per_tile(content, self.style_names), strict=True):
            y0, x0 = tile.own[0], tile.own[2]
            spans.append({n: (y0 // strides[n], x0 // strides[n], *f.shape[-2:]) for n, f in feats.items()})
        for name in self.style_names:
            whole_hw = (max(y + h for y, _, h, _ in (s[name] for s in spans)),
                        max(x + w for _, x, _, w in (s[name] for s in spans)))  # fmt: skip
            layer_masks = masks_at(masks, whole_hw)
            for r in range(len(self.regions)):
                self.masses[r, name] = layer_masks[r].sum()
                for cut, span in zip(self.tile_masks, spans, strict=True):
                    y, x, h, w = span[name]
                    cut[r][name] = layer_masks[r : r + 1, :, y : y + h, x : x + w]

    @property
    def tiles(self) -> list[Tile]:
        return self.reader.tiles

    def _content_term(self, name: str, squared_error: torch.Tensor) -> torch.Tensor:
        """Layer ``name``'s share of the weighted content loss (``content_loss``'s relative error) for a
        squared error summed over the whole image or, in pass 2, over one tile."""
        relative = squared_error / (self.content_norms[name] + EPS)
        return self.content_weight * relative / len(self.content_layers)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss and its parts at ``image``; leaves the gradient in ``image.grad``."""
        # Pass 1: whole-image Gram matrices (per region) and content errors, no graph kept.
        grams = _GramSums()
        content_err = dict.fromkeys(self.content_layers, 0.0)
        keys = [(r, name) for r in range(len(self.regions)) for name in self.style_names]
        tiles = zip(self.reader.per_tile(image, self.layers), self.content_targets, self.tile_masks, strict=True)
        for feats, target, masks in tiles:
            for r, name in keys:
                grams.add((r, name), feats[name], masks[r][name])
            for name in self.content_layers:
                content_err[name] = content_err[name] + _squared_error(feats[name], target[name])
        mass = {key: self.masses.get(key, grams.counts[key]) for key in keys}
        whole_grams = {key: (grams.sums[key] / mass[key]).float().requires_grad_(True) for key in keys}
        with torch.enable_grad():
            style = torch.zeros((), device=image.device, requires_grad=True)  # no style images: words only
            for r, (targets, share) in enumerate(zip(self.regions, self.shares, strict=True)):
                region = {name: whole_grams[r, name] for name in self.style_names}
                style = style + share * style_loss_from_grams(region, targets)
            style = self.style_weight * style
        d_grams = dict(zip(keys, torch.autograd.grad(style, list(whole_grams.values())), strict=True)) if keys else {}
        content = sum(self._content_term(name, content_err[name]) for name in self.content_layers)

        # Pass 2: each tile's share of the gradient, through a surrogate with exactly that gradient.
        grad = torch.zeros_like(image)
        for tile, target, masks in zip(self.tiles, self.content_targets, self.tile_masks, strict=True):
            y0, y1, x0, x1 = tile.crop
            piece = image.detach()[..., y0:y1, x0:x1].requires_grad_(True)
            with torch.enable_grad():
                feats = self.reader.own_features(piece, tile, self.layers)
                surrogate = 0.0
                for r, name in keys:
                    weight = masks[r][name]
                    # A thin last strip may own no positions of a deep layer, or a tile none of a region.
                    if feats[name].numel() and (weight is None or weight.any()):
                        # This tile's part of the whole image's (guided) Gram: divided by the whole mass.
                        tile_gram = weighted_gram(feats[name], weight, mass[r, name])
                        surrogate = surrogate + (d_grams[r, name] * tile_gram).sum()
                for name in self.content_layers:
                    surrogate = surrogate + self._content_term(name, _squared_error(feats[name], target[name]))
                (tile_grad,) = torch.autograd.grad(surrogate, piece)
            grad[..., y0:y1, x0:x1] += tile_grad

        with torch.enable_grad():
            pixels = image.detach().requires_grad_(True)
            tv = self.tv_weight * tv_loss(pixels)
            (tv_grad,) = torch.autograd.grad(tv, pixels)
        image.grad = grad + tv_grad
        parts = {"content": content.detach(), "style": style.detach(), "tv": tv.detach()}
        return sum(parts.values()), parts


@dataclass(frozen=True)
class MemoryProbe:
    """Bytes per input pixel of one forward and backward, measured on a small probe image."""

    saved: float  #: activations autograd keeps for backward (each storage once, weights excluded)
    scratch: float  #: the largest scratch buffer a layer asks for (NNPACK's Winograd workspace)

    @property
    def step(self) -> float:
        # Backward holds about as much again as the saved activations at its peak layer.
        return 2 * self.saved + self.scratch


def probe_memory(backbone: FeatureExtractor, layers: list[str], device: torch.device) -> MemoryProbe:
    """Run a small probe image forward to ``layers`` and count what a step will hold per pixel."""
    side = 4 * backbone.tile_geometry(layers).stride
    storages: dict[int, int] = {}  # one tensor is often saved twice (a ReLU's output, the next conv's input)
    weights = {t.untyped_storage().data_ptr() for t in [*backbone.parameters(), *backbone.buffers()]}
    scratch = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in weights:  # convolutions save their weights too: not per pixel
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    def note_scratch(module, inputs):
        scratch[0] = max(scratch[0], module.scratch_bytes(inputs[0]))

    hooks = [m.register_forward_pre_hook(note_scratch) for m in backbone.modules() if hasattr(m, "scratch_bytes")]
    probe = torch.zeros(1, 3, side, side, device=device, requires_grad=True)
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            outputs = backbone(probe, layers)
            for v in outputs.values():
                pack(v)
    finally:
        for hook in hooks:
            hook.remove()
    pixels = side * side
    return MemoryProbe(saved=sum(storages.values()) / pixels, scratch=scratch[0] / pixels)


def available_memory(device: torch.device) -> int:
    """Bytes free for this run: the GPU's free memory, or the host's available memory."""
    if device.type == "cuda":
        torch.cuda.empty_cache()  # blocks the caching allocator holds from an earlier scale are free to us
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 8 * 2**30


def choose_tile(image_hw: tuple[int, int], geometry: TileGeometry, need: float, budget: int) -> int:
    """0 (no tiling) if a whole-image step's ``need`` bytes per pixel fit ``budget``, else the largest
    tile that does."""
    if image_hw[0] * image_hw[1] * need <= budget:
        return 0
    side = int(math.sqrt(budget / need)) - 2 * geometry.halo
    return max(geometry.stride * 4, side // geometry.stride * geometry.stride)
