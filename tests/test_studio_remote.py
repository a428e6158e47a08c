"""Workers that share nothing with the server but the network: the worker API (its own token, inputs only
of held jobs, bounded uploads, publishing once) driven in-process by a RemoteWorker."""

from __future__ import annotations

import io
import json
import logging
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from brushwork.records import new_record, read_record  # noqa: E402
from brushwork.studio.app import asgi_app  # noqa: E402
from brushwork.studio.config import Limits, StudioConfig  # noqa: E402
from brushwork.studio.remote import RemoteWorker  # noqa: E402
from tests.conftest import make_image  # noqa: E402

WORKER_TOKEN = "worker-secret-token-0123456789"
BROWSER_TOKEN = "browser-secret-token-987654321"
FAST = {"engine": "fast", "model": "starry_night-fast", "params": json.dumps({"image_size": 48})}


def png_bytes(width=40, height=30, seed=0) -> bytes:
    buf = io.BytesIO()
    make_image(width, height, seed, "noise").save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def config(tmp_path) -> StudioConfig:
    return StudioConfig(data_dir=tmp_path / "server", lease_seconds=5, token=BROWSER_TOKEN, worker_token=WORKER_TOKEN,
                        limits=Limits(upload_bytes=400_000, image_pixels=200_000))  # fmt: skip


def browser_client(config) -> TestClient:
    """The studio without its in-process worker, as a browser with the token reaches it (the other remote
    test files use it too)."""
    return TestClient(asgi_app(config, worker=False), base_url="http://127.0.0.1",
                      headers={"Authorization": f"Bearer {BROWSER_TOKEN}"})  # fmt: skip


def worker_scratch_folder(tmp_path, monkeypatch) -> Path:
    """The workers' own folder, apart from the server's data folder: their jobs' temporary folders go here."""
    folder = tmp_path / "worker"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def client(config):
    with browser_client(config) as c:
        yield c


