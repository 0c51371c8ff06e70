"""The board registry and ``hwgen boards``."""

import json
from pathlib import Path

import pytest

from hwgen.cli import main
from hwgen.toolchain.boards import BOARDS, Board, BoardError, board

ISSUE_BOARDS = {"icebreaker", "upduino-v3", "ice40-hx8k-b-evn", "ulx3s-25f", "ulx3s-45f",
                "ulx3s-85f", "orangecrab-r0.2-25f", "orangecrab-r0.2-85f", "ecpix5-45f",
                "ecpix5-85f"}

#: The UART pins docs/boards.md and constraints/README.md give (rx, tx).
DOCUMENTED_UART = {
    "icebreaker": ("6", "9"), "upduino-v3": ("2", "46"), "ice40-hx8k-b-evn": ("B10", "B12"),
    **{f"ulx3s-{s}f": ("M1", "L4") for s in (25, 45, 85)},
    **{f"orangecrab-r0.2-{s}f": ("N17", "M18") for s in (25, 85)},
    **{f"ecpix5-{s}f": ("R26", "R24") for s in (45, 85)},
}

#: Lattice datasheet counts by device (the "available" counts nextpnr reports agree).
DATASHEET = {
    "iCE40UP5K": {"lcs": 5280, "ffs": 5280, "bram": 30, "spram": 4, "dsp": 8},
    "iCE40HX8K": {"lcs": 7680, "ffs": 7680, "bram": 32, "spram": 0, "dsp": 0},
    **{f"{prefix}-{s}F": {"lut4": lut4, "ffs": lut4, "bram": bram, "spram": 0, "dsp": dsp}
       for prefix in ("LFE5U", "LFE5UM5G")
       for s, lut4, bram, dsp in ((25, 24288, 56, 28), (45, 43848, 108, 72),
                                  (85, 83640, 208, 156))},
}


def test_registry():
    assert set(BOARDS) == ISSUE_BOARDS
    ice = board("icebreaker")
    assert isinstance(ice, Board)
    assert (ice.family, ice.device, ice.package, ice.clock_mhz) == ("ice40", "iCE40UP5K",
                                                                     "SG48", 12.0)
    ulx = board("ulx3s-85f")
    assert (ulx.family, ulx.device, ulx.package, ulx.clock_mhz) == ("ecp5", "LFE5U-85F",
                                                                    "BG381", 25.0)
    assert board("upduino-v3").clock_mhz == 12.0  # SB_HFOSC ÷ 4, not its 48 MHz
    assert board("ecpix5-45f").device == "LFE5UM5G-45F"


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_entry_matches_its_platform(name):
    info = BOARDS[name]
    assert info.name == name and info.uart_host and info.description
    platform = info.platform()
    assert (platform.device, platform.package) == (info.device, info.package)
    assert platform.default_clk_frequency == info.clk_hz
    assert info.device.startswith({"ice40": "iCE40", "ecp5": "LFE5U"}[info.family])
    assert info.resources == DATASHEET[info.device]
    logic = "lcs" if info.family == "ice40" else "lut4"
    assert all(info.resources[k] > 0 for k in (logic, "ffs", "bram"))
    uart = platform.request(*info.uart, dir="-")  # the UART resource exists, extras included
    assert hasattr(uart, "rx") and hasattr(uart, "tx")
    assert info.uart_pins() == dict(zip(("rx", "tx"), DOCUMENTED_UART[name], strict=True))


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_top_constrains_the_uart_pins(name):
    """The board top prepares for every board (no tools run) and its pin constraints put the
    UART where the documentation says."""
    from hwgen.rtl.board import BoardTop
    from tests.toolchain.test_synth import tiny

    info = BOARDS[name]
    top = BoardTop(tiny(), clk_hz=info.clk_hz, uart=info.uart, family=info.family)
    files = info.platform().prepare(top, name="top").files
    rx, tx = DOCUMENTED_UART[name]
    if info.family == "ice40":
        lines = {f"set_io uart_0__rx__io {rx}", f"set_io uart_0__tx__io {tx}"}
        assert lines <= set(files["top.pcf"].splitlines())
    else:
        lines = {f'LOCATE COMP "uart_0__rx__io" SITE "{rx}";',
                 f'LOCATE COMP "uart_0__tx__io" SITE "{tx}";'}
        assert lines <= set(files["top.lpf"].splitlines())


