"""Fit hwgen's logic model (LCs / LUT4s and flip-flops per feature) to synthesized designs,
then measure it on the reference designs, none of which is in the fit.

Phase 1, the sweep: small networks of every layer kind at several foldings (PE, SIMD), bit
widths and mac mappings (:data:`SWEEP`, built with tests/helpers.py's random layers), each
on the board top of the iCEBreaker (iCE40UP5K) and the ULX3S-85F (LFE5U-85F): synthesized
with the build's own Yosys script and packed by nextpnr (``--pack-only``: the cell counts of
a placed design, without placing it). Each design's features are
:func:`hwgen.resources.logic_features` and :func:`hwgen.resources.memory_features` summed over
its rows; the coefficients are the non-negative least-squares fit of the measured counts
(SciPy's ``nnls``), per family and resource, written to hwgen/data/logic_model.json.

Phase 2, held out: every reference design (designs/*.toml, designs/*.onnx) on both boards,
predicted (:func:`hwgen.resources.estimate`) and packed the same way; the error per design.

Usage::

    python bench/calibrate.py [--jobs 2] [--out bench/results/calibrate.json] [--remeasure]

Counts already in --out (same design name and family) are reused unless --remeasure; the
features are always computed anew, so a change to the model's features refits in seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hwgen  # noqa: E402
from hwgen.executor import run_all  # noqa: E402
from hwgen.resources import (  # noqa: E402
    LOGIC_MODEL,
    board_top,
    estimate,
    logic_features,
    memory_features,
    owner_of,
    predict_total,
)
from hwgen.spec import Input, SpecError  # noqa: E402
from hwgen.toolchain.block_ram_registers import absorb_output_registers_in  # noqa: E402
from hwgen.toolchain.boards import board  # noqa: E402
from hwgen.toolchain.synth import COLLISION_FREE_SCRIPT, board_plan, synth_opts  # noqa: E402
from hwgen.toolchain.synth import _run_yosys as run_yosys  # noqa: E402
from hwgen.toolchain.tools import ToolError, run_tool, tool_env  # noqa: E402
from tests.helpers import chain  # noqa: E402

BOARDS = {"ice40": "icebreaker", "ecp5": "ulx3s-85f"}
#: nextpnr's cells → the model's resources, per family.
PACKED = {"ice40": {"lcs": "ICESTORM_LC", "ffs": None}, "ecp5": {"lut4": "TRELLIS_COMB",
                                                                  "ffs": "TRELLIS_FF"}}


def _head(out: int = 4, weight_bits: int = 8) -> dict:
    """The classifier every sweep network ends in (raw scores into the argmax)."""
    return dict(out=out, weight_bits=weight_bits, out_bits=None, pe=1, simd=1)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def sweep(count: int = 64, seed: int = 2026) -> list[tuple[str, Input, list[dict]]]:
    """(name, input, layer specs) of the calibration networks, drawn with ``seed``: the
    reference designs' layer kinds (dense, conv2d, depthwise, maxpool, global sum pool,
    flatten) with every mac mapping (XNOR, add/subtract, LUT products, DSPs), foldings from
    one product a cycle to 128, input and weight widths 1 to 8, thresholds of 1 to 4 bits
    and requantize outputs; each ends in a classifier of 2 to 16 classes and the argmax."""
    rng = np.random.default_rng(seed)
    cases: list[tuple[str, Input, list[dict]]] = []
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    while len(cases) < count:
        kind = pick(["dense", "dense", "conv2d", "conv2d", "depthwise_conv2d"])
        mac = pick(["xnor", "addsub", "lut", "lut", "dsp"])
        xb = {"xnor": 1, "addsub": pick([2, 4, 8])}.get(mac) or pick([2, 3, 4, 6, 8])
        wb = 1 if mac in ("xnor", "addsub") else pick([2, 3, 4, 6, 8])
        if mac == "dsp" and kind == "depthwise_conv2d":
            mac = "lut"
        out_bits = pick([1, 2, 3, 4, "u4", "s6"]) if mac != "xnor" else pick([1, 1, 2])
        head = _head(out=pick([2, 4, 10, 16]), weight_bits=pick([1, 4, 8, 12]))
        extra = {} if mac in ("xnor", "addsub") else {"mac": mac}
        if kind == "dense":
            n_in = pick([16, 32, 64, 128, 256])
            out = pick([8, 16, 32, 64])
            simd = pick([d for d in _divisors(n_in) if d <= 128])
            pe = pick(_divisors(out))
            if pe * simd > 512 or (mac in ("lut", "dsp") and pe * simd > 64):
                continue
            inp = Input((n_in,), xb)
            specs = [dict(out=out, weight_bits=wb, out_bits=out_bits, pe=pe, simd=simd,
                          **extra), head]
            label = f"dense_{mac}_{n_in}x{out}_a{xb}w{wb}_pe{pe}_simd{simd}_{out_bits}"
        elif kind == "conv2d":
            c, size, k = pick([1, 3, 8, 16, 32]), pick([6, 8, 10]), pick([1, 3, 3])
            out = pick([4, 8, 16, 32])
            simd = pick(_divisors(c))
            pe = pick(_divisors(out))
            if pe * simd * k * k > 1024 or (mac in ("lut", "dsp") and pe * simd > 64):
                continue
            inp = Input((size, size, c), xb)
            specs = [dict(kind="conv2d", out=out, kernel=k, weight_bits=wb, out_bits=out_bits,
                          pe=pe, simd=simd, padding=pick(["same", "valid"]), **extra)]
            if out_bits != 1 or pick([0, 1]):
                specs.append(dict(kind="maxpool", size=2))
            specs += [dict(kind="flatten"), head]
            label = f"conv_{mac}_{size}x{size}x{c}o{out}k{k}_a{xb}w{wb}_pe{pe}_simd{simd}"
        else:
            c = pick([4, 8, 16, 32])
            pe = pick(_divisors(c))
            if mac == "addsub":
                wb = 1
            inp = Input((pick([5, 6, 8]), pick([5, 6, 8]), c), xb, lanes=pe)
            specs = [dict(kind="depthwise_conv2d", kernel=3, weight_bits=wb,
                          out_bits=out_bits if out_bits != 1 or xb == 1 else 2, pe=pe,
                          **extra),
                     dict(kind="global_sum_pool"), head]
            label = f"depthwise_{mac}_c{c}_a{xb}w{wb}_pe{pe}"
        label += f"_{len(cases)}"
        try:  # a combination hwgen refuses (a DSP product too narrow) is drawn again
            build_network(label, inp, specs)
        except SpecError:
            continue
        cases.append((label, inp, specs))
    # networks of one layer (the classifier itself) and of four, so that the board core, a
    # folded unit's fixed part and the classifier are not confounded
    rng = np.random.default_rng(seed + 1)
    for k in range(12):
        n_in, out = pick([16, 64, 128, 256]), pick([2, 4, 10, 16, 32])
        xb, wb = pick([1, 2, 4, 8]), pick([1, 2, 4, 8, 12])
        simd, pe = pick([d for d in _divisors(n_in) if d <= 64]), pick(_divisors(out))
        if xb == 1 and wb > 1 and pe * simd > 64:
            pe = 1
        cases.append((f"classifier_only_{n_in}x{out}_a{xb}w{wb}_pe{pe}_simd{simd}_{k}",
                      Input((n_in,), xb),
                      [dict(out=out, weight_bits=wb, out_bits=None, pe=pe, simd=simd)]))
    for k in range(8):
        sizes = [pick([64, 128, 256])] + [pick([16, 32, 64]) for _ in range(3)]
        specs = [dict(out=b, weight_bits=1, out_bits=1, pe=pick(_divisors(b)[:4]),
                      simd=pick([d for d in _divisors(a) if d <= 64]))
                 for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        cases.append((f"mlp_{'_'.join(map(str, sizes))}_{k}", Input((sizes[0],), pick([1, 8])),
                      specs + [_head(out=10, weight_bits=pick([1, 8]))]))
    return cases


def build_network(name: str, inp: Input, specs: list[dict]):
    network, _ = chain(np.random.default_rng(zlib.crc32(name.encode())),
                       inp, [dict(s) for s in specs], argmax=True, name="cal")
    return network


def measure(network, family: str, work: Path) -> dict:
    """The board top of ``network`` for the family's board, synthesized as ``hwgen build``
    does and packed by nextpnr: logic cells (``lcs`` / ``lut4``) and flip-flops."""
    from amaranth._toolchain import tool_env_var

    info = board(BOARDS[family])
    net_plan = board_plan(network, info)
    plan = info.platform().prepare(board_top(network, info, net_plan), name="top",
                                   script_after_read=COLLISION_FREE_SCRIPT,
                                   script_after_synth="tee -q -o stat.json stat -json",
                                   synth_opts=synth_opts(info))
    for file, content in plan.files.items():
        (work / file).write_text(content) if isinstance(content, str) else \
            (work / file).write_bytes(content)
    commands = json.loads(plan.files["build_top.json"])["commands"]
    env = tool_env(["YOSYS", "NEXTPNR_ICE40" if family == "ice40" else "NEXTPNR_ECP5"])
    yosys = next(c for c in commands if c[0] == "yosys")
    run_yosys(yosys[1:], work, env, lambda line: None)  # with the build's retry
    if family == "ecp5":  # as the build: block-RAM read registers into the block RAMs
        absorb_output_registers_in(work / "top.json")
    rows, units = row_cells(work / "top.json", family, [lp.name for lp in net_plan.layers])
    pnr = next(c for c in commands if c[0].startswith("nextpnr"))
    args, skip = [], False  # no bitstream output: a packed design is not placed
    for a in pnr[1:]:
        if skip or a in ("--textcfg", "--asc"):
            skip = not skip
            continue
        args.append(a)
    run_tool(tool_env_var(pnr[0]), [*args, "--pack-only", "--report", "report.json"],
             cwd=work, log=work / "nextpnr.log", env=env)
    util = json.loads((work / "report.json").read_text())["utilization"]
    out = {}
    for key, cell in PACKED[family].items():
        if cell is not None:
            out[key] = int(util[cell]["used"])
    if family == "ice40":  # flip-flops: Yosys' SB_DFF* cells (an LC holds one)
        out["ffs"] = sum(int(r.get("ffs", 0)) for r in rows.values())
    return {"packed": out, "rows": rows, "units": units, "synth_opts": synth_opts(info)}


#: Yosys' logic cells → the model's cell kinds, per family.
CELL_KINDS = {
    "ice40": {"SB_LUT4": "lut4", "SB_CARRY": "carry"},
    "ecp5": {"LUT4": "lut4", "CCU2C": "carry", "PFUMX": "mux", "L6MUX21": "mux",
             "TRELLIS_DPR16X4": "lutram"},
}


def row_cells(netlist: Path, family: str, layers: list[str]
              ) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Yosys' logic cells and flip-flops per logic-model row (layers, the converters and FIFOs
    in front of each, board core; by the hierarchy in each cell's name), and the same per
    unit two levels deep (kept in the JSON, so that a later model can split rows without
    synthesizing again); on iCE40 also ``unpaired_ffs``, the flip-flops whose D no LUT
    drives (nextpnr packs a LUT and the flip-flop it drives into one LC; these take an LC of
    their own)."""
    module = next(m for m in json.loads(netlist.read_text())["modules"].values()
                  if m.get("attributes", {}).get("top"))
    cells = module["cells"]
    drivers = {}
    for cell in cells.values():
        for port, direction in cell.get("port_directions", {}).items():
            if direction == "output":
                for bit in cell["connections"][port]:
                    drivers[bit] = cell["type"]
    rows: dict[str, dict[str, int]] = {}
    units: dict[str, dict[str, int]] = {}
    for name, cell in cells.items():
        kind = CELL_KINDS[family].get(cell["type"])
        ff = cell["type"].startswith("SB_DFF") or cell["type"] == "TRELLIS_FF"
        if kind is None and not ff:
            continue
        keys = ["ffs" if ff else kind]
        if ff and family == "ice40" and drivers.get(cell["connections"]["D"][0]) != "SB_LUT4":
            keys.append("unpaired_ffs")
        path = name.lstrip("\\").split(".")[:-1]  # the modules the cell is in
        unit = ".".join(path[:path.index("network") + 3] if "network" in path else path[:2])
        for table, key in ((rows, owner_of(name, layers, links=True)), (units, unit)):
            row = table.setdefault(key, {})
            for k in keys:
                row[k] = row.get(k, 0) + 1
    return rows, units


