"""The studio's web face: a FastAPI app over :class:`~brushwork.studio.service.Studio`.

REST under ``/api`` (OpenAPI at ``/docs``), the page at ``/`` (Jinja2 + vendored htmx/Alpine.js),
live progress as server-sent events. Request bodies are bounded before they are read; Host, origin
and token checks (:mod:`brushwork.studio.guard`) run before every request.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from brushwork import api
from brushwork.errors import BrushworkError
from brushwork.studio import guard
from brushwork.studio.config import StudioConfig
from brushwork.studio.engines import available_engines
from brushwork.studio.jobs import FINAL
from brushwork.studio.library import add_model, list_images, list_models, picture_settings, resolve_image
from brushwork.studio.service import Studio, Upload, sweep_grid

HERE = Path(__file__).resolve().parent
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_IMAGE_ID = re.compile(r"[0-9a-f]{32}:\d{1,3}")
#: How long one event stream stays open (a browser reconnects by itself).
SSE_MAX_SECONDS = 3600
#: Media types of the outputs by suffix.
MEDIA_TYPES = {".png": "image/png", ".mp4": "video/mp4"}


class BodyTooLarge(Exception):
    pass


class LimitBody:
    """ASGI middleware: refuse bodies over ``limit`` bytes, by Content-Length or while streaming."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(self.limit)(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await _too_large(self.limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request larger than this studio's limit of {limit // (1024 * 1024)} MB"}, 413)


class FavouriteIn(BaseModel):
    favourite: bool = Field(description="true: a favourite (the gallery can show favourites only)")


class RatingIn(BaseModel):
    winner: str = Field(max_length=40, description="image id <job id>:<n> of the preferred image")
    loser: str = Field(max_length=40)
    rater: str = Field("studio", max_length=64)


SWEEP_HELP = (
    'JSON: {"x": {"name": "style_weight", "values": [100, 1000]}, "y": {...}, "batch": 4}, each part '
    "optional; a batch takes seeds seed, seed+1, …"
)
PARAMS_HELP = 'JSON of the engine\'s settings (schema: <Engine>Settings), e.g. {"image_size": 512}'


