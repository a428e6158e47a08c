"""The finished images: the gallery (filtered, newest first) and pairwise ratings."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from brushwork.studio.routes.dependencies import StudioDep
from brushwork.studio.schemas import GalleryItem, Ok, RatingIn, Tally, errors

router = APIRouter(prefix="/api", tags=["gallery"])

IMAGE_ID = re.compile(r"[0-9a-f]{32}:\d{1,3}")


@router.get("/gallery", response_model=list[GalleryItem], responses=errors(400),
            summary="Finished images with their records, newest first")  # fmt: skip
def gallery(
    studio: StudioDep,
    engine: str | None = None,
    style: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(description="ISO date or time")] = None,
    until: str | None = None,
    min_rating: Annotated[float | None, Query(ge=0, le=1, description="share of comparisons won")] = None,
    favourites: Annotated[bool, Query(description="favourites only")] = False,
):
    return studio.gallery(engine, style, since, until, min_rating, favourites)


@router.get("/ratings/pair", response_model=list[GalleryItem], responses=errors(404),
            summary="Two images to compare (the least compared pair)")  # fmt: skip
def rating_pair(studio: StudioDep):
    pair = studio.pair()
    if pair is None:
        raise HTTPException(404, "need at least two finished images to rate")
    return pair


@router.post("/ratings", status_code=201, response_model=Ok, responses=errors(400),
             summary="Record that one image was preferred to another")  # fmt: skip
def rate(studio: StudioDep, rating: RatingIn):
    for image_id in (rating.winner, rating.loser):
        if not IMAGE_ID.fullmatch(image_id):
            raise HTTPException(400, f"image id {image_id!r} is not <job id>:<n>")
    studio.rate(rating.winner, rating.loser, rating.rater)
    return {"ok": True}


@router.get("/ratings", response_model=dict[str, Tally], summary="Wins and losses of every rated image, by image id")
def ratings(studio: StudioDep):
    return {k: {"wins": w, "losses": lost} for k, (w, lost) in studio.ratings.tallies().items()}
