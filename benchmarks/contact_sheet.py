"""Stylise each shared photo with each shared painting and paste the results into one sheet.

    python benchmarks/contact_sheet.py --shared ../shared --out docs/contact-sheet.jpg [--backbone lite0]

Prints the seconds each image took. Inputs come from ../shared (not bundled in the product). Each
result is also kept as a PNG beside the sheet; a rerun reuses those unless --redo is given. Each
result is also kept as a PNG beside the sheet; a rerun reuses those unless --redo is given.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

import brushwork
from brushwork.media import load_image

CONTENT = ["tubingen.jpg", "golden_gate.jpg"]
STYLES = ["starry_night.jpg", "shipwreck.jpg", "woman-with-hat-matisse.jpg"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--out", default="docs/contact-sheet.jpg")
    parser.add_argument("--backbone", default="lite0")
    parser.add_argument("--weights")
    parser.add_argument("--weights-layout", default="torchvision")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--thumb", type=int, default=320, help="width of each tile in the sheet")
    parser.add_argument("--redo", action="store_true", help="stylise again even where a result PNG exists")
    args = parser.parse_args()
    shared = Path(args.shared) / "images"

    rows = []
    for content in CONTENT:
        photo = load_image(shared / "content" / content)
        row = [photo]
        for style in STYLES:
            tile = Path(args.out).with_name(f"{Path(content).stem}-{Path(style).stem}-{args.backbone}.png")
            if tile.exists() and not args.redo:
                row.append(Image.open(tile).convert("RGB"))
                continue
            start = time.perf_counter()
            out = brushwork.stylize(
                photo,
                [shared / "style" / style],
                backbone=args.backbone,
                weights=args.weights,
                weights_layout=args.weights_layout,
                image_size=args.image_size,
                iterations=args.iterations,
            )
            print(f"{content} x {style}: {time.perf_counter() - start:.1f} s", flush=True)
            out.save(tile)
            row.append(out)
        rows.append(row)
    header = [None, *(load_image(shared / "style" / s) for s in STYLES)]
    box = (args.thumb, args.thumb * 3 // 4)
    sheet = Image.new("RGB", (box[0] * 4, box[1] * (len(rows) + 1) + 20), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), f"brushwork {args.backbone}, {args.image_size} px, {args.iterations} L-BFGS steps", fill="black")
    for i, row in enumerate([header, *rows]):
        for j, im in enumerate(row):
            if im is not None:
                im = ImageOps.contain(im, box, Image.Resampling.LANCZOS)
                sheet.paste(im, (box[0] * j + (box[0] - im.width) // 2, 20 + box[1] * i + (box[1] - im.height) // 2))
    sheet.save(args.out, quality=88)
    print(args.out)


if __name__ == "__main__":
    main()
