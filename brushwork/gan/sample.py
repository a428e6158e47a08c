"""Sampling a trained run by seed, class and truncation; latent walks (written as GIF or MP4 by the CLI)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from brushwork.checkpoints import load_checkpoint, module_state
from brushwork.errors import BrushworkError
from brushwork.gan.train import CHECKPOINT, KIND, GanConfig, build_generator, to_rgb01
from brushwork.media import tensor_to_image
from brushwork.style.training import config_from_dict


def load_run(run_dir: str | Path) -> tuple[torch.nn.Module, GanConfig, list[str]]:
    """The EMA generator of a run, its config and its class names."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).exists():
        raise BrushworkError(f"{run_dir}: not a brushwork GAN run (no {CHECKPOINT})")
    tensors, meta = load_checkpoint(run_dir / CHECKPOINT, KIND)
    cfg = config_from_dict(GanConfig, meta["config"])
    g = build_generator(cfg)
    g.load_state_dict(module_state(tensors, "g_ema"))
    return g.eval().requires_grad_(False), cfg, list(meta["data"].get("classes") or [])


def parse_seeds(text: str) -> list[int]:
    """``0-63``, ``1,5,9`` or a mix: ``0-3,10``."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError as exc:
        raise BrushworkError(f"seeds must look like 0-63 or 1,5,9, not {text!r}") from exc
    if not seeds or len(seeds) > 100_000 or min(seeds) < 0:
        raise BrushworkError("seeds must be 1..100000 non-negative numbers")
    return seeds


def latent(seed: int, size: int, truncation: float | None) -> torch.Tensor:
    """The latent for ``seed``; with truncation, entries beyond it are redrawn (the truncation trick)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(size, generator=gen)
    if truncation is not None:
        if truncation <= 0:
            raise BrushworkError("truncation must be > 0")
        while (far := z.abs() > truncation).any():
            z[far] = torch.randn(int(far.sum()), generator=gen)
    return z


def class_index(name: str | None, classes: list[str]) -> int | None:
    if name is None:
        return None
    if not classes:
        raise BrushworkError("this run is unconditional: it has no classes")
    if name not in classes:
        raise BrushworkError(f"no class {name!r}; this run has: {', '.join(classes)}")
    return classes.index(name)


@torch.no_grad()
def generate(g, cfg: GanConfig, seeds: list[int], label: int | None, truncation: float | None) -> torch.Tensor:
    device = next(g.parameters()).device
    z = torch.stack([latent(s, cfg.latent, truncation) for s in seeds]).to(device)
    labels = torch.full((len(seeds),), label if label is not None else 0, device=device) if cfg.classes else None
    return g(z, labels)


def to_images(batch: torch.Tensor) -> list[Image.Image]:
    return [tensor_to_image(x) for x in to_rgb01(batch)]


@torch.no_grad()
def interpolate(g, cfg: GanConfig, seeds: list[int], label: int | None, frames: int,
                truncation: float | None) -> list[Image.Image]:  # fmt: skip
    """A spherical walk through the latents of ``seeds`` (and back to the first), ``frames`` per leg."""
    if len(seeds) < 2:
        raise BrushworkError("a walk needs at least two seeds")
    zs = [latent(s, cfg.latent, truncation) for s in [*seeds, seeds[0]]]
    path = []
    for a, b in zip(zs, zs[1:], strict=False):
        omega = torch.arccos(torch.clamp((a / a.norm()) @ (b / b.norm()), -1, 1))
        for t in torch.linspace(0, 1, frames + 1)[:-1]:
            if omega < 1e-4:
                path.append((1 - t) * a + t * b)
            else:
                path.append((torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega))
    z = torch.stack(path)
    labels = torch.full((len(z),), label or 0) if cfg.classes else None
    return to_images(g(z, labels))
