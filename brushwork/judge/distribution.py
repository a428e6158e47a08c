"""Distances between two sets of images: FID, KID and precision/recall on features from a pluggable extractor.

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to the two feature
sets; KID (Bińkowski et al. 2018) is the unbiased MMD² with the cubic polynomial kernel, averaged
over random subsets. KID is unbiased at small sample counts, so it is the one to watch in short
runs; FID is biased upwards when few samples are used.

The figures are only comparable with published ones when the features are Inception-v3's ("FID"
in papers): extractor ``inception``, pytorch-fid's weights, which need a download or a local copy.
brushwork's offline extractor is the Lite0 backbone, so its figures are labelled ``fid_lite0`` /
``kid_lite0``: good for comparing runs with each other, not with papers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from brushwork.errors import BrushworkError


@dataclass
class FeatureEmbedder:
    """Images (N, 3, H, W) in 0..1 -> features (N, D): a backbone layer, resized input, average-pooled."""

    name: str
    network: torch.nn.Module
    layer: str
    size: int = 224
    antialias: bool = True  # pytorch-fid resizes without, and Inception FID must match it

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.network.parameters()).device
        x = F.interpolate(images.to(device, torch.float32), size=(self.size, self.size), mode="bilinear",
                          align_corners=False, antialias=self.antialias)  # fmt: skip
        return self.network(x.clamp(0, 1), [self.layer])[self.layer].mean(dim=(2, 3)).double().cpu()


#: name -> factory(device, weights path or None) of an embedder. Add your own with :func:`register_extractor`.
EXTRACTORS: dict[str, Callable[[torch.device, str | None], FeatureEmbedder]] = {}


def register_extractor(name: str, factory: Callable[[torch.device, str | None], FeatureEmbedder]) -> None:
    EXTRACTORS[name] = factory


def _lite0(device: torch.device, weights: str | None) -> FeatureEmbedder:
    from brushwork.backbones.lite0 import load_lite0

    return FeatureEmbedder("lite0", load_lite0(weights).to(device), "head")


def _inception(device: torch.device, weights: str | None) -> FeatureEmbedder:
    from brushwork.backbones.inception import FID_INPUT_SIZE, load_fid_inception

    # Mixed_7c averaged over positions is the 2048-d "pool3" feature of TF's FID graph.
    return FeatureEmbedder("inception", load_fid_inception(weights).to(device), "Mixed_7c", FID_INPUT_SIZE, False)


register_extractor("lite0", _lite0)
register_extractor("inception", _inception)


def load_extractor(name: str, device: torch.device | str = "cpu", weights: str | None = None) -> FeatureEmbedder:
    """An embedder by name; ``weights`` is a local weights file (default: the extractor's own source)."""
    if name not in EXTRACTORS:
        raise BrushworkError(f"unknown feature extractor {name!r}; choose from {', '.join(EXTRACTORS)}")
    return EXTRACTORS[name](torch.device(device), weights)


def embed(embedder: FeatureEmbedder, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """Features of every batch of 0..1 RGB images, stacked (float64, on the CPU)."""
    return torch.cat([embedder(batch) for batch in batches])


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID between feature sets a (N, D) and b (M, D)."""
    _check(a, b, 2)
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    # tr sqrt(A B) = sum of sqrt(eigenvalues of sqrt(A) B sqrt(A)), a symmetric PSD matrix, so eigh
    # is stable where a general matrix square root of A B is not.
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def kernel_distance(a: torch.Tensor, b: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """KID between feature sets: (mean, standard deviation) over random subsets."""
    _check(a, b, 2)
    a, b = a.double(), b.double()
    n = min(len(a), len(b), subset_size)
    dim = a.shape[1]
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=gen)[:n]]
        y = b[torch.randperm(len(b), generator=gen)[:n]]
        k_xx, k_yy, k_xy = ((p @ q.T / dim + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        off_diagonal = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
        values.append(off_diagonal - 2 * k_xy.mean())
    result = torch.stack(values)
    return float(result.mean()), float(result.std()) if subsets > 1 else 0.0


def _check(a: torch.Tensor, b: torch.Tensor, least: int) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise BrushworkError("feature sets must both be (N, D) with the same D")
    if min(len(a), len(b)) < least:
        raise BrushworkError(f"need at least {least} images on each side")


def _kth_neighbour_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    # k + 1: each point's nearest neighbour in its own set is itself, at distance 0.
    return torch.cat([torch.cdist(x[i : i + chunk], x).kthvalue(k + 1, dim=1).values for i in range(0, len(x), chunk)])


def _inside_manifold(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> torch.Tensor:
    """For each point: is it within the k-NN ball of some centre?"""
    return torch.cat(
        [(torch.cdist(points[i : i + chunk], centres) <= radii).any(dim=1) for i in range(0, len(points), chunk)]
    )


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) between feature sets (N, D) and (M, D).

    Each set's manifold is the union of balls around its points reaching their k-th nearest
    neighbour. Precision: the share of generated samples inside the real manifold (are they
    realistic?). Recall: the share of real samples inside the generated manifold (is the variety
    covered?). The paper uses k = 3 and 50k samples of VGG-16 features; here they are on whatever
    extractor gave the features, so they compare runs with each other.
    """
    _check(real, fake, k + 1)
    real, fake = real.double(), fake.double()
    precision = _inside_manifold(fake, real, _kth_neighbour_radii(real, k, chunk), chunk).double().mean()
    recall = _inside_manifold(real, fake, _kth_neighbour_radii(fake, k, chunk), chunk).double().mean()
    return float(precision), float(recall)
