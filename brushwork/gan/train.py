"""Training loop: each run in its own folder with its options, log, sample grids and checkpoint.

RUN/options.json      every setting, the data's description
RUN/log.jsonl         one line per logged step: losses, images/s; FID/KID lines when evaluated
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

from brushwork import distributed
from brushwork.checkpoints import module_state, restore_optimizer, save_training_checkpoint
from brushwork.errors import BrushworkError, require
from brushwork.gan.data import Dataset
from brushwork.gan.losses import LOSSES, discriminator_loss, generator_loss
from brushwork.gan.nets import CONDITIONING, RESOLUTIONS, Discriminator, Generator
from brushwork.records import new_record, write_image
from brushwork.style.training import TrainStep, load_for_resume, run_training

KIND = "gan"
CHECKPOINT = "checkpoint.safetensors"
PRECISIONS = ("auto", "fp32", "bf16")
#: Settings that only decide what is written when: a resumed run may change them.
#: What a resumed run may change: when it saves, samples and evaluates, and with which features.
SCHEDULE = (
    "checkpoint_every",
    "sample_every",
    "eval_every",
    "eval_samples",
    "eval_extractor",
    "eval_extractor_weights",
)


@dataclass
class GanConfig:
    resolution: int = 32
    channels: int = 1
    classes: int = 0  # 0 = unconditional
    latent: int = 128
    g_width: int = 64
    d_width: int = 64
    upsample: str = "resize"
    conditioning: str = "projection"
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
    precision: str = "auto"  # bf16 autocast on CUDA, fp32 elsewhere
    eval_every: int = 1000  # FID/KID of the EMA generator; 0 = never
    eval_samples: int = 1000
    eval_extractor: str = "lite0"  # or "inception" (pytorch-fid's weights: downloaded, or a local file)
    eval_extractor_weights: str | None = None

    def validate(self) -> None:
        require([
            (self.resolution in RESOLUTIONS, f"resolution must be one of {RESOLUTIONS}"),
            (self.channels in (1, 3), "channels must be 1 or 3"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
            (self.upsample in ("resize", "transposed"), "upsample must be resize or transposed"),
            (self.conditioning in CONDITIONING, f"conditioning must be one of {', '.join(CONDITIONING)}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.eval_every >= 0 and 2 <= self.eval_samples <= 100_000, "eval: every >= 0, samples 2..100000"),
            (1 <= self.batch_size <= 4096 and self.steps >= 1, "batch size and steps must be positive"),
            (self.checkpoint_every >= 1 and self.sample_every >= 1, "intervals must be at least 1"),
            (0 <= self.ema < 1, "ema must be in 0..1"),
            (self.lr_g > 0 and self.lr_d > 0, "learning rates must be > 0"),
        ])  # fmt: skip

    def architecture(self) -> dict:
        """What a checkpoint's tensors depend on: resuming with other values cannot work."""
        keys = ("resolution", "channels", "classes", "latent", "g_width", "d_width", "upsample", "conditioning")
        return {k: getattr(self, k) for k in keys}


def ema_decay(target: float, step: int) -> float:
    """Warm-up: a plain 0.999 keeps the random start in the average for thousands of steps."""
    return min(target, (1 + step) / (10 + step))


def build_generator(cfg: GanConfig) -> Generator:
    return Generator(cfg.resolution, cfg.channels, cfg.latent, cfg.g_width, cfg.classes, cfg.upsample, cfg.conditioning)


def build_discriminator(cfg: GanConfig) -> Discriminator:
    return Discriminator(cfg.resolution, cfg.channels, cfg.d_width, cfg.classes, cfg.conditioning)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32. bf16 needs no loss scaling, unlike fp16."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


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
    from brushwork.media import tensor_to_image

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
    resume_schedule: dict | None = None,
) -> Path:
    """Train (or with ``resume``, continue) a run. Under torchrun each process trains on its share of
    the batch and the gradients are averaged (DDP); only rank 0 writes files. A resumed run keeps its
    config except ``resume_steps`` and ``resume_schedule`` (new values for the keys in ``SCHEDULE``,
    which change what is written and when, not the training itself)."""
    processes, device = distributed.start(torch.device(device))
    trainer = GanTrainer(data, Path(run_dir), config, device, processes, resume, resume_steps, resume_schedule)
    run_training(trainer.step, trainer.start, trainer.cfg.steps, trainer.checkpoint, trainer.cfg.checkpoint_every,
                 on_step if processes.main else None)  # fmt: skip
    return Path(run_dir)


