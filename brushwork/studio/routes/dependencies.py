"""What the routers share: the :class:`Studio` (from the app's state, as a dependency), and the checks
that turn a path's id into a job or a sweep, or a refusal."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, HTTPException, Request, UploadFile

from brushwork.studio.jobs import Job
from brushwork.studio.service import Studio, Upload

JOB_ID = re.compile(r"[0-9a-f]{32}")


async def studio_of(request: Request) -> Studio:
    """The app's one :class:`Studio` (``create_app`` puts it in ``app.state``). Async: it only reads an
    attribute, so it needs no worker thread."""
    return request.app.state.studio


StudioDep = Annotated[Studio, Depends(studio_of)]


def job_or_404(studio: Studio, job_id: str) -> Job:
    job = studio.store.get(job_id) if JOB_ID.fullmatch(job_id) else None
    if job is None:
        raise HTTPException(404, f"no job {job_id[:40]!r}")
    return job


def sweep_or_404(studio: Studio, sweep_id: str) -> dict:
    found = studio.sweep(sweep_id) if JOB_ID.fullmatch(sweep_id) else None
    if found is None:
        raise HTTPException(404, f"no sweep {sweep_id[:40]!r}")
    return found


def read_upload(studio: Studio, upload: UploadFile, what: str) -> bytes:
    """An uploaded file's bytes, or 413 past the studio's upload limit (read no further than that)."""
    limit = studio.config.limits.upload_bytes
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{what} file larger than the upload limit")
    return data


def read_uploads(studio: Studio, content: UploadFile | list[UploadFile] | None, style: list[UploadFile] | None,
                 mask: list[UploadFile] | None) -> list[Upload]:  # fmt: skip
    """A job's uploads by role, without the empty file fields a browser form sends. ``content`` is a list
    for a job that takes several photos (a trainer's)."""
    contents = content if isinstance(content, list) else [content] if content else []
    uploads = []
    for role, files in (("content", contents), ("style", style or []), ("mask", mask or [])):
        for upload in files:
            data = read_upload(studio, upload, role)
            if not data and not upload.filename:
                continue  # an empty file field of a browser form
            uploads.append(Upload(role, upload.filename, data))
    return uploads
