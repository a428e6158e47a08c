"""Colour preservation (Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer").

``luminance``: keep the stylised luminance, put back the content's chrominance (YIQ).
``histogram``: before transfer, give the style image the content's colour mean and covariance.
"""

from __future__ import annotations

import torch

MODES = ("none", "luminance", "histogram")

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YIQ).to(image), image)


def luminance_transfer(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylised image's luminance with the content image's colours (same size tensors)."""
    out = rgb_to_yiq(stylised)
    out[:, 1:] = rgb_to_yiq(content)[:, 1:]
    return yiq_to_rgb(out).clamp(0, 1)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(1e-8)
    vals = vals.rsqrt() if inverse else vals.sqrt()
    return vecs @ torch.diag(vals) @ vecs.T


def match_color_statistics(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Affinely map ``source``'s RGB so its mean and covariance equal ``reference``'s."""
    src = source[0].reshape(3, -1).double()
    ref = reference[0].reshape(3, -1).double()
    mu_s, mu_r = src.mean(1, keepdim=True), ref.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64) * 1e-5
    cov_s = torch.cov(src) + eye
    cov_r = torch.cov(ref) + eye
    transform = _sqrtm(cov_r) @ _sqrtm(cov_s, inverse=True)
    out = transform @ (src - mu_s) + mu_r
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)
