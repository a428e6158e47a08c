"""The job queue that loses nothing: jobs are SQLite rows (WAL) before a request returns, and workers
take them with a lease.

A worker claims a job in one UPDATE … RETURNING (so two workers never get the same one) and holds it
by renewing a lease while it runs. A worker killed mid-job stops renewing; once the lease expires the
job is claimable again and re-runs (up to ``max_attempts`` times): an optimisation job from the last
intermediate it kept in its folder (``DATA/jobs/<id>/``), the others from the start. Every write a worker
makes checks its claim token, so a worker that lost its lease (paused, partitioned) can neither
report progress nor publish a result: a job never runs twice at once as far as anything visible goes,
and its output files are named by job and claim, so nothing is ever overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from brushwork import threads
from brushwork.api import new_record, record_of, save
from brushwork.database import check_database, damaged, immediate_transaction, use_wal
from brushwork.errors import BrushworkError
from brushwork.files import remove_stale_temps
from brushwork.studio.config import StudioConfig
from brushwork.studio.engines import RunContext, Written, batchable_engines, get_engine
from brushwork.studio.library import install_trained_model, resolve_inputs

log = logging.getLogger("brushwork.studio")

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    engine TEXT NOT NULL,
    params TEXT NOT NULL,          -- JSON: the Python API's keyword arguments
    inputs TEXT NOT NULL,          -- JSON: {"content": ref, "styles": [refs], "model": name}
    labels TEXT NOT NULL,          -- JSON: names to show (the client's file names), never paths
    status TEXT NOT NULL DEFAULT 'queued',
    progress REAL NOT NULL DEFAULT 0,
    eta REAL,
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    claim TEXT,                    -- token of the worker attempt that holds the job
    worker TEXT,                   -- host:pid of the worker that holds or ran it
    lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel INTEGER NOT NULL DEFAULT 0,
    preview TEXT,                  -- file name in previews/
    preview_step INTEGER NOT NULL DEFAULT 0,
    outputs TEXT,                  -- JSON list of file names in outputs/
    record TEXT,                   -- JSON record of the first output
    enqueued REAL,                 -- when it was last handed to the distributed queue
    favourite INTEGER NOT NULL DEFAULT 0,
    trashed REAL,                  -- when a finished job was deleted: its files moved to trash/
    sweep_id TEXT                  -- the batch or X/Y plot it is a cell of (also in labels["sweep"]["id"])
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
-- One row per published job (remote workers): the primary key makes a second publication impossible.
CREATE TABLE IF NOT EXISTS publications (
    job_id TEXT PRIMARY KEY,
    claim TEXT NOT NULL,           -- the attempt that published
    outputs TEXT NOT NULL,
    published REAL NOT NULL
);
"""
_ADDED_COLUMNS = {"worker": "TEXT", "favourite": "INTEGER NOT NULL DEFAULT 0", "trashed": "REAL", "sweep_id": "TEXT"}
# After the added columns: an old database has no sweep_id until then.
_SWEEP_INDEX = "CREATE INDEX IF NOT EXISTS jobs_sweep ON jobs(sweep_id, created)"
# A sweep's cells made before the column: their id is in the labels.
_SWEEP_BACKFILL = (
    "UPDATE jobs SET sweep_id = json_extract(labels, '$.sweep.id') "
    "WHERE sweep_id IS NULL AND json_extract(labels, '$.sweep.id') IS NOT NULL"
)


class JobStopped(Exception):
    """Raised inside a running job when it was cancelled or its lease was lost."""


