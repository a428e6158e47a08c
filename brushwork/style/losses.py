"""Perceptual losses shared by every style engine (optimisation, feed-forward, AdaIN).

The content and style terms are *relative* squared errors: each layer's error is divided by the
squared norm of its target. That makes a weight mean the same thing at any image size, for any
layer width and for any backbone (VGG activations are tens of times larger than Lite0's), which
the raw sums of neural-style do not: there the weights must be retuned per size and network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

EPS = 1e-8


_UNUSED: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def _unused(like: torch.Tensor) -> torch.Tensor:
    """A 0-d tensor for ``baddbmm``'s ``input`` at ``beta=0`` (read by no one): made once per device and dtype,
    not on every call, since a step's host cost is its operator count (#21)."""
    key = (like.device, like.dtype)
    if key not in _UNUSED:
        _UNUSED[key] = like.new_zeros(())
    return _UNUSED[key]


class _Gram(torch.autograd.Function):
    """G = F W Fᵀ / N with a one-product backward, dF = (dG + dGᵀ) F W / N (W: diagonal position
    weights, none for a plain Gram).

    Left to autograd, F Fᵀ back-propagates through both operands: two products, and then a sum of
    two full-size (C, N) gradients, one of them transposed, which on a CPU cost more than the
    products themselves (71 ms per step at 512² for VGG's relu1_1 alone).

    ``symmetric``: the caller's loss gives a symmetric dG (a function of G's entries against a symmetric
    target, as every loss here is; G itself comes out symmetric, bitwise on the CPU), so dG + dGᵀ is 2 dG
    and the backward is one operator.
    """

    @staticmethod
    def forward(ctx, flat: torch.Tensor, n: float, weight: torch.Tensor | None = None, symmetric: bool = False):
        weighted = flat if weight is None else flat * weight
        ctx.save_for_backward(weighted)
        ctx.n, ctx.symmetric = n, symmetric
        if isinstance(n, torch.Tensor):  # a mask's mass, on the device
            return torch.bmm(weighted, flat.transpose(1, 2)) / n
        # One operator for the product and its scale: a step's host cost is its operator count (#21).
        return torch.baddbmm(_unused(flat), weighted, flat.transpose(1, 2), beta=0, alpha=1 / n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (weighted,) = ctx.saved_tensors
        if isinstance(ctx.n, torch.Tensor):
            # Scale the small (C, C) factor, not the (C, N) result.
            return torch.bmm((grad + grad.transpose(1, 2)) / ctx.n, weighted), None, None, None
        if ctx.symmetric:
            return torch.baddbmm(_unused(grad), grad, weighted, beta=0, alpha=2 / ctx.n), None, None, None
        both = grad + grad.transpose(1, 2)
        return torch.baddbmm(_unused(both), both, weighted, beta=0, alpha=1 / ctx.n), None, None, None


def gram_matrix(features: torch.Tensor, symmetric_loss: bool = False) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) channel co-activations averaged over positions, in float32 at least.
    ``symmetric_loss``: the loss this feeds gives a symmetric gradient (``_Gram``), for a one-operator backward."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return _Gram.apply(
        flat if flat.dtype in (torch.float32, torch.float64) else flat.float(), h * w, None, symmetric_loss
    )


def weighted_gram(
    features: torch.Tensor, weight: torch.Tensor | None, mass: float | torch.Tensor | None = None
) -> torch.Tensor:
    """Guided Gram matrix (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer"):
    co-activations weighted by a (B or 1, 1, H, W) mask at the features' resolution, divided by the mask's
    mass (its sum; the tiled engine passes the whole image's mass for a tile's part). A 0/1 mask gives the
    Gram matrix of its region alone; no mask, ``gram_matrix`` scaled by positions / ``mass``."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    flat = flat if flat.dtype == torch.float64 else flat.float()
    if weight is not None:
        weight = weight.reshape(weight.shape[0], 1, h * w).to(flat.dtype)
    if mass is None:
        mass = h * w if weight is None else weight.sum()
    return _Gram.apply(flat, mass, weight)


def masks_at(masks: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(R, 1, H, W) region masks averaged down to a layer's (h, w): each feature position's share of
    every region. Area averaging keeps soft edges soft and a region's mass in proportion."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(masks, size=tuple(size), mode="area")


@dataclass
class GuidedTargets:
    """Style targets by region: style r's Gram matrices, matched only where ``masks[r]`` is set.

    ``masks`` is (R, 1, H, W) in 0..1 at the size of the image being optimised; ``shares`` (summing
    to 1) weigh the regions' style losses, so a style weight means what it means without masks.
    """

    grams: list[dict[str, torch.Tensor]]
    masks: torch.Tensor
    shares: list[float]

    @property
    def layers(self) -> list[str]:
        return list(self.grams[0])


def guided_style_loss(features: Mapping[str, torch.Tensor], targets: GuidedTargets) -> torch.Tensor:
    """``style_loss`` per region with guided Gram matrices, mixed by the regions' shares."""
    total = 0.0
    for r, (grams, share) in enumerate(zip(targets.grams, targets.shares, strict=True)):
        region = {}
        for name in grams:
            mask = masks_at(targets.masks[r : r + 1], features[name].shape[-2:])
            region[name] = weighted_gram(features[name], mask.to(features[name].device))
        total = total + share * style_loss_from_grams(region, grams)
    return total