def test_hwgen_boards_table_and_json(capsys):
    assert main(["boards"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["board", "FPGA", "logic", "BRAM", "SPRAM", "DSP", "clock", "baud",
                                "UART"]
    assert len(lines) == 1 + len(ISSUE_BOARDS)
    row = next(line for line in lines if line.startswith("orangecrab-r0.2-85f "))
    assert row.split()[:10] == ["orangecrab-r0.2-85f", "LFE5U-85F-MG285", "83,640", "LUT4",
                                "208", "0", "156", "48", "MHz", "115,200"]
    assert " 12 MHz 3,000,000  rx 6, tx 9" in next(
        line for line in lines if line.startswith("icebreaker "))
    assert "rx N17, tx M18: a 3.3 V USB-serial adapter" in row
    assert "rx 6, tx 9: FTDI FT2232H channel B" in next(
        line for line in lines if line.startswith("icebreaker "))

    assert main(["boards", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(BOARDS)
    ice = next(r for r in rows if r["name"] == "icebreaker")
    assert {k: ice[k] for k in ("family", "device", "package", "lcs", "lut4", "ffs", "bram",
                                "spram", "dsp", "clock_mhz")} == {
        "family": "ice40", "device": "iCE40UP5K", "package": "SG48", "lcs": 5280,
        "lut4": None, "ffs": 5280, "bram": 30, "spram": 4, "dsp": 8, "clock_mhz": 12.0}
    assert ice["uart"] == {"resource": ["uart", 0], "rx": "6", "tx": "9",
                           "host": "FTDI FT2232H channel B (its second serial port)"}
    ecpix = next(r for r in rows if r["name"] == "ecpix5-85f")
    assert (ecpix["lcs"], ecpix["lut4"], ecpix["clock_mhz"]) == (None, 83640, 100.0)
    assert {r["name"]: (r["baud"], r["max_baud"]) for r in rows} == {
        name: (b.baud, b.max_baud) for name, b in BOARDS.items()}
    assert (ice["baud"], ice["max_baud"]) == (3_000_000, 3_000_000)
    assert (ecpix["baud"], ecpix["max_baud"]) == (2_000_000, 3_000_000)
    crab = next(r for r in rows if r["name"] == "orangecrab-r0.2-85f")
    assert (crab["baud"], crab["max_baud"]) == (115_200, None)
    assert not hasattr(board("ecpix5-85f"), "default_clock_mhz")  # auto replaced it


def test_unknown_board():
    with pytest.raises(BoardError) as exc:
        board("tinyfpga")
    assert str(exc.value) == ("unknown board 'tinyfpga'; expected one of: "
                              + ", ".join(sorted(ISSUE_BOARDS)))


#: Boards whose build is known to fail, and why (none).
_FAILS: dict[str, str] = {}
#: The clock of each board's build: its oscillator (one pass; the automatic clock has its own
#: tests), but 50 MHz from the PLL on the ECPIX-5, whose 100 MHz oscillator is above
#: digits_bnn's 96-98 MHz fmax.
_CLOCK = {"ecpix5-45f": "50", "ecpix5-85f": "50"}


@pytest.mark.synth
@pytest.mark.slow
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=_FAILS[n], strict=True)) if n in _FAILS else n
    for n in sorted(ISSUE_BOARDS - {"icebreaker", "ulx3s-85f"})])
