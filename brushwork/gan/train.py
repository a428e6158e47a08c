"""Training loop: each run in its own folder with its options, log, sample grids and checkpoint.

RUN/options.json      every setting, the data's description
RUN/log.jsonl         one line per logged step: losses, images/s
RUN/samples/*.png     a grid from fixed latents every N steps (one row per class when conditional)
RUN/checkpoint.safetensors + .json   G, D, EMA G, both optimisers, step, RNG: resume is exact
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from brushwork.checkpoints import module_state, restore_optimizer, save_training_checkpoint
from brushwork.errors import BrushworkError, require
from brushwork.gan.data import Dataset
from brushwork.gan.losses import LOSSES, discriminator_loss, generator_loss
from brushwork.gan.nets import RESOLUTIONS, Discriminator, Generator
from brushwork.images import save_image
from brushwork.style.training import TrainStep, load_for_resume, run_training

KIND = "gan"
CHECKPOINT = "checkpoint.safetensors"


@dataclass
class GanConfig:
    resolution: int = 32
    channels: int = 1
    classes: int = 0  # 0 = unconditional
    latent: int = 128
    g_width: int = 64
    d_width: int = 64
    upsample: str = "resize"
    loss: str = "hinge"
    batch_size: int = 64
    steps: int = 10000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    ema: float = 0.999
    augment: bool = False
    seed: int = 0
    checkpoint_every: int = 1000
    sample_every: int = 500

    def validate(self) -> None:
        require([
            (self.resolution in RESOLUTIONS, f"resolution must be one of {RESOLUTIONS}"),
            (self.channels in (1, 3), "channels must be 1 or 3"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
            (self.upsample in ("resize", "transposed"), "upsample must be resize or transposed"),
            (1 <= self.batch_size <= 4096 and self.steps >= 1, "batch size and steps must be positive"),
            (self.checkpoint_every >= 1 and self.sample_every >= 1, "intervals must be at least 1"),
            (0 <= self.ema < 1, "ema must be in 0..1"),
            (self.lr_g > 0 and self.lr_d > 0, "learning rates must be > 0"),
        ])  # fmt: skip

    def architecture(self) -> dict:
        """What a checkpoint's tensors depend on: resuming with other values cannot work."""
        keys = ("resolution", "channels", "classes", "latent", "g_width", "d_width", "upsample")
        return {k: getattr(self, k) for k in keys}


def ema_decay(target: float, step: int) -> float:
    """Warm-up: a plain 0.999 keeps the random start in the average for thousands of steps."""
    return min(target, (1 + step) / (10 + step))


def build_generator(cfg: GanConfig) -> Generator:
    return Generator(cfg.resolution, cfg.channels, cfg.latent, cfg.g_width, cfg.classes, cfg.upsample)


