"""The studio's video engine: a clip upload through the REST API, frame-by-frame progress with previews,
the MP4 carrying its record, the gallery entry with its poster, and the bounds on uploaded clips."""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("av")

from fastapi.testclient import TestClient  # noqa: E402

from brushwork.records import read_record  # noqa: E402
from brushwork.studio.app import asgi_app  # noqa: E402
from brushwork.studio.config import Limits, StudioConfig  # noqa: E402
from brushwork.studio.jobs import JobStore, Worker  # noqa: E402
from brushwork.style.video import read_frames  # noqa: E402
from tests.test_studio import png_bytes, stored  # noqa: E402
from tests.test_video import make_video  # noqa: E402

FRAMES = 6


@pytest.fixture
def config(tmp_path) -> StudioConfig:
    limits = Limits(upload_bytes=2_000_000, video_frames=8, video_seconds=5, video_pixels=80 * 60)
    return StudioConfig(data_dir=tmp_path / "data", lease_seconds=5, preview_seconds=0, limits=limits)


@pytest.fixture
def client(config):
    with TestClient(asgi_app(config, worker=False), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def clip(tmp_path) -> bytes:
    return make_video(tmp_path / "clip.mp4", frames=FRAMES).read_bytes()


def submit_clip(client, data: bytes, model="starry_night-fast", params=None, styles=(), name="clip.mp4"):
    form = {"engine": "video", "params": json.dumps(params or {}), "model": model, "style_ref": list(styles)}
    return client.post("/api/jobs", data=form, files=[("content", (name, data, "video/mp4"))])


def test_video_job_runs_frame_by_frame_to_an_mp4_with_its_record(client, config, clip, tmp_path):
    engines = {e["name"]: e for e in client.get("/api/engines").json()}
    video = engines["video"]
    controls = {c["name"]: c for c in video["controls"]}
    assert video["content_kind"] == "video" and video["model_engines"] == ["fast", "adain"]
    assert {"strength", "stabilize", "crf", "max_frames", "audio_reactive"} <= set(controls)
    assert controls["stabilize"]["flag"] == "--stabilize" and controls["audio_reactive"]["kind"] == "names"
    assert not {"on_frame", "on_stylised", "device", "audio", "force"} & set(controls)

    response = submit_clip(client, clip, params={"stabilize": 0.3, "strength": 0.9})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert Worker(JobStore(config)).run_once() == "done"

    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done" and job["progress"] == 1.0 and job["media"] == ["video"]
    assert job["inputs"]["frames"] == FRAMES
    # A preview of the latest painted frame was shown for every frame (preview_seconds = 0 here).
    assert client.get(job["preview"]).headers["content-type"] == "image/jpeg"
    assert job["preview"].endswith(f"step={FRAMES}")

    result = client.get(job["images"][0])
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    assert client.get(f"/api/jobs/{job_id}/result").content == result.content
    out = tmp_path / "got.mp4"
    out.write_bytes(result.content)
    record = read_record(out)
    assert record.engine == "video" and record.parameters["stabilize"] == 0.3
    assert record.parameters["strength"] == 0.9 and record.models["model"]["name"].startswith("starry_night")
    assert len(read_frames(out)) == FRAMES
    assert job["record"]["engine"] == "video" and job["record"]["extra"]["studio_job"] == job_id
    # One work: the clip's ID in the file, the job's record and the poster (marked with it, not registered).
    from brushwork.protect import Registry
    from brushwork.records import sha256_file

    work_id = record.extra["protection"]["work_id"]
    assert job["record"]["extra"]["protection"]["work_id"] == work_id
    poster = tmp_path / "poster.jpg"
    poster.write_bytes(client.get(job["posters"][0]).content)
    assert read_record(poster).extra["protection"]["work_id"] == work_id
    assert Registry().get(work_id).sha256 == sha256_file(out)
    # Live previews are working files: not marked, signed or registered.
    preview = tmp_path / "preview.jpg"
    preview.write_bytes(client.get(job["preview"]).content)
    assert "protection" not in read_record(preview).extra

    poster = client.get(job["posters"][0])
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    (tmp_path / "poster.jpg").write_bytes(poster.content)
    assert read_record(tmp_path / "poster.jpg").engine == "video"

    (item,) = client.get("/api/gallery", params={"engine": "video"}).json()
    assert item["media"] == "video" and item["poster"] == job["posters"][0]
    assert "<video" in client.get("/ui/gallery").text
    # Restore: the stored clip is named by reference (never an image reference, never a path).
    again = {"engine": "video", "model": "starry_night-fast", "content_ref": job["inputs"]["content"]}
    assert client.post("/api/jobs", data=again).status_code == 202
    assert client.post("/api/jobs", data={**again, "content_ref": "example:tubingen.jpg"}).status_code == 400
    # Videos stay out of the still-image ratings.
    assert client.post("/api/ratings", json={"winner": f"{job_id}:0", "loser": f"{job_id}:0"}).status_code == 400


def test_adain_model_on_a_clip_with_a_style(client, config, clip):
    no_style = submit_clip(client, clip, model="adain-lite0")
    assert no_style.status_code == 400 and "needs style images" in no_style.json()["detail"]
    assert submit_clip(client, clip, styles=("example:shipwreck.jpg",)).status_code == 400  # fast + style
    response = submit_clip(client, clip, model="adain-lite0", styles=("example:shipwreck.jpg",),
                           params={"max_frames": 3, "style_size": 64})  # fmt: skip
    assert response.status_code == 202, response.text
    assert Worker(JobStore(config)).run_once() == "done"
    job = client.get(f"/api/jobs/{response.json()['id']}").json()
    assert job["record"]["parameters"]["max_frames"] == 3 and job["record"]["inputs"]["styles"][0]["name"]


def test_clip_uploads_are_bounded(client, config, tmp_path):
    before = stored(config)
    cases = {
        "frames": submit_clip(client, make_video(tmp_path / "long.mp4", frames=10, audio=False).read_bytes()),
        "pixels": submit_clip(client, make_video(tmp_path / "big.mp4", frames=2, size=(96, 64)).read_bytes()),
        "image": submit_clip(client, png_bytes(), name="photo.png"),
        "junk": submit_clip(client, b"\x00\x00\x00\x18ftypmp42" + b"\x07" * 500),
        "params": submit_clip(client, b"", params={"max_frames": 100}),
        "crf": submit_clip(client, b"", params={"crf": 99}),
        "path": submit_clip(client, b"x", name="../../clip.mp4"),
    }
    expected = {"frames": "limit of 8 frames", "pixels": "96x64 px are over", "image": "not accepted",
                "junk": "not a video", "params": "max_frames above", "crf": "crf must be",
                "path": "refused"}  # fmt: skip
    for name, response in cases.items():
        assert response.status_code == 400, (name, response.text)
        assert expected[name] in response.json()["detail"], (name, response.json())
        assert "incoming" not in response.json()["detail"], name  # the client's name, not the server's temp file
    assert stored(config) == before


def test_cancel_a_running_video_job_leaves_nothing(client, config, tmp_path):
    config.limits.video_frames, config.limits.video_seconds = 200, 20
    clip = make_video(tmp_path / "long.mp4", frames=120, size=(66, 50), audio=False).read_bytes()
    job_id = submit_clip(client, clip, params={"stabilize": 0.5}).json()["id"]
    worker = threading.Thread(target=Worker(JobStore(config)).run_once)
    worker.start()
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{job_id}").json()["progress"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.delete(f"/api/jobs/{job_id}").status_code == 200
    worker.join(60)
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["progress"] < 1
    assert not list(config.outputs.iterdir())  # no MP4, no poster, no temporary file