def test_reference_design_builds_for_every_board(tmp_path, name):
    """``hwgen build designs/digits_bnn.toml --board NAME --clock-mhz osc --seeds 1`` (50 MHz
    on the ECPIX-5) for the boards that
    tests/test_designs.py does not build (it builds the iCEBreaker and the ULX3S-85F, also in
    the slow set; the default run builds a small network for one board of each family in
    tests/toolchain/test_synth.py)."""
    out = tmp_path / name
    root = Path(__file__).resolve().parents[2]
    assert main(["build", str(root / "designs" / "digits_bnn.toml"), "--board", name,
                 "--clock-mhz", _CLOCK.get(name, "osc"), "--seeds", "1", "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["board"] == name and (out / report["bitstream"]).stat().st_size > 1000
    logic = report["lcs"] or report["lut4"]
    assert 0 < logic["used"] <= logic["available"]
    assert logic["available"] == BOARDS[name].resources["lcs" if report["lcs"] else "lut4"]
    assert report["bram"]["available"] == BOARDS[name].resources["bram"]
    assert report["fmax_mhz"] >= report["clock_mhz"]


#: The link's default rate per board (docs/boards.md, "The link"): 3 Mbaud where an FT2232H
#: carries it and the clock makes it exactly, the FT231X's exact rate at 25 MHz, the classic
#: 115200 for an adapter of the user's choice.
DEFAULT_BAUD = {"icebreaker": 3_000_000, "ice40-hx8k-b-evn": 3_000_000, "upduino-v3": 115_200,
                **{f"ulx3s-{s}f": 1_000_000 for s in (25, 45, 85)},
                **{f"orangecrab-r0.2-{s}f": 115_200 for s in (25, 85)},
                **{f"ecpix5-{s}f": 2_000_000 for s in (45, 85)}}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_default_baud_is_exact_at_the_oscillator(name):
    """The default rate at the oscillator, where every build's first pass runs."""
    from hwgen.rtl.uart import uart_divisor

    info = BOARDS[name]
    assert info.baud == DEFAULT_BAUD[name]
    assert info.max_baud is None or info.baud <= info.max_baud
    divisor = info.check_baud(info.baud, info.clk_hz)
    assert divisor == uart_divisor(info.clk_hz, info.baud)
    # exact where the board's own USB-UART carries the link, within 0.2 % for an adapter
    error = abs(info.clk_hz / divisor - info.baud) / info.baud
    assert error == 0 if info.max_baud is not None else error < 0.002


@pytest.mark.parametrize("name, baud, clk_hz, message", [
    ("icebreaker", 4_000_000, 12_000_000,
     "icebreaker: baud 4000000 is more than its USB-UART (FTDI FT2232H channel B (its second "
     "serial port)) carries reliably, 3000000; the default is 3000000"),
    ("ulx3s-85f", 3_000_000, 25_000_000,
     "ulx3s-85f: baud 3000000 from a 25000000 Hz clock is off by 4.2% (divisor 8 gives "
     "3125000 baud); at most 2% is accepted; at 25 MHz the fastest rate that works is "
     "1500000"),
    ("icebreaker", 3_000_000, 40_000_000,
     "icebreaker: baud 3000000 from a 40000000 Hz clock is off by 2.6% (divisor 13 gives "
     "3076923 baud); at most 2% is accepted; at 40 MHz the fastest rate that works is "
     "2000000"),
    ("upduino-v3", 0, 12_000_000, "baud must be a positive integer, not 0"),
])
def test_check_baud_refuses_what_the_link_cannot_carry(name, baud, clk_hz, message):
    with pytest.raises(BoardError) as exc:
        board(name).check_baud(baud, clk_hz)
    assert str(exc.value) == message


def test_fastest_baud_follows_the_clock():
    ice = board("icebreaker")
    assert [ice.fastest_baud(hz) for hz in (12_000_000, 36_000_000, 40_000_000, 5_000_000)] \
        == [3_000_000, 3_000_000, 2_000_000, 1_000_000]
    assert board("orangecrab-r0.2-85f").fastest_baud(48_000_000) == 115_200  # adapter: default
