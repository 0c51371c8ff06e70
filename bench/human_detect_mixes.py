"""Lattice's human-detection mixes against what ``hwgen allocate`` chooses, on the synthetic
network.

The reference is the network with 16-bit weights everywhere (designs/make_synthetic.py,
mix CCCCCCC, 1371 KiB). For each of Lattice's five mixes of 16-bit (C) and 1-bit (B) layers,
and for the integer program's choice at each mix's weight memory (among 16 and 1 bit, as
Lattice chooses, and among every width 1…16), the weight memory and the output error: the
mean squared difference of the detection map from the reference's, relative to its mean
square, on ``--inputs`` random images (seed 0; the weights are random too, so no image is
more typical than another). Writes JSON (``--out``).

Usage::

    python bench/human_detect_mixes.py [--inputs 4] [--out bench/results/human_detect_mixes.json]
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
sys.path.insert(0, str(ROOT / "designs"))

import make_synthetic  # noqa: E402

from hwgen.allocation.allocate import KIB, restrict_candidates  # noqa: E402
from hwgen.allocation.solve import Budgets, solve_ilp, weight_memory_bits  # noqa: E402
from hwgen.allocation.spec_model import SpecModel  # noqa: E402


def mix_of(widths: dict[str, int]) -> str:
    """The widths as Lattice writes them: C for 16 bits, B for 1, else the width."""
    return "".join({16: "C", 1: "B"}.get(b, str(b)) for b in widths.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=4, help="random calibration images "
                        "(default 4)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench/results/human_detect_mixes.json")
    args = parser.parse_args(argv)
    started = time.monotonic()
    network = make_synthetic.human_detect(mix="CCCCCCC")
    x = np.random.default_rng(0).integers(0, 256, (args.inputs, 128, 128, 3))
    model = SpecModel("human_detect (CCCCCCC)", network, x, log=print)
    sensitivity = model.sensitivities(log=lambda line: print(line, flush=True))
    keys = [s.key for s in model.slots]

    def row(kind: str, widths: dict[str, int], **extra) -> dict:
        error = model.error(model.imported(widths))
        out = {"kind": kind, **extra, "mix": mix_of(widths),
               "weight_kib": round(weight_memory_bits(model.slots, widths) / KIB, 2),
               "output_error": round(error, 5),
               "sensitivity_sum": round(sum(sensitivity[k][b] for k, b in widths.items()), 5)}
        print(json.dumps(out), flush=True)
        return out

    rows, every_width = [], list(model.slots)
    for mix in make_synthetic.HUMAN_DETECT_MIXES:
        lattice = {k: 16 if m == "C" else 1 for k, m in zip(keys, mix, strict=True)}
        rows.append(row("lattice", lattice))
        budget = weight_memory_bits(model.slots, lattice)
        for widths in ((1, 16), None):
            model.slots = list(every_width)
            restrict_candidates(model, widths)
            choice = solve_ilp(model.slots, model.working_sets, sensitivity, Budgets(budget),
                               model.input_bits)
            rows.append(row("ilp", model.widths(choice), budget_kib=round(budget / KIB, 2),
                            weight_bits="1,16" if widths else "all"))
    result = {"command": "python bench/human_detect_mixes.py"
              + (f" --inputs {args.inputs}" if args.inputs != 4 else ""),
              "inputs": args.inputs, "seconds": round(time.monotonic() - started, 1),
              "sensitivity": {k: {str(b): round(v, 5) for b, v in row_.items()}
                              for k, row_ in sensitivity.items()},
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
