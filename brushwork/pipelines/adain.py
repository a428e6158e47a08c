"""Arbitrary style transfer (AdaIN, Huang & Belongie 2017): one trained decoder paints a photo in the style
of any image given at run time.

    images = run(Inputs("adain.safetensors", ["photo.jpg"], ["wave.jpg"]), Settings(strength=0.8))

``run`` checks the settings and inputs, loads the model, paints the photos (those of one size as one
batch, each style encoded once) and gives each result its record. ``train`` makes such a decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from brushwork import backbones
from brushwork.device import pick_device
from brushwork.errors import BrushworkError
from brushwork.files import check_output_path
from brushwork.media import DEFAULT_MAX_PIXELS
from brushwork.pipelines.common import (
    ADAIN_KIND,
    MAX_SIZE,
    MIN_SIZE,
    ImageSource,
    Model,
    PathLike,
    TrainingSettings,
    as_list,
    backbone_setting,
    config_of,
    described,
    model_of,
    note_pick,
    open_image,
    paint_any_style,
    picked,
    pooling_setting,
    preserve_colors_setting,
    strength_setting,
    style_blend_setting,
    training_backbone_setting,
)
from brushwork.records import attach, describe_input, new_record
from brushwork.settings import Checked, setting
from brushwork.style.adain import AdainConfig, train_adain
from brushwork.style.masks import region_masks
from brushwork.style.style_library import StylePick
from brushwork.training import TrainStep

ENGINE = "adain"


@dataclass
class Settings(Checked):
    """How an AdaIN decoder paints; the record's parameters are these fields (the backbone as loaded)."""

    style_blend_weights: list[float] | None = style_blend_setting()
    strength: float = strength_setting()
    preserve_colors: str = preserve_colors_setting()
    image_size: int | None = setting(None, help="resize the photo's long side first", low=MIN_SIZE, high=MAX_SIZE,
                                     basic=True)  # fmt: skip
    style_size: int | None = setting(None, help="long side of the style images (default: the photo's)",
                                     low=MIN_SIZE, high=MAX_SIZE)  # fmt: skip
    backbone: str = backbone_setting("the decoder was trained on")


@dataclass
class TrainSettings(TrainingSettings, AdainConfig):
    """How an AdaIN decoder is trained: :class:`AdainConfig` (stored with the model) and the feature network
    it decodes (kept with the model). ``values()`` are :func:`adain_train`'s keywords."""

    config_cls = AdainConfig
    backbone: str = training_backbone_setting()
    pooling: str = pooling_setting()


@dataclass
class Inputs:
    model: Model | PathLike
    contents: Sequence[ImageSource]
    #: Style images; one of them may be a ranking by words (its best match is used, its account recorded).
    styles: Sequence[ImageSource | StylePick]
    style_mask: ImageSource | None = None  # white paints the first style, black the second


def run(inputs: Inputs, settings: Settings | None = None, on_progress: Callable[[int, int], None] | None = None,
        *, weights: PathLike | None = None, weights_layout: str = "torchvision", device: str = "auto",
        max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Image.Image]:  # fmt: skip
    """The photos painted in the styles, each carrying its record; ``weights`` is the backbone's file."""
    settings = settings or Settings()
    # 1. Check the settings and inputs before any work.
    settings.validate()
    if not inputs.contents:
        raise BrushworkError("no photos to paint")
    styles = [inputs.styles] if isinstance(inputs.styles, StylePick) else as_list(inputs.styles)
    picks = [s for s in styles if isinstance(s, StylePick)]
    if len(picks) > 1:
        raise BrushworkError("one style may be chosen by words; give the others as images")
    pick = picked(picks[0], "images")[0] if picks else None
    styles = [picked(s, "images")[1] for s in styles]
    # 2. The model, then the pictures.
    model = model_of(inputs.model, ADAIN_KIND, backbone=settings.backbone, weights=weights,
                     weights_layout=weights_layout, device=device)  # fmt: skip
    mask = open_image(inputs.style_mask, max_pixels) if inputs.style_mask is not None else None
    photos = [open_image(c, max_pixels) for c in inputs.contents]
    style_imgs = [open_image(s, max_pixels) for s in styles]
    # 3. Paint: photos of one size as one batch.
    results = paint_any_style(model, photos, style_imgs, settings.style_blend_weights, settings.strength, mask,
                              settings.preserve_colors, settings.image_size, settings.style_size)  # fmt: skip
    if on_progress is not None:
        on_progress(len(results), len(results))
    # 4. Each result's record, once, at the end.
    parameters = {**asdict(settings), "backbone": model.backbone, "weights": weights}
    for content, result in zip(inputs.contents, results, strict=True):
        # As stylize's masks: a style without pixels is an error, a resized mask a note.
        notes = region_masks([mask], len(styles), result.size)[1] if mask is not None else []
        ins = {"content": describe_input(content), "styles": described(styles)}
        if inputs.style_mask is not None:
            ins["style_mask"] = describe_input(inputs.style_mask)
        record = new_record(ENGINE, parameters, inputs=ins, models={"model": model.described}, device=model.device,
                            extra={"notes": notes} if notes else None)  # fmt: skip
        attach(result, note_pick(record, pick).finish())
    return results


