"""Activation calibration methods side by side: min/max, percentile and the error-minimizing
step search, on the float MNIST MLP at narrow activation widths.

designs/mnist_float.onnx is quantized after training as ``hwgen import --bits`` and ``hwgen
allocate`` do (per-channel weight steps, exact import), each Relu output's step chosen by
each ``--act-calibration`` method on ``--calibration`` training images; every accuracy is
the integer golden model's (bit-exact with the RTL) on the 10,000 test images. Writes JSON.

Usage::

    python bench/activation_calibration.py --mnist ../shared/data/mnist.npz
        [--calibration 1000] [--out bench/results/activation_calibration.json]
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

from hwgen.allocation.float_model import FloatModel  # noqa: E402
from hwgen.quant import CALIBRATIONS  # noqa: E402

#: (weight bits, activation bits) of the rows; the classifier's weights at 8 bits.
WIDTHS = [(8, 2), (8, 3), (8, 4), (8, 5), (2, 2), (3, 3), (4, 4)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", required=True, help="NPZ with x_train, y_train, x_test, "
                        "y_test")
    parser.add_argument("--model", type=Path, default=ROOT / "designs/mnist_float.onnx")
    parser.add_argument("--calibration", type=int, default=1000,
                        help="training images to calibrate on (default 1000)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench/results/activation_calibration.json")
    args = parser.parse_args(argv)
    with np.load(args.mnist) as data:
        x_cal = data["x_train"][:args.calibration].reshape(args.calibration, -1)
        x_test = data["x_test"].reshape(len(data["x_test"]), -1)
        y_test = data["y_test"].astype(np.int64)
    x_cal = x_cal.astype(np.float32) / 255
    x_test = x_test.astype(np.float32) / 255
    started = time.monotonic()
    rows = []
    for method in CALIBRATIONS:
        model = FloatModel(args.model, x_cal, act_calibration=method)
        for w, a in WIDTHS:
            choice = {s.key: (w if s.key != f"w:{model.weighted[-1]}" else 8)
                      if s.kind == "weights" else a for s in model.slots}
            _, accuracy = model.measure(model.imported(model.widths(choice)), x_test, y_test)
            rows.append({"method": method, "weight_bits": w, "act_bits": a,
                         "test_accuracy": accuracy})
            print(json.dumps(rows[-1]), flush=True)
    result = {"command": "python bench/activation_calibration.py --mnist "
              "../shared/data/mnist.npz"
              + (f" --calibration {args.calibration}" if args.calibration != 1000 else ""),
              "model": str(args.model.relative_to(ROOT)) if args.model.is_relative_to(ROOT)
              else str(args.model), "calibration_images": args.calibration,
              "test_images": len(x_test), "seconds": round(time.monotonic() - started, 1),
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
