"""The job store on PostgreSQL: a real server of our own (initdb in a temporary folder, a Unix socket
only, as the postgres user when we are root), with the same claims, leases and single publication as
SQLite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("fastapi")

from brushwork.studio.config import StudioConfig  # noqa: E402
from brushwork.studio.store_postgres import PostgresJobStore, translate  # noqa: E402


def _pg_bin(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    return str(versions[-1]) if versions else None


INITDB, PG_CTL = _pg_bin("initdb"), _pg_bin("pg_ctl")
if INITDB is None or PG_CTL is None:
    pytest.skip("PostgreSQL is not installed (apt-get install postgresql)", allow_module_level=True)


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server on a Unix socket in a temporary folder; stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="bwpg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser")
        shutil.chown(folder, "postgres", "postgres")
        folder.chmod(0o755)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    started = False
    try:
        subprocess.run([*as_user, INITDB, "-D", str(data), "-U", "brushwork", "--auth=trust"], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        options = f"-c listen_addresses='' -c unix_socket_directories={folder}"
        subprocess.run([*as_user, PG_CTL, "-D", str(data), "-w", "-t", "60", "-l", str(folder / "log"), "-o", options,
                        "start"], check=True, capture_output=True, timeout=90)  # fmt: skip
        started = True
        yield f"postgresql://brushwork@/postgres?host={folder}"
    finally:
        if started:
            subprocess.run([*as_user, PG_CTL, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True,
                           timeout=60)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def store(postgres_url, tmp_path) -> PostgresJobStore:
    store = PostgresJobStore(StudioConfig(data_dir=tmp_path / "data", store_url=postgres_url, lease_seconds=5))
    with store.transaction() as db:  # each test starts from an empty table
        db.execute("DELETE FROM jobs")
        db.execute("DELETE FROM publications")
    return store


def add(store, n=1, params=None, model="starry_night-fast"):
    inputs = {"content": "example:tubingen.jpg", "styles": [], "model": model}
    return [store.add("fast", params or {"image_size": 32}, inputs, {"content": "t"}) for _ in range(n)]


def test_sqlite_sql_is_translated():
    assert translate("SELECT * FROM jobs WHERE id = ? AND x = :name") == (
        "SELECT * FROM jobs WHERE id = %s AND x = %(name)s"
    )
    assert translate("SELECT inputs::jsonb") == "SELECT inputs::jsonb"  # a cast is no placeholder


def test_claims_leases_and_one_publication(store):
    first, second = add(store, 2)
    (job, token), (other, token2) = store.claim(worker="a"), store.claim(worker="b")
    assert {job.id, other.id} == {first, second} and token != token2
    assert store.claim(worker="c") is None  # both held
    assert store.renew(job.id, token, progress=0.5) and not store.renew(job.id, token2)
    assert store.get(job.id).progress == 0.5 and store.get(job.id).worker == "a"
    # The lease runs out (worker a cut off): another attempt takes over, and a's writes are refused.
    with store.transaction() as db:
        db.execute("UPDATE jobs SET lease_until = ? WHERE id = ?", (time.time() - 1, job.id))
    again, token3 = store.claim(worker="c")
    assert again.id == job.id and again.attempts == 2
    assert not store.publish(job.id, token, ["late.png"], None)
    assert store.publish(job.id, token3, ["out.png"], json.dumps({"engine": "fast"}))
    assert not store.publish(job.id, token3, ["twice.png"], None)  # done: never published again
    assert store.publication(job.id)["claim"] == token3
    done = store.get(job.id)
    assert (done.status, done.outputs, done.attempts, done.worker) == ("done", ["out.png"], 2, "c")
    assert store.finish(other.id, token2, "failed", error="boom") and store.counts() == {"done": 1, "failed": 1}


def test_concurrent_claims_never_share_a_job(store):
    ids = set(add(store, 24))
    got: list[str] = []
    lock = threading.Lock()

    def take():
        while (claimed := store.claim(worker=threading.current_thread().name)) is not None:
            with lock:
                got.append(claimed[0].id)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(got) == sorted(ids)  # each job once


def test_batches_are_claimed_by_model_and_settings(store):
    same = add(store, 3)
    add(store, 1, model="adain-lite0")
    add(store, 1, params={"image_size": 48})
    claims = store.claim_batch(worker="w", limit=8, batchable=("fast",))
    assert sorted(job.id for job, _ in claims) == sorted(same)


def test_the_studio_on_postgres_with_a_remote_worker(store, postgres_url, tmp_path):
    from fastapi.testclient import TestClient

    from brushwork.studio.app import asgi_app
    from brushwork.studio.remote import RemoteWorker

    config = StudioConfig(data_dir=tmp_path / "server", store_url=postgres_url, worker_token="w" * 24)
    with TestClient(asgi_app(config, worker=False), base_url="http://127.0.0.1") as client:
        form = {"engine": "fast", "model": "starry_night-fast", "content_ref": "example:tubingen.jpg",
                "params": json.dumps({"image_size": 32})}  # fmt: skip
        job_id = client.post("/api/jobs", data=form).json()["id"]
        worker = RemoteWorker("http://127.0.0.1", "w" * 24, device="cpu", name="elsewhere", patience=2)
        worker.client.http = TestClient(client.app, base_url="http://127.0.0.1/api/worker",
                                        headers={"Authorization": "Bearer " + "w" * 24})  # fmt: skip
        status = worker.run_once()
        job = client.get(f"/api/jobs/{job_id}").json()
        assert status == "done", job["error"]
        assert (job["status"], job["worker"], job["attempts"]) == ("done", "elsewhere", 1)
        assert client.get(job["images"][0]).headers["content-type"] == "image/png"
        assert [item["job"] for item in client.get("/api/gallery").json()] == [job_id]


def test_sweeps_by_column_and_an_old_table_back_filled(store):
    """sweep_id is filled on add; a table from before the column gets it, filled from the labels, on opening."""
    inputs = {"content": "example:tubingen.jpg", "styles": [], "model": "starry_night-fast"}
    cells = [store.add("fast", {"image_size": 32}, inputs, {"sweep": {"id": "new", "x": i}}) for i in range(3)]
    add(store, 2)
    assert [j.id for j in store.jobs_of_sweep("new")] == cells
    with store.transaction() as db:  # as an earlier release left it: no column, the id only in the labels
        db.execute("DROP INDEX jobs_sweep")
        db.execute("ALTER TABLE jobs DROP COLUMN sweep_id")
    reopened = PostgresJobStore(store.config)
    assert [j.id for j in reopened.jobs_of_sweep("new")] == cells
    assert reopened.jobs_of_sweep("none") == []
