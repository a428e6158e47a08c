"""Region masks: which style paints where (guided Gram matrices, Gatys et al. 2017).

A mask is a greyscale image: white is the region of its style, black is outside it, grey a soft
share (blur a mask, or pass ``feather``, for soft edges between styles). Either one mask per style,
or one mask for two styles: white paints the first, black the second (as ``adain apply --mask``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from brushwork.errors import BrushworkError

#: A region whose mask has less than this mass (in pixels) has, for practical purposes, no pixels.
MIN_REGION_PIXELS = 1.0


def check_mask_count(n_masks: int, n_styles: int) -> None:
    """One mask per style, or one mask for two styles (the second takes what the first leaves)."""
    if n_masks != n_styles and not (n_masks == 1 and n_styles == 2):
        raise BrushworkError(
            f"{n_styles} style image(s) but {n_masks} mask(s): give one mask per style, or one mask for two styles"
        )


def region_masks(
    masks: Sequence[Image.Image], n_styles: int, size: tuple[int, int], feather: float = 0.0
) -> tuple[torch.Tensor, list[str]]:
    """(R, 1, H, W) float masks in 0..1 at ``size`` (width, height), one per style, and notes on what was
    adjusted. ``feather`` blurs the edges by that many pixels (a Gaussian's radius) at ``size``."""
    check_mask_count(len(masks), n_styles)
    if feather < 0:
        raise BrushworkError("mask feather must be >= 0 pixels")
    notes, planes = [], []
    for i, mask in enumerate(masks, 1):
        grey = mask.convert("L")
        if grey.size != size:
            notes.append(f"mask {i} is {grey.size[0]}x{grey.size[1]}, resized to the output's {size[0]}x{size[1]}")
            grey = grey.resize(size, Image.Resampling.BILINEAR)
        if feather:
            grey = grey.filter(ImageFilter.GaussianBlur(feather))
        planes.append(torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0))
    if len(planes) == 1 and n_styles == 2:
        planes.append(1.0 - planes[0])
    stacked = torch.stack(planes)[:, None]
    for i, plane in enumerate(stacked, 1):
        if plane.sum() < MIN_REGION_PIXELS:
            why = "the mask is white everywhere" if len(masks) < i else f"mask {i} is black everywhere"
            raise BrushworkError(f"style {i} has no pixels to paint: {why}")
    return stacked, notes


def masks_for(masks: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """Region masks resized to one scale's image size (the coarse-to-fine pyramid, rounded tile sides)."""
    if tuple(masks.shape[-2:]) == tuple(hw):
        return masks
    return F.interpolate(masks, size=tuple(hw), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def region_shares(masks: torch.Tensor, blend: Sequence[float]) -> list[float]:
    """Weights of the regions' style losses: each region's area times its blend weight, normalised, so
    the style weight presses on every pixel about as hard as without masks."""
    raw = [float(m.sum()) * w for m, w in zip(masks, blend, strict=True)]
    total = sum(raw)
    if total <= 0:
        raise BrushworkError("the style blend weights leave every masked region without a style")
    return [r / total for r in raw]
