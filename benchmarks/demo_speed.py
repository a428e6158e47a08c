"""How long `brushwork demo` takes (what `scripts/demo` runs after installing), as a new user sees it.

Runs the demo as a fresh process in an empty folder (so the import of torch and the first load of every
model are counted), REPEATS times, and prints each wall time, the median and the machine's load average
before and after (a shared machine's figures are only as good as its load). The install that
`scripts/demo` does first is not counted: it depends on the network and pip's cache.

    .venv/bin/python benchmarks/demo_speed.py [REPEATS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BRUSHWORK = Path(sys.executable).with_name("brushwork")


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"cpu count {os.cpu_count()}, load average before {os.getloadavg()[0]:.1f}")
    times = []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            env = {**os.environ, "BRUSHWORK_DATA_DIR": f"{folder}/data", "BRUSHWORK_CONFIG_DIR": f"{folder}/config"}
            start = time.perf_counter()
            subprocess.run([str(BRUSHWORK), "demo", "-q"], cwd=folder, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        print(f"run {i + 1}: {times[-1]:.1f} s")
    print(f"brushwork demo: median {statistics.median(times):.1f} s, min {min(times):.1f} s, max {max(times):.1f} s "
          f"over {repeats} runs; load average after {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
