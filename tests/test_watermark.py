"""The invisible watermark: the payload round-trips, survives cheap attacks, and stays silent on clean images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork.errors import BrushworkError

pytest.importorskip("imwatermark")
pytest.importorskip("onnxruntime")

from brushwork.protect.robustness import ATTACKS, psnr, synthetic_images  # noqa: E402
from brushwork.protect.watermark import MAX_WORK_ID, chase_decode, crc, detect, embed, parse_payload, payload_bits  # noqa: E402
from tests.conftest import SHARED  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"


def example(name: str, size: int = 480) -> Image.Image:
    """A bundled picture (always present), at a small size to keep the tests fast."""
    image = Image.open(EXAMPLES / name).convert("RGB")
    return image.resize((size, round(size * image.height / image.width)), Image.BICUBIC)


def synthetic_painting(seed: int) -> Image.Image:
    """Smooth colour fields and blobs: an unmarked picture unlike the photos."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:360, 0:480] / 480
    array = np.stack([np.sin(6 * x + c) * np.cos(5 * y - c) for c in (0, 1, 2)], -1) * 80 + 128
    for _ in range(12):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.75), rng.uniform(0.03, 0.15)
        array[(x - cx) ** 2 + (y - cy) ** 2 < r**2] = rng.uniform(0, 255, 3)
    return Image.fromarray(np.clip(array + rng.normal(0, 6, array.shape), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def marked():
    image = example("tubingen.jpg")
    return image, embed(image, 0x5A17C)


def test_payload_carries_id_and_checksum():
    bits = payload_bits(123456)
    assert len(bits) == 32
    assert parse_payload(bits) == (123456, True)
    flipped = list(bits)
    flipped[5] ^= 1
    assert parse_payload(flipped)[1] is False  # the CRC catches any single flipped bit
    assert crc(0) == 0 and crc(1) != crc(2)
    # Chase decoding: a wrong bit that the decoder was unsure of is repaired, a confident one is not.
    logits = np.where(np.array(bits) == 1, 9.0, -9.0)
    logits[5] = -logits[5] * 0.05
    assert chase_decode(logits) == (bits, True)
    logits[5] *= 200  # still wrong, now confidently
    assert chase_decode(logits)[1] is False
    with pytest.raises(BrushworkError):
        payload_bits(MAX_WORK_ID + 1)


def test_mark_is_invisible_and_keeps_size(marked):
    image, out = marked
    assert out.size == image.size and out.mode == "RGB"
    assert psnr(image, out) > 38


@pytest.mark.parametrize("attack", ["none", "jpeg-75", "resize-0.5", "crop-90%", "brightness-20%", "rotate-2deg"])
def test_mark_survives(marked, attack):
    image, out = marked
    reading = detect(ATTACKS[attack](out), original_size=image.size)
    assert reading.work_id == 0x5A17C, reading
    assert reading.crc_ok


def test_a_crop_without_its_record_reads_with_crop_guesses():
    out = embed(example("shipwreck.jpg"), 0x5A17C)
    crop = ATTACKS["crop-75%"](out)
    assert detect(crop).work_id is None  # read at the crop's own scale: lost
    reading = detect(crop, crop_guesses=(0.9, 0.75))
    assert reading.work_id == 0x5A17C and reading.scale.startswith("crop-")


def test_alpha_is_kept():
    image = example("starry_night.jpg", 400).convert("RGBA")
    image.putalpha(Image.new("L", image.size, 200))
    out = embed(image, 7)
    assert out.mode == "RGBA" and out.getchannel("A").getextrema() == (200, 200)
    assert detect(out).work_id == 7


def test_clean_images_give_no_id():
    clean = [example(name) for name in ("tubingen.jpg", "starry_night.jpg", "shipwreck.jpg")]
    clean += [synthetic_painting(s) for s in range(2)] + synthetic_images(4, seed=3)
    shared = SHARED / "images" / "content"
    if shared.exists():
        clean += [Image.open(p).convert("RGB") for p in sorted(shared.iterdir())[:3]]
    for image in clean:
        assert detect(image).work_id is None
