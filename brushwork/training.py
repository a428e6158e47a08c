"""The one training skeleton, shared by the feed-forward, AdaIN and GAN trainers: image folders to
draw batches from, the settings every trainer has, the state a checkpoint holds (modules,
optimisers, random streams) saved and restored together, resuming, and the loop that checkpoints
every N steps, on Ctrl-C and at the end, always at a step boundary so that resuming is exact."""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import torch
from PIL import Image

from brushwork.errors import MAX_SEED, BrushworkError, non_negative, require, seed_check
from brushwork.files import IMAGE_FILE_SUFFIXES
from brushwork.media import image_to_tensor, load_image
from brushwork.settings import setting


def list_images(folder: Path, unreadable: list[str] | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively), by suffix, in a stable order. Sub-folders that cannot
    be read are noted in ``unreadable`` (when given), not skipped in silence."""

    def note(exc: OSError) -> None:
        if unreadable is not None:
            unreadable.append(f"{exc.filename}: folder unreadable ({exc.strerror})")

    found = []
    for parent, _, files in os.walk(folder, onerror=note):
        found += [Path(parent, name) for name in files if Path(name).suffix.lower() in IMAGE_FILE_SUFFIXES]
    return sorted(p for p in found if p.is_file())


class ImageFolder:
    """Images under a folder (recursively), decoded on demand; unreadable files are skipped and counted."""

    def __init__(self, root: str | os.PathLike, image_size: int, what: str = "content"):
        root = Path(root)
        if not root.is_dir():
            raise BrushworkError(f"{root}: {what} folder not found")
        self.skipped: list[str] = []  # unreadable files and folders, each with why
        self.paths = list_images(root, self.skipped)
        self.image_size = image_size
        self.what = what
        self._cache: dict[int, Image.Image | None] = {}
        if not self.paths and self.skipped:
            raise BrushworkError(f"{root}: no readable images ({self.skipped[0]})")
        if not self.paths:
            raise BrushworkError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_FILE_SUFFIXES))})")

    @property
    def unreadable(self) -> int:
        return len(self.skipped)

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


INTERRUPT_NOTE = "brushwork: finishing this step to save a checkpoint (Ctrl-C again to stop now without it)"


class _DeferredInterrupt:
    """While training, Ctrl-C only raises a flag: the step under way finishes, and the loop stops at the
    step boundary, so the checkpoint it saves is a whole step under its own number (exact resume). A
    second Ctrl-C interrupts at once. Outside the main thread signals cannot be caught: a no-op there."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # the second Ctrl-C: the user means it
            raise KeyboardInterrupt
        self.requested = True
        # The step under way may take a while on a big model: say why nothing seems to happen.
        print(f"\n{INTERRUPT_NOTE}", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def run_training(
    train_step: Callable[[], dict[str, torch.Tensor]],
    start: int,
    steps: int,
    checkpoint: Callable[[int, bool], None],
    checkpoint_every: int,
    on_step: Callable[[TrainStep], None] | None = None,
    agree_to_stop: Callable[[bool], bool] | None = None,
) -> None:
    """The one training loop: call ``train_step`` until ``steps``; ``checkpoint(step, final)`` every
    ``checkpoint_every`` steps, at the start of a new run, on Ctrl-C and at the end.

    A checkpoint only ever holds a whole number of steps, so resuming is exact however a run stopped:
    Ctrl-C lets the step under way finish; a KeyboardInterrupt raised from ``on_step`` comes after a
    whole step; one raised inside ``train_step`` (a second Ctrl-C) leaves a half-done step in memory,
    which is discarded: the last checkpoint on disk stays, a step boundary. ``agree_to_stop`` lets
    several processes (DDP) agree to stop at the same step: it gets this process's wish, returns all's.
    """
    step = saved = start
    if start == 0:
        checkpoint(0, False)  # something to resume from, whenever the first interrupt comes
    with _DeferredInterrupt() as interrupt:
        while step < steps:
            # A KeyboardInterrupt raised in here leaves a half-done step in memory: it propagates unsaved,
            # and the checkpoint on disk (a step boundary, with its data stream) is what resumes.
            losses = train_step()
            step += 1
            # One host sync for all the losses (on a GPU each .item() would be one).
            if not bool(torch.isfinite(torch.stack([v.detach().float().reshape(()) for v in losses.values()])).all()):
                raise BrushworkError(
                    f"training diverged at step {step}: the losses are no longer finite numbers (try a lower "
                    f"learning rate); the last good checkpoint, of step {saved}, is kept"
                )
            try:
                if on_step is not None:
                    on_step(TrainStep(step, steps, {k: v.item() for k, v in losses.items()}))
            except KeyboardInterrupt:
                interrupt.requested = True
            stop = agree_to_stop(interrupt.requested) if agree_to_stop is not None else interrupt.requested
            if stop:
                checkpoint(step, step >= steps)
                raise KeyboardInterrupt
            if step % checkpoint_every == 0 and step < steps:
                checkpoint(step, False)
                saved = step
        checkpoint(step, True)


#: The one rule for --steps, on every trainer (fast, adain, gan).
STEPS_HELP = (
    "training steps in all, counted from the first; with --resume the new total (a checkpoint already there is refused)"
)


@dataclass
class TrainingConfig:
    """What every trained style engine is set with; each engine's config adds its own fields."""

    image_size: int = setting(256, help="side of the square training crops in px", low=32, high=2048,
                            basic=True)  # fmt: skip
    batch_size: int = setting(4, help="crops per step", low=1, high=256)
    steps: int = setting(2000, help=STEPS_HELP, low=1, basic=True)
    learning_rate: float = setting(1e-3, help="Adam's learning rate", low=0)
    seed: int = setting(0, help="seed of the weights and the data order", low=0, high=MAX_SEED)
    checkpoint_every: int = setting(200, help="save the model every N steps (and on Ctrl-C, and at the end)",
                                    low=1)  # fmt: skip
    # Chosen by eye on Starry Night: 20 (the Gatys default) washes out the photo in a trained network.
    content_weight: float = setting(1.0, help="how much of the photos' content to keep", low=0)
    style_weight: float = setting(5.0, help="how strongly to paint in the style", low=0, basic=True)
    style_layers: list[str] | None = setting(None, help="backbone layers for the style loss (default: the backbone's)")

    def check(self, weights: tuple[str, ...], extra: list[tuple[bool, str]]) -> None:
        """The shared checks (sizes, counts, the named loss weights), then the engine's ``extra``."""
        require(
            [
                (32 <= self.image_size <= 2048, "training image size must be 32..2048 px"),
                (1 <= self.batch_size <= 256, "batch size must be 1..256"),
                (self.steps >= 1, "steps must be at least 1"),
                (self.checkpoint_every >= 1, "checkpoint interval must be at least 1"),
                seed_check(self.seed),
                *extra,
                *non_negative(self, ("learning_rate", *weights)),
            ]
        )


class TrainingState:
    """What a checkpoint holds and a resume restores, together: named modules, named optimisers (their
    plain state in the JSON under the same name) and the data's ``random.Random`` stream (in the JSON);
    torch generators travel as ``extra`` tensors."""

    def __init__(self, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                 rng: random.Random | None = None):  # fmt: skip
        self.modules, self.optimizers, self.rng = modules, optimizers, rng

    def restore(self, path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        from brushwork.checkpoints import module_state, random_state_from_json, restore_optimizer

        try:
            for name, module in self.modules.items():
                module.load_state_dict(module_state(tensors, name))
            for name, optimizer in self.optimizers.items():
                restore_optimizer(optimizer, tensors, meta[name], name)
            if self.rng is not None:
                self.rng.setstate(random_state_from_json(meta["rng"]))
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise BrushworkError(f"{path}: its training state does not fit its settings; it cannot resume") from exc

    def save(self, path: Path, meta: dict, extra: dict[str, torch.Tensor] | None = None) -> None:
        from brushwork.checkpoints import random_state_to_json, save_training_checkpoint

        if self.rng is not None:
            meta = {**meta, "rng": random_state_to_json(self.rng.getstate())}
        save_training_checkpoint(path, self.modules, self.optimizers, meta, extra)


def seeded(seed: int) -> random.Random:
    """Seed torch (network initialisation) and return the data's own stream, from one seed."""
    torch.manual_seed(seed)
    return random.Random(seed)


def config_from_dict(config_cls, values: object, source: object = "settings"):
    """A config dataclass from stored JSON, ignoring keys this version does not know; a value of the
    wrong type (an edited or corrupt file) is refused in one line. Ranges are the config's ``validate``."""
    if not isinstance(values, dict):
        raise BrushworkError(f"{source}: its settings are missing or not a JSON object")
    known = {f.name: f for f in fields(config_cls)}
    cfg = config_cls(**{k: v for k, v in values.items() if k in known})
    for name, f in known.items():
        value = getattr(cfg, name)
        if not _fits(value, f.default if f.default is not MISSING else None, str(f.type)):
            raise BrushworkError(f"{source}: setting {name!r} has an invalid value {value!r}")
    return cfg


def valid_stored_config(config_cls, meta: dict, path: object):
    """The config stored in a model's JSON, type- and range-checked (``validate``): an edited or corrupt
    file ends in one line naming it, never in a network of impossible shape."""
    cfg = config_from_dict(config_cls, meta.get("config"), path)
    try:
        cfg.validate()
    except BrushworkError as exc:
        raise BrushworkError(f"{path}: invalid settings ({exc})") from None
    return cfg


def _fits(value: object, default: object, annotation: str) -> bool:
    """Whether a stored value has the type of its field (judged by the default, else the annotation)."""
    if value is None:
        return default is None
    kind = type(default) if default is not None else None
    if kind is None:
        kind = list if "list" in annotation else str if "str" in annotation else int if "int" in annotation else None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return kind is None or isinstance(value, kind)


def load_for_resume(path: Path, kind: str, config_cls, more_steps: int | None, optimizer_key: str = "optim"):
    """A checkpoint to continue: (tensors, meta, config with the step target, step reached).

    One rule for every trainer: ``steps`` is the total counted from the first step, so ``more_steps`` (a
    resumed run's ``--steps``) replaces the stored target, lower or higher; without it the stored target
    stands. Refuses a slim model (no optimiser state) and a checkpoint already at or past the target."""
    from brushwork.checkpoints import load_checkpoint

    tensors, meta = load_checkpoint(path, kind)
    cfg = config_from_dict(config_cls, meta.get("config"), path)
    if more_steps:
        cfg.steps = more_steps
    start = int(meta["step"])
    if optimizer_key not in meta:
        raise BrushworkError(f"{path}: was saved without its training state (a slim model); it cannot resume")
    if start >= cfg.steps:
        asked = f"--steps {more_steps} is" if more_steps else f"its target of {cfg.steps} steps is"
        raise BrushworkError(f"{path}: already trained for {start} steps and {asked} the total, counted from the "
                             f"first step; give a larger --steps to train on")  # fmt: skip
    return tensors, meta, cfg, start
