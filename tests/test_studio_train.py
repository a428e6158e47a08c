"""Training in the studio: a fast or AdaIN model trained by a job lands in DATA/models under its name, is
listed and applied like any other; a name already taken is refused; a killed attempt resumes."""

from __future__ import annotations

import io
import json
import time

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from brushwork import api  # noqa: E402
from brushwork.errors import BrushworkError  # noqa: E402
from brushwork.studio.app import asgi_app  # noqa: E402
from brushwork.studio.config import Limits, StudioConfig  # noqa: E402
from brushwork.studio.jobs import JobStore, Worker  # noqa: E402
from tests.conftest import make_image  # noqa: E402

#: Seconds, not minutes, on a CPU: the small backbone, 32 px crops, a tiny network.
TINY = {"backbone": "lite0", "image_size": 32, "batch_size": 1, "steps": 3, "checkpoint_every": 1}
TRAINERS = {
    "fast-train": ({**TINY, "width": 4, "residual_blocks": 1}, ["example:starry_night.jpg"]),
    "adain-train": ({**TINY, "decoder_width": 16}, ["example:starry_night.jpg", "example:shipwreck.jpg"]),
}
PHOTOS = ["example:tubingen.jpg", "example:shipwreck.jpg"]


@pytest.fixture
def config(tmp_path) -> StudioConfig:
    return StudioConfig(data_dir=tmp_path / "data", lease_seconds=1, preview_seconds=0.0, watermark=False,
                        limits=Limits(upload_bytes=2_000_000, image_pixels=1_000_000, params_bytes=4096))  # fmt: skip


@pytest.fixture
def client(config):
    with TestClient(asgi_app(config, worker=False), base_url="http://127.0.0.1") as c:
        yield c


def photo_upload(seed: int = 0) -> tuple:
    buf = io.BytesIO()
    make_image(48, 40, seed, "noise").save(buf, "PNG")
    return ("content", (f"photo{seed}.png", buf.getvalue(), "image/png"))


def train(client, engine="fast-train", name="mine", params=None, photos=PHOTOS, uploads=(), styles=None):
    default_params, default_styles = TRAINERS[engine]
    data = {"engine": engine, "params": json.dumps(params or default_params), "model": name,
            "content_ref": list(photos), "style_ref": list(default_styles if styles is None else styles)}  # fmt: skip
    return client.post("/api/jobs", data=data, files=list(uploads) or None)


@pytest.mark.parametrize("engine", sorted(TRAINERS))
def test_a_trained_model_is_kept_listed_and_applied(client, config, engine):
    response = train(client, engine, uploads=[photo_upload()])
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert Worker(JobStore(config)).run_once() == "done"

    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done", job["error"]
    assert job["preview"] is not None  # the model as trained so far, shown while it trained
    assert job["inputs"]["contents"][1:] == PHOTOS and job["labels"]["content"] == "photo0.png + 2 more"
    trained = job["record"]["extra"]["trained"]
    assert trained == {"engine": engine, "model": "mine", "settings": trained["settings"], "photos": 3}
    assert trained["settings"]["steps"] == 3 and job["record"]["models"]["model"]["name"] == "mine.safetensors"
    meta = json.loads((config.models / "mine.json").read_text())
    assert meta["step"] == 3 and (config.models / "mine.safetensors").is_file()
    kind = engine.removesuffix("-train")
    assert {"name": "mine", "engine": kind, "source": "data"} in client.get("/api/models").json()
    assert not config.job_dir(job_id).exists()  # its checkpoint went with the job's folder

    styles = [] if kind == "fast" else ["example:starry_night.jpg"]
    apply = {"engine": kind, "model": "mine", "content_ref": "example:tubingen.jpg", "style_ref": styles,
             "params": json.dumps({"image_size": 48})}  # fmt: skip
    applied = client.post("/api/jobs", data=apply)
    assert applied.status_code == 202, applied.text
    assert Worker(JobStore(config)).run_once() == "done"
    done = client.get(f"/api/jobs/{applied.json()['id']}").json()
    assert done["status"] == "done" and done["record"]["models"]["model"]["name"] == "mine.safetensors"


