"""The studio's REST bodies as pydantic models: what ``/openapi.json`` names and what each route returns.

The service (:mod:`brushwork.studio.service`, ``Job.public``, the library) builds plain dicts; a route
declares which model its dict is. The models forbid keys they do not name, so a key the service adds
without its model fails every test that reaches that route (a 500) instead of silently vanishing from
the page. Free-form parts (an engine's params, a record, the labels) stay open dicts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: A number as the service wrote it: an int stays an int (a plain ``float`` field would send 3 as 3.0).
Number = int | float


class Body(BaseModel):
    """A response body: exactly the keys the service gives, no more (see the module's note)."""

    model_config = ConfigDict(extra="forbid")


# -- requests (JSON bodies; uploads stay forms) --------------------------------------------------------


class FavouriteIn(BaseModel):
    favourite: bool = Field(description="true: a favourite (the gallery can show favourites only)")


class RatingIn(BaseModel):
    winner: str = Field(max_length=40, description="image id <job id>:<n> of the preferred image")
    loser: str = Field(max_length=40)
    rater: str = Field("studio", max_length=64)


# -- errors ------------------------------------------------------------------------------------------------


class ErrorOut(Body):
    """Every refusal the studio writes itself (bad input, no such job, the guard, the body limit)."""

    detail: str = Field(description="what is wrong, in one line")


#: What each refusal means; a route lists those it may answer with :func:`errors`.
ERROR_MEANINGS = {
    400: "Bad input: what is wrong, in one line",
    404: "No such job, sweep, image or model",
    409: "The job's state changed meanwhile, or the name is taken",
    413: "A file over this studio's upload limit",
    500: "The server could not finish; nothing was changed",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that may refuse with these status codes, each an :class:`ErrorOut`."""
    return {code: {"model": ErrorOut, "description": ERROR_MEANINGS[code]} for code in codes}


# -- jobs -------------------------------------------------------------------------------------------------


class JobOut(Body):
    """A job as the REST API shows it (``Job.public``): no claim tokens, no server paths."""

    id: str
    engine: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float = Field(description="0 to 1")
    eta: float | None = Field(description="seconds left, while it runs")
    error: str | None
    params: dict[str, Any] = Field(description="the engine's settings (schema: <Engine>Settings)")
    inputs: dict[str, Any] = Field(description="library refs of the content, styles, masks and the model name")
    labels: dict[str, Any] = Field(description="the names to show: the client's file names, the model's name")
    created: float
    started: float | None
    finished: float | None
    attempts: int
    worker: str | None = Field(description="host:pid of the worker that holds or ran it")
    preview: str | None = Field(description="URL of the latest preview while it runs")
    images: list[str] = Field(description="URL of each result")
    media: list[Literal["image", "video"]]
    posters: list[str | None] = Field(description="URL of each video result's first frame (None for an image)")
    caption: str
    favourite: bool
    trashed: float | None = Field(description="when the job was deleted (its files moved to DATA/trash/)")
    record: dict[str, Any] | None = Field(description="the first result's record, without server paths")


class JobQueued(Body):
    id: str
    url: str = Field(description="where to follow it: GET this")


# -- sweeps -----------------------------------------------------------------------------------------------


class SweepQueued(Body):
    id: str
    url: str
    jobs: list[str] = Field(description="the id of each cell's job, in the order they were queued")


class SweepCell(Body):
    """One job of a sweep; ``x``/``y`` ([setting, value]) and ``seed`` only where the sweep has them."""

    x: tuple[str, Any] | None = None
    y: tuple[str, Any] | None = None
    seed: int | None = None
    job: JobOut


class SweepOut(Body):
    id: str
    engine: str
    caption: str
    cells: list[SweepCell]
    done: int = Field(description="cells that ended (done, failed or cancelled)")
    total: int


# -- the library: engines, models, images, PNG info ----------------------------------------------------------


class ControlOut(Body):
    """One setting of an engine, as the form draws it and the CLI names it."""

    name: str = Field(description="the Python keyword and the key in params")
    flag: str = Field(description="the CLI's option")
    kind: Literal["int", "float", "str", "bool", "floats", "ints", "names"]
    default: Any
    optional: bool
    required: bool
    choices: list[Any]
    help: str
    basic: bool = Field(description="shown before 'more settings'")
    minimum: Number | None
    maximum: Number | None


class EngineOut(Body):
    name: str
    label: str
    needs_content: bool
    styles: list[int] = Field(description="how many style images: [min, max]")
    needs_model: bool
    content_kind: Literal["image", "video"]
    model_engines: list[str] = Field(description="engines whose models this one applies")
    takes_masks: bool
    contents: int = Field(description="how many content images it takes at most (a trainer: its photos)")
    makes_model: bool = Field(description="a trainer: the job's model field names the model it makes")
    controls: list[ControlOut]


class ModelOut(Body):
    name: str
    engine: str = Field(description="the engine that applies it")
    source: Literal["example", "data"] = Field(description="bundled, or in DATA/models")


class LibraryImage(Body):
    ref: str = Field(description="example:<name> or upload:<sha256>.<ext>: a content_ref or style_ref")
    name: str
    source: Literal["example", "upload"]
    url: str


class PngInfoBrushwork(Body):
    """A brushwork output's settings, ready for the form."""

    engine: str | None = Field(description="the studio engine that takes these settings (None: none here)")
    made_by: str = Field(description="the engine its record names")
    params: dict[str, Any]
    content_ref: str | None = Field(description="the library image whose hash its content matches")
    style_refs: list[str]
    styles_missing: int = Field(description="styles it used that the library does not hold")
    model: str | None
    text: None


class PngInfoOther(Body):
    """Another tool's picture (AUTOMATIC1111, ComfyUI): its own text, to read."""

    engine: None
    text: str


# -- the gallery and ratings -------------------------------------------------------------------------------


class GalleryItem(Body):
    """One finished output, with its job's settings and record."""

    id: str = Field(description="<job id>:<n>")
    job: str
    engine: str
    url: str
    media: Literal["image", "video"]
    poster: str | None
    labels: dict[str, Any]
    caption: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    created: float
    finished: float | None
    record: dict[str, Any] | None
    rating: float | None = Field(description="share of comparisons won (None: never rated)")
    ratings: int = Field(description="comparisons it was in")
    favourite: bool


class Tally(Body):
    wins: int
    losses: int


class Ok(Body):
    ok: bool
