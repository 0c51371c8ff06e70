"""Synthesis for a board: BoardTop → Yosys → nextpnr → bitstream, and report.json.

Amaranth's platform writes the build plan (RTLIL, Yosys script, pin constraints and the
commands); hwgen runs its commands one by one through :func:`toolchain.run_tool`, so each tool
is the user's (an environment variable) or the YoWASP default, its output goes through a pipe
into a log, and a failure raises :class:`ToolError` with the log's tail. The output folder
follows :mod:`hwgen.outdir`'s rule: everything is built in a temporary sibling, renamed into
place only when the bitstream and the report are complete; a failed build's folder is kept as
``<output>.failed`` for its logs, and an existing output folder is left as it was.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

from amaranth._toolchain import tool_env_var

from ..outdir import OutputDir
from ..plan import NetworkPlan, plan
from ..spec import Network
from .boards import Board, BoardError, board
from .timing import critical_path
from .tools import ToolError, run_tool, tool_env, tool_path

__all__ = ["build", "check_build", "check_dsp", "board_plan", "spec_files", "FAMILY_CELLS"]

#: nextpnr's cell types (its --report "utilization") → report.json keys, per family.
FAMILY_CELLS = {
    "ice40": {"lcs": "ICESTORM_LC", "bram": "ICESTORM_RAM", "spram": "ICESTORM_SPRAM",
              "dsp": "ICESTORM_DSP"},
    "ecp5": {"lut4": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "bram": "DP16KD",
             "dsp": "MULT18X18D"},
}

#: What each step must leave behind (a zero exit status alone is not trusted).
_PRODUCTS = {
    "yosys": ["top.json"],
    "nextpnr-ice40": ["top.asc", "report_pnr.json"],
    "icepack": ["top.bin"],
    "nextpnr-ecp5": ["top.config", "report_pnr.json"],
    "ecppack": ["top.bit"],
}
_BITSTREAM = {"ice40": "top.bin", "ecp5": "top.bit"}
#: The tools of a build, by their environment variable.
_CHAIN = {"YOSYS", "NEXTPNR_ICE40", "ICEPACK", "NEXTPNR_ECP5", "ECPPACK"}
_NEXTPNR_REPORT = ["--report", "report_pnr.json"]
_YOSYS_STAT = "tee -q -o synth_stat.json stat -json"


def _check_spram(network: Network, info: Board) -> None:
    """BoardError unless the board has the SPRAMs the network's ``weight_memory = "spram"``
    layers need."""
    from ..weight_image import spram_layers, spram_shape

    layers = spram_layers(network)
    needed = sum(math.prod(spram_shape(width, len(words))) for _, width, words in layers)
    if needed > info.resources.get("spram", 0):
        names = ", ".join(name for name, _, _ in layers)
        raise BoardError(f"cannot build for {info.name}: layers {names} keep their weights in "
                         f"SPRAM (weight_memory = \"spram\") and need {needed} SPRAM blocks; "
                         f"{info.device} has {info.resources.get('spram', 0)}")


def _check_clock_pin(info: Board) -> None:
    """ValueError unless the board's clock comes from a pin the PLL can take."""
    from amaranth.build import ResourceError

    platform = info.platform()
    try:
        platform.lookup(platform.default_clk, 0)
    except ResourceError:
        raise ValueError(f"its clock is the FPGA's internal oscillator "
                         f"({platform.default_clk}), not a pin the PLL can take; build without "
                         f"--clock-mhz") from None


def _uart_figures(network: Network, baud: int) -> dict:
    """Bytes on the line per inference (INFER frame + RESULT frame, docs/protocol.md) and the
    inferences per second the UART alone allows (10 bits per byte, request/response)."""
    from ..protocol import CRC_BYTES, HEADER_BYTES, result_bytes

    frame = HEADER_BYTES + CRC_BYTES
    classes = network.layer_io()[-1][1].size
    request = frame + network.input_type.size
    response = frame + result_bytes(classes)
    return {"baud": baud, "request_bytes": request, "response_bytes": response,
            "inferences_per_second": round(baud / 10 / (request + response), 1)}


#: The tools of each family's chain, by their environment variable (checked before building).
_FAMILY_TOOLS = {"ice40": ["YOSYS", "NEXTPNR_ICE40", "ICEPACK"],
                 "ecp5": ["YOSYS", "NEXTPNR_ECP5", "ECPPACK"]}


