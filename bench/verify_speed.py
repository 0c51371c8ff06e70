"""RTL verification speed: inferences simulated and checked per minute, bulk bench vs every-beat
bench, on the trained convolutional design (cocotb + Verilator).

``bulk``
    :func:`hwgen_sim.runner.verify_bulk`: stimulus, random gaps and backpressure and the
    comparison of every output and score beat run inside the simulated design; Python starts
    the clock and waits for ``done``. All ``--count`` test images.
``bulk`` in shards
    The same, with the inputs split into K shards, each built and simulated by a worker
    process of hwgen's executor (``hwgen sim --bulk --jobs K``); one record per ``--shards``
    value, against one shard in the same run.
``every_beat`` (the baseline)
    :func:`hwgen_sim.runner.simulate`: the cocotb bench that drives, samples and checks every
    layer's every beat from Python on each clock edge. The first ``--baseline-count`` images.

Each record has the build and simulation seconds, cycles, and inferences per minute of
simulation alone and including the build. Usage::

    python bench/verify_speed.py [--spec designs/mnist_cnn.toml] [--count 10000]
        [--baseline-count 20] [--shards 1,2] [--out bench/results/verify_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwgen.plan import plan  # noqa: E402
from hwgen.spec import load  # noqa: E402
from hwgen_sim.runner import simulate, verify_bulk  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "designs/mnist_cnn.toml")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--baseline-count", type=int, default=20)
    parser.add_argument("--gaps", type=float, default=0.25)
    parser.add_argument("--backpressure", type=float, default=0.25)
    parser.add_argument("--shards", default="1,2", help="bulk shard counts (default 1,2)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/verify_speed.json")
    args = parser.parse_args(argv)
    network = load(args.spec)
    with np.load(network.dataset) as data:
        x = data["x"][:args.count]
    p = plan(network)
    records = []
    with tempfile.TemporaryDirectory(prefix="hwgen-verify-speed-") as work:
        for shards in (int(k) for k in args.shards.split(",")):
            bulk = verify_bulk(network, x, Path(work) / f"bulk-{shards}", gaps=args.gaps,
                               backpressure=args.backpressure, shards=shards, jobs=shards)
            records.append({
                "bench": "bulk", "shards": shards, "inferences": len(x), "ok": bulk.ok,
                "cycles": bulk.cycles, "total_seconds": round(bulk.seconds, 1),
                "build_seconds": round(bulk.seconds - bulk.sim_seconds, 1),
                "sim_seconds": round(bulk.sim_seconds, 1),
                "cycles_per_second": round(bulk.cycles / bulk.sim_seconds),
                "inferences_per_minute_sim": round(len(x) / bulk.sim_seconds * 60),
                "inferences_per_minute_total": round(len(x) / bulk.seconds * 60),
            })
            print(json.dumps(records[-1]), flush=True)
        xb = x[:args.baseline_count]
        started = time.monotonic()
        every = simulate(network, xb, Path(work) / "every_beat", gaps=args.gaps,
                         backpressure=args.backpressure)
        total = time.monotonic() - started
        records.append({
            "bench": "every_beat", "inferences": len(xb), "ok": every.ok,
            "cycles": every.stress_cycles, "total_seconds": round(total, 1),
            "inferences_per_minute_total": round(len(xb) / total * 60, 1),
        })
        print(json.dumps(records[-1]))
    result = {"spec": str(args.spec.relative_to(ROOT)), "cycles_per_inference":
              p.cycles_per_inference, "cores": os.cpu_count(), "gaps": args.gaps,
              "backpressure": args.backpressure, "records": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
