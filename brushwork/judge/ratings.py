"""Human ratings: a SQLite store of pairwise judgements, and Bradley–Terry rankings with confidence.

One file, WAL journal (readers never block the writer, so a web server can share it), foreign keys
on, and one transaction per command: a command either changes the database completely or not at
all. Images are keyed by the SHA-256 of their file's bytes, so a renamed or copied file is the same
image; the path seen last and the brushwork record the file carries are kept beside the hash.

Strengths are fitted with ``choix`` (the kept Bradley–Terry library). A tie counts as one win each
way. 95 % confidence intervals come from the Hessian of the fit (the observed Fisher information,
inverted under the constraint that strengths sum to zero), or, when asked, from percentiles of a
seeded bootstrap over the judgements (slower: one fit per resample).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from brushwork.database import check_database, immediate_transaction, use_wal
from brushwork.errors import BrushworkError

SCHEMA_VERSION = 1
#: How long a command waits for another writer before calling the database locked.
BUSY_TIMEOUT_S = 5.0
#: Regularisation of the Bradley–Terry fit: keeps strengths finite for an image that always wins.
BT_ALPHA = 0.01
#: Largest image file the store hashes (bytes); bigger files are refused as input.
MAX_IMAGE_BYTES = 512 * 1024 * 1024
#: Largest ratings CSV imported in one go (bytes).
MAX_CSV_BYTES = 256 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS raters (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    record TEXT,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS judgements (
    id INTEGER PRIMARY KEY,
    rater INTEGER NOT NULL REFERENCES raters(id),
    winner TEXT NOT NULL REFERENCES images(sha256),
    loser TEXT NOT NULL REFERENCES images(sha256),
    tie INTEGER NOT NULL DEFAULT 0 CHECK (tie IN (0, 1)),
    time REAL NOT NULL,
    CHECK (winner <> loser)
);
CREATE INDEX IF NOT EXISTS judgements_by_rater ON judgements(rater);
CREATE TABLE IF NOT EXISTS embeddings (
    sha256 TEXT NOT NULL REFERENCES images(sha256),
    embedder TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (sha256, embedder)
);
"""


@dataclass(frozen=True)
class Judgement:
    rater: str
    winner: str  #: sha256
    loser: str  #: sha256
    tie: bool
    time: float


@dataclass
class ImportReport:
    imported: int
    skipped: int
    reasons: dict[str, int] = field(default_factory=dict)  #: why rows were skipped -> how many


@dataclass
class RankedImage:
    sha256: str
    path: str
    strength: float  #: Bradley–Terry log-strength, mean 0 over the ranked images
    low: float  #: 95 % interval
    high: float
    wins: float  #: a tie counts half
    comparisons: int


@dataclass
class Ranking:
    rater: str | None  #: None: everyone pooled
    judgements: int
    images: list[RankedImage]
    interval: str  #: "hessian" or "bootstrap"
    bootstrap: int  #: resamples (0 with Hessian intervals)
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Agreement:
    rater_a: str
    rater_b: str
    shared_pairs: int  #: image pairs both judged with a winner
    agree_fraction: float | None  #: of those, the fraction where their (majority) winners agree
    shared_images: int
    kendall_tau: float | None  #: rank correlation of their strengths on the images both judged


def file_sha256(path: str | os.PathLike) -> str:
    path = Path(path)
    if not path.is_file():
        raise BrushworkError(f"{path}: no such file")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise BrushworkError(f"{path}: larger than {MAX_IMAGE_BYTES // 2**20} MB")
    from brushwork.records import sha256_file

    return sha256_file(path)


def _record_json(path: Path) -> str | None:
    """The brushwork record a file carries, as JSON, or None for a file without one."""
    from brushwork.records import read_record

    try:
        return read_record(path).to_json()
    except BrushworkError:
        return None


