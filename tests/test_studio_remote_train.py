"""Training jobs on remote workers that share no disk with the server: the trained model goes back with the
job's picture and the server installs it as it publishes (once, whatever the retries); the trainer's
checkpoints go back as it saves them, so a killed attempt resumes on another host; only the attempt
holding the job reads or writes them, within the upload limit."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import time

import pytest

pytest.importorskip("fastapi")


from brushwork import api  # noqa: E402
from brushwork.studio.config import Limits, StudioConfig  # noqa: E402
from brushwork.studio.library import EXAMPLES  # noqa: E402
from tests.test_studio_remote import (  # noqa: E402
    BROWSER_TOKEN,
    WORKER_TOKEN,
    browser_client,
    config_db,
    remote_worker,
    worker_api,
    worker_scratch_folder,
)
from tests.test_studio_train import PHOTOS, TRAINERS  # noqa: E402


@pytest.fixture
def config(tmp_path) -> StudioConfig:
    return StudioConfig(data_dir=tmp_path / "server", lease_seconds=5, preview_seconds=0, watermark=False,
                        token=BROWSER_TOKEN, worker_token=WORKER_TOKEN,
                        limits=Limits(upload_bytes=2_000_000, image_pixels=1_000_000, params_bytes=4096))  # fmt: skip


@pytest.fixture
def client(config):
    with browser_client(config) as c:
        yield c


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The workers' own folder, apart from the server's data folder: their jobs' temporary folders go here."""
    return worker_scratch_folder(tmp_path, monkeypatch)


def train(client, engine="fast-train", name="mine", params=None) -> str:
    default_params, styles = TRAINERS[engine]
    data = {"engine": engine, "params": json.dumps(params or default_params), "model": name,
            "content_ref": PHOTOS, "style_ref": styles}  # fmt: skip
    response = client.post("/api/jobs", data=data)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def expire(config, job_id) -> None:
    """The attempt's worker went away: its lease runs out at once."""
    with config_db(config) as db:
        db.execute("UPDATE jobs SET lease_until = ? WHERE id = ?", (time.time() - 1, job_id))


@pytest.mark.parametrize("engine", sorted(TRAINERS))
def test_a_remote_worker_trains_a_model_and_the_server_installs_it(client, config, scratch, engine, caplog):
    caplog.set_level(logging.DEBUG)
    job_id = train(client, engine)
    assert remote_worker(client, "host-b:1").run_once() == "done"
    assert not list(scratch.glob("brushwork-job-*"))  # the job's scratch folder, cleared

    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["status"], job["worker"]) == ("done", "host-b:1"), job["error"]
    assert job["preview"] is not None  # the model as trained so far, sent while it trained
    trained = job["record"]["extra"]["trained"]
    assert trained == {"engine": engine, "model": "mine", "settings": trained["settings"], "photos": 2}
    assert job["record"]["models"]["model"]["name"] == "mine.safetensors"
    kind = engine.removesuffix("-train")
    assert {"name": "mine", "engine": kind, "source": "data"} in client.get("/api/models").json()
    assert json.loads((config.models / "mine.json").read_text())["step"] == 3
    assert sorted(p.name for p in config.models.iterdir()) == ["mine.json", "mine.safetensors"]
    assert len(list(config.outputs.iterdir())) == 1 and not config.job_dir(job_id).exists()
    api.load_model(config.models / "mine.safetensors", device="cpu")  # the engine loads it
    everything = caplog.text + config.db_path.read_bytes().decode("latin-1")
    assert WORKER_TOKEN not in everything and BROWSER_TOKEN not in everything

    # ... and the model is applied like any other, by a remote worker too.
    styles = [] if kind == "fast" else ["example:starry_night.jpg"]
    form = {"engine": kind, "model": "mine", "content_ref": "example:tubingen.jpg", "style_ref": styles,
            "params": json.dumps({"image_size": 48})}  # fmt: skip
    applied = client.post("/api/jobs", data=form)
    assert applied.status_code == 202, applied.text
    assert remote_worker(client, "host-b:1").run_once() == "done"
    done = client.get(f"/api/jobs/{applied.json()['id']}").json()
    assert done["status"] == "done" and done["record"]["models"]["model"]["name"] == "mine.safetensors"


class Killed(BaseException):
    """A worker dying mid-step: nothing in the worker catches it, so the job stays 'running'."""


