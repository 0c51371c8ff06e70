# amaranth: UnusedElaboratable=no
"""Synthesis for real boards (marked ``synth``), the build folder's failure behaviour, and the
pure logic of a build's seeds and automatic clock."""

import json

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.back import rtlil
from amaranth.lib.memory import Memory

from hwgen.outdir import OutputDir, read_manifest
from hwgen.plan import plan
from hwgen.rtl.clock import ice40_pll
from hwgen.rtl.memory import COLLISION_FREE
from hwgen.spec import Input
from hwgen.toolchain.boards import BOARDS, BoardError
from hwgen.toolchain.synth import (
    COLLISION_FREE_SCRIPT,
    DEFAULT_SEEDS,
    YOSYS_RENAME_ASSERT,
    YOSYS_RENAME_RETRY,
    AutoClock,
    _nextpnr_args,
    build,
    check_build,
    check_seeds,
    clock_mode,
)
from hwgen.toolchain.synth import _run_yosys as run_yosys
from hwgen.toolchain.timing import best_seed, component_of, describe_seeds, seed_summary
from hwgen.toolchain.tools import ToolError, run_tool, tool_env, tool_path
from tests.helpers import chain


def tiny(argmax: bool = True):
    rng = np.random.default_rng(0)
    net, _ = chain(rng, Input((8,), 8, lanes=4), [
        dict(out=8, weight_bits=1, out_bits=1, pe=4, simd=8),
        dict(out=4, weight_bits=8, out_bits=None, pe=2, simd=4)], argmax=argmax, name="tiny")
    return net


def _earlier_output(out, files: dict[str, str]) -> None:
    """``out`` as an earlier ``build`` of the same (Python-made) network left it."""
    earlier = OutputDir(out, kind="build", command="build", spec="<python>")
    with earlier.staged() as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text)
        earlier.commit()


def _check_report(report, out, *, board, family, device, bitstream):
    assert json.loads((out / "report.json").read_text()) == report
    assert (report["board"], report["family"], report["device"]) == (board, family, device)
    assert report["network"] == "tiny"
    used_key, other = ("lcs", "lut4") if family == "ice40" else ("lut4", "lcs")
    assert report[other] is None
    for key in (used_key, "ffs", "bram", "spram", "dsp"):
        assert set(report[key]) == {"used", "available"}, key
        assert 0 <= report[key]["used"] <= report[key]["available"], key
    assert report[used_key]["used"] > 0 and report["ffs"]["used"] > 0
    assert report["fmax_mhz"] > 0
    assert report["cycles_per_inference"] == plan(tiny()).cycles_per_inference
    assert report["inferences_per_second_at_fmax"] == pytest.approx(
        report["fmax_mhz"] * 1e6 / report["cycles_per_inference"], rel=1e-3)
    assert report["bitstream"] == bitstream
    assert (out / bitstream).stat().st_size > 1000
    assert report["tools"]["yosys"].startswith("Yosys ")
    assert report["fmax_mhz"] >= report["clock_mhz"]
    # every seed placed in its own folder; the best one ships, its figures are the report's
    seeds = report["fmax_seeds"]
    assert seeds["min"] <= seeds["median"] <= seeds["max"] == report["fmax_mhz"]
    assert report["nextpnr_seed"] == best_seed(seeds["seeds"], seeds["mhz"])
    for seed in seeds["seeds"]:
        folder = out / f"seed-{seed}"
        pnr = json.loads((folder / "report_pnr.json").read_text())
        assert round(min(c["achieved"] for c in pnr["fmax"].values()), 2) == \
            seeds["mhz"][seeds["seeds"].index(seed)]
        assert (folder / "top.tim").is_file()
        placed = "top.asc" if family == "ice40" else "top.config"
        assert (folder / placed).is_file() == (seed == report["nextpnr_seed"])
    # the critical path is nextpnr's: its delay is the period at fmax, its ends components
    path = report["critical_path"]
    assert path["delay_ns"] == pytest.approx(1000 / report["fmax_mhz"], rel=0.01)
    assert path["logic_levels"] > 0 and path["logic_ns"] + path["routing_ns"] <= path["delay_ns"]
    assert path["through"][0] == path["from"] and path["to"] in path["through"]
    assert all(isinstance(c, str) and c for c in path["through"])
    assert not list(out.parent.glob(".*partial*"))


