"""FID/KID of a generator against its training images (see :mod:`brushwork.judge.distribution`).

Fixed latents and a fixed subset of real images, drawn from their own random generators: figures
at different steps compare like with like, and evaluating never changes the training stream.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from brushwork.errors import BrushworkError
from brushwork.gan.data import Dataset
from brushwork.gan.model import GanConfig, load_run, to_rgb01
from brushwork.judge.distribution import (
    FeatureEmbedder,
    frechet_distance,
    kernel_distance,
    load_extractor,
    precision_recall,
)

CHUNK = 16  # images per pass: large batches of 224 px activations run slower on a CPU, not faster


def real_features(data: Dataset, count: int, embedder: FeatureEmbedder, seed: int) -> torch.Tensor:
    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed + 777))[:count]
    return torch.cat([embedder(to_rgb01(data.images[chunk].float().div(127.5).sub(1))) for chunk in idx.split(CHUNK)])


@torch.no_grad()
def generated_images(g, cfg, count: int, device: torch.device):
    """``count`` images (RGB, 0..1) from ``g`` in chunks, with their labels: the classes in turn when
    conditional, from fixed latents."""
    z = torch.randn(count, cfg.latent, generator=torch.Generator().manual_seed(cfg.seed + 778))
    labels = torch.arange(count) % max(1, cfg.classes)
    was_training = g.training
    g.eval()
    try:
        for zs, ys in zip(z.split(CHUNK), labels.split(CHUNK), strict=True):
            yield to_rgb01(g(zs.to(device), ys.to(device) if cfg.classes else None).float()).cpu(), ys
    finally:
        g.train(was_training)


def generated_features(g, cfg, count: int, embedder: FeatureEmbedder, device: torch.device) -> torch.Tensor:
    """Features of ``count`` images from ``g``, the classes in turn when conditional."""
    return torch.cat([embedder(images.to(device)) for images, _ in generated_images(g, cfg, count, device)])


def distances(real: torch.Tensor, fake: torch.Tensor, extractor: str) -> dict:
    # Subsets of half the images at most, so that they differ and the spread means something.
    kid, kid_std = kernel_distance(
        real, fake, subsets=50, subset_size=min(1000, max(2, min(len(real), len(fake)) // 2))
    )
    precision, recall = precision_recall(real, fake) if min(len(real), len(fake)) > 3 else (None, None)
    return {f"fid_{extractor}": round(frechet_distance(real, fake), 3), f"kid_{extractor}": round(kid, 5),
            f"kid_{extractor}_std": round(kid_std, 5), f"precision_{extractor}": precision,
            f"recall_{extractor}": recall, "real": len(real), "generated": len(fake)}  # fmt: skip


def evaluate_run(run_dir: str | Path, data: Dataset, samples: int, device: torch.device,
                 extractor: str | None = None, weights: str | None = None,
                 class_check: Callable[[torch.Tensor, list[int], list[str]], dict] | None = None) -> dict:  # fmt: skip
    """The figures for a finished (or paused) run's EMA generator, on the run's extractor unless one is
    named; with ``class_check`` (images, labels, class names -> figures: a classifier the caller trusts)
    also the class consistency of a conditional run. A ``protocol`` card says what the figures were
    measured on, so two reports can be compared (or not)."""
    g, cfg, classes = load_run(run_dir)
    if class_check is not None and not cfg.classes:
        raise BrushworkError("class consistency needs a conditional run (this one has no classes)")
    if extractor is None:
        extractor, weights = cfg.eval_extractor, weights or cfg.eval_extractor_weights
    embedder = load_extractor(extractor, device, weights)
    real = real_features(data, min(samples, len(data.images)), embedder, cfg.seed)
    figures = distances(real, generated_features(g.to(device), cfg, samples, embedder, device), embedder.name)
    if class_check is not None:
        images, labels = zip(*generated_images(g, cfg, samples, device), strict=True)
        figures.update(class_check(torch.cat(images), torch.cat(labels).tolist(), classes))
    figures["protocol"] = {
        "extractor": embedder.name, "extractor_weights": Path(weights).name if weights else "default",
        "generated": figures["generated"], "real": figures["real"], "latent_seed": cfg.seed + 778,
        "real_subset_seed": cfg.seed + 777, "generator": "EMA", "kid_subsets": 50, "precision_recall_k": 3,
        "resolution": cfg.resolution, "classes": len(classes),
    }  # fmt: skip
    return figures


class TrainingMetrics:
    """FID/KID during training (the trainer's default metric): the real images' features once, then
    the EMA generator's at each evaluation."""

    def __init__(self, data: Dataset, cfg: GanConfig, device: torch.device):
        self.data, self.cfg, self.device = data, cfg, device
        self.embedder = load_extractor(cfg.eval_extractor, device, cfg.eval_extractor_weights)
        self.real: torch.Tensor | None = None

    def __call__(self, g_ema: torch.nn.Module, step: int) -> dict:
        cfg = self.cfg
        if self.real is None:
            self.real = real_features(self.data, min(cfg.eval_samples, len(self.data.images)), self.embedder, cfg.seed)
        fake = generated_features(g_ema, cfg, cfg.eval_samples, self.embedder, self.device)
        return distances(self.real, fake, self.embedder.name)
