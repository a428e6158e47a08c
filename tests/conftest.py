"""Shared fixtures: tiny random networks, synthetic images, and the ../shared folder when present."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from brushwork.backbones.base import FeatureExtractor

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# Tests never touch the network, whatever machine they run on.
os.environ.setdefault("BRUSHWORK_OFFLINE", "1")
# Outputs are registered and keys looked up in the user's folders: tests keep theirs to themselves.
_SANDBOX = Path(tempfile.mkdtemp(prefix="brushwork-tests-"))
os.environ["BRUSHWORK_DATA_DIR"] = str(_SANDBOX / "data")
os.environ["BRUSHWORK_CONFIG_DIR"] = str(_SANDBOX / "config")
torch.set_num_threads(min(2, torch.get_num_threads()))
# A fixed count whatever the machine's load (brushwork.threads): results repeat exactly within a test.
os.environ.setdefault("BRUSHWORK_THREADS", str(torch.get_num_threads()))


def import_open_clip():
    """open_clip, or None where it is not installed. Where no torchvision is installed at all (no build
    exists for this CPU torch), open_clip is imported beside ``tests/shims/torchvision``, which defines
    only the names open_clip imports and refuses to run any of them (brushwork never calls them)."""
    import importlib.util
    import sys

    if importlib.util.find_spec("open_clip") is None:
        return None
    if importlib.util.find_spec("torchvision") is None:
        sys.path.append(str(Path(__file__).resolve().parent / "shims"))  # after site-packages: never in front
    try:
        import open_clip
    except (ImportError, RuntimeError):  # a torchvision built for another torch fails as a RuntimeError
        return None
    return open_clip


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


class TinyNet(FeatureExtractor):
    """A three-stage random conv net with VGG-like names: fast enough for engine tests."""

    name = "tiny"
    layer_names = ("relu1_1", "relu2_1", "relu3_1")
    content_layers = ("relu2_1",)
    style_layers = ("relu1_1", "relu2_1", "relu3_1")

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.convs = nn.ModuleList(
            [nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)]
        )

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        return image - 0.5

    def spatial_ops(self):
        for i, name in enumerate(self.layer_names):
            yield name, ([(2, 2, 0)] if i else []) + [(3, 1, 1)]

    def iter_layers(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        for i, (name, conv) in enumerate(zip(self.layer_names, self.convs, strict=True)):
            if i:
                x = nn.functional.avg_pool2d(x, 2)
            x = torch.relu(conv(x))
            yield name, x


@pytest.fixture
def tiny_net() -> TinyNet:
    return TinyNet().freeze()


def make_image(width: int = 48, height: int = 32, seed: int = 0, kind: str = "gradient") -> Image.Image:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    elif kind == "stripes":
        arr = np.zeros((height, width, 3), np.uint8)
        arr[:, ::4] = (255, 60, 20)
        arr[:, 1::4] = (20, 60, 255)
    else:
        y, x = np.mgrid[0:height, 0:width]
        arr = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), np.full_like(x, 128)], -1).astype(
            np.uint8
        )
    return Image.fromarray(arr, "RGB")


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    """A content photo and two style images on disk."""
    paths = {}
    for name, kind, seed in [("content", "gradient", 0), ("style", "stripes", 1), ("style2", "noise", 2)]:
        paths[name] = tmp_path / f"{name}.png"
        make_image(48, 32, seed, kind).save(paths[name])
    return paths