class GanTrainer:
    def __init__(self, data: Dataset, run_dir: Path, config: GanConfig, device: torch.device,
                 processes: distributed.Processes, resume: bool, resume_steps: int | None,
                 resume_schedule: dict | None = None):  # fmt: skip
        self.data, self.run_dir, self.device, self.processes = data, run_dir, device, processes
        self.data_info = {"source": data.source, "images": len(data.images), "classes": data.class_names,
                          "skipped": len(data.skipped)}  # fmt: skip
        cfg, self.start = config, 0
        if resume:
            tensors, meta, cfg, self.start = load_for_resume(run_dir / CHECKPOINT, KIND, GanConfig, resume_steps,
                                                             "optim_g")  # fmt: skip
            mine = GanConfig(**{**asdict(cfg), "resolution": data.resolution, "channels": data.channels,
                                "classes": len(data.class_names) if cfg.classes else 0})  # fmt: skip
            if mine.architecture() != cfg.architecture() or meta["data"]["images"] != len(data.images):
                raise BrushworkError(f"{run_dir}: was trained on other data or another architecture; start a new run")
            unknown = set(resume_schedule or {}) - set(SCHEDULE)
            if unknown:
                raise BrushworkError(f"only {', '.join(SCHEDULE)} can change on resume, not {', '.join(unknown)}")
            cfg = GanConfig(**{**asdict(cfg), **(resume_schedule or {})})
            if meta.get("processes", 1) != processes.world:
                raise BrushworkError(f"{run_dir}: was trained by {meta.get('processes', 1)} process(es); resume it "
                                     f"with the same number for an exact continuation")  # fmt: skip
        cfg.validate()
        require([(cfg.batch_size % processes.world == 0, "batch size must divide evenly among the processes")])
        self.cfg = cfg
        self.local_batch = cfg.batch_size // processes.world
        self.autocast = autocast_dtype(cfg.precision, device)
        torch.manual_seed(cfg.seed)
        self.g, self.d = build_generator(cfg).to(device), build_discriminator(cfg).to(device)
        self.g_ema = build_generator(cfg).to(device)
        self.g_ema.load_state_dict(self.g.state_dict())
        self.g_ema.requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr_g, betas=(0.0, 0.9))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_d, betas=(0.0, 0.9))
        # Each process draws its own batches and latents.
        self.gen = torch.Generator().manual_seed(cfg.seed + 1_000_003 * processes.rank)
        self.metrics: list[dict] = []
        if resume:
            for name, module in (("g", self.g), ("d", self.d), ("g_ema", self.g_ema)):
                module.load_state_dict(module_state(tensors, name))
            restore_optimizer(self.opt_g, tensors, meta["optim_g"], "optim_g")
            restore_optimizer(self.opt_d, tensors, meta["optim_d"], "optim_d")
            self.gen.set_state(tensors[f"rng/data/{processes.rank}" if f"rng/data/{processes.rank}" in tensors
                                       else "rng/data"])  # fmt: skip
            self.metrics = list(meta.get("metrics", []))
        self.g_train, self.d_train = self.g, self.d
        if processes.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.g_train, self.d_train = DDP(self.g, device_ids=ids), DDP(self.d, device_ids=ids)
        if processes.main:
            (run_dir / "samples").mkdir(parents=True, exist_ok=True)
            options = {"config": asdict(cfg), "data": self.data_info, "processes": processes.world,
                       "autocast": str(self.autocast).removeprefix("torch.") if self.autocast else "fp32"}  # fmt: skip
            (run_dir / "options.json").write_text(json.dumps(options, indent=2))
        self.z_fixed, self.labels_fixed = fixed_latents(cfg)
        self.real_features: torch.Tensor | None = None
        self.step_reached = self.start
        self.clock = {"t": time.perf_counter(), "seen": 0}
        self.g.train()
        self.d.train()

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.data.images), (self.local_batch,), generator=self.gen)
        x = self.data.images[idx].float().div(127.5).sub(1).to(self.device)
        return x, self.data.labels[idx].to(self.device)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.gen) if self.cfg.augment else x

    def latents(self) -> torch.Tensor:
        return torch.randn(self.local_batch, self.cfg.latent, generator=self.gen).to(self.device)

    def precision(self):
        return torch.autocast(self.device.type, self.autocast, enabled=self.autocast is not None)

    def step(self) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        real, y = self.batch()
        cond = y if cfg.classes else None
        with self.precision():
            with torch.no_grad():
                fake = self.g_train(self.latents(), cond)
            # Real and fake in one pass: one gradient all-reduce under DDP, and D has no batch norm to mix them.
            both = self.augment(torch.cat([real, fake.to(real.dtype)]))
            score, logits = self.d_train(both, torch.cat([y, y]) if cfg.classes else None)
            score = score.float()
            loss_d = discriminator_loss(cfg.loss, score[: len(real)], score[len(real) :])
            if logits is not None:  # ACGAN: D learns to classify real and fake images
                loss_d = loss_d + F.cross_entropy(logits.float(), torch.cat([y, y]))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        # G's step goes through D's plain module with D frozen: D's gradients are not wanted here.
        self.d.requires_grad_(False)
        with self.precision():
            score, logits = self.d(self.augment(self.g_train(self.latents(), cond)), cond)
            loss_g = generator_loss(cfg.loss, score.float())
            if logits is not None:
                loss_g = loss_g + F.cross_entropy(logits.float(), y)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.d.requires_grad_(True)
        self.update_ema()
        self.step_reached += 1
        self.clock["seen"] += cfg.batch_size
        self.after_step(self.step_reached, loss_d, loss_g)
        return {"d": loss_d.detach(), "g": loss_g.detach()}

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = ema_decay(self.cfg.ema, self.step_reached)
        for p_ema, p in zip(self.g_ema.parameters(), self.g.parameters(), strict=True):
            p_ema.lerp_(p, 1 - decay)
        for b_ema, b in zip(self.g_ema.buffers(), self.g.buffers(), strict=True):
            b_ema.copy_(b)

    def after_step(self, step: int, loss_d: torch.Tensor, loss_g: torch.Tensor) -> None:
        if not self.processes.main:
            return
        cfg = self.cfg
        last = step == cfg.steps
        if step % cfg.sample_every == 0 or last:
            self.write_samples(step)
        if step % 50 == 0 or last:
            rate = self.clock["seen"] / (time.perf_counter() - self.clock["t"])
            self.log({"step": step, "loss_d": round(loss_d.item(), 4), "loss_g": round(loss_g.item(), 4),
                      "images_per_s": round(rate, 1)})  # fmt: skip
        if cfg.eval_every and (step % cfg.eval_every == 0 or last):
            self.metrics.append(self.evaluate(step))
            self.log(self.metrics[-1])

    def log(self, line: dict) -> None:
        with open(self.run_dir / "log.jsonl", "a") as log:
            log.write(json.dumps(line) + "\n")

    def write_samples(self, step: int) -> None:
        self.g_ema.eval()
        with torch.no_grad():
            out = self.g_ema(
                self.z_fixed.to(self.device), self.labels_fixed.to(self.device) if self.cfg.classes else None
            )
        grid = image_grid(out.cpu(), 8)
        record = new_record("gan-train", asdict(self.cfg), seed=self.cfg.seed, device=self.device,
                            extra={"step": step, "classes": self.data.class_names})  # fmt: skip
        write_image(grid, self.run_dir / "samples" / f"step-{step:07d}.png", record.finish())

    def evaluate(self, step: int) -> dict:
        from brushwork.gan.evaluate import distances, generated_features, real_features
        from brushwork.judge.distribution import load_extractor

        cfg = self.cfg
        embedder = load_extractor(cfg.eval_extractor, self.device, cfg.eval_extractor_weights)
        if self.real_features is None:
            self.real_features = real_features(self.data, min(cfg.eval_samples, len(self.data.images)), embedder,
                                               cfg.seed)  # fmt: skip
        fake = generated_features(self.g_ema, cfg, cfg.eval_samples, embedder, self.device)
        return {"step": step, **distances(self.real_features, fake, embedder.name)}

    def checkpoint(self, step: int, final: bool) -> None:
        # Every process's random state, so that each continues its own stream on resume.
        states = distributed.gather(self.processes, self.gen.get_state(), self.device)
        if not self.processes.main:
            return
        meta = {"kind": KIND, "config": asdict(self.cfg), "data": self.data_info, "step": step, "complete": final,
                "processes": self.processes.world, "metrics": self.metrics}  # fmt: skip
        rng = {f"rng/data/{rank}": state for rank, state in enumerate(states)}
        save_training_checkpoint(self.run_dir / CHECKPOINT, {"g": self.g, "d": self.d, "g_ema": self.g_ema},
                                 {"optim_g": self.opt_g, "optim_d": self.opt_d}, meta, rng)  # fmt: skip
