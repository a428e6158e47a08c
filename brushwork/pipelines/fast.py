"""Feed-forward style transfer (Johnson et al. 2016): a network trained for one style paints a photo in
one pass.

    images = run(Inputs("starry.safetensors", ["photo.jpg"]), Settings(strength=0.7))

``run`` checks the settings and inputs, loads the model, paints the photos (those of one size as one
batch) and gives each result its record. ``train`` makes such a model.
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
    FAST_KIND,
    MAX_SIZE,
    MIN_SIZE,
    ImageSource,
    Model,
    PathLike,
    TrainingSettings,
    config_of,
    model_of,
    note_pick,
    open_image,
    pooling_setting,
    preserve_colors_setting,
    strength_setting,
    training_backbone_setting,
)
from brushwork.records import attach, describe_input, new_record
from brushwork.settings import Checked, setting
from brushwork.style.feedforward import FastConfig, apply_feedforward, train_feedforward
from brushwork.style.style_library import StylePick
from brushwork.training import TrainStep

ENGINE = "fast"


@dataclass
class Settings(Checked):
    """How a feed-forward model paints; the record's parameters are these fields."""

    strength: float = strength_setting()
    preserve_colors: str = preserve_colors_setting()
    image_size: int | None = setting(None, help="resize the long side first", low=MIN_SIZE, high=MAX_SIZE,
                                     basic=True)  # fmt: skip


@dataclass
class TrainSettings(TrainingSettings, FastConfig):
    """How a feed-forward network is trained: :class:`FastConfig` (stored with the model) and the feature
    network its losses are measured with. ``values()`` are :func:`fast_train`'s keywords."""

    config_cls = FastConfig
    backbone: str = training_backbone_setting()
    pooling: str = pooling_setting()


@dataclass
class Inputs:
    model: Model | PathLike | StylePick  # a file, a loaded model, or a ranking of fast models by words
    contents: Sequence[ImageSource]


def run(inputs: Inputs, settings: Settings | None = None, on_progress: Callable[[int, int], None] | None = None,
        *, device: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Image.Image]:  # fmt: skip
    """The photos painted by the model, each carrying its record; ``on_progress(done, total)``."""
    settings = settings or Settings()
    # 1. Check the settings and inputs before any work.
    settings.validate()
    if not inputs.contents:
        raise BrushworkError("no photos to paint")
    # 2. The model (loaded once; a ranking stands for its best match), then the photos.
    model = model_of(inputs.model, FAST_KIND, device=device)
    photos = [open_image(c, max_pixels) for c in inputs.contents]
    # 3. Paint: photos of one size go through as one batch.
    results = apply_feedforward(model.net, photos, settings.strength, settings.preserve_colors, settings.image_size,
                                model.device)  # fmt: skip
    if on_progress is not None:
        on_progress(len(results), len(results))
    # 4. Each result's record, once, at the end.
    for content, result in zip(inputs.contents, results, strict=True):
        ins = {"content": describe_input(content), "styles": [model.meta.get("style") or {}]}
        record = new_record(ENGINE, asdict(settings), inputs=ins, models={"model": model.described},
                            device=model.device)  # fmt: skip
        attach(result, note_pick(record, model.pick).finish())
    return results


def train(style: ImageSource, content_dir: PathLike, output: PathLike, config: FastConfig, *, resume: bool = False,
          force: bool = False, backbone: str = "auto", weights: PathLike | None = None,
          weights_layout: str = "torchvision", pooling: str = "max", device: str = "auto",
          on_step: Callable[[TrainStep], None] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
          resume_steps: int | None = None) -> Path:  # fmt: skip
    """Train a network for ``style`` on a folder of photos into ``output`` (.safetensors)."""
    output = check_output_path(output, force, ".safetensors", resume)
    style_img = open_image(style, max_pixels)
    net = backbones.load_backbone(backbone, weights, weights_layout, pooling)
    return train_feedforward(style_img, content_dir, output, net, config, pick_device(device), resume=resume,
                             resume_steps=resume_steps, on_step=on_step, style_info=describe_input(style))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The Python API's names (brushwork.api re-exports them)


def fast_apply(model: Model | PathLike | StylePick, content: ImageSource, *, strength: float = 1.0,
               preserve_colors: str = "none", image_size: int | None = None, device: str = "auto",
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:  # fmt: skip
    """Stylise ``content`` with a trained feed-forward model (a path, one from :func:`load_model`, or the
    best match of :func:`rank_styles` over a library of fast models)."""
    return fast_apply_many(model, [content], strength=strength, preserve_colors=preserve_colors,
                           image_size=image_size, device=device, max_pixels=max_pixels)[0]  # fmt: skip


def fast_apply_many(model: Model | PathLike | StylePick, contents: Sequence[ImageSource], *, strength: float = 1.0,
                    preserve_colors: str = "none", image_size: int | None = None, device: str = "auto",
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Image.Image]:  # fmt: skip
    """:func:`fast_apply` on several pictures at once: those of the same size (after ``image_size``) run as
    one batch, each result the same as its own run and carrying its own record."""
    settings = Settings(strength=strength, preserve_colors=preserve_colors, image_size=image_size)
    return run(Inputs(model, contents), settings, device=device, max_pixels=max_pixels)


def fast_train(style: ImageSource, content_dir: PathLike, output: PathLike, *, resume: bool = False,
               force: bool = False, backbone: str = "auto", weights: PathLike | None = None,
               weights_layout: str = "torchvision", pooling: str = "max", device: str = "auto",
               on_step: Callable[[TrainStep], None] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
               **config) -> Path:  # fmt: skip
    """Train a feed-forward network for ``style`` on a folder of photos; write ``output`` (.safetensors).

    ``config`` are the fields of :class:`~brushwork.style.feedforward.FastConfig` (``steps``, ``width``,
    ``image_size``, ``style_weight``, …). With ``resume`` the model's own settings are kept and
    ``steps`` may raise the total.
    """
    return train(style, content_dir, output, config_of(FastConfig, config), resume=resume, force=force,
                 backbone=backbone, weights=weights, weights_layout=weights_layout, pooling=pooling, device=device,
                 on_step=on_step, max_pixels=max_pixels, resume_steps=config.get("steps"))  # fmt: skip
