"""Host cost of one Gatys L-BFGS step where the network's arithmetic is negligible (32² or 64² on the CPU):
PyTorch operators dispatched per step, and host milliseconds per step, from ``torch.profiler``.

    PYTHONPATH=. python benchmarks/step_ops.py [--sizes 32,64] [--backbone vgg19] [--history 100]
        [--warmup 105] [--steps 20]

Three loops on the same backbone (VGG with random weights unless ``--weights``: the same operators) and images:
* ``brushwork (device L-BFGS)``: brushwork's engine with its on-device compact L-BFGS (what runs on CUDA),
* ``brushwork (torch L-BFGS)``: the same engine with ``torch.optim.LBFGS`` (what runs on a CPU),
* ``plain loop``: neural-style-pt's seed loop (loss modules in an ``nn.Sequential``, ``torch.optim.LBFGS``),
  the one of ``benchmarks/gatys_speed.py --engine baseline``.

Steps are counted after ``--warmup`` steps, when the L-BFGS history (100 pairs) has filled, as in a long
run. "ops" counts every ``aten::`` operator the profiler saw (nested ones too: each is a dispatch);
"top-level ops" only those not called from inside another operator.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from types import SimpleNamespace

import torch
from torch.profiler import ProfilerActivity, profile

import benchmarks.gatys_speed as gatys_speed


def count(events) -> tuple[int, int]:
    aten = [e for e in events if e.name.startswith("aten::")]
    top = [e for e in aten if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return len(aten), len(top)


class Window:
    """Profiles steps ``warmup`` .. ``warmup + steps`` of a run through its per-step callback."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.seen = warmup, steps, 0
        self.prof = profile(activities=[ProfilerActivity.CPU])
        self.start = self.end = 0.0

    def tick(self) -> None:
        self.seen += 1
        if self.seen == self.warmup:
            self.prof.__enter__()
            self.start = time.perf_counter()
        elif self.seen == self.warmup + self.steps:
            self.end = time.perf_counter()
            self.prof.__exit__(None, None, None)

    def figures(self) -> dict:
        ops, top = count(self.prof.events())
        return {"ops_per_step": round(ops / self.steps, 1), "top_level_ops_per_step": round(top / self.steps, 1),
                "host_ms_per_step": round(1000 * (self.end - self.start) / self.steps, 2)}  # fmt: skip


def run_engine(args, size: int, device_lbfgs: bool) -> dict:
    from brushwork.style.gatys import GatysEngine, StyleConfig

    content, style, _, _ = gatys_speed._images(size)
    window = Window(args.warmup, args.steps)
    engine = GatysEngine(gatys_speed._backbone(args), "cpu")
    engine.device_lbfgs = device_lbfgs
    iterations = args.warmup + args.steps + 1
    cfg = StyleConfig(image_size=size, iterations=iterations, scales=[size], tile=0, lbfgs_history=args.history)
    engine.run(content, [style], cfg, on_step=lambda step: window.tick())
    return window.figures()


def run_plain(args, size: int) -> dict:
    window = Window(args.warmup, args.steps)
    original = torch.optim.LBFGS

    class Counted(original):  # the plain loop's closure is its own: count its evaluations from outside
        def step(self, closure):
            def counted():
                loss = closure()
                window.tick()
                return loss

            return super().step(counted)

    torch.optim.LBFGS = Counted
    try:
        base = SimpleNamespace(**vars(args), iterations=args.warmup + args.steps + 1)
        gatys_speed.run_baseline(base, size, torch.device("cpu"))
    finally:
        torch.optim.LBFGS = original
    return window.figures()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="32,64", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--backbone", default="vgg19", help="vgg16 or vgg19 (the plain loop needs a VGG)")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--weights-layout", default="torchvision")
    parser.add_argument("--history", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=105)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--baseline-loss-scale", type=float, default=100.0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # host cost alone: no thread pool in the figures
    # The engine re-fits its threads to the free cores every few seconds (threads.refit); a second thread
    # changes which kernels some operators take, and so the nested operators counted.
    os.environ["BRUSHWORK_THREADS"] = "1"
    for size in args.sizes:
        loops = {"brushwork (device L-BFGS)": lambda size=size: run_engine(args, size, True),
                 "brushwork (torch L-BFGS)": lambda size=size: run_engine(args, size, False),
                 "plain loop (torch L-BFGS)": lambda size=size: run_plain(args, size)}  # fmt: skip
        for name, loop in loops.items():
            print(json.dumps({"size": size, "backbone": args.backbone, "loop": name, **loop()}), flush=True)


if __name__ == "__main__":
    main()
