"""Training loop: each run in its own folder with its options, log, sample grids and checkpoint.

RUN/options.json      every setting, the data's description
RUN/log.jsonl         one line per logged step: losses, images/s; FID/KID lines when evaluated
RUN/samples/*.png     a grid from fixed latents every N steps (one row per class when conditional)
RUN/checkpoint.safetensors + .json   G, D, EMA G, both optimisers, step, RNG: resume is exact
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from brushwork import distributed
from brushwork.errors import BrushworkError, require
from brushwork.files import atomic_write, step_name, write_error
from brushwork.gan.data import Dataset
from brushwork.gan.losses import discriminator_loss, generator_loss
from brushwork.gan.model import (  # noqa: F401 - PRECISIONS, image_grid, to_rgb01: importable from here too
    CHECKPOINT,
    KIND,
    OPTIONS,
    PRECISIONS,
    GanConfig,
    build_discriminator,
    build_generator,
    image_grid,
    to_rgb01,
)
from brushwork.records import new_record, write_image
from brushwork.training import TrainingState, TrainStep, load_for_resume, run_training

#: What a resumed run may change: when it saves, samples and evaluates, and with which features.
SCHEDULE = (
    "checkpoint_every",
    "sample_every",
    "eval_every",
    "eval_samples",
    "eval_extractor",
    "eval_extractor_weights",
)


def ema_decay(target: float, step: int) -> float:
    """Warm-up: a plain 0.999 keeps the random start in the average for thousands of steps."""
    return min(target, (1 + step) / (10 + step))


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


#: What a run folder holds that brushwork wrote: all that ``--force`` ever removes.
RUN_FILES = (OPTIONS, "log.jsonl", CHECKPOINT, "checkpoint.json")
SAMPLES = "samples"


def prepare_run_folder(run_dir: str | Path, data_source: str | Path, force: bool = False, resume: bool = False,
                       check_only: bool = False) -> Path:  # fmt: skip
    """Check (and with ``force`` clear, unless ``check_only``) a run folder before training: never a
    file, never the data folder or a folder inside it, never another folder's contents. ``force``
    removes only what an earlier run wrote (:data:`RUN_FILES`, the sample grids); other files stay."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise BrushworkError(f"{run_dir}: is a file, not a run folder")
    if any(p.exists() and not p.is_dir() for p in run_dir.parents):
        raise BrushworkError(f"{run_dir}: a file stands where a folder on its way should be")
    data = Path(data_source)
    if data.is_dir():
        out, src = run_dir.resolve(), data.resolve()
        if out == src or src in out.parents:
            raise BrushworkError(f"{run_dir}: the run folder must not be the data folder or inside it ({data})")
    if resume:
        if not (run_dir / CHECKPOINT).is_file():
            raise BrushworkError(f"{run_dir}: nothing to resume")
        return run_dir
    ours = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    samples = run_dir / SAMPLES
    if samples.is_dir():
        ours += [f for f in samples.iterdir() if f.is_file() and f.name.startswith("step-") and f.suffix == ".png"]
    others = [f for f in run_dir.iterdir() if f not in ours and f != samples] if run_dir.is_dir() else []
    if ours and not force:
        raise BrushworkError(f"{run_dir}: holds a run; use --resume to continue it or --force to start over")
    if others and not force:
        raise BrushworkError(f"{run_dir}: folder is not empty; choose a new folder (or --force to keep "
                             f"its files and start a run beside them)")  # fmt: skip
    if check_only:
        return run_dir
    for file in ours:
        file.unlink()
    if samples.is_dir() and not any(samples.iterdir()):
        samples.rmdir()
    return run_dir