def check_build(network: Network, board_name: str, *, clock_mhz: float | None = None,
                baud: int = 115200) -> Board:
    """Everything :func:`build` refuses before it starts, checked in a moment: the board, the
    network on the board top, its SPRAMs and DSPs, the clock and the UART rate
    (:class:`BoardError`), and the tools (:class:`ToolError`). Returns the board."""
    return _checked(network, board_name, clock_mhz=clock_mhz, baud=baud)[0]


def board_plan(network: Network, info: Board) -> NetworkPlan:
    """The network planned for a board: ``mac = "auto"`` layers on the device's DSPs where
    they fit (:func:`hwgen.plan.plan` with its DSP budget)."""
    return plan(network, info.resources.get("dsp", 0))


def _checked(network: Network, board_name: str, *, clock_mhz: float | None,
             baud: int) -> tuple[Board, NetworkPlan]:
    """:func:`check_build`'s checks; the board and the build's one plan."""
    from ..rtl.board import check_network

    info = board(board_name)
    try:
        check_network(network)
    except ValueError as exc:
        raise BoardError(f"cannot build for {board_name}: {exc}") from None
    _check_spram(network, info)
    net_plan = board_plan(network, info)
    check_dsp(network, info, net_plan)
    if clock_mhz is None:
        clock_mhz = info.default_clock_mhz
    try:  # checked before the board top exists (an unused Elaboratable warns)
        from ..rtl.clock import clock_config
        from ..rtl.uart import uart_divisor

        config = (None if clock_mhz is None else
                  clock_config(info.family, info.clk_hz, clock_mhz * 1e6))
        if config is not None:
            _check_clock_pin(info)
        uart_divisor(info.clk_hz if config is None else round(config.out_hz), baud)
    except ValueError as exc:
        raise BoardError(f"cannot build for {board_name}: {exc}") from None
    tool_env(_FAMILY_TOOLS[info.family])
    return info, net_plan


def build(network: Network, board_name: str, out_dir: str | Path | OutputDir, *,
          clock_mhz: float | None = None, baud: int = 115200, log=None, force: bool = False,
          report_extra: dict | None = None, seed: int | None = None) -> dict:
    """Synthesize ``network`` in a :class:`~hwgen.rtl.board.BoardTop` for ``board_name``.

    Writes the bitstream, the tools' logs and ``report.json`` (with ``report_extra`` added)
    into ``out_dir`` and returns the report. ``out_dir`` follows hwgen's output-folder rule
    (:mod:`hwgen.outdir`: a new or empty folder, or hwgen's earlier build of the same spec;
    another of hwgen's outputs with ``force``; :class:`~hwgen.outdir.OutputError`
    otherwise); it is replaced only on success, and a failed build's work folder is kept as
    ``<out_dir>.failed``. With ``clock_mhz`` the design runs from the PLL at the highest
    frequency it makes not above that; without, at the board's ``default_clock_mhz``
    (through the PLL) or its oscillator. The build fails when nextpnr's fmax is below the
    clock. Raises :class:`BoardError` for an unknown board, a clock the PLL cannot make or a
    network the board top cannot serve, :class:`ToolError` when a tool is missing or fails.
    ``log`` (a callable taking a line) hears about each step. ``seed`` is nextpnr's placement
    seed (default: nextpnr's own); the report names it and the critical path
    (:func:`hwgen.toolchain.timing.critical_path`).
    """
    info, net_plan = _checked(network, board_name, clock_mhz=clock_mhz, baud=baud)
    if isinstance(out_dir, OutputDir):
        out = out_dir
    else:
        out = OutputDir(out_dir, kind="build", command="build", spec=network.source,
                        force=force, protect=spec_files(network), failed=True)
    with out.staged() as tmp:
        try:
            report = _synthesize(network, net_plan, info, tmp, clock_mhz=clock_mhz, baud=baud,
                                 log=log, seed=seed)
        except ToolError as exc:
            # Keep the failed work folder (its logs) beside the output, never as the output.
            failed = out.commit_failed()
            raise ToolError(str(exc).replace(str(tmp), str(failed))) from None
        report.update(report_extra or {})
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        out.commit()
    return report


def spec_files(network: Network) -> list[str]:
    """The files a network was read from (spec, NPZ, test split): their folders are never an
    output folder."""
    return [p for p in (network.source, network.arrays_source, network.dataset)
            if p is not None and str(p) != "<python>"]


