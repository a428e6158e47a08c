"""Remote workers and the jobs whose files are not single images: a video job (the clip fetched, the MP4
uploaded, protected and published by the server) and a GAN-sample job (the run's checkpoint served by
role), done by a worker whose scratch folder is not the server's data folder."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")


from brushwork.records import read_record, sha256_file  # noqa: E402
from brushwork.studio.config import Limits, StudioConfig  # noqa: E402
from tests.test_studio_remote import (  # noqa: E402
    BROWSER_TOKEN,
    WORKER_TOKEN,
    browser_client,
    remote_worker,
    worker_api,
    worker_scratch_folder,
)

FRAMES = 6


@pytest.fixture
def config(tmp_path) -> StudioConfig:
    limits = Limits(upload_bytes=2_000_000, image_pixels=200_000, video_frames=8, video_seconds=5,
                    video_pixels=80 * 60)  # fmt: skip
    return StudioConfig(data_dir=tmp_path / "server", lease_seconds=5, preview_seconds=0, token=BROWSER_TOKEN,
                        worker_token=WORKER_TOKEN, limits=limits)  # fmt: skip


@pytest.fixture
def client(config):
    with browser_client(config) as c:
        yield c


@pytest.fixture
def worker_scratch(tmp_path, monkeypatch):
    """The worker's own folder, apart from the server's data folder: its jobs' temporary folders go here."""
    return worker_scratch_folder(tmp_path, monkeypatch)


def submit_clip(client, data: bytes, params=None) -> str:
    form = {"engine": "video", "params": json.dumps(params or {}), "model": "starry_night-fast"}
    response = client.post("/api/jobs", data=form, files=[("content", ("clip.mp4", data, "video/mp4"))])
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.fixture
def clip(tmp_path) -> bytes:
    pytest.importorskip("av")
    from tests.test_video import make_video

    # Frames under 128 px are not watermarked (signed and registered only): marking 144x128 frames on the
    # server, which this test passed with, took 3 minutes on two shared cores.
    return make_video(tmp_path / "clip.mp4", frames=FRAMES).read_bytes()


def test_a_video_job_done_by_a_remote_worker_is_protected_and_published_once(client, config, clip, tmp_path,
                                                                               worker_scratch):  # fmt: skip
    from brushwork.protect import Registry
    from brushwork.protect.clips import detect_clip, sample_frames
    from brushwork.style.video import read_frames

    job_id = submit_clip(client, clip, params={"stabilize": 0.3})
    worker = remote_worker(client, "host-b:1")
    scratch = []
    fetch = worker._fetch_inputs
    worker._fetch_inputs = lambda job, claim, tmp: scratch.append(tmp) or fetch(job, claim, tmp)
    assert worker.run_once() == "done"
    assert scratch[0].parent == worker_scratch and not list(worker_scratch.iterdir())  # its own folder, cleared

    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["status"], job["media"], job["worker"]) == ("done", ["video"], "host-b:1")
    assert client.get(job["preview"]).headers["content-type"] == "image/jpeg"  # previews came over the network
    got = client.get(job["images"][0])
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
    out = tmp_path / "got.mp4"
    out.write_bytes(got.content)
    assert len(read_frames(out)) == FRAMES
    record = read_record(out)
    assert record.engine == "video" and record.parameters["stabilize"] == 0.3 and record.extra["studio_job"] == job_id
    assert record.inputs["content"]["sha256"] and "path" not in json.dumps(record.inputs)
    # Protected by the server as a local video job's clip is: the clip's work ID in its frames, its record,
    # the job's record and the poster; registered as the very file the server published.
    note = record.extra["protection"]
    work_id = note["work_id"]
    if note["watermark"]:  # a clip big enough to be marked
        assert detect_clip(sample_frames(out)).work_id == work_id
    else:
        assert "too small" in note["watermark_skipped"] and note["registered"] and note["c2pa"]
    assert job["record"]["extra"]["protection"]["work_id"] == work_id
    work = Registry().get(work_id)
    assert work.sha256 == sha256_file(out) and work.path.startswith(str(config.outputs))
    poster = tmp_path / "poster.jpg"
    poster.write_bytes(client.get(job["posters"][0]).content)
    assert read_record(poster).extra["protection"]["work_id"] == work_id
    assert sorted(p.suffix for p in config.outputs.iterdir()) == [".jpg", ".mp4"]  # the clip and its poster


