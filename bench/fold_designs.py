"""Hand folding against ``hwgen fold`` on every reference design and both boards.

For each design in designs/ and each of the iCEBreaker (UP5K) and the ULX3S-85F this builds
the design as shipped (its hand folding) and as ``hwgen fold --max`` folds it (``hwgen build
--fold max``), each at the board's oscillator with one nextpnr seed (fit and fmax are
measured, not the clock), and records per build: LCs or LUT4s, flip-flops, block RAMs,
SPRAMs, DSPs, fmax, cycles and inferences per second at fmax, the fraction of the device
bound it reaches (bench/conv_designs.py: the capacity bound and the first, ports-only one),
and for the fold its predicted logic and flip-flops next to the placed ones and its own
wall time. A design that does not fit is recorded with the message (for the fold: the
resource that binds). Jobs run on hwgen's executor (a process pool, ``--jobs``).

Usage::

    python bench/fold_designs.py [--out bench/results/fold_designs.json] [--jobs 2]
        [--only DESIGN ...] [--boards icebreaker,ulx3s-85f] [--keep build/fold]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from conv_designs import bounds  # noqa: E402

import hwgen  # noqa: E402
from hwgen.executor import run_all  # noqa: E402
from hwgen.fold import FoldError, build_fold  # noqa: E402
from hwgen.toolchain.boards import BoardError  # noqa: E402
from hwgen.toolchain.synth import build  # noqa: E402
from hwgen.toolchain.tools import ToolError  # noqa: E402

BOARDS = ("icebreaker", "ulx3s-85f")


def designs() -> list[Path]:
    return sorted((ROOT / "designs").glob("*.toml")) + sorted((ROOT / "designs").glob("*.onnx"))


def run_case(job: tuple[str, str, str, str]) -> dict:
    """One design (path) on one board, ``hand`` or ``fold``, built under ``keep``."""
    path, board_name, variant, keep = job
    network = hwgen.load(path)
    record = {"design": Path(path).name, "board": board_name, "variant": variant}
    started = time.monotonic()
    out = Path(keep) / f"{network.name}-{board_name}-{variant}"
    try:
        if variant == "fold":  # folded again smaller when the placed design does not fit
            result, report = build_fold(network, board_name, out, clock_mhz="osc", seeds=(1,))
            record.update(predicted={k: round(v, 1) for k, v in result.use.items()},
                          fold=report["fold"], refolds=report["refolds"],
                          bottleneck=result.bottleneck, binding=result.binding)
            record.update(bounds(result.network, board_name))
        else:
            record.update(bounds(network, board_name))
            report = build(network, board_name, out, clock_mhz="osc", seeds=(1,))
    except (FoldError, BoardError, ToolError) as exc:
        lines = str(exc).splitlines() or [repr(exc)]
        record.update(built=False, error=next((x for x in lines if "ERROR" in x), lines[0]),
                      seconds=round(time.monotonic() - started, 1))
        Path(keep).mkdir(parents=True, exist_ok=True)
        Path(keep, f"{network.name}-{board_name}-{variant}.record.json").write_text(
            json.dumps(record, indent=2) + "\n")
        print(f"{record['design']:22s} {board_name:11s} {variant:4s} not built: "
              f"{record['error']}", flush=True)
        return record
    fmax = report["fmax_mhz"]
    key = "lut4" if report.get("lut4") else "lcs"
    record.update(
        built=True, logic=report[key]["used"], logic_available=report[key]["available"],
        ffs=(report.get("ffs") or {}).get("used"), bram=(report.get("bram") or {}).get("used"),
        spram=(report.get("spram") or {}).get("used"), dsp=(report.get("dsp") or {}).get("used"),
        fmax_mhz=fmax, inferences_per_second_at_fmax=report["inferences_per_second_at_fmax"],
        achieved_fraction=(round(record["bound_cycles"] / record["cycles_per_inference"], 4)
                           if record["bound_cycles"] else None),
        seconds=round(time.monotonic() - started, 1))
    if variant == "fold":
        record["logic_error_percent"] = round(
            100 * (record["predicted"]["logic"] - record["logic"]) / record["logic"], 1)
    Path(keep, f"{network.name}-{board_name}-{variant}.record.json").write_text(
        json.dumps(record, indent=2) + "\n")  # kept as it comes: a long run can be read early
    print(f"{record['design']:22s} {board_name:11s} {variant:4s} {record['logic']:>6} logic "
          f"{record['cycles_per_inference']:>8} cycles {fmax} MHz "
          f"{record['inferences_per_second_at_fmax']:>10} inf/s", flush=True)
    return record


def markdown(records: list[dict]) -> str:
    """The table docs/results.md carries: per design and board, the hand folding and the
    fold side by side."""
    by = {(r["design"], r["board"], r["variant"]): r for r in records}
    lines = ["| design → board | hand: logic, fmax, cycles, inferences/s | fold: logic placed "
             "(predicted), fmax, cycles, inferences/s | fold ÷ hand | fraction of the device "
             "bound, hand → fold (first bound) |", "|---|---|---|---|---|"]

    def cell(r: dict | None) -> str:
        if r is None:
            return "not run"
        if not r.get("built"):
            return "does not fit: " + r["error"].replace("|", "/")[:120]
        predicted = f" ({r['predicted']['logic']:,.0f})" if "predicted" in r else ""
        return (f"{r['logic']:,}{predicted} / {r['logic_available']:,}, {r['fmax_mhz']} MHz, "
                f"{r['cycles_per_inference']:,}, {r['inferences_per_second_at_fmax']:,.1f}")

    def fraction(r: dict | None) -> str:
        if r is None or not r.get("built") or r.get("achieved_fraction") is None:
            return "–"
        return f"{r['achieved_fraction']:.3f} ({r['achieved_fraction_ports']:.3f})"

    for design, board_name in sorted({(r["design"], r["board"]) for r in records},
                                     key=lambda k: (k[1], k[0])):
        hand, folded = by.get((design, board_name, "hand")), by.get((design, board_name, "fold"))
        ratio = "–"
        if hand and folded and hand.get("built") and folded.get("built"):
            gain = (folded["inferences_per_second_at_fmax"]
                    / hand["inferences_per_second_at_fmax"])
            ratio = f"{gain:.2f}×"
        lines.append(f"| {design} → {board_name} | {cell(hand)} | {cell(folded)} | {ratio} | "
                     f"{fraction(hand)} → {fraction(folded)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/fold_designs.json")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", action="append", help="a design's file name (repeatable)")
    ap.add_argument("--boards", default=",".join(BOARDS))
    ap.add_argument("--keep", default="build/fold", help="build folder (default build/fold)")
    ap.add_argument("--variants", default="hand,fold", help="hand, fold or both (default)")
    ap.add_argument("--table", action="store_true", help="print the Markdown table of --out "
                    "and of the records under --keep (newest first), build nothing")
    args = ap.parse_args(argv)
    if args.table:
        records = {}
        if args.out.is_file():
            for r in json.loads(args.out.read_text())["builds"]:
                records[(r["design"], r["board"], r["variant"])] = r
        for path in sorted(Path(args.keep).glob("*.record.json"), key=lambda p: p.stat().st_mtime):
            r = json.loads(path.read_text())
            records[(r["design"], r["board"], r["variant"])] = r
        print(markdown(list(records.values())))
        return 0
    # the small boards first, the ULX3S's folds (the largest designs) last
    jobs = [(str(path), b, variant, args.keep) for b in args.boards.split(",")
            for variant in args.variants.split(",") for path in designs()
            if not args.only or path.name in args.only]
    started = time.monotonic()
    records = run_all(run_case, jobs, jobs=args.jobs)
    result = {"command": "python bench/fold_designs.py " + " ".join(argv or sys.argv[1:]),
              "jobs": args.jobs, "seconds": round(time.monotonic() - started, 1),
              "builds": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
