"""Studio load and faults: concurrent submissions, kill -9 of worker and server, hostile requests.

Runs a real ``brushwork serve`` (no in-process worker) and ``brushwork worker`` as separate
processes on loopback, in a temporary data folder, and prints:

1. N concurrent submissions of small images -> how many acknowledged (202), done, lost, duplicated;
2. a queue of M jobs with kill -9 of the worker, then of the server, mid-queue (submissions still
   arriving) -> after restarting both, every acknowledged job done, each published once;
3. oversized upload, non-image, pixel bomb, path-trick file names, huge JSON, wrong token ->
   status codes, and whether anything was stored;
4. video jobs (a tiny clip, the bundled fast model) through the server's in-process worker, then through
   one remote worker (``brushwork worker --server``, its own scratch folder, nothing shared but loopback)
   -> clips per minute, once each worker is warm.

    PYTHONPATH=. python benchmarks/studio_load.py [--jobs 100] [--fault-jobs 40] [--video-clips 6] [--video-only]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789"
PARAMS = {"backbone": "lite0", "image_size": 32, "iterations": 2}
STARTED: list[subprocess.Popen] = []  # every server and worker, stopped however the run ends


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(seed: int, width: int = 40, height: int = 30) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


class Processes:
    def __init__(self, data: Path, port: int, lease: float):
        self.data, self.port, self.lease = data, port, lease
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "BRUSHWORK_TOKEN": TOKEN, "OMP_NUM_THREADS": "1"}
        self.server: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None

    def _start(self, *verb: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "brushwork", *verb, "--data", str(self.data), "--lease", str(self.lease)]
        STARTED.append(subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return STARTED[-1]

    def start_server(self, worker: bool = False) -> None:
        self.server = self._start("serve", "--port", str(self.port), *(() if worker else ("--no-worker",)))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url("/api/jobs?limit=1"), headers=auth(), timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("the server did not start")

    def start_worker(self) -> None:
        self.worker = self._start("worker")

    def kill(self, which: str) -> None:
        proc = getattr(self, which)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in (self.server, self.worker):
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(20)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def auth(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def submit(procs: Processes, seed: int, params: dict = PARAMS) -> str | None:
    """Submit one job; its id if acknowledged (202), else None (the client would retry)."""
    form = {"engine": "stylize", "params": json.dumps(params), "style_ref": "example:starry_night.jpg"}
    try:
        r = httpx.post(procs.url("/api/jobs"), headers=auth(), timeout=60, data=form,
                       files={"content": (f"photo{seed}.png", png(seed), "image/png")})  # fmt: skip
    except httpx.HTTPError:
        return None
    return r.json()["id"] if r.status_code == 202 else None


def db_rows(data: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(data / "studio.db", timeout=60)
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT id, status, attempts, outputs FROM jobs").fetchall()
    finally:
        db.close()


def wait_done(data: Path, ids: list[str], timeout: float) -> tuple[int, float]:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        status = {r["id"]: r["status"] for r in db_rows(data)}
        if all(status.get(i) in ("done", "failed", "cancelled") for i in ids):
            break
        time.sleep(0.5)
    status = {r["id"]: r["status"] for r in db_rows(data)}
    return sum(status.get(i) == "done" for i in ids), time.monotonic() - start


def tally(data: Path, ids: list[str]) -> dict:
    rows = {r["id"]: r for r in db_rows(data)}
    published = [json.loads(rows[i]["outputs"] or "[]") for i in ids if i in rows]
    files = list((data / "outputs").iterdir())
    published_names = {name for names in published for name in names}
    return {
        "acknowledged": len(ids),
        "done": sum(rows.get(i) is not None and rows[i]["status"] == "done" for i in ids),
        "lost": sum(i not in rows for i in ids),
        "duplicated (jobs with more than one published output)": sum(len(p) > 1 for p in published),
        "re-run after a kill (attempts > 1)": sum(rows[i]["attempts"] > 1 for i in ids if i in rows),
        "output files not published (a kill between write and commit)": len(
            set(f.name for f in files) - published_names
        ),
    }


def load(procs: Processes, n: int) -> dict:
    procs.start_server()
    procs.start_worker()
    start = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        ids = list(pool.map(lambda s: submit(procs, s), range(n)))
    submitted = time.monotonic() - start
    acked = [i for i in ids if i]
    done, waited = wait_done(procs.data, acked, 600)
    procs.stop()
    return {"submissions": n, "all submitted in s": round(submitted, 2), "done after s": round(submitted + waited, 1),
            **tally(procs.data, acked)}  # fmt: skip


def faults(procs: Processes, m: int) -> dict:
    procs.start_server()
    procs.start_worker()
    params = {**PARAMS, "iterations": 20}
    ids = [submit(procs, 1000 + s, params) for s in range(m // 2)]

    def completed() -> int:
        return sum(r["status"] == "done" for r in db_rows(procs.data))

    deadline = time.monotonic() + 300
    while completed() < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    procs.kill("worker")  # mid-job: one is running
    ids += [submit(procs, 2000 + s, params) for s in range(m // 4)]
    with ThreadPoolExecutor(8) as pool:  # the server dies while submissions arrive
        futures = [pool.submit(submit, procs, 3000 + s, params) for s in range(m - len(ids))]
        time.sleep(0.3)
        procs.kill("server")
        late = [f.result() for f in futures]
    refused_by_kill = sum(i is None for i in late)
    ids += late
    procs.start_server()
    procs.start_worker()
    # A client retries what was not acknowledged, as it would after a connection error.
    retried = [submit(procs, 4000 + s, params) for s, i in enumerate(ids) if i is None]
    acked = [i for i in ids + retried if i]
    wait_done(procs.data, acked, 900)
    procs.stop()
    stored_unacknowledged = len({r["id"] for r in db_rows(procs.data)} - set(acked))
    return {"submissions": m, "not acknowledged (server killed mid-request), retried": refused_by_kill,
            "stored although not acknowledged (run, but the client never heard)": stored_unacknowledged,
            **tally(procs.data, acked)}  # fmt: skip


def hostile(procs: Processes) -> dict:
    procs.start_server()

    def stored() -> tuple[int, int]:
        return len(db_rows(procs.data)), len(list((procs.data / "uploads").iterdir()))

    before = stored()
    form = {"engine": "stylize", "params": json.dumps(PARAMS), "style_ref": "example:starry_night.jpg"}
    url = procs.url("/api/jobs")
    cases = {
        "upload over the 32 MB limit": dict(files={"content": ("a.png", b"\x89PNG" + os.urandom(33 * 2**20))}),
        "not an image": dict(files={"content": ("a.png", b"MZ\x90\x00 executable")}),
        "pixel bomb (8000x8000 PNG, 3 kB)": dict(files={"content": ("b.png", bomb())}),
        "file name ../../x.png": dict(files={"content": ("../../x.png", png(1))}),
        "file name /etc/passwd": dict(files={"content": ("/etc/passwd", png(1))}),
        "params JSON of 1 MB": dict(data={**form, "params": json.dumps({"x": "y" * 2**20})}),
        "params JSON nested 100000 deep": dict(data={**form, "params": "[" * 100000 + "]" * 100000}),
        "unknown parameter": dict(data={**form, "params": '{"image_sise": 64}'}),
        "library path trick": dict(data={**form, "style_ref": "example:../../../etc/passwd"}),
    }
    results = {}
    for name, kwargs in cases.items():
        kwargs.setdefault("data", form)
        kwargs.setdefault("files", {"content": ("photo.png", png(1), "image/png")})
        r = httpx.post(url, headers=auth(), timeout=120, **kwargs)
        results[name] = f"{r.status_code} {r.json().get('detail', '')!s:.70}"
    for name, headers in (("no token", {}), ("wrong token", auth("wrong"))):
        r = httpx.post(url, headers=headers, data=form, files={"content": ("a.png", png(1))}, timeout=30)
        results[name] = f"{r.status_code} {r.json().get('detail', '')}"
    results["anything stored"] = "no" if stored() == before else f"YES: {before} -> {stored()}"
    procs.stop()
    return results


def bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8000, 8000)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


WORKER_TOKEN = "bench-worker-token-0123456789"


def tiny_clip(frames: int = 12, size: tuple[int, int] = (66, 50)) -> bytes:
    """A square sliding over grey, 12 fps, no sound (the plumbing is measured, not the painting)."""
    from fractions import Fraction

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            arr = np.full((size[1], size[0], 3), 90, np.uint8)
            arr[10:30, 4 + 3 * i : 24 + 3 * i] = (240, 200, 40)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 12)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def video_throughput(data: Path, clips: int, remote: bool) -> dict:
    """Clips per minute through the server's own worker, or through one remote worker process."""
    procs = Processes(data, free_port(), 30)
    procs.env["BRUSHWORK_WORKER_TOKEN"] = WORKER_TOKEN
    # Clips are signed and registered: with keys and a registry of this run's own, not the user's.
    procs.env.update(BRUSHWORK_DATA_DIR=str(data / "user"), BRUSHWORK_CONFIG_DIR=str(data / "config"))
    clip = tiny_clip()
    form = {"engine": "video", "model": "starry_night-fast", "params": "{}"}

    def submit_clips(n: int) -> list[str]:
        ids = []
        for k in range(n):
            r = httpx.post(procs.url("/api/jobs"), headers=auth(), timeout=60, data=form,
                           files={"content": (f"clip{k}.mp4", clip, "video/mp4")})  # fmt: skip
            r.raise_for_status()
            ids.append(r.json()["id"])
        return ids

    try:
        procs.start_server(worker=not remote)
        if remote:  # its own scratch folder; it reaches the server only through the worker API
            scratch = data / "remote-worker"
            scratch.mkdir(parents=True)
            cmd = [sys.executable, "-m", "brushwork", "worker", "--server", procs.url(""), "--name", "remote-1",
                   "--device", "cpu"]  # fmt: skip
            STARTED.append(subprocess.Popen(cmd, env={**procs.env, "TMPDIR": str(scratch)}, cwd=scratch,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
            procs.worker = STARTED[-1]
        warm = submit_clips(1)
        if wait_done(data, warm, 300)[0] != 1:
            raise SystemExit("the warm-up clip did not finish")
        began = time.monotonic()
        ids = submit_clips(clips)
        done, _ = wait_done(data, ids, 900)
        seconds = time.monotonic() - began
    finally:
        procs.stop()
    return {"worker": "remote (worker API)" if remote else "in-process", "clips done": f"{done}/{clips}",
            "seconds": round(seconds, 1), "clips per minute": round(60 * done / seconds, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--fault-jobs", type=int, default=40)
    parser.add_argument("--video-clips", type=int, default=6, help="clips per video throughput run (0: none)")
    parser.add_argument("--video-only", action="store_true", help="only the video throughput runs")
    args = parser.parse_args()
    try:
        run_all(args)
    finally:
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def run_all(args: argparse.Namespace) -> None:
    runs = [] if args.video_only else [
        (f"{args.jobs} concurrent submissions", lambda d: load(Processes(d, free_port(), 5), args.jobs)),
        (f"kill -9 of worker and server, {args.fault_jobs} jobs", lambda d: faults(Processes(d, free_port(), 2),
                                                                                  args.fault_jobs)),
        ("hostile requests", lambda d: hostile(Processes(d, free_port(), 5))),
    ]  # fmt: skip
    if args.video_clips:
        runs += [(f"{args.video_clips} video clips, {where} worker", partial(video_throughput, clips=args.video_clips,
                                                                             remote=where == "remote"))
                 for where in ("in-process", "remote")]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n, (title, run) in enumerate(runs):
            data = Path(tmp) / f"{n}-{title.split()[0]}"
            print(f"\n## {title}")
            for key, value in run(data).items():
                print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
