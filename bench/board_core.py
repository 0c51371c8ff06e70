"""LCs of the board core on iCE40: the UART, the framed protocol and the glue around a network.

The board core is everything of :class:`hwgen.rtl.board.BoardLogic` but the network: the
UART receiver and transmitter, :class:`~hwgen.rtl.framing.RequestParser`,
:class:`~hwgen.rtl.framing.ResponseSerializer`, :class:`~hwgen.rtl.framing.ResultCapture`,
:class:`~hwgen.rtl.board.BytePacker` and the glue of ``BoardCore``/``BoardLogic``. For each
case below this elaborates ``BoardLogic`` (12 MHz, the baud rate given), synthesizes it flat with
YoWASP Yosys (``synth_ice40 -device u``), places and routes it with nextpnr for the UP5K-SG48,
and counts the placed ``ICESTORM_LC`` cells by the component their name carries
(:func:`hwgen.toolchain.timing.component_of`), the cells nextpnr adds to enter and leave
carry chains by the cells they connect to (most are the network's); ``core`` is the sum over
every component but ``core.network*``. It also gives nextpnr's fmax and critical path (named
by component): whether the core or the network limits the clock.

The same is done for a git revision (``--baseline REF``, default f2fed36: the board core
before issue 17's changes): its ``hwgen`` package and ``tests/helpers.py`` are extracted into a
temporary folder and elaborated in a subprocess, so the two versions stand side by side in one
JSON.

Cases: ``tiny`` (8 8-bit inputs, 8 → 4 classes, the network of tests/toolchain/test_synth.py)
and ``mnist`` (784 8-bit inputs, one dense layer to 10 classes: an MNIST-sized frame and
result around a small network).

Usage::

    python bench/board_core.py --baseline REF [--out bench/results/board_core.json]
        [--case tiny mnist] [--baud 115200 3000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLK_HZ = 12_000_000
CASES = ("tiny", "mnist")
#: nextpnr's target: the 12 MHz oscillator is far below; the figure of interest is fmax.
FREQ_MHZ = 50.0


def network(case: str):
    """The network of a case (see the module docstring)."""
    import numpy as np

    from hwgen.spec import Input
    from tests.helpers import chain

    rng = np.random.default_rng(0)
    if case == "tiny":
        layers = [dict(out=8, weight_bits=1, out_bits=1, pe=4, simd=8),
                  dict(out=4, weight_bits=8, out_bits=None, pe=2, simd=4)]
        net, _ = chain(rng, Input((8,), 8, lanes=4), layers, argmax=True, name="tiny")
    elif case == "mnist":
        layers = [dict(out=10, weight_bits=1, out_bits=None, pe=2, simd=16)]
        net, _ = chain(rng, Input((784,), 8, lanes=1), layers, count=2, argmax=True,
                       name="mnist_core")
    else:
        raise ValueError(f"unknown case {case!r}; expected one of {', '.join(CASES)}")
    return net


def emit_verilog(case: str, baud: int, path: Path) -> None:
    """Write ``BoardLogic`` of ``case`` as Verilog (run in the subprocess of a revision)."""
    from amaranth.back import verilog

    import hwgen
    from hwgen.rtl.board import BoardLogic

    logic = BoardLogic(network(case), clk_hz=CLK_HZ, baud=baud)
    path.write_text(verilog.convert(logic, name="top", emit_src=False))
    print(Path(hwgen.__file__).resolve().parent)


def _extract(ref: str, into: Path) -> Path:
    """The ``hwgen`` package of git revision ``ref`` and the test helpers that build the
    cases' networks (they import ``hwgen``, so they must be of the same revision), extracted
    under ``into``."""
    archive = subprocess.run(["git", "archive", ref, "hwgen", "tests/__init__.py",
                              "tests/helpers.py"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _verilog(case: str, baud: int, source: Path | None, out: Path) -> None:
    """Elaborate ``case`` with the ``hwgen`` under ``source`` (None: this tree) into ``out``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (source, ROOT) if p is not None)
    proc = subprocess.run([sys.executable, __file__, "--emit", case, str(out), "--baud",
                           str(baud)], env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"elaborating {case} failed:\n{proc.stderr[-3000:]}")
    used = Path(proc.stdout.strip().splitlines()[-1])
    expected = (source / "hwgen") if source is not None else ROOT / "hwgen"
    if used != expected.resolve():
        raise RuntimeError(f"elaborated with {used}, not {expected}")


def _run(var: str, args: list[str], cwd: Path, log: Path, product: Path) -> None:
    """:func:`hwgen.toolchain.tools.run_tool`, and the file the step must leave behind."""
    from hwgen.toolchain.tools import run_tool

    run_tool(var, args, cwd=cwd, log=log)
    if not product.exists():
        raise RuntimeError(f"{var} exited with status 0 but wrote no {product.name}; log {log}")


def _part(cell: str) -> str:
    """The part a placed cell belongs to by its name: ``network`` for the network's cells,
    ``nextpnr`` for the cells nextpnr adds (carry chain entries and exits, constants), else its
    component."""
    from hwgen.toolchain.timing import component_of

    if cell.startswith("$nextpnr"):
        return "nextpnr"
    component = component_of(cell)
    return "network" if component.startswith("core.network") else component


