"""The Python API: ``brushwork.stylize(content, styles, ...)`` returns a PIL image.

The returned image's ``info["parameters"]`` holds everything needed to repeat the run; the CLI
writes it into the PNG.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from PIL import Image

from brushwork.backbones import FeatureExtractor, load_backbone
from brushwork.device import pick_device
from brushwork.images import DEFAULT_MAX_PIXELS, load_image
from brushwork.style.clip_guidance import Clip
from brushwork.style.gatys import GatysEngine, Step, StyleConfig

ImageSource = str | os.PathLike | Image.Image


def describe_input(source: ImageSource) -> dict:
    """Name and hash of an input, so the parameters say exactly which file was used."""
    if isinstance(source, Image.Image):
        return {"name": "<in-memory image>", "size": list(source.size)}
    path = Path(source)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return {"name": path.name, "sha256": digest}


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
    Adjustments made on the way (a mask resized to the output) are listed in the parameters' ``notes``.
    ``audio`` (a sound file) sets the style weight and scale (and the mix of two styles) from the clip's
    mood: a creative mapping (``brushwork.style.audio.still_settings``), recorded as ``audio_mapping``.
    ``style_text`` (an option) paints by words with a CLIP objective, alone or beside ``styles``: CLIP is
    ``clip`` if given, else ``clip_model``/``clip_pretrained`` from the cache, or ``clip_weights`` (a file).
    """
    if isinstance(styles, (str, os.PathLike, Image.Image)):
        styles = [styles]
    config = StyleConfig(**options)
    audio_mapping = _apply_audio_mood(config, audio, len(styles)) if audio is not None else None
    if init_image is not None and config.init == "content" and not start_step:
        config.init = "image"
    content_img = _open(content, max_pixels)
    style_imgs = [_open(s, max_pixels) for s in styles]
    init_img = _open(init_image, max_pixels) if init_image is not None else None
    if isinstance(style_masks, (str, os.PathLike, Image.Image)):
        style_masks = [style_masks]
    mask_imgs = [_open(m, max_pixels) for m in style_masks or []]
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
    engine = GatysEngine(net, dev)
    result = engine.run(content_img, style_imgs, config, init_img, on_step, start_step, mask_imgs or None, clip)

    from brushwork import __version__

    result.info["parameters"] = {
        "brushwork": __version__,
        "engine": "gatys",
        "content": describe_input(content),
        "styles": [describe_input(s) for s in styles],
        "init_image": describe_input(init_image) if init_image is not None else None,
        "backbone": net.name,
        "weights": Path(weights).name if weights else "default",
        "weights_layout": getattr(net, "layout", None),
        "pooling": pooling,
        "device": dev.type,
        "resumed_from_step": start_step or None,
        "style_masks": [describe_input(m) for m in style_masks] if style_masks else None,
        "audio": describe_input(audio) if audio is not None else None,
        "clip": {"model": clip.name, "weights": clip.pretrained} if config.style_text else None,
        "audio_mapping": audio_mapping,
        "notes": engine.notes + (audio_mapping["notes"] if audio_mapping else []),
        **asdict(config),
    }
    return result


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
