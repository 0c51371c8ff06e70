"""The convolutional reference designs on their boards, next to the device's analytical bound.

For face32_bnn on the iCEBreaker (UP5K) and cnv_w1a1 on the ULX3S-85F this builds the design
(or reads the report.json of an earlier ``hwgen build`` with ``--reuse DIR``) and records LCs or
LUT4s, block RAMs, fmax, cycles and inferences per second, beside bounds computed from the
device alone (:func:`bounds`, for any network and board):

``compute``
    every LUT of the device spent on XNOR-popcount lanes, at the measured cost of one lane
    (``logic_per_bit`` of hwgen's popcount at SIMD 256 in bench/results/popcount_lc.json): a
    network of M MACs needs at least M / lanes cycles. Accumulators, thresholds, window
    generators and control are not charged, so the bound is optimistic.
``bram`` (the first bound, kept as ``ports_bound_cycles``)
    every weight bit is read from block RAM once per use: at least Σ MACs·weight_bits /
    (block RAMs × read-port bits) cycles (iCE40 SB_RAM40_4K: one 16-bit read port; ECP5
    DP16KD: two 18-bit ports). It lets every block RAM serve weights at full width, however
    few weights there are, and ignores the SPRAMs.
``capacity`` (the bound reported since issue 19, ``bound_cycles``)
    each weighted layer's weights live in one kind of memory, and the memory must both hold
    them and deliver what the layer reads per cycle: in block RAM, max(⌈stored / block
    bits⌉, ⌈reads per cycle / port bits⌉) blocks (4 kbit / 16 bits on iCE40, 18 kbit / 36
    bits on ECP5); in SPRAM (UP5K), max(⌈stored / 256 kbit⌉, ⌈reads per cycle / 16⌉); in
    logic, stored / 16 LUTs (a LUT4 holds 16 bits) at any width. The least T for which some
    assignment fits the device's block RAMs and SPRAMs and its LUTs hold the weights in
    logic plus the compute lanes M / T (found by bisection over T, the assignment by dynamic
    programming over the layers). Activations' buffers are not charged: still optimistic.

``bound_cycles`` is the capacity bound (``None`` when the weights fit nowhere). It can be
below the first bound: weights held in logic are read at any width, which the first bound
did not allow; it is above the compute bound. ``achieved_fraction = bound_cycles /
cycles_per_inference``, ``achieved_fraction_ports`` the same against the first bound. A build
that fails (for example, a design that needs more block RAM than the device has) is recorded
with the tool's message and Yosys' cell counts, not dropped.

Usage::

    python bench/conv_designs.py [--out bench/results/conv_designs.json]
        [--reuse face32_bnn=PATH] [--reuse cnv_w1a1=PATH] [--only face32_bnn]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwgen.plan import plan  # noqa: E402
from hwgen.spec import load  # noqa: E402
from hwgen.toolchain.boards import board  # noqa: E402
from hwgen.toolchain.synth import build  # noqa: E402
from hwgen.toolchain.tools import ToolError  # noqa: E402

DESIGNS = {"face32_bnn": "icebreaker", "cnv_w1a1": "ulx3s-85f"}
#: Block RAM read bits per cycle, per family.
BRAM_READ_BITS = {"ice40": 16, "ecp5": 36}


def lane_cost(family: str) -> float:
    """LCs (iCE40) or LUT4s (ECP5) per XNOR-popcount input bit, from the popcount bench."""
    cases = json.loads((ROOT / "bench/results/popcount_lc.json").read_text())["cases"]
    ours = [c for c in cases if c["family"] == family and c["variant"] == "hwgen"]
    return max(ours, key=lambda c: c["simd"])["logic_per_bit"]


#: Per family: bits and read bits per cycle of one block RAM and of one SPRAM (none on ECP5).
MEMORIES = {"ice40": {"bram": (4096, 16), "spram": (262144, 16)},
            "ecp5": {"bram": (18432, 36), "spram": (0, 0)}}
#: ROM bits one LUT4 holds.
ROM_BITS_PER_LUT = 16


def capacity_bound(layers: list[tuple[int, int]], macs: int, info, cost: float) -> int | None:
    """The capacity bound (module docstring): the least cycles per inference T for which the
    weighted ``layers`` ((bits read per inference, bits stored) each) can be placed in block
    RAM, SPRAM or logic within the device with ``macs`` / T compute lanes of ``cost`` LUTs;
    ``None`` when not even one lane fits."""
    logic = info.resources.get("lcs") or info.resources["lut4"]
    brams, sprams = info.resources.get("bram", 0), info.resources.get("spram", 0)
    (bram_bits, bram_port), (spram_bits, spram_port) = (
        MEMORIES[info.family]["bram"], MEMORIES[info.family]["spram"])

    def feasible(t: int) -> bool:
        room = logic - math.ceil(macs / t) * cost
        if room < 0:
            return False
        least = {(0, 0): 0.0}  # (block RAMs, SPRAMs) used → least LUTs holding weights
        for reads, stored in layers:
            width = math.ceil(reads / t)
            ways = [(max(math.ceil(stored / bram_bits), math.ceil(width / bram_port)), 0, 0.0),
                    (0, 0, stored / ROM_BITS_PER_LUT)]
            if sprams:
                ways.append((0, max(math.ceil(stored / spram_bits),
                                    math.ceil(width / spram_port)), 0.0))
            step: dict[tuple[int, int], float] = {}
            for (b, s), luts in least.items():
                for db, ds, dl in ways:
                    key = (b + db, s + ds)
                    if key[0] <= brams and key[1] <= sprams and luts + dl <= room:
                        step[key] = min(step.get(key, math.inf), luts + dl)
            least = step
        return bool(least)

    hi = max(macs, 1)
    if not feasible(hi):
        return None
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if feasible(mid) else (mid + 1, hi)
    return lo


def bounds(network, board_name: str, cycles: int | None = None) -> dict:
    """The device bounds (module docstring) of ``network`` on board ``board_name`` and the
    fraction of the capacity bound ``cycles`` per inference (default the network's plan)
    achieves."""
    info = board(board_name)
    p = plan(network)
    cycles = cycles or p.cycles_per_inference
    logic = info.resources.get("lcs") or info.resources["lut4"]
    cost = lane_cost(info.family)
    lanes = int(logic / cost)
    weight_bits = sum(lp.macs * (lp.weight_bits or 0) for lp in p.layers)
    bram_bits = info.resources["bram"] * BRAM_READ_BITS[info.family]
    compute = -(-p.macs // lanes)
    ports = -(-weight_bits // bram_bits)
    layers = [(lp.macs * lp.weight_bits, lp.weight_memory_bits) for lp in p.layers
              if lp.weight_bits]
    bound = capacity_bound(layers, p.macs, info, cost)
    return {
        "macs": p.macs, "weight_bits_read": weight_bits,
        "weight_bits_stored": sum(stored for _, stored in layers),
        "lane_cost": cost, "lanes_that_fit": lanes, "compute_bound_cycles": compute,
        "bram_read_bits_per_cycle": bram_bits, "bram_bound_cycles": ports,
        "ports_bound_cycles": max(compute, ports), "bound_cycles": bound,
        "cycles_per_inference": cycles,
        "achieved_fraction_ports": round(max(compute, ports) / cycles, 4),
        "achieved_fraction": round(bound / cycles, 4) if bound else None,
    }


def measure(name: str, board_name: str, reuse: Path | None, keep: Path) -> dict:
    spec_path = ROOT / "designs" / f"{name}.toml"
    record = {"design": name, "board": board_name, **bounds(load(spec_path), board_name)}
    started = time.monotonic()
    out = reuse or keep / f"{name}-{board_name}"
    try:
        if reuse:
            report_file = reuse if reuse.suffix == ".json" else reuse / "report.json"
            report = json.loads(report_file.read_text())
        else:
            # fit and fmax are measured, not the clock: one pass, one seed, the oscillator
            report = build(load(spec_path), board_name, out, clock_mhz="osc", seeds=(1,))
    except ToolError as exc:
        failed = out.with_name(out.name + ".failed") / "synth_stat.json"
        cells = None
        if failed.exists():
            stat = json.loads(failed.read_text())
            cells = stat.get("design", stat).get("num_cells_by_type")
        lines = str(exc).splitlines() or [repr(exc)]
        error = next((line for line in lines if "ERROR" in line), lines[0])
        record.update({"built": False, "error": error.strip(), "yosys_cells": cells,
                       "seconds": round(time.monotonic() - started, 1)})
        return record
    fmax = report["fmax_mhz"]
    record.update({
        "built": True,
        "lcs": report.get("lcs"), "lut4": report.get("lut4"), "ffs": report.get("ffs"),
        "bram": report.get("bram"), "fmax_mhz": fmax,
        "inferences_per_second_at_fmax": report["inferences_per_second_at_fmax"],
        "bound_inferences_per_second_at_fmax": (round(fmax * 1e6 / record["bound_cycles"], 1)
                                                if fmax and record["bound_cycles"] else None),
        "build_seconds": report.get("build_seconds"),
        "report": report,
    })
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/conv_designs.json")
    parser.add_argument("--reuse", action="append", default=[], metavar="DESIGN=PATH",
                        help="read PATH (a report.json, or a build directory holding one) "
                        "instead of building DESIGN")
    parser.add_argument("--only", choices=sorted(DESIGNS), action="append")
    parser.add_argument("--keep", type=Path, default=Path("build/bench"),
                        help="build directory (default build/bench)")
    args = parser.parse_args(argv)
    reuse = dict(item.split("=", 1) for item in args.reuse)
    records = []
    for name, board_name in DESIGNS.items():
        if args.only and name not in args.only:
            continue
        record = measure(name, board_name, Path(reuse[name]) if name in reuse else None,
                         args.keep)
        records.append(record)
        summary = {k: record.get(k) for k in ("design", "built", "ports_bound_cycles",
                                              "bound_cycles", "cycles_per_inference",
                                              "achieved_fraction_ports", "achieved_fraction")}
        print(json.dumps(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"designs": records}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