def _parts(module: dict) -> Counter:
    """LCs of a placed module by :func:`_part`, with each cell nextpnr added (a carry chain's
    entry or exit) given to the part of the cells it shares nets with: most are the network's
    counters' and adders', which a count by name would put in the core. Nets with more than 8
    ends (constants, clocks, enables) do not count; a cell with no other neighbour stays
    ``nextpnr`` (counted in the core)."""
    ends: dict = {}
    for name, cell in module["cells"].items():
        for bits in cell["connections"].values():
            for bit in bits:
                ends.setdefault(bit, []).append(name)
    parts: Counter = Counter()
    for name, cell in module["cells"].items():
        if cell["type"] != "ICESTORM_LC":
            continue
        part = _part(name)
        if part == "nextpnr":
            votes = Counter(_part(other) for bits in cell["connections"].values()
                            for bit in bits if len(ends[bit]) <= 8 for other in ends[bit]
                            if other != name and not other.startswith(("$nextpnr", "$gbuf")))
            if votes:
                part = votes.most_common(1)[0][0]
        parts[part] += 1
    return parts


def measure(case: str, baud: int, source: Path | None, work: Path) -> dict:
    """Synthesize, place and route ``case``'s BoardLogic; LCs by part, fmax, critical path."""
    from hwgen.toolchain.timing import critical_path

    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _verilog(case, baud, source, work / "top.v")
    _run("YOSYS", ["-q", "-l", "yosys.log", "-p",
                   "read_verilog top.v; synth_ice40 -device u -top top -json top.json"],
         work, work / "yosys.tee.log", work / "top.json")
    _run("NEXTPNR_ICE40", ["--up5k", "--package", "sg48", "--pcf-allow-unconstrained",
                           "--json", "top.json", "--write", "placed.json",
                           "--report", "report.json", "--freq", str(FREQ_MHZ), "--seed", "1",
                           "--timing-allow-fail"],
         work, work / "nextpnr.log", work / "report.json")
    placed = json.loads((work / "placed.json").read_text())
    parts: Counter = Counter()
    for module in placed["modules"].values():
        parts.update(_parts(module))
    report = json.loads((work / "report.json").read_text())
    fmax = next((v["achieved"] for k, v in report.get("fmax", {}).items() if "clk" in k), None)
    path = critical_path(report, "clk")
    total = report["utilization"]["ICESTORM_LC"]["used"]
    core = total - parts["network"]
    return {
        "lcs_total": total,
        "lcs_network": parts["network"],
        "lcs_core": core,
        "lcs_by_part": dict(sorted((k, v) for k, v in parts.items() if k != "network")),
        "fmax_mhz": None if fmax is None else round(fmax, 1),
        "critical_path": path,
        # "top" names cells Yosys left without a name, "$gbuf…" nextpnr's global buffers
        "core_on_critical_path": None if path is None else any(
            not c.startswith(("core.network", "$gbuf")) and c != "top"
            for c in path["through"]),
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/board_core.json")
    parser.add_argument("--baseline", default="f2fed36", metavar="REF",
                        help="git revision measured beside the work tree (default f2fed36, "
                        "the board core before issue 17)")
    parser.add_argument("--case", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--baud", type=int, nargs="+", default=[115200, 3_000_000],
                        help="UART rates at 12 MHz (default 115200, the old default, and "
                        "3000000, the iCEBreaker's now)")
    parser.add_argument("--keep", type=Path, help="keep the build folders here")
    parser.add_argument("--emit", nargs=2, metavar=("CASE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.emit:
        emit_verilog(args.emit[0], args.baud[0], Path(args.emit[1]))
        return 0
    sys.path.insert(0, str(ROOT))
    baseline_rev = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT,
                                  check=True, capture_output=True, text=True).stdout.strip()
    records = []
    with tempfile.TemporaryDirectory(prefix="board_core-") as tmp:
        root = args.keep or Path(tmp)
        old = _extract(args.baseline, Path(tmp) / "baseline")
        for case in args.case:
            for baud in args.baud:
                record = {"case": case, "clk_hz": CLK_HZ, "baud": baud}
                for label, source in (("baseline", old), ("now", None)):
                    r = measure(case, baud, source, root / f"{case}-{baud}-{label}")
                    record[label] = r
                    print(f"{case:6} {baud:8} {label:8}: core {r['lcs_core']:5} LC (network "
                          f"{r['lcs_network']}), fmax {r['fmax_mhz']} MHz, ({r['seconds']} s)",
                          file=sys.stderr, flush=True)
                records.append(record)
    result = {"command": "python bench/board_core.py " + " ".join(argv or sys.argv[1:]),
              "baseline": baseline_rev, "device": "iCE40UP5K-SG48", "cases": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in records:
        print(f"{r['case']} at {r['baud']} baud: core {r['baseline']['lcs_core']} → "
              f"{r['now']['lcs_core']} LC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