@pytest.mark.synth
def test_icebreaker(tmp_path):
    """The default run's iCE40 build: two seeds in parallel at the oscillator."""
    out = tmp_path / "tiny-icebreaker"
    _earlier_output(out, {"stale": "replaced on success"})
    report = build(tiny(), "icebreaker", out, clock_mhz="osc", seeds=(2, 3))
    _check_report(report, out, board="icebreaker", family="ice40", device="iCE40UP5K",
                  bitstream="top.bin")
    assert report["fmax_seeds"]["seeds"] == [2, 3] and report["nextpnr_seed"] in (2, 3)
    assert report["clock_mhz"] == 12.0 and report["pll"] is None
    assert (report["clock_mode"], report["auto_clock"]) == ("oscillator", None)
    assert report["spram"]["available"] == 4
    assert report["dsp"]["used"] == report["dsp_model"] == 0  # synthesized with -dsp
    assert not (out / "stale").exists()


@pytest.mark.synth
def test_ulx3s_25f(tmp_path):
    """The default run's ECP5 build (the smallest ECP5 board builds fastest)."""
    out = tmp_path / "tiny-ulx3s-25f"
    report = build(tiny(), "ulx3s-25f", out, clock_mhz="osc", seeds=(1, 2))
    _check_report(report, out, board="ulx3s-25f", family="ecp5", device="LFE5U-25F",
                  bitstream="top.bit")
    assert report["clock_mhz"] == 25.0 and report["lut4"]["available"] == 24288
    assert (out / "top.svf").is_file()


@pytest.mark.synth
@pytest.mark.slow
def test_ulx3s_85f(tmp_path):
    """The default build on ECP5: three seeds, the clock auto from the 25 MHz oscillator."""
    out = tmp_path / "tiny-ulx3s"
    report = build(tiny(), "ulx3s-85f", out)
    _check_report(report, out, board="ulx3s-85f", family="ecp5", device="LFE5U-85F",
                  bitstream="top.bit")
    assert report["fmax_seeds"]["seeds"] == list(DEFAULT_SEEDS)
    assert report["lut4"]["available"] > 80000
    auto = report["auto_clock"]
    assert report["clock_mode"] == "auto" and auto["first_pass"]["clock_mhz"] == 25.0
    assert auto["rebuilds"][-1]["requested_mhz"] <= auto["first_pass"]["fmax_seeds"]["min"]
    assert report["clock_mhz"] == auto["clock_mhz"] > 25.0
    assert report["pll"]["primitive"] == "EHXPLLL"
    assert not list(out.glob("auto-*/top.bit"))


@pytest.mark.synth
def test_icebreaker_through_the_pll(tmp_path):
    out = tmp_path / "pll"
    report = build(tiny(), "icebreaker", out, clock_mhz=18, seeds=(1,))
    assert report["pll"]["primitive"] == "SB_PLL40"
    assert report["pll"]["requested_mhz"] == 18.0
    assert 16 < report["clock_mhz"] == report["pll"]["achieved_mhz"] <= 18
    assert report["fmax_mhz"] >= report["clock_mhz"]
    assert report["clock_mode"] == "fixed" and report["nextpnr_seed"] == 1
    assert "SB_PLL40_PAD" in (out / "top.rpt").read_text()
    # from the PLL nextpnr names the clock "clk": its critical path is still found
    path = report["critical_path"]
    assert path["delay_ns"] == pytest.approx(1000 / report["fmax_mhz"], rel=0.01)


@pytest.mark.synth
def test_a_clock_above_fmax_fails_the_build(tmp_path):
    """nextpnr reports the seed's fmax (--timing-allow-fail); the build refuses it."""
    with pytest.raises(ToolError) as exc:
        build(tiny(), "icebreaker", tmp_path / "fast", clock_mhz=250, seeds=(1,))
    message = str(exc.value)
    assert message.startswith("timing: nextpnr's fmax ")
    assert "MHz (seed 1, the best of " in message
    assert "is below the 249.0 MHz clock" in message
    assert str(tmp_path / "fast.failed" / "seed-1" / "top.tim") in message
    assert not (tmp_path / "fast").exists()
    assert (tmp_path / "fast.failed" / "seed-1" / "top.tim").is_file()


def test_a_clock_the_pll_cannot_make_is_refused(tmp_path):
    with pytest.raises(BoardError, match="cannot build for icebreaker: SB_PLL40 cannot make "
                                         "3 MHz"):
        build(tiny(), "icebreaker", tmp_path / "slow", clock_mhz=3)