def test_an_attempt_killed_on_one_host_resumes_on_another_from_its_checkpoint(client, config, scratch, monkeypatch):
    job_id = train(client, params={**TRAINERS["fast-train"][0], "steps": 5, "checkpoint_every": 2})
    real_train = api.fast_train
    attempts: list[dict] = []

    def spy(*args, on_step, resume, **kwargs):
        seen = {"resume": resume, "steps": []}
        attempts.append(seen)

        def step(s):
            seen["steps"].append(s.step)
            on_step(s)  # at step 3 it hands back the checkpoint saved after step 2
            if len(attempts) == 1 and s.step == 3:
                raise Killed

        return real_train(*args, on_step=step, resume=resume, **kwargs)

    monkeypatch.setattr(api, "fast_train", spy)
    with pytest.raises(Killed):
        remote_worker(client, "host-a:1").run_once()
    assert not list(scratch.glob("brushwork-job-*"))  # nothing of host A's is left for host B to read
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "running"
    kept = config.job_dir(job_id)
    assert json.loads((kept / "model.json").read_text())["step"] == 2 and (kept / "model.safetensors").is_file()

    expire(config, job_id)
    assert remote_worker(client, "host-b:1").run_once() == "done"
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["status"], job["attempts"], job["worker"]) == ("done", 2, "host-b:1")
    assert attempts[1] == {"resume": True, "steps": [3, 4, 5]}  # from host A's checkpoint, not from the start
    assert json.loads((config.models / "mine.json").read_text())["step"] == 5


def test_a_publish_sent_again_installs_the_model_once(client, config, scratch):
    job_id = train(client)
    worker = remote_worker(client, "host-b:1")
    answers = []
    call = worker.client.call

    def answer_lost(method, path, **kwargs):
        if path.endswith("/publish"):  # the first answer never reached the worker: it sends again
            answers.append(call(method, path, **kwargs).json())
            for value in kwargs["files"]:
                value[1][1].seek(0)
        answer = call(method, path, **kwargs)
        answers.append(answer.json()) if path.endswith("/publish") else None
        return answer

    worker.client.call = answer_lost
    assert worker.run_once() == "done"
    first, again = answers
    assert "again" not in first and again == {**first, "again": True}
    assert sorted(p.name for p in config.models.iterdir()) == ["mine.json", "mine.safetensors"]
    assert os.stat(config.models / "mine.safetensors").st_nlink == 1  # the job's folder (and its staging) gone
    assert len(list(config.outputs.iterdir())) == 1
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "done"


def test_a_publish_after_one_that_died_having_installed_the_model_is_not_refused_by_it(client, config, scratch):
    from brushwork.studio import remote
    from brushwork.studio.jobs import JobStore

    job_id = train(client)
    worker = remote_worker(client, "host-b:1")
    call = worker.client.call

    def server_died_after_installing(method, path, **kwargs):
        if path.endswith("/publish"):  # the server installed the model, then died before the job was done
            files = {name: value[1] for name, value in kwargs["files"]}
            job = JobStore(config).get(job_id)
            weights, meta = (io.BytesIO(files[k].read()) for k in ("model", "model_json"))
            staged = remote._stage_model(config, job, kwargs["data"]["claim"], _Upload(weights), _Upload(meta))
            remote._install_trained(config, job, staged)
            for value in kwargs["files"]:
                value[1][1].seek(0)
            assert (config.models / "mine.safetensors").is_file()
        return call(method, path, **kwargs)

    worker.client.call = server_died_after_installing
    assert worker.run_once() == "done"
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done", job["error"]
    assert sorted(p.name for p in config.models.iterdir()) == ["mine.json", "mine.safetensors"]


class _Upload:
    def __init__(self, fh):
        self.file = fh


def checkpoint_files(path) -> list:
    return [("weights", ("model.safetensors", path.read_bytes(), "application/octet-stream")),
            ("meta", ("model.json", path.with_suffix(".json").read_bytes(), "application/json"))]  # fmt: skip


@pytest.fixture
def a_checkpoint(tmp_path):
    """A fast-style training checkpoint of one step, made by the trainer itself (tiny)."""
    out = tmp_path / "made" / "model.safetensors"
    params = {k: v for k, v in TRAINERS["fast-train"][0].items() if k != "steps"}
    photos = tmp_path / "photos"
    photos.mkdir()
    out.parent.mkdir()
    shutil.copyfile(EXAMPLES / "tubingen.jpg", photos / "0.jpg")
    api.fast_train(EXAMPLES / "starry_night.jpg", photos, out, device="cpu", steps=1, **params)
    return out


