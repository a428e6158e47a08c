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
from brushwork.style.gatys import GatysEngine, Step, StyleConfig

ImageSource = str | os.PathLike | Image.Image


def _open(source: ImageSource, max_pixels: int) -> Image.Image:
    return source.convert("RGB") if isinstance(source, Image.Image) else load_image(source, max_pixels)


def stylize(
    content: ImageSource,
    styles: ImageSource | Sequence[ImageSource],
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
    **options,
) -> Image.Image:
    """Paint ``content`` in the style of ``styles`` (one image or several, mixed by ``style_blend``).

    ``options`` are the fields of :class:`~brushwork.style.gatys.StyleConfig` (``image_size``,
    ``iterations``, ``style_weight``, ``style_scale``, ``preserve_colors``, ``seed``, …).
    ``start_step`` continues an interrupted run from an intermediate given as ``init_image``.
    """
    if isinstance(styles, (str, os.PathLike, Image.Image)):
        styles = [styles]
    config = StyleConfig(**options)
    if init_image is not None and config.init == "content" and not start_step:
        config.init = "image"
    content_img = _open(content, max_pixels)
    style_imgs = [_open(s, max_pixels) for s in styles]
    init_img = _open(init_image, max_pixels) if init_image is not None else None
    config.validate(len(style_imgs))

    if isinstance(backbone, FeatureExtractor):
        net = backbone
    else:
        net = load_backbone(backbone, weights, weights_layout, pooling)
    dev = pick_device(device)

    parameters = {"backbone": net.name, "weights": weights, "weights_layout": getattr(net, "layout", None),
                  "pooling": pooling, "resumed_from_step": start_step or None, **asdict(config)}  # fmt: skip
    inputs = {"content": describe_input(content), "styles": [describe_input(s) for s in styles]}
    if init_image is not None:
        inputs["init_image"] = describe_input(init_image)
    models = {"backbone": describe_input(weights) if weights else {"name": net.name}}
    record = new_record("gatys", parameters, inputs=inputs, models=models, seed=config.seed, device=dev)
    result = GatysEngine(net, dev).run(content_img, style_imgs, config, init_img, on_step, start_step)
    return attach(result, record.finish())


__all__ = ["Record", "describe_input", "read_record", "save", "stylize"]
