"""The Python API: one function per engine, the same conventions for all of them.

Inputs are paths or PIL images; keyword arguments are named like the command line's options
(``--style-blend-weights`` is ``style_blend_weights``); ``device`` and ``seed`` where they mean
something; a progress callback (``on_step`` or ``on_frame``); ``max_pixels`` bounds the inputs.
Images come back carrying their :class:`~brushwork.records.Record` (``records.record_of(image)``);
``brushwork.save(image, "out.png")`` writes one with it (the one exit, also used by the CLI) and
``brushwork.info(path)`` reads it back from any output.

Each engine lives in its own module of :mod:`brushwork.pipelines` (its ``Settings``, ``Inputs`` and
``run``); this module is the stable set of public names over them, plus what spans engines (a user's
taste, a style library ranked by words). The command line and the studio go through these names only
(``tests/test_layout.py``), so a notebook, the CLI and the studio behave alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path

from PIL import Image

from brushwork import threads
from brushwork.backbones import BACKBONES, LAYOUTS, load_backbone
from brushwork.backbones.vgg import POOLINGS
from brushwork.device import pick_device
from brushwork.errors import BrushworkError
from brushwork.files import all_or_nothing_folder, check_output_path, step_name
from brushwork.gan.losses import LOSSES as GAN_LOSSES
from brushwork.gan.model import PRECISIONS as GAN_PRECISIONS
from brushwork.gan.model import UPSAMPLING as GAN_UPSAMPLES
from brushwork.gan.model import GanConfig
from brushwork.gan.nets import CONDITIONING as GAN_CONDITIONING
from brushwork.gan.nets import RESOLUTIONS as GAN_RESOLUTIONS
from brushwork.judge.distribution import EXTRACTORS
from brushwork.media import DEFAULT_MAX_PIXELS, first_frame, high_precision, load_image, require_av, video_stream
from brushwork.output import Protection, save_output, save_outputs
from brushwork.pipelines import adain as adain_pipeline
from brushwork.pipelines import fast as fast_pipeline
from brushwork.pipelines import gan_sample as gan_sample_pipeline
from brushwork.pipelines import gan_train as gan_train_pipeline
from brushwork.pipelines import stylize as stylize_pipeline
from brushwork.pipelines import video as video_pipeline
from brushwork.pipelines.adain import adain_apply, adain_apply_many, adain_train
from brushwork.pipelines.common import (
    ADAIN_KIND,
    DEFAULT_PROTECTION,
    FAST_KIND,
    MAGENTA_MODEL,
    ImageSource,
    Model,
    PathLike,
    cached_backbone,
    cached_model,
    load_model,
    model_kind,
    model_of,
    open_image,
    protection_of,
)
from brushwork.pipelines.export import ExportReport, adain_export, fast_export, slim_model
from brushwork.pipelines.fast import fast_apply, fast_apply_many, fast_train
from brushwork.pipelines.gan_sample import gan_classes, gan_grid, gan_interpolate, gan_run_files, gan_sample
from brushwork.pipelines.gan_train import GanPlan, gan_evaluate, gan_train
from brushwork.pipelines.stylize import (
    keep_intermediate,
    recorded_style_options,
    resume_point,
    step_image,
    stylize,
    stylize_record,
)
from brushwork.pipelines.video import VideoReport, publish_clip, stylize_video
from brushwork.records import (
    IMAGE_INFO_KEY,
    IMAGE_SUFFIXES,
    INFOTEXT_KEY,
    Record,
    describe_input,
    new_record,
    read_record,
    record_of,
)
from brushwork.settings import Control, controls, json_schema
from brushwork.style import color
from brushwork.style.adain import AdainConfig
from brushwork.style.clip_guidance import DEFAULT_MODEL as DEFAULT_CLIP_MODEL
from brushwork.style.clip_guidance import DEFAULT_PRETRAINED as DEFAULT_CLIP_PRETRAINED
from brushwork.style.clip_guidance import Clip
from brushwork.style.feedforward import FastConfig
from brushwork.style.gatys import INITS, OPTIMIZERS, Step, StyleConfig
from brushwork.style.magenta import NAME as MAGENTA_NETWORK  # what records call MAGENTA_MODEL
from brushwork.style.masks import check_mask_count
from brushwork.style.style_library import StylePick
from brushwork.training import TrainStep

#: Choice lists, for the CLI and the studio's forms (one source: the library's own).
PRESERVE_COLORS = color.MODES
#: The engine name each function writes into its records.
ENGINES = {"stylize": stylize_pipeline.ENGINE, "fast_apply": fast_pipeline.ENGINE, "adain_apply": adain_pipeline.ENGINE,
           "stylize_video": video_pipeline.ENGINE, "gan_sample": gan_sample_pipeline.ENGINE,
           "gan_interpolate": gan_sample_pipeline.WALK_ENGINE}  # fmt: skip
#: Each engine's settings, by the name the studio and the records use: the faces draw their options from these.
SETTINGS = {"stylize": stylize_pipeline.Settings, "fast": fast_pipeline.Settings, "adain": adain_pipeline.Settings,
            "video": video_pipeline.Settings, "gan-sample": gan_sample_pipeline.Settings,
            "fast-train": fast_pipeline.TrainSettings, "adain-train": adain_pipeline.TrainSettings}  # fmt: skip
#: The settings of a GAN run's data, beside :class:`GanConfig`.
GanData = gan_train_pipeline.Data
#: A frame shrunk for bigger strokes (audio-reactive scale) keeps at least this side, as the engines need.
MIN_FRAME_SIDE = video_pipeline.MIN_FRAME_SIDE

info = read_record

# As many CPU threads as cores are free now (a run re-checks as it goes; brushwork/threads.py, #21).
threads.fit()
fast_slim = adain_slim = slim_model


def save(image: Image.Image, path: PathLike, record: Record | None = None, *, force: bool = False,
         protection: Protection | str | None = DEFAULT_PROTECTION, quality: int = 95,
         bit_depth: int = 8) -> Path:  # fmt: skip
    """Write an output with its record through the one exit, protected: an invisible watermark, the
    IPTC AI-source tag, a C2PA signature (this computer's key, made on first use), and a registry
    entry. ``protection=None`` writes it unprotected; a ``brushwork.protect.Protection`` chooses."""
    return save_output(image, path, record, force=force, protection=protection_of(protection), quality=quality,
                       bit_depth=bit_depth)  # fmt: skip


def save_all(items: Iterable[tuple[Image.Image, PathLike]], *, force: bool = False,
             protection: Protection | str | None = DEFAULT_PROTECTION, quality: int = 95,
             bit_depth: int = 8) -> Iterator[Path]:  # fmt: skip
    """:func:`save` for many ``(image, path)`` pairs, yielding each path once written: the protection
    marks, signs and registers them a batch at a time (``output.save_outputs``)."""
    return save_outputs(((image, path, None) for image, path in items), force=force,
                        protection=protection_of(protection), quality=quality, bit_depth=bit_depth)  # fmt: skip


def changed_inputs(record: Record, inputs: dict) -> list[str]:
    """The roles (``content``, ``styles``, ``model``, …) whose files now differ from those in ``record``
    (by SHA-256); ``inputs`` maps a role to a path or a list of paths."""
    changed = []
    for role, given in inputs.items():
        stored = record.inputs.get(role, record.models.get(role))
        if given is None or stored is None:
            continue
        now = [describe_input(g).get("sha256") for g in (given if isinstance(given, list) else [given])]
        then = [s.get("sha256") if isinstance(s, dict) else None for s in (stored if isinstance(stored, list)
                                                                          else [stored])]  # fmt: skip
        if len(now) != len(then) or any(a and b and a != b for a, b in zip(now, then, strict=True)):
            changed.append(role)
    return changed


IMAGE_FILE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


def image_files(sources: Sequence[PathLike]) -> list[Path]:
    """Files as given, and a folder's images (top level, by name) in its place: the inputs of a batch."""
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_FILE_SUFFIXES)
            if not inside:
                raise BrushworkError(f"{path}: no images in this folder ({', '.join(IMAGE_FILE_SUFFIXES)})")
            found += inside
        else:
            found.append(path)
    return found


