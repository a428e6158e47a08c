"""The job store on PostgreSQL, for a studio whose server, queue and workers are on several hosts.

The same table and the same transactions as the SQLite store (:class:`~brushwork.studio.jobs.JobStore`):
its SQL runs here through a thin translation of placeholders and of SQLite's few own functions. One
writer at a time, as SQLite's ``BEGIN IMMEDIATE`` gives: each write transaction first takes a
transaction-scoped advisory lock, so a claim (select the oldest claimable job, then update it) can
never hand one job to two attempts. psycopg 3 is the driver (``pip install "psycopg[binary]"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from brushwork.errors import BrushworkError
from brushwork.studio.config import StudioConfig
from brushwork.studio.jobs import JobStore

#: Any constant: the advisory lock all the store's write transactions take.
_WRITE_LOCK = 0x62727368

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    engine TEXT NOT NULL,
    params TEXT NOT NULL,
    inputs TEXT NOT NULL,
    labels TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    eta DOUBLE PRECISION,
    error TEXT,
    created DOUBLE PRECISION NOT NULL,
    started DOUBLE PRECISION,
    finished DOUBLE PRECISION,
    claim TEXT,
    worker TEXT,
    lease_until DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel INTEGER NOT NULL DEFAULT 0,
    preview TEXT,
    preview_step INTEGER NOT NULL DEFAULT 0,
    outputs TEXT,
    record TEXT,
    enqueued DOUBLE PRECISION,
    favourite INTEGER NOT NULL DEFAULT 0,
    trashed DOUBLE PRECISION,
    sweep_id TEXT
);
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS favourite INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS trashed DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS sweep_id TEXT;
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
CREATE INDEX IF NOT EXISTS jobs_sweep ON jobs(sweep_id, created);
CREATE TABLE IF NOT EXISTS publications (
    job_id TEXT PRIMARY KEY,
    claim TEXT NOT NULL,
    outputs TEXT NOT NULL,
    published DOUBLE PRECISION NOT NULL
);
"""

# SQLite's spellings -> PostgreSQL's (the store's SQL is written once, for SQLite).
_REWRITES = [
    ("lower(hex(randomblob(16)))", "replace(gen_random_uuid()::text, '-', '')"),
    ("json_extract(inputs, '$.model') IS json_extract(:inputs, '$.model')",
     "(inputs::jsonb -> 'model') IS NOT DISTINCT FROM (CAST(:inputs AS jsonb) -> 'model')"),
    ("json_extract(inputs, '$.styles') IS json_extract(:inputs, '$.styles')",
     "(inputs::jsonb -> 'styles') IS NOT DISTINCT FROM (CAST(:inputs AS jsonb) -> 'styles')"),
]  # fmt: skip
# Run once, when the schema above has just added sweep_id: a sweep's cells made before it name it in labels.
_SWEEP_BACKFILL = (
    "UPDATE jobs SET sweep_id = labels::jsonb -> 'sweep' ->> 'id' "
    "WHERE sweep_id IS NULL AND (labels::jsonb -> 'sweep' ->> 'id') IS NOT NULL"
)
_HAS_SWEEP_ID = (
    "SELECT 1 FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = 'jobs' AND column_name = 'sweep_id'"
)
_NAMED = re.compile(r"(?<!:):([A-Za-z_]\w*)")


def translate(sql: str) -> str:
    """SQLite SQL with ``?`` or ``:name`` placeholders -> psycopg's ``%s`` / ``%(name)s``."""
    for old, new in _REWRITES:
        sql = sql.replace(old, new)
    sql = sql.replace("%", "%%")
    return _NAMED.sub(r"%(\1)s", sql).replace("?", "%s")


class Row(tuple):
    """A row by position or by column name, with ``keys()``, as ``sqlite3.Row``."""

    names: tuple[str, ...]

    def __new__(cls, values, names):
        row = super().__new__(cls, values)
        row.names = names
        return row

    def keys(self) -> tuple[str, ...]:
        return self.names

    def __getitem__(self, key):
        return super().__getitem__(self.names.index(key) if isinstance(key, str) else key)


def _row_factory(cursor):
    names = tuple(c.name for c in cursor.description or ())
    return lambda values: Row(values, names)


class _Connection:
    """A psycopg connection that takes the store's SQLite-flavoured SQL."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql: str, params=()):
        return self.conn.execute(translate(sql), params)

    def executemany(self, sql: str, seq) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(translate(sql), list(seq))


class PostgresJobStore(JobStore):
    """:class:`JobStore` on PostgreSQL at ``config.store_url``."""

    _QUEUED_ORDER = "created"  # no rowid here

    def __init__(self, config: StudioConfig):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise BrushworkError('a postgresql:// store needs psycopg: pip install "psycopg[binary]"') from None
        self.config = config.prepare()
        self.url = config.store_url
        with self.transaction() as db:
            had_sweep_id = db.execute(_HAS_SWEEP_ID).fetchone() is not None
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if not had_sweep_id:
                db.execute(_SWEEP_BACKFILL)

    @contextmanager
    def _connect(self) -> Iterator[_Connection]:
        import psycopg

        try:
            conn = psycopg.connect(self.url, autocommit=True, row_factory=_row_factory, connect_timeout=10)
        except psycopg.OperationalError as exc:
            # The message names the host, never the password.
            raise BrushworkError(f"cannot reach the job store: {str(exc).splitlines()[0][:200]}") from None
        try:
            yield _Connection(conn)
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[_Connection]:
        with self._connect() as db, db.conn.transaction():
            db.execute("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK,))
            yield db


def open_store(config: StudioConfig) -> JobStore:
    """The job store ``config`` names: SQLite in the data folder (the default), or PostgreSQL."""
    return PostgresJobStore(config) if config.store_url else JobStore(config)