def test_missing_tool_leaves_no_output(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", "/nonexistent")
    out = tmp_path / "out"
    with pytest.raises(ToolError) as exc:
        build(tiny(), "icebreaker", out)
    assert "YOSYS='/nonexistent': no such program" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_tool_without_output_keeps_old_output(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", "true")  # exits 0 and writes nothing
    out = tmp_path / "out"
    _earlier_output(out, {"report.json": "{}"})
    with pytest.raises(ToolError) as exc:
        build(tiny(), "icebreaker", out)
    assert "yosys exited with status 0 but wrote no top.json" in str(exc.value)
    # the default clock is auto: its first pass runs in auto-1
    assert str(tmp_path / "out.failed" / "auto-1" / "yosys.log") in str(exc.value)
    assert (out / "report.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.failed"]
    assert read_manifest(tmp_path / "out.failed")["kind"] == "build.failed"


def test_failing_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", "false")
    out = tmp_path / "out"
    with pytest.raises(ToolError) as exc:
        build(tiny(), "icebreaker", out)
    assert "false failed (exit 1)" in str(exc.value)
    assert not out.exists()


def _yosys_failing_once(tmp_path, error: str):
    """A user's Yosys (``YOSYS=...``) that, the first time it runs, writes Yosys' report with
    ``error`` and exits 1, as YoWASP Yosys 0.70 does on sfc_w1a1; then the real Yosys."""
    real = tool_path("YOSYS", tool_env(["YOSYS"]))
    (tmp_path / "error.rpt").write_text(f"ERROR: {error}\n")
    wrapper = tmp_path / "yosys-once"
    wrapper.write_text(f"""#!/bin/sh
if [ ! -e {tmp_path}/failed-once ]; then
    touch {tmp_path}/failed-once
    cp {tmp_path}/error.rpt top.rpt
    exit 1
fi
exec {real} "$@"
""")
    wrapper.chmod(0o755)
    return wrapper


def _yosys_work(tmp_path):
    """A build folder holding the script shape Amaranth writes (read, hwgen's commands after
    reading, synthesis) for a two-bit counter."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "top.v").write_text("module top(input clk, output reg [1:0] q);\n"
                                "always @(posedge clk) q <= q + 1;\nendmodule\n")
    (work / "top.ys").write_text(f"read_verilog top.v\n{COLLISION_FREE_SCRIPT}\n"
                                 "synth_ice40 -top top\nwrite_json top.json\n")
    return work


def test_yosys_is_retried_once_after_its_rename_assertion(tmp_path, monkeypatch):
    wrapper = _yosys_failing_once(tmp_path, f"Assert `{YOSYS_RENAME_ASSERT}' failed in "
                                            "kernel/rtlil.cc:3091.")
    monkeypatch.setenv("YOSYS", str(wrapper))
    work = _yosys_work(tmp_path)
    said = []
    retry = run_yosys(["-q", "-l", "top.rpt", "top.ys"], work, tool_env(["YOSYS"]), said.append)
    assert retry is not None and YOSYS_RENAME_ASSERT in retry and YOSYS_RENAME_RETRY in retry
    assert any(retry in line for line in said)
    script = (work / "top.ys").read_text().splitlines()
    assert script[script.index(COLLISION_FREE_SCRIPT) + 1] == YOSYS_RENAME_RETRY
    assert YOSYS_RENAME_ASSERT in (work / "top.first.rpt").read_text()
    assert json.loads((work / "top.json").read_text())["modules"]["top"]  # the real Yosys ran
    assert "ERROR" not in (work / "top.rpt").read_text()


def test_other_yosys_errors_are_not_retried_and_name_the_report_line(tmp_path, monkeypatch):
    wrapper = _yosys_failing_once(tmp_path, "Module `foo' referenced but not found.")
    monkeypatch.setenv("YOSYS", str(wrapper))
    work = _yosys_work(tmp_path)
    with pytest.raises(ToolError) as exc:
        run_yosys(["-q", "-l", "top.rpt", "top.ys"], work, tool_env(["YOSYS"]), print)
    assert str(exc.value).endswith("ERROR: Module `foo' referenced but not found.")
    assert YOSYS_RENAME_RETRY not in (work / "top.ys").read_text()
    assert not (work / "top.first.rpt").exists() and not (work / "top.json").exists()


def test_refuses_network_without_argmax(tmp_path):
    with pytest.raises(BoardError) as exc:
        build(tiny(argmax=False), "icebreaker", tmp_path / "out")
    assert str(exc.value) == ("cannot build for icebreaker: network 'tiny' does not end in "
                              "argmax; the board's UART protocol sends back one class index "
                              "per inference")
    assert list(tmp_path.iterdir()) == []


def test_unknown_board(tmp_path):
    with pytest.raises(BoardError, match="unknown board 'de10'"):
        build(tiny(), "de10", tmp_path / "out")


@pytest.mark.synth
def test_a_design_needing_more_block_ram_than_the_device_stops_after_synthesis(tmp_path):
    rng = np.random.default_rng(1)
    # 31 output groups × 16-bit weight words, 256 deep each: 31+ block RAMs for weights alone
    big, _ = chain(rng, Input((4096,), 1, lanes=16), [
        dict(out=64, weight_bits=1, out_bits=1, pe=8, simd=16),
        dict(out=2, weight_bits=1, out_bits=None, pe=2, simd=16)], argmax=True, name="big")
    out = tmp_path / "out"
    with pytest.raises(ToolError) as exc:
        build(big, "icebreaker", out, clock_mhz="osc")
    message = str(exc.value)
    assert message.startswith("big needs ")
    assert "block RAMs (SB_RAM40_4K) after synthesis; " in message
    assert "icebreaker (iCE40UP5K) has 30" in message
    assert not out.exists() and (tmp_path / "out.failed" / "yosys.log").exists()
    assert not (tmp_path / "out.failed" / "nextpnr-ice40.log").exists()


@pytest.mark.synth
def test_a_design_beyond_the_logic_limit_stops_after_synthesis(tmp_path):
    from hwgen.toolchain.synth import synthesized_logic

    out = tmp_path / "out"
    with pytest.raises(ToolError) as exc:
        build(tiny(), "icebreaker", out, clock_mhz="osc", seeds=(1,), logic_limit=10)
    failed = tmp_path / "out.failed"
    cells = json.loads((failed / "synth_stat.json").read_text())["design"]["num_cells_by_type"]
    needed = cells["SB_LUT4"]
    assert needed > 10 and synthesized_logic(cells, "ice40") == needed
    assert str(exc.value) == (f"tiny needs at least {needed} logic cells after synthesis; the "
                              f"build allows 10 of the 5,280 LCs of icebreaker (iCE40UP5K)")
    assert not out.exists() and not (failed / "nextpnr-ice40.log").exists()


def test_synthesized_logic_counts_carries_and_lut_rams_on_ecp5():
    from hwgen.toolchain.synth import synthesized_logic

    # sfc_w1a1 folded for the ULX3S at headroom 0.9: nextpnr packed 77,842 TRELLIS_COMB
    cells = {"LUT4": 71860, "CCU2C": 1616, "TRELLIS_DPR16X4": 272, "L6MUX21": 8443,
             "PFUMX": 21419, "TRELLIS_FF": 14981}
    assert synthesized_logic(cells, "ecp5") == 71860 + 2 * 1616 + 4 * 272 == 76180
    assert synthesized_logic({"SB_LUT4": 40, "SB_CARRY": 9, "SB_DFF": 30}, "ice40") == 40


def test_spram_weights_need_a_board_with_spram(tmp_path):
    from tests.rtl.test_weights import SPRAM_NETWORKS

    inp, layers, _ = SPRAM_NETWORKS["cnn"]
    net, _ = chain(np.random.default_rng(5), inp, [dict(d) for d in layers], argmax=True)
    with pytest.raises(BoardError) as exc:
        build(net, "ulx3s-85f", tmp_path / "out")
    assert str(exc.value) == (
        "cannot build for ulx3s-85f: layers conv1, fc3 keep their weights in SPRAM "
        "(weight_memory = \"spram\") and need 5 SPRAM blocks; LFE5U-85F has 0")
    assert not (tmp_path / "out").exists()


def test_seeds_are_checked():
    assert check_seeds(range(1, 4)) == DEFAULT_SEEDS == (1, 2, 3)
    assert check_seeds([7]) == (7,)
    for seeds, message in [
            ([], "seeds must hold 1 to 16 nextpnr seeds, not 0"),
            (range(1, 18), "seeds must hold 1 to 16 nextpnr seeds, not 17"),
            ([0], "a nextpnr seed must be an integer from 1 to 2147483647, not 0"),
            ([2**31], "a nextpnr seed must be an integer from 1 to 2147483647, not 2147483648"),
            ([1.0], "a nextpnr seed must be an integer from 1 to 2147483647, not 1.0"),
            ([True], "a nextpnr seed must be an integer from 1 to 2147483647, not True"),
            ([1, 2, 1], "seeds must differ, not [1, 2, 1]"),
            (3, "seeds must be a sequence of nextpnr seeds, not 3")]:
        with pytest.raises(ValueError) as exc:
            check_seeds(seeds)
        assert str(exc.value) == message
    with pytest.raises(ValueError, match="seeds must differ"):
        check_build(tiny(), "icebreaker", seeds=(1, 1))


def test_clock_modes():
    """auto is the default wherever the board's clock feeds a PLL: every board, the UPduino's
    SB_HFOSC included."""
    for name, info in BOARDS.items():
        assert clock_mode(info, None) == "auto", name
    info = BOARDS["upduino-v3"]
    assert [clock_mode(info, c) for c in ("auto", "osc", 20.0)] == ["auto", "osc", 20.0]
    with pytest.raises(BoardError) as exc:
        clock_mode(info, "fast")
    assert str(exc.value) == "clock_mhz must be a frequency in MHz, 'auto' or 'osc', not 'fast'"
    assert check_build(tiny(), "upduino-v3", clock_mhz=20).name == "upduino-v3"


def _stub_synthesize(monkeypatch, passes: list):
    """``build`` without the tools: each pass records its clock and UART rate and reports an
    fmax three times the clock, with ``uart`` as report.json has it."""
    import hwgen.toolchain.synth as synth
    from hwgen.rtl.clock import clock_config

    def synthesize(network, net_plan, info, tmp, *, clock_mhz, baud, seeds, **options):
        config = None if clock_mhz is None else clock_config(info.family, info.clk_hz,
                                                             clock_mhz * 1e6)
        clock = info.clock_mhz if config is None else round(config.out_hz / 1e6, 4)
        passes.append((clock, baud))
        mhz = [round(clock * 3, 2) for _ in seeds]
        return {"board": info.name, "device": info.device, "fmax_mhz": max(mhz),
                "fmax_seeds": seed_summary(seeds, mhz), "nextpnr_seed": seeds[0],
                "clock_mhz": clock, "cycles_per_inference": 16,
                "uart": synth._uart_figures(network, baud)}

    monkeypatch.setattr(synth, "_synthesize", synthesize)


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-25f", "ecpix5-45f", "upduino-v3"])
def test_the_boards_baud_is_the_default(tmp_path, monkeypatch, name):
    """Without ``baud`` a build runs the board's link rate (``uart`` in report.json), and the
    automatic clock only picks clocks that make it within 2 %."""
    from hwgen.rtl.uart import uart_divisor

    info = BOARDS[name]
    passes = []
    _stub_synthesize(monkeypatch, passes)
    report = build(tiny(), name, tmp_path / "auto", seeds=(1,))
    assert report["clock_mode"] == "auto" and len(passes) == 2  # oscillator, then the PLL
    assert [baud for _, baud in passes] == [info.baud] * 2
    assert report["uart"]["baud"] == info.baud
    assert json.loads((tmp_path / "auto" / "report.json").read_text())["uart"] == report["uart"]
    uart_divisor(round(report["clock_mhz"] * 1e6), info.baud)  # within 2 %
    assert report["clock_mhz"] > info.clock_mhz
    # a given rate wins
    report = build(tiny(), name, tmp_path / "osc", clock_mhz="osc", baud=9600, seeds=(1,))
    assert report["uart"]["baud"] == passes[-1][1] == 9600
    assert check_build(tiny(), name).name == name


def test_a_baud_the_board_cannot_carry_is_refused_before_building(tmp_path, monkeypatch):
    _stub_synthesize(monkeypatch, passes := [])
    for clock in (None, "osc"):
        with pytest.raises(BoardError) as exc:
            build(tiny(), "ulx3s-85f", tmp_path / "out", clock_mhz=clock, baud=3_000_000)
        assert str(exc.value) == (
            "ulx3s-85f: baud 3000000 from a 25000000 Hz clock is off by 4.2% (divisor 8 gives "
            "3125000 baud); at most 2% is accepted; at 25 MHz the fastest rate that works is "
            "1500000")
    with pytest.raises(BoardError, match=r"^icebreaker: baud 4000000 is more than its USB-UART"):
        check_build(tiny(), "icebreaker", baud=4_000_000)
    # a PLL clock is checked at what the PLL makes: 3 Mbaud from 18 MHz is exact, from
    # 20.25 MHz (asked 20.3) 3.6 % slow
    assert check_build(tiny(), "icebreaker", clock_mhz=18).name == "icebreaker"
    with pytest.raises(BoardError, match=r"^icebreaker: baud 3000000 from a 20250000 Hz clock"):
        check_build(tiny(), "icebreaker", clock_mhz=20.3)
    assert passes == [] and not (tmp_path / "out").exists()


def test_seed_figures():
    """digits_bnn's three seeds on the iCEBreaker in issue 17's baseline."""
    summary = seed_summary([1, 2, 3], [21.69, 21.93, 21.70])
    assert summary == {"seeds": [1, 2, 3], "mhz": [21.69, 21.93, 21.70], "min": 21.69,
                       "median": 21.70, "max": 21.93}
    assert best_seed([1, 2, 3], [21.69, 21.93, 21.70]) == 2
    assert best_seed([4, 5, 6], [21.93, None, 21.93]) == 4  # the first of equals
    assert best_seed([1, 2], [None, None]) is None
    assert seed_summary([1, 2], [55.54, 56.38])["median"] == 55.96  # the middle two's mean
    assert describe_seeds(summary) == "21.69 / 21.7 / 21.93 MHz (min / median / max of seeds " \
        "1, 2, 3)"
    assert describe_seeds(seed_summary([1, 2, 3], [25.16, None, 26.15])) == (
        "25.16 / 25.66 / 26.15 MHz (min / median / max of seeds 1, 2, 3; seed 2 failed)")
    assert seed_summary([1], [None])["min"] is None
    with pytest.raises(ValueError, match="2 seeds but 1 fmax values"):
        seed_summary([1, 2], [3.0])


def test_cells_are_named_by_component():
    """nextpnr's cell names (digits_bnn on the iCEBreaker) → the component on the path."""
    assert component_of("logic.core.network.fc3.fifo.storage[1]_SB_DFFE_Q_4_DFFLC") == \
        "core.network.fc3.fifo"
    assert component_of("logic.core.serializer.pos_SB_DFFESR_Q_5_D_SB_LUT4_O_LC") == \
        "core.serializer"
    # a global buffer nextpnr put on a net of fc1 belongs to fc1
    assert component_of("$gbuf_logic.core.network.fc1.acc_SB_DFFER_Q_E") == "core.network.fc1"
    assert component_of("rx_buffer.buf0") == "rx_buffer"
    assert component_of("clk_SB_LUT4_O_LC") == "top"


def test_nextpnr_runs_in_its_seed_folder(tmp_path):
    """The inputs Yosys and Amaranth wrote are named from seed-N; the outputs stay there."""
    (tmp_path / "top.json").write_text("{}")
    (tmp_path / "top.pcf").write_text("")
    args = ["--quiet", "--report", "report_pnr.json", "--log", "top.tim", "--up5k",
            "--package", "sg48", "--json", "top.json", "--pcf", "top.pcf", "--asc", "top.asc"]
    assert _nextpnr_args(args, tmp_path, 7) == [
        "--quiet", "--report", "report_pnr.json", "--log", "top.tim", "--up5k", "--package",
        "sg48", "--json", "../top.json", "--pcf", "../top.pcf", "--asc", "top.asc",
        "--seed", "7", "--timing-allow-fail"]
    assert _nextpnr_args(["--json", "top.json"], tmp_path, 1)[2:4] == ["--report",
                                                                      "report_pnr.json"]


def _first(mhz: list[float], clock: float = 12.0) -> dict:
    """A first pass's report (the figures AutoClock reads) from its seeds' fmax."""
    return {"clock_mhz": clock, "fmax_mhz": max(mhz),
            "fmax_seeds": seed_summary(list(range(1, len(mhz) + 1)), mhz), "pass_seconds": 60.0}


def _rebuild(clock: float, mhz: list[float]) -> dict:
    summary = seed_summary(list(range(1, len(mhz) + 1)), mhz)
    return {"clock_mhz": clock, "fmax_mhz": summary["max"], "fmax_seeds": summary,
            "nextpnr_seed": best_seed(summary["seeds"], mhz), "pass_seconds": 70.0}


def test_auto_clock_meets_on_the_first_rebuild():
    """digits_bnn's baseline seeds: 21.69 × 0.97 = 21.04 MHz asked, 21 MHz from the PLL."""
    auto = AutoClock("ice40", 12_000_000)
    request = auto.start(_first([21.69, 21.93, 21.70]))
    assert request == pytest.approx(21.0393)
    assert ice40_pll(12_000_000, request * 1e6).out_hz == 21e6
    assert auto.measured(_rebuild(21.0, [21.4, 21.8, 21.1])) is None
    assert auto.final_pass == 2
    assert auto.decisions == {
        "margin": 0.03, "oscillator_tolerance": 0.0,
        "first_pass": {k: v for k, v in _first([21.69, 21.93, 21.70]).items()
                       if k != "fmax_mhz"},
        "rebuilds": [{"requested_mhz": 21.0393, "clock_mhz": 21.0, "met": True,
                      "fmax_seeds": seed_summary([1, 2, 3], [21.4, 21.8, 21.1]),
                      "nextpnr_seed": 2, "fmax_mhz": 21.8, "pass_seconds": 70.0}],
        "clock_mhz": 21.0, "fmax_mhz": 21.8}


def test_auto_clock_steps_down_and_gives_up():
    """A rebuild whose best seed misses its clock: the next request is its fmax less the
    margin, a lower PLL clock; after three rebuilds the build stops with the clocks tried."""
    auto = AutoClock("ice40", 12_000_000)
    auto.start(_first([21.69, 21.93, 21.70]))
    request = auto.measured(_rebuild(21.0, [20.6, 20.9, 20.7]))  # missed: 20.9 < 21
    assert request == pytest.approx(20.9 * 0.97)                # 20.273 → 20.25 MHz
    assert auto.decisions["rebuilds"][-1] == {"requested_mhz": 20.273, "clock_mhz": 20.25}
    request = auto.measured(_rebuild(20.25, [20.1, 20.2, 20.0]))
    assert auto.decisions["rebuilds"][-1]["clock_mhz"] == 19.5     # 20.2 × 0.97 = 19.594
    with pytest.raises(ToolError) as exc:
        auto.measured(_rebuild(19.5, [19.3, 19.4, 19.2]))
    assert str(exc.value) == (
        "timing: clock auto: no clock met timing after 3 rebuilds: 21.0 MHz (fmax 20.9), "
        "20.25 MHz (fmax 20.2), 19.5 MHz (fmax 19.4); build with a fixed --clock-mhz below "
        "these, or fold the network further")
    assert auto.final_pass is None


def test_auto_clock_at_the_oscillator():
    """A design barely above the 12 MHz oscillator: nothing the PLL makes is low enough, the
    first pass ships; stepping down to the oscillator, or a design below it, stops the build."""
    auto = AutoClock("ice40", 12_000_000)
    assert auto.start(_first([12.5, 12.9])) is None
    assert auto.final_pass == 1
    assert auto.decisions["rebuilds"] == [{"requested_mhz": 12.125, "clock_mhz": 12.0,
                                           "oscillator": True}]
    auto = AutoClock("ice40", 12_000_000)
    auto.start(_first([17.0, 17.2]))                              # 16.49 → 16.125 MHz
    with pytest.raises(ToolError, match="stepping down from 16.125 MHz reaches the 12.0 MHz "
                                        "oscillator; build with --clock-mhz osc"):
        auto.measured(_rebuild(16.125, [15.9, 16.0]))
    with pytest.raises(ToolError, match="^timing: clock auto: fmax 11 MHz leaves 10.67 MHz "):
        AutoClock("ice40", 12_000_000).start(_first([11.0, 11.5]))


def test_auto_clock_keeps_the_uart_in_tolerance():
    """At 3 Mbaud the step down from a missed 21 MHz skips the clocks the UART cannot divide
    within 2 % (20.25 … 18.375 MHz) for 18 MHz (divisor 6)."""
    from hwgen.rtl.uart import uart_divisor

    def takes(hz: float) -> bool:
        try:
            uart_divisor(round(hz), 3_000_000)
        except ValueError:
            return False
        return True

    auto = AutoClock("ice40", 12_000_000, accept=takes)
    request = auto.start(_first([21.69, 21.93]))
    assert ice40_pll(12_000_000, request * 1e6).out_hz == 21e6
    assert auto.build_mhz(request) == request  # the highest clock under it makes the rate
    request = auto.measured(_rebuild(21.0, [20.6, 20.9]))
    assert auto.decisions["rebuilds"][-1] == {"requested_mhz": 20.273, "clock_mhz": 18.0}
    # the rebuild asks for the accepted 18 MHz, not for the 20.25 MHz under the request
    assert ice40_pll(12_000_000, request * 1e6).out_hz == 20.25e6
    assert ice40_pll(12_000_000, auto.build_mhz(request) * 1e6).out_hz == 18e6


def test_auto_clock_on_the_hfosc():
    """The UPduino's SB_HFOSC may run 10 % fast: the request leaves that on top of the margin."""
    auto = AutoClock("ice40", 12_000_000, tolerance=0.10)
    assert auto.start(_first([30.8, 31.87])) == pytest.approx(30.8 * 0.97 / 1.1)
    assert auto.decisions["rebuilds"][-1]["clock_mhz"] == 27.0


def mixed(mac: str = "dsp"):
    """u4 input × W4 on DSPs (2 products per multiplier, 4 multipliers), then W8 × u2 in
    logic, argmax."""
    rng = np.random.default_rng(3)
    net, _ = chain(rng, Input((8,), 4, lanes=2), [
        dict(out=4, weight_bits=4, out_bits=2, pe=4, simd=2, mac=mac),
        dict(out=3, weight_bits=8, out_bits=None, pe=1, simd=4, mac="lut")],
        argmax=True, name="mixed")
    return net


@pytest.mark.synth
@pytest.mark.parametrize("board_name,cell_count", [("icebreaker", 4), ("ulx3s-25f", 4)])
def test_dsp_layers_use_the_planned_dsps(tmp_path, board_name, cell_count):
    """The packed products of the "dsp" layer are the design's only DSP cells on both
    families, as many as the plan says; the "lut" layer's products take none."""
    report = build(mixed(), board_name, tmp_path / "out", clock_mhz="osc", seeds=(1,))
    assert report["dsp_model"] == cell_count
    assert report["dsp"]["used"] == cell_count
    assert report["mac"] == {"fc0": "dsp", "fc1": "lut"}


@pytest.mark.synth
@pytest.mark.parametrize("board_name", [
    # iCE40's SB_MAC16 mapping stays in the default run through the dense test above
    pytest.param("icebreaker", marks=pytest.mark.slow), "ulx3s-25f"])
def test_depthwise_products_on_dsps_are_the_planned_cells(tmp_path, board_name):
    """A separable block whose depthwise layer asks for DSPs: one unpacked multiplier per
    channel in parallel (pe = 4), nothing else on DSPs, on both families."""
    rng = np.random.default_rng(6)
    net, _ = chain(rng, Input((5, 5, 4), 8, lanes=4), [
        dict(kind="depthwise_conv2d", kernel=3, padding="same", weight_bits=4, out_bits=2,
             pe=4, mac="dsp"),  # u8 × W4: 13-bit products, one SB_MAC16 each
        dict(kind="conv2d", out=4, kernel=1, weight_bits=2, out_bits=2, pe=4, simd=4,
             mac="lut"),
        dict(kind="flatten"),
        dict(out=3, weight_bits=8, out_bits=None, pe=1, simd=4, mac="lut")],
        argmax=True, name="separable")
    report = build(net, board_name, tmp_path / "out", clock_mhz="osc", seeds=(1,))
    assert report["mac"] == {"dw0": "dsp", "conv1": "lut", "fc3": "lut"}
    assert report["dsp_model"] == report["dsp"]["used"] == 4


def test_dsp_layer_on_a_device_without_dsps_is_refused(tmp_path):
    with pytest.raises(BoardError) as exc:
        build(mixed(), "ice40-hx8k-b-evn", tmp_path / "out")
    assert str(exc.value) == (
        "<python>: layers[0].mac: fc0 asks for \"dsp\", but ice40-hx8k-b-evn (iCE40HX8K) has no "
        "DSP blocks; use \"lut\" or \"auto\"")
    assert not (tmp_path / "out").exists()


def test_more_dsps_than_the_device_has_is_refused(tmp_path):
    rng = np.random.default_rng(4)
    net, _ = chain(rng, Input((16,), 8, lanes=8), [
        dict(out=8, weight_bits=8, out_bits=2, pe=4, simd=8, mac="dsp")], argmax=True)
    with pytest.raises(BoardError) as exc:
        build(net, "icebreaker", tmp_path / "out")
    assert str(exc.value) == (
        "cannot build for icebreaker: the network needs 32 DSP multipliers (fc0 32), iCE40UP5K "
        "has 8; map some layers with mac = \"lut\" or fold them further (smaller pe/simd)")


class _Buffer(Elaboratable):
    """A 512 × 16 memory with one write and one read port into a register (``attrs`` on the
    memory)."""

    def __init__(self, attrs: dict):
        self.attrs = attrs
        self.w_addr, self.r_addr = Signal(9), Signal(9)
        self.w_data, self.w_en, self.q = Signal(16), Signal(), Signal(16)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=16, depth=512, init=[], attrs=self.attrs)
        w, r = mem.write_port(), mem.read_port()
        m.d.comb += [w.addr.eq(self.w_addr), w.data.eq(self.w_data), w.en.eq(self.w_en),
                     r.addr.eq(self.r_addr)]
        m.d.sync += self.q.eq(r.data)
        return m


@pytest.mark.synth
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_collision_free_memories_get_no_read_during_write_logic(tmp_path, family):
    """Yosys emulates reading the old word where a write hits the read address (a compare, a
    copy of the write data, a mux): with the build's script, not for marked memories."""
    cells = {}
    for marked in (False, True):
        design = _Buffer(COLLISION_FREE if marked else {})
        ports = [design.w_addr, design.r_addr, design.w_data, design.w_en, design.q]
        (tmp_path / "top.il").write_text(rtlil.convert(design, name="top", ports=ports))
        run_tool("YOSYS", ["-q", "-p", f"read_rtlil top.il; {COLLISION_FREE_SCRIPT}; "
                           f"synth_{family} -top top; tee -q -o stat.json stat -json"],
                 cwd=tmp_path, log=tmp_path / "yosys.log", env=tool_env(["YOSYS"]))
        (module,) = json.loads((tmp_path / "stat.json").read_text())["modules"].values()
        cells[marked] = sum(n for cell, n in module["num_cells_by_type"].items()
                            if "LUT" in cell)
    assert cells[False] > 16 and cells[True] == 0
