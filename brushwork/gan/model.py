"""A GAN run's model: its settings (``GanConfig``), the networks built from them, and reading a run
back (checkpoint and options, refused in one line when edited or corrupt). Training, sampling and
evaluation all import this; none of them imports another.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from brushwork.checkpoints import load_checkpoint, module_state
from brushwork.errors import BrushworkError, require, seed_check
from brushwork.gan.losses import LOSSES
from brushwork.gan.nets import CONDITIONING, RESOLUTIONS, Discriminator, Generator
from brushwork.settings import setting
from brushwork.training import config_from_dict

KIND = "gan"
CHECKPOINT = "checkpoint.safetensors"
OPTIONS = "options.json"
PRECISIONS = ("auto", "fp32", "bf16")
UPSAMPLING = ("resize", "transposed")
#: Bounds that keep a run (and an edited checkpoint) to networks that fit in memory.
MAX_LATENT = 4096
MAX_NET_WIDTH = 1024
MAX_CLASSES = 10_000


@dataclass
class GanConfig:
    resolution: int = 32
    channels: int = 1
    classes: int = 0  # 0 = unconditional
    latent: int = setting(128, help="size of the latent vector z")
    g_width: int = setting(64, help="generator width (channels at the finest layer, capped at 512)")
    d_width: int = setting(64, help="discriminator width")
    upsample: str = setting(
        "resize", help="the generator's upsampling: resize-convolution or transposed convolution", choices=UPSAMPLING
    )
    conditioning: str = setting("projection", help="how G and D see the class", choices=CONDITIONING)
    loss: str = setting("hinge", help="adversarial loss", choices=LOSSES)
    batch_size: int = setting(64, help="images per step (split among processes under torchrun)")
    steps: int = setting(10000, help="training steps in all (on --resume: raise it to train longer)")
    lr_g: float = setting(2e-4, help="generator learning rate (Adam)")
    lr_d: float = setting(2e-4, help="discriminator learning rate (Adam)")
    ema: float = setting(0.999, help="decay of the generator's moving average used for sampling")
    augment: bool = setting(False, help="DiffAugment, for small datasets")
    seed: int = setting(0, help="seed of the weights, data order and latents")
    checkpoint_every: int = setting(1000, help="save the run every N steps (and on Ctrl-C, and at the end)")
    sample_every: int = setting(500, help="write a sample grid every N steps")
    precision: str = setting("auto", help="auto: bf16 autocast on CUDA, fp32 elsewhere", choices=PRECISIONS)
    eval_every: int = setting(1000, help="log FID/KID of the EMA generator every N steps; 0 = never")
    eval_samples: int = setting(1000, help="images compared in each FID/KID evaluation")
    eval_extractor: str = setting("lite0", help="FID/KID features: lite0 (offline) or inception (as in papers)")
    eval_extractor_weights: str | None = setting(None, help="a local weights file for those features")

    def validate(self) -> None:
        finite = all(math.isfinite(v) for v in (self.lr_g, self.lr_d, self.ema))
        require([
            (self.resolution in RESOLUTIONS, f"resolution must be one of {RESOLUTIONS}, not {self.resolution}"),
            (self.channels in (1, 3), "channels must be 1 or 3"),
            (0 <= self.classes <= MAX_CLASSES and self.classes != 1, f"classes must be 0 or 2..{MAX_CLASSES}"),
            (1 <= self.latent <= MAX_LATENT, f"latent size must be 1..{MAX_LATENT}, not {self.latent}"),
            (1 <= self.g_width <= MAX_NET_WIDTH, f"generator width must be 1..{MAX_NET_WIDTH}, not {self.g_width}"),
            (1 <= self.d_width <= MAX_NET_WIDTH,
             f"discriminator width must be 1..{MAX_NET_WIDTH}, not {self.d_width}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
            (self.upsample in UPSAMPLING, "upsample must be resize or transposed"),
            (self.conditioning in CONDITIONING, f"conditioning must be one of {', '.join(CONDITIONING)}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.eval_every >= 0 and 2 <= self.eval_samples <= 100_000, "eval: every >= 0, samples 2..100000"),
            (1 <= self.batch_size <= 4096 and self.steps >= 1, "batch size and steps must be positive"),
            (self.checkpoint_every >= 1 and self.sample_every >= 1, "intervals must be at least 1"),
            (finite, "learning rates and ema must be finite numbers"),
            (0 <= self.ema < 1, "ema must be in 0..1"),
            (self.lr_g > 0 and self.lr_d > 0, "learning rates must be > 0"),
            seed_check(self.seed),
        ])  # fmt: skip

    def architecture(self) -> dict:
        """What a checkpoint's tensors depend on: resuming with other values cannot work."""
        keys = ("resolution", "channels", "classes", "latent", "g_width", "d_width", "upsample", "conditioning")
        return {k: getattr(self, k) for k in keys}


