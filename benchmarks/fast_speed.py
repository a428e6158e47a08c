"""Milliseconds per image of a feed-forward style network (TransformerNet), or of an AdaIN model.

    python benchmarks/fast_speed.py --sizes 512,1080x1920 --width 32 --residual-blocks 5
    python benchmarks/fast_speed.py --model starry.safetensors --sizes 512 --half   # GPU: fp16 + channels_last
    python benchmarks/fast_speed.py --adain brushwork/examples/adain-lite0.safetensors --sizes 512,1024 --half

Random weights unless --model is given: the speed does not depend on the values. AdaIN is timed
end to end (encode content and a style image of the same size, AdaIN, decode); ``--adain-weights``
gives the encoder's weights when the model's backbone is VGG.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from brushwork.device import pick_device
from brushwork.style.feedforward import TransformerNet, load_feedforward


def parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.partition("x")
    return int(h), int(w or h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--residual-blocks", type=int, default=5)
    parser.add_argument("--sizes", default="512", type=lambda s: [parse_size(x) for x in s.split(",")])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--half", action="store_true", help="fp16 weights and activations, channels_last (CUDA)")
    parser.add_argument("--adain", help="an AdaIN model instead of a TransformerNet")
    parser.add_argument("--adain-weights", help="encoder weights for a VGG AdaIN model")
    args = parser.parse_args()
    device = pick_device(args.device)
    if args.adain:
        net, width, blocks = _adain(args.adain, args.adain_weights, device), "adain", 0
    elif args.model:
        net, meta = load_feedforward(args.model, device)
        width, blocks = meta["config"]["width"], meta["config"]["residual_blocks"]
    else:
        net = TransformerNet(args.width, args.residual_blocks).to(device).eval().requires_grad_(False)
        width, blocks = args.width, args.residual_blocks
    dtype = torch.float16 if args.half else torch.float32
    fmt = torch.channels_last if args.half else torch.contiguous_format
    net = net.to(dtype=dtype, memory_format=fmt)
    for h, w in args.sizes:
        x = torch.rand(args.batch, 3, h, w, device=device, dtype=dtype).contiguous(memory_format=fmt)
        with torch.inference_mode():
            inputs = (x, x.flip(-1)) if args.adain else (x,)  # AdaIN: a style image as big as the photo
            for _ in range(2):
                net(*inputs)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.repeats):
                net(*inputs)
            if device.type == "cuda":
                torch.cuda.synchronize()
        per_image = (time.perf_counter() - start) / (args.repeats * args.batch)
        print(
            json.dumps(
                {
                    "size": f"{h}x{w}",
                    "width": width,
                    "residual_blocks": blocks,
                    "device": device.type,
                    "dtype": str(dtype).removeprefix("torch."),
                    "threads": torch.get_num_threads(),
                    "batch": args.batch,
                    "ms_per_image": round(per_image * 1000, 2),
                    "images_per_s": round(1 / per_image, 2),
                }
            ),
            flush=True,
        )


def _adain(path: str, weights: str | None, device: torch.device) -> torch.nn.Module:
    from brushwork.backbones import load_backbone
    from brushwork.style.adain import encoder_name, load_adain

    return load_adain(path, load_backbone(encoder_name(path, "auto", weights), weights), device)


if __name__ == "__main__":
    main()
