"""The registry of protected works: one SQLite file, one row per work, found by ID or by look.

Each row holds the work ID (the one the watermark carries), the SHA-256 of the file as written
and of its public preview (if any), a perceptual hash to find near-copies, the record, the C2PA
manifest state and the time. SQLite in WAL mode so a reader (``verify``) never blocks a writer
(a render), every command one transaction.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from brushwork.database import check_database, immediate_transaction, use_wal
from brushwork.errors import BrushworkError
from brushwork.protect.clips import detect_clip, middle_frame
from brushwork.protect.watermark import CROP_GUESSES, MAX_WORK_ID

SCHEMA = """
CREATE TABLE IF NOT EXISTS works (
    id INTEGER PRIMARY KEY,          -- the watermark's work ID (24 bits)
    created TEXT NOT NULL,
    state TEXT NOT NULL,             -- 'reserved' while the file is written, then 'registered'
    path TEXT,
    sha256 TEXT,                     -- the file as written (after signing)
    preview_sha256 TEXT,
    phash TEXT,                      -- perceptual hash, hex
    record TEXT,                     -- the brushwork record, JSON
    manifest TEXT                    -- the C2PA manifest store, JSON, when signed
);
CREATE INDEX IF NOT EXISTS works_sha256 ON works (sha256);
"""
#: Hamming distance (of 64 bits) under which two perceptual hashes are the same picture. The
#: difference hash moves by 0-6 bits under re-encoding, resizing and mild colour changes and by
#: about 32 between unrelated pictures.
PHASH_MATCH_BITS = 10


def registry_path() -> Path:
    """``BRUSHWORK_DATA_DIR/registry.sqlite``, else in the platform's user data folder."""
    override = os.environ.get("BRUSHWORK_DATA_DIR")
    if override:
        return Path(override) / "registry.sqlite"
    import platformdirs

    return Path(platformdirs.user_data_dir("brushwork")) / "registry.sqlite"


def perceptual_hash(image: Image.Image) -> str:
    """64-bit difference hash (imagehash's dHash): robust to re-encoding and resizing, cheap to compare."""
    import imagehash

    return str(imagehash.dhash(image.convert("RGB")))


