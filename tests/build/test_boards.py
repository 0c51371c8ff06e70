"""The board registry and ``hwgen boards``."""

import json

import pytest

from hwgen.build.boards import BOARDS, Board, BoardError, board
from hwgen.cli import main

ISSUE_BOARDS = {"icebreaker", "upduino-v3", "ice40-hx8k-b-evn", "ulx3s-25f", "ulx3s-45f",
                "ulx3s-85f", "orangecrab-r0.2-25f", "orangecrab-r0.2-85f", "ecpix5-45f",
                "ecpix5-85f"}


def test_registry():
    assert set(BOARDS) == ISSUE_BOARDS
    ice = board("icebreaker")
    assert isinstance(ice, Board)
    assert (ice.family, ice.device, ice.package, ice.clock_mhz) == ("ice40", "iCE40UP5K",
                                                                     "SG48", 12.0)
    assert ice.resources == {"lcs": 5280, "ffs": 5280, "bram": 30, "spram": 4, "dsp": 8}
    ulx = board("ulx3s-85f")
    assert (ulx.family, ulx.device, ulx.package, ulx.clock_mhz) == ("ecp5", "LFE5U-85F",
                                                                    "BG381", 25.0)
    assert ulx.resources["lut4"] == 83640 and ulx.resources["bram"] == 208


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_entries_match_their_platform(name):
    info = BOARDS[name]
    assert info.name == name
    platform = info.platform()
    assert (platform.device, platform.package) == (info.device, info.package)
    assert platform.default_clk_frequency == info.clk_hz
    assert info.family in ("ice40", "ecp5")
    assert ("lcs" if info.family == "ice40" else "lut4") in info.resources
    uart = platform.request(*info.uart, dir="-")  # the UART resource exists, extras included
    assert hasattr(uart, "rx") and hasattr(uart, "tx")
    assert info.uart_pins and info.description
    size = info.device.split("-")[-1]
    if info.family == "ecp5":
        assert info.resources["lut4"] == {"25F": 24288, "45F": 43848, "85F": 83640}[size]


def test_hwgen_boards_table_and_json(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["board", "FPGA", "logic"]
    assert "orangecrab-r0.2-85f    LFE5U-85F-MG285      83,640 LUT4" in out
    assert main(["boards", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == ISSUE_BOARDS
    ice = next(r for r in rows if r["name"] == "icebreaker")
    assert (ice["logic"], ice["bram"], ice["spram"], ice["dsp"], ice["clock_mhz"]) == \
        ("5,280 LC", 30, 4, 8, 12.0)


def test_unknown_board():
    with pytest.raises(BoardError) as exc:
        board("tinyfpga")
    assert str(exc.value) == ("unknown board 'tinyfpga'; expected one of: "
                              + ", ".join(sorted(ISSUE_BOARDS)))


@pytest.mark.synth
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ISSUE_BOARDS - {"icebreaker", "ulx3s-85f"}))
def test_reference_design_builds_for_every_board(tmp_path, name):
    """``hwgen build designs/digits_bnn.toml --board NAME`` (icebreaker and ulx3s-85f are
    built in the default run by tests/build/test_synth.py)."""
    from pathlib import Path

    out = tmp_path / name
    root = Path(__file__).resolve().parents[2]
    assert main(["build", str(root / "designs" / "digits_bnn.toml"), "--board", name,
                 "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["board"] == name and (out / report["bitstream"]).stat().st_size > 1000
    logic = report["lcs"] or report["lut4"]
    assert 0 < logic["used"] <= logic["available"]
    assert report["fmax_mhz"] >= report["clock_mhz"]
