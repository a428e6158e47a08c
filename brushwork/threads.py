"""CPU threads sized to the cores that are actually free, so a shared machine costs about its share.

PyTorch starts one OpenMP thread per core (and NNPACK's pool the same), and every parallel operation
ends at a barrier that waits for all of them. When another process holds a core, one of those
threads is descheduled for a whole time slice (milliseconds) at almost every barrier, and the
others spin or sleep waiting for it: a step made of hundreds of small operations then runs many
times slower than on the one core that is free (#21: 22 it/s alone, 1.1 it/s beside another job on
2 cores). With as many threads as free cores, no barrier waits on a thread that cannot run.

The count is re-read while a long run goes on (:func:`refit`, at most every few seconds), so a run
gives back a core when a second job starts and takes it again when that job ends.

``BRUSHWORK_THREADS``: a fixed count (``OMP_NUM_THREADS``, when set, is also taken as the user's
choice and left alone); ``auto`` (default) as above.
"""

from __future__ import annotations

import os
import time

#: Seconds between two looks at the load during a run.
REFIT_EVERY_S = 2.0

_last_refit = 0.0


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. ``taskset``, a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _running_here() -> int:
    """This process's threads that are running or runnable now (OpenMP's spinning ones included)."""
    count = 0
    try:
        for task in os.scandir("/proc/self/task"):
            try:
                with open(f"{task.path}/stat") as f:
                    count += f.read().rpartition(")")[2].split()[0] == "R"
            except (OSError, IndexError):
                continue
    except OSError:
        return 1
    return max(1, count)


def busy_elsewhere(samples: int = 3, loadavg_path: str = "/proc/loadavg") -> float:
    """How many cores other work keeps busy now: the runnable tasks on the machine (``/proc/loadavg``'s
    fourth field) less this process's own, the most of a few looks a millisecond apart (a core wrongly
    thought busy costs at most half the speed for a moment; one wrongly thought free costs far more)."""
    busy = 0
    for n in range(samples):
        try:
            with open(loadavg_path) as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        busy = max(busy, running - _running_here())
        if n + 1 < samples:
            time.sleep(0.001)
    return float(max(0, busy))


def wanted_threads(cores: int | None = None, busy: float | None = None) -> int | None:
    """The thread count to run with: the user's if they set one (None: leave torch's alone), else the
    usable cores less those other work keeps busy, at least 1."""
    setting = os.environ.get("BRUSHWORK_THREADS", "auto").strip().lower()
    if setting not in ("", "auto"):
        try:
            return max(1, int(setting))
        except ValueError:
            return None
    if "OMP_NUM_THREADS" in os.environ:
        return None
    cores = usable_cores() if cores is None else cores
    busy = busy_elsewhere() if busy is None else busy
    return max(1, min(cores, cores - round(busy)))


def fit(force: bool = True) -> int | None:
    """Set torch's CPU threads (OpenMP's and NNPACK's pool) to :func:`wanted_threads`; return the count
    set, or None when left alone. Without ``force``, looks at the load at most every REFIT_EVERY_S."""
    global _last_refit
    now = time.monotonic()
    if not force and now - _last_refit < REFIT_EVERY_S:
        return None
    _last_refit = now
    count = wanted_threads()
    if count is None:
        return None
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def refit() -> int | None:
    """:func:`fit` during a run, rate-limited: cheap enough to call every step."""
    return fit(force=False)