def test_a_name_taken_or_invalid_is_refused_before_anything_is_queued(client, config):
    (config.models / "mine.safetensors").write_bytes(b"")  # taken, whatever is inside
    cases = {
        "mine": "already in the studio",
        "starry_night-fast": "already in the studio",  # a bundled model
        "magenta": "use letters, digits",
        "../up": "use letters, digits",
        "": "give the new model a name",
    }
    for name, message in cases.items():
        response = train(client, name=name)
        assert response.status_code == 400 and message in response.json()["detail"], (name, response.text)
    first = train(client, name="theirs")
    assert first.status_code == 202
    again = train(client, name="theirs")  # the first job will make it
    assert again.status_code == 400 and first.json()["id"] in again.json()["detail"]
    sweep = {"engine": "fast-train", "model": "yours", "content_ref": PHOTOS, "style_ref": "example:starry_night.jpg",
             "params": json.dumps(TRAINERS["fast-train"][0]), "sweep": json.dumps({"batch": 2})}  # fmt: skip
    refused = client.post("/api/sweeps", data=sweep)
    assert refused.status_code == 400 and "one model under one name" in refused.json()["detail"]
    assert len(JobStore(config).list()) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"styles": []}, "takes 1 style images, got 0"),
        ({"styles": ["example:starry_night.jpg", "example:shipwreck.jpg"]}, "takes 1 style images, got 2"),
        ({"photos": []}, "a content image is required"),
        ({"params": {**TINY, "steps": 0}}, "steps must be at least 1"),
        ({"params": {**TINY, "steps": 10**6}}, "steps above this studio's limit"),
        ({"params": {**TINY, "image_size": 16}}, "training image size must be 32..2048"),
        ({"params": {**TINY, "backbone": "resnet"}}, "backbone: must be one of"),
    ],
)
def test_training_inputs_and_settings_are_checked_when_submitted(client, config, change, message):
    response = train(client, **change)
    assert response.status_code == 400 and message in response.json()["detail"], response.text
    assert JobStore(config).list() == []


class Killed(BaseException):
    """A worker dying mid-step: nothing in the job runner catches it, so the job stays 'running'."""


def test_an_interrupted_training_resumes_from_its_checkpoint(client, config, monkeypatch):
    params = {**TRAINERS["fast-train"][0], "steps": 5, "checkpoint_every": 2}
    job_id = train(client, params=params).json()["id"]
    real_train = api.fast_train
    attempts: list[dict] = []

    def spy(*args, on_step, resume, **kwargs):
        seen = {"resume": resume, "steps": []}
        attempts.append(seen)

        def step(s):
            seen["steps"].append(s.step)
            if len(attempts) == 1 and s.step == 3:  # the checkpoint of step 2 is on disk
                raise Killed
            on_step(s)

        return real_train(*args, on_step=step, resume=resume, **kwargs)

    monkeypatch.setattr(api, "fast_train", spy)
    store = JobStore(config)
    with pytest.raises(Killed):
        Worker(store).run_once()
    assert store.get(job_id).status == "running"
    assert json.loads((config.job_dir(job_id) / "model.json").read_text())["step"] == 2

    time.sleep(1.2)  # the dead worker's lease runs out
    assert Worker(store).run_once() == "done"
    job = store.get(job_id)
    assert job.attempts == 2 and json.loads((config.models / "mine.json").read_text())["step"] == 5
    assert attempts[1] == {"resume": True, "steps": [3, 4, 5]}  # from the checkpoint, not from the start


def test_cancel_stops_training_and_keeps_no_model(client, config, monkeypatch):
    job_id = train(client, params={**TRAINERS["fast-train"][0], "steps": 50}).json()["id"]
    real_train = api.fast_train

    def cancel_at_step_2(*args, on_step, **kwargs):
        def step(s):
            if s.step == 2:
                client.delete(f"/api/jobs/{job_id}")
                time.sleep(0.5)  # the lease's heartbeat sees it
            on_step(s)

        return real_train(*args, on_step=step, **kwargs)

    monkeypatch.setattr(api, "fast_train", cancel_at_step_2)
    assert Worker(JobStore(config)).run_once() == "cancelled"
    assert not (config.models / "mine.safetensors").exists() and not config.job_dir(job_id).exists()


def test_the_trainers_forms_come_from_their_settings(client):
    engines = {e["name"]: e for e in client.get("/api/engines").json()}
    for name in TRAINERS:
        engine = engines[name]
        assert engine["makes_model"] and engine["contents"] > 1 and not engine["needs_model"]
        controls = {c["name"]: c for c in engine["controls"]}
        assert [c.name for c in api.controls(api.SETTINGS[name])] == list(controls)
        assert controls["image_size"]["minimum"] == 32 and controls["backbone"]["default"] == "auto"


