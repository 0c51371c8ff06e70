"""hwgen.resources' block RAM, SPRAM and DSP counts against Yosys on every reference design.

For each design (designs/*.toml and the imported designs/*.onnx) and board, the prediction
(:func:`hwgen.resources.estimate`: the elaborated board top's memories placed by the
``memory_libmap`` rule) is set beside what Yosys makes of the same board top: the build's
RTLIL and script, run through ``synth_<family>`` up to the end of its memory mapping (no
logic mapping, no placement), its cells counted with ``stat``. Written side by side, with
the time each took.

Usage::

    python bench/memory_model.py [--out bench/results/memory_model.json]
        [--boards icebreaker ulx3s-85f] [--only NAME ...] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hwgen  # noqa: E402
from hwgen.resources import board_top, estimate  # noqa: E402
from hwgen.toolchain.boards import board  # noqa: E402
from hwgen.toolchain.synth import board_plan  # noqa: E402
from tests.test_resources import yosys_cells  # noqa: E402


def designs() -> list[Path]:
    return sorted((ROOT / "designs").glob("*.toml")) + sorted((ROOT / "designs").glob("*.onnx"))


def yosys_counts(network, info, net_plan, work: Path) -> dict:
    """Yosys' block RAM, SPRAM, DSP (and ECP5 distributed RAM) cells of the board top after
    ``synth_<family>``'s memory mapping (tests/test_resources.py's count)."""
    top = board_top(network, info, net_plan)
    return yosys_cells(info.platform().prepare(top, name="top").files["top.il"], info.family,
                       work)


def case(path: Path, board_name: str) -> dict:
    info = board(board_name)
    network = hwgen.load(path)
    net_plan = board_plan(network, info)
    start = time.monotonic()
    use = estimate(network, info, net_plan)
    predicted_s = time.monotonic() - start
    total = use.total
    predicted = {k: int(total[k]) for k in ("bram", "spram", "dsp", "lutram")}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        yosys = yosys_counts(network, info, net_plan, Path(tmp))
        yosys_s = time.monotonic() - start
    keys = ("bram", "spram", "dsp") + (("lutram",) if info.family == "ecp5" else ())
    return {"design": path.name, "board": board_name, "family": info.family,
            "predicted": predicted, "yosys": yosys,
            "exact": all(predicted[k] == yosys[k] for k in keys),
            "predicted_seconds": round(predicted_s, 2), "yosys_seconds": round(yosys_s, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench/results/memory_model.json"))
    ap.add_argument("--boards", nargs="+", default=["icebreaker", "ulx3s-85f"])
    ap.add_argument("--only", nargs="+", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    paths = [p for p in designs() if args.only is None or p.stem in args.only]
    jobs = [(p, b) for p in paths for b in args.boards]
    with ThreadPoolExecutor(args.jobs) as pool:
        cases = list(pool.map(lambda j: case(*j), jobs))
    for c in cases:
        print(f"{c['design']:22s} {c['board']:11s} predicted {c['predicted']} "
              f"yosys {c['yosys']} {'exact' if c['exact'] else 'DIFFERS'}")
    result = {"command": "python bench/memory_model.py " + " ".join(sys.argv[1:]),
              "tools": "YoWASP Yosys (hwgen's default)", "cases": cases,
              "exact": sum(c["exact"] for c in cases), "of": len(cases)}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['exact']} of {result['of']} exact; wrote {args.out}")
    return 0 if result["exact"] == result["of"] else 1


if __name__ == "__main__":
    sys.exit(main())
