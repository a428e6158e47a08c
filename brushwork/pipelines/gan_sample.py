"""Pictures from a trained GAN run: one per seed (of a class, in a conditional run), a grid, or a walk.

    images = run(Inputs("runs/faces"), Settings(seeds=[1, 2, 3], truncation=0.7))

``run`` checks the settings, loads the run's EMA generator, draws a row of images per class asked for
and gives each image its record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from brushwork.checkpoints import meta_path
from brushwork.device import pick_device
from brushwork.errors import BrushworkError
from brushwork.files import atomic_write, check_output_path
from brushwork.gan import sample as gs
from brushwork.gan.model import image_grid
from brushwork.media import write_frames
from brushwork.output import Protection, gif_frame, save_clip
from brushwork.pipelines.common import PathLike
from brushwork.records import Record, attach, describe_input, new_record
from brushwork.saving import DEFAULT_PROTECTION, protection_of
from brushwork.settings import Checked, setting

ENGINE, WALK_ENGINE = "gan-sample", "gan-interpolate"
CHECKPOINT = "checkpoint.safetensors"


@dataclass
class Settings(Checked):
    """Which pictures of a run: the record's parameters are these (a sample's seeds: its own one)."""

    seeds: list[int] | None = setting(None, help="one image per seed, e.g. 0-63 or 1,5,9", required=True,
                                      parse=gs.parse_seeds, basic=True)  # fmt: skip
    class_name: str | None = setting(None, help="class name (conditional runs)", flag="--class", basic=True)
    truncation: float | None = setting(None, help="e.g. 0.7: closer to typical, less varied",
                                       low=gs.MIN_TRUNCATION, basic=True)  # fmt: skip

    def validate(self, n_styles: int | None = None) -> None:
        super().validate()
        gs.parse_seeds(",".join(str(int(s)) for s in self.seeds))  # how many, and each within 63 bits


@dataclass
class Walk(Settings):
    """A latent walk through the seeds (and back to the first): the samples' settings and the frames per leg."""

    frames: int = setting(24, help="frames between two seeds", low=1, high=1000)

    def validate(self, n_styles: int | None = None) -> None:
        super().validate()
        if len(self.seeds) < 2:
            raise BrushworkError("a walk needs at least two seeds")
        if len(self.seeds) * self.frames > gs.MAX_FRAMES:
            raise BrushworkError(f"a walk is at most {gs.MAX_FRAMES} frames: {len(self.seeds)} seeds x {self.frames}")


@dataclass
class Inputs:
    run: PathLike  # a run folder from ``gan train``


def seed_list(seeds: str | int | Sequence[int]) -> list[int]:
    """Seeds as text (``0-63``, ``1,5,9``), one number or numbers."""
    if isinstance(seeds, str):
        return gs.parse_seeds(seeds)
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    return gs.parse_seeds(",".join(str(int(s)) for s in seeds)) if seeds else gs.parse_seeds("")


def gan_run_files(run: PathLike) -> dict[str, Path]:
    """The files sampling reads from a run folder, by role: the checkpoint and its settings. These two alone
    in a folder sample the same pictures (the rest of a run is its log, options and snapshots)."""
    checkpoint = Path(run) / CHECKPOINT
    return {"checkpoint": checkpoint, "checkpoint-json": meta_path(checkpoint)}


def _record(engine: str, run: PathLike, parameters: dict, seed: int | None = None) -> Record:
    return new_record(engine, parameters, models={"model": describe_input(Path(run) / CHECKPOINT)}, seed=seed)


def _rows(inputs: Inputs, settings: Settings, device: str) -> tuple[list[torch.Tensor], list[str]]:
    """Generator output per class row: the named class, or every class of a conditional run."""
    g, cfg, classes = gs.load_run(inputs.run)
    label = gs.class_index(settings.class_name, classes)
    labels = [label] if label is not None or not cfg.classes else list(range(len(classes)))
    g = g.to(pick_device(device))
    return [gs.generate(g, cfg, settings.seeds, lab, settings.truncation).cpu() for lab in labels], classes


def run(inputs: Inputs, settings: Settings, on_progress: Callable[[int, int], None] | None = None, *,
        device: str = "auto") -> list[Image.Image]:  # fmt: skip
    """One image per seed from the run's EMA generator (of ``class_name``; every class in turn, class by
    class, when none is named in a conditional run), each carrying its record."""
    # 1. Check the settings.
    settings.validate()
    # 2. Generate, a row per class.
    rows, classes = _rows(inputs, settings, device)
    # 3. Each image's record, at the end.
    images = []
    for row, batch in enumerate(rows):
        name = settings.class_name if settings.class_name is not None or not classes else classes[row]
        for seed, image in zip(settings.seeds, gs.to_images(batch), strict=True):
            parameters = {"seeds": [seed], "class_name": name, "truncation": settings.truncation}
            images.append(attach(image, _record(ENGINE, inputs.run, parameters, seed).finish()))
        if on_progress is not None:
            on_progress(row + 1, len(rows))
    return images


