"""SQLite the way every brushwork store uses it (ratings, registry, studio jobs): one file in WAL
mode, and each command one ``BEGIN IMMEDIATE … COMMIT`` transaction, so a crash or an error leaves
the database as it was and two writers never interleave."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from brushwork.errors import BrushworkError


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


def use_wal(db: sqlite3.Connection, wait_s: float = 60.0) -> None:
    """Put the file in WAL mode (it stays so). Switching needs an exclusive lock, and SQLite answers
    "database is locked" at once, without its busy timeout, when two processes opening a new file
    both try it; so the mode is read first (most opens find it set) and the switch retried."""
    deadline = time.monotonic() + wait_s
    while db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if not ("locked" in str(exc) or "busy" in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def damaged(path: os.PathLike | str, what: str, exc: sqlite3.Error) -> BrushworkError:
    """A file that SQLite cannot read as a database: one line naming it and what to do."""
    return BrushworkError(
        f"{path}: not a {what}, or a damaged one ({exc}); brushwork left it as it is: restore a copy, or move it "
        "aside to start an empty one"
    )


def check_database(db: sqlite3.Connection, path: os.PathLike | str, what: str, own_tables: set[str]) -> None:
    """Before anything is created in ``db``: refuse a damaged file, and another program's database
    (tables, none of them ours), instead of adding our tables to it."""
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if type(exc) is sqlite3.DatabaseError:  # SQLite's "not a database", "malformed"
            raise damaged(path, what, exc) from None
        raise  # busy, locked, cannot open: the caller words those
    tables = {t for t in tables if not t.startswith("sqlite_")}
    if tables and not tables & own_tables:
        shown = ", ".join(sorted(tables)[:5])
        raise BrushworkError(
            f"{path}: a database of another program (tables {shown}), not a {what}; brushwork leaves it "
            "alone: give another file"
        )