@dataclass
class Job:
    id: str
    engine: str
    params: dict
    inputs: dict
    labels: dict
    status: str
    progress: float
    eta: float | None
    error: str | None
    created: float
    started: float | None
    finished: float | None
    claim: str | None
    worker: str | None
    attempts: int
    cancel: bool
    preview: str | None
    preview_step: int
    outputs: list[str]
    record: dict | None
    favourite: bool = False
    trashed: float | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = {k: row[k] for k in row.keys() if k in cls.__dataclass_fields__}  # noqa: SIM118 (a Row yields values)
        for name in ("params", "inputs", "labels"):
            data[name] = json.loads(data[name])
        data["outputs"] = json.loads(data["outputs"] or "[]")
        data["record"] = json.loads(data["record"]) if data["record"] else None
        data["cancel"] = bool(data["cancel"])
        data["favourite"] = bool(data.get("favourite"))
        return cls(**data)

    def public(self) -> dict:
        """What the REST API shows: no claim tokens, no server paths."""
        media = [] if self.trashed else self.media  # a deleted job's files are in the trash, not served
        urls = [f"/api/jobs/{self.id}/image" + (f"?n={n}" if n else "") for n in range(len(media))]
        posters = [url.replace("/image", "/poster") if kind == "video" else None
                   for url, kind in zip(urls, media, strict=True)]  # fmt: skip
        return {"id": self.id, "engine": self.engine, "status": self.status, "progress": round(self.progress, 4),
                "eta": None if self.eta is None else round(self.eta, 1), "error": self.error, "params": self.params,
                "inputs": self.inputs, "labels": self.labels, "created": self.created, "started": self.started,
                "finished": self.finished, "attempts": self.attempts, "worker": self.worker,
                "preview": f"/api/jobs/{self.id}/preview?step={self.preview_step}" if self.preview else None,
                "images": urls, "media": media, "posters": posters,
                "caption": self.caption, "favourite": self.favourite, "trashed": self.trashed,
                "record": public_record(self.record)}  # fmt: skip

    @property
    def caption(self) -> str:
        """What the job painted, in words: ``photo.jpg · model starry_night-fast × a.jpg + b.jpg``."""
        return caption(self.labels)

    @property
    def media(self) -> list[str]:
        """``image`` or ``video`` for each output."""
        return ["video" if name.endswith(".mp4") else "image" for name in self.outputs]


def caption(labels: dict) -> str:
    """The names a job's labels give (the client's file names, the model's name), in one line."""
    pieces = [str(labels["content"])] if labels.get("content") else []
    if labels.get("model"):
        pieces.append(f"model {labels['model']}")
    text = " · ".join(pieces)
    if labels.get("styles"):
        text = f"{text} × {' + '.join(map(str, labels['styles']))}".strip(" ×")
    return text


def public_record(record: dict | None) -> dict | None:
    """A record as the REST API shows it: inputs by name and hash, without the server's file paths."""
    if not record:
        return record
    inputs = {}
    for role, value in (record.get("inputs") or {}).items():
        items = [{k: v for k, v in item.items() if k != "path"} if isinstance(item, dict) else item
                 for item in (value if isinstance(value, list) else [value])]  # fmt: skip
        inputs[role] = items if isinstance(value, list) else items[0]
    return {**record, "inputs": inputs}


