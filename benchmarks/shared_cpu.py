"""Speed on a shared CPU: the same stylize run alone and beside a busy process (a second brushwork run),
with torch's fixed thread count (one per core, what brushwork did before #21) and with brushwork's
threads sized to the free cores (``BRUSHWORK_THREADS=auto``, the default).

    python benchmarks/shared_cpu.py [--size 256] [--iterations 60] [--cores 0,1] [--repeats 1]

Every run is pinned with ``taskset`` to ``--cores``, the busy process too, so "beside" means two
processes on those cores whatever else the machine has. Times are of the stylize call alone (torch
loaded), in iterations/s. The machine's load average is printed beside each figure: other work on
the same cores counts as "busy" as well, and makes "alone" less alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "brushwork" / "examples"

RUN = """
import sys, time, brushwork
size, iterations, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
photo, painting = sys.argv[4], sys.argv[5]
brushwork.stylize(photo, painting, image_size=64, iterations=2, device="cpu")  # warm-up: kernels, NNPACK
start = time.perf_counter()
image = brushwork.stylize(photo, painting, image_size=size, iterations=iterations, device="cpu", seed=0)
print(iterations / (time.perf_counter() - start))
"""

BUSY = """
import sys, brushwork
while True:
    brushwork.stylize(sys.argv[1], sys.argv[2], image_size=int(sys.argv[3]), iterations=1000, device="cpu")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--cores", default="0,1", help="the cores both processes are pinned to")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    photo, painting = str(EXAMPLES / "tubingen.jpg"), str(EXAMPLES / "starry_night.jpg")
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "BRUSHWORK_THREADS")}
    base["PYTHONPATH"] = str(ROOT)
    cores = len(args.cores.split(","))
    policies = {"fixed (one thread per core)": {"BRUSHWORK_THREADS": str(cores)}, "auto (free cores)": {}}
    pin = ["taskset", "-c", args.cores]
    print(json.dumps({"size": args.size, "iterations": args.iterations, "cores": args.cores}))
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.png")
        for name, extra in policies.items():
            env = {**base, **extra}
            for beside in (False, True):
                busy = None
                if beside:
                    busy = subprocess.Popen([*pin, sys.executable, "-c", BUSY, photo, painting, str(args.size)],
                                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                    time.sleep(15)  # until it has loaded torch and is painting
                rates, loads = [], []
                try:
                    for _ in range(args.repeats):
                        cmd = [
                            *pin,
                            sys.executable,
                            "-c",
                            RUN,
                            str(args.size),
                            str(args.iterations),
                            out,
                            photo,
                            painting,
                        ]
                        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
                        if proc.returncode:
                            raise SystemExit(proc.stderr)
                        rates.append(float(proc.stdout.split()[-1]))
                        loads.append(os.getloadavg()[0])
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
                row = {"threads": name, "beside_busy_run": beside, "it_per_s": round(statistics.median(rates), 2),
                       "runs": [round(r, 2) for r in rates], "load_1min": [round(v, 1) for v in loads]}  # fmt: skip
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