def clip_record(**extra) -> str:
    from brushwork.records import new_record

    return json.dumps([new_record("video", {"stabilize": 0.5}, extra=extra).to_dict()])


def test_a_clip_is_published_once_and_checked_by_the_server(client, config, clip, tmp_path):
    from tests.test_studio_remote import png_bytes

    job_id = submit_clip(client, clip)
    api = worker_api(client)
    claim = api.post("/claim", json={"worker": "a"}).json()
    assert claim["limits"]["upload_bytes"] == config.limits.upload_bytes  # so a worker can refuse first
    fetched = api.get(f"/jobs/{job_id}/input/content", params={"claim": claim["claim"]})
    assert fetched.status_code == 200 and fetched.content == clip  # the stored clip, for role content

    def publish(data, name="video", records=None, token=claim["claim"]):
        return api.post(f"/jobs/{job_id}/publish", data={"claim": token, "records": records or clip_record()},
                        files=[(name, ("0.mp4", data, "video/mp4"))])  # fmt: skip

    # Never trusted: not a clip, an image, a clip over the studio's bounds, images for a video job,
    # a record of another engine.
    from tests.test_video import make_video

    longer = make_video(tmp_path / "long.mp4", frames=10, audio=False).read_bytes()
    refused = {
        "junk": publish(b"\x00\x00\x00\x18ftypmp42" + b"\x07" * 500),
        "image": publish(png_bytes()),
        "frames": publish(longer),
        "as image": publish(clip, name="image"),
        "engine": publish(clip, records=json.dumps([json.loads(clip_record())[0] | {"engine": "fast"}])),
    }
    expected = {"junk": "not a video", "image": "refused", "frames": "limit of 8 frames", "as image": "one clip",
                "engine": "fast record"}  # fmt: skip
    for case, response in refused.items():
        assert response.status_code == 400, (case, response.text)
        assert expected[case] in response.json()["detail"] and "incoming" not in response.json()["detail"], case
    assert publish(b"\0" * (config.limits.upload_bytes + 10)).status_code == 413
    assert list(config.outputs.iterdir()) == [] and not list(config.uploads.glob(".incoming-*"))

    # A protection the worker claims is not what the clip carries: the server protects it itself.
    done = publish(clip, records=clip_record(protection={"work_id": 12345}))
    assert done.status_code == 200, done.text
    (name,) = done.json()["outputs"]
    record = read_record(config.outputs / name)
    assert record.extra["protection"]["work_id"] != 12345 and record.extra["studio_job"] == job_id
    again = publish(clip)  # its answer was lost, so it sends again: answered from the first publication
    assert again.status_code == 200 and again.json() == {"status": "done", "outputs": [name], "again": True}
    assert publish(clip, token="0" * 32).status_code == 409  # another (made-up) attempt: refused
    assert sorted(p.suffix for p in config.outputs.iterdir()) == [".jpg", ".mp4"]  # the clip and its poster


def test_a_worker_refuses_to_send_a_clip_over_the_upload_limit(client, config, clip, worker_scratch):
    job_id = submit_clip(client, clip)
    config.limits.upload_bytes = 2_000  # the claim tells the worker the server's limit
    worker = remote_worker(client, "host-b:1")
    assert worker.run_once() == "failed"
    job = client.get(f"/api/jobs/{job_id}").json()
    assert "over the studio's upload limit" in job["error"] and list(config.outputs.iterdir()) == []


def test_the_lease_is_kept_while_the_server_protects_a_clip(client, config, clip, monkeypatch, worker_scratch):
    import time

    import brushwork.api
    from brushwork.studio.jobs import JobStore

    job_id = submit_clip(client, clip)
    publish_clip, taken = brushwork.api.publish_clip, []

    def slow(*args, **kwargs):  # marking a long clip's frames outlasts the lease
        time.sleep(config.lease_seconds + 1)
        taken.append(JobStore(config).claim(worker="host-c:1"))
        return publish_clip(*args, **kwargs)

    monkeypatch.setattr(brushwork.api, "publish_clip", slow)
    assert remote_worker(client, "host-b:1").run_once() == "done"
    assert taken == [None]  # no other worker could take the job over meanwhile
    assert client.get(f"/api/jobs/{job_id}").json()["attempts"] == 1


