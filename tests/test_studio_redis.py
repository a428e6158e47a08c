"""Scale-out: the same job API with RQ on a real local redis-server (random port, loopback only) and
two ``brushwork worker --queue`` processes sharing the data folder."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("rq")
REDIS = shutil.which("redis-server")
if REDIS is None:
    pytest.skip("redis-server is not installed (apt-get install redis-server)", allow_module_level=True)

from fastapi.testclient import TestClient  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Worker as RQWorker  # noqa: E402

from brushwork.studio.app import asgi_app  # noqa: E402
from brushwork.studio.config import StudioConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def redis_url(tmp_path):
    port = free_port()
    server = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"

    def up() -> bool:
        try:
            return Redis.from_url(url).ping()
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    try:
        wait_for(up, 20, "redis-server")
        yield url
    finally:
        server.terminate()
        server.wait(10)


def test_jobs_through_rq_and_two_workers(tmp_path, redis_url):
    data = tmp_path / "data"
    config = StudioConfig(data_dir=data, queue_url=redis_url, lease_seconds=10)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "brushwork", "worker", "--queue", redis_url, "--data", str(data), "--lease", "10"]
    logs = [tmp_path / f"worker{n}.log" for n in range(2)]
    workers = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w")) for log in logs]

    def two_workers_up() -> bool:
        exited = [w.returncode for w in workers if w.poll() is not None]
        assert not exited, (exited, [log.read_text()[-2000:] for log in logs])  # a worker died: say why
        return len(RQWorker.all(connection=redis)) == 2

    try:
        redis = Redis.from_url(redis_url)
        try:
            wait_for(two_workers_up, 120, "two RQ workers")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; their logs: {[log.read_text()[-2000:] for log in logs]}") from None
        with TestClient(asgi_app(config, worker=False), base_url="http://127.0.0.1") as client:
            params = json.dumps({"backbone": "lite0", "image_size": 32, "iterations": 15})
            form = {"engine": "stylize", "params": params, "content_ref": "example:tubingen.jpg",
                    "style_ref": "example:starry_night.jpg"}  # fmt: skip
            ids = [client.post("/api/jobs", data=form).json()["id"] for _ in range(6)]

            def all_done() -> bool:
                return all(client.get(f"/api/jobs/{i}").json()["status"] == "done" for i in ids)

            wait_for(all_done, 150, "six jobs")
            jobs = [client.get(f"/api/jobs/{i}").json() for i in ids]
        summary = [(j["attempts"], j["worker"], j["error"]) for j in jobs]  # shown if a check below fails
        assert [j["attempts"] for j in jobs] == [1] * 6, summary  # each ran once
        assert len({j["worker"] for j in jobs}) == 2, summary  # both workers took jobs
        assert len(list((data / "outputs").iterdir())) == 6
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(20)