def features(network, family: str) -> dict[str, dict[str, float]]:
    """The design's features per row (layers and board core)."""
    info = board(BOARDS[family])
    net_plan = board_plan(network, info)
    use = estimate(network, info, net_plan)
    rows = logic_features(network, net_plan)
    for name, row in memory_features(use).items():
        for k, v in row.items():
            rows.setdefault(name, {})[k] = rows.get(name, {}).get(k, 0.0) + v
    return rows


def fit(samples: list[dict], family: str) -> dict:
    """Per cell kind, the non-negative least squares of every sample row's Yosys cells on
    its features; then the packing: the measured LCs / LUT4s of whole designs on their
    Yosys cell totals (nextpnr's packing of LUTs, carries and flip-flops)."""
    from scipy.optimize import nnls

    rows = [(r, s["measured"]["rows"].get(name, {})) for s in samples
            if s["family"] == family and "measured" in s
            for name, r in s["features"].items()]
    names = sorted({k for r, _ in rows for k in r})
    a = np.array([[r.get(k, 0.0) for k in names] for r, _ in rows])
    kinds = sorted({k for _, cells in rows for k in cells if k != "lutram"})
    cells = {}
    for kind in kinds:
        coef, _ = nnls(a, np.array([c.get(kind, 0) for _, c in rows], dtype=float))
        cells[kind] = {k: round(float(v), 4) for k, v in zip(names, coef, strict=True) if v}
    designs = [s for s in samples if s["family"] == family and "measured" in s]
    inputs = sorted(k for k in kinds + ["lutram"] if not (family == "ice40" and k == "ffs"))
    totals = np.array([[sum(r.get(k, 0) for r in s["measured"]["rows"].values())
                        for k in inputs] for s in designs], dtype=float)
    logic_key = "lcs" if family == "ice40" else "lut4"
    coef, _ = nnls(totals, np.array([s["measured"]["packed"][logic_key] for s in designs],
                                    dtype=float))
    packing = {logic_key: {k: round(float(v), 4) for k, v in zip(inputs, coef, strict=True)
                           if v},
               "ffs": {"ffs": 1.0}}
    return {"cells": cells, "packing": packing}


