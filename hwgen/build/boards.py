"""The boards hwgen builds for: their amaranth-boards platform, FPGA and on-chip resources.

Adding a board is one entry in :data:`BOARDS`; extra pins (a UART on a PMOD, say) would go in
``constraints/`` and be added to the platform by :meth:`Board.platform`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

__all__ = ["Board", "BoardError", "BOARDS", "board"]


class BoardError(Exception):
    """An unknown board name, or a network that cannot run on a board."""


@dataclass(frozen=True)
class Board:
    """One supported board.

    ``resources`` counts the FPGA's primitives by hwgen's report names: ``lcs`` (iCE40 logic
    cells, each a LUT4 and a flip-flop) or ``lut4`` (ECP5 LUT4s), ``ffs``, ``bram`` (iCE40
    SB_RAM40_4K or ECP5 DP16KD), ``spram`` (UP5K SB_SPRAM256KA) and ``dsp`` (SB_MAC16 or
    MULT18X18D).
    """

    name: str
    platform_class: type
    family: str
    device: str
    package: str
    resources: dict[str, int]
    clock_mhz: float
    uart: tuple[str, int] = ("uart", 0)
    description: str = ""
    notes: list[str] = field(default_factory=list)

    def platform(self):
        """A fresh platform instance (Amaranth platforms can be prepared only once)."""
        return self.platform_class()

    @property
    def clk_hz(self) -> int:
        return round(self.clock_mhz * 1e6)


BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker",
        platform_class=ICEBreakerPlatform,
        family="ice40",
        device=ICEBreakerPlatform.device,
        package=ICEBreakerPlatform.package,
        resources={"lcs": 5280, "ffs": 5280, "bram": 30, "spram": 4, "dsp": 8},
        clock_mhz=12.0,
        description="1BitSquared iCEBreaker: iCE40UP5K-SG48, 12 MHz, UART over the FTDI "
                    "(second interface), 2 user LEDs",
    ),
    "ulx3s-85f": Board(
        name="ulx3s-85f",
        platform_class=ULX3S_85F_Platform,
        family="ecp5",
        device=ULX3S_85F_Platform.device,
        package=ULX3S_85F_Platform.package,
        resources={"lut4": 83640, "ffs": 83640, "bram": 208, "spram": 0, "dsp": 156},
        clock_mhz=25.0,
        description="Radiona ULX3S 85F: LFE5U-85F-6BG381C, 25 MHz, UART over the FTDI "
                    "(US1 port), 8 user LEDs",
    ),
}


def board(name: str) -> Board:
    """The board called ``name``; :class:`BoardError` with the known names otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise BoardError(f"unknown board {name!r}; expected one of: "
                         f"{', '.join(sorted(BOARDS))}") from None
