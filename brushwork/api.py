"""The Python API: one function per engine; each returns images carrying their :class:`~brushwork.records.Record`.

``brushwork.save(image, "out.png")`` writes an image with its record (the one exit, also used by
the CLI); ``brushwork.records.record_of(image)`` reads it in memory, ``brushwork.read_record(path)``
from a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict

from PIL import Image

from brushwork.backbones import FeatureExtractor, load_backbone
from brushwork.device import pick_device
from brushwork.media import DEFAULT_MAX_PIXELS, load_image
from brushwork.output import save_output as save
from brushwork.records import Record, attach, describe_input, new_record, read_record
from brushwork.style.clip_guidance import Clip
from brushwork.style.gatys import GatysEngine, Step, StyleConfig

ImageSource = str | os.PathLike | Image.Image


def _open(source: ImageSource, max_pixels: int) -> Image.Image:
    return source.convert("RGB") if isinstance(source, Image.Image) else load_image(source, max_pixels)


def stylize(
    content: ImageSource,
    styles: ImageSource | Sequence[ImageSource] = (),
    *,
    backbone: str | FeatureExtractor = "auto",
    weights: str | os.PathLike | None = None,
    weights_layout: str = "torchvision",
    pooling: str = "max",
    device: str = "auto",
    init_image: ImageSource | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_step: Callable[[Step], None] | None = None,
    start_step: int = 0,
    style_masks: ImageSource | Sequence[ImageSource] | None = None,
    audio: str | os.PathLike | None = None,
    clip_weights: str | os.PathLike | None = None,
    clip: Clip | None = None,
    **options,
) -> Image.Image:
    """Paint ``content`` in the style of ``styles`` (one image or several, mixed by ``style_blend``).

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
    if isinstance(styles, (str, os.PathLike, Image.Image)):
        styles = [styles]
    if isinstance(style_masks, (str, os.PathLike, Image.Image)):
        style_masks = [style_masks]
    config = StyleConfig(**options)
    if init_image is not None and config.init == "content" and not start_step:
        config.init = "image"
    content_img = _open(content, max_pixels)
    style_imgs = [_open(s, max_pixels) for s in styles]
    init_img = _open(init_image, max_pixels) if init_image is not None else None
    mask_imgs = [_open(m, max_pixels) for m in style_masks or []]
    config.validate(len(style_imgs))
    chosen = asdict(config)  # the record keeps what was asked; the sound's mapping goes in its extra
    audio_mapping = _apply_audio_mood(config, audio, len(styles)) if audio is not None else None
    config.validate(len(style_imgs))

    if isinstance(backbone, FeatureExtractor):
        net = backbone
    else:
        net = load_backbone(backbone, weights, weights_layout, pooling)
    dev = pick_device(device)
    if config.style_text and clip is None:
        from brushwork.style.clip_guidance import load_clip

        clip = load_clip(config.clip_model, config.clip_pretrained, clip_weights, dev)
    elif clip is not None:
        clip = clip.to(dev)

    parameters = {"backbone": net.name, "weights": weights, "weights_layout": getattr(net, "layout", None),
                  "pooling": pooling, "resumed_from_step": start_step or None, **chosen}  # fmt: skip
    inputs = {"content": describe_input(content), "styles": [describe_input(s) for s in styles]}
    if init_image is not None:
        inputs["init_image"] = describe_input(init_image)
    if style_masks:
        inputs["style_masks"] = [describe_input(m) for m in style_masks]
    if audio is not None:
        inputs["audio"] = describe_input(audio)
    models = {"backbone": describe_input(weights) if weights else {"name": net.name}}
    if config.style_text:
        parameters["clip_weights"] = clip_weights
        models["clip"] = (
            describe_input(clip_weights) if clip_weights else {"name": clip.name, "weights": clip.pretrained}
        )
    record = new_record("gatys", parameters, inputs=inputs, models=models, seed=config.seed, device=dev)
    engine = GatysEngine(net, dev)
    result = engine.run(content_img, style_imgs, config, init_img, on_step, start_step, mask_imgs or None, clip)
    notes = engine.notes + (audio_mapping["notes"] if audio_mapping else [])
    if notes:
        record.extra["notes"] = notes
    if audio_mapping:
        record.extra["audio_mapping"] = {k: v for k, v in audio_mapping.items() if k != "notes"}
    return attach(result, record.finish())


def _apply_audio_mood(config: StyleConfig, audio: str | os.PathLike, n_styles: int) -> dict:
    """Scale ``config``'s style weight and scale (and, for two styles, set the blend) from a sound file."""
    from brushwork.style.audio import still_settings

    mood = still_settings(audio)
    config.style_weight *= mood["style_weight_factor"]
    config.style_scale *= mood["style_scale_factor"]
    if n_styles == 2 and config.style_blend is None:
        share = mood["second_style_share"]
        config.style_blend = [1 - share, share] if 0 < share < 1 else None
    return mood


__all__ = ["Record", "describe_input", "read_record", "save", "stylize"]
