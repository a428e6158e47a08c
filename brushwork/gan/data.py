"""Training data for the GANs: a folder of images (class = sub-folder when conditional) or Fashion-MNIST.

Everything is decoded once into a uint8 tensor (N, C, R, R): the datasets a GAN is trained on at
32-128 px fit in memory, and a step then costs no decoding.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from brushwork.errors import BrushworkError
from brushwork.gan.nets import RESOLUTIONS
from brushwork.media import load_image
from brushwork.training import list_images

FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
FASHION_FILES = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
#: Where Debian's dataset-fashion-mnist package puts the files.
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class Dataset:
    images: torch.Tensor  # uint8 (N, C, R, R)
    labels: torch.Tensor  # int64 (N,), zeros when unconditional
    class_names: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    @property
    def channels(self) -> int:
        return self.images.shape[1]


def load_dataset(source: str, conditional: bool, resolution: int | None = None, channels: int | None = None) -> Dataset:
    """``source``: a folder, a folder of Fashion-MNIST IDX files, or ``fashion-mnist``."""
    path = Path(source)
    if source == "fashion-mnist" or (path.is_dir() and (path / "train-images-idx3-ubyte.gz").exists()):
        return load_fashion_mnist(None if source == "fashion-mnist" else path, resolution or 32)
    return load_folder(path, conditional, resolution, channels)


def load_folder(root: Path, conditional: bool, resolution: int | None, channels: int | None) -> Dataset:
    if not root.is_dir():
        raise BrushworkError(f"{root}: data folder not found")
    skipped: list[str] = []  # unreadable folders and images, each with why
    if conditional:
        listed = {p: list_images(p, skipped) for p in sorted(root.iterdir()) if p.is_dir()}
        classes = [p for p, files in listed.items() if files]
        if len(classes) < 2:
            raise BrushworkError(f"{root}: --conditional needs at least two sub-folders of images (one per class)")
        groups = [(i, listed[p]) for i, p in enumerate(classes)]
        names = [p.name for p in classes]
    else:
        groups, names = [(0, list_images(root, skipped))], []
    if not any(files for _, files in groups):
        raise BrushworkError(f"{root}: no images found" + (f" ({skipped[0]})" if skipped else ""))
    loaded, labels = [], []
    for label, files in groups:
        for file in files:
            try:
                loaded.append(load_image(file))
                labels.append(label)
            except BrushworkError as exc:
                skipped.append(str(exc))
    if len(loaded) < 2:
        raise BrushworkError(f"{root}: fewer than two readable images ({len(skipped)} unreadable)")
    if resolution is None:
        # The largest supported size the typical image can fill without upscaling.
        median = float(np.median([min(im.size) for im in loaded]))
        resolution = max([r for r in RESOLUTIONS if r <= median] or [RESOLUTIONS[0]])
    if resolution not in RESOLUTIONS:
        raise BrushworkError(f"resolution must be one of {', '.join(map(str, RESOLUTIONS))}")
    if channels is None:
        channels = 1 if all(_is_grey(im) for im in loaded) else 3
    mode = "L" if channels == 1 else "RGB"
    arrays = [np.asarray(ImageOps.fit(im, (resolution, resolution), Image.Resampling.LANCZOS).convert(mode))
              for im in loaded]  # fmt: skip
    images = torch.from_numpy(np.stack(arrays)).reshape(len(arrays), resolution, resolution, channels)
    return Dataset(images.permute(0, 3, 1, 2).contiguous(), torch.tensor(labels), names, skipped, str(root))


def _is_grey(img: Image.Image) -> bool:
    arr = np.asarray(img)
    return bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())


def load_fashion_mnist(folder: Path | None, resolution: int = 32, split: str = "train") -> Dataset:
    """Fashion-MNIST's 60k training (or 10k test, ``split="t10k"``) images, resized from 28 to ``resolution`` px."""
    if split not in ("train", "t10k"):
        raise BrushworkError("split must be train or t10k")
    folder = folder or _find_fashion_mnist(split)
    images = read_idx(folder / f"{split}-images-idx3-ubyte.gz", 3)
    labels = read_idx(folder / f"{split}-labels-idx1-ubyte.gz", 1)
    if len(images) != len(labels):
        raise BrushworkError(f"{folder}: image and label files disagree in length")
    x = torch.from_numpy(images).unsqueeze(1).float()
    x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return Dataset(x.round().clamp(0, 255).to(torch.uint8), torch.from_numpy(labels.astype(np.int64)),
                   list(FASHION_CLASSES), [], str(folder))  # fmt: skip


def read_idx(path: Path, dims: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as fh:
            magic, *shape = struct.unpack(">" + "I" * (dims + 1), fh.read(4 * (dims + 1)))
            if magic != 0x800 + dims:
                raise BrushworkError(f"{path}: not an IDX file with {dims} dimensions")
            data = np.frombuffer(fh.read(), dtype=np.uint8).copy()  # writable, for torch
    except (OSError, EOFError, struct.error) as exc:
        raise BrushworkError(f"{path}: unreadable ({exc})") from exc
    if data.size != int(np.prod(shape)):
        raise BrushworkError(f"{path}: truncated")
    return data.reshape(shape)


def _find_fashion_mnist(split: str) -> Path:
    """Debian's copy, else the torch cache folder; never a download (the data's own host is plain http)."""
    names = [name for name in FASHION_FILES if name.startswith(split)]
    cache = Path(torch.hub.get_dir()) / "brushwork" / "fashion-mnist"
    for folder in (FASHION_DEBIAN, cache):
        if all((folder / name).exists() for name in names):
            return folder
    raise BrushworkError(
        f"Fashion-MNIST not found: install Debian's package dataset-fashion-mnist (apt install "
        f"dataset-fashion-mnist, files in {FASHION_DEBIAN}), or put the four *-ubyte.gz files from "
        f"github.com/zalandoresearch/fashion-mnist in a folder and pass that folder instead of 'fashion-mnist'"
    )
