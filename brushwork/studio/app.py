"""The studio's web face: a FastAPI app over :class:`~brushwork.studio.service.Studio`.

REST under ``/api`` (OpenAPI at ``/docs``, bodies typed by :mod:`brushwork.studio.schemas`), the page at
``/`` (Jinja2 + vendored htmx/Alpine.js), live progress as server-sent events; the routes are the routers
of :mod:`brushwork.studio.routes`. Request bodies are bounded before they are read; Host, origin
and token checks (:mod:`brushwork.studio.guard`) run before every request.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from brushwork import api
from brushwork.errors import BrushworkError
from brushwork.studio import guard
from brushwork.studio.config import StudioConfig
from brushwork.studio.engines import available_engines
from brushwork.studio.routes import ROUTERS
from brushwork.studio.service import Studio

HERE = Path(__file__).resolve().parent


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
    app.state.studio = studio  # what the routers' StudioDep hands them

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
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _offline_docs(app)

    @app.exception_handler(BrushworkError)
    async def _bad_input(request: Request, exc: BrushworkError):
        return JSONResponse({"detail": str(exc)}, 400)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        refused = guard.check(request, config)
        return refused if refused is not None else await call_next(request)

    for router in ROUTERS:
        app.include_router(router)
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
