"""Neural style transfer by optimisation (Gatys et al.): the pixels are optimised until a backbone sees the
photo's content and the paintings' style.

    image = run(Inputs("photo.jpg", ["starry.jpg"]), Settings(image_size=512, style_weight=30))

``run`` checks the settings and inputs, loads the backbone (and CLIP, for a style in words), lets a
sound set the style's weight and scale if one is given, optimises, and gives the result its record.
A run's intermediates carry their step and settings, so a later run resumes from the newest one
(``keep_intermediate``, ``resume_point``): the CLI's ``--resume`` and a studio job whose worker died.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from PIL import Image

from brushwork import backbones
from brushwork.backbones import BACKBONES, FeatureExtractor
from brushwork.backbones.vgg import POOLINGS
from brushwork.device import pick_device
from brushwork.errors import BrushworkError
from brushwork.files import step_name
from brushwork.media import DEFAULT_MAX_PIXELS, tensor_to_image
from brushwork.output import save_output
from brushwork.pipelines.common import ImageSource, PathLike, as_list, described, open_image
from brushwork.records import Record, attach, describe_input, new_record, read_record
from brushwork.settings import Checked, check, setting
from brushwork.style.clip_guidance import Clip
from brushwork.style.gatys import GatysEngine, Step, StyleConfig

ENGINE = "stylize"
#: StyleConfig's settings of the words objective: recorded only for a run that paints by words.
CLIP_OPTIONS = ("style_text", "clip_model", "clip_pretrained", "clip_weight", "clip_patch_weight", "clip_crops",
                "clip_crop_fraction", "clip_threshold")  # fmt: skip


@dataclass
class Settings(StyleConfig, Checked):
    """The optimisation's knobs (:class:`StyleConfig`, as recorded) and the backbone it looks through."""

    backbone: str = setting("auto", help="feature network: auto/vgg19 = VGG-19, torchvision's weights if cached, else "
                            "the original ones offline (vgg19-caffe-q8); lite0 = a fast preview", choices=BACKBONES,
                            basic=True)  # fmt: skip
    pooling: str = setting("max", help="VGG's pooling layers", choices=POOLINGS)

    def validate(self, n_styles: int | None = 1) -> None:
        check(self)
        StyleConfig.validate(self, n_styles)

    def config(self) -> StyleConfig:
        """The engine's part (what the record keeps under the engine's own names)."""
        return StyleConfig(**{f.name: getattr(self, f.name) for f in fields(StyleConfig)})


@dataclass
class Inputs:
    content: ImageSource
    styles: Sequence[ImageSource] = ()
    init_image: ImageSource | None = None  # start from this picture (or continue from it, with ``start_step``)
    #: One greyscale mask per style, or one for two styles (white = first, black = second).
    style_masks: Sequence[ImageSource] = ()
    audio: PathLike | None = None  # a sound whose mood sets the style weight and scale (a creative mapping)


