"""LCs per multi-bit MAC lane: hwgen's LUT and DSP dot products against plain Yosys.

One datapath per case: PE = 4 output channels × SIMD = 4 input lanes = 16 MAC lanes of
W-bit signed weights × A-bit unsigned activations, ``r[p] = Σ_k x[k]·w[p, k]`` registered
(and XOR-folded onto 8 output pins). The operands sit in shift registers loaded serially from
two pins (so nothing is constant).
Variants, synthesized by Yosys and placed by nextpnr for the iCE40 UP5K and the ECP5-85F:

``yosys``
    plain Verilog (``*`` and ``+`` in a loop), logic only (iCE40 default, ECP5 ``-nodsp``).
``hwgen-lut``
    :func:`hwgen.rtl.arith.dot_lut` (what a ``mac = "lut"`` layer builds), logic only.
``yosys-dsp``
    the plain Verilog with DSP mapping on (iCE40 ``-dsp``, ECP5 default).
``hwgen-dsp``
    :func:`hwgen.rtl.arith.dot_dsp` with the packing :func:`hwgen.plan.dsp_packing` chooses
    (what a ``mac = "dsp"`` layer builds); its weight register holds the packed operands.
``regs``
    the shift registers, result register and fold alone (the result loaded from the operand
    registers): subtracted from every logic-only variant.

``logic = lcs − lcs(regs)`` and ``logic_per_lane = logic / 16``. iCE40 ``lcs`` counts
ICESTORM_LC, ECP5 TRELLIS_COMB; ``dsps`` counts SB_MAC16 / MULT18X18D. DSP variants report
their LCs as placed (their register layout differs for hwgen-dsp), next to their DSPs.

Usage::

    python bench/mac_lanes.py [--out bench/results/mac_lanes.json] [--wa 2x2 4x4 8x8]
        [--family ice40 ecp5] [--variant ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from amaranth import Cat, ClockDomain, Elaboratable, Module, Signal
from amaranth.back import verilog
from popcount_lc import FAMILIES, _run  # the sibling bench: device settings, tool runner

from hwgen.numeric import TensorType
from hwgen.plan import dsp_packing, packed_operand_bits
from hwgen.rtl.arith import dot_dsp, dot_lut

PE, SIMD = 4, 4  # 16 lanes: W8A8 in plain Yosys LUTs still fits the UP5K
#: Output pins: the registered sums are XOR-folded onto these (every variant alike), since the
#: UP5K has too few I/Os for all of them.
PINS = 8
VARIANTS = ("regs", "yosys", "hwgen-lut", "yosys-dsp", "hwgen-dsp")
DSP_CELLS = {"ice40": "SB_MAC16", "ecp5": "MULT18X18D"}
#: DSP blocks of the benched devices (UP5K: 8 SB_MAC16; ECP5-85F: 156 MULT18X18D). A case whose
#: netlist needs more is reported with its Yosys cell counts and ``placed: false``.
DEVICE_DSPS = {"ice40": 8, "ecp5": 156}
SYNTH = {  # variant kind → Yosys synthesis command per family
    ("logic", "ice40"): "synth_ice40 -device u", ("dsp", "ice40"): "synth_ice40 -device u -dsp",
    ("logic", "ecp5"): "synth_ecp5 -nodsp", ("dsp", "ecp5"): "synth_ecp5",
}


def out_bits(w: int, a: int) -> int:
    """Signed bits of a sum of SIMD products."""
    return w + a + 1 + (SIMD - 1).bit_length()


def verilog_plain(w: int, a: int, *, regs_only: bool = False) -> str:
    """The ``yosys`` (and ``regs``) variant: plain Verilog."""
    o = out_bits(w, a)
    body = "\n".join(
        f"    s{p} = 0;\n    for (k = 0; k < {SIMD}; k = k + 1)\n"
        f"      s{p} = s{p} + $signed({{1'b0, x[k*{a} +: {a}]}}) * "
        f"$signed(ws[({p}*{SIMD}+k)*{w} +: {w}]);" for p in range(PE))
    if regs_only:  # the same result register, loaded from the operand registers
        logic = (f"  wire [{PE * SIMD * (w + a) - 1}:0] both = {{ws, x}};\n"
                 f"  always @(posedge clk) r <= both[{PE * o - 1}:0];\n")
    else:
        sums = [f"s{p}" for p in range(PE)]
        logic = (f"  integer k;\n  reg signed [{o - 1}:0] {', '.join(sums)};\n"
                 f"  always @* begin\n{body}\n  end\n"
                 f"  always @(posedge clk) r <= {{{', '.join(reversed(sums))}}};\n")
    fold = "\n".join(
        f"  assign out[{i}] = ^{{{', '.join(f'r[{j}]' for j in range(i, PE * o, PINS))}}};"
        for i in range(PINS))
    return (f"module top (input clk, input x_in, input w_in, output [{PINS - 1}:0] out);\n"
            f"  reg [{SIMD * a - 1}:0] x = 0;\n  reg [{PE * SIMD * w - 1}:0] ws = 0;\n"
            f"  reg [{PE * o - 1}:0] r = 0;\n"
            f"  always @(posedge clk) begin\n    x <= {{x[{SIMD * a - 2}:0], x_in}};\n"
            f"    ws <= {{ws[{PE * SIMD * w - 2}:0], w_in}};\n  end\n{logic}{fold}\n"
            f"endmodule\n")


class HwgenTop(Elaboratable):
    """The same wrapper around hwgen's ``dot_lut`` or (packed) ``dot_dsp``."""

    def __init__(self, w: int, a: int, dsp: bool):
        self.w, self.a, self.dsp = w, a, dsp
        self.sync = ClockDomain("sync", reset_less=True)
        self.x_in, self.w_in = Signal(name="x_in"), Signal(name="w_in")
        self.out = Signal(PINS, name="out")
        self.pack = dsp_packing(TensorType((SIMD,), a), w, PE) if dsp else 1

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.sync
        w, a, pack = self.w, self.a, self.pack
        stored = packed_operand_bits(a, w, pack)
        x = Signal(SIMD * a)
        ws = Signal(PE // pack * SIMD * stored)
        m.d.sync += [x.eq(Cat(self.x_in, x[:-1])), ws.eq(Cat(self.w_in, ws[:-1]))]
        xs = [x[k * a:(k + 1) * a] for k in range(SIMD)]
        lane = [[ws[(g * SIMD + k) * stored:(g * SIMD + k + 1) * stored].as_signed()
                 for k in range(SIMD)] for g in range(PE // pack)]
        if self.dsp:
            sums = dot_dsp(m, xs, lane, pack, a + w, "d")
        else:
            sums = [dot_lut(m, list(zip(xs, lane[p], strict=True)), f"d{p}") for p in range(PE)]
        o = out_bits(w, a)
        r = Signal(PE * o)
        m.d.sync += r.eq(Cat(*[s[:o] for s in sums]))
        m.d.comb += self.out.eq(Cat(*[Cat(*[r[j] for j in range(i, PE * o, PINS)]).xor()
                                      for i in range(PINS)]))
        return m


def run_case(family: str, w: int, a: int, variant: str, work: Path, seed: int = 1) -> dict:
    fam = FAMILIES[family]
    work.mkdir(parents=True, exist_ok=True)
    if variant.startswith("hwgen"):
        top = HwgenTop(w, a, variant == "hwgen-dsp")
        text = verilog.convert(top, name="top", ports=[top.sync.clk, top.x_in, top.w_in,
                                                          top.out])
    else:
        text = verilog_plain(w, a, regs_only=variant == "regs")
    (work / "top.v").write_text(text)
    started = time.monotonic()
    synth = SYNTH[("dsp" if variant.endswith("dsp") else "logic", family)]
    _run("YOSYS", ["-q", "-l", "yosys.log", "-p",
                   f"read_verilog top.v; {synth} -top top -json top.json; "
                   f"tee -q -o stat.json stat -json"], work, work / "yosys.tee.log",
         work / "top.json")
    cells = json.loads((work / "stat.json").read_text())["modules"]["\\top"]["num_cells_by_type"]
    dsps = int(cells.get(DSP_CELLS[family], 0))
    placed = dsps <= DEVICE_DSPS[family]
    report: dict = {}
    if placed:
        _run(fam["nextpnr"], [*fam["pnr_args"], "--json", "top.json", "--report", "report.json",
                              "--freq", "50", "--seed", str(seed), "--timing-allow-fail"],
             work, work / "nextpnr.log", work / "report.json")
        report = json.loads((work / "report.json").read_text())
    clk = next((v for k, v in report.get("fmax", {}).items() if re.search(r"\bclk\b", k)), None)
    return {
        "family": family, "w": w, "a": a, "lanes": PE * SIMD, "variant": variant,
        "placed": placed,
        "lcs": report["utilization"][fam["cell"]]["used"] if placed else None,
        "dsps": dsps,
        "dsp_pack": (dsp_packing(TensorType((SIMD,), a), w, PE) if variant == "hwgen-dsp"
                     else None),
        "fmax_mhz": None if clk is None else round(clk["achieved"], 1),
        "yosys_cells": dict(sorted(cells.items())),
        "seconds": round(time.monotonic() - started, 1),
    }


def add_logic(records: list[dict]) -> None:
    """``logic`` and ``logic_per_lane``: LCs minus the same case's ``regs`` variant."""
    regs = {(r["family"], r["w"], r["a"]): r["lcs"] for r in records if r["variant"] == "regs"}
    for r in records:
        base = regs.get((r["family"], r["w"], r["a"]))
        if base is not None and r["variant"] != "regs" and r["lcs"] is not None:
            r["logic"] = r["lcs"] - base
            r["logic_per_lane"] = round(r["logic"] / r["lanes"], 2)


def table(records: list[dict]) -> str:
    lines = ["| family | W×A | variant | LCs | logic LCs | per lane | DSPs | fmax MHz |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in records:
        lcs = r["lcs"] if r["placed"] else f"— (needs {r['dsps']} DSPs)"
        lines.append(f"| {r['family']} | {r['w']}×{r['a']} | {r['variant']} | {lcs} | "
                     f"{r.get('logic', '')} | {r.get('logic_per_lane', '')} | {r['dsps']} | "
                     f"{r['fmax_mhz']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/mac_lanes.json"))
    parser.add_argument("--wa", nargs="+", default=["2x2", "4x4", "8x8"],
                        help="weight×activation bits, e.g. 4x4")
    parser.add_argument("--family", nargs="+", choices=sorted(FAMILIES),
                        default=["ice40", "ecp5"])
    parser.add_argument("--variant", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--keep", type=Path, help="keep the build folders here")
    args = parser.parse_args(argv)
    sizes = []
    for item in args.wa:
        match = re.fullmatch(r"(\d+)x(\d+)", item)
        if not match or not (2 <= int(match[1]) <= 16 and 2 <= int(match[2]) <= 8):
            parser.error(f"--wa: expected WxA with W in 2..16 and A in 2..8, got {item!r}")
        sizes.append((int(match[1]), int(match[2])))
    records = []
    with tempfile.TemporaryDirectory(prefix="mac_lanes-") as tmp:
        root = args.keep or Path(tmp)
        for family in args.family:
            for w, a in sizes:
                for variant in args.variant:
                    rec = run_case(family, w, a, variant, root / f"{family}-{w}x{a}-{variant}")
                    records.append(rec)
                    print(f"{family:5} W{w}A{a} {variant:9}: {rec['lcs']} LCs, "
                          f"{rec['dsps']} DSPs, fmax {rec['fmax_mhz']} MHz ({rec['seconds']} s)",
                          file=sys.stderr, flush=True)
    add_logic(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"pe": PE, "simd": SIMD, "cases": records}, indent=2) + "\n")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
