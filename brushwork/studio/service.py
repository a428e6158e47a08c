"""What the web app does, without the web: submit (check, store inputs, queue), gallery, ratings.

The FastAPI routers (``routes/``) only turn HTTP into calls to :class:`Studio` and back.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from brushwork import api
from brushwork.errors import BrushworkError
from brushwork.studio.config import StudioConfig, redact
from brushwork.studio.engines import ENGINES, get_engine
from brushwork.studio.jobs import FINAL, Worker, public_record
from brushwork.studio.library import (
    StagedUpload,
    check_new_model_name,
    model_engine,
    resolve_image,
    resolve_model,
    stage_upload,
)
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
               content_ref: str | list[str] | None = None, style_refs: list[str] | None = None,
               model: str | None = None) -> str:  # fmt: skip
        """Check everything, store the uploads under their hashes, queue the job; return its id.
        On any refusal nothing is stored."""
        params = self._json(params_text, "params")
        return self._submit_variants(engine_name, [params], [None], uploads, content_ref, style_refs, model)[0]

    def submit_sweep(self, engine_name: str, params_text: str | None, sweep_text: str, uploads: list[Upload],
                     content_ref: str | None = None, style_refs: list[str] | None = None,
                     model: str | None = None) -> dict:  # fmt: skip
        """A batch, or an X/Y plot: one job per value of the swept settings (one or two) and per seed of
        the batch, all checked before any is queued. ``sweep_text``: JSON ``{"x": {"name": …, "values":
        […]}, "y": {…}, "batch": n}``, every part optional. Returns the sweep's id and its cells."""
        params = self._json(params_text, "params")
        plan = plan_sweep(get_engine(engine_name), params, self._json(sweep_text, "sweep"))
        sweep_id = uuid.uuid4().hex
        variants = [{**params, **cell["set"]} for cell in plan]
        labels = [{"id": sweep_id, **{k: v for k, v in cell.items() if k != "set"}} for cell in plan]
        jobs = self._submit_variants(engine_name, variants, labels, uploads, content_ref, style_refs, model)
        return {"id": sweep_id, "url": f"/api/sweeps/{sweep_id}", "jobs": jobs}

    def sweep(self, sweep_id: str) -> dict | None:
        """A sweep's cells (each a job with its x, y and seed), in the order they were queued."""
        jobs = self.store.jobs_of_sweep(sweep_id)
        if not jobs:
            return None
        cells = [{**{k: v for k, v in j.labels["sweep"].items() if k != "id"}, "job": j.public()} for j in jobs]
        return {"id": sweep_id, "engine": jobs[0].engine, "caption": jobs[0].caption, "cells": cells,
                "done": sum(j.status in FINAL for j in jobs), "total": len(jobs)}  # fmt: skip

    def _json(self, text: str | None, what: str):
        text = text or "{}"
        if len(text.encode()) > self.config.limits.params_bytes:
            raise BrushworkError(f"{what} JSON is larger than {self.config.limits.params_bytes} bytes")
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            raise BrushworkError(f"{what} is not valid JSON") from None

    def _submit_variants(self, engine_name: str, variants: list, sweeps: list[dict | None],
                         uploads: list[Upload], content_ref: str | list[str] | None, style_refs: list[str] | None,
                         model: str | None) -> list[str]:  # fmt: skip
        """Jobs of one engine and inputs, one per params in ``variants``: every one checked, then the
        uploads stored once, then all queued."""
        limits = self.config.limits
        engine = get_engine(engine_name)
        style_refs = list(style_refs or [])
        content_refs = [content_ref] if isinstance(content_ref, str) else list(content_ref or [])
        contents = [u for u in uploads if u.role == "content"]
        styles = [u for u in uploads if u.role == "style"]
        masks = [u for u in uploads if u.role == "mask"]
        if len(contents) + len(content_refs) > engine.contents:
            raise BrushworkError("give one content image (an upload or content_ref)" if engine.contents == 1
                                 else f"{engine.name}: at most {engine.contents} content images")  # fmt: skip
        if len(uploads) + len(style_refs) > limits.files_per_job:
            raise BrushworkError(f"at most {limits.files_per_job} images per job")
        has_content = bool(contents or content_refs)
        n_styles = len(styles) + len(style_refs)
        variants = [engine.check(params, n_styles, has_content, bool(model), limits) for params in variants]
        if engine.makes_model and len(variants) > 1:
            raise BrushworkError(f"{engine.name}: a training job makes one model under one name; no batch or X/Y plot")
        if masks and not engine.takes_masks:
            raise BrushworkError(f"{engine.name}: takes no style masks")
        if masks:
            api.check_mask_count(len(masks), n_styles)
        clip = engine.content_kind == "video"
        for ref in content_refs:
            resolve_image(self.config, ref, video=clip)
        for ref in style_refs:
            resolve_image(self.config, ref)
        if model and clip:  # a fast model carries its style; an AdaIN model needs style images
            kind = model_engine(self.config, model, engine.name)
            if (kind == "adain") != (n_styles > 0):
                raise BrushworkError(f"{engine.name}: an adain model needs style images; a fast model takes none "
                                     f"(model {model!r} is {kind})")  # fmt: skip
        elif engine.makes_model:
            self._check_new_model(model)
        elif model:
            resolve_model(self.config, model, engine.name)

        staged: list[StagedUpload] = []
        try:
            for upload in uploads:
                is_clip = clip and upload.role == "content"
                staged.append(stage_upload(self.config, upload.data, upload.filename, is_clip))
            content_stage = [s for s, u in zip(staged, uploads, strict=True) if u.role == "content"]
            style_stage = [s for s, u in zip(staged, uploads, strict=True) if u.role == "style"]
            all_contents = [s.ref for s in content_stage] + content_refs
            inputs = {"content": all_contents[0] if all_contents else None,
                      "styles": [s.ref for s in style_stage] + style_refs, "model": model}  # fmt: skip
            if engine.contents > 1:  # a trainer's photos; the first is also the one it paints to show
                inputs["contents"] = all_contents
            if masks:
                inputs["masks"] = [s.ref for s, u in zip(staged, uploads, strict=True) if u.role == "mask"]
            if content_stage and content_stage[0].frames:
                inputs["frames"] = content_stage[0].frames
            content_labels = [s.label for s in content_stage] + [_ref_label(r) for r in content_refs]
            shown = content_labels[0] if content_labels else None
            if len(content_labels) > 1:
                shown = f"{shown} + {len(content_labels) - 1} more"
            labels = {"content": shown,
                      "styles": [s.label for s in style_stage] + [_ref_label(r) for r in style_refs],
                      "model": model}  # fmt: skip
            for stage in staged:
                stage.commit()
        except BaseException:
            for stage in staged:
                stage.discard()
            raise
        job_ids = [self.store.add(engine.name, params, inputs, {**labels, **({"sweep": sweep} if sweep else {})})
                   for params, sweep in zip(variants, sweeps, strict=True)]  # fmt: skip
        try:
            self.dispatch(job_ids)
        except Exception as exc:  # noqa: BLE001 - the jobs are safe in the store; the dispatcher retries
            log.warning("jobs %s queued in the store only for now: %s", ", ".join(job_ids), exc)
        return job_ids

    def _check_new_model(self, name: str | None) -> None:
        """A training job's model name: free in the studio, and not the name another training job that has
        not ended will give its model."""
        name = check_new_model_name(self.config.models, name)
        trainers = {n for n, e in ENGINES.items() if e.makes_model}
        for job in self.store.list(("queued", "running"), limit=5000):
            if job.engine in trainers and job.inputs.get("model") == name:
                raise BrushworkError(f"a training job that has not ended ({job.id}) will name its model {name!r}; "
                                     "choose another name")  # fmt: skip

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


