"""Running many independent jobs: a local process pool, or a Ray cluster.

One executor for everything hwgen runs many of: the builds of ``hwgen sweep``, the logic
model's calibration (``bench/calibrate.py``) and the reference-design benches. ``jobs``
workers on this machine by default; ``ray`` names a Ray cluster for when one machine is not
enough (``pip install hwgen[scale]``; docs/sweep.md): ``"local"``, a new one on this
machine; ``"auto"``, the running cluster this machine belongs to (``ray start``); else its
address, e.g. ``ray://head:10001``. A job is a picklable function and its argument; results
come back in the order of the arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor

__all__ = ["run_all", "default_jobs"]


def default_jobs() -> int:
    """Workers by default: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def run_all(fn: Callable, args: Iterable, *, jobs: int | None = None,
            ray: str | None = None) -> list:
    """``[fn(a) for a in args]``, run by ``jobs`` local worker processes (default
    :func:`default_jobs`; 1 runs here, in this process) or, with ``ray``, as Ray tasks on
    that cluster (each task one CPU). An exception in a job is raised here."""
    args = list(args)
    if ray is not None:
        return _run_ray(fn, args, ray)
    jobs = default_jobs() if jobs is None else jobs
    if jobs <= 1 or len(args) <= 1:
        return [fn(a) for a in args]
    with ProcessPoolExecutor(max_workers=min(jobs, len(args))) as pool:
        return list(pool.map(fn, args))


def _run_ray(fn: Callable, args: list, address: str) -> list:
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'hwgen[scale]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == "local" else address,
                 ignore_reinit_error=True, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(fn)
        return ray.get([task.remote(a) for a in args])
    finally:
        if started:
            ray.shutdown()
