"""Peak memory of marking a very large still: the watermark step alone, in a fresh process per size.

The mark is computed on a 256 px working copy; laying its residual onto the full picture used to
take several full-size float32 copies (the picture, the upscaled residual, their sum, its clip and
rounding: about 10 GB at 16k x 16k). Prints, per side, the process's peak RSS before the call
(the picture itself, in Pillow's 4 bytes per pixel), the peak during it, the difference, and seconds.

    PYTHONPATH=. python benchmarks/watermark_memory.py [--sides 4096,8192] [--exit]

``--exit`` measures the whole output exit instead (mark, PNG with its record, XMP, C2PA, registry).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"


def save_through_exit(image):
    """The whole output exit (mark, PNG with record, XMP, C2PA signature, registry) into a scratch folder."""
    import os
    import tempfile

    from PIL import Image

    from brushwork.output import save_output
    from brushwork.protect import Protection, Registry, init_keys
    from brushwork.records import new_record

    folder = Path(tempfile.mkdtemp(prefix="watermark-memory-"))
    os.environ["BRUSHWORK_CONFIG_DIR"] = str(folder / "config")
    keys = init_keys()
    protection = Protection(keys=keys, registry=Registry(folder / "registry.sqlite"), work_id=0x2B5E7)
    path = save_output(image, folder / "out.png", new_record("benchmark", {}), protection=protection)
    return Image.open(path)


def measure(side: int, whole_exit: bool = False) -> dict:
    from PIL import Image

    from brushwork.protect import watermark

    Image.MAX_IMAGE_PIXELS = None
    watermark._models()  # load the networks before the baseline
    # The bundled photo blown up: at the working size it is the photo, which carries the mark.
    with Image.open(EXAMPLES / "tubingen.jpg") as photo:
        image = photo.convert("RGB").resize((side, side), Image.BICUBIC)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if whole_exit:
        marked, ok = save_through_exit(image), True
    else:
        marked, ok = watermark.embed_checked(image, 0x2B5E7)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reads = watermark.detect(marked).work_id == 0x2B5E7
    return {"side": side, "before_mb": before, "peak_mb": peak, "seconds": seconds, "reads_back": ok, "detected": reads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sides", default="4096,8192", help="comma-separated square sides")
    parser.add_argument("--exit", action="store_true", help="the whole output exit (PNG, XMP, C2PA, registry)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.exit)))
        return
    print(f"{'side':>6} {'before MB':>10} {'peak MB':>9} {'added MB':>9} {'seconds':>8}  reads back")
    for side in (int(s) for s in args.sides.split(",")):
        command = [sys.executable, __file__, "--one", str(side)] + (["--exit"] if args.exit else [])
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{side:>6} {r['before_mb']:>10.0f} {r['peak_mb']:>9.0f} {r['peak_mb'] - r['before_mb']:>9.0f} "
              f"{r['seconds']:>8.1f}  {r['reads_back']}/{r['detected']}")  # fmt: skip


if __name__ == "__main__":
    main()