def train(content_dir: PathLike, style_dir: PathLike, output: PathLike, config: AdainConfig, *,
          resume: bool = False, force: bool = False, backbone: str = "auto", weights: PathLike | None = None,
          weights_layout: str = "torchvision", pooling: str = "max", device: str = "auto",
          on_step: Callable[[TrainStep], None] | None = None, resume_steps: int | None = None) -> Path:  # fmt: skip
    """Train a decoder on a folder of photos and a folder of paintings into ``output``."""
    output = check_output_path(output, force, ".safetensors", resume)
    net = backbones.load_backbone(backbone, weights, weights_layout, pooling)
    return train_adain(content_dir, style_dir, output, net, config, pick_device(device), resume=resume,
                       resume_steps=resume_steps, on_step=on_step)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The Python API's names (brushwork.api re-exports them)


def adain_apply(model: Model | PathLike, content: ImageSource,
                styles: ImageSource | StylePick | Sequence[ImageSource | StylePick], *,
                style_blend_weights: Sequence[float] | None = None, strength: float = 1.0,
                style_mask: ImageSource | None = None, preserve_colors: str = "none", image_size: int | None = None,
                style_size: int | None = None, backbone: str = "auto", weights: PathLike | None = None,
                weights_layout: str = "torchvision", device: str = "auto",
                max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:  # fmt: skip
    """Stylise ``content`` with any style image(s) through a trained AdaIN decoder, or with ``model="magenta"``
    through Magenta's arbitrary network (:mod:`brushwork.style.magenta`; no backbone, CPU).

    A style may be a :func:`rank_styles` result: its best match is used, and the record keeps the text,
    the choice and its score. ``style_blend_weights`` mixes several styles; ``style_mask`` (white = first style,
    black = second) paints two styles into two regions; ``strength`` 0 gives the photo back, 1 full style.
    """
    return adain_apply_many(model, [content], styles, style_blend_weights=style_blend_weights, strength=strength,
                            style_mask=style_mask, preserve_colors=preserve_colors, image_size=image_size,
                            style_size=style_size, backbone=backbone, weights=weights, weights_layout=weights_layout,
                            device=device, max_pixels=max_pixels)[0]  # fmt: skip


def adain_apply_many(model: Model | PathLike, contents: Sequence[ImageSource],
                     styles: ImageSource | StylePick | Sequence[ImageSource | StylePick], *,
                     style_blend_weights: Sequence[float] | None = None, strength: float = 1.0,
                     style_mask: ImageSource | None = None, preserve_colors: str = "none",
                     image_size: int | None = None, style_size: int | None = None, backbone: str = "auto",
                     weights: PathLike | None = None, weights_layout: str = "torchvision", device: str = "auto",
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Image.Image]:  # fmt: skip
    """:func:`adain_apply` on several photos with the same styles and settings: those of the same size (after
    ``image_size``) run as one batch, each result the same as its own run and carrying its own record."""
    blend = list(style_blend_weights) if style_blend_weights is not None else None
    settings = Settings(style_blend_weights=blend, strength=strength, preserve_colors=preserve_colors,
                        image_size=image_size, style_size=style_size, backbone=backbone)  # fmt: skip
    return run(Inputs(model, contents, styles, style_mask), settings, weights=weights, weights_layout=weights_layout,
               device=device, max_pixels=max_pixels)  # fmt: skip


def adain_train(content_dir: PathLike, style_dir: PathLike, output: PathLike, *, resume: bool = False,
                force: bool = False, backbone: str = "auto", weights: PathLike | None = None,
                weights_layout: str = "torchvision", pooling: str = "max", device: str = "auto",
                on_step: Callable[[TrainStep], None] | None = None, **config) -> Path:  # fmt: skip
    """Train an AdaIN decoder on a folder of photos and a folder of paintings; write ``output``.

    ``config`` are the fields of :class:`~brushwork.style.adain.AdainConfig` (``steps``,
    ``encoder_layer``, ``decoder_width``, …)."""
    return train(content_dir, style_dir, output, config_of(AdainConfig, config), resume=resume, force=force,
                 backbone=backbone, weights=weights, weights_layout=weights_layout, pooling=pooling, device=device,
                 on_step=on_step, resume_steps=config.get("steps"))  # fmt: skip
