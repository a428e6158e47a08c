"""What L-BFGS itself costs per iteration: torch.optim.LBFGS (two-loop recursion, host syncs) against
brushwork's on-device compact form, with a near-free objective so the optimiser is all that is timed.

    python benchmarks/lbfgs_overhead.py [--sizes 256,512,1024] [--history 100] [--iterations 150] [--device auto]

The image is (1, 3, S, S); the objective is a cheap separable quadratic whose curvatures span six
decades, so neither optimiser converges within the run and every step stores a pair, as in a real
style transfer. (A well-conditioned objective converges in a few dozen steps; torch's L-BFGS then
stops storing pairs and its history stays short, which would flatter it.) Iterations are timed after
the history has filled (the first ``history`` iterations are warm-up); the pairs each optimiser holds
at the end are printed beside the times.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from brushwork.device import pick_device
from brushwork.style.lbfgs import DeviceLBFGS


def objective(x: torch.Tensor, target: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
    return ((x - target) ** 2 * curvature).sum() + 0.01 * (x**4).sum()


def time_torch(x, target, curvature, iterations, history, sync) -> tuple[float, int]:
    opt = torch.optim.LBFGS([x], lr=1, max_iter=iterations, max_eval=iterations, history_size=history,
                            tolerance_grad=-1, tolerance_change=-1)  # fmt: skip
    stamps = []

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = objective(x, target, curvature)
        loss.backward()
        sync()
        stamps.append(time.perf_counter())
        return loss

    opt.step(closure)
    pairs = len(opt.state[x]["old_dirs"])
    return (stamps[-1] - stamps[history]) / (len(stamps) - 1 - history), pairs


def time_device(x, target, curvature, iterations, history, sync) -> tuple[float, int]:
    opt = DeviceLBFGS(x, history=history)
    stamps = []

    def closure():
        x.grad = None
        loss = objective(x, target, curvature)
        loss.backward()
        sync()
        stamps.append(time.perf_counter())
        return loss

    opt.run(closure, iterations)
    pairs = int(opt.valid.sum())
    return (stamps[-1] - stamps[history]) / (len(stamps) - 1 - history), pairs


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
        generator = torch.Generator().manual_seed(0)
        target = torch.rand(1, 3, size, size, generator=generator).to(device)
        curvature = torch.logspace(-3, 3, target.numel())[torch.randperm(target.numel(), generator=generator)]
        curvature = curvature.view_as(target).to(device)
        row = {"device": str(device), "size": size, "history": args.history}
        for name, fn in (("torch_lbfgs", time_torch), ("device_lbfgs", time_device)):
            x = torch.zeros_like(target, requires_grad=True)
            seconds, pairs = fn(x, target, curvature, args.iterations, args.history, sync)
            row[f"{name}_ms"], row[f"{name}_pairs"] = round(1000 * seconds, 3), pairs
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
