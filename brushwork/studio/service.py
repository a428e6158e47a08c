"""What the web app does, without the web: submit (check, store inputs, queue), gallery, ratings.

The FastAPI app (``app.py``) only turns HTTP into calls to :class:`Studio` and back.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from brushwork.errors import BrushworkError
from brushwork.studio.config import StudioConfig, redact
from brushwork.studio.engines import get_engine
from brushwork.studio.jobs import Worker, public_record
from brushwork.studio.library import StagedUpload, model_engine, resolve_image, resolve_model, stage_upload
from brushwork.studio.pairs import JudgeRatings, RatingsStore, next_pair, score
from brushwork.studio.store_postgres import open_store

log = logging.getLogger("brushwork.studio")


@dataclass
class Upload:
    role: str  # "content" or "style"
    filename: str | None
    data: bytes


class Studio:
    def __init__(self, config: StudioConfig):
        self.config = config
        self.store = open_store(config)
        self.ratings = self._ratings()
        self.queue = None
        if config.queue_url:
            from brushwork.studio.redis_queue import RedisQueue

            self.queue = RedisQueue(config.queue_url)
        self._threads: list[threading.Thread] = []
        self._workers: list[Worker] = []
        self._stop = threading.Event()

    def _ratings(self) -> RatingsStore:
        """The judge's store (DATA/ratings.db), keyed by the studio's image ids."""
        return JudgeRatings(self.config.data_dir / "ratings.db", self.image_file)

    def image_file(self, image_id: str) -> Path:
        """The output file of a finished image ``<job id>:<n>``."""
        job_id, _, n = image_id.partition(":")
        job = self.store.get(job_id)
        if job is None or job.status != "done" or job.trashed or not n.isdigit() or int(n) >= len(job.outputs):
            raise BrushworkError(f"no finished image {image_id[:80]!r} in the gallery")
        return self.config.outputs / job.outputs[int(n)]

    # -- background work -------------------------------------------------------------------------

    def start_background(self, in_process_worker: bool) -> None:
        """An in-process worker (a one-command studio), and with Redis the dispatcher that (re)enqueues
        jobs Redis does not hold: submitted while it was down, or whose worker died."""
        if in_process_worker:
            worker = Worker(self.store)
            self._workers.append(worker)
            self._threads.append(worker.start_thread())
        if self.queue is not None:
            thread = threading.Thread(target=self._dispatch_loop, daemon=True, name="brushwork-dispatch")
            thread.start()
            self._threads.append(thread)

    def stop_background(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _dispatch_loop(self) -> None:
        interval = max(1.0, self.config.lease_seconds / 3)
        while not self._stop.wait(interval):
            try:
                self.dispatch(self.store.needing_dispatch(older_than=self.config.lease_seconds * 2))
            except Exception as exc:  # noqa: BLE001 - Redis may be down for a while; jobs wait in SQLite
                log.warning("could not hand jobs to %s: %s", redact(self.config.queue_url), exc)

    def dispatch(self, job_ids: list[str]) -> None:
        if self.queue is not None and job_ids:
            self.queue.enqueue(job_ids)
            self.store.mark_enqueued(job_ids)

    # -- jobs --------------------------------------------------------------------------------------

    def submit(self, engine_name: str, params_text: str | None, uploads: list[Upload],
               content_ref: str | None = None, style_refs: list[str] | None = None,
               model: str | None = None) -> str:  # fmt: skip
        """Check everything, store the uploads under their hashes, queue the job; return its id.
        On any refusal nothing is stored."""
        limits = self.config.limits
        engine = get_engine(engine_name)
        params_text = params_text or "{}"
        if len(params_text.encode()) > limits.params_bytes:
            raise BrushworkError(f"params JSON is larger than {limits.params_bytes} bytes")
        try:
            params = json.loads(params_text)
        except (ValueError, RecursionError):
            raise BrushworkError("params is not valid JSON") from None
        style_refs = list(style_refs or [])
        contents = [u for u in uploads if u.role == "content"]
        styles = [u for u in uploads if u.role == "style"]
        if len(contents) + bool(content_ref) > 1:
            raise BrushworkError("give one content image (an upload or content_ref)")
        if len(uploads) + len(style_refs) > limits.files_per_job:
            raise BrushworkError(f"at most {limits.files_per_job} images per job")
        has_content = bool(contents or content_ref)
        n_styles = len(styles) + len(style_refs)
        params = engine.check(params, n_styles, has_content, bool(model), limits)
        clip = engine.content_kind == "video"
        if content_ref:
            resolve_image(self.config, content_ref, video=clip)
        for ref in style_refs:
            resolve_image(self.config, ref)
        if model and clip:  # a fast model carries its style; an AdaIN model needs style images
            kind = model_engine(self.config, model, engine.name)
            if (kind == "adain") != (n_styles > 0):
                raise BrushworkError(f"{engine.name}: an adain model needs style images; a fast model takes none "
                                     f"(model {model!r} is {kind})")  # fmt: skip
        elif model:
            resolve_model(self.config, model, engine.name)

        staged: list[StagedUpload] = []
        try:
            for upload in uploads:
                is_clip = clip and upload.role == "content"
                staged.append(stage_upload(self.config, upload.data, upload.filename, is_clip))
            content_stage = [s for s, u in zip(staged, uploads, strict=True) if u.role == "content"]
            style_stage = [s for s, u in zip(staged, uploads, strict=True) if u.role == "style"]
            inputs = {"content": content_stage[0].ref if content_stage else content_ref,
                      "styles": [s.ref for s in style_stage] + style_refs, "model": model}  # fmt: skip
            if content_stage and content_stage[0].frames:
                inputs["frames"] = content_stage[0].frames
            labels = {"content": content_stage[0].label if content_stage else _ref_label(content_ref),
                      "styles": [s.label for s in style_stage] + [_ref_label(r) for r in style_refs],
                      "model": model}  # fmt: skip
            for stage in staged:
                stage.commit()
        except BaseException:
            for stage in staged:
                stage.discard()
            raise
        job_id = self.store.add(engine.name, params, inputs, labels)
        try:
            self.dispatch([job_id])
        except Exception as exc:  # noqa: BLE001 - the job is safe in SQLite; the dispatcher retries
            log.warning("job %s queued in SQLite only for now: %s", job_id, exc)
        return job_id

    # -- gallery and ratings -----------------------------------------------------------------------

    def delete(self, job_id: str):
        """Delete an ended job: gone from the queue and the gallery, its files moved to the data folder's
        trash/ (nothing is lost until the user empties it). Its registry entry stays: the work existed."""

        def move_files(job) -> None:
            moved: list[tuple[Path, Path]] = []
            try:
                for name in job.outputs:
                    for source in (self.config.outputs / name, (self.config.outputs / name).with_suffix(".poster.jpg")):
                        if source.exists():
                            target = self.config.trash / source.name
                            source.replace(target)
                            moved.append((source, target))
            except BaseException:
                for source, target in reversed(moved):  # the row stays as it was: so do the files
                    target.replace(source)
                raise

        return self.store.trash(job_id, move_files)

    def images(self, limit: int = 500, favourites_only: bool = False) -> list[dict]:
        """Every output of every finished job, newest first, with its rating."""
        tallies = self.ratings.tallies()
        items = []
        for job in self.store.list(("done",), limit=limit, favourites_only=favourites_only):
            public = job.public()
            for n in range(len(job.outputs)):
                image_id = f"{job.id}:{n}"
                tally = tallies.get(image_id)
                items.append(
                    {
                        "id": image_id,
                        "job": job.id,
                        "engine": job.engine,
                        "url": public["images"][n],
                        "media": public["media"][n],
                        "poster": public["posters"][n],
                        "labels": job.labels,
                        "caption": job.caption,
                        "params": job.params,
                        "inputs": job.inputs,
                        "created": job.created,
                        "finished": job.finished,
                        "record": public_record(job.record),
                        "rating": score(tally),
                        "ratings": sum(tally or (0, 0)),
                        "favourite": job.favourite,
                    }
                )
        return items

    def gallery(self, engine: str | None = None, style: str | None = None, since: str | None = None,
                until: str | None = None, min_rating: float | None = None,
                favourites_only: bool = False) -> list[dict]:  # fmt: skip
        since_t, until_t = _timestamp(since), _timestamp(until)
        found = []
        for item in self.images(favourites_only=favourites_only):
            names = [*(item["labels"].get("styles") or []), *(item["inputs"].get("styles") or [])]
            if engine and item["engine"] != engine:
                continue
            if style and not any(style.lower() in str(n).lower() for n in names):
                continue
            if since_t and item["created"] < since_t or until_t and item["created"] > until_t:
                continue
            if min_rating is not None and (item["rating"] is None or item["rating"] < min_rating):
                continue
            found.append(item)
        return found

    def rate(self, winner: str, loser: str, rater: str = "studio") -> None:
        for image_id in (winner, loser):
            if self.image_file(image_id).suffix == ".mp4":  # a finished output of this studio, and a still
                raise BrushworkError(f"{image_id}: videos are not rated (the judge compares stills)")
        if winner == loser:
            raise BrushworkError("an image cannot be rated against itself")
        self.ratings.add(winner, loser, rater.strip()[:64] or "studio")

    def pair(self) -> list[dict] | None:
        items = {item["id"]: item for item in self.images(limit=200) if item["media"] == "image"}
        pair = next_pair(list(items), self.ratings)
        return [items[pair[0]], items[pair[1]]] if pair else None


def _ref_label(ref: str | None) -> str | None:
    return ref.split(":", 1)[1] if ref else None


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BrushworkError(f"date {text[:40]!r}: use ISO format, e.g. 2026-11-26 or 2026-11-26T09:30") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
