"""Where the studio keeps its data and the limits it enforces on what comes in over the network."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from brushwork.errors import BrushworkError

#: Environment variable holding the access token (required when the server listens beyond loopback).
TOKEN_ENV = "BRUSHWORK_TOKEN"


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("brushwork", appauthor=False)) / "studio"


@dataclass
class Limits:
    """Bounds on requests: a browser on the network is untrusted input."""

    upload_bytes: int = 32 * 1024 * 1024  # one whole request body
    image_pixels: int = 40_000_000  # each uploaded image (media.load_image's max_pixels)
    params_bytes: int = 64 * 1024  # the params JSON
    files_per_job: int = 8
    #: What one job may ask of the worker (the API itself allows up to 16384 px).
    max_image_size: int = 4096
    max_iterations: int = 5000
    max_seeds: int = 16
    #: Each uploaded clip (the video engine): frames, seconds and pixels per frame.
    video_frames: int = 3000
    video_seconds: float = 300.0
    video_pixels: int = 3840 * 2160
    #: Each file of a GAN run the worker API serves a remote worker (a checkpoint holds the discriminator and
    #: both optimisers besides the generator).
    run_file_bytes: int = 2 * 1024 * 1024 * 1024


@dataclass
class StudioConfig:
    data_dir: Path = field(default_factory=default_data_dir)
    limits: Limits = field(default_factory=Limits)
    #: A worker holds a job for this long without a heartbeat before another may take it over.
    lease_seconds: float = 30.0
    #: Jobs interrupted this many times (a worker killed mid-job each time) are failed, not retried forever.
    max_attempts: int = 3
    #: Seconds between live preview images of a running job.
    preview_seconds: float = 1.0
    #: Seconds between the intermediates an optimisation job keeps, to resume from after a worker dies
    #: (0: none; the job then re-runs from the start).
    intermediate_seconds: float = 15.0
    device: str = "auto"
    #: Compatible feed-forward jobs (same engine, model, styles and settings) a worker takes at once and
    #: runs as one batch (1: one job at a time); None: see :meth:`batch_for`.
    batch_size: int | None = None
    queue_url: str | None = None  # redis://… : jobs go through RQ on Redis as well as SQLite
    #: When set, every request needs it (``serve`` beyond loopback, or ``BRUSHWORK_TOKEN``).
    token: str | None = None
    #: ``serve``'s per-run token (in the URL it prints): a state-changing request (POST, PUT, PATCH,
    #: DELETE) needs it or proof that it comes from the studio's own page (Origin, Referer or
    #: Sec-Fetch-Site). None: only requests that show a foreign origin are refused.
    session_token: str | None = None
    #: Host header names accepted besides loopback ones (a page on another name reaching this server
    #: through DNS rebinding is refused); "*" accepts any.
    allowed_hosts: tuple[str, ...] = ()
    #: postgresql://… : the job store for a studio on several hosts (default: SQLite in the data folder).
    store_url: str | None = None
    #: Mark the pixels of outputs with the invisible watermark (off: signed and registered only, as the
    #: CLI's ``--no-watermark``; the record says so).
    watermark: bool = True
    #: The token of workers on other hosts (the worker API at /api/worker/; off without one).
    worker_token: str | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if self.queue_url is not None and not self.queue_url.startswith(("redis://", "rediss://", "unix://")):
            raise BrushworkError(f"--queue must be a redis:// URL, not {redact(self.queue_url)!r}")
        if self.store_url is not None and not self.store_url.startswith(("postgresql://", "postgres://")):
            raise BrushworkError("--store must be a postgresql:// URL")  # the URL may hold a password: not shown
        if self.lease_seconds <= 0:
            raise BrushworkError("lease must be a positive number of seconds")
        if self.batch_size is not None and not 1 <= self.batch_size <= 256:
            raise BrushworkError(f"batch size must be 1..256, not {self.batch_size}")
        if not self.intermediate_seconds >= 0:
            raise BrushworkError("intermediate seconds must be 0 (none) or more")
        self.allowed_hosts = tuple(h.lower().rstrip(".").strip("[]") for h in self.allowed_hosts)

    def protection(self):
        """What ``brushwork.api.save`` protects the studio's outputs with."""
        if self.watermark:
            return "default"
        from brushwork.protect import Protection

        return Protection(watermark=False)

    def batch_for(self, device: str) -> int:
        """The batch a worker on ``device`` takes: ``batch_size`` if set, else 8 on a GPU and 1 on the CPU,
        where one 256 px picture at a time ran faster than batches of 8 (fast 56 against 30 images/s,
        AdaIN 48 against 39 on cpu-2c, ``benchmarks/studio_batch.py``; small pictures gain there too)."""
        if self.batch_size is not None:
            return self.batch_size
        from brushwork.device import pick_device

        return 1 if pick_device(device).type == "cpu" else 8

    def prepare(self) -> StudioConfig:
        """Create the data folder and its sub-folders (private to the user)."""
        for sub in ("", "uploads", "outputs", "previews", "models", "jobs", "trash"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        return self

    @property
    def db_path(self) -> Path:
        return self.data_dir / "studio.db"

    @property
    def uploads(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def outputs(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def trash(self) -> Path:
        """Where a deleted job's outputs go: kept until the user empties it."""
        return self.data_dir / "trash"

    @property
    def previews(self) -> Path:
        return self.data_dir / "previews"

    @property
    def models(self) -> Path:
        return self.data_dir / "models"

    def job_dir(self, job_id: str) -> Path:
        """A job's working folder (its intermediates), removed when the job ends."""
        return self.data_dir / "jobs" / job_id


def redact(url: str | None) -> str | None:
    """``url`` without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    if not url:
        return url
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = f"{parts.username}:***" if parts.username else ":***"
        return urlunsplit(parts._replace(netloc=f"{user}@{parts.netloc.rpartition('@')[2]}"))
    except ValueError:
        return "(a URL that could not be read)"


def env_token() -> str | None:
    return os.environ.get(TOKEN_ENV) or None
