"""Example for the README: Starry Night in the sky, Shipwreck below, on the bundled Tübingen photo.

Prints the time and the colour statistics of each region, and writes docs/masks-tubingen.jpg
(the mask | the output). The sky mask is made here from the photo's blue, feathered: a user would paint it.

    python benchmarks/guided_masks_example.py [--image-size 512] [--iterations 200]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

import brushwork

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "brushwork" / "examples"


def sky_mask(photo: Image.Image) -> Image.Image:
    """White where the photo is sky: blue pixels in the upper part, smoothed."""
    rgb = np.asarray(photo, dtype=np.int16)
    rows = np.arange(rgb.shape[0])[:, None] < 0.62 * rgb.shape[0]
    blue = (rgb[..., 2] - rgb[..., 0] > 50) & (rgb[..., 2] > rgb[..., 1]) & rows
    mask = Image.fromarray((blue * 255).astype(np.uint8), "L")
    return mask.filter(ImageFilter.MedianFilter(9))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--iterations", type=int, default=200)
    args = ap.parse_args()
    photo = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB")
    mask = sky_mask(photo)
    start = time.perf_counter()
    out = brushwork.stylize(photo, [EXAMPLES / "starry_night.jpg", EXAMPLES / "shipwreck.jpg"], style_masks=mask,
                            backbone="lite0", image_size=args.image_size, iterations=args.iterations,
                            style_weight=50.0, style_mask_feather=4.0)  # fmt: skip
    print(f"masked stylize, lite0, {args.image_size} px, {args.iterations} iterations: "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    small_mask = np.asarray(mask.resize(out.size)) > 127
    pixels = np.asarray(out, dtype=np.float32)
    for name, region in (("sky (Starry Night)", small_mask), ("below (Shipwreck)", ~small_mask)):
        print(f"{name}: mean RGB {np.round(pixels[region].mean(0)).astype(int).tolist()}")
    sheet = Image.new("RGB", (out.width * 2, out.height))
    sheet.paste(mask.resize(out.size).convert("RGB"), (0, 0))
    sheet.paste(out, (out.width, 0))
    sheet.save(ROOT / "docs" / "masks-tubingen.jpg", quality=88)


if __name__ == "__main__":
    main()