def _sample(*args, **kwargs) -> list[Image.Image]:
    """:func:`run`, for the API's function below, whose keyword ``run`` (the folder) hides it."""
    return run(*args, **kwargs)


def grid(inputs: Inputs, settings: Settings, *, device: str = "auto") -> Image.Image:
    """The seeds' images in one grid (a row per class of a conditional run when no class is named)."""
    settings.validate()
    rows, _ = _rows(inputs, settings, device)
    seeds = settings.seeds
    per_row = len(seeds) if len(rows) > 1 else min(8, len(seeds))
    picture = image_grid(torch.cat(rows), per_row)
    parameters = {"seeds": seeds, "class_name": settings.class_name, "truncation": settings.truncation, "grid": True}
    return attach(picture, _record(ENGINE, inputs.run, parameters, seeds[0] if len(seeds) == 1 else None).finish())


def interpolate(inputs: Inputs, settings: Walk, output: PathLike, *, force: bool = False,
                protection: Protection | str | None = DEFAULT_PROTECTION) -> Path:  # fmt: skip
    """A latent walk through the seeds (and back) as a GIF or MP4, ``settings.frames`` per leg; the record
    is the file's comment. Protected as a video's clips are (``protection=None`` opts out)."""
    # 1. Check the output and the settings.
    out = check_output_path(output, force, (".gif", ".mp4"))
    settings.validate()
    # 2. Walk through the latents.
    g, cfg, classes = gs.load_run(inputs.run)
    images = gs.interpolate(g, cfg, settings.seeds, gs.class_index(settings.class_name, classes), settings.frames,
                            settings.truncation)  # fmt: skip
    # GAN images are small: shown at 256 px or more (nearest, so pixels stay pixels).
    scale = max(1, 256 // cfg.resolution)
    images = [f.resize((f.width * scale, f.height * scale), Image.Resampling.NEAREST) for f in images]
    parameters = {"seeds": settings.seeds, "class_name": settings.class_name, "truncation": settings.truncation,
                  "frames": settings.frames}  # fmt: skip
    record = _record(WALK_ENGINE, inputs.run, parameters)

    # 3. Write the clip through the one exit, with its record.
    def write(path: Path, comment: str, mark: Callable[[Image.Image], Image.Image] | None) -> Path:
        if path.suffix.lower() == ".mp4":
            write_frames(images, path, fps=25, comment=comment, mark_frame=mark)
            return path
        shown = [gif_frame(mark(image) if mark else image) for image in images]
        return atomic_write(path, lambda tmp: shown[0].save(tmp, format="GIF", save_all=True,
                                                            append_images=shown[1:], duration=40, loop=0,
                                                            comment=comment))  # fmt: skip

    return save_clip(out, record, images[0], write, force=force, protection=protection_of(protection))


# ---------------------------------------------------------------------------------------------
# The Python API's names (brushwork.api re-exports them)


def _settings(seeds, class_name, truncation) -> Settings:
    return Settings(seeds=seed_list(seeds), class_name=class_name, truncation=truncation)


def gan_sample(run: PathLike, *, seeds: str | Sequence[int], class_name: str | None = None,
               truncation: float | None = None, device: str = "auto") -> list[Image.Image]:  # fmt: skip
    """One image per seed from a run's EMA generator (of ``class_name`` in a conditional run; every
    class in turn, class by class, when none is named), each carrying its record."""
    return _sample(Inputs(run), _settings(seeds, class_name, truncation), device=device)


def gan_grid(run: PathLike, *, seeds: str | Sequence[int], class_name: str | None = None,
             truncation: float | None = None, device: str = "auto") -> Image.Image:  # fmt: skip
    """The seeds' images in one grid (a row per class of a conditional run when no class is named)."""
    return grid(Inputs(run), _settings(seeds, class_name, truncation), device=device)


def gan_interpolate(run: PathLike, output: PathLike, *, seeds: str | Sequence[int], frames: int = 24,
                    class_name: str | None = None, truncation: float | None = None, force: bool = False,
                    protection: Protection | str | None = DEFAULT_PROTECTION) -> Path:  # fmt: skip
    """A latent walk through ``seeds`` (and back) as a GIF or MP4, ``frames`` per leg; the record is
    the file's comment. Protected as :func:`stylize_video`'s clips are (``protection=None`` opts out)."""
    walk = Walk(seeds=seed_list(seeds), class_name=class_name, truncation=truncation, frames=frames)
    return interpolate(Inputs(run), walk, output, force=force, protection=protection)


def gan_classes(run: PathLike) -> list[str]:
    """The class names of a run (empty when it is unconditional)."""
    return gs.load_run(run)[2]
