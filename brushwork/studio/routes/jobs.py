"""``/api/jobs``: queue a job, follow it (status, previews, server-sent events), fetch its results,
star, cancel or delete it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sse_starlette.sse import EventSourceResponse

from brushwork.errors import BrushworkError
from brushwork.studio.jobs import FINAL, STATUSES
from brushwork.studio.routes.dependencies import StudioDep, job_or_404, read_uploads
from brushwork.studio.schemas import FavouriteIn, JobOut, JobQueued, errors
from brushwork.studio.service import Studio

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

#: How long one event stream stays open (a browser reconnects by itself).
SSE_MAX_SECONDS = 3600
#: Media types of the outputs by suffix.
MEDIA_TYPES = {".png": "image/png", ".mp4": "video/mp4"}
ENGINE_HELP = "stylize, fast, adain, gan-sample, video, fast-train, adain-train (see GET /api/engines)"
PARAMS_HELP = 'JSON of the engine\'s settings (schema: <Engine>Settings), e.g. {"image_size": 512}'


@router.post("", status_code=202, response_model=JobQueued, responses=errors(400, 413), summary="Queue a job")
def submit(
    studio: StudioDep,
    engine: Annotated[str, Form(description=ENGINE_HELP)],
    params: Annotated[str, Form(description=PARAMS_HELP)] = "{}",
    content: Annotated[
        list[UploadFile] | None,
        File(description="the content image (video: the clip; a trainer: its photos, repeat the field)"),
    ] = None,
    style: Annotated[list[UploadFile] | None, File(description="style images (repeat the field)")] = None,
    content_ref: Annotated[list[str] | None, Form(description="a library image instead of an upload")] = None,
    style_ref: Annotated[list[str] | None, Form(description="library style images (GET /api/images)")] = None,
    model: Annotated[
        str | None, Form(description="a model name (see GET /api/models); a trainer: the new model's name")
    ] = None,
    mask: Annotated[
        list[UploadFile] | None,
        File(description="style masks: one per style, or one for two (white: the first style's region); stylize only"),
    ] = None,
):
    job_id = studio.submit(engine, params, read_uploads(studio, content, style, mask),
                           [r for r in content_ref or [] if r],
                           [r for r in style_ref or [] if r], model or None)  # fmt: skip
    return {"id": job_id, "url": f"/api/jobs/{job_id}"}


@router.get("", response_model=list[JobOut], summary="The queue: recent jobs, newest first")
def jobs(studio: StudioDep, status: str | None = None, limit: int = Query(100, ge=1, le=1000)):
    statuses = tuple(status.split(",")) if status else STATUSES
    return [j.public() for j in studio.store.list(statuses, limit=limit)]


@router.get("/{job_id}", response_model=JobOut, responses=errors(404),
            summary="A job's status, progress (0-1), ETA (s) and error")  # fmt: skip
def job(studio: StudioDep, job_id: str):
    return job_or_404(studio, job_id).public()


@router.delete("/{job_id}", response_model=JobOut, responses=errors(404, 409, 500),
               summary="Cancel a queued or running job; delete an ended one (to DATA/trash/)")  # fmt: skip
def cancel_or_delete(studio: StudioDep, job_id: str):
    job = job_or_404(studio, job_id)
    try:
        if job.status in FINAL:
            return studio.delete(job_id).public()
        return studio.store.cancel(job_id).public()
    except BrushworkError as exc:  # it ended, or started, between the two reads
        raise HTTPException(409, str(exc)) from None
    except OSError as exc:  # the job and its files stay as they were
        raise HTTPException(500, f"could not move job {job_id}'s files to the trash: {exc.strerror}") from None


@router.put("/{job_id}/favourite", response_model=JobOut, responses=errors(404, 409),
            summary="Star or unstar a finished job's pictures")  # fmt: skip
def favourite(studio: StudioDep, job_id: str, body: FavouriteIn):
    job_or_404(studio, job_id)
    try:
        return studio.store.set_favourite(job_id, body.favourite).public()
    except BrushworkError as exc:
        raise HTTPException(409, str(exc)) from None


def output_file(studio: Studio, job_id: str, n: int):
    job = job_or_404(studio, job_id)
    if job.status != "done" or job.trashed or n >= len(job.outputs):
        state = "deleted" if job.trashed else f"status {job.status}"
        raise HTTPException(404, f"job {job_id} has no output {n} ({state})")
    return studio.config.outputs / job.outputs[n]


RESULT = {200: {"content": {"image/png": {}, "video/mp4": {}}, "description": "The file"}, **errors(404)}


@router.get("/{job_id}/image", response_class=FileResponse, responses=RESULT,
            summary="The result, carrying its full record: a PNG, or a video's MP4")  # fmt: skip
@router.get("/{job_id}/result", response_class=FileResponse, responses=RESULT,
            summary="The same as /image, by a name that fits videos")  # fmt: skip
def image(studio: StudioDep, job_id: str, n: int = Query(0, ge=0, le=999)):
    path = output_file(studio, job_id, n)
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                        filename=f"brushwork-{job_id[:8]}-{n}{path.suffix}",
                        content_disposition_type="inline")  # fmt: skip


JPEG = {200: {"content": {"image/jpeg": {}}, "description": "A JPEG"}, **errors(404)}


@router.get("/{job_id}/poster", response_class=FileResponse, responses=JPEG,
            summary="A video result's first frame (a JPEG with the video's record)")  # fmt: skip
def poster(studio: StudioDep, job_id: str, n: int = Query(0, ge=0, le=999)):
    path = output_file(studio, job_id, n).with_suffix(".poster.jpg")
    if not path.is_file():
        raise HTTPException(404, f"job {job_id} output {n} has no poster")
    return FileResponse(path, media_type="image/jpeg")


@router.get("/{job_id}/preview", response_class=Response, responses=JPEG,
            summary="The latest preview while the job runs")  # fmt: skip
def preview(studio: StudioDep, job_id: str):
    job = job_or_404(studio, job_id)
    try:  # read at once: the worker deletes a preview when it writes the next one
        data = (studio.config.previews / job.preview).read_bytes() if job.preview else None
    except FileNotFoundError:
        data = None
    if data is None:
        raise HTTPException(404, "no preview yet")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


EVENTS = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "progress events (a Job each), then one named by the status it ended with",
    },
    **errors(404),
}


@router.get("/{job_id}/events", response_class=EventSourceResponse, responses=EVENTS,
            summary="Server-sent events: progress, previews, the end")  # fmt: skip
async def events(studio: StudioDep, job_id: str, request: Request):
    await anyio.to_thread.run_sync(job_or_404, studio, job_id)

    async def stream():
        last, deadline = None, time.monotonic() + SSE_MAX_SECONDS
        while time.monotonic() < deadline and not await request.is_disconnected():
            job = await anyio.to_thread.run_sync(studio.store.get, job_id)
            state = job.public()
            key = (state["status"], state["progress"], state["preview"])
            if key != last:
                last = key
                yield {"event": "progress", "data": json.dumps(state)}
            if job.status in FINAL:
                yield {"event": job.status, "data": json.dumps(state)}
                return
            await asyncio.sleep(0.25)

    return EventSourceResponse(stream(), ping=15)
