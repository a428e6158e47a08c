"""The studio: job queue (claims, leases, cancel, kill -9), REST API, limits, token, gallery, ratings."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sse_starlette")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from brushwork import api  # noqa: E402
from brushwork.errors import BrushworkError  # noqa: E402
from brushwork.protect.protection import Protection  # noqa: E402
from brushwork.records import read_record  # noqa: E402
from brushwork.studio.app import asgi_app  # noqa: E402
from brushwork.studio.config import Limits, StudioConfig  # noqa: E402
from brushwork.studio.jobs import JobStore, Worker  # noqa: E402
from brushwork.studio.service import Studio  # noqa: E402
from tests.conftest import make_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = {"backbone": "lite0", "image_size": 32, "iterations": 2}


def png_bytes(width=40, height=30, seed=0, kind="gradient") -> bytes:
    buf = io.BytesIO()
    make_image(width, height, seed, kind).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def config(tmp_path) -> StudioConfig:
    return StudioConfig(data_dir=tmp_path / "data", lease_seconds=5,
                        limits=Limits(upload_bytes=2_000_000, image_pixels=1_000_000, params_bytes=4096))  # fmt: skip


@pytest.fixture
def client(config):
    with TestClient(asgi_app(config, worker=False), base_url="http://127.0.0.1") as c:
        yield c


def submit(client, params=FAST, content=None, styles=("example:starry_night.jpg",), engine="stylize", **extra):
    files = [("content", ("photo.png", content or png_bytes(), "image/png"))]
    data = {"engine": engine, "params": json.dumps(params), "style_ref": list(styles), **extra}
    return client.post("/api/jobs", data=data, files=files)


def stored(config) -> tuple[int, int]:
    """(jobs in the database, files in uploads/): what a refused request must leave unchanged."""
    return len(JobStore(config).list()), len([p for p in config.uploads.iterdir()])


def test_job_runs_through_the_api_with_previews_events_and_record(client, config):
    response = submit(client, {**FAST, "iterations": 3})
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "queued"  # on disk before the worker ran
    assert Worker(JobStore(config)).run_once() == "done"

    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done" and job["progress"] == 1.0 and job["attempts"] == 1
    assert job["preview"] and client.get(job["preview"]).headers["content-type"] == "image/jpeg"
    image = client.get(f"/api/jobs/{job_id}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    out = config.data_dir / "got.png"
    out.write_bytes(image.content)
    record = read_record(out)
    assert record.engine == "stylize" and record.parameters["iterations"] == 3 and record.extra["studio_job"] == job_id
    assert job["record"]["inputs"]["content"] == {k: v for k, v in record.inputs["content"].items() if k != "path"}
    assert str(config.data_dir) not in json.dumps(job)  # no server paths over the API
    assert Image.open(out).size == (32, 24)

    with client.stream("GET", f"/api/jobs/{job_id}/events") as events:
        text = "".join(events.iter_text())
    assert "event: progress" in text and "event: done" in text

    gallery = client.get("/api/gallery", params={"engine": "stylize", "style": "starry"}).json()
    assert [g["job"] for g in gallery] == [job_id]
    assert gallery[0]["params"] == {"backbone": "lite0", "image_size": 32, "iterations": 3}  # for restore
    assert client.get("/api/gallery", params={"engine": "fast"}).json() == []
    assert client.get("/api/gallery", params={"since": "2999-01-01"}).json() == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"image_size": 0}, "image size must be between"),
        ({"imagesize": 64}, "unknown parameter 'imagesize'"),
        ({"iterations": "many"}, "iterations: expected a whole number"),
        ({"style_blend_weights": [1, 2]}, "1 style images but 2 blend weights"),
        ({"style_blend": [1]}, "unknown parameter 'style_blend'"),
        ({"optimizer": "sgd"}, "optimizer: must be one of"),
        ({"image_size": 9000}, "above this studio's limit"),
        ({"weights": "/etc/passwd"}, "unknown parameter 'weights'"),
    ],
)
def test_parameters_checked_by_the_api_rules_before_queueing(client, config, params, message):
    before = stored(config)
    response = submit(client, params)
    assert response.status_code == 400 and message in response.json()["detail"]
    assert stored(config) == before


def test_refused_requests_store_nothing(client, config):
    before = stored(config)
    cases = {
        "not an image": submit(client, content=b"#!/bin/sh\nrm -rf /\n"),
        "bomb": submit(client, content=png_bytes(1100, 1000)),
        "bad json": client.post("/api/jobs", data={"engine": "stylize", "params": "{"}),
        "huge json": client.post("/api/jobs", data={"engine": "stylize", "params": json.dumps({"x": "y" * 5000})}),
        "engine": client.post("/api/jobs", data={"engine": "../../bin/sh"}),
        "library trick": submit(client, styles=("example:../../../etc/passwd",)),
    }
    for name in ("../../x.png", "/etc/passwd", "..\\..\\x.png", ".hidden.png"):
        form = {"engine": "stylize", "params": "{}", "style_ref": "example:starry_night.jpg"}
        cases[name] = client.post("/api/jobs", data=form, files=[("content", (name, png_bytes(), "image/png"))])
    big = b"\x89PNG" + b"\0" * 2_100_000
    cases["too large"] = client.post("/api/jobs", data={"engine": "stylize"}, files=[("content", ("a.png", big))])
    for name, response in cases.items():
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        assert isinstance(response.json()["detail"], (str, list)), name
    assert cases["too large"].status_code == 413
    assert "not an image" in cases["not an image"].json()["detail"]
    assert "too large" in cases["bomb"].json()["detail"]
    assert "refused" in cases["../../x.png"].json()["detail"]
    assert stored(config) == before
    assert not list(config.data_dir.parent.glob("x.png"))


def test_token_required_when_set(config):
    config.token = "s3cret-token"
    with TestClient(asgi_app(config, worker=False), base_url="http://127.0.0.1") as client:
        assert client.get("/api/jobs").status_code == 401
        assert client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/", params={"token": "wrong"}).status_code == 401
        assert submit(client).status_code == 401
        assert stored(config) == (0, 0)
        assert client.get("/api/jobs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        page = client.get("/", params={"token": "s3cret-token"})  # sets the cookie, then the page loads
        assert page.status_code == 200 and "brushwork studio" in page.text
        assert client.get("/api/jobs").status_code == 200


def test_cancel_queued_and_running(client, config):
    queued = submit(client).json()["id"]
    assert client.delete(f"/api/jobs/{queued}").json()["status"] == "cancelled"
    assert client.delete(f"/api/jobs/{queued}").json()["trashed"]  # an ended job: deleted from the queue
    assert queued not in {j["id"] for j in client.get("/api/jobs").json()}
    assert client.delete("/api/jobs/" + "0" * 32).status_code == 404

    running = submit(client, {**FAST, "image_size": 48, "iterations": 3000}).json()["id"]
    worker = Worker(JobStore(config))
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{running}").json()["progress"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.delete(f"/api/jobs/{running}").status_code == 200
    thread.join(60)
    job = client.get(f"/api/jobs/{running}").json()
    assert job["status"] == "cancelled" and job["progress"] < 1
    assert not list(config.outputs.iterdir())


def test_claims_are_atomic_and_leases_expire(config):
    config.lease_seconds = 0.5
    store = JobStore(config)
    ids = {store.add("stylize", {}, {}, {}) for _ in range(30)}
    claimed: list[str] = []

    def claim_all():
        while (got := store.claim()) is not None:
            claimed.append(got[0].id)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # each job exactly once

    job_id = next(iter(ids))
    first = store.get(job_id)
    time.sleep(0.6)  # the first worker "died": no heartbeat
    job, token = store.claim(job_id)
    assert job.attempts == 2 and token != first.claim
    # The first attempt can no longer report progress or publish a result.
    assert not store.renew(job_id, first.claim, progress=0.5)
    assert not store.finish(job_id, first.claim, "done", outputs="[]")
    assert store.finish(job_id, token, "done", outputs="[]")


def test_jobs_interrupted_too_often_fail(config):
    config.lease_seconds, config.max_attempts = 0.2, 2
    store = JobStore(config)
    job_id = store.add("stylize", {}, {}, {})
    for _ in range(2):
        assert store.claim() is not None
        time.sleep(0.3)
    assert store.claim() is None
    job = store.get(job_id)
    assert job.status == "failed" and "interrupted 2 times" in job.error


def test_worker_killed_mid_job_reruns_after_restart(client, config):
    job_id = submit(client, {**FAST, "iterations": 60}).json()["id"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "brushwork", "worker", "--data", str(config.data_dir), "--lease", "1"]
    worker = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while client.get(f"/api/jobs/{job_id}").json()["progress"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(10)
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "running" and 0 < job["progress"] < 1
    subprocess.run(cmd + ["--burst"], env=env, check=True, timeout=120, capture_output=True)
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done" and job["attempts"] == 2
    assert len(list(config.outputs.iterdir())) == 1


def test_killed_optimisation_resumes_from_its_last_intermediate(client, config):
    job_id = submit(client, {**FAST, "iterations": 400}).json()["id"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "brushwork", "worker", "--data", str(config.data_dir), "--lease", "1",
           "--intermediate-seconds", "0.3"]  # fmt: skip
    worker = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kept = config.job_dir(job_id)
    try:
        deadline = time.monotonic() + 90
        while not list(kept.glob("step-*.png")) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(10)
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "running"
    saved_step = read_record(max(kept.glob("step-*.png"))).extra["step"]  # the newest, if killed mid-replace
    assert 0 < saved_step < 400

    subprocess.run(cmd + ["--burst"], env=env, check=True, timeout=300, capture_output=True)
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done" and job["attempts"] == 2
    assert job["record"]["parameters"]["resumed_from_step"] >= saved_step  # not from the start
    assert not kept.exists()  # the job's working folder goes when it ends


@pytest.mark.parametrize("engine", ["fast", "adain"])
def test_compatible_jobs_run_as_one_batch(client, config, monkeypatch, engine):
    from brushwork.studio.engines import ENGINES

    config.batch_size = 8  # the CPU's default is one at a time

    params = {"strength": 0.7, "image_size": 48}
    # Two picture shapes: the batch makes one forward pass per shape.
    contents = [png_bytes(40, 30, seed=s, kind="noise") for s in range(3)] + [png_bytes(30, 40, seed=9, kind="noise")]
    if engine == "fast":
        job = {"styles": (), "engine": "fast", "model": "starry_night-fast"}
    else:
        job = {"styles": ("example:shipwreck.jpg",), "engine": "adain", "model": "adain-lite0"}
    ids = [submit(client, params, content=c, **job).json()["id"] for c in contents]
    other = submit(client, {**params, "strength": 0.3}, **job).json()["id"]  # other settings: another batch

    def alone(*args):
        raise AssertionError("a batched job ran on its own")

    monkeypatch.setattr(ENGINES[engine], "run", alone)
    assert Worker(JobStore(config)).run_once() == "done"  # one pass
    assert client.get(f"/api/jobs/{other}").json()["status"] == "queued"
    model = api.load_model(ROOT / f"brushwork/examples/{job['model']}.safetensors")
    for job_id, content in zip(ids, contents, strict=True):
        done = client.get(f"/api/jobs/{job_id}").json()
        assert done["status"] == "done" and done["attempts"] == 1 and done["record"]["parameters"]["strength"] == 0.7
        got = client.get(done["images"][0]).content
        assert (
            read_record(_saved(config, got)).inputs["content"]["sha256"]
            == done["record"]["inputs"]["content"]["sha256"]
        )
        photo = Image.open(io.BytesIO(content))
        if engine == "fast":
            by_itself = api.fast_apply(model, photo, **params)
        else:
            by_itself = api.adain_apply(model, photo, ROOT / "brushwork/examples/shipwreck.jpg", **params)
        # The same picture as its own run, given the same watermark (the job's work ID) as the job's output.
        work_id = done["record"]["extra"]["protection"]["work_id"]
        marking = Protection(provenance=False, register=False, work_id=work_id)
        expected = marking.before_write(by_itself, api.record_of(by_itself), Path("by-itself.png"))
        assert np.abs(np.asarray(Image.open(io.BytesIO(got)), np.int16) - np.asarray(expected, np.int16)).max() <= 2


def test_a_failing_batch_runs_its_jobs_one_by_one(client, config):
    config.batch_size = 8
    fast = {"styles": (), "engine": "fast", "model": "starry_night-fast"}
    good = submit(client, {"strength": 0.5}, content=png_bytes(40, 30), **fast).json()["id"]
    tiny = submit(client, {"strength": 0.5}, content=png_bytes(6, 4), **fast).json()["id"]
    assert Worker(JobStore(config)).run_once() == "done"
    assert client.get(f"/api/jobs/{good}").json()["status"] == "done"
    failed = client.get(f"/api/jobs/{tiny}").json()
    assert failed["status"] == "failed" and "too small" in failed["error"]


def test_batch_size_defaults_to_one_job_at_a_time_on_the_cpu(tmp_path):
    assert StudioConfig(data_dir=tmp_path).batch_for("cpu") == 1  # measured faster there at 256 px
    assert StudioConfig(data_dir=tmp_path, batch_size=4).batch_for("cpu") == 4
    with pytest.raises(BrushworkError, match="batch size"):
        StudioConfig(data_dir=tmp_path, batch_size=0)


def _saved(config, data: bytes) -> Path:
    path = config.data_dir / "got.png"
    path.write_bytes(data)
    return path


def test_batched_forward_equals_single_runs():
    fast = api.load_model(ROOT / "brushwork/examples/starry_night-fast.safetensors")
    adain = api.load_model(ROOT / "brushwork/examples/adain-lite0.safetensors")
    styles = [ROOT / "brushwork/examples/shipwreck.jpg", ROOT / "brushwork/examples/starry_night.jpg"]
    pictures = [make_image(40, 30, s, "noise") for s in range(3)] + [make_image(30, 40, 5, "stripes")]
    runs = {
        "fast": (
            lambda many, **o: api.fast_apply_many(fast, many, **o),
            lambda one, **o: api.fast_apply(fast, one, **o),
        ),
        "adain": (
            lambda many, **o: api.adain_apply_many(adain, many, styles, style_blend_weights=[1, 2], **o),
            lambda one, **o: api.adain_apply(adain, one, styles, style_blend_weights=[1, 2], **o),
        ),
    }
    for engine, (batched_run, single_run) in runs.items():
        for colours in ("none", "luminance", "histogram"):
            batched = batched_run(pictures, strength=0.8, preserve_colors=colours)
            for picture, result in zip(pictures, batched, strict=True):
                single = single_run(picture, strength=0.8, preserve_colors=colours)
                assert np.abs(np.asarray(result, np.int16) - np.asarray(single, np.int16)).max() <= 1, (engine, colours)
                assert api.record_of(result).parameters["preserve_colors"] == colours


def test_ratings_pairs_and_gallery_filter(client, config):
    ids = [submit(client, {**FAST, "seed": s, "init": "noise"}).json()["id"] for s in range(3)]
    worker = Worker(JobStore(config))
    while worker.run_once():
        pass
    pair = client.get("/api/ratings/pair").json()
    assert len(pair) == 2 and pair[0]["id"] != pair[1]["id"]
    winner, loser = f"{ids[0]}:0", f"{ids[1]}:0"
    assert client.post("/api/ratings", json={"winner": winner, "loser": loser}).status_code == 201
    assert client.post("/api/ratings", json={"winner": winner, "loser": winner}).status_code == 400
    assert client.post("/api/ratings", json={"winner": winner, "loser": "f" * 32 + ":0"}).status_code == 400
    assert client.get("/api/ratings").json()[winner] == {"wins": 1, "losses": 0}
    # They are in the judge's store, for `brushwork judge rank` and the taste model.
    from brushwork.judge.ratings import RatingsStore

    with RatingsStore(config.data_dir / "ratings.db") as store:
        (judgement,) = store.judgements()
        assert judgement.rater == "studio" and Path(store.image_path(judgement.winner)).name.startswith(ids[0])
    best = client.get("/api/gallery", params={"min_rating": 0.5}).json()
    assert [g["id"] for g in best] == [winner]
    # The next pair avoids the pair already rated.
    assert {p["id"] for p in client.get("/api/ratings/pair").json()} != {winner, loser}


def test_gallery_delete_goes_to_the_trash_and_favourites_filter(client, config):
    kept, starred, deleted = (submit(client, {**FAST, "seed": s, "init": "noise"}).json()["id"] for s in range(3))
    worker = Worker(JobStore(config))
    while worker.run_once():
        pass
    output = JobStore(config).get(deleted).outputs[0]
    # Favourites: starred, listed alone, and unstarred.
    assert client.put(f"/api/jobs/{starred}/favourite", json={"favourite": True}).json()["favourite"] is True
    assert [g["job"] for g in client.get("/api/gallery", params={"favourites": True}).json()] == [starred]
    assert 'data-image="' + starred in client.get("/ui/gallery", params={"favourites": "1"}).text
    assert kept not in client.get("/ui/gallery", params={"favourites": "1"}).text
    assert client.put(f"/api/jobs/{starred}/favourite", json={"favourite": "maybe"}).status_code == 422
    # Delete: gone from the gallery and the queue, its file moved to trash/, never removed.
    job = client.delete(f"/api/jobs/{deleted}").json()
    assert job["trashed"] and job["images"] == [] and job["status"] == "done"
    assert {g["job"] for g in client.get("/api/gallery").json()} == {kept, starred}
    assert deleted not in {j["id"] for j in client.get("/api/jobs").json()}
    assert not (config.outputs / output).exists() and (config.trash / output).is_file()
    assert client.get(f"/api/jobs/{deleted}/image").status_code == 404
    assert client.put(f"/api/jobs/{deleted}/favourite", json={"favourite": True}).status_code == 409
    with pytest.raises(BrushworkError, match="no finished image"):  # nor rated any more
        Studio(config).image_file(f"{deleted}:0")


def test_a_failed_move_to_the_trash_leaves_the_job_and_its_files(client, config, monkeypatch):
    job_id = submit(client, {**FAST, "init": "noise"}).json()["id"]
    Worker(JobStore(config)).run_once()
    name = JobStore(config).get(job_id).outputs[0]
    real_replace = Path.replace

    def full_disk(self, target):
        if Path(target).parent == config.trash:
            raise OSError(28, "No space left on device")
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", full_disk)
    refused = client.delete(f"/api/jobs/{job_id}")
    assert refused.status_code == 500 and "No space left" in refused.json()["detail"]
    assert (config.outputs / name).is_file()
    assert JobStore(config).get(job_id).trashed is None
    assert [g["job"] for g in client.get("/api/gallery").json()] == [job_id]


def test_uploads_and_jobs_are_shown_by_their_names(client):
    files = [("content", ("my photo.png", png_bytes(), "image/png")),
             ("style", ("blue period.png", png_bytes(seed=5, kind="noise"), "image/png"))]  # fmt: skip
    job = client.get(client.post("/api/jobs", data={"engine": "stylize", "params": json.dumps(FAST)},
                                 files=files).json()["url"]).json()  # fmt: skip
    assert job["caption"] == "my photo.png × blue period.png"
    names = {i["name"] for i in client.get("/api/images").json() if i["source"] == "upload"}
    assert names == {"my photo.png", "blue period.png"}  # not their hashes
    fast = client.post("/api/jobs", data={"engine": "fast", "params": "{}", "content_ref": "example:tubingen.jpg",
                                          "model": "starry_night-fast"}).json()  # fmt: skip
    assert client.get(fast["url"]).json()["caption"] == "tubingen.jpg · model starry_night-fast"


def test_png_info_reads_a_picture_back_into_settings(client, config):
    job_id = submit(client, {**FAST, "seed": 7, "style_weight": 300}).json()["id"]
    Worker(JobStore(config)).run_once()
    job = client.get(f"/api/jobs/{job_id}").json()
    made = client.get(job["images"][0]).content
    uploads = sorted(config.uploads.iterdir())
    info = client.post("/api/png-info", files={"image": ("dropped.png", made, "image/png")}).json()
    assert info["engine"] == "stylize" and info["params"]["style_weight"] == 300 and info["params"]["seed"] == 7
    assert info["params"]["iterations"] == 2 and info["params"]["backbone"] == "lite0"
    # Its inputs are found in the library by their hashes: the form can run it again as it was.
    assert info["content_ref"] == job["inputs"]["content"] and info["style_refs"] == ["example:starry_night.jpg"]
    assert sorted(config.uploads.iterdir()) == uploads  # nothing kept
    # Another tool's PNG: its own text, to read.
    from PIL.PngImagePlugin import PngInfo

    chunk = PngInfo()
    chunk.add_text("parameters", "a lighthouse at dusk\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42")
    buf = io.BytesIO()
    make_image(32, 32).save(buf, "PNG", pnginfo=chunk)
    foreign = client.post("/api/png-info", files={"image": ("a1111.png", buf.getvalue(), "image/png")}).json()
    assert foreign["engine"] is None and "Sampler: Euler a" in foreign["text"]
    plain = client.post("/api/png-info", files={"image": ("plain.png", png_bytes(), "image/png")})
    assert plain.status_code == 400 and "plain.png: carries no settings" in plain.json()["detail"]
    junk = client.post("/api/png-info", files={"image": ("x.png", b"not an image", "image/png")})
    assert junk.status_code == 400 and "x.png" in junk.json()["detail"] and "/" not in junk.json()["detail"]


def sweep(client, spec, params=FAST, engine="stylize", **extra):
    data = {"engine": engine, "params": json.dumps(params), "sweep": json.dumps(spec),
            "content_ref": "example:tubingen.jpg", "style_ref": ["example:starry_night.jpg"], **extra}  # fmt: skip
    return client.post("/api/sweeps", data=data)


def test_xy_sweep_and_batch_queue_one_job_per_cell(client, config):
    spec = {"x": {"name": "style_weight", "values": [10, 1000]}, "y": {"name": "init", "values": ["content", "noise"]}}
    made = sweep(client, spec).json()
    assert len(made["jobs"]) == 4
    grid = client.get(made["url"]).json()
    assert [(c["x"], c["y"]) for c in grid["cells"]] == [
        (["style_weight", 10], ["init", "content"]), (["style_weight", 10], ["init", "noise"]),
        (["style_weight", 1000], ["init", "content"]), (["style_weight", 1000], ["init", "noise"])]  # fmt: skip
    assert [(c["job"]["params"]["style_weight"], c["job"]["params"]["init"]) for c in grid["cells"]] == [
        (10, "content"), (10, "noise"), (1000, "content"), (1000, "noise")]  # fmt: skip
    worker = Worker(JobStore(config))
    while worker.run_once():
        pass
    page = client.get(f"/ui/sweep/{made['id']}").text
    assert page.count("<img ") == 4 and "4 of 4" in page and "style weight" in page
    # A batch: the same settings, seeds counted up from the one given.
    batch = client.get(sweep(client, {"batch": 3}, {**FAST, "seed": 5}).json()["url"]).json()
    assert [c["seed"] for c in batch["cells"]] == [5, 6, 7]
    assert [c["job"]["params"]["seed"] for c in batch["cells"]] == [5, 6, 7]


def test_a_sweep_is_found_by_its_column_behind_many_newer_jobs(client, config):
    """The sweep view reads the indexed sweep_id, not a window of the newest jobs (it once scanned 5000)."""
    import sqlite3

    made = sweep(client, {"batch": 2}, {**FAST, "seed": 1}).json()
    later = time.time() + 1
    with sqlite3.connect(config.db_path) as db:  # 6000 newer jobs, inserted directly: the API is not under test
        db.executemany(
            "INSERT INTO jobs (id, engine, params, inputs, labels, created) VALUES (?, 'stylize', '{}', '{}', ?, ?)",
            [(f"n{i}", json.dumps({"sweep": {"id": "other"}} if i % 2 else {}), later + i) for i in range(6000)],
        )
        plan = db.execute("EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE sweep_id = ?", ("x",)).fetchall()
    assert "jobs_sweep" in " ".join(str(tuple(r)) for r in plan)
    grid = client.get(made["url"]).json()
    assert [c["job"]["id"] for c in grid["cells"]] == made["jobs"] and [c["seed"] for c in grid["cells"]] == [1, 2]
    # Read from the column: a label alone (as the direct inserts wrote) counts only when an old database is migrated.
    assert JobStore(config).jobs_of_sweep("other") == []
    assert client.get("/api/sweeps/" + "0" * 32).status_code == 404


@pytest.mark.parametrize(
    ("spec", "message", "engine", "extra"),
    [
        ({"x": {"name": "colour", "values": [1]}}, "stylize has no setting 'colour'", "stylize", {}),
        ({"x": {"name": "style_weight", "values": [10, -1]}}, "style weight must be a finite number", "stylize", {}),
        (
            {"x": {"name": "style_weight", "values": list(range(1, 10))}, "batch": 8},
            "72 jobs; at most 64",
            "stylize",
            {},
        ),
        ({"batch": 2}, "fast has no seed", "fast", {"model": "starry_night-fast"}),
        ({"x": {"name": "seed", "values": [1, 2]}, "batch": 2}, "not both", "stylize", {}),
        ({"z": 1}, 'with "x", "y" and/or "batch"', "stylize", {}),
    ],
)
def test_a_refused_sweep_queues_nothing(client, config, spec, message, engine, extra):
    params = {} if engine == "fast" else FAST
    refused = sweep(client, spec, params, engine, **({"style_ref": []} if engine == "fast" else {}), **extra)
    assert refused.status_code == 400 and message in refused.json()["detail"], refused.json()
    assert stored(config)[0] == 0


def test_a_style_mask_sends_the_style_to_its_region(client, config):
    mask = Image.new("L", (40, 30), 0)
    mask.paste(255, (0, 0, 20, 30))  # the left half takes the painting; the right keeps the photo
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    files = [("content", ("photo.png", png_bytes(), "image/png")), ("mask", ("mask.png", buf.getvalue(), "image/png"))]
    form = {"engine": "stylize", "params": json.dumps(FAST), "style_ref": "example:starry_night.jpg"}
    job_id = client.post("/api/jobs", data=form, files=files).json()["id"]
    Worker(JobStore(config)).run_once()
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done", job["error"]
    assert job["inputs"]["masks"][0].startswith("upload:")
    assert [m["name"] for m in job["record"]["inputs"]["style_masks"]][0].endswith(".png")
    # Refused before anything is stored: masks on an engine without them, or the wrong number.
    three = ["example:starry_night.jpg", "example:shipwreck.jpg", "example:tubingen.jpg"]
    for engine, styles, message in [("fast", [], "fast: takes no style masks"),
                                    ("stylize", three, "3 style image(s) but 1 mask(s)")]:  # fmt: skip
        before = stored(config)
        refused = client.post("/api/jobs", data={"engine": engine, "params": "{}", "style_ref": styles,
                                                 "content_ref": "example:tubingen.jpg", "model": "starry_night-fast"
                                                 if engine == "fast" else ""},
                              files=[("mask", ("m.png", buf.getvalue(), "image/png"))])  # fmt: skip
        assert refused.status_code == 400 and message in refused.json()["detail"], refused.json()
        assert stored(config) == before


def test_a_model_uploaded_to_the_studio_is_checked_listed_and_applied(client, config):
    bundled = Path(api.__file__).parent / "examples"
    weights, described = (bundled / "starry_night-fast.safetensors").read_bytes(), (
        bundled / "starry_night-fast.json").read_bytes()  # fmt: skip

    def upload(name, data=weights, description=described):
        files = {"model": (name, data, "application/octet-stream"), "description": ("m.json", description, "text/json")}
        return client.post("/api/models", files=files)

    assert upload("my-night.safetensors").json() == {"name": "my-night", "engine": "fast", "source": "data"}
    assert {"name": "my-night", "engine": "fast", "source": "data"} in client.get("/api/models").json()
    assert upload("my-night.safetensors").status_code == 409  # never replaced
    assert upload("starry_night-fast.safetensors").status_code == 409  # nor a bundled one shadowed
    broken = upload("broken.safetensors", data=weights[: len(weights) // 2])
    assert broken.status_code == 400 and "broken.safetensors" in broken.json()["detail"]
    assert "/" not in broken.json()["detail"]
    alien = upload("alien.safetensors", description=b'{"kind": "something-else"}')
    assert alien.status_code == 400 and "not a fast or AdaIN model" in alien.json()["detail"]
    assert sorted(p.name for p in config.models.iterdir()) == ["my-night.json", "my-night.safetensors"]
    job_id = client.post("/api/jobs", data={"engine": "fast", "params": "{}", "content_ref": "example:tubingen.jpg",
                                            "model": "my-night"}).json()["id"]  # fmt: skip
    Worker(JobStore(config)).run_once()
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "done"


def test_listings_and_page(client):
    engines = {e["name"]: e for e in client.get("/api/engines").json()}
    controls = {c["name"]: c for c in engines["stylize"]["controls"]}
    assert controls["style_blend_weights"]["flag"] == "--style-blend-weights"
    assert controls["image_size"]["default"] == api.StyleConfig().image_size
    # Help and choices come from the config's fields, as on the CLI (brushwork.settings).
    assert controls["optimizer"]["choices"] == list(api.OPTIMIZERS) and "adam" in controls["optimizer"]["help"]
    images = {i["ref"] for i in client.get("/api/images").json()}
    assert {"example:tubingen.jpg", "example:starry_night.jpg"} <= images
    assert client.get("/api/images/example:tubingen.jpg").status_code == 200
    assert client.get("/api/images/example:..%2F..%2Fapi.py").status_code == 404
    models = {m["name"]: m["engine"] for m in client.get("/api/models").json()}
    assert models == {"magenta": "adain", "adain-lite0": "adain", "starry_night-fast": "fast"}
    assert "brushwork studio" in client.get("/").text
    assert client.get("/docs").status_code == 200
    assert "/api/jobs/{job_id}/events" in client.get("/openapi.json").json()["paths"]
    assert client.get("/ui/gallery", params={"engine": "", "min_rating": ""}).status_code == 200


def test_model_engines_run_the_bundled_models(client, config):
    engines = {e["name"]: e for e in client.get("/api/engines").json()}
    assert {c["name"] for c in engines["fast"]["controls"]} == {"strength", "preserve_colors", "image_size"}
    seeds = {c["name"]: c for c in engines["gan-sample"]["controls"]}["seeds"]
    assert seeds["required"] and seeds["kind"] == "ints"
    assert submit(client, {"strength": "x"}, styles=(), engine="fast", model="starry_night-fast").status_code == 400
    wrong = submit(client, {}, styles=(), engine="fast", model="adain-lite0")
    assert wrong.status_code == 400 and "for the adain engine" in wrong.json()["detail"]
    no_seeds = client.post("/api/jobs", data={"engine": "gan-sample", "params": "{}", "model": "x"})
    assert no_seeds.status_code == 400 and "seeds is required" in no_seeds.json()["detail"]

    fast = submit(client, {"strength": 0.5, "image_size": 48}, styles=(), engine="fast", model="starry_night-fast")
    adain = submit(client, {"strength": 0.8, "image_size": 48}, styles=("example:shipwreck.jpg",), engine="adain",
                   model="adain-lite0")  # fmt: skip
    magenta = submit(client, {"strength": 0.8, "image_size": 64}, styles=("example:shipwreck.jpg",), engine="adain",
                     model="magenta")  # fmt: skip
    worker = Worker(JobStore(config))
    assert [worker.run_once(), worker.run_once(), worker.run_once()] == ["done", "done", "done"]
    for response, engine in ((fast, "fast"), (adain, "adain"), (magenta, "adain")):
        job = client.get(f"/api/jobs/{response.json()['id']}").json()
        assert job["record"]["engine"] == engine and job["record"]["parameters"]["strength"] in (0.5, 0.8)
        assert client.get(job["images"][0]).headers["content-type"] == "image/png"
    assert job["record"]["models"]["model"]["name"] == "magenta-arbitrary"


def test_serve_needs_a_token_beyond_loopback():
    from brushwork.cli.studio import _is_loopback

    assert all(_is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))
    assert not any(_is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "::", "example.org"))


def test_docs_page_works_offline(client):
    """/docs loads Swagger UI from the studio itself (the swagger-ui-bundle package), never from a CDN."""
    import re

    page = client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", page.text), "an external URL in /docs"
    assert "cdn" not in page.text.lower()
    assets = re.findall(r"(?:src|href)=[\"']([^\"']+)[\"']", page.text)
    assert {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"} <= set(assets)
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 0, asset
    assert client.get("/openapi.json").json()["info"]["title"] == "brushwork studio"
    assert client.get("/redoc").status_code == 404  # ReDoc would come from a CDN


def test_a_job_database_from_before_favourites_and_trash_opens(config):
    """A studio.db made by an earlier release (no worker, favourite, trashed or sweep_id columns) gains them."""
    import sqlite3

    config.prepare()
    with sqlite3.connect(config.db_path) as db:
        db.execute(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, engine TEXT NOT NULL, params TEXT NOT NULL, inputs TEXT NOT NULL,"
            " labels TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'queued', progress REAL NOT NULL DEFAULT 0,"
            " eta REAL, error TEXT, created REAL NOT NULL, started REAL, finished REAL, claim TEXT,"
            " lease_until REAL, attempts INTEGER NOT NULL DEFAULT 0, cancel INTEGER NOT NULL DEFAULT 0, preview TEXT,"
            " preview_step INTEGER NOT NULL DEFAULT 0, outputs TEXT, record TEXT, enqueued REAL)"
        )
        db.execute("INSERT INTO jobs (id, engine, params, inputs, labels, status, created, outputs) "
                   "VALUES ('a', 'stylize', '{}', '{}', '{}', 'done', 1, '[]')")  # fmt: skip
        # A sweep's two cells, named only in their labels as before the sweep_id column.
        for job_id, created in (("s1", 2), ("s2", 3)):
            labels = json.dumps({"sweep": {"id": "old-sweep", "seed": created}})
            db.execute("INSERT INTO jobs (id, engine, params, inputs, labels, status, created, outputs) "
                       "VALUES (?, 'stylize', '{}', '{}', ?, 'done', ?, '[]')", (job_id, labels, created))  # fmt: skip
    store = JobStore(config)
    job = store.get("a")
    assert job.favourite is False and job.trashed is None and job.worker is None
    assert store.set_favourite("a", True).favourite is True
    assert [j.id for j in store.jobs_of_sweep("old-sweep")] == ["s1", "s2"]  # back-filled from the labels
    assert [c["seed"] for c in Studio(config).sweep("old-sweep")["cells"]] == [2, 3]
    assert [j.id for j in JobStore(config).jobs_of_sweep("old-sweep")] == ["s1", "s2"]  # opened again: unchanged
