"""Sampling a trained run by seed, class and truncation; latent walks (written as GIF or MP4 by the CLI)."""

from __future__ import annotations

import math

import torch
from PIL import Image

from brushwork.errors import MAX_SEED, BrushworkError, seed_check
from brushwork.gan.model import GanConfig, load_run, to_rgb01  # noqa: F401 - load_run: importable from here too
from brushwork.media import tensor_to_image

#: At most this many seeds per call, and this many frames in a walk: an output folder or a walk of
#: that size is already large, and a bound keeps a typo (0-99999999999) from taking all memory.
MAX_SEEDS = 10_000
MAX_FRAMES = 10_000
#: Below this, nearly every latent entry must be redrawn many times over: every image is the average one.
MIN_TRUNCATION = 0.01
CHUNK = 64  # images per generator pass


def parse_seeds(text: str) -> list[int]:
    """``0-63``, ``1,5,9`` or a mix: ``0-3,10``; each seed 0..2**63-1, at most ``MAX_SEEDS`` of them."""
    ranges: list[tuple[int, int]] = []
    try:
        for part in str(text).split(","):
            lo, _, hi = part.strip().partition("-")
            ranges.append((int(lo), int(hi) if hi else int(lo)))
    except ValueError as exc:
        raise BrushworkError(f"seeds must look like 0-63 or 1,5,9, not {text!r}") from exc
    # Counted before any list is made, so that 0-99999999999 is refused at once.
    count = sum(max(0, hi - lo + 1) for lo, hi in ranges)
    if not 1 <= count <= MAX_SEEDS or any(lo > hi for lo, hi in ranges):
        raise BrushworkError(f"seeds must be 1..{MAX_SEEDS} numbers, ranges low-high, not {text!r}")
    if any(not seed_check(v)[0] for pair in ranges for v in pair):
        raise BrushworkError(f"each seed must be a whole number 0..{MAX_SEED} (63 bits)")
    return [seed for lo, hi in ranges for seed in range(lo, hi + 1)]


def check_truncation(truncation: float | None) -> None:
    if truncation is not None and not (math.isfinite(truncation) and truncation >= MIN_TRUNCATION):
        raise BrushworkError(f"truncation must be a finite number >= {MIN_TRUNCATION}, not {truncation}")


def latent(seed: int, size: int, truncation: float | None) -> torch.Tensor:
    """The latent for ``seed``; with truncation, entries beyond it are redrawn (the truncation trick)."""
    check_truncation(truncation)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(size, generator=gen)
    if truncation is not None:
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
    check_truncation(truncation)
    if len(seeds) > MAX_SEEDS:
        raise BrushworkError(f"at most {MAX_SEEDS} seeds at a time")
    z = torch.stack([latent(s, cfg.latent, truncation) for s in seeds])
    return _run(g, cfg, z, label)


def _run(g, cfg: GanConfig, z: torch.Tensor, label: int | None) -> torch.Tensor:
    """The generator on ``z`` in chunks (a batch of thousands would hold every activation at once)."""
    device = next(g.parameters()).device
    out = []
    for chunk in z.split(CHUNK):
        labels = torch.full((len(chunk),), label or 0, device=device) if cfg.classes else None
        out.append(g(chunk.to(device), labels).cpu())
    return torch.cat(out)


def to_images(batch: torch.Tensor) -> list[Image.Image]:
    return [tensor_to_image(x) for x in to_rgb01(batch)]


@torch.no_grad()
def interpolate(g, cfg: GanConfig, seeds: list[int], label: int | None, frames: int,
                truncation: float | None) -> list[Image.Image]:  # fmt: skip
    """A spherical walk through the latents of ``seeds`` (and back to the first), ``frames`` per leg."""
    if len(seeds) < 2:
        raise BrushworkError("a walk needs at least two seeds")
    if not 1 <= frames <= 1000 or len(seeds) * frames > MAX_FRAMES:
        raise BrushworkError(f"frames must be 1..1000 per leg and at most {MAX_FRAMES} in all")
    zs = [latent(s, cfg.latent, truncation) for s in [*seeds, seeds[0]]]
    path = []
    for a, b in zip(zs, zs[1:], strict=False):
        omega = torch.arccos(torch.clamp((a / a.norm()) @ (b / b.norm()), -1, 1))
        for t in torch.linspace(0, 1, frames + 1)[:-1]:
            if omega < 1e-4:
                path.append((1 - t) * a + t * b)
            else:
                path.append((torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega))
    return to_images(_run(g, cfg, torch.stack(path), label))
