"""SQLite the way every brushwork store uses it (ratings, registry, studio jobs): one file in WAL
mode, and each command one ``BEGIN IMMEDIATE … COMMIT`` transaction, so a crash or an error leaves
the database as it was and two writers never interleave."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Take the write lock now (not at the first write), commit at the end, roll back on any error.
    ``db`` must be opened with ``isolation_level=None`` so that Python opens no transaction of its own."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
