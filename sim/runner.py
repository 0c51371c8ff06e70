"""Runner glue: generate a tapped network top, run its cocotb bench, read back the verdict.

Used by the tests and by ``hwgen sim``. The golden model's beats for every layer go to the
bench in a case file; the bench compares every beat and measures cycles; :func:`simulate`
returns a :class:`SimResult`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwgen import golden
from hwgen.build.toolchain import ToolError, verilator_dir
from hwgen.numeric import TensorType, encode, pack_lanes
from hwgen.plan import NetworkPlan, plan
from hwgen.spec import Network

__all__ = ["SIMULATORS", "SimError", "SimResult", "simulate", "stream_beats"]

SIMULATORS = ("verilator", "icarus")
TOPLEVEL = "hwgen_top"


class SimError(Exception):
    """The simulation could not run (build failure, crash); not a mismatch."""


@dataclass
class SimResult:
    """Verdict of one bench run. ``ok`` means every beat matched and both cycle figures agree."""

    frames: int
    predictions: np.ndarray
    mismatches: list[dict]
    cycles_per_inference: int | None
    latency_cycles: int | None
    model_cycles_per_inference: int
    model_latency_cycles: int | None
    stress_cycles: int
    timed_out: bool
    seconds: float
    work_dir: Path
    extra: dict = field(default_factory=dict)

    @property
    def first_mismatch(self) -> dict | None:
        return self.mismatches[0] if self.mismatches else None

    @property
    def cycles_match(self) -> bool:
        """Measured figures equal the model's (latency only where the model predicts it)."""
        return (self.cycles_per_inference == self.model_cycles_per_inference
                and self.model_latency_cycles in (None, self.latency_cycles))

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.timed_out and self.cycles_match


def stream_beats(values: np.ndarray, t: TensorType, lanes: int) -> list[int]:
    """Values of a batch of tensors (N × shape) as the stream's beats, frame after frame."""
    codes = encode(np.asarray(values).reshape(len(values), -1), t.bits, t.signed)
    return pack_lanes(codes.reshape(-1, lanes), 1 if t.binary else t.bits)


def _tap_spec(name: str, t: TensorType, lanes: int, values: np.ndarray, *, fire: str | None,
              payload: str) -> dict:
    beats = stream_beats(values, t, lanes)
    return {"name": name, "lanes": lanes, "bits": t.bits, "signed": t.signed,
            "frame_beats": t.size // lanes, "fire": fire, "payload": payload,
            "beats": [format(b, "x") for b in beats]}


def write_case(network: Network, net_plan: NetworkPlan, x: np.ndarray, path: Path, *,
               seed: int, gaps: float, backpressure: float, timing_frames: int) -> None:
    """The bench's case file: stimulus, every layer's expected beats, rates, cycle model."""
    outputs = golden.run(network, x)
    taps = []
    for lp in net_plan.layers[:-1]:
        taps.append(_tap_spec(lp.name, lp.out_type, lp.out_lanes, outputs[lp.name],
                              fire=f"tap_{lp.name}_fire", payload=f"tap_{lp.name}_payload"))
    last = net_plan.layers[-1]
    case = {
        "seed": seed, "gaps": gaps, "backpressure": backpressure,
        "frames": len(x), "timing_frames": timing_frames,
        "cycles_per_inference": net_plan.cycles_per_inference,
        "latency_cycles": net_plan.latency,
        "latency_bound": net_plan.latency_bound,
        "input": _tap_spec("input", net_plan.input_type, net_plan.input_lanes, x, fire=None,
                           payload="i_stream__payload"),
        "taps": taps,
        "output": _tap_spec(last.name, last.out_type, last.out_lanes, outputs[last.name],
                            fire=None, payload="o_stream__payload"),
        "results": str(path.with_name("results.json")),
    }
    path.write_text(json.dumps(case))