def train_gan(
    data: Dataset,
    run_dir: str | Path,
    config: GanConfig,
    device: torch.device | str = "cpu",
    resume: bool = False,
    resume_steps: int | None = None,
    on_step: Callable[[TrainStep], None] | None = None,
    resume_schedule: dict | None = None,
    metrics: Callable[[torch.nn.Module, int], dict] | None = None,
    force: bool = False,
) -> Path:
    """Train (or with ``resume``, continue) a run. Under torchrun each process trains on its share of
    the batch and the gradients are averaged (DDP); only rank 0 writes files. A resumed run keeps its
    config except ``resume_steps`` and ``resume_schedule`` (new values for the keys in ``SCHEDULE``,
    which change what is written and when, not the training itself); other settings of ``config``
    given different from their defaults must match the run's. ``metrics(g_ema, step)`` gives the
    figures logged every ``eval_every`` steps (default: FID/KID, :mod:`brushwork.gan.evaluate`).

    ``force`` starts over in a folder that holds a run (see :func:`prepare_run_folder`). A new run that
    fails or is interrupted before its first checkpoint leaves no run behind."""
    run_dir = Path(run_dir)
    processes, device = distributed.start(torch.device(device))
    created = not run_dir.exists()
    if processes.main:  # the others would see its first files appear
        prepare_run_folder(run_dir, data.source, force, resume)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / SAMPLES).mkdir(exist_ok=True)
        except OSError as exc:
            raise write_error(run_dir, exc) from exc
    trainer = None
    try:
        trainer = GanTrainer(data, run_dir, config, device, processes, resume, resume_steps, resume_schedule, metrics)
        run_training(trainer.step, trainer.start, trainer.cfg.steps, trainer.checkpoint, trainer.cfg.checkpoint_every,
                     on_step if processes.main else None, trainer.agree_to_stop)  # fmt: skip
    except BaseException:
        if not resume and processes.main and (trainer is None or trainer.saved is None):
            _remove_new_run(run_dir, created)
        distributed.finish(processes, wait=False)
        raise
    distributed.finish(processes)
    return run_dir


