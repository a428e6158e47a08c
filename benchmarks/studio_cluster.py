"""The studio on three hosts, on one machine: Linux network namespaces joined by veth pairs.

One namespace holds the server with Redis (the queue) and PostgreSQL (the job store); two hold a
``brushwork worker --server … --queue …`` each, sharing nothing with the server but the network.
Addresses are 10.77.0.0/24, made only on those veths (a bridge in the server's namespace joins them),
so no traffic leaves the namespaces. Needs root and iproute2; the test (tests/test_studio_cluster.py)
drives the same code.

    sudo .venv/bin/python benchmarks/studio_cluster.py            # jobs/s with 1 and 2 workers
    sudo .venv/bin/python benchmarks/studio_cluster.py --faults   # 50 jobs with kill -9, cut link, restart
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBNET = "10.77.0"
SERVER_IP = f"{SUBNET}.1"
PORT = 8765
#: The jobs: the bundled fast model on a small picture (the point is the plumbing, not the painting).
JOB_FORM = {"engine": "fast", "model": "starry_night-fast", "content_ref": "example:tubingen.jpg",
            "params": json.dumps({"image_size": 64})}  # fmt: skip


def can_make_namespaces() -> str | None:
    """None if this machine can run the cluster, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "redis-server", "initdb", "pg_ctl", "runuser"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    name = f"bwprobe{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace: {probe.stderr.decode().strip()[:200]}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


