"""The SQLite rules every store shares (brushwork/database.py)."""

from __future__ import annotations

import multiprocessing
import sqlite3

from brushwork.database import use_wal


def _open_at_once(path: str, barrier) -> None:
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    barrier.wait()  # all switch together: the race that made a second studio worker die at start
    use_wal(db)
    db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT)")


def test_processes_opening_a_new_database_together_all_get_wal(tmp_path):
    # A bare "PRAGMA journal_mode=WAL" here fails in about one round in six on a 2-core machine:
    # SQLite answers "database is locked" at once, without its busy timeout, to all but one.
    context = multiprocessing.get_context("fork")
    failed = 0
    for round_number in range(30):
        path = str(tmp_path / f"{round_number}.db")
        barrier = context.Barrier(8)
        processes = [context.Process(target=_open_at_once, args=(path, barrier)) for _ in range(8)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        failed += sum(process.exitcode != 0 for process in processes)
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert failed == 0
