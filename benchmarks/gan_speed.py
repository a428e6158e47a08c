"""GAN training images/s at 32 and 64 px (conditional, 10 classes, random data of the right shape).

    python benchmarks/gan_speed.py --resolutions 32,64 --steps 20 [--g-width 64 --d-width 64 --batch-size 64]

Speed does not depend on the pixel values, so the data is random; the first 3 steps are warm-up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from brushwork.device import pick_device
from brushwork.gan.data import Dataset
from brushwork.gan.model import GanConfig
from brushwork.gan.train import train_gan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", default="32,64", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--g-width", type=int, default=64)
    parser.add_argument("--d-width", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    for res in args.resolutions:
        images = torch.randint(0, 256, (1024, args.channels, res, res), dtype=torch.uint8)
        data = Dataset(images, torch.randint(0, 10, (1024,)), [str(i) for i in range(10)], [], "random")
        cfg = GanConfig(resolution=res, channels=args.channels, classes=10, g_width=args.g_width,
                        d_width=args.d_width, batch_size=args.batch_size, steps=args.steps,
                        checkpoint_every=10**9, sample_every=10**9, eval_every=0)  # fmt: skip
        times = []
        with tempfile.TemporaryDirectory() as run:
            train_gan(data, run, cfg, device, on_step=lambda s, t=times: t.append(time.perf_counter()))
        rate = (len(times) - 4) * args.batch_size / (times[-1] - times[3])
        print(json.dumps({"resolution": res, "device": device.type, "threads": torch.get_num_threads(),
                          "g_width": args.g_width, "d_width": args.d_width, "batch": args.batch_size,
                          "images_per_s": round(rate, 1)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
