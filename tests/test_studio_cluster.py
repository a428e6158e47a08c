"""The studio on three hosts (network namespaces): 50 jobs through a kill -9, a cut link and a server
restart end 50/50 done, none lost, none published twice. Needs root and iproute2 (CI has both)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("rq")
pytest.importorskip("psycopg")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("studio_cluster", ROOT / "benchmarks" / "studio_cluster.py")
studio_cluster = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(studio_cluster)

WHY_NOT = studio_cluster.can_make_namespaces()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no three-host cluster here: {WHY_NOT}")


@pytest.fixture
def cluster(tmp_path):
    cluster = studio_cluster.start(tmp_path, workers=2)
    yield cluster
    cluster.close()  # namespaces, PostgreSQL, Redis and every process, also when the test failed


def test_fifty_jobs_survive_a_killed_worker_a_cut_link_and_a_server_restart(cluster, capsys):
    jobs, hit = studio_cluster.run_with_faults(cluster, count=50)
    with capsys.disabled():
        studio_cluster.show(jobs)
    result = studio_cluster.summary(jobs)
    table = json.dumps(result) + "\n" + cluster.log_tail("server")
    assert result["jobs"] == 50 and result["done"] == 50, table  # none lost, none failed
    assert result["published"] == 50, table  # one publication row each (a primary key: never two)
    assert result["output_files"] == result["distinct_files"] == 50, table
    published = {p.name for p in (cluster.data / "outputs").iterdir() if p.suffix == ".png"}
    assert published == {name for j in jobs for name in json.loads(j["outputs"])}, table  # no stray outputs
    assert set(result["by_worker"]) <= {cluster.worker_name(0), cluster.worker_name(1)}, table
    assert result["by_worker"].get(cluster.worker_name(1)), table  # the cut-off worker came back to work
    # The job the killed worker held ran again on the other worker, unless that attempt's result had
    # reached the server before the kill (then it was published once, by that attempt).
    killed = next(j for j in jobs if j["id"] == hit["killed"]["id"])
    if killed["published_by"] != hit["killed"]["claim"]:
        assert killed["attempts"] >= 2 and killed["worker"] == cluster.worker_name(1), killed
    assert cluster.secrets_in_logs() == []  # no token or password in any host's log
