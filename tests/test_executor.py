"""hwgen.executor: the process pool runs jobs in worker processes and keeps their order; a
job's exception reaches the caller; Ray (slow set, with the [scale] extra) does the same on a
local cluster."""

import os

import pytest

from hwgen.executor import run_all


def square_and_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def fails_on_three(n: int) -> int:
    if n == 3:
        raise ValueError("three")
    return n


def test_the_pool_runs_in_workers_and_keeps_the_order():
    results = run_all(square_and_pid, range(8), jobs=2)
    assert [r[0] for r in results] == [n * n for n in range(8)]
    pids = {r[1] for r in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_one_job_runs_here():
    assert run_all(square_and_pid, [5], jobs=4) == [(25, os.getpid())]
    assert run_all(square_and_pid, [1, 2], jobs=1) == [(1, os.getpid()), (4, os.getpid())]


def test_a_jobs_exception_reaches_the_caller():
    with pytest.raises(ValueError, match="three"):
        run_all(fails_on_three, range(5), jobs=2)


@pytest.mark.slow
def test_ray_on_a_local_cluster():
    pytest.importorskip("ray", reason="the [scale] extra is not installed")
    results = run_all(square_and_pid, range(6), ray="local")
    assert [r[0] for r in results] == [n * n for n in range(6)]
    assert os.getpid() not in {r[1] for r in results}
