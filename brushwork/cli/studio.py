"""brushwork serve | worker: the web studio and its job workers."""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys

from brushwork.errors import BrushworkError
from brushwork.studio.config import StudioConfig, default_data_dir, env_token

# The server and the workers (FastAPI, torch, Redis) load inside the verbs that run them, when they run.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="data folder: the job database, uploads and images (default: your user data folder)")
    # URLs may carry passwords: they can come from the environment, where ps does not show them.
    p.add_argument("--queue", default=os.environ.get("BRUSHWORK_QUEUE") or None,
                   help="redis://HOST:PORT/DB: hand jobs to workers on other machines through RQ "
                        "(default: $BRUSHWORK_QUEUE)")  # fmt: skip
    p.add_argument("--store", default=os.environ.get("BRUSHWORK_STORE") or None,
                   help="postgresql://USER@HOST/DB: the job store when the studio runs on several hosts "
                        "(default: $BRUSHWORK_STORE, else SQLite in the data folder)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (for jobs run here; default auto)")
    p.add_argument(
        "--lease", type=float, default=30.0, help="seconds before a silent worker's job re-runs (default 30)"
    )
    p.add_argument("--batch-size", type=int, default=None,
                   help="compatible feed-forward jobs (same model, settings and styles) run as one batch (default: 8 "
                        "on a GPU, 1 on the CPU, where batches measured slower; 1 = one at a time)")  # fmt: skip
    p.add_argument("--intermediate-seconds", type=float, default=15.0,
                   help="seconds between the intermediates an optimisation job keeps to resume from if its worker "
                        "dies (default 15; 0 = none: it re-runs from the start)")  # fmt: skip


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    p = sub.add_parser("serve", help="the web studio: queue, live previews, gallery, ratings (REST API at /docs)")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1; any other address needs a token")
    p.add_argument("--port", type=int, default=8765, help="default 8765 (ComfyUI has 8188, A1111 7860)")
    p.add_argument("--open", action="store_true", help="open the studio in the web browser")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a Host name the studio answers besides localhost, 127.0.0.1 and --host (repeatable; "
                        "others are refused, against DNS rebinding)")  # fmt: skip
    p.add_argument("--no-worker", action="store_true", help="run no jobs in the server (use 'brushwork worker')")
    p.add_argument(
        "--no-watermark",
        action="store_true",
        help="do not mark the pixels of outputs (still signed and registered; the record says so)",
    )
    _add_data_options(p)

    p = sub.add_parser("worker", help="run the studio's jobs (beside 'serve', or on other machines with --queue)")
    p.add_argument(
        "--server",
        help="http://HOST:PORT of the studio: a worker that shares nothing with it but the "
        "network (its token in BRUSHWORK_WORKER_TOKEN)",
    )
    p.add_argument("--name", help="how the studio shows this worker (default HOST:PID)")
    p.add_argument(
        "--burst",
        action="store_true",
        help="stop when no job is queued or in flight (a dead worker's job is taken once its lease expires)",
    )
    _add_data_options(p)
    return {"serve": _run_serve, "worker": _run_worker}


def _config(args: argparse.Namespace, token: str | None = None, worker_token: str | None = None, **access):
    return StudioConfig(data_dir=args.data or default_data_dir(), device=args.device, queue_url=args.queue,
                        lease_seconds=args.lease, token=token, store_url=args.store,
                        worker_token=worker_token,
                        intermediate_seconds=args.intermediate_seconds, batch_size=args.batch_size,
                        **access)  # fmt: skip


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run_serve(args: argparse.Namespace) -> int:
    from brushwork.studio.app import serve_app

    if not 0 < args.port < 65536:
        raise BrushworkError(f"--port must be 1-65535, not {args.port}")
    token = env_token()
    if not _is_loopback(args.host) and token is None:
        token = secrets.token_urlsafe(24)
        print(f"brushwork: listening beyond this machine; the token is {token}", file=sys.stderr)
        print("  (set BRUSHWORK_TOKEN to choose it; send it as 'Authorization: Bearer …' or open ?token=…)",
              file=sys.stderr)  # fmt: skip
    from brushwork.studio.remote import env_worker_token

    # On loopback a fresh token per run: any web page can reach 127.0.0.1, so what changes state needs
    # this token or to come from the studio's own page.
    session = token or secrets.token_urlsafe(24)
    allowed = [*args.allow_host, args.host]
    if args.host in ("0.0.0.0", "::"):  # every name this machine has; every request needs the token here
        allowed.append("*")
    # Workers on other hosts authenticate with their own token, from the environment only (never argv).
    config = _config(args, token, env_worker_token(), session_token=session, allowed_hosts=tuple(allowed))
    config.watermark = not args.no_watermark
    config.prepare()
    shown = "localhost" if _is_loopback(args.host) else f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{args.port}/?token={session}"
    print(f"brushwork studio: {url}  (data in {config.data_dir})", file=sys.stderr)
    if args.open:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, (url,)).start()
    serve_app(config, args.host, args.port, worker=not args.no_worker)
    return 0


def _run_worker(args: argparse.Namespace) -> int:
    import logging

    from brushwork.studio.jobs import JobStore, Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.server:
        # Request lines name claim tokens: the HTTP client's own log stays quiet.
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
        return _run_remote_worker(args)
    store = JobStore(_config(args).prepare())
    if args.queue:
        from brushwork.studio.redis_queue import work

        work(args.queue, store, device=args.device, burst=args.burst)
        return 0
    worker = Worker(store, device=args.device)
    return _until_stopped(worker.run_until_empty if args.burst else worker.run_forever)


def _until_stopped(run) -> int:
    """Run a worker's loop; Ctrl-C stops it with a word on what becomes of the job it held."""
    try:
        run()
    except KeyboardInterrupt:
        print("brushwork: worker stopped; an interrupted job re-runs when its lease expires", file=sys.stderr)
        return 130
    return 0


def _run_remote_worker(args: argparse.Namespace) -> int:
    """A worker on another host: jobs from the queue, inputs and results through the studio's worker API."""
    from brushwork.studio.remote import WORKER_TOKEN_ENV, RemoteWorker, env_worker_token

    token = env_worker_token()
    if token is None:
        raise BrushworkError(f"--server needs the worker token in {WORKER_TOKEN_ENV}")
    worker = RemoteWorker(args.server, token, device=args.device, lease=args.lease, name=args.name)

    def run() -> None:
        if args.queue:
            from brushwork.studio.redis_queue import work

            work(args.queue, None, device=args.device, burst=args.burst, remote=worker)
        elif args.burst:
            while worker.run_once() is not None:
                pass
        else:
            worker.run_forever()

    return _until_stopped(run)
