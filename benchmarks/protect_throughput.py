"""What protection adds to a batch: the same CLI runs with protection off and on, in one run of this script.

    PYTHONPATH=. python benchmarks/protect_throughput.py [--seeds 0-999] [--photos 100] [--side 512] [--repeats 1]

1. ``brushwork gan sample RUN --seeds 0-999`` (1000 pictures of 32 px) from a tiny untrained GAN run
   this script trains for two steps (the pixels do not matter to the cost of protecting them);
2. ``brushwork fast apply`` with the bundled Starry Night model on a folder of ``--photos`` photos
   of ``--side`` px (crops of the bundled examples).

Each is timed whole-process (start-up, painting, writing), once with ``--no-watermark --no-sign
--no-register`` and once protected as by default (watermark, IPTC tag, C2PA signature with keys made
here, registry), off and on taking turns ``--repeats`` times; wall and CPU seconds (user + system) of
the whole process, as the wall time of a shared machine swings with its neighbours. Keys, registry and outputs live in a
temporary folder. Prints one JSON line per run and the overhead of protection.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "brushwork" / "examples"
OFF = ["--no-watermark", "--no-sign", "--no-register"]


def tiny_gan_run(folder: Path) -> Path:
    from brushwork.gan.data import Dataset
    from brushwork.gan.model import GanConfig
    from brushwork.gan.train import train_gan

    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    data = Dataset(images, torch.zeros(64, dtype=torch.int64), [], [], "random")
    cfg = GanConfig(resolution=32, channels=3, classes=0, g_width=32, d_width=32, batch_size=16, steps=2,
                    checkpoint_every=2, sample_every=10**9, eval_every=0)  # fmt: skip
    run = folder / "run"
    train_gan(data, run, cfg)
    return run


def photos(folder: Path, count: int, side: int) -> Path:
    """``count`` different photos of ``side`` px: crops of the bundled pictures, each a little shifted."""
    folder.mkdir()
    sources = [Image.open(p).convert("RGB") for p in sorted(EXAMPLES.glob("*.jpg"))]
    for i in range(count):
        image = sources[i % len(sources)]
        scale = side * (1.2 + 0.01 * (i % 7)) / min(image.size)
        big = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
        left, top = (i * 13) % (big.width - side + 1), (i * 7) % (big.height - side + 1)
        big.crop((left, top, left + side, top + side)).save(folder / f"photo{i:03d}.jpg", quality=92)
    return folder


def timed(argv: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one whole CLI process. On a machine shared with
    other work the wall time swings with the neighbours' load; the CPU time is the process's own cost."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "brushwork", *argv], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-999")
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip", choices=["gan", "fast"], help="leave one of the two out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, BRUSHWORK_CONFIG_DIR=str(tmp / "config"), BRUSHWORK_DATA_DIR=str(tmp / "data"),
                   PYTHONPATH=str(ROOT))  # fmt: skip
        subprocess.run([sys.executable, "-m", "brushwork", "keys", "init"], env=env, check=True, capture_output=True)
        jobs = {}
        if args.skip != "gan":
            run = tiny_gan_run(tmp)
            jobs["gan sample"] = lambda out, extra: ["gan", "sample", str(run), "--seeds", args.seeds, "-o", str(out),
                                                     *extra]  # fmt: skip
        if args.skip != "fast":
            folder = photos(tmp / "photos", args.photos, args.side)
            model = EXAMPLES / "starry_night-fast.safetensors"
            jobs["fast apply"] = lambda out, extra: ["fast", "apply", str(model), str(folder), "--out-dir", str(out),
                                                     *extra]  # fmt: skip
        for name, argv in jobs.items():
            times: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
            for repeat in range(args.repeats):
                for mode in ("off", "on"):
                    out = tmp / f"{name.replace(' ', '-')}-{mode}-{repeat}"
                    if name == "fast apply":
                        out.mkdir()
                    times[mode].append(timed(argv(out, OFF if mode == "off" else []), env))
                    count = sum(1 for p in out.rglob("*.png"))
                    wall, cpu = times[mode][-1]
                    print(json.dumps({"job": name, "protection": mode, "outputs": count, "wall_s": round(wall, 2),
                                      "cpu_s": round(cpu, 2)}), flush=True)  # fmt: skip
            for i, what in ((0, "wall"), (1, "cpu")):
                off, on = min(t[i] for t in times["off"]), min(t[i] for t in times["on"])
                print(json.dumps({"job": name, "measure": what, "off_s": round(off, 2), "on_s": round(on, 2),
                                  "overhead": f"{100 * (on - off) / off:+.1f} %"}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
