"""What the command modules share: option groups, progress bars, training runs."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path


def float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from exc


def name_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_backbone_options(g: argparse._ArgumentGroup) -> None:
    from brushwork.backbones import BACKBONES, LAYOUTS

    g.add_argument("--backbone", choices=BACKBONES, default="auto")
    g.add_argument("--weights", help="backbone weights file (.pth or .safetensors)")
    g.add_argument(
        "--weights-layout", choices=LAYOUTS, default="torchvision", help="caffe: BGR, 0-255, mean-subtracted"
    )
    g.add_argument("--pooling", choices=("max", "avg"), default="max")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def progress_bar(total: int, unit: str = "it"):
    from tqdm import tqdm

    # In a log file, redraw every 10 s rather than many times a second.
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(total=total, unit=unit, dynamic_ncols=True, file=sys.stderr, mininterval=interval)


def add_training_options(p: argparse.ArgumentParser, defaults) -> None:
    """A flag for each number in a training config dataclass (unset flags keep the config's default)."""
    g = p.add_argument_group("training")
    for f in fields(defaults):
        value = getattr(defaults, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            g.add_argument("--" + f.name.replace("_", "-"), type=type(value), default=None, help=f"default {value}")
    add_backbone_options(g)


def config_from_args(config_cls, args: argparse.Namespace):
    given = {f.name: getattr(args, f.name) for f in fields(config_cls) if getattr(args, f.name, None) is not None}
    return config_cls(**given), given


def train_with_progress(run, output: Path, quiet: bool, images_per_step: int | None = None) -> int:
    """Run ``run(on_step)`` with a progress bar (showing images/s when ``images_per_step`` is given);
    Ctrl-C ends cleanly with the checkpoint saved."""
    bar = None

    def on_step(step) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = progress_bar(step.total, unit="step")
            bar.update(step.step - 1)
        bar.update(1)
        if step.step % 10 == 0:
            postfix = {k: f"{v:.3g}" for k, v in step.losses.items()}
            rate = bar.format_dict.get("rate")
            if images_per_step and rate:
                postfix["img/s"] = f"{rate * images_per_step:.0f}"
            bar.set_postfix(postfix, refresh=False)

    try:
        run(on_step)
    except KeyboardInterrupt:
        print(f"\nbrushwork: interrupted; progress saved in {output} (continue with --resume)", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    print(output)
    return 0
