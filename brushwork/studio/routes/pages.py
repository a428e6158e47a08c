"""The page at ``/`` and the htmx fragments it swaps in (``/ui/…``): HTML, not part of the REST API."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from brushwork.studio.engines import available_engines
from brushwork.studio.routes.dependencies import StudioDep, sweep_or_404
from brushwork.studio.service import sweep_grid

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")


@router.get("/favicon.ico")
def favicon():
    return Response(status_code=204)


@router.get("/")
def page(request: Request):
    engines = [e.describe() for e in available_engines()]
    return templates.TemplateResponse(request, "index.html", {"engines": engines, "engines_json": json.dumps(engines)})


@router.get("/ui/queue")
def queue_fragment(request: Request, studio: StudioDep):
    jobs = [j.public() for j in studio.store.list(limit=50)]
    return templates.TemplateResponse(request, "queue.html", {"jobs": jobs, "now": time.time()})


@router.get("/ui/gallery")
def gallery_fragment(request: Request, studio: StudioDep, engine: str = "", style: str = "", min_rating: str = "",
                     favourites: str = ""):  # fmt: skip
    # A form sends empty fields for "any".
    rating = float(min_rating) if re.fullmatch(r"[01](\.\d+)?", min_rating) else None
    items = studio.gallery(engine=engine or None, style=style[:200] or None, min_rating=rating,
                           favourites_only=bool(favourites))  # fmt: skip
    return templates.TemplateResponse(request, "gallery.html", {"items": items})


@router.get("/ui/sweep/{sweep_id}")
def sweep_fragment(request: Request, studio: StudioDep, sweep_id: str):
    return templates.TemplateResponse(request, "sweep.html", {"grid": sweep_grid(sweep_or_404(studio, sweep_id))})