# ---------------------------------------------------------------------------------------------
# GAN runs


@pytest.fixture
def gan_run(config):
    """A tiny trained run in the server's models folder, with the files sampling does not need."""
    import brushwork
    from tests.test_gan import tiny, write_classes

    data = write_classes(config.prepare().data_dir.parent / "gan-data")
    return brushwork.gan_train(data, config.models / "tinygan", conditional=False, **tiny(steps=2))


def test_a_gan_sample_job_done_by_a_remote_worker(client, config, gan_run, tmp_path, worker_scratch):
    import brushwork
    from brushwork.records import record_of

    response = client.post("/api/jobs", data={"engine": "gan-sample", "model": "tinygan",
                                              "params": json.dumps({"seeds": [3, 4]})})  # fmt: skip
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    worker = remote_worker(client, "host-c:1")
    assert worker.run_once() == "done"
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["status"], job["worker"], len(job["images"])) == ("done", "host-c:1", 2)
    local = brushwork.gan_sample(gan_run, seeds=[3, 4])  # the same pictures as the server's own run would paint
    for n, url in enumerate(job["images"]):
        path = tmp_path / f"{n}.png"
        path.write_bytes(client.get(url).content)
        record = read_record(path)
        assert record.seed == [3, 4][n] and record.extra["studio_job"] == job_id and record.extra["protection"]
        assert record.models["model"]["sha256"] == record_of(local[n]).models["model"]["sha256"]
    assert not list(worker_scratch.iterdir())


def test_only_the_files_a_gan_sample_reads_are_served_and_only_to_the_claim(client, config, gan_run):
    params = {"engine": "gan-sample", "model": "tinygan", "params": json.dumps({"seeds": [1]})}
    first, second = (client.post("/api/jobs", data=params).json()["id"] for _ in range(2))
    api = worker_api(client)
    mine = api.post("/claim", json={"worker": "a", "job": first}).json()["claim"]
    theirs = api.post("/claim", json={"worker": "b", "job": second}).json()["claim"]

    def get(role, claim=mine, job=first):
        return api.get(f"/jobs/{job}/input/{role}", params={"claim": claim})

    checkpoint = get("gan-checkpoint")
    assert checkpoint.status_code == 200 and checkpoint.content == (gan_run / "checkpoint.safetensors").read_bytes()
    assert get("gan-checkpoint-json").content == (gan_run / "checkpoint.json").read_bytes()
    assert get("model").status_code == 404  # a run folder is not one model file
    # No claim, another job's claim, a made-up one: nothing.
    assert api.get(f"/jobs/{first}/input/gan-checkpoint").status_code == 422
    assert get("gan-checkpoint", claim=theirs).status_code == 409
    assert get("gan-checkpoint", claim="0" * 32).status_code == 409
    assert worker_api(client, token=None).get(f"/jobs/{first}/input/gan-checkpoint",
                                              params={"claim": mine}).status_code == 401  # fmt: skip
    # Roles only, never paths: the run's other files, traversal out of it, and the server's database.
    for role in ("gan-options", "options.json", "gan-log.jsonl", "..%2F..%2Fstudio.db", "%2E%2E", "gan-..",
                 "gan-checkpoint%2F..%2F..%2Fstudio.db", "gan-checkpoint/../../studio.db"):  # fmt: skip
        response = get(role)
        assert response.status_code == 404, (role, response.status_code)
        assert b"SQLite" not in response.content and b"safetensors" not in response.content[:200]
    # A checkpoint over the limit is not served; a link out of the run folder is not followed.
    config.limits.run_file_bytes = 100
    assert get("gan-checkpoint").status_code == 413
    config.limits.run_file_bytes = Limits().run_file_bytes
    (gan_run / "checkpoint.json").rename(gan_run / "moved.json")
    (gan_run / "checkpoint.json").symlink_to(config.db_path)
    assert get("gan-checkpoint-json").status_code == 404
