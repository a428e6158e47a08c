"""FID/KID of a generator against its training images (see :mod:`brushwork.judge.distribution`).

Fixed latents and a fixed subset of real images, drawn from their own random generators: figures
at different steps compare like with like, and evaluating never changes the training stream.
"""

from __future__ import annotations

from pathlib import Path

import torch

from brushwork.gan.data import Dataset
from brushwork.judge.distribution import (
    FeatureEmbedder,
    frechet_distance,
    kernel_distance,
    load_extractor,
    precision_recall,
)

CHUNK = 16  # images per pass: large batches of 224 px activations run slower on a CPU, not faster


def real_features(data: Dataset, count: int, embedder: FeatureEmbedder, seed: int) -> torch.Tensor:
    from brushwork.gan.train import to_rgb01

    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed + 777))[:count]
    return torch.cat([embedder(to_rgb01(data.images[chunk].float().div(127.5).sub(1))) for chunk in idx.split(CHUNK)])


@torch.no_grad()
def generated_features(g, cfg, count: int, embedder: FeatureEmbedder, device: torch.device) -> torch.Tensor:
    """Features of ``count`` images from ``g``, the classes in turn when conditional."""
    from brushwork.gan.train import to_rgb01

    z = torch.randn(count, cfg.latent, generator=torch.Generator().manual_seed(cfg.seed + 778))
    labels = torch.arange(count) % max(1, cfg.classes)
    was_training = g.training
    g.eval()
    out = [embedder(to_rgb01(g(zs.to(device), ys.to(device) if cfg.classes else None).float()))
           for zs, ys in zip(z.split(CHUNK), labels.split(CHUNK), strict=True)]  # fmt: skip
    g.train(was_training)
    return torch.cat(out)


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
                 extractor: str | None = None, weights: str | None = None) -> dict:  # fmt: skip
    """The figures for a finished (or paused) run's EMA generator, on the run's extractor unless one is named."""
    from brushwork.gan.sample import load_run

    g, cfg, _ = load_run(run_dir)
    if extractor is None:
        extractor, weights = cfg.eval_extractor, weights or cfg.eval_extractor_weights
    embedder = load_extractor(extractor, device, weights)
    real = real_features(data, min(samples, len(data.images)), embedder, cfg.seed)
    return distances(real, generated_features(g.to(device), cfg, samples, embedder, device), embedder.name)