def build_generator(cfg: GanConfig) -> Generator:
    return Generator(cfg.resolution, cfg.channels, cfg.latent, cfg.g_width, cfg.classes, cfg.upsample, cfg.conditioning)


def build_discriminator(cfg: GanConfig) -> Discriminator:
    return Discriminator(cfg.resolution, cfg.channels, cfg.d_width, cfg.classes, cfg.conditioning)


def to_rgb01(images: torch.Tensor) -> torch.Tensor:
    """Generator output (N, 1 or 3, H, W) in -1..1 -> (N, 3, H, W) in 0..1."""
    x = (images.float().clamp(-1, 1) + 1) / 2
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def image_grid(images: torch.Tensor, per_row: int):
    """(N, C, H, W) in -1..1 -> one PIL image, one pixel of white around each."""
    from brushwork.media import tensor_to_image

    n, _, h, w = images.shape
    rows = math.ceil(n / per_row)
    grid = torch.ones(3, rows * (h + 2), per_row * (w + 2))
    x = to_rgb01(images)
    for i in range(n):
        r, k = divmod(i, per_row)
        grid[:, r * (h + 2) + 1 : r * (h + 2) + 1 + h, k * (w + 2) + 1 : k * (w + 2) + 1 + w] = x[i]
    return tensor_to_image(grid)


def check_class_names(names: object, classes: int, source: object) -> list[str]:
    """Class names become folder names when sampling: each must be a plain name (no path, no ``..``)."""
    if names is None:
        names = []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BrushworkError(f"{source}: its class names are not a list of names")
    if classes and len(names) != classes:
        raise BrushworkError(f"{source}: it names {len(names)} classes but its settings say {classes}")
    for name in names:
        if not safe_name(name):
            raise BrushworkError(f"{source}: class name {name!r} cannot be a folder name (no paths, no '..')")
    return list(names)


def safe_name(name: str) -> bool:
    """A name that, joined to a folder, stays inside it: no separators, not '.', '..', empty or hidden."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0:") and name == name.strip()


def load_run(run_dir: str | Path) -> tuple[torch.nn.Module, GanConfig, list[str]]:
    """The EMA generator of a run, its config and its class names."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise BrushworkError(f"{run_dir}: is a file, not a GAN run folder")
    if not (run_dir / CHECKPOINT).exists():
        raise BrushworkError(f"{run_dir}: not a brushwork GAN run (no {CHECKPOINT})")
    tensors, meta = load_checkpoint(run_dir / CHECKPOINT, KIND)
    source = run_dir / CHECKPOINT
    cfg = _stored_config(meta.get("config"), source)
    data = meta.get("data")
    classes = check_class_names(data.get("classes") if isinstance(data, dict) else None, cfg.classes, source)
    g = build_generator(cfg)
    try:
        g.load_state_dict(module_state(tensors, "g_ema"))
    except RuntimeError as exc:
        raise BrushworkError(f"{source}: its weights do not match the network its settings describe") from exc
    return g.eval().requires_grad_(False), cfg, classes


def _stored_config(values: object, source: Path) -> GanConfig:
    """The settings a run stored in ``source`` (a checkpoint or options.json), checked like new ones."""
    cfg = config_from_dict(GanConfig, values, source)
    try:
        cfg.validate()
    except BrushworkError as exc:
        raise BrushworkError(f"{source}: invalid settings ({exc})") from None
    return cfg


def read_options(run_dir: str | Path) -> tuple[GanConfig, dict]:
    """A run's ``options.json``: its settings and its data's description (``source``, ``images``, ...)."""
    path = Path(run_dir) / OPTIONS
    if not path.is_file():
        raise BrushworkError(f"{run_dir}: not a brushwork GAN run (no {OPTIONS})")
    try:
        options = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise BrushworkError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(options, dict):
        raise BrushworkError(f"{path}: not a JSON object")
    cfg = _stored_config(options.get("config"), path)
    data = options.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("source"), str):
        raise BrushworkError(f"{path}: its data description is missing")
    return cfg, data