def run(inputs: Inputs, settings: Settings | None = None, on_progress: Callable[[Step], None] | None = None, *,
        backbone: FeatureExtractor | None = None, weights: PathLike | None = None,
        weights_layout: str = "torchvision", device: str = "auto", start_step: int = 0,
        clip_weights: PathLike | None = None, clip: Clip | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:  # fmt: skip
    """The painted picture with its record; ``on_progress`` sees every step (a live preview, a progress bar).
    ``backbone`` (a loaded network) wins over ``settings.backbone``; ``start_step`` continues an interrupted
    run from an intermediate given as ``inputs.init_image``."""
    settings = settings or Settings()
    styles = as_list(inputs.styles)
    masks = as_list(inputs.style_masks) if inputs.style_masks is not None else []
    # 1. Check the settings and inputs before any work.
    settings.validate(len(styles))
    config = settings.config()
    if inputs.init_image is not None and config.init == "content" and not start_step:
        config.init = "image"
    content_img = open_image(inputs.content, max_pixels)
    style_imgs = [open_image(s, max_pixels) for s in styles]
    init_img = open_image(inputs.init_image, max_pixels) if inputs.init_image is not None else None
    mask_imgs = [open_image(m, max_pixels) for m in masks]
    # 2. A sound's mood scales the style (the record keeps what was asked; the mapping goes in its extra).
    chosen = recorded_style_options(asdict(config))  # what was asked; the sound's mapping goes in the extra
    audio_mapping = _apply_audio_mood(config, inputs.audio, len(styles)) if inputs.audio is not None else None
    config.validate(len(style_imgs))
    # 3. The networks: the backbone, and CLIP for a style in words.
    net = backbone or backbones.load_backbone(settings.backbone, weights, weights_layout, settings.pooling)
    dev = pick_device(device)
    if config.style_text and clip is None:
        from brushwork.style.clip_guidance import load_clip

        clip = load_clip(config.clip_model, config.clip_pretrained, clip_weights, dev)
    elif clip is not None:
        clip = clip.to(dev)
    # 4. Optimise.
    engine = GatysEngine(net, dev)
    result = engine.run(content_img, style_imgs, config, init_img, on_progress, start_step, mask_imgs or None, clip)
    # 5. The record, at the end.
    parameters = {"backbone": net.variant, "weights": weights, "weights_layout": getattr(net, "layout", None),
                  "pooling": settings.pooling, "resumed_from_step": start_step or None, **chosen}  # fmt: skip
    ins = {"content": describe_input(inputs.content), "styles": described(styles)}
    if inputs.init_image is not None:
        ins["init_image"] = describe_input(inputs.init_image)
    if masks:
        ins["style_masks"] = described(masks)
    if inputs.audio is not None:
        ins["audio"] = describe_input(inputs.audio)
    models = {"backbone": describe_input(weights) if weights else {"name": net.variant}}
    if config.style_text:
        parameters["clip_weights"] = clip_weights
        models["clip"] = (
            describe_input(clip_weights) if clip_weights else {"name": clip.name, "weights": clip.pretrained}
        )
    record = new_record(ENGINE, parameters, inputs=ins, models=models, seed=config.seed, device=dev)
    notes = engine.notes + (audio_mapping["notes"] if audio_mapping else [])
    if notes:
        record.extra["notes"] = notes
    if audio_mapping:
        record.extra["audio_mapping"] = {k: v for k, v in audio_mapping.items() if k != "notes"}
    return attach(result, record.finish())


def recorded_style_options(options: dict) -> dict:
    """A stylize run's settings as its record keeps them: under the API's and CLI's names
    (``style_blend_weights``), without the CLIP settings of a run that used no words."""
    options = dict(options)
    if "style_blend" in options:
        options["style_blend_weights"] = options.pop("style_blend")
    if not options.get("style_text"):
        for key in CLIP_OPTIONS:
            options.pop(key, None)
    return options


def _apply_audio_mood(config: StyleConfig, audio: PathLike, n_styles: int) -> dict:
    """Scale ``config``'s style weight and scale (and, for two styles, set the blend) from a sound file."""
    from brushwork.style.audio import still_settings

    mood = still_settings(audio)
    config.style_weight *= mood["style_weight_factor"]
    config.style_scale *= mood["style_scale_factor"]
    if n_styles == 2 and config.style_blend is None:
        share = mood["second_style_share"]
        config.style_blend = [1 - share, share] if 0 < share < 1 else None
    return mood


# ---------------------------------------------------------------------------------------------
# Intermediates: what a later run resumes from


def step_image(step: Step) -> Image.Image:
    """The picture of a run so far, as a progress callback sees it."""
    return tensor_to_image(step.image)


def stylize_record(content: ImageSource, styles: Sequence[ImageSource], step: Step, *, extra: dict | None = None,
                   **parameters) -> Record:  # fmt: skip
    """The record of an intermediate (or interrupted) picture of a run: its settings, inputs and step."""
    inputs = {"content": describe_input(content), "styles": described(styles)}
    return new_record(ENGINE, recorded_style_options(parameters), inputs=inputs, seed=parameters.get("seed"),
                      extra={"step": step.step, "scale": step.scale, **(extra or {})})  # fmt: skip


def _recorded(settings: Settings, weights: PathLike | None, weights_layout: str) -> dict:
    """An intermediate's parameters: the run's settings under the record's names."""
    return {**asdict(settings.config()), "backbone": settings.backbone, "weights": weights,
            "weights_layout": weights_layout, "pooling": settings.pooling}  # fmt: skip


def keep_intermediate(path: Path, content: ImageSource, styles: Sequence[ImageSource], step: Step,
                      settings: Settings, *, weights: PathLike | None = None, weights_layout: str = "torchvision",
                      **extra) -> Path:  # fmt: skip
    """The picture so far with its record (settings and step) at ``path``. A working file: recorded, not
    watermarked or registered (the final image is)."""
    record = stylize_record(content, styles, step, extra=extra, **_recorded(settings, weights, weights_layout))
    return save_output(step_image(step), path, record, force=True, protection=None)


def resume_point(candidates: Sequence[Path], content: ImageSource, settings: Settings) -> tuple[int, Path | None]:
    """(step, file) of the newest readable intermediate among ``candidates`` that this same run made (same
    photo, same settings; tiling changes memory, not the image), or (0, None) to start afresh."""
    recorded = recorded_style_options(asdict(settings.config()))
    wanted = json.loads(json.dumps({k: v for k, v in recorded.items() if k != "tile"}))
    name = Path(content).name if not isinstance(content, Image.Image) else None
    for path in sorted(candidates, reverse=True):
        try:
            record = read_record(path)
        except BrushworkError:  # unreadable: the attempt died while the file was being replaced
            continue
        step = record.extra.get("step")
        same = {k: record.parameters.get(k) for k in wanted} == wanted
        if same and (record.inputs.get("content") or {}).get("name") == name and isinstance(step, int) and step > 0:
            return step, path
    return 0, None


def intermediate_name(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}.{step_name(step)}.png")


# ---------------------------------------------------------------------------------------------
# The Python API's name (brushwork.api re-exports it)


def stylize(content: ImageSource, styles: ImageSource | Sequence[ImageSource] = (), *,
            backbone: str | FeatureExtractor = "auto", weights: PathLike | None = None,
            weights_layout: str = "torchvision", pooling: str = "max", device: str = "auto",
            init_image: ImageSource | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
            on_step: Callable[[Step], None] | None = None, start_step: int = 0,
            style_blend_weights: Sequence[float] | None = None,
            style_masks: ImageSource | Sequence[ImageSource] | None = None, audio: PathLike | None = None,
            clip_weights: PathLike | None = None, clip: Clip | None = None, **options) -> Image.Image:  # fmt: skip
    """Paint ``content`` in the style of ``styles`` (one image or several, mixed by ``style_blend_weights``).

    ``options`` are the fields of :class:`~brushwork.style.gatys.StyleConfig` (``image_size``,
    ``iterations``, ``style_weight``, ``style_scale``, ``preserve_colors``, ``seed``, …).
    ``start_step`` continues an interrupted run from an intermediate given as ``init_image``.
    ``style_masks`` send each style to its region: one greyscale mask per style, or one mask for two
    styles (white = first, black = second); soft edges stay soft (``style_mask_feather`` blurs them).
    ``audio`` (a sound file) sets the style weight and scale (and the mix of two styles) from the clip's
    mood: a creative mapping (``brushwork.style.audio.still_settings``), kept in the record's extra.
    ``style_text`` (an option) paints by words with a CLIP objective, alone or beside ``styles``: CLIP is
    ``clip`` if given, else ``clip_model``/``clip_pretrained`` from the cache, or ``clip_weights`` (a file).
    Adjustments made on the way (a mask resized to the output) are listed in the record's ``extra["notes"]``.
    """
    if style_blend_weights is not None:
        options["style_blend"] = list(style_blend_weights)
    loaded = backbone if isinstance(backbone, FeatureExtractor) else None
    # A network given loaded is named in the settings by its own name where it is one of the choices.
    name = backbone if loaded is None else loaded.variant if loaded.variant in BACKBONES else "auto"
    try:
        settings = Settings(backbone=name, pooling=pooling, **options)
    except TypeError as exc:  # an unknown keyword: name it in one line
        raise BrushworkError(f"StyleConfig: {exc}") from exc
    inputs = Inputs(
        content, as_list(styles), init_image, as_list(style_masks) if style_masks is not None else (), audio
    )
    return run(inputs, settings, on_step, backbone=loaded, weights=weights, weights_layout=weights_layout,
               device=device, start_step=start_step, clip_weights=clip_weights, clip=clip,
               max_pixels=max_pixels)  # fmt: skip
