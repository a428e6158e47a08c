"""The watermark self-test: mark images, attack them the ways the web does, and count what survives.

Shared by ``brushwork verify --self-test`` and ``benchmarks/watermark_robustness.py``.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

from brushwork.protect.watermark import MAX_WORK_ID, Detection, detect, embed, payload_bits


def _encode(image: Image.Image, fmt: str, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _resize(image: Image.Image, factor: float) -> Image.Image:
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.BICUBIC)


def _crop(image: Image.Image, keep: float) -> Image.Image:
    """The central ``keep`` fraction of each side."""
    w, h = image.size
    cw, ch = round(w * keep), round(h * keep)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def _screenshot(image: Image.Image) -> Image.Image:
    """What a screenshot of a web page does: shown at 80 %, re-rendered at 125 % (HiDPI), saved as JPEG 85."""
    return _encode(_resize(_resize(image, 0.8), 1.25), "JPEG", 85)


#: name -> attack. The names are the rows of the benchmark table.
ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "none": lambda im: im,
    "jpeg-90": lambda im: _encode(im, "JPEG", 90),
    "jpeg-75": lambda im: _encode(im, "JPEG", 75),
    "jpeg-50": lambda im: _encode(im, "JPEG", 50),
    "webp-80": lambda im: _encode(im, "WEBP", 80),
    "resize-0.75": lambda im: _resize(im, 0.75),
    "resize-0.5": lambda im: _resize(im, 0.5),
    "crop-90%": lambda im: _crop(im, 0.9),
    "crop-75%": lambda im: _crop(im, 0.75),
    "brightness+20%": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
    "brightness-20%": lambda im: ImageEnhance.Brightness(im).enhance(0.8),
    "contrast+20%": lambda im: ImageEnhance.Contrast(im).enhance(1.2),
    "contrast-20%": lambda im: ImageEnhance.Contrast(im).enhance(0.8),
    "rotate-2deg": lambda im: im.rotate(2, Image.BICUBIC),
    "screenshot": _screenshot,
}


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: Image.Image, b: Image.Image) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(a), np.asarray(b), channel_axis=2, data_range=255))


@dataclass
class AttackResult:
    attack: str
    images: int = 0
    bit_accuracy: float = 0.0  # mean over images
    detected: int = 0  # the right ID came back
    wrong_id: int = 0  # an ID came back, but not the one embedded

    @property
    def detection_rate(self) -> float:
        return self.detected / self.images if self.images else 0.0


@dataclass
class SelfTest:
    attacks: list[AttackResult]
    psnr: float  # mean over images, marked vs original
    ssim: float
    images: int


def self_test(images: Iterable[Image.Image], attacks: Iterable[str] | None = None, seed: int = 0,
              on_image: Callable[[int], None] | None = None) -> SelfTest:  # fmt: skip
    """Mark each image with a random ID, run each attack, decode (with the original size, as ``verify`` does)."""
    names = list(attacks or ATTACKS)
    rng = random.Random(seed)
    results = {name: AttackResult(name) for name in names}
    psnrs, ssims = [], []
    for index, image in enumerate(images):
        image = image.convert("RGB")
        work_id = rng.randint(0, MAX_WORK_ID)
        marked = embed(image, work_id)
        psnrs.append(psnr(image, marked))
        ssims.append(ssim(image, marked))
        expected = payload_bits(work_id)
        for name in names:
            reading: Detection = detect(ATTACKS[name](marked), original_size=image.size)
            result = results[name]
            result.images += 1
            result.bit_accuracy += sum(a == b for a, b in zip(reading.bits, expected, strict=True)) / len(expected)
            result.detected += reading.work_id == work_id
            result.wrong_id += reading.work_id is not None and reading.work_id != work_id
        if on_image:
            on_image(index + 1)
    for result in results.values():
        result.bit_accuracy /= max(1, result.images)
    return SelfTest(list(results.values()), float(np.mean(psnrs)), float(np.mean(ssims)), len(psnrs))


def false_positives(images: Iterable[Image.Image]) -> tuple[int, int, list[float]]:
    """(images where an ID was reported, images read, each image's confidence) over unmarked images."""
    hits, count, confidences = 0, 0, []
    for image in images:
        reading = detect(image)
        hits += reading.work_id is not None
        count += 1
        confidences.append(reading.confidence)
    return hits, count, confidences


def synthetic_images(count: int, seed: int = 0, size: tuple[int, int] = (512, 384)) -> list[Image.Image]:
    """Clean images with no mark: flat colours, gradients, noise, stripes (the decoder's easiest traps)."""
    rng = np.random.default_rng(seed)
    w, h = size
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            array = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (h, w, 3))
        elif kind == 1:
            ramp = (
                np.linspace(0, 1, w)[None, :, None] * rng.uniform(0, 255, 3)
                + rng.uniform(0, 255, 3) * (np.linspace(0, 1, h)[:, None, None])
            )
            array = np.clip(ramp / 2, 0, 255)
        elif kind == 2:
            array = rng.normal(128, rng.uniform(5, 60), (h, w, 3))
        else:
            period = rng.integers(2, 40)
            array = np.broadcast_to(((np.arange(w) // period) % 2 * 255)[None, :, None], (h, w, 3))
        out.append(Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)))
    return out