def hash_distance(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@dataclass
class Entry:
    """What :meth:`Registry.register_many` writes for one work."""

    work_id: int
    path: str | os.PathLike
    sha256: str
    phash: str
    record: dict
    manifest: dict | None = None
    preview_sha256: str | None = None


@dataclass
class Work:
    id: int
    created: str
    state: str
    path: str | None = None
    sha256: str | None = None
    preview_sha256: str | None = None
    phash: str | None = None
    record: dict | None = None
    manifest: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Registry:
    """The registry file at ``path``. One connection per object (and process), opened at first use and
    kept: a batch of outputs costs one connection, and each command is still one transaction."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else registry_path()
        self._db: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._lock = threading.RLock()

    def __getstate__(self) -> dict:  # a connection does not travel to another process
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid() or not self.path.exists():
            self._db = None  # a forked child opens its own; a removed file is made again
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            try:
                check_database(db, self.path, "work registry", {"works"})
                use_wal(db)
                db.executescript(SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db, self._pid = db, os.getpid()
        return self._db

    @contextmanager
    def _transaction(self, create: bool = True):
        if not self.path.exists() and not create:
            raise BrushworkError(f"{self.path}: no registry yet (nothing has been protected)")
        with self._lock:
            try:
                db = self._connection()
                with immediate_transaction(db):
                    yield db
            except sqlite3.DatabaseError as exc:
                self.close()
                raise BrushworkError(f"{self.path}: registry unreadable ({exc})") from exc

    def reserve(self, work_id: int | None = None) -> int:
        """A new work ID (random, or ``work_id``), unused in this registry, held until :meth:`register` fills it in."""
        return self.reserve_many(1, work_id)[0]

    def reserve_many(self, count: int, work_id: int | None = None, existing_ok: bool = False) -> list[int]:
        """:meth:`reserve` for ``count`` outputs in one transaction (``work_id``: only with ``count`` 1).
        ``existing_ok``: ``work_id`` may already be here (a new file of a registered work)."""
        rng = random.SystemRandom()
        ids: list[int] = []
        with self._transaction() as db:
            if work_id is not None:
                if not 1 <= work_id <= MAX_WORK_ID:
                    raise BrushworkError(f"work id must be between 1 and {MAX_WORK_ID}, not {work_id}")
                if db.execute("SELECT 1 FROM works WHERE id = ?", (work_id,)).fetchone():
                    if existing_ok:
                        return [work_id]
                    raise BrushworkError(f"work id {work_id} is already in {self.path}")
                db.execute("INSERT INTO works (id, created, state) VALUES (?, ?, 'reserved')", (work_id, _now()))
                return [work_id]
            now = _now()
            for _ in range(count):
                for _ in range(100):
                    candidate = rng.randint(1, MAX_WORK_ID)
                    if db.execute("SELECT 1 FROM works WHERE id = ?", (candidate,)).fetchone() is None:
                        db.execute("INSERT INTO works (id, created, state) VALUES (?, ?, 'reserved')", (candidate, now))
                        ids.append(candidate)
                        break
                else:
                    raise BrushworkError(f"{self.path}: no free work ID found; the registry is nearly full")
        return ids

    def release(self, *work_ids: int) -> None:
        """Give back IDs reserved but not used."""
        if not work_ids:
            return
        with self._transaction() as db:
            db.executemany("DELETE FROM works WHERE id = ? AND state = 'reserved'", [(w,) for w in work_ids])

    def register(self, work_id: int, path: str | os.PathLike, sha256: str, phash: str, record: dict,
                 manifest: dict | None = None, preview_sha256: str | None = None) -> Work:  # fmt: skip
        self.register_many([Entry(work_id, path, sha256, phash, record, manifest, preview_sha256)])
        return self.get(work_id)

    def register_many(self, entries: list[Entry]) -> None:
        """Fill in (or add) the rows of written works, all in one transaction: all of them or none."""
        now = _now()
        with self._transaction() as db:
            for e in entries:
                db.execute(
                    "INSERT INTO works (id, created, state) VALUES (?, ?, 'reserved') ON CONFLICT(id) DO NOTHING",
                    (e.work_id, now),
                )
                db.execute(
                    "UPDATE works SET state='registered', path=?, sha256=?, preview_sha256=?, phash=?, record=?, "
                    "manifest=? WHERE id=?",
                    (str(Path(e.path).resolve()), e.sha256, e.preview_sha256, e.phash, json.dumps(e.record),
                     json.dumps(e.manifest) if e.manifest else None, e.work_id),
                )  # fmt: skip

    def get(self, work_id: int) -> Work | None:
        # No ID outside 1..MAX_WORK_ID is ever given (and SQLite cannot even compare one beyond 64 bits).
        if not self.path.exists() or not 1 <= work_id <= MAX_WORK_ID:
            return None
        with self._transaction(create=False) as db:
            row = db.execute("SELECT * FROM works WHERE id = ?", (work_id,)).fetchone()
        return _work(row, self.path) if row else None

    def find(self, image: Image.Image | list[Image.Image],
             use_watermark: bool = True) -> tuple[Work | None, str, int | None]:  # fmt: skip
        """The work ``image`` came from: by its watermark's ID if known here, else the nearest
        perceptual hash within :data:`PHASH_MATCH_BITS`. Returns (work, how, hash distance).
        ``image`` may be a clip's sampled frames (:func:`clips.sample_frames`): the ID most of them
        carry, the hash of the middle one (as registered)."""
        frames = image if isinstance(image, list) else [image]
        phash = perceptual_hash(middle_frame(frames, "the clip"))
        # One frame reads as ``detect`` reads it; several must agree (see ``clips``).
        work_id = detect_clip(frames, crop_guesses=CROP_GUESSES).work_id if use_watermark else None
        if work_id is not None:
            work = self.get(work_id)
            if work is not None and work.state == "registered":
                return work, "watermark", hash_distance(phash, work.phash) if work.phash else None
        if not self.path.exists():
            return None, "none", None
        with self._transaction(create=False) as db:
            rows = db.execute("SELECT * FROM works WHERE phash IS NOT NULL").fetchall()
        scored = sorted(((hash_distance(phash, row[6]), row) for row in rows), key=lambda pair: pair[0])
        if scored and scored[0][0] <= PHASH_MATCH_BITS:
            return _work(scored[0][1], self.path), "perceptual-hash", scored[0][0]
        return None, "none", None


def _work(row: tuple, path: Path) -> Work:
    work = Work(*row)
    for field in ("record", "manifest"):
        text = getattr(work, field)
        try:
            setattr(work, field, json.loads(text) if text else None)
        except (ValueError, RecursionError):  # a row damaged outside brushwork: name it, do not guess
            raise BrushworkError(
                f"{path}: work {work.id}'s stored {field} is damaged (not JSON); restore the registry from a copy"
            ) from None
    return work


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


BUNDLE_SCHEMA = "brushwork.registration/1"


def _manifest_of_file(work: Work) -> dict | None:
    """The C2PA manifest store of the registered file, read now, if it is still the registered bytes
    (outputs are registered without it: reading it back cost 40 % of sealing a small picture)."""
    from brushwork.protect.provenance import manifest_store
    from brushwork.records import sha256_file

    path = Path(work.path) if work.path else None
    if path is None or not path.is_file() or sha256_file(path) not in (work.sha256, work.preview_sha256):
        return None
    return manifest_store(path)


def export_bundle(registry: Registry, work_id: int, output: str | os.PathLike, force: bool = False) -> Path:
    """Write a registration bundle for ``work_id``: the entry (hashes, record, time) and its C2PA manifest,
    as one JSON file an artist can file with a registry office or send to a timestamping service."""
    from brushwork.files import atomic_write, check_output_path

    output = check_output_path(output, force, ".json")
    work = registry.get(work_id)
    if work is None or work.state != "registered":
        raise BrushworkError(f"work {work_id} is not in {registry.path}")
    bundle = {
        "schema": BUNDLE_SCHEMA,
        "work_id": work.id,
        "registered": work.created,
        "file": {"name": Path(work.path).name if work.path else None, "sha256": work.sha256},
        "preview_sha256": work.preview_sha256,
        "perceptual_hash": {"algorithm": "dhash-64", "value": work.phash},
        "digital_source_type": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        "record": work.record,
        "c2pa_manifest": work.manifest or _manifest_of_file(work),
    }
    text = json.dumps(bundle, indent=2, sort_keys=True)
    return atomic_write(output, lambda tmp: Path(tmp).write_text(text + "\n"))