class Reached(Exception):
    """The trainer was reached: the keywords it got are kept, and nothing trains."""


@pytest.mark.parametrize("engine", sorted(TRAINERS))
def test_every_training_setting_reaches_the_trainer_alike_from_the_cli_and_the_studio(engine, tmp_path, monkeypatch):
    from brushwork.cli import main
    from brushwork.studio.engines import ENGINES, Inputs, RunContext
    from tests.test_face_parity import flags_for, value_for

    kind = engine.removesuffix("-train")
    seen: list[dict] = []

    def trainer(*args, **kwargs):
        seen.append(kwargs)
        raise Reached

    monkeypatch.setattr(api, f"{kind}_train", trainer)
    controls = api.controls(api.SETTINGS[engine])
    values = {c.name: value_for(c) for c in controls}
    assert all(values[c.name] != c.default for c in controls)  # each one says whether it arrived
    photos = tmp_path / "photos"
    photos.mkdir()
    make_image(40, 36).save(photos / "p.png")
    make_image(40, 36, 1, "stripes").save(tmp_path / "s.png")
    data = ["--style", str(tmp_path / "s.png"), "--content-dir", str(photos)] if kind == "fast" else [
        "--content-dir", str(photos), "--style-dir", str(photos)]  # fmt: skip
    flags = [w for c in controls for w in flags_for(c, values[c.name])]
    with pytest.raises(Reached):
        main([kind, "train", *data, "-o", str(tmp_path / "m.safetensors"), "-q", *flags])
    inputs = Inputs(photos / "p.png", [tmp_path / "s.png"], contents=[photos / "p.png"], new_model="mine")
    ctx = RunContext(lambda *a: None, "cpu", 10**6, lambda suffix: tmp_path / f"out{suffix}", tmp_path / "work",
                     install_model=lambda checkpoint, name: checkpoint)  # fmt: skip
    with pytest.raises(Reached):
        ENGINES[engine].run(inputs, values, ctx)
    from_cli, from_studio = seen
    assert {c.name: from_cli[c.name] for c in controls} == {c.name: from_studio[c.name] for c in controls} == values


@pytest.mark.parametrize(("attempt_number", "eta"), [(1, 10 / 0.6 * 0.4), (2, 10 / 0.1 * 0.4)])
def test_a_resumed_attempt_estimates_its_end_from_its_own_pace(config, attempt_number, eta):
    from brushwork.studio.jobs import _Attempt

    store = JobStore(config)
    job, token = store.claim(store.add("fast-train", {}, {}, {}), worker="test")
    job.attempts = attempt_number
    attempt = _Attempt(store, job, token)  # not entered: no heartbeat, the calls below write at once
    attempt.progress(0.5)  # the first report: a retry resumed half-way (a first attempt reports as it goes)
    attempt.start, attempt.last_write = time.monotonic() - 10, 0.0  # ten seconds on, at 60 %
    attempt.progress(0.6)
    assert store.get(job.id).eta == pytest.approx(eta, rel=0.01)


def test_a_model_is_installed_across_file_systems_and_never_over_another(config, monkeypatch, tmp_path):
    import errno
    import os

    from brushwork.studio.library import install_trained_model

    config.prepare()
    work = tmp_path / "job"
    work.mkdir()
    for suffix, data in ((".safetensors", b"weights"), (".json", b"{}")):
        (work / f"model{suffix}").write_bytes(data)
    real_link = os.link

    def no_links_out_of_the_job(source, link):
        if str(source).startswith(str(work)):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(source, link)

    monkeypatch.setattr(os, "link", no_links_out_of_the_job)
    target = install_trained_model(config.models, work / "model.safetensors", "mine")
    assert target.read_bytes() == b"weights" and (config.models / "mine.json").read_bytes() == b"{}"
    assert sorted(p.name for p in config.models.iterdir()) == ["mine.json", "mine.safetensors"]  # no copies left
    (config.models / "other.json").write_bytes(b"theirs")  # made while this job trained, weights yet to come
    with pytest.raises(BrushworkError, match="was added while this job trained"):
        install_trained_model(config.models, work / "model.safetensors", "other")
    assert (config.models / "other.json").read_bytes() == b"theirs"
    assert not (config.models / "other.safetensors").exists()