def worker_api(client, token=WORKER_TOKEN) -> TestClient:
    """An HTTP client of the worker API on the same in-process server."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return TestClient(client.app, base_url="http://127.0.0.1/api/worker", headers=headers)


def remote_worker(client, name: str) -> RemoteWorker:
    worker = RemoteWorker("http://127.0.0.1", WORKER_TOKEN, device="cpu", lease=5, name=name, patience=2)
    worker.client.http = worker_api(client)
    return worker


def submit(client, seed=0) -> str:
    files = [("content", (f"photo{seed}.png", png_bytes(seed=seed), "image/png"))]
    response = client.post("/api/jobs", data=FAST, files=files)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_a_remote_worker_runs_jobs_and_the_server_publishes_them(client, config, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    ids = [submit(client, seed) for seed in range(2)]
    worker = remote_worker(client, "host-b:1")
    assert [worker.run_once(), worker.run_once(), worker.run_once()] == ["done", "done", None]
    for job_id in ids:
        job = client.get(f"/api/jobs/{job_id}").json()
        assert (job["status"], job["attempts"], job["worker"]) == ("done", 1, "host-b:1")
        got = client.get(job["images"][0])
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        saved = tmp_path / f"{job_id}.png"
        saved.write_bytes(got.content)
        record = read_record(saved)
        # Published by the server: its protection (a work ID in the watermark), the job's id in the record.
        assert record.extra["studio_job"] == job_id and record.extra["protection"]["work_id"]
        assert record.models and record.inputs["content"]["sha256"]
        assert "path" not in json.dumps(record.inputs)  # the worker's scratch paths are not kept
        assert Image.open(saved).size[0] > 0
    assert len(list(config.outputs.iterdir())) == 2
    everything = caplog.text + config.db_path.read_bytes().decode("latin-1")
    assert WORKER_TOKEN not in everything and BROWSER_TOKEN not in everything


def test_a_remote_worker_applies_the_network_that_comes_with_brushwork(client, config):
    form = {"engine": "adain", "model": "magenta", "params": json.dumps({"image_size": 64}),
            "style_ref": "example:shipwreck.jpg"}  # fmt: skip
    response = client.post("/api/jobs", data=form, files=[("content", ("photo.png", png_bytes(), "image/png"))])
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    claim = worker_api(client).post("/claim", json={"worker": "a", "job": job_id}).json()["claim"]
    refused = worker_api(client).get(f"/jobs/{job_id}/input/model", params={"claim": claim})
    assert refused.status_code == 404 and "comes with brushwork" in refused.json()["detail"]  # no file to serve
    with config_db(config) as db:  # that attempt's worker went away
        db.execute("UPDATE jobs SET lease_until = ? WHERE id = ?", (time.time() - 1, job_id))
    assert remote_worker(client, "host-b:1").run_once() == "done"
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["record"]["models"]["model"]["name"] == "magenta-arbitrary"


def test_the_worker_api_has_its_own_token(client):
    for token in (None, "wrong", BROWSER_TOKEN):  # the browser's token does not open the worker API
        assert worker_api(client, token).post("/claim", json={"worker": "w"}).status_code == 401
    assert worker_api(client).post("/claim", json={"worker": "w"}).json() == {"job": None}
    # ... and the worker's token does not open the browser's API.
    browser = TestClient(client.app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {WORKER_TOKEN}"})
    assert browser.get("/api/jobs").status_code == 401


def test_no_worker_api_without_a_worker_token(tmp_path):
    config = StudioConfig(data_dir=tmp_path / "server")
    with TestClient(asgi_app(config, worker=False), base_url="http://127.0.0.1") as plain:
        assert plain.post("/api/worker/claim", json={"worker": "w"}).status_code == 404


def test_a_worker_reads_only_the_inputs_of_jobs_it_holds(client):
    first, second = submit(client, 0), submit(client, 1)
    api = worker_api(client)
    mine = api.post("/claim", json={"worker": "a", "job": first}).json()
    theirs = api.post("/claim", json={"worker": "b", "job": second}).json()
    assert mine["job"]["id"] == first and theirs["job"]["id"] == second
    content = api.get(f"/jobs/{first}/input/content", params={"claim": mine["claim"]})
    assert content.status_code == 200 and Image.open(io.BytesIO(content.content)).size == (40, 30)
    assert api.get(f"/jobs/{first}/input/model", params={"claim": mine["claim"]}).status_code == 200
    # Another job's claim, no claim, a made-up claim: refused.
    assert api.get(f"/jobs/{first}/input/content", params={"claim": theirs["claim"]}).status_code == 409
    assert api.get(f"/jobs/{first}/input/content").status_code == 422
    assert api.get(f"/jobs/{first}/input/content", params={"claim": "0" * 32}).status_code == 409
    assert api.get(f"/jobs/{first}/input/style", params={"claim": mine["claim"]}).status_code == 404  # none
    # Once the job has ended, its claim opens nothing.
    assert api.post(f"/jobs/{first}/end", json={"claim": mine["claim"], "status": "cancelled"}).json() == {"ok": True}
    assert api.get(f"/jobs/{first}/input/content", params={"claim": mine["claim"]}).status_code == 409


def _publish(api, job_id, claim, image=None):
    files = [("image", ("0.png", image if image is not None else png_bytes(), "image/png"))]
    records = json.dumps([new_record("fast", {"image_size": 48}).to_dict()])
    return api.post(f"/jobs/{job_id}/publish", data={"claim": claim, "records": records}, files=files)


def test_a_job_is_published_once_whatever_the_retries_and_late_attempts(client, config):
    job_id = submit(client)
    api = worker_api(client)
    first = api.post("/claim", json={"worker": "a"}).json()["claim"]
    # The first attempt's lease runs out (its worker cut off); a second attempt takes the job over.
    with config_db(config) as db:
        db.execute("UPDATE jobs SET lease_until = ? WHERE id = ?", (time.time() - 1, job_id))
    second = api.post("/claim", json={"worker": "b"}).json()
    assert second["job"]["attempts"] == 2
    assert _publish(api, job_id, first).status_code == 409  # the late attempt publishes nothing
    published = _publish(api, job_id, second["claim"])
    assert published.json().get("status") == "done", published.text
    again = _publish(api, job_id, second["claim"])  # its answer was lost, so it sends again
    assert again.status_code == 200 and again.json()["again"] is True
    assert _publish(api, job_id, first).status_code == 409
    assert len(list(config.outputs.iterdir())) == 1
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["status"], job["attempts"], job["worker"]) == ("done", 2, "b")


def test_uploads_from_a_worker_are_bounded_like_a_users(client, config):
    job_id = submit(client)
    api = worker_api(client)
    claim = api.post("/claim", json={"worker": "a"}).json()["claim"]
    too_big = b"\0" * (config.limits.upload_bytes + 10)
    assert _publish(api, job_id, claim, too_big).status_code == 413
    buffer = io.BytesIO()
    Image.new("RGB", (600, 600)).save(buffer, "PNG")  # small file, too many pixels
    assert _publish(api, job_id, claim, buffer.getvalue()).status_code == 400
    assert _publish(api, job_id, claim, b"not an image").status_code == 400
    preview = api.post(f"/jobs/{job_id}/preview", data={"claim": claim},
                       files=[("image", ("p.jpg", buffer.getvalue(), "image/png"))])  # fmt: skip
    assert preview.status_code == 400
    assert list(config.outputs.iterdir()) == [] and list(config.previews.iterdir()) == []
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "running"  # still its to finish


def config_db(config):
    from brushwork.studio.jobs import JobStore

    return JobStore(config).transaction()


def test_urls_in_messages_and_logs_lose_their_passwords():
    from brushwork.studio.config import redact

    assert redact("redis://:s3cret@10.0.0.1:6379/0") == "redis://:***@10.0.0.1:6379/0"
    assert redact("postgresql://brushwork:s3cret@db/studio") == "postgresql://brushwork:***@db/studio"
    assert redact("redis://10.0.0.1:6379/0") == "redis://10.0.0.1:6379/0"
    with pytest.raises(Exception) as refused:
        StudioConfig(queue_url="http://user:s3cret@host/")
    assert "s3cret" not in str(refused.value)
