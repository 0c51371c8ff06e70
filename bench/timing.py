"""How fast the reference designs clock: each design built for its boards once with several
nextpnr seeds, fmax min/median/max, logic used and the critical path by component.

Each (design, board) is one ``hwgen.toolchain.synth.build`` (what ``hwgen build SPEC --board B
--seeds N --clock-mhz osc`` runs): Yosys once, nextpnr once per seed in parallel, the best seed
shipped. The JSON keeps per (design, board) the build's ``fmax_seeds`` (every seed's fmax and
their min/median/max), the shipped seed, its logic, flip-flops and critical path
(``report.json``'s ``critical_path``), and the build's wall time. The issue-17 goals
(iCEBreaker ≥ 40 MHz, ULX3S-85F ≥ 100 MHz, median of three seeds) are checked against the
same figures. The clock is the oscillator by default (what the fmax is measured against does
not move it much, and it is the first pass of ``--clock-mhz auto``); ``--clock-mhz auto`` adds
the clock auto chooses.

Usage::

    python bench/timing.py [--pairs DESIGN:BOARD ...] [--seeds 3] [--clock-mhz osc|auto|MHZ]
        [--out bench/results/timing.json]

Default pairs: the designs issue 17 names — digits_bnn, mnist_mixed and face32_bnn on the
iCEBreaker; cnv_w1a1, mnist_mixed and mnist_cnn on the ULX3S-85F. Results of pairs already in
``--out`` are kept (a run adds or replaces its own pairs), so a long baseline can be built up
pair by pair.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwgen.spec import load  # noqa: E402
from hwgen.toolchain.synth import build  # noqa: E402
from hwgen.toolchain.timing import describe_seeds  # noqa: E402
from hwgen.toolchain.tools import ToolError  # noqa: E402

DEFAULT_PAIRS = ["digits_bnn:icebreaker", "mnist_mixed:icebreaker", "face32_bnn:icebreaker",
                 "cnv_w1a1:ulx3s-85f", "mnist_mixed:ulx3s-85f", "mnist_cnn:ulx3s-85f"]
#: Issue 17's fmax goals by board, MHz (median of three seeds).
GOALS_MHZ = {"icebreaker": 40.0, "ulx3s-85f": 100.0}


def build_pair(design: str, board: str, seeds: int, clock: str | float = "osc") -> dict:
    """One build of ``designs/<design>.toml`` for ``board`` with nextpnr seeds 1 … ``seeds``,
    and its figures."""
    network = load(ROOT / "designs" / f"{design}.toml")
    started = time.monotonic()
    summary: dict = {"design": design, "board": board}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report = build(network, board, Path(tmp) / "out", clock_mhz=clock,
                           seeds=range(1, seeds + 1))
        except ToolError as exc:
            summary["error"] = str(exc).splitlines()[0]
            print(f"{design} on {board}: {summary['error']}", flush=True)
            return summary
    logic = report["lcs"] or report["lut4"]
    fmax = report["fmax_seeds"]
    auto = report["auto_clock"]
    summary.update({
        "fmax_mhz": {"min": fmax["min"], "median": fmax["median"], "max": fmax["max"]},
        "fmax_seeds": fmax, "nextpnr_seed": report["nextpnr_seed"],
        "logic": logic["used"], "logic_available": logic["available"],
        "ffs": report["ffs"]["used"], "bram": report["bram"]["used"],
        "dsp": report["dsp"]["used"], "critical_path": report["critical_path"],
        "clock_mhz": report["clock_mhz"],
        "first_pass_fmax_mhz": None if auto is None else auto["first_pass"]["fmax_seeds"],
        "seconds": round(time.monotonic() - started, 1),
        "goal_mhz": GOALS_MHZ.get(board),
        "meets_goal": (fmax["median"] >= GOALS_MHZ[board]) if board in GOALS_MHZ else None,
    })
    print(f"{design} on {board}: fmax {describe_seeds(fmax)}, shipped seed "
          f"{report['nextpnr_seed']}, {logic['used']} {'LCs' if report['lcs'] else 'LUT4s'}, "
          f"clock {report['clock_mhz']} MHz, {summary['seconds']} s", flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS, metavar="DESIGN:BOARD")
    parser.add_argument("--seeds", type=int, default=3, help="nextpnr seeds 1 … N (default 3)")
    parser.add_argument("--clock-mhz", default="osc",
                        help="osc (default), auto or a frequency, as hwgen build's")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/timing.json")
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()
    previous = json.loads(args.out.read_text()) if args.out.exists() else {"pairs": []}
    wanted = [tuple(p.split(":", 1)) for p in args.pairs]
    pairs = [p for p in previous["pairs"] if (p["design"], p["board"]) not in wanted]
    clock = args.clock_mhz if args.clock_mhz in ("osc", "auto") else float(args.clock_mhz)
    for design, board in wanted:
        result = build_pair(design, board, args.seeds, clock)
        result.update({"commit": head, "seeds": list(range(1, args.seeds + 1)),
                       "clock": args.clock_mhz})
        pairs.append(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "command": "python bench/timing.py --pairs DESIGN:BOARD ... --seeds 3",
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
