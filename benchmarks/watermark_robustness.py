"""Watermark robustness: embed, attack, decode; and false positives on images that were never marked.

    python benchmarks/watermark_robustness.py [--images DIR ...] [--synthetic 40]

Prints, per attack, the mean bit accuracy, the detection rate (the right work ID came back) and
wrong IDs; the mean PSNR/SSIM of the marked images; the false-positive rate on unmarked images
(the originals, each also put through every attack, and synthetic flat/gradient/noise/stripe
images); and the time to embed and to detect at a few sizes. Default images: ../shared/images.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from brushwork.protect.robustness import ATTACKS, false_positives, self_test, synthetic_images
from brushwork.protect.watermark import detect, embed

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", type=Path, default=[SHARED])
    parser.add_argument("--synthetic", type=int, default=40)
    args = parser.parse_args()
    files = sorted(p for d in args.images for p in d.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"no images in {', '.join(map(str, args.images))}; pass --images DIR")
    images = [Image.open(p).convert("RGB") for p in files]
    print(f"{len(images)} images from {', '.join(map(str, args.images))}")

    start = time.perf_counter()
    result = self_test(images)
    print(f"\nmarked: PSNR {result.psnr:.1f} dB, SSIM {result.ssim:.4f} (mean of {result.images})")
    print("| attack | bit accuracy | detected | wrong ID |\n|---|---|---|---|")
    for r in result.attacks:
        print(
            f"| {r.attack} | {r.bit_accuracy:.3f} | {r.detected}/{r.images} ({r.detection_rate:.0%}) | {r.wrong_id} |"
        )
    print(f"({time.perf_counter() - start:.0f} s)")

    attacked_clean = [ATTACKS[name](image) for image in images for name in ATTACKS if name != "none"]
    synthetic = synthetic_images(args.synthetic)
    for label, pool in (("originals", images), ("originals, attacked", attacked_clean), ("synthetic", synthetic)):
        hits, count, confidences = false_positives(pool)
        print(f"false positives, {label}: {hits}/{count}; decoder confidence median {np.median(confidences):.2f}, "
              f"max {max(confidences):.2f}")  # fmt: skip

    base = images[0] if images else synthetic[0]
    for side in (512, 1024, 4096):
        image = base.resize((side, round(side * base.height / base.width)), Image.BICUBIC)
        t0 = time.perf_counter()
        marked = embed(image, 12345)
        t1 = time.perf_counter()
        found = detect(marked).work_id
        t2 = time.perf_counter()
        size = f"{image.size[0]}x{image.size[1]}"
        print(f"{size}: embed {t1 - t0:.2f} s, detect {t2 - t1:.2f} s, read back {found == 12345}")


if __name__ == "__main__":
    main()
