"""How fast the reference designs clock: each design built for its boards with several
nextpnr seeds, fmax min/median/max, logic used and the critical path by component.

Each (design, board, seed) is ``hwgen.toolchain.synth.build`` (what ``hwgen build SPEC --board
B --seed N`` runs) into a temporary folder; the JSON keeps every build's fmax, logic,
flip-flops and critical path (``report.json``'s ``critical_path``), and per (design, board) the
min/median/max fmax and the critical path of the median build. The issue-17 goals (iCEBreaker
≥ 40 MHz, ULX3S-85F ≥ 100 MHz, median of three seeds) are checked against the same figures.

Usage::

    python bench/timing.py [--pairs DESIGN:BOARD ...] [--seeds 1 2 3]
        [--out bench/results/timing.json]

Default pairs: the designs issue 17 names — digits_bnn, mnist_mixed and face32_bnn on the
iCEBreaker; cnv_w1a1, mnist_mixed and mnist_cnn on the ULX3S-85F. Results of pairs already in
``--out`` are kept (a run adds or replaces its own pairs), so a long baseline can be built up
pair by pair.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwgen.spec import load  # noqa: E402
from hwgen.toolchain.synth import build  # noqa: E402
from hwgen.toolchain.tools import ToolError  # noqa: E402

DEFAULT_PAIRS = ["digits_bnn:icebreaker", "mnist_mixed:icebreaker", "face32_bnn:icebreaker",
                 "cnv_w1a1:ulx3s-85f", "mnist_mixed:ulx3s-85f", "mnist_cnn:ulx3s-85f"]
#: Issue 17's fmax goals by board, MHz (median of three seeds).
GOALS_MHZ = {"icebreaker": 40.0, "ulx3s-85f": 100.0}


def build_pair(design: str, board: str, seeds: list[int]) -> dict:
    """Every seed's build of ``designs/<design>.toml`` for ``board``, and their summary."""
    network = load(ROOT / "designs" / f"{design}.toml")
    builds = []
    for seed in seeds:
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                report = build(network, board, Path(tmp) / "out", seed=seed)
            except ToolError as exc:
                builds.append({"seed": seed, "error": str(exc).splitlines()[0]})
                continue
        logic = report["lcs"] or report["lut4"]
        builds.append({"seed": seed, "fmax_mhz": report["fmax_mhz"],
                       "logic": logic["used"], "logic_available": logic["available"],
                       "ffs": report["ffs"]["used"], "bram": report["bram"]["used"],
                       "dsp": report["dsp"]["used"], "critical_path": report["critical_path"],
                       "seconds": round(time.monotonic() - started, 1)})
        print(f"{design} on {board}, seed {seed}: {report['fmax_mhz']} MHz, "
              f"{logic['used']} {'LCs' if report['lcs'] else 'LUT4s'}", flush=True)
    good = [b for b in builds if "fmax_mhz" in b]
    summary: dict = {"design": design, "board": board, "builds": builds}
    if good:
        fmax = sorted(b["fmax_mhz"] for b in good)
        median = statistics.median(fmax)
        middle = min(good, key=lambda b: abs(b["fmax_mhz"] - median))
        summary.update({
            "fmax_mhz": {"min": fmax[0], "median": round(median, 2), "max": fmax[-1]},
            "logic": middle["logic"], "logic_available": middle["logic_available"],
            "ffs": middle["ffs"], "critical_path": middle["critical_path"],
            "goal_mhz": GOALS_MHZ.get(board),
            "meets_goal": (median >= GOALS_MHZ[board]) if board in GOALS_MHZ else None,
        })
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS, metavar="DESIGN:BOARD")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/timing.json")
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()
    previous = json.loads(args.out.read_text()) if args.out.exists() else {"pairs": []}
    wanted = [tuple(p.split(":", 1)) for p in args.pairs]
    pairs = [p for p in previous["pairs"] if (p["design"], p["board"]) not in wanted]
    for design, board in wanted:
        result = build_pair(design, board, args.seeds)
        result.update({"commit": head, "seeds": args.seeds})
        pairs.append(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "command": "python bench/timing.py --pairs DESIGN:BOARD ... --seeds 1 2 3",
            "pairs": pairs}, indent=2) + "\n")
    print("| design | board | fmax min / median / max (MHz) | goal | logic | critical path |")
    print("|---|---|---|---|---|---|")
    for p in pairs:
        if "fmax_mhz" not in p:
            print(f"| {p['design']} | {p['board']} | failed | | | |")
            continue
        f, cp = p["fmax_mhz"], p["critical_path"] or {}
        print(f"| {p['design']} | {p['board']} | {f['min']} / {f['median']} / {f['max']} | "
              f"{p['goal_mhz']} | {p['logic']:,} / {p['logic_available']:,} | "
              f"{cp.get('delay_ns')} ns, {cp.get('logic_levels')} levels: "
              f"{' → '.join(cp.get('through', []))} |")


if __name__ == "__main__":
    main()
