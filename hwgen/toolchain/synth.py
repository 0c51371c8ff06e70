"""Synthesis for a board: BoardTop → Yosys → nextpnr → bitstream, and report.json.

Amaranth's platform writes the build plan (RTLIL, Yosys script, pin constraints and the
commands); hwgen runs its commands one by one through :func:`toolchain.run_tool`, so each tool
is the user's (an environment variable) or the YoWASP default, its output goes through a pipe
into a log, and a failure raises :class:`ToolError` with the log's tail. The output folder
follows :mod:`hwgen.outdir`'s rule: everything is built in a temporary sibling, renamed into
place only when the bitstream and the report are complete; a failed build's folder is kept as
``<output>.failed`` for its logs, and an existing output folder is left as it was.

Yosys runs once per clock, nextpnr once per placement seed (``seed-N/``, in parallel) and the
best seed ships; ``clock_mhz="auto"`` (the default) measures fmax at the oscillator and
rebuilds from the PLL under it (:class:`AutoClock` decides, ``auto-K/`` keeps each pass).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Literal

from amaranth._toolchain import tool_env_var

from ..outdir import OutputDir
from ..plan import NetworkPlan, plan
from ..resources import RESOURCE_NAMES
from ..rtl.memory import COLLISION_FREE_ATTR
from ..spec import Network
from .block_ram_registers import absorb_output_registers_in
from .boards import Board, BoardError, board
from .timing import best_seed, critical_path, describe_seeds, fmax_of, seed_summary
from .tools import ToolError, run_tool, tool_env, tool_path

__all__ = ["build", "check_build", "check_dsp", "check_seeds", "clock_mode", "board_plan",
           "spec_files", "synthesized_logic", "FAMILY_CELLS", "DEFAULT_SEEDS", "MAX_PNR_SEED",
           "MAX_SEEDS", "AUTO_REBUILDS", "CLOCK_WORDS", "AutoClock"]

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
#: The packer's files that go from the shipped seed's folder into the build folder.
_SHIPPED = {"ice40": ["top.bin"], "ecp5": ["top.bit", "top.svf"]}
#: The tools of a build, by their environment variable.
_CHAIN = {"YOSYS", "NEXTPNR_ICE40", "ICEPACK", "NEXTPNR_ECP5", "ECPPACK"}
_NEXTPNR_REPORT = ["--report", "report_pnr.json"]
#: Yosys commands after reading the design: the memories marked
#: :data:`hwgen.rtl.memory.COLLISION_FREE` (one write, one read port) may read anything from
#: an address written in the same cycle.
COLLISION_FREE_SCRIPT = ("proc; memory_collect; setparam -set RD_COLLISION_X_MASK 1'1 "
                         f"t:$mem_v2 a:{COLLISION_FREE_ATTR} %i")
_YOSYS_STAT = "tee -q -o synth_stat.json stat -json"
#: Yosys 0.70's ABC9 re-integration (``abc_ops_reintegrate``, which took over the renaming of
#: mapped nets in Yosys PR 5973) can stop on this assertion for a correct design, depending
#: only on its wire names: sfc_w1a1 at its default folding on the ULX3S does, the same network
#: with the unused names purged or one layer folded differently does not (docs/boards.md,
#: "Yosys workarounds").
YOSYS_RENAME_ASSERT = "GetSize(conn.first) == GetSize(conn.second)"
#: The retry after :data:`YOSYS_RENAME_ASSERT`: drop the wires that drive nothing before
#: synthesis. The logic is unchanged; fewer cells are named after hwgen's signals.
YOSYS_RENAME_RETRY = "opt_clean -purge"


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


def _check_pll_reference(info: Board) -> None:
    """ValueError unless the board's clock can feed the PLL (a pin, or the UP5K's SB_HFOSC)."""
    from ..rtl.clock import pll_reference

    platform = info.platform()
    if pll_reference(platform) is None:
        raise ValueError(f"its clock is {platform.default_clk}, which cannot feed the PLL; "
                         f"build with --clock-mhz osc")


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

#: nextpnr's placement seeds of a build unless told otherwise. Placement, and so fmax, moves by
#: 1–4 % from seed to seed (issue 17's baseline); the build ships the best of them.
DEFAULT_SEEDS = (1, 2, 3)
#: nextpnr reads its seed as a signed 32-bit integer; hwgen uses 1 … 2³¹ − 1.
MAX_PNR_SEED = 2**31 - 1
#: At most this many seeds in one build.
MAX_SEEDS = 16
#: ``clock_mhz="auto"``: rebuilds with the PLL after the first pass, at most (each one after
#: the first steps down from the last rebuild's fmax).
AUTO_REBUILDS = 3
#: What ``clock_mhz`` may say besides a frequency in MHz.
CLOCK_WORDS = ("auto", "osc")

ClockRequest = float | Literal["auto", "osc"] | None


def check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """``seeds`` as a tuple: 1 to :data:`MAX_SEEDS` distinct integers from 1 to
    :data:`MAX_PNR_SEED`; ValueError otherwise."""
    try:
        values = tuple(seeds)
    except TypeError:
        raise ValueError(f"seeds must be a sequence of nextpnr seeds, not {seeds!r}") from None
    if not 1 <= len(values) <= MAX_SEEDS:
        raise ValueError(f"seeds must hold 1 to {MAX_SEEDS} nextpnr seeds, not {len(values)}")
    for seed in values:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= MAX_PNR_SEED:
            raise ValueError(f"a nextpnr seed must be an integer from 1 to {MAX_PNR_SEED}, "
                             f"not {seed!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"seeds must differ, not {list(values)}")
    return values


def clock_mode(info: Board, clock_mhz: ClockRequest) -> float | str:
    """What ``clock_mhz`` asks of ``info``: ``"auto"``, ``"osc"`` or a frequency in MHz.
    ``None`` is ``"auto"`` when the board's clock can feed the PLL (every board today), else
    ``"osc"``. BoardError for another word, or ``"auto"`` or a frequency on a board whose
    clock cannot feed the PLL."""
    from ..rtl.clock import pll_reference

    has_pll = pll_reference(info.platform()) is not None
    if clock_mhz is None:
        return "auto" if has_pll else "osc"
    if isinstance(clock_mhz, str):
        if clock_mhz not in CLOCK_WORDS:
            raise BoardError(f"clock_mhz must be a frequency in MHz, 'auto' or 'osc', not "
                             f"{clock_mhz!r}")
        if clock_mhz == "osc":
            return "osc"
    if not has_pll:
        try:
            _check_pll_reference(info)
        except ValueError as exc:
            raise BoardError(f"cannot build for {info.name}: {exc}") from None
    return clock_mhz


def check_build(network: Network, board_name: str, *, clock_mhz: ClockRequest = None,
                baud: int | None = None, seeds: Sequence[int] = DEFAULT_SEEDS) -> Board:
    """Everything :func:`build` refuses before it starts, checked in a moment: the board, the
    network on the board top, its SPRAMs and DSPs, the clock and the UART rate (``baud``,
    default the board's link rate :attr:`Board.baud`, which its USB-UART must carry and the
    clock make within 2 %: :meth:`Board.check_baud`) (:class:`BoardError`), the seeds
    (ValueError) and the tools (:class:`ToolError`). Returns the board."""
    return _checked(network, board_name, clock_mhz=clock_mhz, baud=baud, seeds=seeds)[0]


def synth_opts(info: Board) -> str:
    """The options of the family's ``synth_*`` command in a build. iCE40 synthesis maps
    multipliers to SB_MAC16 only when asked; hwgen's logic-mapped products have no $mul
    cells, so only the layers planned on DSPs get them."""
    return "-dsp" if info.family == "ice40" and info.resources.get("dsp") else ""


def board_plan(network: Network, info: Board) -> NetworkPlan:
    """The network planned for a board: ``mac = "auto"`` layers on the device's DSPs where
    they fit (:func:`hwgen.plan.plan` with its DSP budget)."""
    return plan(network, info.resources.get("dsp", 0))


def _checked(network: Network, board_name: str, *, clock_mhz: ClockRequest,
             baud: int | None, seeds: Sequence[int]
             ) -> tuple[Board, NetworkPlan, float | str, tuple[int, ...], int]:
    """:func:`check_build`'s checks; the board, the build's one plan, its clock mode, seeds
    and UART rate (``baud``, or the board's when ``None``)."""
    from ..rtl.board import check_network

    seeds = check_seeds(seeds)
    info = board(board_name)
    baud = info.baud if baud is None else baud
    try:
        check_network(network)
    except ValueError as exc:
        raise BoardError(f"cannot build for {board_name}: {exc}") from None
    _check_spram(network, info)
    net_plan = board_plan(network, info)
    check_dsp(network, info, net_plan)
    mode = clock_mode(info, clock_mhz)
    try:  # checked before the board top exists (an unused Elaboratable warns)
        from ..rtl.clock import clock_config

        # auto's first pass runs at the oscillator; a faster clock only divides the UART finer
        config = (None if isinstance(mode, str) else
                  clock_config(info.family, info.clk_hz, mode * 1e6))
    except ValueError as exc:
        raise BoardError(f"cannot build for {board_name}: {exc}") from None
    # BoardError naming the board and the rate, with the fastest rate that works
    info.check_baud(baud, info.clk_hz if config is None else round(config.out_hz))
    tool_env(_FAMILY_TOOLS[info.family])
    return info, net_plan, mode, seeds, baud


def build(network: Network, board_name: str, out_dir: str | Path | OutputDir, *,
          clock_mhz: ClockRequest = None, baud: int | None = None, log=None,
          force: bool = False, report_extra: dict | None = None,
          seeds: Sequence[int] = DEFAULT_SEEDS,
          jobs: int | None = None, logic_limit: int | None = None) -> dict:
    """Synthesize ``network`` in a :class:`~hwgen.rtl.board.BoardTop` for ``board_name``.

    Writes the bitstream, the tools' logs and ``report.json`` (with ``report_extra`` added)
    into ``out_dir`` and returns the report. ``out_dir`` follows hwgen's output-folder rule
    (:mod:`hwgen.outdir`: a new or empty folder, or hwgen's earlier build of the same spec;
    another of hwgen's outputs with ``force``; :class:`~hwgen.outdir.OutputError`
    otherwise); it is replaced only on success, and a failed build's work folder is kept as
    ``<out_dir>.failed``.

    Yosys runs once per clock; nextpnr places and routes its netlist once per seed of
    ``seeds`` (each in ``seed-N/``, up to ``jobs`` at a time, default the CPU count), and the
    seed with the highest fmax ships (``nextpnr_seed``, ``fmax_mhz``, ``critical_path``; all
    seeds in ``fmax_seeds``). ``clock_mhz``: a frequency runs the design from the PLL at the
    highest frequency it makes not above it; ``"osc"`` at the board's oscillator; ``"auto"``
    (the default, ``None``, where the board's clock feeds a PLL) builds at the oscillator
    first, then from the PLL at the highest frequency under the first pass's fmax with a
    margin (:func:`hwgen.rtl.clock.auto_clock`), stepping down at most
    :data:`AUTO_REBUILDS` times until the shipped seed meets it (``auto_clock`` in the
    report). ``baud``: the board top's UART rate, by default the board's link rate
    (:attr:`Board.baud`, ``hwgen boards``); every clock auto chooses makes it within 2 %
    (``uart`` in the report gives it with the frames' sizes). The build fails when the
    shipped seed's fmax is below the clock. Raises :class:`BoardError` for an unknown board,
    a clock the PLL cannot make, a rate the board's USB-UART does not carry or the clock does
    not make, or a network the board top cannot serve, ValueError for bad seeds,
    :class:`ToolError` when a tool is missing or fails or timing is not met. ``log`` (a
    callable taking a line) hears about each step. ``logic_limit``: stop after synthesis,
    before nextpnr (ToolError naming both counts), when the netlist needs more logic cells
    than that (:func:`synthesized_logic`; ``hwgen build --fold`` sets it to the board's
    routable logic).
    """
    info, net_plan, mode, seeds, baud = _checked(network, board_name, clock_mhz=clock_mhz,
                                                 baud=baud, seeds=seeds)
    if isinstance(out_dir, OutputDir):
        out = out_dir
    else:
        out = OutputDir(out_dir, kind="build", command="build", spec=network.source,
                        force=force, protect=spec_files(network), failed=True)
    jobs = max(1, min(len(seeds), jobs or os.cpu_count() or 1))
    start = time.monotonic()
    with out.staged() as tmp:
        try:
            if mode == "auto":
                report = _auto(network, net_plan, info, tmp, baud=baud, log=log, seeds=seeds,
                               jobs=jobs, logic_limit=logic_limit)
            else:
                report = _synthesize(network, net_plan, info, tmp,
                                     clock_mhz=None if mode == "osc" else mode, baud=baud,
                                     log=log, seeds=seeds, jobs=jobs,
                                     logic_limit=logic_limit)
                _check_timing(report, tmp)
                report.update({"clock_mode": "oscillator" if mode == "osc" else "fixed",
                               "auto_clock": None})
        except ToolError as exc:
            # Keep the failed work folder (its logs) beside the output, never as the output.
            failed = out.commit_failed()
            raise ToolError(str(exc).replace(str(tmp), str(failed))) from None
        report["build_seconds"] = round(time.monotonic() - start, 1)
        report.update(report_extra or {})
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        out.commit()
    return report


def spec_files(network: Network) -> list[str]:
    """The files a network was read from (spec, NPZ, test split): their folders are never an
    output folder."""
    return [p for p in (network.source, network.arrays_source, network.dataset)
            if p is not None and str(p) != "<python>"]


def _check_timing(report: dict, work: Path) -> None:
    """ToolError when the shipped seed's fmax is below the clock the design runs at."""
    fmax, clock = report["fmax_mhz"], report["clock_mhz"]
    if fmax is not None and fmax < clock:
        seed = report["nextpnr_seed"]
        raise ToolError(f"timing: nextpnr's fmax {fmax} MHz (seed {seed}, the best of "
                        f"{describe_seeds(report['fmax_seeds'])}) is below the {clock} MHz "
                        f"clock; build with a lower --clock-mhz or --clock-mhz auto, or fold "
                        f"the network further (log {work / f'seed-{seed}' / 'top.tim'})")


class AutoClock:
    """The decisions of ``clock_mhz="auto"``, fed what each pass measured; no tools run here.

    :meth:`start` takes the first pass (built at the oscillator) and returns the clock to
    rebuild at, in MHz, or ``None`` when the oscillator itself is the highest clock not above
    the request (the first pass ships). :meth:`measured` takes each rebuild's report and
    returns ``None`` when its shipped seed met the clock, else the next, lower clock: the
    request is the basis fmax × (1 − ``margin``) / (1 + ``tolerance``)
    (:func:`hwgen.rtl.clock.auto_clock`), the basis being the first pass's lowest fmax over
    its seeds, then the last rebuild's shipped fmax, which was below its clock, so every step
    is lower than the last; of the clocks not above the request, the highest that ``accept``
    takes (a frequency in Hz → bool: the build's UART rate within tolerance). After
    ``rebuilds`` rebuilds without success, or when nothing the board can clock is low enough,
    it raises :class:`ToolError`. :attr:`decisions` is
    report.json's ``auto_clock``; :attr:`final_pass` the pass that ships (1: the first).
    """

    def __init__(self, family: str, in_hz: int, *, margin: float | None = None,
                 tolerance: float = 0.0, rebuilds: int = AUTO_REBUILDS,
                 accept: Callable[[float], bool] | None = None):
        from ..rtl.clock import AUTO_MARGIN

        self.family, self.in_hz, self.rebuilds, self.accept = family, in_hz, rebuilds, accept
        self.margin = AUTO_MARGIN if margin is None else margin
        self.final_pass: int | None = None
        #: The exact frequency (Hz) of the clock the last request chose (:meth:`build_mhz`).
        self.clock_hz: Fraction | None = None
        self.decisions: dict = {"margin": self.margin, "oscillator_tolerance": tolerance,
                                "first_pass": None, "rebuilds": [], "clock_mhz": None,
                                "fmax_mhz": None}
        self.tolerance = tolerance

    def start(self, first: dict) -> float | None:
        """The first pass's report (``clock_mhz``, ``fmax_seeds``, ``fmax_mhz``): the clock to
        rebuild at, or ``None`` (it ships)."""
        self.decisions["first_pass"] = {key: first.get(key) for key in
                                        ("clock_mhz", "fmax_seeds", "pass_seconds")}
        basis = first["fmax_seeds"]["min"]
        if basis is None:
            raise ToolError("timing: clock auto: nextpnr reported no fmax in the first pass")
        return self._next(basis, first)

    def measured(self, report: dict) -> float | None:
        """A rebuild's report (``clock_mhz``, ``fmax_mhz``, ``nextpnr_seed``, ``fmax_seeds``):
        ``None`` when it met its clock (it ships), else the next clock to rebuild at."""
        met = report["fmax_mhz"] is not None and report["fmax_mhz"] >= report["clock_mhz"]
        self.decisions["rebuilds"][-1].update({
            "clock_mhz": report["clock_mhz"], "fmax_seeds": report.get("fmax_seeds"),
            "nextpnr_seed": report.get("nextpnr_seed"), "fmax_mhz": report["fmax_mhz"],
            "met": met, "pass_seconds": report.get("pass_seconds")})
        if met:
            return self._ship(len(self.decisions["rebuilds"]) + 1, report)
        return self._next(report["fmax_mhz"] or 0.0, None)

    def _ship(self, number: int, report: dict) -> None:
        self.final_pass = number
        self.decisions.update(clock_mhz=report["clock_mhz"], fmax_mhz=report["fmax_mhz"])
        return None

    def _next(self, basis_mhz: float, first: dict | None) -> float | None:
        from ..rtl.clock import auto_clock

        tried = self.decisions["rebuilds"]
        if len(tried) >= self.rebuilds:
            steps = ", ".join(f"{r['clock_mhz']} MHz (fmax {r['fmax_mhz']})" for r in tried)
            raise ToolError(f"timing: clock auto: no clock met timing after {len(tried)} "
                            f"rebuild{'s' if len(tried) > 1 else ''}: {steps}; build with a "
                            f"fixed --clock-mhz below these, or fold the network further")
        if not basis_mhz > 0:
            raise ToolError("timing: clock auto: nextpnr reported no fmax for the rebuild")
        try:
            request_hz, config = auto_clock(self.family, self.in_hz, basis_mhz * 1e6,
                                            margin=self.margin, tolerance=self.tolerance,
                                            accept=self.accept)
        except ValueError as exc:
            raise ToolError(f"timing: clock auto: {exc}") from None
        request = round(request_hz / 1e6, 4)
        if config is None:
            if first is None:  # stepping down to the oscillator: the first pass ships, if met
                first_pass = self.decisions["first_pass"]
                raise ToolError(f"timing: clock auto: stepping down from "
                                f"{tried[-1]['clock_mhz']} MHz reaches the "
                                f"{first_pass['clock_mhz']} MHz oscillator; build with "
                                f"--clock-mhz osc (the first pass's fmax: "
                                f"{describe_seeds(first_pass['fmax_seeds'])})")
            tried.append({"requested_mhz": request, "clock_mhz": first["clock_mhz"],
                          "oscillator": True})
            return self._ship(1, first)
        tried.append({"requested_mhz": request, "clock_mhz": round(config.out_hz / 1e6, 4)})
        self.clock_hz = config.out_exact
        return request_hz / 1e6

    def build_mhz(self, request_mhz: float) -> float:
        """The ``clock_mhz`` to rebuild at for ``request_mhz`` (what :meth:`start` or
        :meth:`measured` returned): the request itself when the highest clock the board makes
        under it is the chosen one, else (``accept`` refused that one, say for the UART rate)
        just above the chosen clock, so that the PLL solver picks it (distinct PLL outputs lie
        kHz apart)."""
        from ..rtl.clock import clock_config

        highest = clock_config(self.family, self.in_hz, request_mhz * 1e6)
        if highest is not None and highest.out_exact == self.clock_hz:
            return request_mhz
        return float(self.clock_hz + Fraction(1, 2)) / 1e6


def _auto(network: Network, net_plan: NetworkPlan, info: Board, tmp: Path, *, baud: int,
          log, seeds: tuple[int, ...], jobs: int, logic_limit: int | None = None) -> dict:
    """``clock_mhz="auto"`` driven by :class:`AutoClock`: a first pass at the oscillator (in
    ``tmp/auto-1``), then rebuilds from the PLL (``auto-2``, …) until the shipped seed meets
    the clock; the shipping pass's files are moved up into ``tmp``, the others keep their
    logs and reports. Only clocks that make ``baud`` (the build's rate, already resolved to
    the board's when not given) within the UART's tolerance are chosen. The report of that
    pass, with ``clock_mode`` and ``auto_clock``."""
    from ..rtl.clock import OSCILLATOR_TOLERANCE

    def uart_ok(hz: float) -> bool:
        try:
            info.check_baud(baud, round(hz))
        except BoardError:
            return False
        return True

    say = log or (lambda line: None)
    auto = AutoClock(info.family, info.clk_hz, accept=uart_ok,
                     tolerance=OSCILLATOR_TOLERANCE.get(info.platform().default_clk, 0.0))
    passes = [tmp / "auto-1"]
    passes[0].mkdir()
    say(f"clock auto: first pass at the {info.clock_mhz:g} MHz oscillator")
    first = _synthesize(network, net_plan, info, passes[0], clock_mhz=None, baud=baud, log=log,
                        seeds=seeds, jobs=jobs, logic_limit=logic_limit)
    reports = [first]
    request = auto.start(first)
    while request is not None:
        step = auto.decisions["rebuilds"][-1]
        basis = (first["fmax_seeds"]["min"] if len(reports) == 1 else
                 reports[-1]["fmax_mhz"])
        say(f"clock auto: rebuilding from the PLL at {step['clock_mhz']} MHz (asked "
            f"{step['requested_mhz']} MHz = {basis} MHz × {1 - auto.margin:g}"
            + (f" / {1 + auto.tolerance:g}" if auto.tolerance else "") + ")")
        passes.append(tmp / f"auto-{len(passes) + 1}")
        passes[-1].mkdir()
        report = _synthesize(network, net_plan, info, passes[-1],
                             clock_mhz=auto.build_mhz(request), baud=baud, log=log,
                             seeds=seeds, jobs=jobs)
        reports.append(report)
        request = auto.measured(report)
        if request is not None:
            say(f"clock auto: fmax {report['fmax_mhz']} MHz (seed {report['nextpnr_seed']}) "
                f"is below {report['clock_mhz']} MHz; stepping down")
    final, folder = reports[auto.final_pass - 1], passes[auto.final_pass - 1]
    retried = [f"{path.name}: {r['yosys_retry']}" for path, r in zip(passes, reports,
                                                                      strict=True)
               if r.get("yosys_retry")]
    if retried:  # any pass's, named by its folder
        final["yosys_retry"] = "; ".join(retried)
    say(f"clock auto: {final['clock_mhz']} MHz, fmax {final['fmax_mhz']} MHz (seed "
        f"{final['nextpnr_seed']})")
    _check_timing(final, folder)
    for earlier in passes:
        if earlier != folder:
            _prune(earlier, info.family)
    for item in folder.iterdir():
        item.rename(tmp / item.name)
    folder.rmdir()
    final.update({"clock_mode": "auto", "auto_clock": auto.decisions})
    return final


def _synthesize(network: Network, net_plan: NetworkPlan, info: Board, tmp: Path, *,
                clock_mhz: float | None, baud: int, log, seeds: Sequence[int] = DEFAULT_SEEDS,
                jobs: int = 1, logic_limit: int | None = None) -> dict:
    """One pass of the board's synthesis chain in ``tmp`` on the network as ``net_plan``
    plans it, at ``clock_mhz`` from the PLL (``None``: the oscillator): Yosys once, nextpnr
    once per seed in ``tmp/seed-N`` (``jobs`` at a time), the packer on the best seed, whose
    bitstream is put in ``tmp``. The report (not yet written; timing not checked)."""
    from ..rtl.board import BoardTop

    start = time.monotonic()
    say = log or (lambda line: None)
    clock_hz = None if clock_mhz is None else clock_mhz * 1e6
    platform = info.platform()
    top = BoardTop(network, clk_hz=info.clk_hz, uart=info.uart, baud=baud, clock_hz=clock_hz,
                   family=info.family, net_plan=net_plan)
    build_plan = platform.prepare(top, name="top", nextpnr_opts=" ".join(_NEXTPNR_REPORT),
                                  script_after_read=COLLISION_FREE_SCRIPT,
                                  script_after_synth=_YOSYS_STAT, synth_opts=synth_opts(info))
    # Only the synthesis chain: a platform's extra steps (the OrangeCrab's dfu-suffix, which
    # marks the bitstream for dfu-util) are not needed by hwgen flash (openFPGALoader).
    commands = [argv for argv in json.loads(build_plan.files["build_top.json"])["commands"]
                if tool_env_var(argv[0]) in _CHAIN]
    env = tool_env([tool_env_var(argv[0]) for argv in commands])
    for name, content in build_plan.files.items():
        (tmp / name).write_bytes(content.encode() if isinstance(content, str) else content)
    place = next(i for i, argv in enumerate(commands) if argv[0].startswith("nextpnr"))
    yosys_retry = None
    for argv in commands[:place]:
        if argv[0] == "yosys":
            yosys_retry = _run_yosys(list(argv[1:]), tmp, env, say)
        else:
            _run_step(argv[0], list(argv[1:]), tmp, env, say)
        if argv[0] == "yosys":
            _check_fit(network, info, tmp / "synth_stat.json", logic_limit)
            if info.family == "ecp5":
                moved = absorb_output_registers_in(tmp / "top.json")
                say(f"  {moved} block-RAM read registers moved into the block RAMs")
    nextpnr = commands[place][0]
    say(f"running {nextpnr} with seed{'s' if len(seeds) > 1 else ''} "
        f"{', '.join(map(str, seeds))} ({jobs} at a time)")
    step = time.monotonic()
    placed = _place(nextpnr, list(commands[place][1:]), seeds, tmp, env, jobs)
    mhz = [None if isinstance(r, ToolError) else fmax_of(r) for r in placed]
    summary = seed_summary(seeds, mhz)
    say(f"  {nextpnr} done in {time.monotonic() - step:.1f} s: fmax {describe_seeds(summary)}")
    chosen = best_seed(seeds, mhz)
    if chosen is None:
        errors = [r for r in placed if isinstance(r, ToolError)]
        if errors:
            raise errors[0]
        chosen = seeds[0]  # nextpnr reported no clock: ship the first seed
    work = tmp / f"seed-{chosen}"
    for argv in commands[place + 1:]:
        _run_step(argv[0], list(argv[1:]), work, env, say)
    for seed in seeds:  # the placements not shipped keep their logs and reports only
        if seed != chosen:
            for product in _PRODUCTS[nextpnr]:
                if product != "report_pnr.json":
                    (tmp / f"seed-{seed}" / product).unlink(missing_ok=True)
    for name in _SHIPPED[info.family]:
        (work / name).rename(tmp / name)
    report = _report(network, net_plan, info, tmp, placed[seeds.index(chosen)], env, top)
    report.update({"nextpnr_seed": chosen, "fmax_seeds": summary,
                   "pass_seconds": round(time.monotonic() - start, 1)})
    if yosys_retry:
        report["yosys_retry"] = yosys_retry
    return report


def _prune(folder: Path, family: str) -> None:
    """A pass that does not ship keeps its logs and reports, not its bitstream or placement
    (nothing to flash by mistake)."""
    for name in _SHIPPED[family]:
        (folder / name).unlink(missing_ok=True)
    for placed in folder.glob("seed-*/top.*"):
        if placed.suffix in (".asc", ".config"):
            placed.unlink()


def _run_step(tool: str, args: list[str], work: Path, env: dict, say) -> None:
    """One tool of the chain in ``work``; ToolError unless it wrote its products."""
    say(f"running {tool}")
    step = time.monotonic()
    run_tool(tool_env_var(tool), args, cwd=work, log=work / f"{tool}.log", env=env)
    _check_products(tool, work)
    say(f"  {tool} done in {time.monotonic() - step:.1f} s")


def _run_yosys(args: list[str], work: Path, env: dict, say) -> str | None:
    """Yosys on the build script in ``work``. If it stops on :data:`YOSYS_RENAME_ASSERT`, its
    report is kept as ``top.first.rpt`` and it runs once more with :data:`YOSYS_RENAME_RETRY`
    after the design is read; the retry's description is returned (``None``: no retry). Any
    other failure raises :class:`ToolError` with the ERROR lines of Yosys' own report, which
    its standard output does not always carry. The retry's command goes after
    :data:`COLLISION_FREE_SCRIPT`, the script's own commands after reading."""
    try:
        _run_step("yosys", args, work, env, say)
        return None
    except ToolError as error:
        errors = _yosys_errors(work / "top.rpt")
        if not any(YOSYS_RENAME_ASSERT in line for line in errors):
            raise ToolError("\n".join([str(error), *errors])) from None
    (work / "top.rpt").rename(work / "top.first.rpt")
    script = work / "top.ys"
    lines = script.read_text().splitlines()
    lines.insert(lines.index(COLLISION_FREE_SCRIPT) + 1, YOSYS_RENAME_RETRY)
    script.write_text("\n".join(lines) + "\n")
    retry = (f"Yosys stopped on its ABC9 re-integration assertion ({YOSYS_RENAME_ASSERT}; "
             f"report top.first.rpt); ran again with '{YOSYS_RENAME_RETRY}' before synthesis")
    say(f"  {retry}")
    try:
        _run_step("yosys", args, work, env, say)
    except ToolError as error:
        raise ToolError("\n".join([str(error), *_yosys_errors(work / "top.rpt")])) from None
    return retry


def _yosys_errors(report: Path) -> list[str]:
    """The ERROR lines of a Yosys report (``-l``), if it has any."""
    if not report.is_file():
        return []
    return [line for line in report.read_text(errors="replace").splitlines()
            if line.startswith("ERROR")]


def _check_products(tool: str, work: Path) -> None:
    for product in _PRODUCTS.get(tool, []):
        if not (work / product).is_file():
            raise ToolError(f"{tool} exited with status 0 but wrote no {product}; "
                            f"log {work / (tool + '.log')}:\n{_tail(work / (tool + '.log'))}")


def _nextpnr_args(args: list[str], work: Path, seed: int) -> list[str]:
    """nextpnr's arguments for a run in ``work/seed-N``: the files Yosys and Amaranth wrote
    in ``work`` (netlist, constraints) named from there, its seed, and timing failures
    reported rather than fatal (the build checks the seed it ships)."""
    out = ["../" + a if "/" not in a and (work / a).is_file() else a for a in args]
    if "--report" not in out:  # an AMARANTH_nextpnr_opts in the environment won
        out += _NEXTPNR_REPORT
    return out + ["--seed", str(seed), "--timing-allow-fail"]


def _place(tool: str, args: list[str], seeds: Sequence[int], work: Path, env: dict,
           jobs: int) -> list[dict | ToolError]:
    """nextpnr once per seed, each in ``work/seed-N``, ``jobs`` at a time: per seed (in
    order) its ``--report`` JSON, or the ToolError of a run that failed."""
    def run(seed: int) -> dict | ToolError:
        folder = work / f"seed-{seed}"
        folder.mkdir()
        try:
            run_tool(tool_env_var(tool), _nextpnr_args(args, work, seed), cwd=folder,
                     log=folder / f"{tool}.log", env=env)
            _check_products(tool, folder)
            return json.loads((folder / "report_pnr.json").read_text())
        except ToolError as exc:
            return exc
        except ValueError as exc:
            return ToolError(f"{tool} wrote an unreadable report ({exc}); log "
                             f"{folder / 'top.tim'}")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run, seeds))


