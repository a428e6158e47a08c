"""Ratings store: judgements in and out, Bradley–Terry ranks, agreement, and bad input leaving the DB unchanged."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from brushwork.errors import BrushworkError
from brushwork.judge.ratings import RatingsStore
from tests.conftest import make_image


@pytest.fixture
def pictures(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"p{i}.png")
        make_image(24, 16, seed=i, kind="noise").save(paths[-1])
    return paths


def _dump(db: Path) -> list:
    with sqlite3.connect(db) as con:
        return [
            con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("raters", "images", "judgements", "embeddings")
        ]


def test_rate_stores_images_by_hash_and_ranks_in_order(tmp_path, pictures):
    db = tmp_path / "r.db"
    with RatingsStore(db) as store:
        # p0 > p1 > p2 > p3 with some noise, by one rater
        for winner, loser, times in [(0, 1, 3), (1, 2, 3), (2, 3, 3), (0, 2, 2), (1, 3, 2), (1, 0, 1), (0, 3, 1)]:
            for _ in range(times):
                store.rate("ann", pictures[winner], pictures[loser])
        store.rate("ann", pictures[2], pictures[1], tie=True)
        assert store.raters() == ["ann"]
        sha0 = hashlib.sha256(pictures[0].read_bytes()).hexdigest()
        assert {sha for sha, _ in store.images()} >= {sha0}
        ranking = store.rank("ann", bootstrap=50, seed=3)
        order = [Path(r.path).name for r in ranking.images]
        assert order == ["p0.png", "p1.png", "p2.png", "p3.png"]
        for r in ranking.images:
            assert r.low <= r.strength <= r.high
        assert ranking.images[0].low > ranking.images[-1].high  # clearly apart
        # the same seed, the same intervals
        again = store.rank("ann", bootstrap=50, seed=3)
        assert [(r.low, r.high) for r in again.images] == [(r.low, r.high) for r in ranking.images]
        # images can be named by hash once stored
        store.rate("bob", sha0, pictures[3])
        pooled = store.rank(None)
        assert pooled.judgements == 17 and pooled.interval == "hessian"


def test_agreement_between_raters(tmp_path, pictures):
    with RatingsStore(tmp_path / "r.db") as store:
        pairs = [(0, 1), (1, 2), (2, 3), (0, 3)]
        for a, b in pairs:
            store.rate("ann", pictures[a], pictures[b])
            store.rate("bob", pictures[a], pictures[b])
            store.rate("cat", pictures[b], pictures[a])  # the opposite taste
        by_pair = {(g.rater_a, g.rater_b): g for g in store.agreement()}
        assert by_pair["ann", "bob"].agree_fraction == 1.0 and by_pair["ann", "bob"].shared_pairs == 4
        assert by_pair["ann", "cat"].agree_fraction == 0.0
        assert by_pair["ann", "bob"].kendall_tau > 0.9 and by_pair["ann", "cat"].kendall_tau < -0.9


def test_csv_import_skips_and_counts_bad_rows(tmp_path, pictures):
    db = tmp_path / "r.db"
    csv_file = tmp_path / "ratings.csv"
    csv_file.write_text(
        "user,winner,loser,tie\n"
        "ann,p0.png,p1.png,0\n"
        "ann,p1.png,p2.png,true\n"
        "ann,p0.png,p0.png,0\n"  # against itself
        "ann,missing.png,p1.png,0\n"  # unknown image
        ",p0.png,p1.png,0\n"  # no user
        "bob,p2.png,p3.png,maybe\n"  # bad tie
    )
    with RatingsStore(db) as store:
        report = store.import_csv(csv_file)
        assert (report.imported, report.skipped) == (2, 4)
        assert report.reasons["image against itself"] == 1
        judgements = store.judgements("ann")
        assert [j.tie for j in judgements] == [False, True]
        assert store.raters() == ["ann"]


def test_bad_input_leaves_the_database_unchanged(tmp_path, pictures):
    db = tmp_path / "r.db"
    with RatingsStore(db) as store:
        store.rate("ann", pictures[0], pictures[1])
    before = _dump(db)
    with RatingsStore(db) as store:
        with pytest.raises(BrushworkError, match="against itself"):
            store.rate("ann", pictures[2], pictures[2])
        with pytest.raises(BrushworkError, match="not in"):
            store.rate("ann", pictures[2], "ab" * 32)
        with pytest.raises(BrushworkError, match="unknown rater"):
            store.rate("zed", pictures[0], pictures[1], new_rater=False)
        with pytest.raises(BrushworkError, match="unknown rater"):
            store.rank("zed")
        with pytest.raises(BrushworkError, match="not in"):
            store.lookup_image(pictures[3])
        text = tmp_path / "notes.txt"
        text.write_text("not a picture")
        with pytest.raises(BrushworkError, match="not an image"):
            store.rate("ann", text, pictures[0])
        bad_csv = tmp_path / "bad.csv"
        bad_csv.write_text("who,what\nann,p0.png\n")
        with pytest.raises(BrushworkError, match="header lacks"):
            store.import_csv(bad_csv)
    assert _dump(db) == before


def test_csv_import_is_all_or_nothing_on_a_database_error(tmp_path, pictures, monkeypatch):
    db = tmp_path / "r.db"
    csv_file = tmp_path / "ratings.csv"
    csv_file.write_text("user,winner,loser\n" + "ann,p0.png,p1.png\n" * 3 + "ann,p2.png,p3.png\n")
    with RatingsStore(db) as store:
        store.rate("ann", pictures[0], pictures[1])
    before = _dump(db)
    with RatingsStore(db) as store:
        real = store._import_row
        calls = []

        def failing(row, base, resolved):
            calls.append(row)
            if len(calls) == 4:
                raise sqlite3.OperationalError("disk I/O error")
            return real(row, base, resolved)

        monkeypatch.setattr(store, "_import_row", failing)
        with pytest.raises(BrushworkError, match="disk I/O"):
            store.import_csv(csv_file)
    assert _dump(db) == before


def test_corrupt_and_locked_databases(tmp_path, pictures):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BrushworkError, match="not a ratings database"):
        RatingsStore(corrupt)
    assert corrupt.read_bytes() == b"this is not sqlite" * 100
    with pytest.raises(BrushworkError, match="no such ratings database"):
        RatingsStore(tmp_path / "absent.db", create=False)

    db = tmp_path / "r.db"
    RatingsStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program writing
    try:
        with RatingsStore(db, timeout=0.1) as store, pytest.raises(BrushworkError, match="locked"):
            store.rate("ann", pictures[0], pictures[1])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with RatingsStore(db) as store:
        assert store.judgements() == []


def test_the_store_keeps_an_output_s_record(tmp_path, pictures):
    from brushwork.records import new_record, write_image

    made = tmp_path / "made.png"
    write_image(make_image(24, 16, 9), made, new_record("fast", {"strength": 0.7}, seed=3))
    with RatingsStore(tmp_path / "r.db") as store:
        j = store.rate("ann", made, pictures[0])
        record = store.image_record(j.winner)
        assert record["engine"] == "fast" and record["parameters"] == {"strength": 0.7}
        assert store.image_record(j.loser) is None  # a plain file has none


def test_hessian_intervals_cover_the_true_strengths():
    from brushwork.judge.ratings import Judgement, bradley_terry

    rng = np.random.default_rng(0)
    truth = rng.normal(size=30)
    judgements = []
    for _ in range(900):
        a, b = rng.choice(30, 2, replace=False)
        a_wins = rng.random() < 1 / (1 + np.exp(truth[b] - truth[a]))
        w, lo = (a, b) if a_wins else (b, a)
        judgements.append(Judgement("sim", f"{w:064x}", f"{lo:064x}", False, 0.0))
    strengths, low, high, items = bradley_terry(judgements)
    centred = truth[[int(sha, 16) for sha in items]]
    centred = centred - centred.mean()
    covered = np.mean((low <= centred) & (centred <= high))
    assert 0.85 <= covered <= 1.0
    assert np.corrcoef(strengths, centred)[0, 1] > 0.9
