"""Would a mark on outputs under 128 px be honest? How often one reads back at small sides.

Each test picture (the bundled ones and, when present, ../shared/images) is shrunk to a long side of
64 ... 256 px and marked with a random work ID as the output exit would (``embed_checked``, with the
original size known when reading). Prints, per side, the share that reads back as written (lossless),
after JPEG 90 and WebP 90 (what sharing a picture usually does), and after JPEG 75.

    PYTHONPATH=. python benchmarks/watermark_small.py [--images ../shared/images]
"""

from __future__ import annotations

import argparse
import io
import random
from pathlib import Path

from PIL import Image

from brushwork.protect import watermark

ROOT = Path(__file__).resolve().parents[1]
SIDES = (64, 96, 128, 192, 256)


def pictures(shared: Path) -> list[Image.Image]:
    paths = sorted((ROOT / "brushwork" / "examples").glob("*.jpg"))
    if shared.exists():
        paths += sorted(p for p in shared.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    return [Image.open(p).convert("RGB") for p in paths]


def shrink(image: Image.Image, side: int) -> Image.Image:
    scale = side / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)


def reencode(image: Image.Image, fmt: str, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=quality)
    return Image.open(buffer).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images", help="more test pictures")
    parser.add_argument("--sides", default=",".join(map(str, SIDES)), help="long sides to try, e.g. 32,48,64")
    args = parser.parse_args()
    images = pictures(args.images)
    rng = random.Random(0)
    print(f"{len(images)} pictures")
    print(f"{'side':>5} {'lossless':>9} {'JPEG 90':>8} {'WebP 90':>8} {'JPEG 75':>8}")
    for side in (int(v) for v in args.sides.split(",")):
        counts = [0, 0, 0, 0]
        for image in images:
            small = shrink(image, side)
            work_id = rng.randint(1, watermark.MAX_WORK_ID)
            marked, _ = watermark.embed_checked(small, work_id)
            copies = [marked, reencode(marked, "JPEG", 90), reencode(marked, "WEBP", 90), reencode(marked, "JPEG", 75)]
            for i, copy in enumerate(copies):
                counts[i] += watermark.detect(copy, small.size).work_id == work_id
        print(f"{side:>5} " + " ".join(f"{c / len(images):>8.0%}" for c in counts))


if __name__ == "__main__":
    main()
