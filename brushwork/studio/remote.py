"""Workers that share nothing with the server but the network.

A remote worker (``brushwork worker --server URL``) holds no data folder: it claims a job, downloads
that job's inputs, runs the engine, and hands back progress, previews and results, all through the
worker API under ``/api/worker/`` of the studio itself. The server stays the one owner of the gallery,
the records and the protection keys: a worker uploads its results unprotected, and the server
watermarks, signs and registers them as it publishes (so signing keys never leave the server).

Guarantees, and where they come from:

- A job is durable once ``POST /api/jobs`` returns: it is a row of the job store (SQLite, or
  PostgreSQL for several hosts).
- Delivery is at-least-once: the queue (RQ on Redis) only carries job ids; the server's dispatcher
  re-sends a job whose lease ran out (its worker died or was cut off) or that the queue lost.
- A job runs once at a time: a claim is one transaction on the store, and every later call of an
  attempt (renew, preview, publish) carries its claim token and is refused once another attempt
  took over.
- A job is published at most once: publishing writes a row keyed by the job id (a primary key) in
  the same transaction that marks the job done with the claim that made it; a publish that is sent
  again (its answer was lost) is answered from that row instead of publishing twice.

Workers authenticate with their own token (``BRUSHWORK_WORKER_TOKEN``, never the browser's), a worker
reads only the inputs of a job it holds, and its uploads are bounded like a user's.

Every engine runs remotely. A video job's clip is fetched, painted into an unprotected MP4 and uploaded
(streamed, within the upload limit); the server checks it as it checks a user's clip and writes it
through the exit a local video job's clip takes (``api.publish_clip``: each frame marked, the file
signed and registered), which re-encodes it once. A GAN run folder is served as the two files sampling
reads (``api.gan_run_files``), each by its role, never by a path; the worker rebuilds the run from them.

A training job (``fast-train``, ``adain-train``) fetches its photos and styles and trains on the worker.
Each checkpoint the trainer saves (its safetensors + JSON pair, never a pickle) is handed back and kept in
the job's folder on the server, where a local worker keeps its own, so the next attempt resumes from it on
any host. The finished model goes back with the job's picture: the server checks it as it checks a user's
model upload (loaded as the engine loads it), and links it into DATA/models (never over a model of that
name) in the same step that marks the job done, so a publish sent again installs nothing twice.
"""

from __future__ import annotations

import functools
import hmac
import io
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from brushwork.errors import BrushworkError
from brushwork.studio.config import StudioConfig

log = logging.getLogger("brushwork.studio")

#: The environment variable holding the worker token (on the server and on each worker).
WORKER_TOKEN_ENV = "BRUSHWORK_WORKER_TOKEN"
#: Path prefix of the worker API (kept apart from the browser's API and its token).
PREFIX = "/api/worker"
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_CLAIM = re.compile(r"[0-9a-f]{32}")
_WORKER_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,100}")
#: Roles of a job's input files as the worker API names them; a GAN run's files by ``gan-`` and the
#: role ``brushwork.api.gan_run_files`` gives each (never a path: nothing else of a run folder is served).
_ROLES = ("content", "contents", "style", "mask", "model", "model-json", "gan-checkpoint", "gan-checkpoint-json")
_GAN_PREFIX = "gan-"
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")


def env_worker_token() -> str | None:
    return os.environ.get(WORKER_TOKEN_ENV) or None


# ---------------------------------------------------------------------------------------------
# The server side: the worker API