def diff_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): colour, translation, cutout; differentiable, same for real and fake."""
    n, _, h, w = x.shape
    x = x + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)  # brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, generator=gen) + 0.5) + mean  # contrast
    shift = max(1, h // 8)
    dx, dy = (torch.randint(-shift, shift + 1, (2,), generator=gen)).tolist()
    x = torch.roll(F.pad(x, (shift, shift, shift, shift)), shifts=(dy, dx), dims=(2, 3))[
        ..., shift:-shift, shift:-shift
    ]
    cy, cx = torch.randint(0, h, (1,), generator=gen).item(), torch.randint(0, w, (1,), generator=gen).item()
    mask = torch.ones_like(x[:1, :1])
    mask[..., max(0, cy - h // 4) : cy + h // 4, max(0, cx - w // 4) : cx + w // 4] = 0
    return x * mask


def fixed_latents(cfg: GanConfig, per_row: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    rows = max(1, cfg.classes) if cfg.classes else 4
    gen = torch.Generator().manual_seed(cfg.seed + 12345)
    z = torch.randn(rows * per_row, cfg.latent, generator=gen)
    labels = torch.arange(rows).repeat_interleave(per_row) if cfg.classes else torch.zeros(rows * per_row).long()
    return z, labels


def to_rgb01(images: torch.Tensor) -> torch.Tensor:
    """Generator output (N, 1 or 3, H, W) in -1..1 -> (N, 3, H, W) in 0..1."""
    x = (images.float().clamp(-1, 1) + 1) / 2
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def image_grid(images: torch.Tensor, per_row: int):
    """(N, C, H, W) in -1..1 -> one PIL image, one pixel of white around each."""
    from brushwork.images import tensor_to_image

    n, _, h, w = images.shape
    rows = math.ceil(n / per_row)
    grid = torch.ones(3, rows * (h + 2), per_row * (w + 2))
    x = to_rgb01(images)
    for i in range(n):
        r, k = divmod(i, per_row)
        grid[:, r * (h + 2) + 1 : r * (h + 2) + 1 + h, k * (w + 2) + 1 : k * (w + 2) + 1 + w] = x[i]
    return tensor_to_image(grid)


def train_gan(
    data: Dataset,
    run_dir: str | Path,
    config: GanConfig,
    device: torch.device | str = "cpu",
    resume: bool = False,
    resume_steps: int | None = None,
    on_step: Callable[[TrainStep], None] | None = None,
) -> Path:
    run_dir = Path(run_dir)
    device = torch.device(device)
    cfg = config
    data_info = {"source": data.source, "images": len(data.images), "classes": data.class_names,
                 "skipped": len(data.skipped)}  # fmt: skip
    start = 0
    if resume:
        tensors, meta, cfg, start = load_for_resume(run_dir / CHECKPOINT, KIND, GanConfig, resume_steps, "optim_g")
        mine = GanConfig(**{**asdict(cfg), "resolution": data.resolution, "channels": data.channels,
                            "classes": len(data.class_names) if cfg.classes else 0})  # fmt: skip
        if mine.architecture() != cfg.architecture() or meta["data"]["images"] != len(data.images):
            raise BrushworkError(f"{run_dir}: was trained on other data or another architecture; start a new run")
    cfg.validate()
    torch.manual_seed(cfg.seed)
    g, d = (
        build_generator(cfg).to(device),
        Discriminator(cfg.resolution, cfg.channels, cfg.d_width, cfg.classes).to(device),
    )
    g_ema = build_generator(cfg).to(device)
    g_ema.load_state_dict(g.state_dict())
    g_ema.requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=(0.0, 0.9))
    gen = torch.Generator().manual_seed(cfg.seed)
    if resume:
        for name, module in (("g", g), ("d", d), ("g_ema", g_ema)):
            module.load_state_dict(module_state(tensors, name))
        restore_optimizer(opt_g, tensors, meta["optim_g"], "optim_g")
        restore_optimizer(opt_d, tensors, meta["optim_d"], "optim_d")
        gen.set_state(tensors["rng/data"])
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    (run_dir / "options.json").write_text(json.dumps({"config": asdict(cfg), "data": data_info}, indent=2))
    z_fixed, labels_fixed = fixed_latents(cfg)
    images = data.images
    labels = data.labels
    counter = {"step": start, "t": time.perf_counter(), "seen": 0}

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(images), (cfg.batch_size,), generator=gen)
        x = images[idx].float().div(127.5).sub(1).to(device)
        return x, labels[idx].to(device)

    def augment(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, gen) if cfg.augment else x

    def train_step() -> dict[str, torch.Tensor]:
        cond = (lambda y: y) if cfg.classes else (lambda y: None)
        real, y = batch()
        z = torch.randn(cfg.batch_size, cfg.latent, generator=gen).to(device)
        with torch.no_grad():
            fake = g(z, cond(y))
        loss_d = discriminator_loss(cfg.loss, d(augment(real), cond(y)), d(augment(fake), cond(y)))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        z = torch.randn(cfg.batch_size, cfg.latent, generator=gen).to(device)
        loss_g = generator_loss(cfg.loss, d(augment(g(z, cond(y))), cond(y)))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            decay = ema_decay(cfg.ema, counter["step"])
            for p_ema, p in zip(g_ema.parameters(), g.parameters(), strict=True):
                p_ema.lerp_(p, 1 - decay)
            for b_ema, b in zip(g_ema.buffers(), g.buffers(), strict=True):
                b_ema.copy_(b)
        counter["step"] += 1
        counter["seen"] += cfg.batch_size
        step = counter["step"]
        if step % cfg.sample_every == 0 or step == cfg.steps:
            write_samples(step)
        if step % 50 == 0 or step == cfg.steps:
            rate = counter["seen"] / (time.perf_counter() - counter["t"])
            line = {"step": step, "loss_d": round(loss_d.item(), 4), "loss_g": round(loss_g.item(), 4),
                    "images_per_s": round(rate, 1)}  # fmt: skip
            with open(run_dir / "log.jsonl", "a") as log:
                log.write(json.dumps(line) + "\n")
        return {"d": loss_d.detach(), "g": loss_g.detach()}

    def write_samples(step: int) -> None:
        g_ema.eval()
        with torch.no_grad():
            out = g_ema(z_fixed.to(device), labels_fixed.to(device) if cfg.classes else None)
        grid = image_grid(out.cpu(), 8)
        save_image(grid, run_dir / "samples" / f"step-{step:07d}.png", {"step": step, "classes": data.class_names})

    def checkpoint(step: int, final: bool) -> None:
        meta = {"kind": KIND, "config": asdict(cfg), "data": data_info, "step": step, "complete": final}
        save_training_checkpoint(run_dir / CHECKPOINT, {"g": g, "d": d, "g_ema": g_ema},
                                 {"optim_g": opt_g, "optim_d": opt_d}, meta, {"rng/data": gen.get_state()})  # fmt: skip

    g.train()
    d.train()
    run_training(train_step, start, cfg.steps, checkpoint, cfg.checkpoint_every, on_step)
    return run_dir