class Cluster:
    """Three hosts as network namespaces, with the studio's services; :meth:`close` removes everything
    it made (call it in a ``finally`` or a fixture's finaliser)."""

    def __init__(self, workdir: Path, workers: int = 2, lease: float = 5.0):
        self.dir = Path(workdir)
        self.tag = f"bw{os.getpid() % 100000}"
        self.server_ns = f"{self.tag}-s"
        self.worker_ns = [f"{self.tag}-w{n + 1}" for n in range(workers)]
        self.lease = lease
        self.made_ns: list[str] = []
        self.procs: dict[str, subprocess.Popen] = {}
        self.pg_dir: Path | None = None
        self.pg_started = False
        self.worker_token = secrets.token_urlsafe(24)
        self.browser_token = secrets.token_urlsafe(24)
        self.redis_password = secrets.token_urlsafe(16)
        self.pg_password = secrets.token_urlsafe(16)
        self.data = self.dir / "server-data"
        self.logs = self.dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- hosts -------------------------------------------------------------------------------------

    def make_hosts(self) -> None:
        s = self.server_ns
        for ns in (s, *self.worker_ns):
            _run("ip", "netns", "add", ns)
            self.made_ns.append(ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", s, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", s, "addr", "add", f"{SERVER_IP}/24", "dev", "br0")
        _run("ip", "-n", s, "link", "set", "br0", "up")
        for n, ns in enumerate(self.worker_ns):
            # One veth pair per worker, made inside the server's namespace, one end moved to the worker's.
            here, there = f"vs{n + 1}", f"vw{n + 1}"
            _run("ip", "-n", s, "link", "add", here, "type", "veth", "peer", "name", there)
            _run("ip", "-n", s, "link", "set", there, "netns", ns)
            _run("ip", "-n", s, "link", "set", here, "master", "br0")
            _run("ip", "-n", s, "link", "set", here, "up")
            _run("ip", "-n", ns, "addr", "add", f"{SUBNET}.{n + 2}/24", "dev", there)
            _run("ip", "-n", ns, "link", "set", there, "up")

    def cut(self, worker: int, down: bool) -> None:
        """Take worker ``worker``'s link down (or up again)."""
        _run("ip", "-n", self.worker_ns[worker], "link", "set", f"vw{worker + 1}", "down" if down else "up")

    # -- services ----------------------------------------------------------------------------------

    def _start(self, name: str, ns: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)  # fmt: skip
        log.close()
        self.procs[name] = proc
        return proc

    @property
    def store_url(self) -> str:
        return f"postgresql://brushwork:{self.pg_password}@{SERVER_IP}:5432/postgres"

    @property
    def queue_url(self) -> str:
        return f"redis://:{self.redis_password}@{SERVER_IP}:6379/0"

    def start_store_and_queue(self) -> None:
        # PostgreSQL refuses to run as root: a cluster of the postgres user in a folder of its own.
        self.pg_dir = Path(tempfile.mkdtemp(prefix="bwpg-"))
        self.pg_dir.chmod(0o755)
        shutil.chown(self.pg_dir, "postgres", "postgres")
        pwfile = self.pg_dir / "pw"
        pwfile.write_text(self.pg_password)
        shutil.chown(pwfile, "postgres", "postgres")
        pgdata = self.pg_dir / "data"
        as_pg = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*as_pg, "initdb", "-D", str(pgdata), "-U", "brushwork", "--auth=scram-sha-256",
                        f"--pwfile={pwfile}"], check=True, capture_output=True, timeout=120)  # fmt: skip
        pwfile.unlink()
        with open(pgdata / "pg_hba.conf", "a") as fh:
            fh.write(f"host all brushwork {SUBNET}.0/24 scram-sha-256\n")
        options = f"-c listen_addresses={SERVER_IP} -c port=5432 -c unix_socket_directories={self.pg_dir}"
        subprocess.run(["ip", "netns", "exec", self.server_ns, *as_pg, "pg_ctl", "-D", str(pgdata), "-w", "-t", "60",
                        "-l", str(self.pg_dir / "pg.log"), "-o", options, "start"],
                       check=True, capture_output=True, timeout=90)  # fmt: skip
        self.pg_started = True
        self._start("redis", self.server_ns, ["redis-server", "--bind", SERVER_IP, "--port", "6379", "--save", "",
                                              "--appendonly", "no", "--requirepass", self.redis_password,
                                              "--dir", str(self.dir)])  # fmt: skip

    def _env(self) -> dict:
        # Registry and keys in the run's own folders; nothing looks for the network.
        return {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "BRUSHWORK_WORKER_TOKEN": self.worker_token,
                "BRUSHWORK_TOKEN": self.browser_token, "XDG_DATA_HOME": str(self.dir / "server-home"),
                "BRUSHWORK_DATA_DIR": str(self.dir / "registry"), "BRUSHWORK_CONFIG_DIR": str(self.dir / "config"),
                "BRUSHWORK_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}  # fmt: skip

    def start_server(self) -> None:
        cmd = [sys.executable, "-m", "brushwork", "serve", "--host", SERVER_IP, "--port", str(PORT), "--no-worker",
               "--data", str(self.data), "--lease", str(self.lease), "--no-watermark"]  # fmt: skip
        env = {**self._env(), "BRUSHWORK_STORE": self.store_url, "BRUSHWORK_QUEUE": self.queue_url}
        self._start("server", self.server_ns, cmd, env)

    def stop_server(self) -> None:
        proc = self.procs.pop("server")
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    def worker_name(self, n: int) -> str:
        return f"worker{n + 1}@{SUBNET}.{n + 2}"

    def start_worker(self, n: int) -> subprocess.Popen:
        env = {**self._env(), "BRUSHWORK_TOKEN": "", "XDG_DATA_HOME": str(self.dir / f"worker{n + 1}-home"),
               "BRUSHWORK_QUEUE": self.queue_url}  # fmt: skip
        cmd = [sys.executable, "-m", "brushwork", "worker", "--server", f"http://{SERVER_IP}:{PORT}",
               "--device", "cpu", "--lease", str(self.lease), "--name", self.worker_name(n)]  # fmt: skip
        return self._start(f"worker{n + 1}", self.worker_ns[n], cmd, env)

    def kill_worker(self, n: int) -> None:
        proc = self.procs.pop(f"worker{n + 1}")
        proc.kill()  # kill -9
        proc.wait(10)

    # -- the client side (in the server's namespace: nothing listens outside the namespaces) ------

    def submit(self, count: int) -> list[str]:
        """Queue ``count`` jobs through the studio's REST API; waits for the server to answer."""
        script = (
            "import httpx, json, sys, time\n"
            f"c = httpx.Client(base_url='http://{SERVER_IP}:{PORT}', timeout=30, "
            "headers={'Authorization': 'Bearer ' + sys.stdin.readline().strip()})\n"
            "for _ in range(300):\n"
            "    try:\n        c.get('/api/engines').raise_for_status(); break\n"
            "    except httpx.TransportError:\n        time.sleep(0.2)\n"
            f"form = json.loads({json.dumps(json.dumps(JOB_FORM))})\n"
            f"print(json.dumps([c.post('/api/jobs', data=form).raise_for_status().json()['id'] "
            f"for _ in range({count})]))\n"
        )
        out = subprocess.run(["ip", "netns", "exec", self.server_ns, sys.executable, "-c", script],
                             input=self.browser_token + "\n", capture_output=True, text=True, timeout=180,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)  # fmt: skip
        return json.loads(out.stdout)

    def jobs(self) -> list[dict]:
        """Every job's row, read through PostgreSQL's Unix socket (a file: no network needed)."""
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(host=str(self.pg_dir), user="brushwork", dbname="postgres", password=self.pg_password,
                             row_factory=dict_row) as db:  # fmt: skip
            return db.execute("SELECT j.id, j.status, j.attempts, j.worker, j.outputs, j.created, j.finished, "
                              "j.started, j.error, j.claim, p.claim AS published_by FROM jobs j "
                              "LEFT JOIN publications p ON p.job_id = j.id ORDER BY j.created").fetchall()  # fmt: skip

    def wait(self, check, timeout: float, what: str, poll: float = 0.2):
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            for name, proc in self.procs.items():
                if proc.poll() is not None and name != "redis":
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
            time.sleep(poll)

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        return "\n".join(text)

    def secrets_in_logs(self) -> list[str]:
        """Names of logs in which the worker token or a password shows up (there should be none). The
        browser's token is left out: ``serve`` prints the studio's address with it at start, by design."""
        found = []
        for path in self.logs.glob("*.log"):
            text = path.read_text(errors="replace")
            for secret in (self.worker_token, self.redis_password, self.pg_password):
                if secret in text:
                    found.append(path.name)
        return found

    # -- the end -----------------------------------------------------------------------------------

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.procs.clear()
        if self.pg_started and self.pg_dir is not None:
            subprocess.run(["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(self.pg_dir / "data"), "-m",
                            "immediate", "-w", "stop"], capture_output=True, timeout=60)  # fmt: skip
        if self.pg_dir is not None:
            shutil.rmtree(self.pg_dir, ignore_errors=True)
        for ns in self.made_ns:  # deleting a namespace deletes its veths and bridge
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.made_ns.clear()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start(workdir: Path, workers: int, lease: float = 5.0) -> Cluster:
    cluster = Cluster(workdir, workers=workers, lease=lease)
    try:
        cluster.make_hosts()
        cluster.start_store_and_queue()
        cluster.start_server()
        for n in range(workers):
            cluster.start_worker(n)
    except BaseException:
        cluster.close()
        raise
    return cluster


def summary(jobs: list[dict]) -> dict:
    done = [j for j in jobs if j["status"] == "done"]
    files = [name for j in done for name in json.loads(j["outputs"] or "[]")]
    workers = sorted({j["worker"] for j in done})
    return {"jobs": len(jobs), "done": len(done), "published": sum(j["published_by"] is not None for j in jobs),
            "output_files": len(files), "distinct_files": len(set(files)),
            "retried": sum(j["attempts"] > 1 for j in jobs),
            "by_worker": {w: sum(j["worker"] == w for j in done) for w in workers}}  # fmt: skip


def run_with_faults(cluster: Cluster, count: int = 50, log=print) -> tuple[list[dict], dict]:
    """``count`` jobs on two workers: kill -9 the first mid-job, cut the second's link for 10 s mid-job,
    restart the server; returns every job's row once all have ended, and the rows of the two jobs hit
    (as they were when hit)."""
    ids = cluster.submit(count)
    log(f"queued {len(ids)} jobs")

    def held_by(n: int, fresh: float | None = None):
        """Jobs worker ``n`` holds; with ``fresh``, only those it claimed less than ``fresh`` s ago (still
        fetching or painting: a result already sent is published by the server whatever happens next)."""
        now = time.time()
        return [j for j in cluster.jobs() if j["status"] == "running" and j["worker"] == cluster.worker_name(n)
                and (fresh is None or now - j["started"] < fresh)]  # fmt: skip

    cluster.wait(lambda: sum(j["status"] == "done" for j in cluster.jobs()) >= 4, 240, "the first jobs")
    victim = cluster.wait(lambda: held_by(0, fresh=0.3), 120, "worker 1 to claim a job", poll=0.02)[0]
    cluster.kill_worker(0)
    log(f"kill -9 worker 1 while it held job {victim['id'][:8]} (attempt {victim['attempts']})")
    cut = cluster.wait(lambda: held_by(1), 60, "worker 2 to hold a job", poll=0.02)[0]
    cluster.cut(1, down=True)
    log(f"link of worker 2 down while it held job {cut['id'][:8]}")
    time.sleep(10)
    cluster.cut(1, down=False)
    log("link of worker 2 up again")
    cluster.wait(lambda: sum(j["status"] == "done" for j in cluster.jobs()) >= 30, 480, "30 jobs")
    cluster.stop_server()
    log("server stopped")
    cluster.start_server()
    log("server started again")
    cluster.wait(lambda: all(j["status"] in ("done", "failed", "cancelled") for j in cluster.jobs()), 300,
                 "every job to end")  # fmt: skip
    return cluster.jobs(), {"killed": victim, "cut": cut}


def throughput(workdir: Path, workers: int, count: int) -> float:
    """Jobs per second through ``workers`` remote workers, once they are warm (models loaded)."""
    with start(workdir, workers) as cluster:
        warm = cluster.submit(2 * workers)
        cluster.wait(lambda: {j["id"] for j in cluster.jobs() if j["status"] == "done"} >= set(warm), 300, "warm-up")
        began = time.monotonic()
        ids = set(cluster.submit(count))
        cluster.wait(lambda: {j["id"] for j in cluster.jobs() if j["status"] == "done"} >= ids, 600, "the jobs")
        return count / (time.monotonic() - began)


def show(jobs: list[dict]) -> None:
    for j in jobs:
        print(f"  {j['id'][:8]}  {j['status']:<9} attempts {j['attempts']}  {j['worker']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", action="store_true", help="50 jobs through kill -9, a cut link and a restart")
    parser.add_argument("--jobs", type=int, default=30, help="jobs per throughput run (default 30)")
    args = parser.parse_args()
    why = can_make_namespaces()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bwcluster-") as tmp:
        if args.faults:
            with start(Path(tmp), 2) as cluster:
                began = time.monotonic()
                jobs, hit = run_with_faults(cluster)
                show(jobs)
                for what, job in hit.items():
                    now = next(j for j in jobs if j["id"] == job["id"])
                    print(
                        f"{what}: job {job['id'][:8]} -> {now['status']}, attempts {now['attempts']}, {now['worker']}"
                    )
                print(json.dumps(summary(jobs)), f"in {time.monotonic() - began:.0f} s")
                print("secrets in logs:", cluster.secrets_in_logs() or "none")
            return 0
        for workers in (1, 2):
            rate = throughput(Path(tmp) / f"w{workers}", workers, args.jobs)
            print(f"{workers} worker(s): {rate:.2f} jobs/s ({args.jobs} jobs, fast engine at 64 px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
