"""What L-BFGS itself costs per iteration: torch.optim.LBFGS (two-loop recursion, host syncs) against
brushwork's on-device compact form, with a near-free objective so the optimiser is all that is timed.

    python benchmarks/lbfgs_overhead.py [--sizes 256,512,1024] [--history 100] [--iterations 150] [--device auto]

The image is (1, 3, S, S); the objective is a cheap separable one. Iterations are timed after the
history has filled (the first ``history`` iterations are warm-up), so the figure is the steady cost.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from brushwork.device import pick_device
from brushwork.style.lbfgs import DeviceLBFGS


def objective(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((x - target) ** 2 * (1 + target)).sum() + 0.01 * (x**4).sum()


def time_torch(x, target, iterations, history, sync) -> float:
    opt = torch.optim.LBFGS([x], lr=1, max_iter=iterations, max_eval=iterations, history_size=history,
                            tolerance_grad=-1, tolerance_change=-1)  # fmt: skip
    stamps = []

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = objective(x, target)
        loss.backward()
        sync()
        stamps.append(time.perf_counter())
        return loss

    opt.step(closure)
    return (stamps[-1] - stamps[history]) / (len(stamps) - 1 - history)


def time_device(x, target, iterations, history, sync) -> float:
    opt = DeviceLBFGS(x, history=history)
    stamps = []

    def closure():
        x.grad = None
        loss = objective(x, target)
        loss.backward()
        sync()
        stamps.append(time.perf_counter())
        return loss

    opt.run(closure, iterations)
    return (stamps[-1] - stamps[history]) / (len(stamps) - 1 - history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512,1024", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--history", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for size in args.sizes:
        target = torch.rand(1, 3, size, size, device=device)
        row = {"device": str(device), "size": size, "history": args.history}
        for name, fn in (("torch_lbfgs_ms", time_torch), ("device_lbfgs_ms", time_device)):
            x = torch.zeros_like(target, requires_grad=True)
            row[name] = round(1000 * fn(x, target, args.iterations, args.history, sync), 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
