"""Iterations/s, peak memory and final losses of the Gatys engine, and of a baseline loop.

    python benchmarks/gatys_speed.py --backbone vgg19 --sizes 256,512,1024 --iterations 10
    python benchmarks/gatys_speed.py --engine baseline --backbone vgg19 --sizes 256,512

``--engine baseline`` runs the loop the way neural-style-pt builds it (loss modules inserted into
an ``nn.Sequential`` copy of the network, Gram divided by the element count, ``nn.MSELoss``,
torch's L-BFGS with 100 corrections), on the same weights, so the two are compared like for like.
Its line reports ``lbfgs_pairs``, the pairs torch's L-BFGS holds at the end: with weights whose
activations are small (HED's, random ones) neural-style's weights give a loss ~100x below what
neural-style prints with its VGG-19, every pair fails the curvature test, L-BFGS degenerates into
unit-step gradient descent and skips all its history work. ``--baseline-loss-scale 100`` brings
the loss to neural-style's usual magnitude, so the history fills as it does in real use.
VGG without ``--weights`` gets random weights: the speed is the same, the losses mean nothing.
Each size runs in its own process so the peak memory is that size's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"


def _backbone(args):
    from brushwork.backbones import load_backbone
    from brushwork.backbones.vgg import VGG

    if args.backbone in ("vgg19", "vgg16") and not args.weights:
        return VGG(int(args.backbone[3:]), layout=args.weights_layout).freeze()
    return load_backbone(args.backbone, args.weights, args.weights_layout)


def _images(size):
    from brushwork.media import image_to_tensor, load_image, resize_long_side

    content = resize_long_side(load_image(EXAMPLES / "tubingen.jpg"), size)
    style = resize_long_side(load_image(EXAMPLES / "starry_night.jpg"), size)
    return content, style, image_to_tensor(content), image_to_tensor(style)


def run_brushwork(args, size, device):
    from brushwork.backbones.winograd import set_winograd
    from brushwork.style.gatys import GatysEngine, StyleConfig

    set_winograd(args.winograd)
    content, style, _, _ = _images(size)
    times, last = [], {}

    def on_step(step):
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())
        last.update({k: v for k, v in step.losses.items()})

    engine = GatysEngine(_backbone(args), device)
    cfg = StyleConfig(image_size=size, iterations=args.iterations, scales=[size], tile=args.tile)
    engine.run(content, [style], cfg, on_step=on_step)
    return times, {**{k: round(v.item(), 4) for k, v in last.items()}, **engine.plans[-1]}


class _ContentLoss(nn.Module):
    def __init__(self, strength):
        super().__init__()
        self.strength, self.mode, self.target, self.loss = strength, "none", None, 0
        self.crit = nn.MSELoss()

    def forward(self, x):
        if self.mode == "capture":
            self.target = x.detach()
        elif self.mode == "loss":
            self.loss = self.crit(x, self.target) * self.strength
        return x


class _StyleLoss(_ContentLoss):
    def forward(self, x):
        b, c, h, w = x.shape
        flat = x.view(c, h * w)
        gram = torch.mm(flat, flat.t()).div(x.nelement())
        if self.mode == "capture":
            self.target = gram.detach()
        elif self.mode == "loss":
            self.loss = self.strength * self.crit(gram, self.target)
        return x


def _plain(layer: nn.Module) -> nn.Module:
    """neural-style-pt's layers are torch's own: brushwork's Winograd convolution stays out of it."""
    if not isinstance(layer, nn.Conv2d):
        return layer
    conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=layer.padding)
    conv.load_state_dict(layer.state_dict())
    return conv.requires_grad_(False)


