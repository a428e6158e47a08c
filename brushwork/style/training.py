"""What the trained style engines share: a folder of images to sample crops from, and the loop
that checkpoints every N steps, on Ctrl-C and at the end."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from PIL import Image

from brushwork.errors import BrushworkError, non_negative, require
from brushwork.media import image_to_tensor, load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), by suffix, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class ImageFolder:
    """Images under a folder (recursively), decoded on demand; unreadable files are skipped and counted."""

    def __init__(self, root: str | os.PathLike, image_size: int, what: str = "content"):
        root = Path(root)
        if not root.is_dir():
            raise BrushworkError(f"{root}: {what} folder not found")
        self.paths = list_images(root)
        self.image_size = image_size
        self.what = what
        self.skipped: list[str] = []
        self._cache: dict[int, Image.Image | None] = {}
        if not self.paths:
            raise BrushworkError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")

    def image(self, index: int) -> Image.Image | None:
        if index in self._cache:
            return self._cache[index]
        try:
            img = load_image(self.paths[index])
        except BrushworkError as exc:
            self.skipped.append(str(exc))
            self._cache[index] = None
            return None
        # Keep a small copy: enough for random crops, small enough to cache a thousand photos.
        scale = self.image_size * 1.25 / min(img.size)
        if scale < 1:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        if len(self._cache) < 1024:
            self._cache[index] = img
        return img

    def batch(self, size: int, rng: random.Random) -> torch.Tensor:
        """``size`` random square crops, (size, 3, image_size, image_size) in 0..1."""
        crops = []
        for _ in range(size * 50):
            img = self.image(rng.randrange(len(self.paths)))
            if img is None:
                continue
            crops.append(image_to_tensor(random_square(img, self.image_size, rng)))
            if len(crops) == size:
                return torch.cat(crops)
        raise BrushworkError(f"too few readable images in the {self.what} folder ({len(self.skipped)} unreadable)")


def random_square(img: Image.Image, size: int, rng: random.Random) -> Image.Image:
    """Scale the short side to between size and 1.25*size, then crop a random size x size square."""
    scale = size * (1 + 0.25 * rng.random()) / min(img.size)
    w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
    img = img.resize((w, h), Image.Resampling.BILINEAR)
    x, y = rng.randrange(w - size + 1), rng.randrange(h - size + 1)
    return img.crop((x, y, x + size, y + size))


@dataclass
class TrainStep:
    step: int
    total: int
    losses: dict[str, float]


def run_training(
    train_step: Callable[[], dict[str, torch.Tensor]],
    start: int,
    steps: int,
    checkpoint: Callable[[int, bool], None],
    checkpoint_every: int,
    on_step: Callable[[TrainStep], None] | None = None,
) -> None:
    """Call ``train_step`` until ``steps``; ``checkpoint(step, final)`` every N steps, on Ctrl-C, at the end."""
    step = start
    try:
        while step < steps:
            losses = train_step()
            step += 1
            if on_step is not None:
                on_step(TrainStep(step, steps, {k: v.item() for k, v in losses.items()}))
            if step % checkpoint_every == 0 and step < steps:
                checkpoint(step, False)
    except KeyboardInterrupt:
        checkpoint(step, False)
        raise
    checkpoint(step, True)


@dataclass
class TrainingConfig:
    """What every trained style engine is set with; each engine's config adds its own fields."""

    image_size: int = 256
    batch_size: int = 4
    steps: int = 2000
    learning_rate: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 200

    def check(self, weights: tuple[str, ...], extra: list[tuple[bool, str]]) -> None:
        """The shared checks (sizes, counts, the named loss weights), then the engine's ``extra``."""
        require(
            [
                (32 <= self.image_size <= 2048, "training image size must be 32..2048 px"),
                (1 <= self.batch_size <= 256, "batch size must be 1..256"),
                (self.steps >= 1, "steps must be at least 1"),
                (self.checkpoint_every >= 1, "checkpoint interval must be at least 1"),
                *extra,
                *non_negative(self, ("learning_rate", *weights)),
            ]
        )


def config_from_dict(config_cls, values: dict):
    """A config dataclass from stored JSON, ignoring keys this version does not know."""
    known = {f.name for f in fields(config_cls)}
    return config_cls(**{k: v for k, v in values.items() if k in known})


def load_for_resume(path: Path, kind: str, config_cls, more_steps: int | None, optimizer_key: str = "optim"):
    """A checkpoint to continue: (tensors, meta, config with the step target raised, step reached).

    Refuses a slim model (no optimiser state) and one that already reached its step target."""
    from brushwork.checkpoints import load_checkpoint

    tensors, meta = load_checkpoint(path, kind)
    cfg = config_from_dict(config_cls, meta["config"])
    cfg.steps = max(cfg.steps, more_steps or 0)
    start = int(meta["step"])
    if optimizer_key not in meta:
        raise BrushworkError(f"{path}: was saved without its training state (a slim model); it cannot resume")
    if start >= cfg.steps:
        raise BrushworkError(f"{path}: already trained for {start} steps; ask for more with --steps")
    return tensors, meta, cfg, start