def create_worker_app(studio, token: str):
    """The worker API as its own FastAPI app, mounted under :data:`PREFIX` by ``app.asgi_app``: its own
    token, none of the browser's cookies or pages."""
    config: StudioConfig = studio.config
    store = studio.store
    locks: dict[str, threading.Lock] = {}
    locks_guard = threading.Lock()

    def authorised(request: Request) -> None:
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong worker token", headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(title="brushwork worker API", dependencies=[Depends(authorised)], docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip

    @app.exception_handler(BrushworkError)
    async def _bad_input(request: Request, exc: BrushworkError):
        return JSONResponse({"detail": str(exc)}, 400)

    def held(job_id: str, claim: str):
        """The job if ``claim`` holds it now, else 409 (or 404 for no such job)."""
        job = store.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise HTTPException(404, f"no job {job_id[:40]!r}")
        if not _CLAIM.fullmatch(claim or "") or job.status != "running" or job.claim != claim:
            raise HTTPException(409, "this attempt does not hold the job (its lease was lost or it ended)")
        return job

    def job_lock(job_id: str) -> threading.Lock:
        with locks_guard:
            return locks.setdefault(job_id, threading.Lock())

    @app.post("/claim")
    def claim(body: dict):
        worker, job_id = str(body.get("worker") or ""), body.get("job")
        if not _WORKER_NAME.fullmatch(worker):
            raise HTTPException(400, "worker name: 1-100 letters, digits or _.:@-")
        if job_id is not None and not (isinstance(job_id, str) and _JOB_ID.fullmatch(job_id)):
            raise HTTPException(400, "job must be a job id")
        claimed = store.claim(job_id, worker=worker)
        if claimed is None:
            return {"job": None}
        job, token = claimed
        log.info("job %s: attempt %d by remote worker %s", job.id, job.attempts, worker)
        # checkpoint: the steps of the training checkpoint an earlier attempt handed back (0: none).
        return {"job": {"id": job.id, "engine": job.engine, "params": job.params, "inputs": job.inputs,
                        "attempts": job.attempts, "preview_step": job.preview_step,
                        "checkpoint": _stored_steps(config, job)}, "claim": token,
                "limits": {"upload_bytes": config.limits.upload_bytes}}  # fmt: skip

    @app.get("/jobs/{job_id}/input/{role}")
    def job_input(job_id: str, role: str, claim: str, n: int = 0):
        """One input file of a job this worker holds (content image or clip, style n, mask n, the model file
        and its JSON, a GAN run's checkpoint and its JSON)."""
        from brushwork.studio.library import resolve_image, resolve_model

        job = held(job_id, claim)
        if role not in _ROLES:
            raise HTTPException(404, f"no input role {role[:20]!r}")
        inputs = job.inputs
        if role == "content" and inputs.get("content"):
            path = resolve_image(config, inputs["content"], video=job.engine == "video")
        elif role == "contents" and 0 <= n < len(inputs.get("contents") or []):  # a trainer's photos
            path = resolve_image(config, inputs["contents"][n])
        elif role == "style" and 0 <= n < len(inputs.get("styles") or []):
            path = resolve_image(config, inputs["styles"][n])
        elif role == "mask" and 0 <= n < len(inputs.get("masks") or []):
            path = resolve_image(config, inputs["masks"][n])
        elif role in ("model", "model-json") and inputs.get("model"):
            path = resolve_model(config, inputs["model"], job.engine)
            if path.is_dir():
                raise HTTPException(404, "a GAN run is served by its roles gan-checkpoint and gan-checkpoint-json")
            if not path.is_file():  # a network that comes with brushwork (Magenta's): every worker has it
                raise HTTPException(404, f"model {inputs['model']} comes with brushwork: no file to serve")
            path = path.with_suffix(".json") if role == "model-json" else path
        elif role.startswith(_GAN_PREFIX) and inputs.get("model") and job.engine == "gan-sample":
            run = resolve_model(config, inputs["model"], job.engine)
            path = _run_file(run, role.removeprefix(_GAN_PREFIX), config)
        else:
            raise HTTPException(404, f"job {job_id} has no {role} input {n}")
        return FileResponse(path, media_type="application/octet-stream")

    @app.post("/jobs/{job_id}/renew")
    def renew(job_id: str, body: dict):
        """Keep the lease, with progress; answers whether to go on (False: cancelled or lost)."""
        claim = str(body.get("claim") or "")
        held(job_id, claim)
        fields: dict[str, Any] = {}
        for key in ("progress", "eta"):
            value = body.get(key)
            if isinstance(value, (int, float)) and value == value and abs(value) < 1e9:
                fields[key] = min(1.0, max(0.0, float(value))) if key == "progress" else float(value)
        return {"go_on": store.renew(job_id, claim, **fields)}

    @app.post("/jobs/{job_id}/preview")
    def preview(job_id: str, claim: Annotated[str, Form()], image: Annotated[UploadFile, File()]):
        """A live preview: checked as an image within the pixel limit, kept as a working file."""
        job = held(job_id, claim)
        data = image.file.read(config.limits.upload_bytes + 1)
        picture = _load_upload(data, config)
        step = job.preview_step + 1
        name = f"{job.id}-{claim[:8]}-{step:05d}.jpg"
        _atomic_write(config.previews / name, lambda fh: picture.convert("RGB").save(fh, "JPEG", quality=85))
        if not store.renew(job_id, claim, preview=name, preview_step=step):
            (config.previews / name).unlink(missing_ok=True)
            raise HTTPException(409, "this attempt does not hold the job")
        if job.preview and job.preview != name:
            (config.previews / job.preview).unlink(missing_ok=True)
        return {"ok": True}

    @app.get("/jobs/{job_id}/checkpoint/{part}")
    def checkpoint(job_id: str, part: str, claim: str):
        """The training checkpoint (``weights`` or its ``json``) an earlier attempt handed back: what this
        attempt resumes from."""
        job = held(job_id, claim)
        path = _checkpoint_path(config, job)
        path = path.with_suffix(".json") if part == "json" else path if part == "weights" else None
        if path is None or not path.is_file():
            raise HTTPException(404, f"job {job_id} has no stored checkpoint {part[:20]!r}")
        return FileResponse(path, media_type="application/octet-stream")

    @app.post("/jobs/{job_id}/checkpoint")
    def keep_checkpoint(job_id: str, claim: Annotated[str, Form()], weights: Annotated[UploadFile, File()],
                        meta: Annotated[UploadFile, File()]):  # fmt: skip
        """A training checkpoint of the attempt holding the job, checked and kept (atomically) in the job's
        folder, where a local worker keeps its own: the next attempt, on any host, resumes from it."""
        with job_lock(job_id):
            job = held(job_id, claim)
            return {"ok": True, "step": _keep_checkpoint(config, job, weights, meta)}

    @app.post("/jobs/{job_id}/publish")
    def publish(job_id: str, claim: Annotated[str, Form()], records: Annotated[str, Form()],
                image: Annotated[list[UploadFile] | None, File()] = None,
                video: Annotated[UploadFile | None, File()] = None,
                model: Annotated[UploadFile | None, File()] = None,
                model_json: Annotated[UploadFile | None, File()] = None):  # fmt: skip
        """The results of an attempt (images, or a video job's one clip; a training job's model with its
        picture): published (protected, recorded, the model installed) once, whatever the retries."""
        if not _JOB_ID.fullmatch(job_id):
            raise HTTPException(404, "no such job")
        with job_lock(job_id):
            done = store.publication(job_id)
            if done is not None:
                if done["claim"] == claim:  # the same attempt sent it again: its answer was lost
                    return {"status": "done", "outputs": json.loads(done["outputs"]), "again": True}
                raise HTTPException(409, "the job was already published by another attempt")
            job = held(job_id, claim)
            trained = (model, model_json) if model is not None or model_json is not None else None
            return {"status": "done", "outputs": _publish(studio, job, claim, records, image or [], video, trained)}

    @app.post("/jobs/{job_id}/end")
    def end(job_id: str, body: dict):
        """An attempt that ends without results: failed (with its error) or cancelled."""
        claim, status = str(body.get("claim") or ""), body.get("status")
        if status not in ("failed", "cancelled"):
            raise HTTPException(400, "status: failed or cancelled")
        with job_lock(job_id):
            held(job_id, claim)
            error = str(body.get("error") or "")[:2000] if status == "failed" else None
            ok = store.finish(job_id, claim, status, error=error)
        if ok:
            shutil.rmtree(config.job_dir(job_id), ignore_errors=True)
        return {"ok": ok}

    return app


