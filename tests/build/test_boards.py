"""The board registry."""

import pytest

from hwgen.build.boards import BOARDS, Board, BoardError, board


def test_registry():
    assert {"icebreaker", "ulx3s-85f"} <= set(BOARDS)
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
    platform.lookup(*info.uart)  # the UART resource exists


def test_unknown_board():
    with pytest.raises(BoardError) as exc:
        board("tinyfpga")
    assert str(exc.value) == "unknown board 'tinyfpga'; expected one of: icebreaker, ulx3s-85f"
