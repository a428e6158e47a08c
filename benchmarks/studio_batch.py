"""Studio batching: jobs/s of a worker that runs compatible feed-forward jobs as one batch, against one at a time.

N ``fast`` jobs with the bundled Starry Night model and the same settings are queued (each its own
uploaded photo, all of one size); a worker in this process runs the queue with ``batch_size`` 1
and then B, in fresh data folders. Printed: end-to-end jobs/s (claim, batched forward, saving each
output with its record and protection, finishing each job) and the forward pass alone (images/s of
``api.fast_apply_many`` on the same pictures against ``api.fast_apply`` on each), after a warm-up.

    PYTHONPATH=. python benchmarks/studio_batch.py [--jobs 32] [--batch 8] [--size 256]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# Outputs are registered and keys looked up in the user's folders: the benchmark keeps its own.
_SANDBOX = Path(tempfile.mkdtemp(prefix="brushwork-bench-"))
os.environ.setdefault("BRUSHWORK_DATA_DIR", str(_SANDBOX / "data"))
os.environ.setdefault("BRUSHWORK_CONFIG_DIR", str(_SANDBOX / "config"))

from brushwork import api  # noqa: E402
from brushwork.studio.config import StudioConfig  # noqa: E402
from brushwork.studio.jobs import Worker  # noqa: E402
from brushwork.studio.service import Studio, Upload  # noqa: E402

MODEL = ROOT / "brushwork/examples/starry_night-fast.safetensors"


def photo(seed: int, size: int) -> Image.Image:
    """A smooth random picture (noise blurred), like a photo to the network's eye."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8))
    return small.resize((size, size * 3 // 4), Image.Resampling.BICUBIC)


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def queue_run(pictures: list[Image.Image], batch: int) -> float:
    """Seconds for one worker to run the queue of len(pictures) jobs with this batch size."""
    with tempfile.TemporaryDirectory() as data:
        config = StudioConfig(data_dir=Path(data), batch_size=batch)
        studio = Studio(config)
        for n, picture in enumerate(pictures):
            studio.submit("fast", '{"strength": 0.8}', [Upload("content", f"p{n}.png", png(picture))],
                          model="starry_night-fast")  # fmt: skip
        worker = Worker(studio.store, device="cpu")
        start = time.perf_counter()
        worker.run_until_empty()
        seconds = time.perf_counter() - start
        counts = studio.store.counts()
        assert counts == {"done": len(pictures)}, counts
    return seconds


def forward_run(model, pictures: list[Image.Image], batch: int) -> float:
    """Seconds for the pictures through the model in batches of ``batch`` (1: one by one)."""
    start = time.perf_counter()
    for n in range(0, len(pictures), batch):
        api.fast_apply_many(model, pictures[n : n + batch], strength=0.8)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="long side of each photo in px")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--forward-only", action="store_true", help="skip the studio worker runs")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"{args.jobs} jobs of {args.size} px, batch {args.batch}")  # fmt: skip
    pictures = [photo(n, args.size) for n in range(args.jobs)]

    model = api.load_model(MODEL, device="cpu")
    forward_run(model, pictures[: args.batch], args.batch)  # warm-up: allocator, first-call costs
    sizes = (1, args.batch)
    # Alternating runs, best of each: the machine's other load hits both alike.
    forward: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(args.repeats):
        for b in sizes:
            forward[b].append(forward_run(model, pictures, b))
    for b in sizes:
        print(f"forward only, batch {b}: {args.jobs / min(forward[b]):.1f} images/s")
    if args.forward_only:
        return

    queue_run(pictures[:2], 1)  # warm-up: the worker's model cache, imports
    queue: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(args.repeats):
        for b in sizes:
            queue[b].append(queue_run(pictures, b))
    for b in sizes:
        best = min(queue[b])
        print(f"studio worker, batch_size {b}: {args.jobs / best:.2f} jobs/s ({best:.2f} s for {args.jobs})")


if __name__ == "__main__":
    main()
