"""CPU threads sized to the free cores (brushwork.threads, #21); speed figures: benchmarks/shared_cpu.py."""

from __future__ import annotations

import pytest

from brushwork import threads


@pytest.fixture
def auto(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("BRUSHWORK_THREADS", "auto")


def test_threads_are_the_cores_other_work_leaves_free(auto):
    assert threads.wanted_threads(cores=2, busy=0) == 2
    assert threads.wanted_threads(cores=2, busy=1) == 1
    assert threads.wanted_threads(cores=2, busy=7) == 1  # never none
    assert threads.wanted_threads(cores=8, busy=2.4) == 6


def test_a_users_setting_wins(monkeypatch):
    monkeypatch.setenv("BRUSHWORK_THREADS", "3")
    assert threads.wanted_threads(cores=2, busy=2) == 3
    monkeypatch.setenv("BRUSHWORK_THREADS", "auto")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.wanted_threads(cores=2, busy=0) is None  # left to torch, which reads it


def test_busy_elsewhere_reads_the_machines_runnable_tasks(auto, tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("3.50 2.00 1.00 6/300 12345\n")
    # 6 runnable on the machine, at least this thread among them: at most 5 elsewhere.
    assert 0 <= threads.busy_elsewhere(samples=1, loadavg_path=str(loadavg)) <= 5
    loadavg.write_text("garbage")
    assert threads.busy_elsewhere(samples=1, loadavg_path=str(loadavg)) == 0
    assert threads.usable_cores() >= 1


def test_fit_sets_torchs_threads(auto, monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "busy_elsewhere", lambda: 99.0)
        assert threads.fit() == 1 and torch.get_num_threads() == 1
        assert threads.refit() is None  # looked a moment ago: not again yet
    finally:
        torch.set_num_threads(before)