# ---------------------------------------------------------------------------------------------
# Personal taste: settings chosen by a user's ratings

#: Engines whose settings a taste model can choose, with the settings searched.
TASTE_ENGINES = ("stylize", "fast", "adain")


def taste_settings(engine: str, content: ImageSource, styles: ImageSource | Sequence[ImageSource] = (), *,
                   taste_db: PathLike, user: str | None, model: Model | PathLike | None = None,
                   preview_size: int = 128, preview_iterations: int = 30, trials: int | None = None,
                   device: str = "auto", **fixed) -> dict:  # fmt: skip
    """The settings of ``engine`` this user is predicted to like most: small previews of each
    combination in the judge's search space, scored by the user's taste model (``judge.taste``).

    ``fixed`` are the run's other keyword arguments (backbone, style_blend_weights, …): previews use
    them too. Gatys previews are slow on a CPU, so ``stylize`` tries 6 combinations by default.
    Returns ``{"settings": best, "ranked": [(settings, utility), …], "user": user}``.
    """
    from brushwork.judge.ratings import RatingsStore
    from brushwork.judge.taste import ADAIN_SPACE, FAST_SPACE, GATYS_SPACE, TasteModel, best_settings

    if engine not in TASTE_ENGINES:
        raise BrushworkError(f"taste picks settings for {', '.join(TASTE_ENGINES)}, not {engine}")
    if not 32 <= preview_size <= 512:
        raise BrushworkError("preview size must be 32..512 px")
    if not Path(taste_db).is_file():
        raise BrushworkError(f"{taste_db}: no such ratings database (rate with 'brushwork judge rate' first)")
    with RatingsStore(taste_db) as store:
        taste = TasteModel.fit(store, user)
    photo = open_image(content, fixed.pop("max_pixels", DEFAULT_MAX_PIXELS))
    if engine == "stylize":
        space, trials = GATYS_SPACE, trials or 6
        fixed.pop("iterations", None)
        fixed.pop("image_size", None)

        def render(settings: dict) -> Image.Image:
            return stylize(photo, styles, image_size=preview_size, iterations=preview_iterations, device=device,
                           **{**fixed, **settings})  # fmt: skip
    else:
        loaded = model_of(model, FAST_KIND if engine == "fast" else ADAIN_KIND, device=device)
        space = FAST_SPACE if engine == "fast" else ADAIN_SPACE
        fixed.pop("image_size", None)
        apply = fast_apply if engine == "fast" else partial(adain_apply, styles=styles)

        def render(settings: dict) -> Image.Image:
            return apply(loaded, photo, image_size=preview_size, **{**fixed, **settings})

    search = best_settings(taste, render, space, trials=trials)
    return {"settings": search.best, "ranked": search.results, "user": user}


