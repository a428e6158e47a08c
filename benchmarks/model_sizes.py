"""Sizes of trained models with their training state and slimmed (``brushwork fast|adain slim``).

Trains each engine for one step at its default architecture (the size does not depend on the steps)
on a few synthetic photos with the offline Lite0 backbone, then slims it. Prints one line per model.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import brushwork
from brushwork.api import slim_model


def photos(folder: Path, count: int = 4) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        content, styles = photos(tmp / "photos"), photos(tmp / "styles")
        small = dict(steps=1, image_size=64, batch_size=1, backbone="lite0")
        models = {
            "fast (width 32, 5 residual blocks)": brushwork.fast_train(styles / "0.png", content,
                                                                       tmp / "fast.safetensors", **small),
            "fast (README's CPU recipe: width 16, 3 blocks)": brushwork.fast_train(
                styles / "0.png", content, tmp / "fast16.safetensors", width=16, residual_blocks=3, **small),
            "adain (lite0, decoder width 256)": brushwork.adain_train(content, styles, tmp / "adain.safetensors",
                                                                      **small),
        }  # fmt: skip
        for name, path in models.items():
            slim = slim_model(path, tmp / f"{path.stem}-slim.safetensors")
            full, small_size = os.path.getsize(path), os.path.getsize(slim)
            print(f"{name}: {full / 1e6:.2f} MB with training state, {small_size / 1e6:.2f} MB slim")


if __name__ == "__main__":
    main()
