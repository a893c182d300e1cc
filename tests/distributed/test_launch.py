"""Worker groups: results in rank order, errors from every rank, deadlines, and no process left behind."""

from __future__ import annotations

import operator
import os
import sys
import time

import pytest
import torch
import torch.distributed as dist

from attnkit.distributed.demo import attention_on_shards, rank_info
from attnkit.distributed.launch import WorkerError, WorkerGroup, spawn


def test_results_come_back_in_rank_order(group4) -> None:
    info = group4.run(rank_info)
    assert [i["rank"] for i in info] == [0, 1, 2, 3]
    assert {i["world_size"] for i in info} == {4} and {i["backend"] for i in info} == {"gloo"}
    assert len({i["pid"] for i in info}) == 4 and os.getpid() not in {i["pid"] for i in info}
    assert not dist.is_initialized()  # the test process itself never joins a group


def test_an_error_on_every_rank_is_collected_and_the_group_survives(group2) -> None:
    with pytest.raises(WorkerError, match="failed on 2 of 2 ranks") as info:
        group2.run(operator.truediv, 1, 0)
    assert set(info.value.errors) == {0, 1}
    assert all(kind == "ZeroDivisionError" for kind, _, _ in info.value.errors.values())
    assert [i["rank"] for i in group2.run(rank_info)] == [0, 1]


def test_a_task_past_its_deadline_stops_the_group() -> None:
    group = WorkerGroup(2, timeout=20)
    with pytest.raises(TimeoutError, match="did not finish within"):
        group.run(time.sleep, 30, timeout=0.5)
    assert group.alive == [False, False]
    with pytest.raises(RuntimeError, match="closed"):
        group.run(rank_info)


def test_a_worker_that_dies_is_reported_and_the_rest_are_stopped() -> None:
    with WorkerGroup(2, timeout=20) as group, pytest.raises(WorkerError, match="ProcessDied"):
        group.run(os._exit, 3)
    assert group.alive == [False, False]


def test_leaving_the_with_block_by_an_exception_stops_every_worker() -> None:
    with pytest.raises(KeyError), WorkerGroup(2, timeout=20) as group:
        pids = group.pids
        raise KeyError("boom")
    assert group.alive == [False, False]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_rank_that_never_arrives_gives_a_timeout_error_not_a_hang() -> None:
    # rank 1 skips the call; rank 0 waits in the shape check until the process group's timeout
    q = torch.zeros(1, 1, 4, 2)
    t0 = time.monotonic()
    with WorkerGroup(2, timeout=2) as group, pytest.raises(WorkerError) as info:
        group.run(attention_on_shards, [{"q": q, "k": q, "v": q}, None], timeout=30)
    assert time.monotonic() - t0 < 25
    assert list(info.value.errors) == [0]
    assert info.value.errors[0][0] in ("RuntimeError", "DistBackendError", "DistError")


def test_spawn_runs_once_and_cleans_up() -> None:
    assert [i["rank"] for i in spawn(rank_info, 2, timeout=20)] == [0, 1]


def test_functions_the_workers_cannot_import_are_refused(group2, monkeypatch) -> None:
    with pytest.raises(TypeError, match="must pickle"):
        group2.run(lambda: 1)

    def cell_function():
        return 1

    cell_function.__module__ = "__main__"
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)
    with pytest.raises(ValueError, match="notebook or console"):
        group2.run(cell_function)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="world_size must be a positive int"):
        WorkerGroup(0)
    with pytest.raises(ValueError, match="timeout must be a finite positive number"):
        WorkerGroup(2, timeout=-1)


def test_the_demo_command_line_reports_float64_errors_below_1e_10(capsys) -> None:
    from attnkit.distributed.demo import main

    assert main(["--world-size", "2", "--seq-len", "16", "--heads", "2", "--dim", "4"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.split()[:1] in (["ring"], ["ulysses"])]
    assert len(rows) == 8  # two variants x two layouts x causal or not
    for row in rows:
        assert all(float(e) < 1e-10 for e in row[3:7]), row
