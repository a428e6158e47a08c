"""Pairwise ratings from the studio's rating view (two outputs, pick one).

They go into the judge's store (``brushwork.judge.ratings``: ``DATA/ratings.db``), so
``brushwork judge rank --db DATA/ratings.db`` and the taste model (``judge taste``) use the studio's
ratings as they are. The studio sees them through :class:`RatingsStore` (three methods), keyed by its
own image ids (``<job id>:<output index>``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class RatingsStore(Protocol):
    def add(self, winner: str, loser: str, rater: str) -> None: ...

    def tallies(self) -> dict[str, tuple[int, int]]:
        """{image id: (wins, losses)}"""

    def pair_counts(self) -> dict[frozenset, int]:
        """{frozenset({a, b}): times this pair was rated}"""


#: An output file's name (jobs.run_job): <job id>-<claim token>-<index>.png
_OUTPUT_NAME = re.compile(r"([0-9a-f]{32})-[0-9a-f]{8}-(\d+)\.png")


class JudgeRatings:
    """Ratings in the judge's store. Images are known there by their file's SHA-256; the studio's
    ids are read back from the output file names."""

    def __init__(self, path: Path, image_file: Callable[[str], Path]):
        from brushwork.judge.ratings import RatingsStore

        self.path, self.image_file, self._open = path, image_file, RatingsStore
        self._open(path).close()  # create it now: a bad path fails at start, not at the first rating

    def add(self, winner: str, loser: str, rater: str) -> None:
        with self._open(self.path) as store:
            store.rate(rater, self.image_file(winner), self.image_file(loser))

    def _pairs(self) -> list[tuple[str, str]]:
        with self._open(self.path) as store:
            ids = {}
            for sha, path in store.images():
                if m := _OUTPUT_NAME.fullmatch(Path(path).name):
                    ids[sha] = f"{m.group(1)}:{int(m.group(2))}"
            judged = store.judgements()
        # Ties are not offered by the studio's view; one from the CLI counts for neither side.
        return [(ids[j.winner], ids[j.loser]) for j in judged if not j.tie and j.winner in ids and j.loser in ids]

    def tallies(self) -> dict[str, tuple[int, int]]:
        return _tallies(self._pairs())

    def pair_counts(self) -> dict[frozenset, int]:
        return _pair_counts(self._pairs())


def _tallies(pairs: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    wins: dict[str, list[int]] = {}
    for winner, loser in pairs:
        wins.setdefault(winner, [0, 0])[0] += 1
        wins.setdefault(loser, [0, 0])[1] += 1
    return {k: (w, lost) for k, (w, lost) in wins.items()}


def _pair_counts(pairs: list[tuple[str, str]]) -> dict[frozenset, int]:
    counts: dict[frozenset, int] = {}
    for pair in pairs:
        key = frozenset(pair)
        counts[key] = counts.get(key, 0) + 1
    return counts


def score(tally: tuple[int, int] | None) -> float | None:
    """Share of comparisons won (None if never rated)."""
    if not tally or sum(tally) == 0:
        return None
    return tally[0] / sum(tally)


def next_pair(images: list[str], store: RatingsStore, rng: random.Random | None = None) -> tuple[str, str] | None:
    """The least-compared pair among the images (least-rated images first), ties broken at random."""
    if len(images) < 2:
        return None
    rng = rng or random.Random()
    counts = store.pair_counts()
    tallies = store.tallies()
    pool = sorted(images, key=lambda i: (sum(tallies.get(i, (0, 0))), rng.random()))[:20]
    best = min(
        ((a, b) for n, a in enumerate(pool) for b in pool[n + 1 :]),
        key=lambda p: (counts.get(frozenset(p), 0), rng.random()),
    )
    return best if rng.random() < 0.5 else (best[1], best[0])