#: The most jobs one sweep or batch may queue, and the most values one axis may take.
MAX_SWEEP_JOBS = 64
MAX_AXIS_VALUES = 16
MAX_BATCH = 16


def plan_sweep(engine, params: dict, spec) -> list[dict]:
    """The cells of a sweep: for each, the settings it changes (``set``) and its ``x``/``y`` as
    [name, value] and ``seed``. A batch of n takes seeds seed, seed+1, … (a random first seed when none
    is given): the same settings, n different pictures."""
    if not isinstance(spec, dict) or set(spec) - {"x", "y", "batch"}:
        raise BrushworkError('sweep must be a JSON object with "x", "y" and/or "batch"')
    names = {c.name for c in engine.controls()}
    axes = []
    for key in ("x", "y"):
        axis = spec.get(key)
        if axis is None:
            continue
        if not isinstance(axis, dict) or not isinstance(axis.get("values"), list) or not axis.get("name"):
            raise BrushworkError(f'sweep {key}: expected {{"name": a setting, "values": [...]}}')
        if axis["name"] not in names:
            raise BrushworkError(f"sweep {key}: {engine.name} has no setting {str(axis['name'])[:60]!r}")
        if not 1 <= len(axis["values"]) <= MAX_AXIS_VALUES:
            raise BrushworkError(f"sweep {key}: give 1 to {MAX_AXIS_VALUES} values")
        axes.append((key, axis["name"], axis["values"]))
    if len({name for _, name, _ in axes}) < len(axes):
        raise BrushworkError("sweep: x and y must be different settings")
    if spec.get("batch", 1) != 1 and any(name == "seed" for _, name, _ in axes):
        raise BrushworkError("sweep: a batch chooses the seeds; sweep the seed or make a batch, not both")
    batch = spec.get("batch", 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        raise BrushworkError(f"sweep batch: a whole number from 1 to {MAX_BATCH}")
    if batch > 1 and "seed" not in names:
        raise BrushworkError(f"{engine.name} has no seed: a batch would paint the same picture {batch} times")
    sizes = [len(values) for _, _, values in axes]
    total = batch * (sizes[0] if sizes else 1) * (sizes[1] if len(sizes) > 1 else 1)
    if total > MAX_SWEEP_JOBS:
        raise BrushworkError(f"sweep: {total} jobs; at most {MAX_SWEEP_JOBS} at once")
    first_seed = params.get("seed")
    if batch > 1 and not isinstance(first_seed, int):
        first_seed = random.randrange(2**31 - MAX_BATCH)
    cells = []
    for values in itertools.product(*[values for _, _, values in axes], range(batch)):
        *chosen, n = values
        cell: dict = {"set": {name: value for (_, name, _), value in zip(axes, chosen, strict=True)}}
        for (key, name, _), value in zip(axes, chosen, strict=True):
            cell[key] = [name, value]
        if batch > 1:
            cell["set"]["seed"] = cell["seed"] = first_seed + n
        cells.append(cell)
    return cells


def sweep_grid(sweep: dict) -> dict:
    """A sweep laid out as the X/Y plot shows it: the x values across, the y values down, each cell's
    jobs (several with a batch) in seed order."""

    def axis(key: str) -> tuple[str | None, list]:
        values: list = []
        for cell in sweep["cells"]:
            if key in cell and cell[key][1] not in values:
                values.append(cell[key][1])
        name = next((cell[key][0] for cell in sweep["cells"] if key in cell), None)
        return name, values or [None]

    (x_name, xs), (y_name, ys) = axis("x"), axis("y")
    rows = [[[c["job"] | {"seed_used": c.get("seed")} for c in sweep["cells"]
              if (c.get("x") or [None, None])[1] == x and (c.get("y") or [None, None])[1] == y]
             for x in xs] for y in ys]  # fmt: skip
    return {**sweep, "x_name": x_name, "xs": xs, "y_name": y_name, "ys": ys, "rows": rows}


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