def _runner(simulator: str):
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise SimError(f"unknown simulator {simulator!r} (expected one of: "
                       f"{', '.join(SIMULATORS)})")
    if simulator == "verilator":
        bin_dir = str(verilator_dir())
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        # The PyPI wheel's verilated.mk leaves the "read a precompiled header" option empty,
        # so C++ compiles fail; make takes the fix from MAKEFLAGS as a command-line variable.
        if "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "")
                                       + " CFG_CXXFLAGS_PCH_I=-include").strip()
    elif not shutil.which("iverilog"):
        raise ToolError("icarus: iverilog not found (install it with: apt-get install iverilog)")
    return get_runner(simulator)


def write_verilog(network: Network, path: Path) -> None:
    """The network top with taps on every layer's output, as Verilog module ``hwgen_top``."""
    from amaranth.back import verilog

    from hwgen.rtl.network import NetworkTop

    path.write_text(verilog.convert(NetworkTop(network, taps=True), name=TOPLEVEL,
                                    emit_src=False))


def simulate(network: Network, x: np.ndarray, work_dir: str | Path, *,
             simulator: str = "verilator", seed: int = 0, gaps: float = 0.25,
             backpressure: float = 0.25, timing_frames: int = 4,
             waves: bool = False) -> SimResult:
    """Run the network's RTL on inputs ``x`` (N × input shape, values) in cocotb.

    Every beat of every layer is compared with the golden model under random input gaps and
    output backpressure; the cycles per inference and latency are measured on a stall-free
    run of the first ``timing_frames`` frames (the inputs are repeated when there are fewer).
    """
    started = time.monotonic()
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    x = np.asarray(x, dtype=np.int64)
    if len(x) == 0:
        raise SimError("no inputs to simulate")
    net_plan = plan(network)
    # The timing phase needs at least two frames; stress uses the inputs as given.
    stim = x if len(x) >= 2 else np.concatenate([x, x])
    runner = _runner(simulator)
    source = work_dir / f"{TOPLEVEL}.v"
    write_verilog(network, source)
    case = work_dir / "case.json"
    write_case(network, net_plan, stim, case, seed=seed, gaps=gaps,
               backpressure=backpressure, timing_frames=timing_frames)
    results = case.with_name("results.json")
    results.unlink(missing_ok=True)
    build_log = work_dir / "build.log"
    try:
        runner.build(sources=[source], hdl_toplevel=TOPLEVEL, build_dir=work_dir / "build",
                     always=True, waves=waves, log_file=build_log, timescale=("1ns", "1ps"),
                     build_args=["-Wno-fatal"] if simulator == "verilator" else [])
    except (SystemExit, Exception) as exc:  # the runner exits on build failures
        tail = build_log.read_text()[-2000:] if build_log.exists() else ""
        raise SimError(f"{simulator} build failed ({exc}); log {build_log}\n{tail}") from None
    sim_log = work_dir / "sim.log"
    try:
        runner.test(test_module="hwgen_sim.network_bench", hdl_toplevel=TOPLEVEL,
                    build_dir=work_dir / "build", test_dir=work_dir,
                    extra_env={"HWGEN_CASE": str(case)}, waves=waves, log_file=sim_log,
                    results_xml=str(work_dir / "results.xml"))
    except (SystemExit, Exception) as exc:
        if not results.exists():
            raise SimError(f"{simulator} run failed ({exc}); log {sim_log}") from None
    if not results.exists():
        raise SimError(f"the bench wrote no results; log {sim_log}")
    got = json.loads(results.read_text())
    mismatches = got["timing_mismatches"] or got["mismatches"]
    return SimResult(
        frames=len(stim), predictions=golden.predict(network, stim), mismatches=mismatches,
        cycles_per_inference=got["cycles_per_inference"],
        latency_cycles=got["latency_cycles"],
        model_cycles_per_inference=net_plan.cycles_per_inference,
        model_latency_cycles=net_plan.latency,
        stress_cycles=got["stress_cycles"], timed_out=got["timed_out"],
        seconds=time.monotonic() - started, work_dir=work_dir)
