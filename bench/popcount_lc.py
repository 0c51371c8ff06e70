"""LCs per input bit of the XNOR-popcount datapath: hwgen's popcount against plain Yosys.

For each SIMD width and FPGA family this builds three designs around one wrapper (``a`` and
``w`` are SIMD-bit shift registers loaded serially from two pins, ``count`` is registered and
drives output pins), synthesizes them with Yosys and places and routes them with nextpnr:

``yosys``
    plain Verilog, ``count <= sum of (a[i] ~^ w[i])`` written as a loop; Yosys maps it alone.
``hwgen``
    the same wrapper in Amaranth, ``count`` from :func:`hwgen.rtl.arith.popcount` of
    ``~(a ^ w)`` (the expression :class:`~hwgen.rtl.layers.dense.MatrixVectorUnit` uses), converted
    with ``amaranth.back.verilog``.
``regs``
    the wrapper alone (``count`` holds the shift registers' last bits): what every variant
    spends on its shift registers and pins.

``logic = lcs − lcs(regs)`` is what the XNOR-popcount itself costs, and ``logic_per_bit`` that
divided by SIMD. On iCE40 ``lcs`` counts ICESTORM_LC (a shift-register flip-flop fills an LC of
its own, since an LC's flip-flop is fed by its LUT), on ECP5 TRELLIS_COMB (LUT4s and carry
halves; flip-flops are counted apart). The count register's flip-flops share LCs with the last
adder's LUTs, so they are counted in ``logic`` only where they cannot. ``fmax_mhz`` is
nextpnr's estimate for the clock (constraint ``--freq``; fixed seed).

Usage::

    python bench/popcount_lc.py [--out bench/results/popcount_lc.json]
        [--simd 32 64 128 256] [--family ice40 ecp5] [--variant yosys hwgen regs]
        [--freq 100] [--keep DIR]

Each record holds ``family, simd, variant, lcs, lcs_per_bit`` (total, shift registers
included), ``logic, logic_per_bit`` (the XNOR-popcount alone), ``fmax_mhz``, Yosys' cell counts
and the seconds taken.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth import Cat, ClockDomain, Elaboratable, Module, Signal
from amaranth.back import verilog

from hwgen.rtl.arith import popcount
from hwgen.toolchain.tools import tool_path

VARIANTS = ("yosys", "hwgen", "regs")

FAMILIES = {
    "ice40": {
        "synth": "synth_ice40 -device u",
        "nextpnr": "NEXTPNR_ICE40",
        "pnr_args": ["--up5k", "--package", "sg48", "--pcf-allow-unconstrained"],
        "cell": "ICESTORM_LC",
    },
    "ecp5": {
        "synth": "synth_ecp5",
        "nextpnr": "NEXTPNR_ECP5",
        "pnr_args": ["--85k", "--package", "CABGA381", "--lpf-allow-unconstrained"],
        "cell": "TRELLIS_COMB",
    },
}

_WRAPPER = """\
module top (input clk, input a_in, input w_in, output reg [{k1}:0] count);
  reg [{n1}:0] a = 0, w = 0;
  always @(posedge clk) begin
    a <= {{a[{n2}:0], a_in}};
    w <= {{w[{n2}:0], w_in}};
  end
{body}endmodule
"""

_BASELINE = """\
  integer i;
  reg [{k1}:0] c;
  always @* begin
    c = 0;
    for (i = 0; i < {n}; i = i + 1) c = c + (a[i] ~^ w[i]);
  end
  always @(posedge clk) count <= c;
"""

_REGS = """\
  always @(posedge clk) count <= {{a[{n1}], w[{n1}]}};
