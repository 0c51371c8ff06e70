"""Allocated widths against uniform widths at the same weight memory, on MNIST.

The float MLP designs/mnist_float.onnx is quantized after training (``hwgen allocate``'s
path: per-layer widths, min/max calibration, exact import). Its sensitivities are measured on
``--calibration`` training images; every accuracy is the integer golden model's (bit-exact
with the RTL) on the 10,000 test images. The budgets are the smallest feasible weight memory
and each uniform width's own (W = A = b for every layer, the classifier at least 2 bits), so
each uniform point has an allocated point at the same budget beside it, for each
``--method`` (``ilp``, ``qbr``, ``search``). Writes JSON (``--out``) and, with matplotlib,
the front as a PNG.

Usage::

    python bench/allocation_front.py --mnist ../shared/data/mnist.npz
        [--calibration 500] [--out bench/results/allocation_front.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwgen.allocation.allocate import KIB, front  # noqa: E402
from hwgen.allocation.float_model import FloatModel  # noqa: E402
from hwgen.allocation.solve import SOLVERS, weight_memory_bits  # noqa: E402
from hwgen.plots import plot_allocation_front  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", required=True, help="NPZ with x_train, y_train, x_test, "
                        "y_test")
    parser.add_argument("--model", type=Path, default=ROOT / "designs/mnist_float.onnx")
    parser.add_argument("--calibration", type=int, default=500,
                        help="training images to measure the sensitivities on (default 500)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench/results/allocation_front.json")
    args = parser.parse_args(argv)
    with np.load(args.mnist) as data:
        x_cal = data["x_train"][:args.calibration].reshape(args.calibration, -1)
        y_cal = data["y_train"][:args.calibration].astype(np.int64)
        x_test = data["x_test"].reshape(len(data["x_test"]), -1)
        y_test = data["y_test"].astype(np.int64)
    x_cal = x_cal.astype(np.float32) / 255
    x_test = x_test.astype(np.float32) / 255
    started = time.monotonic()
    model = FloatModel(args.model, x_cal, y_cal, log=print)
    sensitivity = model.sensitivities(log=lambda line: print(line, flush=True))
    sensitivity_seconds = time.monotonic() - started

    uniform = (2, 3, 4, 5, 6, 8)
    narrowest = model.widths({s.key: min(s.candidates) for s in model.slots})
    budgets = [weight_memory_bits(model.slots, widths) / KIB for widths in
               [narrowest] + [model.widths(default=b) for b in uniform]]
    rows = front(model, sensitivity, methods=tuple(SOLVERS), budgets_kb=budgets, bits=uniform,
                 x=x_test, labels=y_test, log=lambda line: print(line, flush=True))
    result = {"command": "python bench/allocation_front.py " + " ".join(argv or sys.argv[1:]),
              "model": str(args.model.relative_to(ROOT)), "calibration_images": len(x_cal),
              "test_images": len(x_test),
              "float_test_accuracy": json.loads(args.model.with_suffix(".json").read_text())[
                  "float_test_accuracy"],
              "sensitivity_seconds": round(sensitivity_seconds, 1),
              "seconds": round(time.monotonic() - started, 1),
              "sensitivity": sensitivity, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    png = args.out.with_suffix(".png")
    if plot_allocation_front(rows, png, "mnist_float: allocated against uniform, 10,000 test "
                             "images"):
        print(f"wrote {png}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