class JobStore:
    """The jobs table. One short connection per operation, so any thread or process may use it."""

    #: Queue order; rowid breaks a tie of two jobs added within the clock's resolution.
    _QUEUED_ORDER = "created, rowid"

    def __init__(self, config: StudioConfig):
        self.config = config.prepare()
        with self._connect() as db:
            check_database(db, config.db_path, "studio job database", {"jobs"})
            use_wal(db)
            db.executescript(_SCHEMA)
            # Columns added after the first release of the table, for databases made before them.
            with immediate_transaction(db):  # one process adds them; another then sees them
                have = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
                for column, kind in _ADDED_COLUMNS.items():
                    if column not in have:
                        db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
                if "sweep_id" not in have:
                    db.execute(_SWEEP_BACKFILL)
                db.execute(_SWEEP_INDEX)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.config.db_path, timeout=60, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=60000")
            yield db
        except sqlite3.DatabaseError as exc:
            if type(exc) is sqlite3.DatabaseError:  # not busy, not a constraint: damaged, now or since opened
                raise damaged(self.config.db_path, "studio job database", exc) from None
            raise
        finally:
            db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: one writer at a time, all or nothing."""
        with self._connect() as db, immediate_transaction(db):
            yield db

    # -- the API side ----------------------------------------------------------------------------

    def add(self, engine: str, params: dict, inputs: dict, labels: dict) -> str:
        """Queue a job; it is on disk when this returns."""
        job_id = uuid.uuid4().hex
        with self.transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, engine, params, inputs, labels, created, sweep_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                # Keys sorted: jobs with the same settings have the same text, which batching compares.
                (
                    job_id,
                    engine,
                    json.dumps(params, sort_keys=True),
                    json.dumps(inputs),
                    json.dumps(labels),
                    time.time(),
                    (labels.get("sweep") or {}).get("id"),
                ),  # fmt: skip
            )
        return job_id

    def jobs_of_sweep(self, sweep_id: str) -> list[Job]:
        """A sweep's jobs in the order they were queued, less deleted ones (through the index on sweep_id)."""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT * FROM jobs WHERE sweep_id = ? AND trashed IS NULL ORDER BY {self._QUEUED_ORDER}", (sweep_id,)
            ).fetchall()
        return [Job.from_row(r) for r in rows]

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def list(self, statuses: tuple[str, ...] = STATUSES, limit: int = 200, newest_first: bool = True,
             favourites_only: bool = False) -> list[Job]:  # fmt: skip
        """Jobs in ``statuses``, not deleted (a deleted job is still found by :meth:`get`)."""
        marks = ",".join("?" * len(statuses))
        order = "DESC" if newest_first else "ASC"
        favourite = "AND favourite = 1 " if favourites_only else ""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT * FROM jobs WHERE status IN ({marks}) AND trashed IS NULL {favourite}"
                f"ORDER BY created {order} LIMIT ?",
                (*statuses, limit),
            ).fetchall()
        return [Job.from_row(r) for r in rows]

    def set_favourite(self, job_id: str, favourite: bool) -> Job:
        """Star or unstar a finished job's pictures."""
        with self.transaction() as db:
            row = db.execute("SELECT status, trashed FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            if row["status"] != "done" or row["trashed"] is not None:
                raise BrushworkError(f"job {job_id} is {'deleted' if row['trashed'] else row['status']}: "
                                     "only a finished job's pictures can be favourites")  # fmt: skip
            db.execute("UPDATE jobs SET favourite = ? WHERE id = ?", (int(favourite), job_id))
        return self.get(job_id)

    def trash(self, job_id: str, move_files) -> Job:
        """Delete an ended job from the queue and gallery: ``move_files(job)`` moves its outputs into
        the trash folder inside the transaction that marks it, so either both happen or neither."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            job = Job.from_row(row)
            if job.status not in FINAL:
                raise BrushworkError(f"job {job_id} is {job.status}: cancel it first")
            if job.trashed is None:
                db.execute("UPDATE jobs SET trashed = ?, favourite = 0 WHERE id = ?", (time.time(), job_id))
                move_files(job)
        return self.get(job_id)

    def counts(self) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; ask a running one to stop (its worker checks at each step)."""
        with self.transaction() as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            if row["status"] in FINAL:
                raise BrushworkError(f"job {job_id} is already {row['status']}")
            db.execute(
                "UPDATE jobs SET cancel = 1, status = CASE status WHEN 'queued' THEN 'cancelled' ELSE status END, "
                "finished = CASE status WHEN 'queued' THEN ? ELSE finished END WHERE id = ?",
                (time.time(), job_id),
            )
        return self.get(job_id)

    def needing_dispatch(self, older_than: float) -> list[str]:
        """Queued jobs not handed to the distributed queue lately, and running ones whose lease ran out."""
        now = time.time()
        with self._connect() as db:
            rows = db.execute(
                "SELECT id FROM jobs WHERE ((status = 'queued' AND cancel = 0) OR (status = 'running' AND "
                "lease_until < ?)) AND (enqueued IS NULL OR enqueued < ?) ORDER BY created",
                (now, now - older_than),
            ).fetchall()
        return [r["id"] for r in rows]

    def mark_enqueued(self, job_ids: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE jobs SET enqueued = ? WHERE id = ?", [(time.time(), i) for i in job_ids])

    # -- the worker side -------------------------------------------------------------------------

    def claim(self, job_id: str | None = None, worker: str = "") -> tuple[Job, str] | None:
        """Take the oldest claimable job (or ``job_id``): queued, or running with an expired lease.
        Returns the job and this attempt's claim token, or None."""
        claimed = self.claim_batch(job_id, worker)
        return claimed[0] if claimed else None

    def claim_batch(self, job_id: str | None = None, worker: str = "", limit: int = 1,
                    batchable: tuple[str, ...] = ()) -> list[tuple[Job, str]]:  # fmt: skip
        """:meth:`claim`, and when that job's engine is ``batchable``, up to ``limit - 1`` more queued jobs
        that could run in the same batch (same engine, settings, model and styles), all in one transaction.
        Each job gets its own claim token: each is finished, renewed or lost on its own."""
        now = time.time()
        claim = {"lease": now + self.config.lease_seconds, "now": now, "worker": worker}
        sets = ("status = 'running', claim = lower(hex(randomblob(16))), worker = :worker, lease_until = :lease, "
                "attempts = attempts + 1, started = :now, progress = 0, eta = NULL, error = NULL")  # fmt: skip
        only = "AND id = :id" if job_id else ""
        with self.transaction() as db:
            ended = self._settle_expired(db, now)
            rows = db.execute(
                f"UPDATE jobs SET {sets} WHERE id = (SELECT id FROM jobs WHERE "
                f"cancel = 0 AND (status = 'queued' OR (status = 'running' AND lease_until < :now)) {only} "
                "ORDER BY created LIMIT 1) RETURNING *",
                {**claim, "id": job_id},
            ).fetchall()
            if rows and limit > 1 and rows[0]["engine"] in batchable:
                first = rows[0]
                rows += db.execute(
                    f"UPDATE jobs SET {sets} WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND cancel = 0 "
                    "AND engine = :engine AND params = :params AND id != :id "
                    "AND json_extract(inputs, '$.model') IS json_extract(:inputs, '$.model') "
                    "AND json_extract(inputs, '$.styles') IS json_extract(:inputs, '$.styles') "
                    "ORDER BY created LIMIT :more) RETURNING *",
                    {**claim, "engine": first["engine"], "params": first["params"], "id": first["id"],
                     "inputs": first["inputs"], "more": limit - 1},
                ).fetchall()  # fmt: skip
        for ended_id in ended:  # their intermediates are no longer needed
            shutil.rmtree(self.config.job_dir(ended_id), ignore_errors=True)
        return [(Job.from_row(row), row["claim"]) for row in rows]

    def _settle_expired(self, db: sqlite3.Connection, now: float) -> list[str]:
        """Interrupted jobs that were cancelled, or interrupted too often, end instead of re-running.
        Returns their ids."""
        rows = db.execute("UPDATE jobs SET status = 'cancelled', finished = ? WHERE status = 'running' AND "
                          "lease_until < ? AND cancel = 1 RETURNING id", (now, now)).fetchall()  # fmt: skip
        rows += db.execute(
            "UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE status = 'running' AND lease_until < ? "
            "AND attempts >= ? RETURNING id",
            (now, f"interrupted {self.config.max_attempts} times (the worker died each time)", now,
             self.config.max_attempts),
        ).fetchall()  # fmt: skip
        return [r["id"] for r in rows]

    def renew(self, job_id: str, token: str, **fields: Any) -> bool:
        """Extend the lease (and set progress fields) if ``token`` still holds the job; False if it lost it
        or the job was cancelled."""
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        with self.transaction() as db:
            row = db.execute(
                f"UPDATE jobs SET lease_until = :lease{', ' + sets if sets else ''} "
                "WHERE id = :id AND claim = :token AND status = 'running' RETURNING cancel",
                {"lease": time.time() + self.config.lease_seconds, "id": job_id, "token": token, **fields},
            ).fetchone()
        return row is not None and not row["cancel"]

    def finish(self, job_id: str, token: str, status: str, **fields: Any) -> bool:
        """End the job if ``token`` still holds it; False (nothing written) if another attempt took over."""
        assert status in FINAL
        fields = {"status": status, "finished": time.time(), "lease_until": None, **fields}
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        with self.transaction() as db:
            row = db.execute(
                f"UPDATE jobs SET {sets} WHERE id = :id AND claim = :token AND status = 'running' RETURNING id",
                {"id": job_id, "token": token, **fields},
            ).fetchone()
        return row is not None

    def publication(self, job_id: str) -> dict | None:
        """The publication row of a job a remote worker published, if any."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM publications WHERE job_id = ?", (job_id,)).fetchone()
        return dict(zip(row.keys(), row, strict=True)) if row else None

    def publish(self, job_id: str, token: str, outputs: list[str], record: str | None) -> bool:
        """Mark the job done with ``outputs`` and write its publication row, in one transaction, if
        ``token`` still holds it; False (nothing written) otherwise."""
        now = time.time()
        with self.transaction() as db:
            row = db.execute(
                "UPDATE jobs SET status = 'done', finished = ?, lease_until = NULL, progress = 1.0, eta = 0.0, "
                "outputs = ?, record = ? WHERE id = ? AND claim = ? AND status = 'running' RETURNING id",
                (now, json.dumps(outputs), record, job_id, token),
            ).fetchone()
            if row is not None:  # a second publication fails on the primary key and rolls all back
                db.execute("INSERT INTO publications (job_id, claim, outputs, published) VALUES (?, ?, ?, ?)",
                           (job_id, token, json.dumps(outputs), now))  # fmt: skip
        return row is not None


# ---------------------------------------------------------------------------------------------
# Running one job


class _Attempt:
    """One worker's attempt at one job: heartbeat, progress, previews, cancel checks."""

    def __init__(self, store: JobStore, job: Job, token: str):
        self.store, self.job, self.token = store, job, token
        self.stopped: str | None = None  # why the job must stop, if it must
        self.start = time.monotonic()
        self.fraction = 0.0
        self.resumed_at: float | None = None  # the fraction this attempt began at (set by its first report)
        self.last_write = 0.0
        self.last_preview = 0.0
        self.preview_step = job.preview_step
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name=f"lease-{job.id[:8]}")

    def __enter__(self) -> _Attempt:
        self._beat.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._beat.join()

    def _heartbeat(self) -> None:
        # A separate thread keeps the lease while the engine loads models or runs a long step.
        while not self._done.wait(self.store.config.lease_seconds / 3):
            self._renew()

    def _renew(self, **fields: Any) -> None:
        with self._lock:
            fields = {**self._pending, **fields}
            self._pending = {}
            try:
                alive = self.store.renew(self.job.id, self.token, **fields)
            except sqlite3.Error as exc:  # a busy database: try again at the next beat
                log.warning("job %s: lease renewal failed: %s", self.job.id, exc)
                self._pending = fields
                return
        if not alive and self.stopped is None:
            current = self.store.get(self.job.id)
            self.stopped = "cancelled" if current and current.cancel else "lease lost"

    def progress(self, fraction: float, make_preview=None) -> None:
        """The engine's callback: record progress and ETA, write a preview now and then, stop if asked."""
        if self.stopped:
            raise JobStopped(self.stopped)
        now = time.monotonic()
        self.fraction = min(1.0, max(0.0, fraction))
        elapsed = now - self.start
        if self.resumed_at is None:  # a retried job may resume (from a checkpoint) where the last attempt was
            self.resumed_at = self.fraction if self.job.attempts > 1 else 0.0
        # The pace of this attempt alone: a resumed one did not do the steps before its first.
        done_here = self.fraction - self.resumed_at
        eta = elapsed / done_here * (1 - self.fraction) if done_here > 0 else None
        fields: dict[str, Any] = {"progress": self.fraction, "eta": eta}
        if make_preview is not None and (
            now - self.last_preview >= self.store.config.preview_seconds or self.fraction >= 1.0
        ):
            self.last_preview = now
            fields.update(self._write_preview(make_preview()))
        if now - self.last_write >= 0.25 or "preview" in fields:
            self.last_write = now
            self._renew(**fields)
        else:
            with self._lock:
                self._pending.update(fields)
        if self.stopped:
            raise JobStopped(self.stopped)

    def _write_preview(self, image: Image.Image) -> dict:
        self.preview_step += 1
        name = f"{self.job.id}-{self.token[:8]}-{self.preview_step:05d}.jpg"
        record = new_record(self.job.engine, self.job.params, extra={"preview": True, "progress": self.fraction,
                                                                     "studio_job": self.job.id})  # fmt: skip
        # A working file shown while the job runs, deleted soon after: not marked, signed or registered.
        save(image.convert("RGB"), self.store.config.previews / name, record, protection=None)
        old = self.job.preview
        self.job.preview = name
        if old and old != name:
            (self.store.config.previews / old).unlink(missing_ok=True)
        return {"preview": name, "preview_step": self.preview_step}


def run_job(store: JobStore, job: Job, token: str, device: str = "auto", results: list | None = None,
            attempt: _Attempt | None = None) -> str:  # fmt: skip
    """Run a claimed job through the API and publish its outputs; return its final status. From
    :func:`run_batch`: ``results``, what the batch made for this job, and ``attempt``, its held lease."""
    config = store.config
    written: list[Path] = []
    # Named by job and attempt: a late duplicate can never overwrite a published output.
    stem = f"{job.id}-{token[:8]}"

    def output(suffix: str) -> Path:
        written.append(config.outputs / f"{stem}-0{suffix}")
        return written[-1]

    def end(status: str, **fields: Any) -> bool:
        """Finish the job if this attempt still holds it; its working folder goes with it."""
        if not store.finish(job.id, token, status, **fields):
            return False
        shutil.rmtree(config.job_dir(job.id), ignore_errors=True)
        # A clip an earlier attempt was writing when its worker was killed (each attempt has its own name).
        remove_stale_temps(config.outputs / f"{job.id}-", prefix=True)
        return True

    with nullcontext(attempt) if attempt else _Attempt(store, job, token) as attempt:
        try:
            engine = get_engine(job.engine)
            inputs = resolve_inputs(config, job.engine, job.inputs)
            ctx = RunContext(attempt.progress, device, config.limits.image_pixels, output, config.job_dir(job.id),
                             config.intermediate_seconds, protection=config.protection(),
                             install_model=partial(install_trained_model, config.models))  # fmt: skip
            if results is None:
                results = engine.run(inputs, job.params, ctx)
            else:
                attempt.progress(1.0)  # was it cancelled while the batch ran?
            if attempt.stopped:
                raise JobStopped(attempt.stopped)
            records, outputs = [], []
            for n, result in enumerate(results):
                # A file the engine wrote (a video) has its record inside already; images get the job's id too.
                record = result.record if isinstance(result, Written) else record_of(result)
                if record is not None:
                    record.extra["studio_job"] = job.id
                    records.append(record)
                if isinstance(result, Written):
                    path = result.path
                    written += [result.poster] if result.poster else []
                else:
                    path = save(result, config.outputs / f"{stem}-{n}.png", protection=config.protection())
                    written.append(path)
                outputs.append(path.name)
            record_json = records[0].to_json() if records else None
            if end("done", progress=1.0, eta=0.0, outputs=json.dumps(outputs), record=record_json):
                return "done"
            _remove(written)
            return "lost"
        except JobStopped as stop:
            _remove(written)
            if str(stop) == "cancelled":
                end("cancelled")
                return "cancelled"
            return "lost"
        except BrushworkError as exc:
            _remove(written)
            end("failed", error=str(exc))
            return "failed"
        except Exception as exc:  # noqa: BLE001 - a worker must outlive any one job; the error goes to the client
            log.exception("job %s failed", job.id)
            _remove(written)
            end("failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            return "failed"


def run_batch(store: JobStore, claims: list[tuple[Job, str]], device: str = "auto") -> list[str]:
    """Run claimed jobs of one engine with the same settings, model and styles as one batch (one forward
    pass through the model), then publish each job's results on its own. If the batch fails, each job runs
    alone, so a bad input fails its own job only."""
    config = store.config
    engine = get_engine(claims[0][0].engine)
    if len(claims) == 1 or engine.run_batch is None:
        return [run_job(store, job, token, device) for job, token in claims]
    results = None
    with ExitStack() as held:  # every job's lease is renewed until that job is published
        attempts = [held.enter_context(_Attempt(store, job, token)) for job, token in claims]
        try:
            inputs = [resolve_inputs(config, job.engine, job.inputs) for job, _ in claims]
            results = engine.run_batch(inputs, claims[0][0].params, device, config.limits.image_pixels)
        except Exception as exc:  # noqa: BLE001 - each job then runs alone and reports its own error
            log.info("batch of %d %s jobs failed (%s); running them one by one", len(claims), engine.name, exc)
        return [run_job(store, job, token, device, results[n] if results else None, attempts[n])
                for n, (job, token) in enumerate(claims)]  # fmt: skip


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


class Worker:
    """Takes jobs from the store one at a time until ``stop`` is set."""

    def __init__(self, store: JobStore, device: str | None = None, poll: float = 0.5):
        self.store = store
        self.device = device or store.config.device
        self.poll = poll
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stop = threading.Event()

    def run_once(self, job_id: str | None = None) -> str | None:
        """Claim and run the oldest job (or ``job_id``), with compatible queued jobs as one batch where its
        engine allows; return the (first) job's final status, or None when there was nothing to do."""
        limit = self.store.config.batch_for(self.device) if job_id is None else 1
        claims = self.store.claim_batch(job_id, self.name, limit, batchable_engines())
        if not claims:
            return None
        # CPU threads to the cores free now: another worker (or any job) on this machine keeps its own.
        threads.fit()
        for job, _ in claims:
            log.info("job %s (%s): attempt %d%s", job.id, job.engine, job.attempts,
                     f", in a batch of {len(claims)}" if len(claims) > 1 else "")  # fmt: skip
        return run_batch(self.store, claims, self.device)[0]

    def run_until_empty(self) -> int:
        """Run jobs until none is queued or in flight. A job whose worker died counts as in flight until
        its lease expires, then it is claimed here: a burst worker started to recover a queue finishes
        it, instead of leaving because the lease had not run out yet."""
        done = 0
        while not self.stop.is_set():
            if self.run_once() is not None:
                done += 1
                continue
            counts = self.store.counts()
            if not counts.get("queued") and not counts.get("running"):
                break
            self.stop.wait(self.poll)
        return done

    def run_forever(self, max_jobs: int | None = None) -> int:
        done = 0
        while not self.stop.is_set() and (max_jobs is None or done < max_jobs):
            if self.run_once() is None:
                self.stop.wait(self.poll)
            else:
                done += 1
        return done

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, daemon=True, name="brushwork-worker")
        thread.start()
        return thread