def _check_image(path: Path) -> None:
    """Refuse a file that is not an image (reads its header only)."""
    from PIL import Image, UnidentifiedImageError

    from brushwork.files import readable_file

    readable_file(path, "image")  # missing, a folder, permission denied: said as such, not "not an image"
    try:
        with Image.open(path) as img:
            img.size  # noqa: B018 - the header is parsed on open; touching it is the check
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise BrushworkError(f"{path}: not an image brushwork can read") from exc


def _is_sha(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class RatingsStore:
    """A ratings database. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike, create: bool = True, timeout: float = BUSY_TIMEOUT_S,
                 read_only: bool = False):  # fmt: skip
        """``read_only``: for commands that only read (rank): works on a file or folder this user may not
        write, where SQLite could not make the WAL's ``-wal``/``-shm`` files beside it."""
        self.path = Path(path)
        self.timeout = timeout
        if self.path.is_dir():
            raise BrushworkError(f"{self.path}: is a folder, not a ratings database")
        if not self.path.exists():
            if not create:
                raise BrushworkError(f"{self.path}: no such ratings database")
            if not self.path.parent.exists():
                raise BrushworkError(f"{self.path.parent}: folder does not exist")
        self._db = None
        self._created = not self.path.exists()
        try:
            # isolation_level=None: transactions are opened explicitly (BEGIN IMMEDIATE) by each command.
            if read_only:
                self._db = sqlite3.connect(self._read_only_uri(), timeout=timeout, isolation_level=None, uri=True)
            else:
                self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            check_database(self._db, self.path, "ratings database", {"schema_version", "judgements"})
            self._db.execute("PRAGMA foreign_keys = ON")
            if not read_only:
                use_wal(self._db)
            self._check_schema(create=not read_only)
        except (sqlite3.Error, BrushworkError) as exc:
            if self._db is not None:
                self._db.close()
            if isinstance(exc, BrushworkError):
                raise
            raise BrushworkError(f"{self.path}: {_describe(exc, self.timeout)}") from exc

    def _read_only_uri(self) -> str:
        from urllib.parse import quote

        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        folder_writable = os.access(self.path.parent, os.W_OK)
        if not folder_writable and not Path(f"{self.path}-wal").exists():
            # Nobody can be writing here (no WAL beside it, none can be made): read it as a plain file.
            uri += "&immutable=1"
        return uri

    def _check_schema(self, create: bool = True) -> None:
        """Create the tables in a new database; refuse one written by a newer brushwork."""
        has_version = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not has_version and not create:
            raise BrushworkError(f"{self.path}: not a ratings database (no ratings tables)")
        if not has_version:
            with self.transaction():
                # Statement by statement: executescript() would commit the open transaction first.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                if self._db.execute("SELECT version FROM schema_version").fetchone() is None:
                    self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        (version,) = self._db.execute("SELECT version FROM schema_version").fetchone() or (None,)
        if version is None or version > SCHEMA_VERSION:
            raise BrushworkError(
                f"{self.path}: ratings schema version {version} is not one this brushwork reads "
                f"(it reads up to {SCHEMA_VERSION}); upgrade brushwork"
            )

    # -- plumbing -----------------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RatingsStore:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # A command that made this database and then failed (an image refused, say) leaves no empty one.
        empty = False
        if exc_type is not None and self._created:
            try:
                empty = not self._db.execute("SELECT 1 FROM judgements UNION ALL SELECT 1 FROM images").fetchone()
            except sqlite3.Error:
                empty = False
        self.close()
        if empty:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error: the database is never half-changed."""
        try:
            with immediate_transaction(self._db):
                yield self._db
        except sqlite3.Error as exc:
            raise BrushworkError(f"{self.path}: {_describe(exc, self.timeout)}") from exc

    def _query(self, sql: str, params: Iterable = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise BrushworkError(f"{self.path}: {_describe(exc, self.timeout)}") from exc

    # -- raters and images --------------------------------------------------------------------------

    def raters(self) -> list[str]:
        return [name for (name,) in self._query("SELECT name FROM raters ORDER BY name")]

    def _rater_id(self, name: str, create: bool) -> int:
        name = name.strip()
        if not name or len(name) > 200:
            raise BrushworkError("a rater's name must be 1 to 200 characters")
        row = self._db.execute("SELECT id FROM raters WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return row[0]
        if not create:
            raise BrushworkError(f"unknown rater {name!r} in {self.path}")
        return self._db.execute("INSERT INTO raters (name, created) VALUES (?, ?)", (name, time.time())).lastrowid

    def require_rater(self, name: str) -> None:
        if name not in self.raters():
            raise BrushworkError(f"unknown rater {name!r} in {self.path}")

    def _add_image(self, path: Path) -> str:
        _check_image(path)
        sha = file_sha256(path)
        record = _record_json(path)
        self._db.execute(
            "INSERT INTO images (sha256, path, record, added) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(sha256) DO UPDATE SET path = excluded.path, record = COALESCE(excluded.record, record)",
            (sha, str(path.resolve()), record, time.time()),
        )
        return sha

    def add_images(self, paths: Iterable[str | os.PathLike]) -> list[str]:
        """Put image files in the store (one transaction); their hashes, in order."""
        paths = [Path(p) for p in paths]
        with self.transaction():
            return [self._add_image(p) for p in paths]

    def _resolve(self, image: str | os.PathLike, base: Path | None = None) -> str:
        """A file (added to the store) or the hash of an image already in it -> its hash."""
        text = str(image)
        path = Path(text) if base is None or Path(text).is_absolute() else base / text
        if path.is_file():
            return self._add_image(path)
        if _is_sha(text.lower()):
            if self._db.execute("SELECT 1 FROM images WHERE sha256 = ?", (text.lower(),)).fetchone():
                return text.lower()
            raise BrushworkError(f"image {text[:12]}… is not in {self.path}")
        raise BrushworkError(f"{path}: no such file, nor the hash of an image in the store")

    def image_path(self, sha: str) -> str:
        row = self._query("SELECT path FROM images WHERE sha256 = ?", (sha,))
        if not row:
            raise BrushworkError(f"image {sha[:12]}… is not in {self.path}")
        return row[0][0]

    def image_record(self, sha: str) -> dict | None:
        row = self._query("SELECT record FROM images WHERE sha256 = ?", (sha,))
        if not row:
            raise BrushworkError(f"image {sha[:12]}… is not in {self.path}")
        try:
            return json.loads(row[0][0]) if row[0][0] else None
        except (ValueError, RecursionError):
            raise BrushworkError(f"{self.path}: the stored record of image {sha[:12]}… is damaged (not JSON)") from None

    def images(self) -> list[tuple[str, str]]:
        """(sha256, path) of every image in the store, oldest first."""
        return [tuple(r) for r in self._query("SELECT sha256, path FROM images ORDER BY added, sha256")]

    def lookup_image(self, image: str | os.PathLike) -> str:
        """The hash of an image that must already be in the store (given as its file or its hash)."""
        text = str(image)
        sha = text.lower() if _is_sha(text.lower()) else file_sha256(text)
        if not self._query("SELECT 1 FROM images WHERE sha256 = ?", (sha,)):
            raise BrushworkError(f"{text}: image is not in {self.path}")
        return sha

    # -- judgements -----------------------------------------------------------------------------------

    def rate(self, rater: str, winner: str | os.PathLike, loser: str | os.PathLike, tie: bool = False,
             new_rater: bool = True) -> Judgement:  # fmt: skip
        """Record one judgement (a file is added to the store on first sight). A new rater is created
        unless ``new_rater`` is False."""
        with self.transaction():
            rater_id = self._rater_id(rater, create=new_rater)
            a, b = self._resolve(winner), self._resolve(loser)
            if a == b:
                raise BrushworkError("an image cannot be rated against itself")
            now = time.time()
            self._db.execute(
                "INSERT INTO judgements (rater, winner, loser, tie, time) VALUES (?, ?, ?, ?, ?)",
                (rater_id, a, b, int(tie), now),
            )
        return Judgement(rater.strip(), a, b, bool(tie), now)

    def import_csv(self, csv_path: str | os.PathLike) -> ImportReport:
        """Import judgements from a CSV with a header: ``user,winner,loser`` and optionally ``tie``
        (0/1/true/false) and ``time`` (Unix seconds). Images are files (relative to the CSV's folder)
        or hashes already in the store. Bad rows are skipped and counted; anything else that goes
        wrong imports nothing."""
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise BrushworkError(f"{csv_path}: no such file")
        if csv_path.stat().st_size > MAX_CSV_BYTES:
            raise BrushworkError(f"{csv_path}: larger than {MAX_CSV_BYTES // 2**20} MB; split it")
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.DictReader(fh))
                header = [h.strip().lower() for h in (rows[0].keys() if rows else [])]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise BrushworkError(f"{csv_path}: not a readable CSV file ({exc})") from exc
        if not rows:
            raise BrushworkError(f"{csv_path}: no rows (expected a header user,winner,loser[,tie][,time])")
        missing = {"user", "winner", "loser"} - set(header)
        if missing:
            raise BrushworkError(f"{csv_path}: the header lacks {', '.join(sorted(missing))}")
        report = ImportReport(0, 0)
        resolved: dict[str, str] = {}  # each file is hashed once per import, however often it appears
        with self.transaction():
            for row in rows:
                # A short row has None for its missing cells, a long one a list under the key None.
                clean = {(k or "").strip().lower(): v.strip() for k, v in row.items() if isinstance(v, str)}
                reason = self._import_row(clean, csv_path.parent, resolved)
                if reason is None:
                    report.imported += 1
                else:
                    report.skipped += 1
                    report.reasons[reason] = report.reasons.get(reason, 0) + 1
        return report

    def _import_row(self, row: dict[str, str], base: Path, resolved: dict[str, str]) -> str | None:
        """Insert one CSV row; the reason it was skipped, or None."""
        tie_text = row.get("tie", "").lower()
        if tie_text not in ("", "0", "1", "true", "false", "yes", "no"):
            return "bad tie value"
        try:
            when = float(row["time"]) if row.get("time") else time.time()
        except ValueError:
            return "bad time"
        if not math.isfinite(when):
            return "bad time"
        if not all(row.get(name) for name in ("user", "winner", "loser")):
            return "empty field"
        try:
            for name in (row["winner"], row["loser"]):
                if name not in resolved:
                    resolved[name] = self._resolve(name, base)
            a, b = resolved[row["winner"]], resolved[row["loser"]]
            rater_id = self._rater_id(row["user"], create=True)
        except BrushworkError:
            return "unknown image or bad rater name"
        if a == b:
            return "image against itself"
        self._db.execute(
            "INSERT INTO judgements (rater, winner, loser, tie, time) VALUES (?, ?, ?, ?, ?)",
            (rater_id, a, b, int(tie_text in ("1", "true", "yes")), when),
        )
        return None

    def judgements(self, rater: str | None = None) -> list[Judgement]:
        sql = (
            "SELECT r.name, j.winner, j.loser, j.tie, j.time FROM judgements j JOIN raters r ON r.id = j.rater"
            + (" WHERE r.name = ?" if rater is not None else "")
            + " ORDER BY j.id"
        )
        if rater is not None:
            self.require_rater(rater)
        return [Judgement(n, w, lo, bool(t), tm) for n, w, lo, t, tm in self._query(sql, [rater] if rater else [])]

    # -- embeddings cache (for the taste model) ---------------------------------------------------------

    def cached_embeddings(self, embedder: str, shas: Iterable[str]) -> dict[str, np.ndarray]:
        shas = list(shas)
        found = {}
        for start in range(0, len(shas), 500):
            chunk = shas[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for sha, blob in self._query(
                f"SELECT sha256, vector FROM embeddings WHERE embedder = ? AND sha256 IN ({marks})", [embedder, *chunk]
            ):
                if isinstance(blob, bytes) and blob and len(blob) % 8 == 0:
                    found[sha] = np.frombuffer(blob, dtype=np.float64).copy()
        # A cache, so a damaged row (cut short, another length than the rest, not finite) is no entry:
        # the embedding is computed again and the row replaced.
        lengths = Counter(v.size for v in found.values() if np.isfinite(v).all())
        if lengths:
            common = lengths.most_common(1)[0][0]
            found = {sha: v for sha, v in found.items() if v.size == common and np.isfinite(v).all()}
        return found

    def store_embeddings(self, embedder: str, vectors: dict[str, np.ndarray]) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings (sha256, embedder, vector) VALUES (?, ?, ?)",
                [(sha, embedder, np.asarray(v, np.float64).tobytes()) for sha, v in vectors.items()],
            )

    # -- ranking ---------------------------------------------------------------------------------------------

    def rank(self, rater: str | None = None, bootstrap: int = 0, seed: int = 0,
             on_resample: Callable[[int, int], None] | None = None) -> Ranking:  # fmt: skip
        """Bradley–Terry strengths of the images ``rater`` (or everyone) judged, best first, with 95 %
        intervals: from the Hessian, or from ``bootstrap`` resamples (``on_resample(done, total)`` after each)."""
        check_bootstrap(bootstrap, seed)
        judgements = self.judgements(rater)
        if not judgements:
            raise BrushworkError(f"no judgements{f' by {rater!r}' if rater else ''} in {self.path}")
        strengths, low, high, items = bradley_terry(judgements, bootstrap, seed, on_resample)
        wins: dict[str, float] = dict.fromkeys(items, 0.0)
        counts: dict[str, int] = dict.fromkeys(items, 0)
        for j in judgements:
            wins[j.winner] += 0.5 if j.tie else 1.0
            wins[j.loser] += 0.5 if j.tie else 0.0
            counts[j.winner] += 1
            counts[j.loser] += 1
        paths = dict(self.images())
        ranked = [
            RankedImage(sha, paths[sha], float(s), float(lo), float(hi), wins[sha], counts[sha])
            for sha, s, lo, hi in zip(items, strengths, low, high, strict=True)
        ]
        ranked.sort(key=lambda r: -r.strength)
        interval = "bootstrap" if bootstrap > 1 else "hessian"
        return Ranking(rater, len(judgements), ranked, interval, bootstrap if bootstrap > 1 else 0, seed)

    def agreement(self) -> list[Agreement]:
        """How much each two raters agree: on the image pairs both judged, and in their strengths."""
        # Each rater's verdicts and strengths once, not once per pair of raters.
        views = {name: _RaterView.of(self.judgements(name)) for name in self.raters()}
        return [rater_agreement(a, views[a], b, views[b]) for a, b in itertools.combinations(sorted(views), 2)]


def _pairs(judgements: Iterable[Judgement], index: dict[str, int]) -> list[tuple[int, int]]:
    """choix's (winner, loser) index pairs; a tie is one win each way."""
    pairs = []
    for j in judgements:
        pairs.append((index[j.winner], index[j.loser]))
        if j.tie:
            pairs.append((index[j.loser], index[j.winner]))
    return pairs


#: Resamples a bootstrap may ask for: each is one more fit over every judgement.
MAX_BOOTSTRAP = 10_000


def check_bootstrap(bootstrap: int, seed: int) -> None:
    """Refuse resample counts and seeds numpy cannot take, before any work is done."""
    if not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise BrushworkError(f"bootstrap must be between 0 and {MAX_BOOTSTRAP} resamples, not {bootstrap}")
    if not 0 <= seed < 2**63:
        raise BrushworkError(f"seed must be between 0 and 2**63 - 1, not {seed}")


def bradley_terry(judgements: list[Judgement], bootstrap: int = 0, seed: int = 0,
                  on_resample: Callable[[int, int], None] | None = None):  # fmt: skip
    """(strengths, 95 % interval low and high, image hashes) over the images judged. Intervals from the
    Hessian, or from ``bootstrap`` resamples when more than 1 (``on_resample(done, total)`` after each)."""
    check_bootstrap(bootstrap, seed)
    items = sorted({j.winner for j in judgements} | {j.loser for j in judgements})
    index = {sha: i for i, sha in enumerate(items)}
    pairs = _pairs(judgements, index)
    strengths = _fit(len(items), pairs)
    if bootstrap > 1:
        rng = np.random.default_rng(seed)
        samples = np.empty((bootstrap, len(items)))
        for k in range(bootstrap):
            resampled = [judgements[i] for i in rng.integers(0, len(judgements), len(judgements))]
            samples[k] = _fit(len(items), _pairs(resampled, index))
            if on_resample is not None:
                on_resample(k + 1, bootstrap)
        low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    else:
        half_width = 1.959964 * np.sqrt(np.diag(_covariance(strengths, pairs)))
        low, high = strengths - half_width, strengths + half_width
    return strengths, low, high, items


def _fit(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """choix's MAP strengths (Newton-CG; faster than its ILSR on hundreds of images), mean 0."""
    try:
        import choix
    except ImportError as exc:
        raise BrushworkError(
            "ranking needs choix and scipy (dependencies of brushwork): pip install choix scipy"
        ) from exc

    strengths = choix.opt_pairwise(n, pairs, alpha=BT_ALPHA)
    return strengths - strengths.mean()


def _covariance(strengths: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Inverse Hessian of choix's objective (negative log-likelihood + alpha |θ|²) at the fit, on the
    sum-zero subspace the strengths live in. choix does not expose it; it is a few lines."""
    n = len(strengths)
    winners = np.array([w for w, _ in pairs])
    losers = np.array([lo for _, lo in pairs])
    p = 1 / (1 + np.exp(strengths[losers] - strengths[winners]))
    q = p * (1 - p)
    hessian = 2 * BT_ALPHA * np.eye(n)
    np.add.at(hessian, (winners, winners), q)
    np.add.at(hessian, (losers, losers), q)
    np.add.at(hessian, (winners, losers), -q)
    np.add.at(hessian, (losers, winners), -q)
    centre = np.eye(n) - 1.0 / n
    return centre @ np.linalg.inv(hessian) @ centre


def _pair_verdicts(judgements: Iterable[Judgement]) -> dict[tuple[str, str], float]:
    """(image a, image b) with a < b -> the fraction of this rater's judgements a won (ties half)."""
    tally: dict[tuple[str, str], list[float]] = {}
    for j in judgements:
        key = tuple(sorted((j.winner, j.loser)))
        score = 0.5 if j.tie else float(j.winner == key[0])
        tally.setdefault(key, []).append(score)
    return {k: sum(v) / len(v) for k, v in tally.items()}


@dataclass
class _RaterView:
    verdicts: dict[tuple[str, str], float]  #: see _pair_verdicts
    strengths: dict[str, float]  #: image -> Bradley–Terry strength

    @classmethod
    def of(cls, judgements: list[Judgement]) -> _RaterView:
        if not judgements:
            return cls({}, {})
        items = sorted({j.winner for j in judgements} | {j.loser for j in judgements})
        fitted = _fit(len(items), _pairs(judgements, {sha: i for i, sha in enumerate(items)}))
        return cls(_pair_verdicts(judgements), dict(zip(items, fitted, strict=True)))


def rater_agreement(a: str, va: _RaterView, b: str, vb: _RaterView) -> Agreement:
    decided = [k for k in va.verdicts.keys() & vb.verdicts.keys() if 0.5 not in (va.verdicts[k], vb.verdicts[k])]
    agree = sum((va.verdicts[k] > 0.5) == (vb.verdicts[k] > 0.5) for k in decided)
    common = sorted(va.strengths.keys() & vb.strengths.keys())
    tau = None
    if len(common) >= 3:
        from scipy.stats import kendalltau

        value = kendalltau([va.strengths[s] for s in common], [vb.strengths[s] for s in common]).statistic
        tau = None if np.isnan(value) else float(value)
    return Agreement(a, b, len(decided), agree / len(decided) if decided else None, len(common), tau)


def _describe(exc: sqlite3.Error, timeout: float) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"database is locked by another program (waited {timeout:g} s); try again"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return "not a ratings database, or a corrupt one"
    return f"database error: {text}"
