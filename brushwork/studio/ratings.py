"""Pairwise ratings from the studio's rating view (two outputs, pick one).

Kept behind :class:`RatingsStore` so the studio can switch to the judge's store
(``brushwork.judge.ratings``, SQLite, with Bradley–Terry ranking and the taste model) once it lands:
implement these three methods over it and return it from :func:`open_ratings`.
"""

from __future__ import annotations

import random
import sqlite3
import time
from typing import Protocol

from brushwork.errors import BrushworkError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    winner TEXT NOT NULL,          -- image id: <job id>:<output index>
    loser TEXT NOT NULL,
    rater TEXT NOT NULL,
    created REAL NOT NULL
);
"""


class RatingsStore(Protocol):
    def add(self, winner: str, loser: str, rater: str) -> None: ...

    def tallies(self) -> dict[str, tuple[int, int]]:
        """{image id: (wins, losses)}"""

    def pair_counts(self) -> dict[frozenset, int]:
        """{frozenset({a, b}): times this pair was rated}"""


class StudioRatings:
    """Ratings in the studio's own database (table ``ratings``)."""

    def __init__(self, transaction, connect):
        self._transaction, self._connect = transaction, connect
        with self._transaction() as db:
            db.execute(_SCHEMA)

    def add(self, winner: str, loser: str, rater: str) -> None:
        if winner == loser:
            raise BrushworkError("an image cannot be rated against itself")
        with self._transaction() as db:
            db.execute("INSERT INTO ratings (winner, loser, rater, created) VALUES (?, ?, ?, ?)",
                       (winner, loser, rater, time.time()))  # fmt: skip

    def _rows(self) -> list[sqlite3.Row]:
        with self._connect() as db:
            return db.execute("SELECT winner, loser FROM ratings").fetchall()

    def tallies(self) -> dict[str, tuple[int, int]]:
        wins: dict[str, list[int]] = {}
        for winner, loser in self._rows():
            wins.setdefault(winner, [0, 0])[0] += 1
            wins.setdefault(loser, [0, 0])[1] += 1
        return {k: (w, lost) for k, (w, lost) in wins.items()}

    def pair_counts(self) -> dict[frozenset, int]:
        counts: dict[frozenset, int] = {}
        for winner, loser in self._rows():
            key = frozenset((winner, loser))
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
