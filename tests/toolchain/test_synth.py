# amaranth: UnusedElaboratable=no
"""Synthesis for real boards (marked ``synth``) and the build folder's failure behaviour."""

import json

import numpy as np
import pytest

from hwgen.outdir import OutputDir, read_manifest
from hwgen.plan import plan
from hwgen.spec import Input
from hwgen.toolchain.boards import BoardError
from hwgen.toolchain.synth import build
from hwgen.toolchain.tools import ToolError
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
    # the critical path is nextpnr's: its delay is the period at fmax, its ends components
    path = report["critical_path"]
    assert path["delay_ns"] == pytest.approx(1000 / report["fmax_mhz"], rel=0.01)
    assert path["logic_levels"] > 0 and path["logic_ns"] + path["routing_ns"] <= path["delay_ns"]
    assert path["through"][0] == path["from"] and path["to"] in path["through"]
    assert all(isinstance(c, str) and c for c in path["through"])
    assert not list(out.parent.glob(".*partial*"))


@pytest.mark.synth
def test_icebreaker(tmp_path):
    out = tmp_path / "tiny-icebreaker"
    _earlier_output(out, {"stale": "replaced on success"})
    report = build(tiny(), "icebreaker", out, seed=3)
    _check_report(report, out, board="icebreaker", family="ice40", device="iCE40UP5K",
                  bitstream="top.bin")
    assert report["nextpnr_seed"] == 3
    assert report["clock_mhz"] == 12.0 and report["pll"] is None
    assert report["spram"]["available"] == 4
    assert report["dsp"]["used"] == report["dsp_model"] == 0  # synthesized with -dsp
    assert not (out / "stale").exists()


@pytest.mark.synth
def test_ulx3s_25f(tmp_path):
    """The default run's ECP5 build (the smallest ECP5 board builds fastest)."""
    out = tmp_path / "tiny-ulx3s-25f"
    report = build(tiny(), "ulx3s-25f", out)
    _check_report(report, out, board="ulx3s-25f", family="ecp5", device="LFE5U-25F",
                  bitstream="top.bit")
    assert report["clock_mhz"] == 25.0 and report["lut4"]["available"] == 24288


@pytest.mark.synth
@pytest.mark.slow
def test_ulx3s_85f(tmp_path):
    out = tmp_path / "tiny-ulx3s"
    report = build(tiny(), "ulx3s-85f", out)
    _check_report(report, out, board="ulx3s-85f", family="ecp5", device="LFE5U-85F",
                  bitstream="top.bit")
    assert report["clock_mhz"] == 25.0
    assert report["lut4"]["available"] > 80000


@pytest.mark.synth
def test_icebreaker_through_the_pll(tmp_path):
    out = tmp_path / "pll"
    report = build(tiny(), "icebreaker", out, clock_mhz=18)
    assert report["pll"]["primitive"] == "SB_PLL40"
    assert report["pll"]["requested_mhz"] == 18.0
    assert 16 < report["clock_mhz"] == report["pll"]["achieved_mhz"] <= 18
    assert report["fmax_mhz"] >= report["clock_mhz"]
    assert "SB_PLL40_PAD" in (out / "top.rpt").read_text()


@pytest.mark.synth
def test_a_clock_above_fmax_fails_the_build(tmp_path):
    with pytest.raises(ToolError, match="Max frequency for clock|below the"):
        build(tiny(), "icebreaker", tmp_path / "fast", clock_mhz=250)
    assert not (tmp_path / "fast").exists()


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
    assert str(tmp_path / "out.failed" / "yosys.log") in str(exc.value)
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
        build(big, "icebreaker", out)
    message = str(exc.value)
    assert message.startswith("big needs ")
    assert "block RAMs (SB_RAM40_4K) after synthesis; " in message
    assert "icebreaker (iCE40UP5K) has 30" in message
    assert not out.exists() and (tmp_path / "out.failed" / "yosys.log").exists()
    assert not (tmp_path / "out.failed" / "nextpnr-ice40.log").exists()


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


def test_the_pll_needs_a_clock_pin(tmp_path):
    with pytest.raises(BoardError, match="cannot build for upduino-v3: its clock is the FPGA's "
                                         "internal oscillator \\(SB_HFOSC\\)"):
        build(tiny(), "upduino-v3", tmp_path / "out", clock_mhz=20)


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
    report = build(mixed(), board_name, tmp_path / "out")
    assert report["dsp_model"] == cell_count
    assert report["dsp"]["used"] == cell_count
    assert report["mac"] == {"fc0": "dsp", "fc1": "lut"}


@pytest.mark.synth
@pytest.mark.parametrize("board_name", ["icebreaker", "ulx3s-25f"])
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
    report = build(net, board_name, tmp_path / "out")
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