def _synthesize(network: Network, net_plan: NetworkPlan, info: Board, tmp: Path, *,
                clock_mhz: float | None, baud: int, log, seed: int | None = None) -> dict:
    """Run the board's synthesis chain in ``tmp`` on the network as ``net_plan`` plans it;
    the report (not yet written)."""
    from ..rtl.board import BoardTop

    start = time.monotonic()
    if clock_mhz is None:
        clock_mhz = info.default_clock_mhz
    clock_hz = None if clock_mhz is None else clock_mhz * 1e6
    platform = info.platform()
    top = BoardTop(network, clk_hz=info.clk_hz, uart=info.uart, baud=baud, clock_hz=clock_hz,
                   family=info.family, net_plan=net_plan)
    # iCE40 synthesis maps multipliers to SB_MAC16 only when asked; hwgen's logic-mapped
    # products have no $mul cells, so only the layers planned on DSPs get them.
    synth_opts = "-dsp" if info.family == "ice40" and info.resources.get("dsp") else ""
    nextpnr_opts = _NEXTPNR_REPORT + ([] if seed is None else ["--seed", str(seed)])
    build_plan = platform.prepare(top, name="top", nextpnr_opts=" ".join(nextpnr_opts),
                                  script_after_synth=_YOSYS_STAT, synth_opts=synth_opts)
    # Only the synthesis chain: a platform's extra steps (the OrangeCrab's dfu-suffix, which
    # marks the bitstream for dfu-util) are not needed by hwgen flash (openFPGALoader).
    commands = [argv for argv in json.loads(build_plan.files["build_top.json"])["commands"]
                if tool_env_var(argv[0]) in _CHAIN]
    env = tool_env([tool_env_var(argv[0]) for argv in commands])
    for name, content in build_plan.files.items():
        (tmp / name).write_bytes(content.encode() if isinstance(content, str) else content)
    for argv in commands:
        tool, args = argv[0], list(argv[1:])
        if tool.startswith("nextpnr") and "--report" not in args:
            args += nextpnr_opts  # an AMARANTH_nextpnr_opts in the environment won
        if log:
            log(f"running {tool}")
        step = time.monotonic()
        run_tool(tool_env_var(tool), args, cwd=tmp, log=tmp / f"{tool}.log", env=env)
        for product in _PRODUCTS.get(tool, []):
            if not (tmp / product).is_file():
                raise ToolError(f"{tool} exited with status 0 but wrote no {product}; "
                                f"log {tmp / (tool + '.log')}:\n"
                                f"{_tail(tmp / (tool + '.log'))}")
        if tool == "yosys":
            _check_fit(network, info, tmp / "synth_stat.json")
        if log:
            log(f"  {tool} done in {time.monotonic() - step:.1f} s")
    report = _report(network, net_plan, info, tmp, env, time.monotonic() - start, top)
    report["nextpnr_seed"] = seed
    return report


#: Yosys' memory and DSP cells per family → the board resource they use up.
_SYNTH_CELLS = {
    "ice40": {"SB_RAM40_4K": "bram", "SB_SPRAM256KA": "spram", "SB_MAC16": "dsp"},
    "ecp5": {"DP16KD": "bram", "MULT18X18D": "dsp"},
}
_RESOURCE_NAMES = {"bram": "block RAMs", "spram": "SPRAMs", "dsp": "DSPs"}


def check_dsp(network: Network, info: Board, net_plan: NetworkPlan | None = None) -> None:
    """Refuses ``mac = "dsp"`` layers on a device without DSP blocks, or more DSPs than it
    has, before anything is built (``net_plan``: the network's plan for the board, default
    :func:`board_plan`)."""
    available = info.resources.get("dsp", 0)
    p = net_plan or board_plan(network, info)
    wanted = [(i, lp) for i, (layer, lp) in enumerate(zip(network.layers, p.layers,
                                                         strict=True))
              if getattr(layer, "mac", "auto") == "dsp"]
    if wanted and not available:
        i, lp = wanted[0]
        raise BoardError(f"{network.source}: layers[{i}].mac: {lp.name} asks for \"dsp\", but "
                         f"{info.name} ({info.device}) has no DSP blocks; use \"lut\" or "
                         f"\"auto\"")
    if p.dsps > available:
        raise BoardError(f"cannot build for {info.name}: the network needs {p.dsps} DSP "
                         f"multipliers (" + ", ".join(f"{lp.name} {lp.dsps}" for lp in p.layers
                                                      if lp.dsps)
                         + f"), {info.device} has {available}; map some layers with "
                         f"mac = \"lut\" or fold them further (smaller pe/simd)")


