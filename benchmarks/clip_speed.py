"""Cost of the CLIP objective per optimisation step (--style-text), with ViT-B-32's architecture.

The weights are random (none are shipped, and the compute does not depend on their values), so this
measures speed only, not the look. Prints seconds per step of the CLIP terms alone (whole image +
N crops, forward and backward into the pixels) and of a whole text-guided step on the Lite0 backbone.

    python benchmarks/clip_speed.py [--size 512] [--crops 8] [--steps 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import open_clip
import torch

import brushwork
from brushwork.backbones import load_backbone
from brushwork.media import image_to_tensor, load_image, resize_long_side
from brushwork.style.clip_guidance import Clip, ClipObjective, ClipSettings
from brushwork.style.gatys import GatysEngine, StyleConfig

EXAMPLES = Path(brushwork.__file__).parent / "examples"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--crops", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    clip = Clip.wrap(model, open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32", "random")
    photo = resize_long_side(load_image(EXAMPLES / "tubingen.jpg"), args.size)
    content = image_to_tensor(photo)
    settings = ClipSettings("a watercolour with warm, loose strokes", crops=args.crops)
    objective = ClipObjective(clip, settings, content, seed=0, fresh_crops=False)
    image = content.clone().requires_grad_(True)
    objective(image)  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        image.grad = None
        objective(image)
    clip_step = (time.perf_counter() - start) / args.steps
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"CLIP terms (ViT-B-32, whole image + {args.crops} crops at 224 px): {clip_step:.2f} s/step")
    engine = GatysEngine(load_backbone("lite0"))
    for text in (None, settings.text):
        cfg = StyleConfig(image_size=args.size, iterations=args.steps + 1, style_text=text, clip_crops=args.crops)
        times: list[float] = []
        engine.run(photo, [load_image(EXAMPLES / "starry_night.jpg")], cfg, clip=clip,
                   on_step=lambda s, times=times: times.append(time.perf_counter()))  # fmt: skip
        per_step = (times[-1] - times[0]) / (len(times) - 1)
        print(f"Gatys step, lite0, {args.size} px, Starry Night{' + text' if text else ''}: {per_step:.2f} s/step")


if __name__ == "__main__":
    main()