def run_case(job) -> dict:
    """One design on one family: its features, and its counts (``measured``: from an earlier
    run, else synthesized and packed now)."""
    label, family, network, measured = job
    start = time.monotonic()
    entry = {"name": label, "family": family, "board": BOARDS[family]}
    try:
        entry["features"] = features(network, family)
        if measured is not None:
            entry["measured"], entry["reused"] = measured, True
        else:
            with tempfile.TemporaryDirectory() as tmp:
                entry["measured"] = measure(network, family, Path(tmp))
    except (ToolError, ValueError) as exc:
        entry["error"] = str(exc).splitlines()[0]
    entry["seconds"] = round(time.monotonic() - start, 1)
    print(f"{label:45s} {family:5s} {entry.get('measured', entry.get('error'))} "
          f"({entry['seconds']} s)", flush=True)
    return entry


def designs() -> list[tuple[str, object]]:
    out = []
    for path in sorted((ROOT / "designs").glob("*.toml")) + \
            sorted((ROOT / "designs").glob("*.onnx")):
        out.append((path.name, hwgen.load(path)))
    return out


def still_valid(measured: dict | None, network, family: str) -> dict | None:
    """An earlier measurement, unless it was synthesized with other options than a build's
    and the difference matters (iCE40 multipliers mapped without ``-dsp``)."""
    if measured is None:
        return None
    info = board(BOARDS[family])
    if measured.get("synth_opts", "") == synth_opts(info):
        return measured
    return None if any(lp.dsps for lp in board_plan(network, info).layers) else measured


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench/results/calibrate.json"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--remeasure", action="store_true",
                    help="synthesize every design again (default: reuse the counts --out "
                         "holds for designs of the same name; features are always new)")
    args = ap.parse_args()
    start = time.monotonic()
    earlier = {}
    if Path(args.out).is_file() and not args.remeasure:
        old = json.loads(Path(args.out).read_text())
        earlier = {(e["name"], e["family"]): e["measured"]
                   for e in old["sweep"] + old["designs"] if "units" in e.get("measured", {})}
    jobs = [(name, family, network, still_valid(earlier.get((name, family)), network, family))
            for name, inp, specs in sweep() for family in BOARDS
            for network in [build_network(name, inp, specs)]]
    samples = run_all(run_case, jobs, jobs=args.jobs)
    sweep_seconds = round(time.monotonic() - start, 1)
    model = {"fitted_from": "bench/calibrate.py (the sweep in bench/results/calibrate.json)",
             "families": {f: fit(samples, f) for f in BOARDS}}
    LOGIC_MODEL.parent.mkdir(exist_ok=True)
    LOGIC_MODEL.write_text(json.dumps(model, indent=2) + "\n")
    start = time.monotonic()
    jobs = [(name, family, net, still_valid(earlier.get((name, family)), net, family))
            for name, net in designs() for family in BOARDS]
    held = run_all(run_case, jobs, jobs=args.jobs)
    for entry in held:
        if "measured" not in entry:
            continue
        predicted = predict_total(entry["features"], entry["family"], model)
        entry["predicted"] = {k: round(v, 1) for k, v in predicted.items()}
        entry["error_percent"] = {k: round(100 * (predicted[k] - m) / m, 1)
                                  for k, m in entry["measured"]["packed"].items() if m}
        print(f"{entry['name']:24s} {entry['family']:5s} measured {entry['measured']['packed']} "
              f"predicted {entry['predicted']} error % {entry['error_percent']}")
    for family in BOARDS:  # the held-out error, stored with the model for hwgen check
        errors = [e["error_percent"] for e in held if e["family"] == family and
                  "error_percent" in e]
        model["families"][family]["held_out_error_percent"] = {
            key: [min(e[key] for e in errors), max(e[key] for e in errors)]
            for key in errors[0]} if errors else {}
    LOGIC_MODEL.write_text(json.dumps(model, indent=2) + "\n")
    result = {"command": "python bench/calibrate.py " + " ".join(sys.argv[1:]),
              "sweep_seconds": sweep_seconds,
              "designs_seconds": round(time.monotonic() - start, 1),
              "measured_now": sum(not e.get("reused") for e in samples + held),
              "jobs": args.jobs, "sweep": samples, "designs": held, "model": model}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {LOGIC_MODEL} and {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