def rank_styles(
    text: str,
    library: PathLike | Sequence[PathLike],
    *,
    kind: str = "images",
    clip: Clip | None = None,
    clip_model: str = DEFAULT_CLIP_MODEL,
    clip_pretrained: str = DEFAULT_CLIP_PRETRAINED,
    clip_weights: PathLike | None = None,
    cache: PathLike | bool = True,
    device: str = "auto",
) -> StylePick:
    """Rank a style library by CLIP similarity to ``text``, best first: style images (``kind="images"``, for
    :func:`adain_apply`) or fast models (``kind="fast"``, for :func:`fast_apply`), in a folder (searched
    recursively) or given as files. Pass the result as ``adain_apply``'s style or ``fast_apply``'s model to
    use the best match; the record then keeps the text, the choice and its score.

    CLIP is ``clip`` if given, else ``clip_model``/``clip_pretrained`` from the Hugging Face cache, or
    ``clip_weights`` (a file). Image embeddings are cached by SHA-256 in ``cache`` (True: the user's
    cache folder; False: none), so a big library is embedded once.
    """
    from brushwork.style.clip_guidance import load_clip
    from brushwork.style.style_library import default_cache, rank_library

    dev = pick_device(device)
    clip = clip.to(dev) if clip is not None else load_clip(clip_model, clip_pretrained, clip_weights, dev)
    store = default_cache() if cache is True else (cache or None)
    return rank_library(clip, text, library, kind, store, dev)


__all__ = [
    "AdainConfig",
    "BACKBONES",
    "BrushworkError",
    "Control",
    "DEFAULT_MAX_PIXELS",
    "ENGINES",
    "EXTRACTORS",
    "ExportReport",
    "FastConfig",
    "GAN_CONDITIONING",
    "GAN_LOSSES",
    "GAN_PRECISIONS",
    "GAN_RESOLUTIONS",
    "GAN_UPSAMPLES",
    "GanConfig",
    "GanData",
    "GanPlan",
    "IMAGE_INFO_KEY",
    "IMAGE_SUFFIXES",
    "INFOTEXT_KEY",
    "MAGENTA_NETWORK",
    "INITS",
    "LAYOUTS",
    "MAGENTA_MODEL",
    "Model",
    "OPTIMIZERS",
    "POOLINGS",
    "PRESERVE_COLORS",
    "Record",
    "SETTINGS",
    "Step",
    "StyleConfig",
    "TrainStep",
    "VideoReport",
    "adain_apply",
    "adain_apply_many",
    "adain_export",
    "adain_slim",
    "adain_train",
    "changed_inputs",
    "check_output_path",
    "controls",
    "describe_input",
    "fast_apply",
    "fast_apply_many",
    "fast_export",
    "fast_slim",
    "fast_train",
    "gan_classes",
    "gan_evaluate",
    "gan_grid",
    "gan_interpolate",
    "gan_run_files",
    "gan_sample",
    "gan_train",
    "first_frame",
    "high_precision",
    "image_files",
    "info",
    "json_schema",
    "keep_intermediate",
    "resume_point",
    "load_image",
    "load_model",
    "cached_backbone",
    "cached_model",
    "recorded_style_options",
    "new_record",
    "publish_clip",
    "require_av",
    "video_stream",
    "model_kind",
    "read_record",
    "check_mask_count",
    "record_of",
    "load_backbone",
    "save",
    "save_all",
    "step_name",
    "slim_model",
    "all_or_nothing_folder",
    "step_image",
    "stylize",
    "stylize_record",
    "stylize_video",
]