def _run_file(run: Path, role: str, config: StudioConfig) -> Path:
    """The file of GAN run folder ``run`` that sampling reads under ``role``: a regular file inside the
    folder (a link out of it is not followed), within the size limit."""
    from brushwork.api import gan_run_files

    if not run.is_dir():
        raise HTTPException(404, "the job's model is not a GAN run folder")
    path = gan_run_files(run)[role]
    if path.is_symlink() or not path.is_file() or path.resolve().parent != run.resolve():
        raise HTTPException(404, f"the GAN run has no {role} file")
    if path.stat().st_size > config.limits.run_file_bytes:
        raise HTTPException(413, f"the GAN run's {role} is larger than this studio serves "
                                 f"({config.limits.run_file_bytes // 2**20} MB)")  # fmt: skip
    return path


def _load_upload(data: bytes, config: StudioConfig):
    """An image a worker sent, within the same bounds as a user's upload."""
    from brushwork.api import load_image

    if len(data) > config.limits.upload_bytes:
        raise BrushworkError("image larger than the upload limit")
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=config.uploads)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return load_image(tmp, config.limits.image_pixels)  # refuses non-images and bombs
    except BrushworkError as exc:  # said without the server's temporary path
        raise BrushworkError(f"a worker's image refused: {str(exc).replace(tmp, 'it')}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _publish(studio, job, claim: str, records_json: str, files, clip=None, trained=None) -> list[str]:
    """Check, protect and save an attempt's images (or its clip), install a training job's model, then mark
    the job done in one transaction with its publication row; on any failure nothing stays behind."""
    from brushwork.api import IMAGE_INFO_KEY, save
    from brushwork.studio.engines import get_engine

    config: StudioConfig = studio.config
    if (job.engine == "video") != (clip is not None) or (clip is not None and files):
        raise BrushworkError("a video job publishes one clip (video) and no images; other jobs images only")
    if clip is None and not 1 <= len(files) <= config.limits.files_per_job:
        raise BrushworkError(f"publish 1 to {config.limits.files_per_job} images")
    makes_model = get_engine(job.engine).makes_model
    if makes_model != (trained is not None) or (trained is not None and None in trained):
        raise BrushworkError("a training job publishes its model (model and model_json) with its picture; "
                             "other jobs no model")  # fmt: skip
    records = _worker_records(records_json, job, 1 if clip is not None else len(files), config)
    if clip is not None:
        return _publish_clip(studio, job, claim, records[0], clip)
    if makes_model and (records[0].extra.get("trained") or {}).get("model") != job.inputs.get("model"):
        raise BrushworkError(f"a training job's picture must be the one its model {job.inputs.get('model')} painted")
    pictures = []
    for upload, record in zip(files, records, strict=True):
        picture = _load_upload(upload.file.read(config.limits.upload_bytes + 1), config)
        picture.info[IMAGE_INFO_KEY] = record
        pictures.append(picture)
    # The model is checked (loaded as the engine loads it) before anything is written.
    staged = _stage_model(config, job, claim, *trained) if trained is not None else None
    written: list[Path] = []
    try:
        if staged is not None:  # hard links made exclusively: never over a model of that name
            written += _install_trained(config, job, staged)
        for n, picture in enumerate(pictures):
            path = config.outputs / f"{job.id}-{claim[:8]}-{n}.png"
            written.append(save(picture, path, protection=config.protection()))
        names = [p.name for p in written]
        if not studio.store.publish(job.id, claim, names, pictures[0].info[IMAGE_INFO_KEY].to_json()):
            raise BrushworkError("this attempt lost the job while publishing")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    shutil.rmtree(config.job_dir(job.id), ignore_errors=True)
    return names


def _worker_records(records_json: str, job, count: int, config: StudioConfig) -> list:
    """The records a worker sent, one per result, as the server keeps them: without the worker's paths or
    any protection it claims (the server's own protection notes itself), with the job's id."""
    from brushwork.api import Record

    if len(records_json.encode()) > config.limits.params_bytes * 4:
        raise BrushworkError("records too large")
    try:
        given = json.loads(records_json)
    except ValueError:
        raise BrushworkError("records is not valid JSON") from None
    if not isinstance(given, list) or len(given) != count:
        raise BrushworkError("give one record per image")
    records = []
    for data in given:
        try:
            record = Record.from_dict(data)
        except (TypeError, ValueError, KeyError, AttributeError):
            raise BrushworkError("a record that is not a brushwork record") from None
        # The worker's temporary paths mean nothing here; the hashes identify the inputs.
        record.inputs = {role: _without_paths(value) for role, value in record.inputs.items()}
        record.extra.pop("protection", None)
        record.extra["studio_job"] = job.id
        records.append(record)
    return records


def _publish_clip(studio, job, claim: str, record, upload) -> list[str]:
    """A video job's clip: received within the upload limit, checked as a clip within the studio's video
    bounds, then written through the exit a local video job's clip takes (every frame watermarked with
    the clip's work ID, signed, registered), with its poster as a local job has it."""
    from brushwork.api import SETTINGS, first_frame, publish_clip
    from brushwork.studio.engines import clip_poster
    from brushwork.studio.library import probe_video

    config: StudioConfig = studio.config
    if record.engine != job.engine:
        raise BrushworkError(f"a {job.engine} job's clip came with a {str(record.engine)[:40]} record")
    received = _receive(upload, config, ".mp4")
    written: list[Path] = []
    try:
        try:  # the header, the frames (counted), their size and the seconds, as a user's upload is checked
            clip = probe_video(received, config.limits)
        except BrushworkError as exc:  # said without the server's temporary path
            raise BrushworkError(f"a worker's clip refused: {str(exc).replace(str(received), 'it')}") from None
        if job.inputs.get("frames") and clip["frames"] > job.inputs["frames"]:
            raise BrushworkError(f"a worker's clip refused: {clip['frames']} frames from a {job.inputs['frames']}-"
                                 "frame source")  # fmt: skip
        target = config.outputs / f"{job.id}-{claim[:8]}-0.mp4"
        crf = SETTINGS["video"].from_values(job.params).crf
        written.append(target)
        publish_clip(received, target, record, crf=crf, protection=config.protection())
        written.append(clip_poster(first_frame(received), target, record))
        if not studio.store.publish(job.id, claim, [target.name], record.to_json()):
            raise BrushworkError("this attempt lost the job while publishing")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    finally:
        received.unlink(missing_ok=True)
    shutil.rmtree(config.job_dir(job.id), ignore_errors=True)
    return [target.name]


def _receive(upload, config: StudioConfig, suffix: str) -> Path:
    """An uploaded file copied, a chunk at a time, to a temporary file in uploads/; refused past the
    upload limit (the request's own limit refuses it first, unless it came without a length)."""
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", suffix=suffix, dir=config.uploads)
    try:
        with os.fdopen(fd, "wb") as fh:
            size = 0
            while chunk := upload.file.read(1 << 20):
                size += len(chunk)
                if size > config.limits.upload_bytes:
                    raise BrushworkError(f"a worker's file larger than the upload limit of "
                                         f"{config.limits.upload_bytes // 2**20} MB")  # fmt: skip
                fh.write(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


# A training job's model and checkpoints: the trainer's own safetensors + JSON pair (never a pickle), checked
# by loading it as the engine does, kept in the job's folder on the server.

#: The kind (the "kind" in a model's JSON) of the model each trainer makes.
_TRAINED_KINDS = {"fast-train": "fast-style", "adain-train": "adain"}
_MAX_MODEL_JSON = 1024 * 1024  # as a user's model upload's description


def _checkpoint_path(config: StudioConfig, job) -> Path:
    """Where a training job's checkpoint lives on the server (a local worker's trainer writes it there)."""
    from brushwork.studio.engines import TRAINING_CHECKPOINT

    if job.engine not in _TRAINED_KINDS:
        raise HTTPException(404, f"a {job.engine} job has no training checkpoint")
    return config.job_dir(job.id) / TRAINING_CHECKPOINT


def _stored_steps(config: StudioConfig, job) -> int:
    """The steps of the training checkpoint kept for ``job`` (0: none, or not a training job)."""
    if job.engine not in _TRAINED_KINDS:
        return 0
    path = _checkpoint_path(config, job)
    try:
        step = json.loads(path.with_suffix(".json").read_text())["step"] if path.is_file() else 0
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return step if isinstance(step, int) and step > 0 else 0


def _receive_pair(config: StudioConfig, job, weights, meta, folder: Path, what: str) -> tuple[Path, dict]:
    """A trainer's safetensors + JSON pair a worker sent, into a new staging folder inside ``folder``:
    each within the limits of a user's model upload, the JSON of the kind this job's trainer makes, the
    weights loaded as the engine loads a model. Returns the staged weights' path and the JSON."""
    from brushwork import api

    description = meta.file.read(_MAX_MODEL_JSON + 1)
    if len(description) > _MAX_MODEL_JSON:
        raise BrushworkError(f"a worker's {what} refused: its JSON is larger than {_MAX_MODEL_JSON // 1024} KiB")
    try:
        data = json.loads(description)
    except (ValueError, RecursionError):
        raise BrushworkError(f"a worker's {what} refused: its JSON is not valid") from None
    kind = _TRAINED_KINDS[job.engine]
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise BrushworkError(f"a worker's {what} refused: not a {kind} model (its JSON's kind)")
    step = data.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise BrushworkError(f"a worker's {what} refused: its JSON has no step count")
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder))
    staged = staging / "model.safetensors"
    try:
        shutil.move(_receive(weights, config, ".safetensors"), staged)
        staged.with_suffix(".json").write_bytes(description)
        try:
            api.load_model(staged, device="cpu")  # safetensors: tensors only, nothing runs as it is read
        except BrushworkError as exc:  # said without the server's staging path
            raise BrushworkError(f"a worker's {what} refused: {str(exc).replace(str(staged), 'it')}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staged, data


def _keep_checkpoint(config: StudioConfig, job, weights, meta) -> int:
    """Keep an attempt's training checkpoint in the job's folder in place of the one there, weights then
    JSON (as the trainer writes its own: the JSON says which step the pair holds). Returns its step."""
    from brushwork.studio.engines import get_engine

    target = _checkpoint_path(config, job)
    staged, data = _receive_pair(config, job, weights, meta, target.parent, "checkpoint")
    try:
        steps = get_engine(job.engine).settings.from_values(job.params).steps
        if data["step"] > steps or data["step"] < _stored_steps(config, job):
            raise BrushworkError(f"a worker's checkpoint refused: step {data['step']} of a job of {steps} steps "
                                 f"whose kept checkpoint is at step {_stored_steps(config, job)}")  # fmt: skip
        if "optim" not in data:
            raise BrushworkError("a worker's checkpoint refused: it has no training state to resume from")
        os.replace(staged, target)
        os.replace(staged.with_suffix(".json"), target.with_suffix(".json"))
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
    return data["step"]


def _stage_model(config: StudioConfig, job, claim: str, weights, meta) -> Path:
    """A training job's finished model, checked and staged in the job's folder as ``published-<claim>``:
    the files :func:`_install_trained` links into DATA/models."""
    from brushwork.studio.engines import get_engine

    folder = config.job_dir(job.id)
    staged, data = _receive_pair(config, job, weights, meta, folder, "model")
    try:
        steps = get_engine(job.engine).settings.from_values(job.params).steps
        if data["step"] != steps:
            raise BrushworkError(f"a worker's model refused: trained {data['step']} of the job's {steps} steps")
        _drop_unfinished_install(config, job)
        target = folder / f"published-{claim[:8]}.safetensors"
        os.replace(staged.with_suffix(".json"), target.with_suffix(".json"))
        os.replace(staged, target)
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
    return target


def _drop_unfinished_install(config: StudioConfig, job) -> None:
    """A publish of this job that installed its model and died before the job was marked done (the server
    killed) left links in DATA/models to a file still in the job's folder: this job's own, never published,
    so they go (rather than be taken for another model of that name). A finished publish removed the folder."""
    target = config.models / f"{job.inputs['model']}.safetensors"
    for earlier in config.job_dir(job.id).glob("published-*.safetensors"):
        for mine, link in ((earlier, target), (earlier.with_suffix(".json"), target.with_suffix(".json"))):
            if link.exists() and mine.exists() and os.path.samefile(mine, link):
                link.unlink()
            mine.unlink(missing_ok=True)


def _install_trained(config: StudioConfig, job, staged: Path) -> list[Path]:
    """Link a staged model into DATA/models under the job's model name (as a local training job's model:
    hard links made exclusively, never over a model of that name); returns the links made."""
    from brushwork.studio.library import install_trained_model

    target = install_trained_model(config.models, staged, job.inputs["model"])
    return [target, target.with_suffix(".json")]


def _without_paths(value):
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    return {k: v for k, v in value.items() if k != "path"} if isinstance(value, dict) else value


# ---------------------------------------------------------------------------------------------
# The worker side


class Lost(Exception):
    """This attempt no longer holds its job (or the server could not be reached in time)."""


class ServerClient:
    """The worker API over HTTP, retrying through outages (a restarted server, a cut link) for up to
    ``patience`` seconds per call."""

    def __init__(self, url: str, token: str, patience: float = 120.0, timeout: float = 30.0):
        import httpx

        if not url.startswith(("http://", "https://")):
            raise BrushworkError(f"--server must be an http:// or https:// URL, not {url[:80]!r}")
        self.patience = patience
        self.http = httpx.Client(base_url=url.rstrip("/") + PREFIX, timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    def call(self, method: str, path: str, save_to: Path | None = None, limit: int = 0, **kwargs):
        """One request, retried through outages; with ``save_to``, a successful answer's body is streamed
        into that file, refused past ``limit`` bytes."""
        import httpx

        deadline, pause = time.monotonic() + self.patience, 0.2
        while True:
            try:
                response = self._send(method, path, save_to, limit, kwargs)
                if response.status_code not in (502, 503, 504):
                    break
                reason = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                reason = type(exc).__name__
            if time.monotonic() > deadline:
                raise Lost(f"server unreachable for {self.patience:.0f} s ({reason})")
            log.info("worker API %s %s: %s; retrying", method, path.split("?")[0], reason)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
            for value in kwargs.get("files") or []:  # rewind uploads for the next try
                value[1][1].seek(0)
        if response.status_code == 409:
            raise Lost(response.json().get("detail", "lost"))
        if response.status_code == 401:
            raise BrushworkError("the server refused the worker token (set BRUSHWORK_WORKER_TOKEN)")
        if 400 <= response.status_code < 500:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = None
            said = str(detail or response.status_code)[:500]
            raise BrushworkError(f"the server refused {path.split('?')[0]}: {said}")
        response.raise_for_status()
        return response

    def _send(self, method: str, path: str, save_to: Path | None, limit: int, kwargs: dict):
        if save_to is None:
            return self.http.request(method, path, **kwargs)
        with self.http.stream(method, path, **kwargs) as response:
            if response.status_code != 200:
                response.read()  # an error's JSON, read by the caller
                return response
            size = 0
            with open(save_to, "wb") as fh:
                for chunk in response.iter_bytes(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise BrushworkError(f"{path.split('?')[0]}: larger than this worker takes "
                                             f"({limit // 2**20} MB)")  # fmt: skip
                    fh.write(chunk)
        return response

    def close(self) -> None:
        self.http.close()


class _RemoteAttempt:
    """One attempt at a job on a remote worker: a heartbeat thread renews the lease with progress."""

    def __init__(self, client: ServerClient, job: dict, claim: str, lease: float, preview_seconds: float = 1.0):
        self.client, self.job, self.claim = client, job, claim
        self.interval = max(0.5, lease / 3)
        self.preview_seconds = preview_seconds
        self.stopped: str | None = None
        self.fraction, self.eta = 0.0, None
        self.start = time.monotonic()
        self.last_preview = 0.0
        self._done = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name=f"lease-{job['id'][:8]}")

    def __enter__(self):
        self._beat.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._beat.join()

    def _heartbeat(self):
        while not self._done.wait(self.interval):
            try:
                body = {"claim": self.claim, "progress": self.fraction, "eta": self.eta}
                if not self.client.call("POST", f"/jobs/{self.job['id']}/renew", json=body).json()["go_on"]:
                    self.stopped = "cancelled"
            except Lost as exc:
                self.stopped = f"lease lost: {exc}"
            except Exception as exc:  # noqa: BLE001 - a bad answer now and then: try again at the next beat
                log.warning("job %s: renewal failed: %s", self.job["id"], exc)

    def progress(self, fraction: float, make_preview=None) -> None:
        from brushwork.studio.jobs import JobStopped

        if self.stopped:
            raise JobStopped(self.stopped)
        self.fraction = min(1.0, max(0.0, fraction))
        elapsed = time.monotonic() - self.start
        self.eta = elapsed / self.fraction * (1 - self.fraction) if self.fraction > 0 else None
        now = time.monotonic()
        if make_preview is not None and now - self.last_preview >= self.preview_seconds and self.fraction < 1.0:
            self.last_preview = now
            buffer = io.BytesIO()
            make_preview().convert("RGB").save(buffer, "JPEG", quality=80)
            buffer.seek(0)
            try:
                self.client.call("POST", f"/jobs/{self.job['id']}/preview", data={"claim": self.claim},
                                 files=[("image", ("preview.jpg", buffer, "image/jpeg"))])  # fmt: skip
            except Lost as exc:
                self.stopped = f"lease lost: {exc}"
        if self.stopped:
            raise JobStopped(self.stopped)


class RemoteWorker:
    """Runs jobs of a studio on another host through its worker API: nothing shared but the network."""

    def __init__(self, server_url: str, token: str, device: str = "auto", lease: float = 30.0,
                 name: str | None = None, patience: float = 120.0, max_pixels: int = 40_000_000,
                 max_download_bytes: int = 2 * 1024**3):  # fmt: skip
        self.client = ServerClient(server_url, token, patience=patience)
        self.device, self.lease, self.max_pixels = device, lease, max_pixels
        #: The most one input file may hold (a GAN checkpoint is the largest input).
        self.max_download_bytes = max_download_bytes
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        if not _WORKER_NAME.fullmatch(self.name):
            raise BrushworkError("--name: 1-100 letters, digits or _.:@-")
        self.stop = threading.Event()

    def run_once(self, job_id: str | None = None) -> str | None:
        """Claim and run one job (``job_id``, or the oldest); return its final status ("lost" when another
        attempt took over), or None when there was nothing to claim."""
        answer = self.client.call("POST", "/claim", json={"worker": self.name, "job": job_id}).json()
        if answer["job"] is None:
            return None
        job, claim = answer["job"], answer["claim"]
        log.info("job %s (%s): attempt %d", job["id"], job["engine"], job["attempts"])
        upload_bytes = int((answer.get("limits") or {}).get("upload_bytes") or 0)
        with tempfile.TemporaryDirectory(prefix="brushwork-job-") as tmp:
            try:
                return self._run(job, claim, Path(tmp), upload_bytes)
            except Lost as exc:
                log.warning("job %s: %s", job["id"], exc)
                return "lost"

    def _run(self, job: dict, claim: str, tmp: Path, upload_bytes: int = 0) -> str:
        from brushwork.studio.engines import RunContext, get_engine
        from brushwork.studio.jobs import JobStopped

        def end(status: str, error: str | None = None) -> str:
            body = {"claim": claim, "status": status, "error": error}
            ok = self.client.call("POST", f"/jobs/{job['id']}/end", json=body).json()["ok"]
            return status if ok else "lost"

        trained: list[Path] = []
        hand = functools.partial(self._hand_checkpoint, job, claim, upload_bytes=upload_bytes)

        def keep_model(checkpoint: Path, name: str) -> Path:
            """A trained model goes back to the server with the job's picture: the server installs it."""
            kept = tmp / "trained" / f"{name if _MODEL_NAME.fullmatch(name or '') else 'model'}.safetensors"
            kept.parent.mkdir(exist_ok=True)
            shutil.copyfile(checkpoint.with_suffix(".json"), kept.with_suffix(".json"))
            shutil.copyfile(checkpoint, kept)
            trained[:] = [kept]
            return kept

        with _RemoteAttempt(self.client, job, claim, self.lease) as attempt:
            try:
                inputs = self._fetch_inputs(job, claim, tmp)
                work = tmp / "work"
                work.mkdir()
                if job.get("checkpoint"):  # an earlier attempt's, maybe on another host: resume from it
                    self._fetch_checkpoint(job, claim, work)
                # A clip is written unprotected: the server marks, signs and registers it as it publishes.
                ctx = RunContext(attempt.progress, self.device, self.max_pixels, lambda suffix: tmp / f"out{suffix}",
                                 work, protection=None, install_model=keep_model, checkpointed=hand)  # fmt: skip
                results = get_engine(job["engine"]).run(inputs, job["params"], ctx)
                if attempt.stopped:
                    raise JobStopped(attempt.stopped)
            except JobStopped as stop:
                return end("cancelled") if str(stop) == "cancelled" else "lost"
            except BrushworkError as exc:
                return end("failed", str(exc))
            except Lost:
                raise
            except Exception as exc:  # noqa: BLE001 - a worker outlives any one job; the error goes to the client
                log.exception("job %s failed", job["id"])
                return end("failed", f"{type(exc).__name__}: {exc}"[:2000])
            # Still renewing the lease: the server may take longer than one to mark a clip frame by frame.
            try:
                return self._publish(job, claim, results, upload_bytes, trained[0] if trained else None)
            except BrushworkError as exc:  # the server refused the results (too large, not images): say why
                return end("failed", str(exc))

    def _fetch_checkpoint(self, job: dict, claim: str, work: Path) -> None:
        """The training checkpoint the server keeps for the job, where the trainer resumes from it (weights
        first, JSON last, as the trainer writes it)."""
        from brushwork.studio.engines import TRAINING_CHECKPOINT

        path = work / TRAINING_CHECKPOINT
        for part, target in (("weights", path), ("json", path.with_suffix(".json"))):
            self.client.call("GET", f"/jobs/{job['id']}/checkpoint/{part}", params={"claim": claim}, save_to=target,
                             limit=self.max_download_bytes)  # fmt: skip
        log.info("job %s: resuming from the checkpoint of step %d", job["id"], job["checkpoint"])

    def _hand_checkpoint(self, job: dict, claim: str, path: Path, upload_bytes: int) -> None:
        """A new training checkpoint, handed to the server (it keeps the latest in the job's folder), so that
        the next attempt resumes from it on whatever host it runs. One the server refuses (too large for its
        upload limit, say) is not fatal: the job goes on, a later attempt resumes from an older one."""
        meta = path.with_suffix(".json")
        size = path.stat().st_size + meta.stat().st_size
        if upload_bytes and size > upload_bytes:
            log.warning("job %s: checkpoint of %.1f MB not handed back (over the upload limit of %.1f MB)",
                        job["id"], size / 2**20, upload_bytes / 2**20)  # fmt: skip
            return
        with open(path, "rb") as weights, open(meta, "rb") as description:
            try:
                self.client.call("POST", f"/jobs/{job['id']}/checkpoint", data={"claim": claim}, timeout=300,
                                 files=[("weights", ("model.safetensors", weights, "application/octet-stream")),
                                        ("meta", ("model.json", description, "application/json"))])  # fmt: skip
            except BrushworkError as exc:
                log.warning("job %s: %s", job["id"], exc)

    def _fetch_inputs(self, job: dict, claim: str, tmp: Path):
        from brushwork.api import MAGENTA_MODEL, gan_run_files
        from brushwork.studio.engines import Inputs, get_engine

        def fetch(role: str, name: str | Path, n: int = 0) -> Path:
            path = tmp / name
            self.client.call("GET", f"/jobs/{job['id']}/input/{role}", params={"claim": claim, "n": n},
                             save_to=path, limit=self.max_download_bytes)  # fmt: skip
            return path

        refs = job["inputs"]
        content = refs.get("content")
        model = None
        if refs.get("model") and get_engine(job["engine"]).makes_model:
            pass  # a trainer's model is the name of the model it makes, not a file to fetch
        elif refs.get("model") and job["engine"] == "gan-sample":  # a run folder of the two files sampling reads
            model = tmp / "run"
            model.mkdir()
            for role, path in gan_run_files(model).items():
                fetch(f"{_GAN_PREFIX}{role}", path)
        elif refs.get("model") == MAGENTA_MODEL:  # comes with brushwork, as on the server
            model = Path(MAGENTA_MODEL)
        elif refs.get("model"):
            name = refs["model"] if _MODEL_NAME.fullmatch(str(refs["model"])) else "model"
            model = fetch("model", f"{name}.safetensors")
            fetch("model-json", f"{name}.json")
        suffix = Path(content.split(":", 1)[1]).suffix if content else ""
        # A trainer's photos (the first is also its content: fetched once).
        contents = [fetch("contents", f"photo-{n}{Path(ref.split(':', 1)[1]).suffix}", n)
                    for n, ref in enumerate(refs.get("contents") or [])]  # fmt: skip
        return Inputs(
            content=contents[0] if contents else fetch("content", f"content{suffix}") if content else None,
            styles=[
                fetch("style", f"style-{n}{Path(ref.split(':', 1)[1]).suffix}", n)
                for n, ref in enumerate(refs.get("styles") or [])
            ],  # fmt: skip
            model=model,
            frames=refs.get("frames"),
            masks=[
                fetch("mask", f"mask-{n}{Path(ref.split(':', 1)[1]).suffix}", n)
                for n, ref in enumerate(refs.get("masks") or [])
            ],  # fmt: skip
            contents=contents,
            new_model=refs.get("model") if get_engine(job["engine"]).makes_model else None,
        )

    def _publish(self, job: dict, claim: str, results: list, upload_bytes: int = 0, model: Path | None = None) -> str:
        from brushwork.api import record_of
        from brushwork.studio.engines import Written

        path = f"/jobs/{job['id']}/publish"
        clips = [r for r in results if isinstance(r, Written)]
        if clips:  # a video job's one clip, streamed from its file
            clip = clips[0]
            size = clip.path.stat().st_size
            if len(results) != 1 or clip.record is None:
                raise BrushworkError(f"engine {job['engine']} made something other than one clip with its record")
            if upload_bytes and size > upload_bytes:
                raise BrushworkError(f"the clip is {size / 2**20:.1f} MB, over the studio's upload limit of "
                                     f"{upload_bytes / 2**20:.1f} MB (fewer frames or a higher crf make it "
                                     "smaller)")  # fmt: skip
            records = json.dumps([clip.record.to_dict()])
            with open(clip.path, "rb") as fh:  # the server protects the clip frame by frame: give it time
                self.client.call("POST", path, data={"claim": claim, "records": records},
                                 files=[("video", ("0.mp4", fh, "video/mp4"))], timeout=600)  # fmt: skip
            return "done"
        files, records = [], []
        for image in results:
            buffer = io.BytesIO()
            image.save(buffer, "PNG")  # unprotected: the server marks, signs and registers
            buffer.seek(0)
            files.append(("image", (f"{len(files)}.png", buffer, "image/png")))
            record = record_of(image)
            if record is None:
                raise BrushworkError(f"engine {job['engine']} made an image without a record")
            records.append(record.to_dict())
        with ExitStack() as opened:
            if model is not None:  # a training job's model: the server checks and installs it as it publishes
                size = model.stat().st_size + model.with_suffix(".json").stat().st_size
                size += sum(len(f[1][1].getbuffer()) for f in files)
                if upload_bytes and size > upload_bytes:
                    raise BrushworkError(f"the trained model and its picture are {size / 2**20:.1f} MB, over the "
                                         f"studio's upload limit of {upload_bytes / 2**20:.1f} MB")  # fmt: skip
                files.append(("model", (model.name, opened.enter_context(open(model, "rb")),
                                        "application/octet-stream")))  # fmt: skip
                files.append(("model_json", (model.with_suffix(".json").name,
                                             opened.enter_context(open(model.with_suffix(".json"), "rb")),
                                             "application/json")))  # fmt: skip
            # The server marks, signs and registers each picture before it answers: give it time.
            self.client.call("POST", path, data={"claim": claim, "records": json.dumps(records)},
                             files=files, timeout=300)  # fmt: skip
        return "done"

    def run_forever(self, poll: float = 0.5) -> None:
        while not self.stop.is_set():
            try:
                if self.run_once() is None:
                    self.stop.wait(poll)
            except Lost as exc:
                log.warning("%s", exc)
                self.stop.wait(poll)


def with_worker_api(app, token: str):
    """An ASGI app that serves :data:`PREFIX` from the worker API and everything else from ``app`` (the
    browser's token and pages stay out of the worker API's way, and the other way round)."""
    worker_app = create_worker_app(app.state.studio, token)

    async def dispatch(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(PREFIX + "/"):
            scope = {**scope, "root_path": scope.get("root_path", "") + PREFIX}
            return await worker_app(scope, receive, send)
        return await app(scope, receive, send)

    dispatch.state = app.state
    return dispatch
