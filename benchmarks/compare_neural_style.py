"""brushwork's Gatys engine beside the plain loop neural-style users know, same network, same iterations.

    python benchmarks/compare_neural_style.py --photos DIR --paintings DIR --size 256 --iterations 60 \
        --out docs/neural-style-compare.jpg

Pairs photo i with painting i (sorted names). For each pair it runs:

* **seed loop**: neural-style-pt's recipe written plainly — VGG-19 in caffe layout, content relu4_2 and style
  relu1_1..relu5_1 read after the ReLU, Gram / element count, ``nn.MSELoss``, content 5, style 100, TV 1e-3
  (sum of absolute differences), ``torch.optim.LBFGS`` with 100 corrections, started from the photo
  (neural-style's ``-init image``), one scale;
* **brushwork** at each ``--style-weights`` (its default is 20), same network and iterations, one scale;

then scores every output with brushwork's own judge (``brushwork.judge.scores``: content and style distances
on the offline Lite0 network, lower is closer) and writes a contact sheet: rows = pairs, columns = photo,
painting, seed loop, brushwork at each style weight. Everything is on the CPU; keep sizes small.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageOps
from torch import nn

from brushwork.backbones import load_backbone
from brushwork.judge.scores import StyleScorer
from brushwork.media import image_to_tensor, load_image, resize_long_side, tensor_to_image
from brushwork.style.gatys import GatysEngine, StyleConfig


class _Loss(nn.Module):
    """neural-style-pt's ContentLoss / StyleLoss: capture a target, then add strength × MSE."""

    def __init__(self, strength: float, gram: bool):
        super().__init__()
        self.strength, self.gram, self.mode, self.target, self.loss = strength, gram, "none", None, 0
        self.crit = nn.MSELoss()

    def forward(self, x):
        value = x
        if self.gram:
            flat = x.view(x.shape[1], -1)
            value = torch.mm(flat, flat.t()).div(x.nelement())
        if self.mode == "capture":
            self.target = value.detach()
        elif self.mode == "loss":
            self.loss = self.strength * self.crit(value, self.target)
        return x


def seed_loop(net, content: Image.Image, style: Image.Image, iterations: int,
              weights=(5.0, 100.0, 1e-3)) -> Image.Image:  # fmt: skip
    cw, sw, tw = weights
    model, losses = nn.Sequential(), []
    wanted = {*net.content_layers, *net.style_layers}
    for name, layer in zip(net.layer_names, net.features, strict=True):
        if isinstance(layer, nn.Conv2d):  # torch's own convolution, as neural-style-pt has
            plain = nn.Conv2d(layer.in_channels, layer.out_channels, 3, padding=1)
            plain.load_state_dict(layer.state_dict())
            layer = plain.requires_grad_(False)
        model.add_module(name, layer)
        if name in net.content_layers:
            losses.append(("content", _Loss(cw, gram=False)))
            model.add_module(f"content_{name}", losses[-1][1])
        if name in net.style_layers:
            losses.append(("style", _Loss(sw, gram=True)))
            model.add_module(f"style_{name}", losses[-1][1])
        wanted.discard(name)
        if not wanted:
            break
    c = net.preprocess(image_to_tensor(content))
    s = net.preprocess(image_to_tensor(style))
    with torch.no_grad():
        for kind, image in (("content", c), ("style", s)):
            for k, m in losses:
                m.mode = "capture" if k == kind else "none"
            model(image)
    for _, m in losses:
        m.mode = "loss"
    img = c.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([img], max_iter=iterations, tolerance_change=-1, tolerance_grad=-1, history_size=100)

    def closure():
        optimizer.zero_grad()
        model(img)
        tv = (img[..., 1:, :] - img[..., :-1, :]).abs().sum() + (img[..., :, 1:] - img[..., :, :-1]).abs().sum()
        loss = sum(m.loss for _, m in losses) + tw * tv
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        out = (img * net.std + net.mean).flip(1) / 255.0  # caffe BGR 0..255 back to RGB 0..1
    return tensor_to_image(out.clamp(0, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", required=True)
    parser.add_argument("--paintings", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--style-weights", default="20", help="brushwork style weights, comma-separated")
    parser.add_argument("--backbone", default="vgg19-caffe-q8")
    parser.add_argument("--out", default="docs/neural-style-compare.jpg")
    args = parser.parse_args()
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    paintings = sorted(p for p in Path(args.paintings).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    weights = [float(w) for w in args.style_weights.split(",")]
    net = load_backbone(args.backbone)
    engine = GatysEngine(net, torch.device("cpu"))
    rows = []
    for photo, painting in zip(photos, paintings, strict=False):
        content = resize_long_side(load_image(photo), args.size)
        style = load_image(painting)
        scorer = StyleScorer(content, style)
        start = time.perf_counter()
        images = [("seed loop", seed_loop(net, content, style, args.iterations), time.perf_counter() - start)]
        for sw in weights:
            start = time.perf_counter()
            cfg = StyleConfig(image_size=args.size, iterations=args.iterations, style_weight=sw, scales=[args.size])
            images.append((f"brushwork sw {sw:g}", engine.run(content, [style], cfg), time.perf_counter() - start))
        for label, image, seconds in images:
            score = scorer.score(image)
            print(json.dumps({"photo": photo.name, "painting": painting.name, "run": label, "size": args.size,
                              "iterations": args.iterations, "seconds": round(seconds, 1),
                              "content_distance": round(score.content_distance, 4),
                              "style_distance": round(score.style_distance, 4),
                              "gram_distance": round(score.gram_distance, 4),
                              "colour_distance": round(score.colour_distance, 4)}), flush=True)  # fmt: skip
        rows.append([content, style] + [image for _, image, _ in images])
    tile, top = 192, 18
    labels = ["photo", "painting", "seed loop (neural-style)"] + [f"brushwork, style weight {w:g}" for w in weights]
    sheet = Image.new("RGB", (tile * len(labels), top + tile * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(labels):
        draw.text((4 + tile * j, 3), label, fill="black")
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            sheet.paste(ImageOps.pad(image.convert("RGB"), (tile, tile), color="white"), (tile * j, top + tile * i))
    sheet.save(args.out, quality=90)
    print(args.out)


if __name__ == "__main__":
    main()
