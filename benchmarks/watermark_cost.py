"""What marking one picture costs on this machine, by size: the RivaGAN runs behind a protected output.

RivaGAN works on a copy of fixed long side (``watermark.WORK_SIDE``), so a 64 px picture costs about
what a 256 px one does. Prints the seconds of one decoder run on a working copy, then, per picture
side, the wall seconds per picture of ``watermark.embed_many`` (the output exit's batched strength
search) for a batch of one and of eight, and how many of the batch's IDs read back.

    PYTHONPATH=. python benchmarks/watermark_cost.py [--sides 64,128,256] [--repeats 2]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
from PIL import Image

from brushwork.protect import watermark

ROOT = Path(__file__).resolve().parents[1]


def picture(side: int) -> Image.Image:
    photo = Image.open(ROOT / "brushwork" / "examples" / "tubingen.jpg").convert("RGB")
    scale = side / max(photo.size)
    return photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="64,128,256,512")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    riva = watermark._models()
    frame = np.asarray(picture(256).resize(watermark.work_size((256, 171))))
    watermark._hard_bits(riva, frame)  # the first run pays for ONNX's set-up
    start = time.perf_counter()
    for _ in range(args.repeats):
        watermark._hard_bits(riva, frame)
    print(f"one decoder run on a {frame.shape[1]}x{frame.shape[0]} working copy: "
          f"{(time.perf_counter() - start) / args.repeats:.2f} s")  # fmt: skip
    print("side  batch  s/picture  read back")
    for side in (int(s) for s in args.sides.split(",")):
        image = picture(side)
        for batch in (1, 8):
            ids = [random.randint(1, watermark.MAX_WORK_ID) for _ in range(batch)]
            start = time.perf_counter()
            results = watermark.embed_many([image] * batch, ids)
            seconds = (time.perf_counter() - start) / batch
            print(f"{side:>4}  {batch:>5}  {seconds:>9.2f}  {sum(ok for _, ok, _ in results)}/{batch}")


if __name__ == "__main__":
    main()