#: Yosys' memory and DSP cells per family → the board resource they use up.
_SYNTH_CELLS = {
    "ice40": {"SB_RAM40_4K": "bram", "SB_SPRAM256KA": "spram", "SB_MAC16": "dsp"},
    "ecp5": {"DP16KD": "bram", "MULT18X18D": "dsp"},
}


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


def synthesized_logic(cells: dict[str, int], family: str) -> int:
    """The logic cells a synthesized netlist (Yosys' cell counts) needs at least: iCE40 one
    LC per SB_LUT4; ECP5 one TRELLIS_COMB per LUT4, two per CCU2C carry and four per
    TRELLIS_DPR16X4 LUT RAM (nextpnr adds route-through LUTs on top)."""
    if family == "ice40":
        return int(cells.get("SB_LUT4", 0))
    return (int(cells.get("LUT4", 0)) + 2 * int(cells.get("CCU2C", 0))
            + 4 * int(cells.get("TRELLIS_DPR16X4", 0)))


def _check_fit(network: Network, info: Board, stat_path: Path,
               logic_limit: int | None = None) -> None:
    """Stop after synthesis, with the counts, when the design needs more block RAMs (or
    SPRAMs, DSPs) than the device has, or more logic cells than ``logic_limit``: placement
    could only fail later, less clearly (or route for hours)."""
    try:
        stat = json.loads(stat_path.read_text())
    except (OSError, ValueError):
        return
    cells = stat.get("design", {}).get("num_cells_by_type", {})
    for cell, key in _SYNTH_CELLS[info.family].items():
        used, available = int(cells.get(cell, 0)), info.resources.get(key, 0)
        if used > available:
            raise ToolError(f"{network.name} needs {used} {RESOURCE_NAMES[key]} ({cell}) "
                            f"after synthesis; {info.name} ({info.device}) has {available} "
                            f"(weights and line buffers live in block RAM; see "
                            f"hwgen check's memory report)")
    needed = synthesized_logic(cells, info.family)
    if logic_limit is not None and needed > logic_limit:
        unit, key = ("LUT4 cells", "lut4") if info.family == "ecp5" else ("LCs", "lcs")
        raise ToolError(f"{network.name} needs at least {needed} logic cells after synthesis; "
                        f"the build allows {logic_limit} of the {info.resources[key]:,} "
                        f"{unit} of {info.name} ({info.device})")


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


@functools.cache
def _nextpnr_version(exe: str) -> str | None:
    """``exe --version``'s version (asked once per program: YoWASP's start takes seconds)."""
    try:
        proc = subprocess.run([exe, "--version"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\(Version ([^)\s]+)\)", proc.stdout)
    return found.group(1) if found else None


def _yosys_version(rpt: Path) -> str | None:
    try:
        found = re.search(r"Yosys \S+ \(git sha1 \w+", rpt.read_text(errors="replace"))
    except OSError:
        return None
    return found.group(0) + ")" if found else None


def _report(network: Network, p: NetworkPlan, info: Board, work: Path, pnr: dict, env: dict,
            top) -> dict:
    """report.json's figures for the design in ``work`` (Yosys' files) placed as ``pnr``
    (the shipped seed's nextpnr ``--report`` JSON) at ``top``'s clock."""
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

    fmax_mhz = fmax_of(pnr)
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
    nextpnr_var = tool_env_var(f"nextpnr-{info.family}")
    try:
        nextpnr = _nextpnr_version(tool_path(nextpnr_var, env))
    except ToolError:
        nextpnr = None
    report["tools"] = {"yosys": _yosys_version(work / "top.rpt"), "nextpnr": nextpnr}
    return report