def test_only_the_attempt_holding_a_job_reads_or_writes_its_checkpoint(client, config, a_checkpoint):
    mine, theirs = train(client, name="mine"), train(client, name="theirs")
    api_ = worker_api(client)
    held = api_.post("/claim", json={"worker": "a", "job": mine}).json()
    other = api_.post("/claim", json={"worker": "b", "job": theirs}).json()
    assert held["job"]["checkpoint"] == 0  # nothing kept yet
    url = f"/jobs/{mine}/checkpoint"
    # Another job's claim, a made-up one, none: refused, and nothing is kept.
    for claim in (other["claim"], "0" * 32):
        sent = api_.post(url, data={"claim": claim}, files=checkpoint_files(a_checkpoint))
        assert sent.status_code == 409 and sent.json()["detail"], sent.text
    assert api_.post(url, files=checkpoint_files(a_checkpoint)).status_code == 422
    assert not (config.job_dir(mine) / "model.safetensors").exists()
    assert worker_api(client, BROWSER_TOKEN).post(url, data={"claim": held["claim"]},
                                                  files=checkpoint_files(a_checkpoint)).status_code == 401  # fmt: skip

    kept = api_.post(url, data={"claim": held["claim"]}, files=checkpoint_files(a_checkpoint))
    assert kept.json() == {"ok": True, "step": 1}, kept.text
    assert (config.job_dir(mine) / "model.safetensors").read_bytes() == a_checkpoint.read_bytes()
    for claim in (other["claim"], "0" * 32):
        assert api_.get(f"{url}/weights", params={"claim": claim}).status_code == 409
    got = api_.get(f"{url}/weights", params={"claim": held["claim"]})
    assert got.status_code == 200 and got.content == a_checkpoint.read_bytes()
    assert api_.get(f"{url}/model.json", params={"claim": held["claim"]}).status_code == 404  # by part, not file
    assert api_.get(f"/jobs/{theirs}/checkpoint/weights", params={"claim": other["claim"]}).status_code == 404

    # The next attempt is told there is one to resume from.
    expire(config, mine)
    assert api_.post("/claim", json={"worker": "c", "job": mine}).json()["job"]["checkpoint"] == 1


def test_checkpoints_and_models_a_server_would_not_take_are_refused(client, config, a_checkpoint):
    job_id = train(client)
    api_ = worker_api(client)
    claim = api_.post("/claim", json={"worker": "a", "job": job_id}).json()["claim"]
    url = f"/jobs/{job_id}/checkpoint"
    too_big = [("weights", ("model.safetensors", b"\0" * (config.limits.upload_bytes + 10), "x")),
               ("meta", ("model.json", a_checkpoint.with_suffix(".json").read_bytes(), "x"))]  # fmt: skip
    refused = api_.post(url, data={"claim": claim}, files=too_big)
    assert refused.status_code == 413 and "limit" in refused.json()["detail"]
    meta = json.loads(a_checkpoint.with_suffix(".json").read_text())
    cases = {
        "not a safetensors file": (b"\x80\x04pickle", json.dumps(meta).encode()),
        "not a fast-style model": (a_checkpoint.read_bytes(), json.dumps({**meta, "kind": "adain"}).encode()),
        "no step count": (a_checkpoint.read_bytes(), json.dumps({**meta, "step": "1"}).encode()),
        "is not valid": (a_checkpoint.read_bytes(), b"{"),
    }
    for why, (weights, description) in cases.items():
        files = [("weights", ("model.safetensors", weights, "x")), ("meta", ("model.json", description, "x"))]
        sent = api_.post(url, data={"claim": claim}, files=files)
        assert sent.status_code == 400 and sent.json()["detail"].startswith("a worker's checkpoint refused"), why
        assert str(config.data_dir) not in sent.json()["detail"]  # no server paths in the answer
    assert not (config.job_dir(job_id) / "model.safetensors").exists()
    assert not [p for p in config.job_dir(job_id).iterdir() if p.name.startswith(".incoming")]

    # Publishing: a training job's picture comes with its model, checked like a checkpoint.
    from tests.test_studio_remote import png_bytes

    record = api.new_record("fast-train", {}, extra={"trained": {"model": "mine"}})
    publish = {"claim": claim, "records": json.dumps([record.to_dict()])}
    picture = ("image", ("0.png", png_bytes(), "image/png"))
    no_model = api_.post(f"/jobs/{job_id}/publish", data=publish, files=[picture])
    assert no_model.status_code == 400 and "publishes its model" in no_model.json()["detail"]
    oversized = [picture, ("model", ("mine.safetensors", b"\0" * config.limits.upload_bytes, "x")),
                 ("model_json", ("mine.json", a_checkpoint.with_suffix(".json").read_bytes(), "x"))]  # fmt: skip
    assert api_.post(f"/jobs/{job_id}/publish", data=publish, files=oversized).status_code == 413
    # A model of one step, for a job of three: not the finished model.
    unfinished = [picture, *(("model" if name == "weights" else "model_json", value)
                             for name, value in checkpoint_files(a_checkpoint))]  # fmt: skip
    sent = api_.post(f"/jobs/{job_id}/publish", data=publish, files=unfinished)
    assert sent.status_code == 400 and "trained 1 of the job's 3 steps" in sent.json()["detail"]
    assert list(config.models.iterdir()) == [] and list(config.outputs.iterdir()) == []
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "running"  # still its to finish
