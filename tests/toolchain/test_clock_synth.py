# amaranth: UnusedElaboratable=no
"""A counter clocked by PllClock built with Yosys and nextpnr (marked ``synth``): the PLL cell is
placed, and nextpnr checks the derived clock against the achieved frequency."""

import json
from fractions import Fraction
from pathlib import Path

import pytest
from amaranth._toolchain import tool_env_var
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from hwgen.rtl.clock import PllClock
from hwgen.toolchain.tools import ToolError, run_tool, tool_env
from tests.rtl.test_clock import Counter, upduino

MHZ = 1_000_000


def build(platform, clock: PllClock, work: Path) -> tuple[dict, str]:
    """Build a :class:`Counter` on ``clock`` in ``work``; nextpnr's JSON report and its log.

    Runs the platform's commands one by one through ``run_tool`` (output through a pipe: YoWASP
    Yosys can stop silently when its standard output is a regular file, as under pytest).
    """
    plan = platform.prepare(Counter(clock), name="top", nextpnr_opts="--report report.json")
    commands = json.loads(plan.files["build_top.json"])["commands"]
    env = tool_env([tool_env_var(argv[0]) for argv in commands])
    for name, content in plan.files.items():
        (work / name).write_bytes(content.encode() if isinstance(content, str) else content)
    for tool, *args in commands:
        run_tool(tool_env_var(tool), args, cwd=work, log=work / f"{tool}.log", env=env)
    return json.loads((work / "report.json").read_text()), (work / "top.tim").read_text()


def _clock(report: dict, mhz: float) -> dict:
    """The one clock in nextpnr's report, checked to be constrained to ``mhz``."""
    (name, clock), = report["fmax"].items()
    assert clock["constraint"] == pytest.approx(mhz, rel=1e-4), name
    assert clock["achieved"] >= clock["constraint"], name
    return clock


@pytest.mark.synth
def test_icebreaker_pll(tmp_path):
    clock = PllClock("ice40", 12 * MHZ, 50 * MHZ)
    assert clock.out_hz == 49.5e6  # 12 MHz · 66 / 16
    report, log = build(ICEBreakerPlatform(), clock, tmp_path)
    assert report["utilization"]["ICESTORM_PLL"]["used"] == 1
    assert "constrained PLL 'clock.pll'" in log  # SB_PLL40_PAD on the oscillator's pad
    assert "constraining clock net 'clock.out' to 49.50 MHz" in log
    assert "Max frequency for clock 'clk'" in log
    _clock(report, 49.5)


@pytest.mark.synth
def test_ulx3s_pll(tmp_path):
    clock = PllClock("ecp5", 25 * MHZ, 133 * MHZ)
    assert clock.config.out_exact == Fraction(925 * MHZ, 7)  # 25 MHz · 37 / 7 = 132.14 MHz
    report, log = build(ULX3S_85F_Platform(), clock, tmp_path)
    assert report["utilization"]["EHXPLLL"]["used"] == 1
    assert "placed PLL 'clock.pll'" in log
    assert "constraining clock net 'clock.out' to 132.14 MHz" in log
    _clock(report, 925 / 7)


@pytest.mark.synth
@pytest.mark.slow
def test_upduino_pll_from_the_hfosc(tmp_path):
    """The UPduino's SB_HFOSC (12 MHz) feeds an SB_PLL40_CORE: nextpnr places both and derives
    the reference's constraint. (The default run covers this path with tests/test_cli.py's
    auto build on the UPduino.)"""
    clock = PllClock("ice40", 12 * MHZ, 50 * MHZ)
    report, log = build(upduino(), clock, tmp_path)
    assert report["utilization"]["ICESTORM_PLL"]["used"] == 1
    assert report["utilization"]["ICESTORM_HFOSC"]["used"] == 1
    assert "Derived frequency constraint of 12.0 MHz for net clock.reference" in log
    assert "constraining clock net 'clock.out' to 49.50 MHz" in log
    _clock(report, 49.5)


@pytest.mark.synth
def test_icebreaker_bypass(tmp_path):
    """A request equal to the oscillator: no PLL, the pin's own 12 MHz constraint."""
    report, log = build(ICEBreakerPlatform(), PllClock("ice40", 12 * MHZ, 12 * MHZ), tmp_path)
    assert report["utilization"]["ICESTORM_PLL"]["used"] == 0
    _clock(report, 12)


@pytest.mark.synth
def test_too_fast_fails(tmp_path):
    """nextpnr fails the build when the design's fmax is below the PLL's frequency."""
    clock = PllClock("ice40", 12 * MHZ, 200 * MHZ)
    assert clock.out_hz == 198e6
    with pytest.raises(ToolError) as exc:
        build(ICEBreakerPlatform(), clock, tmp_path)
    assert "nextpnr-ice40 failed" in str(exc.value)
    assert "(FAIL at 198.02 MHz)" in str(exc.value)
