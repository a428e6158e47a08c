"""``/api/sweeps``: a batch or an X/Y plot, one job per value and seed, and its cells."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from brushwork.studio.routes.dependencies import StudioDep, read_uploads, sweep_or_404
from brushwork.studio.routes.jobs import PARAMS_HELP
from brushwork.studio.schemas import SweepOut, SweepQueued, errors

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"])

SWEEP_HELP = (
    'JSON: {"x": {"name": "style_weight", "values": [100, 1000]}, "y": {...}, "batch": 4}, each part '
    "optional; a batch takes seeds seed, seed+1, …"
)


@router.post("", status_code=202, response_model=SweepQueued, responses=errors(400, 413),
             summary="Queue a batch or an X/Y plot: one job per value and seed")  # fmt: skip
def submit_sweep(
    studio: StudioDep,
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
    return studio.submit_sweep(engine, params, sweep, read_uploads(studio, content, style, mask), content_ref or None,
                               [r for r in style_ref or [] if r], model or None)  # fmt: skip


# A cell has x, y and seed only where the sweep has them: the page tells an axis by the key's presence.
@router.get("/{sweep_id}", response_model=SweepOut, response_model_exclude_unset=True, responses=errors(404),
            summary="A sweep's cells: each job with its x, y and seed")  # fmt: skip
def sweep_cells(studio: StudioDep, sweep_id: str):
    return sweep_or_404(studio, sweep_id)
