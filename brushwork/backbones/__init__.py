"""Feature extractors by name, and which weights to give them.

``auto`` picks VGG-19 when its torchvision weights are in the torch cache or can be fetched, and
falls back to the offline EfficientNet-Lite0 with a one-line notice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from brushwork.backbones.base import FeatureExtractor
from brushwork.backbones.lite0 import EfficientNetLite0, load_lite0
from brushwork.backbones.vgg import LAYOUTS, URLS, VGG, vgg_depth_of
from brushwork.backbones.weights import fetch_state_dict, load_state_dict_file
from brushwork.errors import BrushworkError

BACKBONES = ("auto", "vgg19", "vgg16", "lite0")

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
        if name == "auto":
            depth = vgg_depth_of(state)
            if depth is None:
                if "_conv_stem.weight" in state:
                    return load_lite0(weights)
                raise BrushworkError(f"{weights}: not VGG-16, VGG-19 or EfficientNet-Lite0 weights")
        else:
            depth = int(name[3:])
        return VGG(depth, pooling, layout).load_weights(state, str(weights)).freeze()
    if name == "auto":
        try:
            state = fetch_state_dict(URLS[19])
        except BrushworkError:
            notice(
                "VGG-19 weights are not cached and could not be fetched; using the offline EfficientNet-Lite0 "
                "backbone (for VGG-19: run once with network access, or pass --weights vgg19-dcbb9e9d.pth)"
            )
            return load_lite0()
        return VGG(19, pooling, "torchvision").load_weights(state, "torchvision VGG-19").freeze()
    depth = int(name[3:])
    state = fetch_state_dict(URLS[depth])
    return VGG(depth, pooling, "torchvision").load_weights(state, f"torchvision VGG-{depth}").freeze()
