"""Studio batching: jobs/s of a worker that runs compatible feed-forward jobs as one batch, against one at a time.

N ``fast`` jobs with the bundled Starry Night model (or ``--engine adain``: the bundled AdaIN decoder with
Turner's Shipwreck) and the same settings are queued (each its own
uploaded photo, all of one size); a worker in this process runs the queue with ``batch_size`` 1
and then B, in fresh data folders. Printed: end-to-end jobs/s (claim, batched forward, saving each
output with its record and protection, finishing each job) and the forward pass alone (images/s of
``api.fast_apply_many``/``adain_apply_many`` on the same pictures in batches of 1 and B), after a warm-up.

    PYTHONPATH=. python benchmarks/studio_batch.py [--jobs 32] [--batch 8] [--size 256]
    PYTHONPATH=. python benchmarks/studio_batch.py --network-cache --jobs 8 --size 64

``--network-cache``: seconds per small job (batch 1) with the worker keeping its networks between jobs
(``api.cached_model``/``cached_backbone``, the default) and with that cache off (each job loads them).
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

MODELS = {"fast": "starry_night-fast", "adain": "adain-lite0"}
STYLE = ROOT / "brushwork/examples/shipwreck.jpg"  # the AdaIN jobs' style


def photo(seed: int, size: int) -> Image.Image:
    """A smooth random picture (noise blurred), like a photo to the network's eye."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8))
    return small.resize((size, size * 3 // 4), Image.Resampling.BICUBIC)


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def queue_run(engine: str, pictures: list[Image.Image], batch: int) -> float:
    """Seconds for one worker to run the queue of len(pictures) jobs with this batch size."""
    with tempfile.TemporaryDirectory() as data:
        config = StudioConfig(data_dir=Path(data), batch_size=batch)
        studio = Studio(config)
        for n, picture in enumerate(pictures):
            uploads = [Upload("content", f"p{n}.png", png(picture))]
            if engine == "adain":
                uploads.append(Upload("style", STYLE.name, STYLE.read_bytes()))
            studio.submit(engine, '{"strength": 0.8}', uploads, model=MODELS[engine])
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
        if model.kind == "adain":
            api.adain_apply_many(model, pictures[n : n + batch], STYLE, strength=0.8)
        else:
            api.fast_apply_many(model, pictures[n : n + batch], strength=0.8)
    return time.perf_counter() - start


def network_cache(args) -> None:
    """Small jobs one at a time, the worker's network cache on and off, alternated, best of the repeats."""
    from brushwork import networks

    pictures = [photo(n, args.size) for n in range(args.jobs)]
    bound = networks.CACHE.max_bytes
    queue_run(args.engine, pictures[:2], 1)  # warm-up: imports, first-call costs
    seconds: dict[str, list[float]] = {"kept (cache on)": [], "loaded per job (cache off)": []}
    for _ in range(args.repeats):
        for name in seconds:
            networks.CACHE.clear()
            networks.CACHE.max_bytes = bound if name.startswith("kept") else 0
            seconds[name].append(queue_run(args.engine, pictures, 1))
    networks.CACHE.max_bytes = bound
    for name, runs in seconds.items():
        print(f"{args.engine} jobs of {args.size} px, networks {name}: {min(runs) / args.jobs:.3f} s per job "
              f"(best of {len(runs)}: {', '.join(f'{r:.2f}' for r in runs)} s for {args.jobs})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=tuple(MODELS), default="fast")
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="long side of each photo in px")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--forward-only", action="store_true", help="skip the studio worker runs")
    parser.add_argument("--network-cache", action="store_true", help="per-job seconds with and without the cache")
    args = parser.parse_args()
    if args.network_cache:
        return network_cache(args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"{args.jobs} {args.engine} jobs of {args.size} px, batch {args.batch}")  # fmt: skip
    pictures = [photo(n, args.size) for n in range(args.jobs)]

    model = api.load_model(ROOT / f"brushwork/examples/{MODELS[args.engine]}.safetensors", device="cpu")
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

    queue_run(args.engine, pictures[:2], 1)  # warm-up: the worker's model cache, imports
    queue: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(args.repeats):
        for b in sizes:
            queue[b].append(queue_run(args.engine, pictures, b))
    for b in sizes:
        best = min(queue[b])
        print(f"studio worker, batch_size {b}: {args.jobs / best:.2f} jobs/s ({best:.2f} s for {args.jobs})")


if __name__ == "__main__":
    main()