def create_app(config: StudioConfig, *, worker: bool = True) -> FastAPI:
    """The app. ``worker`` runs jobs in a thread of the server itself (no separate ``brushwork worker``)."""
    studio = Studio(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        studio.start_background(in_process_worker=worker)
        yield
        studio.stop_background()

    # /docs from Swagger UI's files in the swagger-ui-bundle package, not FastAPI's CDN: the studio works offline.
    # ReDoc would load from a CDN too, so it is left out.
    app = FastAPI(title="brushwork studio", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Queue style-transfer jobs, follow them live, browse and rate the results.")  # fmt: skip
    app.state.studio = studio

    def openapi() -> dict:
        """FastAPI's document, with each engine's settings (the ``params`` of POST /api/jobs) as a schema."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)  # fmt: skip
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update({e.schema_name: api.json_schema(e.settings) for e in available_engines()})
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _offline_docs(app)

    @app.exception_handler(BrushworkError)
    async def _bad_input(request: Request, exc: BrushworkError):
        return JSONResponse({"detail": str(exc)}, 400)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        refused = guard.check(request, config)
        return refused if refused is not None else await call_next(request)

    def job_or_404(job_id: str):
        job = studio.store.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise HTTPException(404, f"no job {job_id[:40]!r}")
        return job

    # -- the page -----------------------------------------------------------------------------------

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    @app.get("/", include_in_schema=False)
    def page(request: Request):
        engines = [e.describe() for e in available_engines()]
        return templates.TemplateResponse(
            request, "index.html", {"engines": engines, "engines_json": json.dumps(engines)}
        )

    @app.get("/ui/queue", include_in_schema=False)
    def queue_fragment(request: Request):
        jobs = [j.public() for j in studio.store.list(limit=50)]
        return templates.TemplateResponse(request, "queue.html", {"jobs": jobs, "now": time.time()})

    @app.get("/ui/gallery", include_in_schema=False)
    def gallery_fragment(request: Request, engine: str = "", style: str = "", min_rating: str = "",
                         favourites: str = ""):  # fmt: skip
        # A form sends empty fields for "any".
        rating = float(min_rating) if re.fullmatch(r"[01](\.\d+)?", min_rating) else None
        items = studio.gallery(engine=engine or None, style=style[:200] or None, min_rating=rating,
                               favourites_only=bool(favourites))  # fmt: skip
        return templates.TemplateResponse(request, "gallery.html", {"items": items})

    # -- jobs ------------------------------------------------------------------------------------------

    @app.post("/api/jobs", status_code=202, summary="Queue a job")
    def submit(
        engine: Annotated[str, Form(description="stylize, fast, adain, gan-sample, video (see GET /api/engines)")],
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
            File(
                description="style masks: one per style, or one for two (white: the first style's region); stylize only"
            ),
        ] = None,
    ):
        job_id = studio.submit(engine, params, read_uploads(content, style, mask), [r for r in content_ref or [] if r],
                               [r for r in style_ref or [] if r], model or None)  # fmt: skip
        return {"id": job_id, "url": f"/api/jobs/{job_id}"}

    @app.post("/api/sweeps", status_code=202, summary="Queue a batch or an X/Y plot: one job per value and seed")
    def submit_sweep(
        engine: Annotated[str, Form(description="as for POST /api/jobs")],
        sweep: Annotated[str, Form(description=SWEEP_HELP)],
        params: Annotated[str, Form(description=PARAMS_HELP + "; the settings every cell shares")] = "{}",
        content: Annotated[UploadFile | None, File()] = None,
        style: Annotated[list[UploadFile] | None, File()] = None,
        content_ref: Annotated[str | None, Form()] = None,
        style_ref: Annotated[list[str] | None, Form()] = None,
        model: Annotated[str | None, Form()] = None,
        mask: Annotated[list[UploadFile] | None, File()] = None,
    ):
        return studio.submit_sweep(engine, params, sweep, read_uploads(content, style, mask), content_ref or None,
                                   [r for r in style_ref or [] if r], model or None)  # fmt: skip

    @app.get("/api/sweeps/{sweep_id}", summary="A sweep's cells: each job with its x, y and seed")
    def sweep_cells(sweep_id: str):
        found = studio.sweep(sweep_id) if _JOB_ID.fullmatch(sweep_id) else None
        if found is None:
            raise HTTPException(404, f"no sweep {sweep_id[:40]!r}")
        return found

    @app.get("/ui/sweep/{sweep_id}", include_in_schema=False)
    def sweep_fragment(request: Request, sweep_id: str):
        return templates.TemplateResponse(request, "sweep.html", {"grid": sweep_grid(sweep_cells(sweep_id))})

    def read_uploads(content: UploadFile | list[UploadFile] | None, style: list[UploadFile] | None,
                     mask: list[UploadFile] | None) -> list[Upload]:  # fmt: skip
        contents = content if isinstance(content, list) else [content] if content else []
        uploads = []
        for role, files in (("content", contents), ("style", style or []), ("mask", mask or [])):
            for upload in files:
                data = upload.file.read(config.limits.upload_bytes + 1)
                if not data and not upload.filename:
                    continue  # an empty file field of a browser form
                if len(data) > config.limits.upload_bytes:
                    raise HTTPException(413, f"{role} file larger than the upload limit")
                uploads.append(Upload(role, upload.filename, data))
        return uploads

    @app.post("/api/png-info", summary="PNG Info: how a picture was made, from its own metadata (nothing is kept)")
    def png_info(image: Annotated[UploadFile, File(description="a brushwork output, or another tool's PNG")]):
        data = image.file.read(config.limits.upload_bytes + 1)
        if len(data) > config.limits.upload_bytes:
            raise HTTPException(413, "image file larger than the upload limit")
        return picture_settings(config, data, image.filename)

    @app.get("/api/jobs", summary="The queue: recent jobs, newest first")
    def jobs(status: str | None = None, limit: int = Query(100, ge=1, le=1000)):
        statuses = tuple(status.split(",")) if status else ("queued", "running", "done", "failed", "cancelled")
        return [j.public() for j in studio.store.list(statuses, limit=limit)]

    @app.get("/api/jobs/{job_id}", summary="A job's status, progress (0-1), ETA (s) and error")
    def job(job_id: str):
        return job_or_404(job_id).public()

    @app.delete("/api/jobs/{job_id}", summary="Cancel a queued or running job; delete an ended one (to DATA/trash/)")
    def cancel_or_delete(job_id: str):
        job = job_or_404(job_id)
        try:
            if job.status in FINAL:
                return studio.delete(job_id).public()
            return studio.store.cancel(job_id).public()
        except BrushworkError as exc:  # it ended, or started, between the two reads
            raise HTTPException(409, str(exc)) from None
        except OSError as exc:  # the job and its files stay as they were
            raise HTTPException(500, f"could not move job {job_id}'s files to the trash: {exc.strerror}") from None

    @app.put("/api/jobs/{job_id}/favourite", summary="Star or unstar a finished job's pictures")
    def favourite(job_id: str, body: FavouriteIn):
        job_or_404(job_id)
        try:
            return studio.store.set_favourite(job_id, body.favourite).public()
        except BrushworkError as exc:
            raise HTTPException(409, str(exc)) from None

    def output_file(job_id: str, n: int) -> Path:
        job = job_or_404(job_id)
        if job.status != "done" or job.trashed or n >= len(job.outputs):
            state = "deleted" if job.trashed else f"status {job.status}"
            raise HTTPException(404, f"job {job_id} has no output {n} ({state})")
        return config.outputs / job.outputs[n]

    @app.get("/api/jobs/{job_id}/image", summary="The result, carrying its full record: a PNG, or a video's MP4")
    @app.get("/api/jobs/{job_id}/result", summary="The same as /image, by a name that fits videos")
    def image(job_id: str, n: int = Query(0, ge=0, le=999)):
        path = output_file(job_id, n)
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                            filename=f"brushwork-{job_id[:8]}-{n}{path.suffix}",
                            content_disposition_type="inline")  # fmt: skip

    @app.get("/api/jobs/{job_id}/poster", summary="A video result's first frame (a JPEG with the video's record)")
    def poster(job_id: str, n: int = Query(0, ge=0, le=999)):
        path = output_file(job_id, n).with_suffix(".poster.jpg")
        if not path.is_file():
            raise HTTPException(404, f"job {job_id} output {n} has no poster")
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/api/jobs/{job_id}/preview", summary="The latest preview while the job runs")
    def preview(job_id: str):
        job = job_or_404(job_id)
        try:  # read at once: the worker deletes a preview when it writes the next one
            data = (config.previews / job.preview).read_bytes() if job.preview else None
        except FileNotFoundError:
            data = None
        if data is None:
            raise HTTPException(404, "no preview yet")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/events", summary="Server-sent events: progress, previews, the end")
    async def events(job_id: str, request: Request):
        await anyio.to_thread.run_sync(job_or_404, job_id)

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

    # -- library, gallery, ratings -------------------------------------------------------------------

    @app.get("/api/engines", summary="Engines and their parameters (the API's names, the CLI's flags)")
    def engines():
        return [e.describe() for e in available_engines()]

    @app.get("/api/models", summary="Models the studio can apply (bundled, and DATA/models)")
    def models():
        return [{k: v for k, v in m.items() if k != "path"} for m in list_models(config)]

    @app.post("/api/models", status_code=201, summary="Add a fast or AdaIN model: its .safetensors and .json")
    def upload_model(
        model: Annotated[UploadFile, File(description="MODEL.safetensors, as 'fast train' or 'adain train' wrote it")],
        description: Annotated[UploadFile, File(description="MODEL.json, the settings written beside it")],
    ):
        weights = model.file.read(config.limits.upload_bytes + 1)
        if len(weights) > config.limits.upload_bytes:
            raise HTTPException(413, "model file larger than the upload limit")
        try:
            return add_model(config, weights, description.file.read(config.limits.upload_bytes + 1), model.filename)
        except FileExistsError as exc:
            raise HTTPException(409, str(exc)) from None

    @app.get("/api/images", summary="Library images: bundled examples and earlier uploads")
    def images():
        return [{**item, "url": f"/api/images/{item['ref']}"} for item in list_images(config)]

    @app.get("/api/images/{ref}", summary="One library image")
    def library_image(ref: str):
        try:
            path = resolve_image(config, ref)
        except BrushworkError as exc:
            raise HTTPException(404, str(exc)) from None
        return FileResponse(path)

    @app.get("/api/gallery", summary="Finished images with their records, newest first")
    def gallery(
        engine: str | None = None,
        style: Annotated[str | None, Query(max_length=200)] = None,
        since: Annotated[str | None, Query(description="ISO date or time")] = None,
        until: str | None = None,
        min_rating: Annotated[float | None, Query(ge=0, le=1, description="share of comparisons won")] = None,
        favourites: Annotated[bool, Query(description="favourites only")] = False,
    ):
        return studio.gallery(engine, style, since, until, min_rating, favourites)

    @app.get("/api/ratings/pair", summary="Two images to compare (the least compared pair)")
    def rating_pair():
        pair = studio.pair()
        if pair is None:
            raise HTTPException(404, "need at least two finished images to rate")
        return pair

    @app.post("/api/ratings", status_code=201, summary="Record that one image was preferred to another")
    def rate(rating: RatingIn):
        for image_id in (rating.winner, rating.loser):
            if not _IMAGE_ID.fullmatch(image_id):
                raise HTTPException(400, f"image id {image_id!r} is not <job id>:<n>")
        studio.rate(rating.winner, rating.loser, rating.rater)
        return {"ok": True}

    @app.get("/api/ratings", summary="Wins and losses of every rated image")
    def ratings():
        return {k: {"wins": w, "losses": lost} for k, (w, lost) in studio.ratings.tallies().items()}

    return app


def asgi_app(config: StudioConfig, *, worker: bool = True) -> LimitBody:
    """The app behind its body-size limit: what uvicorn serves (and what the tests drive). With a worker
    token, the worker API (``remote.py``) is served beside it, under its own token."""
    app = create_app(config, worker=worker)
    if config.worker_token:
        from brushwork.studio.remote import with_worker_api

        app = with_worker_api(app, config.worker_token)
    return LimitBody(app, config.limits.upload_bytes)


def serve_app(config: StudioConfig, host: str, port: int, worker: bool = True) -> None:
    import uvicorn

    uvicorn.run(asgi_app(config, worker=worker), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=5)  # fmt: skip


def _offline_docs(app: FastAPI) -> None:
    """The OpenAPI page at /docs with Swagger UI served from the installed package (/docs-assets/)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def _docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title}: API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")  # fmt: skip
