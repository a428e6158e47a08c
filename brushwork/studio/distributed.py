"""Scale-out on an existing queue: RQ on Redis carries job ids to workers on any machine.

SQLite stays the record of every job (workers share the data folder); Redis only says "job X is
ready". An RQ task claims its job through the same lease as a local worker, so a job handed out
twice (the dispatcher re-sends jobs Redis may have lost) still runs once at a time, and a job whose
worker died is re-sent once its lease expires.
"""

from __future__ import annotations

import logging
import time

from brushwork.errors import BrushworkError

QUEUE_NAME = "brushwork"
log = logging.getLogger("brushwork.studio")

#: Set by ``brushwork worker --queue``: the worker's own data folder and device (it may mount the
#: shared folder at another path than the server).
_WORKER: dict = {}


class RedisQueue:
    def __init__(self, url: str):
        from redis import Redis
        from rq import Queue

        self.url = url
        self.connection = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        self.queue = Queue(QUEUE_NAME, connection=self.connection)

    def enqueue(self, job_ids: list[str]) -> None:
        waiting = set(self.queue.get_job_ids())
        for job_id in job_ids:
            key = f"brushwork-{job_id}"
            if key in waiting:  # still in the queue: sending it again would only wake a worker for nothing
                continue
            # No RQ timeout (a print-size run takes hours) and no stored result: the job store holds it.
            self.queue.enqueue(run_queued_job, job_id, job_timeout=-1, result_ttl=0, failure_ttl=86400,
                               job_id=key, description=f"brushwork job {job_id}")  # fmt: skip


def run_queued_job(job_id: str) -> str | None:
    """The RQ task: claim and run one job in this worker's data store (None if another has it)."""
    from brushwork.studio.jobs import Worker

    if _WORKER.get("remote") is not None:  # a worker on another host: through the studio's worker API
        return _WORKER["remote"].run_once(job_id)
    if _WORKER.get("store") is None:
        raise BrushworkError("run_queued_job runs inside 'brushwork worker --queue …'")
    return Worker(_WORKER["store"], device=_WORKER.get("device")).run_once(job_id)


def work(url: str, store, device: str | None = None, burst: bool = False, remote=None) -> None:
    """Serve RQ jobs until stopped. A SimpleWorker runs them in this process, so the feature network
    loaded for one job serves the next (RQ's forking worker would reload it for every job). ``remote``:
    a :class:`~brushwork.studio.remote.RemoteWorker` that runs them through the studio's worker API."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisDown
    from redis.exceptions import TimeoutError as RedisSlow
    from rq import Queue, SimpleWorker

    _WORKER.update(store=store, device=device, remote=remote)
    connection = Redis.from_url(url, socket_connect_timeout=5)
    try:
        connection.ping()
    except Exception as exc:  # noqa: BLE001 - any connection failure is one clear message
        raise BrushworkError(f"cannot reach the queue at {url}: {exc}") from None
    while True:
        worker = SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection)
        try:
            worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
            return
        except (RedisDown, RedisSlow) as exc:  # a cut link: the jobs wait in the store; come back when it heals
            log.warning("lost the queue at %s (%s); reconnecting", url.split("@")[-1], type(exc).__name__)
            time.sleep(2)