def relative_mse(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||value - target||^2 / ||target||^2, averaged over the batch."""
    value, target = value.float(), target.float()
    dims = tuple(range(1, value.dim()))
    err = (value - target).pow(2).sum(dims)
    return (err / (target.pow(2).sum(dims) + EPS)).mean()


def content_loss(features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean over the content layers of the relative feature error."""
    return sum(relative_mse(features[name], target) for name, target in targets.items()) / len(targets)


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Weighted mean over the style layers of the relative Gram error."""
    grams = {name: gram_matrix(features[name]) for name in target_grams}
    return style_loss_from_grams(grams, target_grams, layer_weights)


def style_loss_from_grams(
    grams: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """``style_loss`` from Gram matrices already formed (the tiled engine sums them over tiles)."""
    total, norm = 0.0, 0.0
    for name, target in target_grams.items():
        weight = 1.0 if layer_weights is None else layer_weights.get(name, 1.0)
        total = total + weight * relative_mse(grams[name], target)
        norm += weight
    return total / norm


def blended_grams(per_style: Sequence[Mapping[str, torch.Tensor]], blend: Sequence[float]) -> dict[str, torch.Tensor]:
    """One Gram target per layer from several style images, mixed by ``blend`` (sums to 1)."""
    return {name: sum(w * grams[name] for w, grams in zip(blend, per_style, strict=True)) for name in per_style[0]}


def tv_errors(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared difference between horizontal, then vertical, neighbours."""
    # mse_loss: one operator (and one back) for the difference, its square and its mean.
    return F.mse_loss(image[..., :, 1:], image[..., :, :-1]), F.mse_loss(image[..., 1:, :], image[..., :-1, :])


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels: discourages high-frequency noise."""
    dx, dy = tv_errors(image)
    return dx + dy


class RelativeErrors:
    """``content_loss`` / ``style_loss`` for a batch of one against fixed targets, as few operators as can be:
    the targets' squared norms are taken once, each layer's error is one ``mse_loss`` and the weighted
    mean over layers one product, ``scale`` (a loss weight) included. An optimisation step's host cost
    is its operator count, which on a GPU is what a small step costs (#21)."""

    def __init__(self, targets: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float] | None = None,
                 scale: float = 1.0):  # fmt: skip
        self.targets = {name: t if t.dtype == torch.float32 else t.float() for name, t in targets.items()}
        weights = [1.0 if layer_weights is None else layer_weights.get(name, 1.0) for name in self.targets]
        norm = sum(weights)
        squares = [t.double().pow(2).sum() + EPS for t in self.targets.values()]
        coef = [scale * w / norm / sq for w, sq in zip(weights, squares, strict=True)]
        device = next(iter(self.targets.values())).device
        self.coef = torch.stack(coef).to(device, torch.float32) if coef else torch.zeros(0, device=device)

    def errors(self, values: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """``values`` (one per target: features or Gram matrices) minus the targets, squared and summed."""
        return [F.mse_loss(v if (v := values[name]).dtype == torch.float32 else v.float(), target, reduction="sum")
                for name, target in self.targets.items()]  # fmt: skip

    def __call__(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(self.errors(values)) @ self.coef

    def grams(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The Gram matrices of ``features`` at the targets' layers (for a style loss)."""
        return {name: gram_matrix(features[name], symmetric_loss=True) for name in self.targets}


class WeightedParts:
    """Named losses, each a weighted sum of some errors, taken as one product: ``parts(errors)`` is the
    (parts,) vector, given every part's errors in turn. One ``stack`` and one ``mv`` for the whole
    loss, where a sum per part and one per pair of parts would each dispatch their own (#21)."""

    def __init__(self, coefs: Mapping[str, torch.Tensor]):
        self.names = list(coefs)
        sizes = [len(c) for c in coefs.values()]
        device = next(iter(coefs.values())).device
        self.matrix = torch.zeros(len(sizes), sum(sizes), device=device)
        start = 0
        for row, (size, coef) in enumerate(zip(sizes, coefs.values(), strict=True)):
            self.matrix[row, start : start + size] = coef
            start += size

    def __call__(self, errors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.mv(self.matrix, torch.stack(list(errors)))


def channel_mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and standard deviation over positions: (B, C, 1, 1) each."""
    flat = features.float().flatten(2)
    mean = flat.mean(-1)
    std = (flat.var(-1, unbiased=False) + eps).sqrt()
    return mean[..., None, None], std[..., None, None]


def mean_std_loss(
    features: Mapping[str, torch.Tensor], targets: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """Mean over layers of the relative error of channel means and deviations (the AdaIN style loss)."""
    total = 0.0
    for name, (mean_t, std_t) in targets.items():
        mean, std = channel_mean_std(features[name])
        total = total + relative_mse(mean, mean_t) + relative_mse(std, std_t)
    return total / len(targets)
