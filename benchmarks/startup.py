"""Start-up of the command line, whole process: how long each verb takes from exec to exit, and how many
modules it imports (``python -X importtime``), torch among them or not.

    python benchmarks/startup.py [--repeats 7]

Each command runs ``--repeats`` times in a fresh interpreter (after one warm-up run, so the files are
in the page cache); the median and the fastest wall time are printed, and the median CPU time (user +
system) of the process, which other work on a shared machine inflates far less than the wall time. A
bare ``python -c pass`` is the floor. The verbs that need no network
(``--help``, ``info``, ``verify``, ``registry``, ``keys``, ``judge rate``) should not load torch (#21);
``stylize --help`` is the comparison, a verb that does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def command_lines(folder: Path) -> dict[str, list[str]]:
    from brushwork.records import new_record, write_image

    record = new_record("gatys", {"iterations": 3}, seed=0)
    record.finish()
    out = write_image(Image.new("RGB", (64, 48), (200, 120, 40)), folder / "out.png", record)
    photo = ROOT / "brushwork" / "examples" / "tubingen.jpg"
    registry = ["--registry", str(folder / "registry.sqlite")]
    return {
        "(python -c pass)": [],
        "--help": ["--help"],
        "info FILE": ["info", str(out)],
        "verify FILE": ["verify", str(out), *registry],
        "registry find FILE": ["registry", "find", str(out), *registry],
        "keys show": ["keys", "show"],
        "judge rate": [
            "judge",
            "rate",
            "--db",
            str(folder / "r.db"),
            "--user",
            "a",
            "--winner",
            str(out),
            "--loser",
            str(photo),
        ],  # fmt: skip
        "stylize --help": ["stylize", "--help"],
    }


def run(argv: list[str], env: dict, importtime: bool = False) -> subprocess.CompletedProcess:
    flags = ["-X", "importtime"] if importtime else []
    command = ["-m", "brushwork", *argv] if argv else ["-c", "pass"]
    return subprocess.run([sys.executable, *flags, *command], capture_output=True, text=True, env=env, timeout=300)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BRUSHWORK_CONFIG_DIR": str(folder / "config"),
               "BRUSHWORK_DATA_DIR": str(folder / "data")}  # fmt: skip
        print(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count(), "load": os.getloadavg()}))
        for name, argv in command_lines(folder).items():
            run(argv, env)  # warm-up: page cache, the registry and ratings files made
            times, cpu = [], []
            for _ in range(args.repeats):
                start, start_cpu = time.perf_counter(), children_cpu()
                run(argv, env)
                times.append(time.perf_counter() - start)
                cpu.append(children_cpu() - start_cpu)
            lines = run(argv, env, importtime=True).stderr.splitlines()
            modules = [line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")][1:]
            label = name if name.startswith("(") else f"brushwork {name}"
            row = {"command": label, "median_s": round(statistics.median(times), 3),
                   "min_s": round(min(times), 3), "cpu_s": round(statistics.median(cpu), 3), "modules": len(modules),
                   "brushwork_modules": sum(m.split(".")[0] == "brushwork" for m in modules),
                   "torch": "torch" in modules}  # fmt: skip
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