"""


def count_width(simd: int) -> int:
    return simd.bit_length()


def verilog_baseline(simd: int) -> str:
    k = count_width(simd)
    body = _BASELINE.format(n=simd, k1=k - 1)
    return _WRAPPER.format(n1=simd - 1, n2=simd - 2, k1=k - 1, body=body)


def verilog_regs(simd: int) -> str:
    k = count_width(simd)
    return _WRAPPER.format(n1=simd - 1, n2=simd - 2, k1=k - 1,
                           body=_REGS.format(n1=simd - 1))


class PopcountTop(Elaboratable):
    """The wrapper of the ``yosys`` variant, with ``count`` from ``popcount_fn(~(a ^ w))``."""

    def __init__(self, simd: int, popcount_fn=popcount):
        self.simd, self.popcount_fn = simd, popcount_fn
        self.sync = ClockDomain("sync", reset_less=True)
        self.a_in, self.w_in = Signal(name="a_in"), Signal(name="w_in")
        self.count = Signal(count_width(simd), name="count")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.sync
        a, w = Signal(self.simd), Signal(self.simd)
        m.d.sync += [a.eq(Cat(self.a_in, a[:-1])), w.eq(Cat(self.w_in, w[:-1])),
                     self.count.eq(self.popcount_fn(~(a ^ w)))]
        return m


def verilog_hwgen(simd: int, popcount_fn=popcount) -> str:
    top = PopcountTop(simd, popcount_fn)
    return verilog.convert(top, name="top", ports=[top.sync.clk, top.a_in, top.w_in,
                                                      top.count])


def _run(var: str, args: list[str], cwd: Path, log: Path, product: Path) -> None:
    # Output through a pipe: YoWASP Yosys can stop silently when stdout is a regular file.
    proc = subprocess.run([tool_path(var), *args], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    log.write_text(proc.stdout)
    if proc.returncode or not product.exists():
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise RuntimeError(f"{var} failed (exit {proc.returncode}, {product.name} "
                           f"{'present' if product.exists() else 'missing'}); log {log}:\n{tail}")


def run_case(family: str, simd: int, variant: str, work: Path, *, freq_mhz: float = 100.0,
             popcount_fn=popcount, seed: int = 1) -> dict:
    """Synthesize and place one case in ``work``; return its JSON record."""
    fam = FAMILIES[family]
    work.mkdir(parents=True, exist_ok=True)
    source = {"yosys": verilog_baseline, "regs": verilog_regs}.get(variant)
    text = source(simd) if source else verilog_hwgen(simd, popcount_fn)
    (work / "top.v").write_text(text)
    started = time.monotonic()
    script = (f"read_verilog top.v; {fam['synth']} -top top -json top.json; "
              f"tee -q -o stat.json stat -json")
    _run("YOSYS", ["-q", "-l", "yosys.log", "-p", script], work, work / "yosys.tee.log",
         work / "top.json")
    _run(fam["nextpnr"], [*fam["pnr_args"], "--json", "top.json", "--report", "report.json",
                          "--freq", str(freq_mhz), "--seed", str(seed),
                          "--timing-allow-fail"],
         work, work / "nextpnr.log", work / "report.json")
    report = json.loads((work / "report.json").read_text())
    stat = json.loads((work / "stat.json").read_text())
    cells = stat["modules"]["\\top"]["num_cells_by_type"]
    # One clock; nextpnr names it after its global buffer ("clk$SB_IO_IN_$glb_clk", ...).
    fmax = report.get("fmax", {})
    clk = next((v for k, v in fmax.items() if re.search(r"\bclk\b", k)), None)
    lcs = report["utilization"][fam["cell"]]["used"]
    return {
        "family": family, "simd": simd, "variant": variant,
        "lcs": lcs, "lcs_per_bit": round(lcs / simd, 3),
        "fmax_mhz": None if clk is None else round(clk["achieved"], 1),
        "yosys_cells": {k: v for k, v in sorted(cells.items())},
        "seconds": round(time.monotonic() - started, 1),
    }


def add_logic(records: list[dict]) -> None:
    """Fill ``logic`` and ``logic_per_bit`` (LCs minus the same case's ``regs`` variant)."""
    regs = {(r["family"], r["simd"]): r["lcs"] for r in records if r["variant"] == "regs"}
    for r in records:
        base = regs.get((r["family"], r["simd"]))
        if base is not None and r["variant"] != "regs":
            r["logic"] = r["lcs"] - base
            r["logic_per_bit"] = round(r["logic"] / r["simd"], 3)


def table(records: list[dict]) -> str:
    """The records as a Markdown table."""
    lines = ["| family | SIMD | variant | LCs | logic LCs | logic LCs/bit | fmax MHz |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in records:
        logic = r.get("logic", "")
        per_bit = f"{r['logic_per_bit']:.2f}" if "logic_per_bit" in r else ""
        lines.append(f"| {r['family']} | {r['simd']} | {r['variant']} | {r['lcs']} | {logic} | "
                     f"{per_bit} | {r['fmax_mhz']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/popcount_lc.json"))
    parser.add_argument("--simd", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--family", nargs="+", choices=sorted(FAMILIES),
                        default=["ice40", "ecp5"])
    parser.add_argument("--variant", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--freq", type=float, default=100.0, help="clock constraint, MHz")
    parser.add_argument("--keep", type=Path, help="keep the build folders here")
    args = parser.parse_args(argv)
    if any(s < 2 for s in args.simd):
        parser.error("--simd values must be at least 2")

    records = []
    with tempfile.TemporaryDirectory(prefix="popcount_lc-") as tmp:
        root = args.keep or Path(tmp)
        for family in args.family:
            for simd in args.simd:
                for variant in args.variant:
                    rec = run_case(family, simd, variant, root / f"{family}-{simd}-{variant}",
                                   freq_mhz=args.freq)
                    records.append(rec)
                    print(f"{family:5} simd={simd:4} {variant:5}: {rec['lcs']:5} "
                          f"{FAMILIES[family]['cell']}, fmax {rec['fmax_mhz']} MHz "
                          f"({rec['seconds']} s)", file=sys.stderr, flush=True)
    add_logic(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cases": records}, indent=2) + "\n")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