def run_baseline(args, size, device):
    """neural-style-pt's structure: one Sequential with loss layers spliced in after named layers."""
    net = _backbone(args)
    content_layers, style_layers = set(net.content_layers), set(net.style_layers)
    model, content_losses, style_losses = nn.Sequential(), [], []
    for name, layer in zip(net.layer_names, net.features, strict=True):
        model.add_module(name, _plain(layer))
        if name in content_layers:
            content_losses.append(_ContentLoss(5.0 * args.baseline_loss_scale))
            model.add_module(f"content_{name}", content_losses[-1])
        if name in style_layers:
            style_losses.append(_StyleLoss(100.0 * args.baseline_loss_scale))
            model.add_module(f"style_{name}", style_losses[-1])
        if len(content_losses) == len(content_layers) and len(style_losses) == len(style_layers):
            break
    model = model.to(device)
    _, _, content_t, style_t = _images(size)
    content_t, style_t = content_t.to(device), style_t.to(device)
    with torch.no_grad():
        for m in content_losses:
            m.mode = "capture"
        model(net.preprocess(content_t.to("cpu")).to(device))
        for m in content_losses:
            m.mode = "none"
        for m in style_losses:
            m.mode = "capture"
        model(net.preprocess(style_t.to("cpu")).to(device))
    for m in content_losses + style_losses:
        m.mode = "loss"
    img = net.preprocess(content_t.to("cpu")).to(device).clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [img], max_iter=args.iterations, tolerance_change=-1, tolerance_grad=-1, history_size=100
    )
    times, last = [], {}

    def closure():
        optimizer.zero_grad()
        model(img)
        loss = sum(m.loss for m in content_losses) + sum(m.loss for m in style_losses)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())
        last["total"] = loss.detach()
        return loss

    optimizer.step(closure)
    losses = {k: round(v.item(), 4) for k, v in last.items()}
    return times, {**losses, "lbfgs_pairs": len(optimizer.state[img]["old_dirs"])}


def one(args) -> dict:
    from brushwork.device import pick_device

    torch.manual_seed(0)
    device = pick_device(args.device)
    size = args.sizes[0]
    start = time.perf_counter()
    runner = run_brushwork if args.engine == "brushwork" else run_baseline
    times, losses = runner(args, size, device)
    # The first iterations include allocation and kernel selection: time the steady state.
    skip = min(args.warmup, len(times) - 2)
    rate = (len(times) - 1 - skip) / (times[-1] - times[skip])
    peak = (
        torch.cuda.max_memory_allocated()
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "engine": args.engine,
        "backbone": args.backbone,
        "tile": args.tile,
        "winograd": args.winograd if args.engine == "brushwork" else "off",
        "size": size,
        "device": device.type,
        "threads": torch.get_num_threads(),
        "iterations": len(times),
        "it_per_s": round(rate, 3),
        "peak_mem_gib": round(peak / 2**30, 2),
        "wall_s": round(time.perf_counter() - start, 1),
        "final": losses,  # losses after the last step, and what the run chose
    }


def _child_environment(engine: str) -> dict[str, str]:
    """brushwork's engine gets the OpenMP settings ``import brushwork`` makes before torch loads
    (this script loads torch first); the baseline runs with libgomp's defaults, as neural-style-pt does."""
    from brushwork import with_openmp_defaults

    return with_openmp_defaults(os.environ) if engine == "brushwork" else dict(os.environ)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("brushwork", "baseline"), default="brushwork")
    parser.add_argument(
        "--backbone",
        default="vgg19",
        choices=("vgg19", "vgg19-caffe-q8", "vgg16", "lite0"),
        help="vgg19/vgg16 without --weights: random weights (speed only)",
    )
    parser.add_argument("--weights")
    parser.add_argument("--weights-layout", default="torchvision")
    parser.add_argument("--sizes", default="256,512", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tile", type=int, default=None, help="tile side in px (0: off; default: auto)")
    parser.add_argument(
        "--winograd", choices=("on", "auto", "off"), default="on", help="brushwork's NNPACK convolutions on the CPU"
    )
    parser.add_argument("--baseline-loss-scale", type=float, default=1.0, help="multiplies the baseline's loss weights")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine == "baseline" and args.backbone == "lite0":
        parser.error("the baseline loop is for VGG (a plain Sequential)")
    if args.one:
        print(json.dumps(one(args)))
        return
    for size in args.sizes:
        argv = [a for a in sys.argv[1:]]
        i = argv.index("--sizes") if "--sizes" in argv else None
        if i is not None:
            del argv[i : i + 2]
        out = subprocess.run(
            [sys.executable, __file__, *argv, "--sizes", str(size), "--one"],
            capture_output=True,
            text=True,
            env=_child_environment(args.engine),
        )
        if out.returncode:
            print(json.dumps({"size": size, "error": out.stderr.strip().splitlines()[-1:]}), flush=True)
        else:
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