def _remove_new_run(run_dir: Path, created: bool) -> None:
    """Undo a new run that never reached a checkpoint: its files, and its folder if this run made it."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / SAMPLES, ignore_errors=True)
    if created and run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


def _resumed_config(run_dir: Path, stored: GanConfig, given: GanConfig, schedule: dict | None) -> GanConfig:
    """The run's own settings with what may change on resume; a different architecture or training
    setting asked for is refused, naming the stored value (it would be ignored otherwise)."""
    unknown = set(schedule or {}) - set(SCHEDULE)
    if unknown:
        raise BrushworkError(f"only {', '.join(SCHEDULE)} can change on resume, not {', '.join(sorted(unknown))}")
    defaults, mine = asdict(GanConfig()), asdict(stored)
    derived = ("resolution", "channels", "classes", "steps", *SCHEDULE)  # from the data, or allowed to change
    for key, value in asdict(given).items():
        if key not in derived and value != defaults[key] and value != mine[key]:
            raise BrushworkError(f"{run_dir}: was trained with {key.replace('_', '-')} {mine[key]}, not {value}; "
                                 f"a resumed run keeps its settings (start a new run to change it)")  # fmt: skip
    return GanConfig(**{**mine, **(schedule or {})})


class GanTrainer:
    def __init__(self, data: Dataset, run_dir: Path, config: GanConfig, device: torch.device,
                 processes: distributed.Processes, resume: bool, resume_steps: int | None,
                 resume_schedule: dict | None = None, metrics: Callable | None = None):  # fmt: skip
        self.data, self.run_dir, self.device, self.processes = data, run_dir, device, processes
        self.data_info = {"source": data.source, "images": len(data.images), "classes": data.class_names,
                          "skipped": len(data.skipped)}  # fmt: skip
        cfg, self.start = config, 0
        if resume:
            tensors, meta, stored, self.start = load_for_resume(run_dir / CHECKPOINT, KIND, GanConfig, resume_steps,
                                                                "optim_g")  # fmt: skip
            stored.validate()
            mine = GanConfig(**{**asdict(stored), "resolution": data.resolution, "channels": data.channels,
                                "classes": len(data.class_names) if stored.classes else 0})  # fmt: skip
            images = meta["data"].get("images") if isinstance(meta.get("data"), dict) else None
            if mine.architecture() != stored.architecture() or images != len(data.images):
                raise BrushworkError(f"{run_dir}: was trained on other data or another architecture; start a new run")
            cfg = _resumed_config(run_dir, stored, config, resume_schedule)
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
        self.state = TrainingState({"g": self.g, "d": self.d, "g_ema": self.g_ema},
                                   {"optim_g": self.opt_g, "optim_d": self.opt_d})  # fmt: skip
        # Each process draws its own batches and latents.
        self.gen = torch.Generator().manual_seed(cfg.seed + 1_000_003 * processes.rank)
        self.metrics: list[dict] = []
        self.measure = metrics
        self.saved: int | None = None  # the step of the last checkpoint this run wrote
        if resume:
            self.state.restore(run_dir / CHECKPOINT, tensors, meta)
            key = f"rng/data/{processes.rank}" if f"rng/data/{processes.rank}" in tensors else "rng/data"
            if key not in tensors:
                raise BrushworkError(f"{run_dir / CHECKPOINT}: its data stream is missing; it cannot resume")
            self.gen.set_state(tensors[key])
            self.metrics = list(meta.get("metrics", []))
        self.g_train, self.d_train = self.g, self.d
        if processes.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.g_train, self.d_train = DDP(self.g, device_ids=ids), DDP(self.d, device_ids=ids)
        if processes.main:
            options = {"config": asdict(cfg), "data": self.data_info, "processes": processes.world,
                       "autocast": str(self.autocast).removeprefix("torch.") if self.autocast else "fp32"}  # fmt: skip
            text = json.dumps(options, indent=2)
            atomic_write(run_dir / OPTIONS, lambda tmp: Path(tmp).write_text(text))
        self.z_fixed, self.labels_fixed = fixed_latents(cfg)
        self.step_reached = self.start
        self.clock = {"t": time.perf_counter(), "seen": 0}
        self.g.train()
        self.d.train()

    def agree_to_stop(self, wish: bool) -> bool:
        """Under DDP every process stops at the same step (one may see Ctrl-C a step later than another)."""
        if self.processes.world == 1:
            return wish
        import torch.distributed as dist

        flag = torch.tensor([float(wish)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

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
        try:
            with open(self.run_dir / "log.jsonl", "a") as log:
                log.write(json.dumps(line) + "\n")
        except OSError as exc:
            raise write_error(self.run_dir / "log.jsonl", exc) from exc

    def write_samples(self, step: int) -> None:
        self.g_ema.eval()
        with torch.no_grad():
            out = self.g_ema(
                self.z_fixed.to(self.device), self.labels_fixed.to(self.device) if self.cfg.classes else None
            )
        grid = image_grid(out.cpu(), 8)
        record = new_record("gan-train", asdict(self.cfg), seed=self.cfg.seed, device=self.device,
                            extra={"step": step, "classes": self.data.class_names})  # fmt: skip
        write_image(grid, self.run_dir / "samples" / f"{step_name(step)}.png", record.finish())

    def evaluate(self, step: int) -> dict:
        if self.measure is None:
            # The default metric, made on first use (it loads a feature extractor).
            from brushwork.gan.evaluate import TrainingMetrics

            self.measure = TrainingMetrics(self.data, self.cfg, self.device)
        return {"step": step, **self.measure(self.g_ema, step)}

    def checkpoint(self, step: int, final: bool) -> None:
        # Every process's random state, so that each continues its own stream on resume.
        states = distributed.gather(self.processes, self.gen.get_state(), self.device)
        if not self.processes.main:
            return
        meta = {"kind": KIND, "config": asdict(self.cfg), "data": self.data_info, "step": step, "complete": final,
                "processes": self.processes.world, "metrics": self.metrics}  # fmt: skip
        rng = {f"rng/data/{rank}": state for rank, state in enumerate(states)}
        self.state.save(self.run_dir / CHECKPOINT, meta, rng)
        self.saved = step