def _check_fit(network: Network, info: Board, stat_path: Path) -> None:
    """Stop after synthesis, with the counts, when the design needs more block RAMs (or
    SPRAMs, DSPs) than the device has: placement could only fail later, less clearly."""
    try:
        stat = json.loads(stat_path.read_text())
    except (OSError, ValueError):
        return
    cells = stat.get("design", {}).get("num_cells_by_type", {})
    for cell, key in _SYNTH_CELLS[info.family].items():
        used, available = int(cells.get(cell, 0)), info.resources.get(key, 0)
        if used > available:
            raise ToolError(f"{network.name} needs {used} {_RESOURCE_NAMES[key]} ({cell}) "
                            f"after synthesis; {info.name} ({info.device}) has {available} "
                            f"(weights and line buffers live in block RAM; see "
                            f"hwgen check's memory report)")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _usage(utilization: dict, cell: str) -> dict | None:
    entry = utilization.get(cell)
    if entry is None:
        return None
    return {"used": int(entry["used"]), "available": int(entry["available"])}


def _yosys_ffs(path: Path, family: str) -> int | None:
    """Flip-flops counted by Yosys' ``stat -json`` after synthesis (iCE40: SB_DFF*)."""
    try:
        stat = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    cells = stat.get("design", {}).get("num_cells_by_type")
    if cells is None:
        return None
    prefix = "SB_DFF" if family == "ice40" else "TRELLIS_FF"
    return sum(int(n) for kind, n in cells.items() if kind.startswith(prefix))


def _nextpnr_version(var: str, env: dict) -> str | None:
    try:
        proc = subprocess.run([tool_path(var, env), "--version"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env, timeout=120)
    except (OSError, ToolError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\(Version ([^)\s]+)\)", proc.stdout)
    return found.group(1) if found else None


def _yosys_version(rpt: Path) -> str | None:
    try:
        found = re.search(r"Yosys \S+ \(git sha1 \w+", rpt.read_text(errors="replace"))
    except OSError:
        return None
    return found.group(0) + ")" if found else None


def _report(network: Network, p: NetworkPlan, info: Board, work: Path, env: dict,
            seconds: float, top) -> dict:
    pnr = json.loads((work / "report_pnr.json").read_text())
    utilization = pnr.get("utilization", {})
    cells = FAMILY_CELLS[info.family]

    report: dict = {
        "board": info.name,
        "device": info.device,
        "package": info.package,
        "family": info.family,
        "network": network.name,
        "lcs": None,
        "lut4": None,
    }
    for key in ("lcs", "lut4", "ffs", "bram", "spram", "dsp"):
        if key in cells:
            report[key] = _usage(utilization, cells[key])
        elif key in info.resources:
            report[key] = {"used": 0, "available": info.resources[key]}
    if info.family == "ice40":
        ffs = _yosys_ffs(work / "synth_stat.json", info.family)
        report["ffs"] = None if ffs is None else {"used": ffs,
                                                  "available": info.resources["ffs"]}

    fmax = [clock["achieved"] for clock in pnr.get("fmax", {}).values()]
    fmax_mhz = round(min(fmax), 2) if fmax else None
    cycles = p.cycles_per_inference
    clock_mhz = round(top.clk_hz / 1e6, 4)
    report.update({
        "fmax_mhz": fmax_mhz,
        "critical_path": critical_path(pnr),
        "clock_mhz": clock_mhz,
        "pll": None if top.clock_request_hz is None else {
            "oscillator_mhz": info.clock_mhz,
            "requested_mhz": round(top.clock_request_hz / 1e6, 4),
            "achieved_mhz": clock_mhz,
            "primitive": None if top.pll_config is None else
            "SB_PLL40" if info.family == "ice40" else "EHXPLLL",
            "config": None if top.pll_config is None else {
                k: v for k, v in vars(top.pll_config).items() if isinstance(v, int | float)}},
        "mac": {lp.name: lp.mac for lp in p.layers if lp.mac is not None},
        "dsp_model": p.dsps,
        "cycles_per_inference": cycles,
        "latency_cycles": p.latency,
        "inferences_per_second_at_fmax": (round(fmax_mhz * 1e6 / cycles, 1)
                                          if fmax_mhz else None),
        "inferences_per_second_at_clock": round(top.clk_hz / cycles, 1),
        "uart": _uart_figures(network, top.baud),
        "bitstream": _BITSTREAM[info.family],
    })
    if fmax_mhz is not None and fmax_mhz < clock_mhz:
        raise ToolError(f"timing: nextpnr's fmax {fmax_mhz} MHz is below the {clock_mhz} MHz "
                        f"clock; build with a lower --clock-mhz, or fold the network further "
                        f"(log {work / 'top.tim'})")
    nextpnr_var = tool_env_var(f"nextpnr-{info.family}")
    report["tools"] = {
        "yosys": _yosys_version(work / "top.rpt"),
        "nextpnr": _nextpnr_version(nextpnr_var, env),
    }
    report["build_seconds"] = round(seconds, 1)
    return report
