"""What every pipeline takes from the same place: opening inputs, trained style models and the account of a
style picked by words (the choice of protection is ``brushwork.saving``'s). Pipelines import this, never each
other.

Loading it sizes torch's CPU threads to the cores free now (``brushwork/threads.py``, #21): whatever loads
an engine, the API or a pipeline alone, starts with as many threads as it can run."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image

from brushwork import backbones, networks, threads
from brushwork.backbones import BACKBONES
from brushwork.checkpoints import load_meta
from brushwork.device import pick_device
from brushwork.errors import BrushworkError
from brushwork.media import load_image
from brushwork.records import Record, describe_input
from brushwork.saving import PathLike
from brushwork.settings import Checked, check, setting
from brushwork.style import adain, color, feedforward, magenta
from brushwork.style.style_library import StylePick

ImageSource = str | os.PathLike | Image.Image
FAST_KIND, ADAIN_KIND = "fast-style", "adain"
#: The model name that applies Magenta's arbitrary network (brushwork.style.magenta) instead of a decoder file.
MAGENTA_MODEL = "magenta"

threads.fit()


# The settings several engines share: the same name, help and range on each.
#: Sides the photos may be resized to before painting (``image_size``).
MIN_SIZE, MAX_SIZE = 16, 16384


def strength_setting(what: str = "the photo"):
    return setting(1.0, help=f"0 = {what}, 1 = full style", low=0, high=1, basic=True, aliases=("--alpha",))


def preserve_colors_setting():
    return setting("none", help="keep the photo's colours: luminance transfer, or colour statistics matched",
                   choices=color.MODES, basic=True)  # fmt: skip


def style_blend_setting():
    return setting(None, help="how much of each style, e.g. 3,7 for two styles (normalised)", basic=True,
                   aliases=("--style-weights",))  # fmt: skip


def backbone_setting(what: str):
    return setting("auto", help=f"the feature network {what} (auto: the model's own)", choices=BACKBONES)


def training_backbone_setting():
    return setting("auto", help="the feature network to train with: auto/vgg19 = VGG-19 (torchvision's weights if "
                   "cached, else the original ones offline: vgg19-caffe-q8); lite0 = small and fast", choices=BACKBONES,
                   basic=True)  # fmt: skip


def pooling_setting():
    from brushwork.backbones.vgg import POOLINGS

    return setting("max", help="VGG's pooling layers", choices=POOLINGS)


class TrainingSettings(Checked):
    """What a trainer's ``TrainSettings`` share: the engine's config (its fields, ranges and own checks)
    plus the feature network to train with, as one settings class for the studio's form. Listed first
    among the bases, so that its ``validate`` is the one used."""

    config_cls: ClassVar[type]

    def validate(self, n_styles: int | None = None) -> None:
        self.config().validate()  # the trainer's own checks first: the words the CLI gives
        check(self)  # then the choices (the backbone's)

    def config(self):
        """The engine's own config (its fields only, without the backbone's)."""
        return self.config_cls(**{f.name: getattr(self, f.name) for f in fields(self.config_cls)})


def config_of(config_cls, values: dict):
    """``config_cls(**values)``, an unknown keyword named in one line."""
    try:
        return config_cls(**values)
    except TypeError as exc:
        raise BrushworkError(f"{config_cls.__name__}: {exc}") from exc


def open_image(source: ImageSource, max_pixels: int) -> Image.Image:
    return source.convert("RGB") if isinstance(source, Image.Image) else load_image(source, max_pixels)


def as_list(items) -> list:
    return [items] if isinstance(items, (str, os.PathLike, Image.Image)) else list(items)


def described(sources) -> list[dict]:
    return [describe_input(s) for s in sources]


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


def picked(choice, kind: str) -> tuple[StylePick | None, object]:
    """A :class:`StylePick` stands for its best match (a path); anything else for itself."""
    if not isinstance(choice, StylePick):
        return None, choice
    if choice.kind != kind:
        raise BrushworkError(f"this style library was ranked for {choice.kind!r}; rank it with kind={kind!r}")
    return choice, choice.best.path


def load_model(path: PathLike | StylePick, *, backbone: str = "auto", weights: PathLike | None = None,
               weights_layout: str = "torchvision", pooling: str = "max", device: str = "auto") -> Model:  # fmt: skip
    """A fast or AdaIN model, ready for ``fast_apply``/``adain_apply`` (and for several images); or the
    best match of a ``rank_styles`` ranking of fast models, remembering the ranking for records."""
    if str(path) == MAGENTA_MODEL:
        return _magenta_model()
    pick, path = picked(path, "fast")
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
    net = magenta.MagentaNetwork()
    files = {role: describe_input(path) for role, path in net.files.items()}
    described = {"name": magenta.NAME, "files": files, "credit": magenta.CREDIT}
    return Model(ADAIN_KIND, Path(MAGENTA_MODEL), net, {"kind": ADAIN_KIND, "network": magenta.NAME},
                 torch.device("cpu"), described)  # fmt: skip


def paint_any_style(model: Model, contents: list[Image.Image], styles: list[Image.Image],
                    weights: list[float] | None, strength: float, mask: Image.Image | None, preserve_colors: str,
                    image_size: int | None, style_size: int | None) -> list[Image.Image]:  # fmt: skip
    """The one path for every any-style picture (alone, batched or a video frame): an AdaIN decoder, or
    Magenta's network under the same contract."""
    if isinstance(model.net, magenta.MagentaNetwork):
        return magenta.apply_magenta(model.net, contents, styles, weights, strength, mask, preserve_colors,
                                     image_size, style_size)  # fmt: skip
    return adain.apply_adain(model.net, contents, styles, weights, strength, mask, preserve_colors, image_size,
                             style_size, model.device)  # fmt: skip


def _file_key(path: PathLike | None) -> tuple | str | None:
    """A file's identity for the network cache: a changed file is loaded afresh."""
    if path is None or not Path(path).is_file():  # None, or a name such as MAGENTA_MODEL
        return None if path is None else str(path)
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size


def cached_backbone(name: str = "auto", weights: PathLike | None = None, weights_layout: str = "torchvision",
                    pooling: str = "max") -> backbones.FeatureExtractor:  # fmt: skip
    """``load_backbone``'s network, kept between calls in an LRU bounded by the memory weights take
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


def model_of(model: Model | PathLike | StylePick, kind: str, **load) -> Model:
    """``model`` loaded (unless it is), refused unless it is of ``kind``."""
    loaded = model if isinstance(model, Model) else load_model(model, **load)
    if loaded.kind != kind:
        verb = "fast apply" if kind == FAST_KIND else "adain apply"
        raise BrushworkError(f"{loaded.path}: is a {loaded.kind!r} model; '{verb}' needs a {kind!r} model")
    return loaded


def note_pick(record: Record, pick: StylePick | None) -> Record:
    """Keep a text-chosen style's account (text, choice, score, runners-up) in the record."""
    if pick is not None:
        record.extra["style_pick"] = pick.described()
        record.models["clip"] = pick.clip
        if pick.notes:
            record.extra.setdefault("notes", []).extend(pick.notes)
    return record
