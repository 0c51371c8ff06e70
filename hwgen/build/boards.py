"""The boards hwgen builds for: their amaranth-boards platform, FPGA and on-chip resources.

Adding a board is one entry in :data:`BOARDS`. Pins that amaranth-boards does not declare (the
UART of the UPduino v3 and of the OrangeCrab) are the board's ``extra_resources``, added to the
platform by :meth:`Board.platform` (constraints/README.md lists them with their sources).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth_boards.ecpix5 import ECPIX545Platform, ECPIX585Platform
from amaranth_boards.ice40_hx8k_b_evn import ICE40HX8KBEVNPlatform
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform, OrangeCrabR0_2_85FPlatform
from amaranth_boards.ulx3s import ULX3S_25F_Platform, ULX3S_45F_Platform, ULX3S_85F_Platform
from amaranth_boards.upduino_v3 import UpduinoV3Platform

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
    uart_pins: str = ""
    description: str = ""
    extra_resources: tuple = ()
    platform_settings: tuple = ()
    notes: list[str] = field(default_factory=list)

    def platform(self):
        """A fresh platform instance (Amaranth platforms can be prepared only once), with the
        board's extra resources."""
        platform = self.platform_class()
        for attr, value in self.platform_settings:
            setattr(platform, attr, value)
        if self.extra_resources:
            platform.add_resources(list(self.extra_resources))
        return platform

    @property
    def clk_hz(self) -> int:
        return round(self.clock_mhz * 1e6)


def _uart(rx: str, tx: str, io_attrs: Attrs) -> Resource:
    return Resource("uart", 0, Subsignal("rx", Pins(rx, dir="i")),
                    Subsignal("tx", Pins(tx, dir="o")), io_attrs)


_UP5K = {"lcs": 5280, "ffs": 5280, "bram": 30, "spram": 4, "dsp": 8}
_HX8K = {"lcs": 7680, "ffs": 7680, "bram": 32, "spram": 0, "dsp": 0}
_ECP5 = {  # LUT4s, DP16KD, MULT18X18D by device size
    25: {"lut4": 24288, "ffs": 24288, "bram": 56, "spram": 0, "dsp": 28},
    45: {"lut4": 43848, "ffs": 43848, "bram": 108, "spram": 0, "dsp": 72},
    85: {"lut4": 83640, "ffs": 83640, "bram": 208, "spram": 0, "dsp": 156},
}


def _board(name: str, platform_class: type, family: str, resources: dict, clock_mhz: float,
           uart_pins: str, description: str, **kw) -> Board:
    return Board(name=name, platform_class=platform_class, family=family,
                 device=platform_class.device, package=platform_class.package,
                 resources=resources, clock_mhz=clock_mhz, uart_pins=uart_pins,
                 description=description, **kw)


BOARDS: dict[str, Board] = {b.name: b for b in [
    _board("icebreaker", ICEBreakerPlatform, "ice40", _UP5K, 12.0,
           "FTDI channel B (rx pin 6, tx pin 9)",
           "1BitSquared iCEBreaker: iCE40UP5K-SG48, 12 MHz oscillator, 2 user LEDs"),
    _board("upduino-v3", UpduinoV3Platform, "ice40", _UP5K, 12.0,
           "header J6: rx pin 2, tx pin 46, to a 3.3 V USB-serial adapter (constraints/)",
           "tinyVision UPduino v3: iCE40UP5K-SG48, the internal oscillator (SB_HFOSC) divided "
           "to 12 MHz (48 MHz is above a UP5K network's fmax); its FT232H only programs the "
           "flash",
           extra_resources=(_uart("2", "46", Attrs(IO_STANDARD="SB_LVCMOS")),),
           platform_settings=(("hfosc_div", 2),)),
    _board("ice40-hx8k-b-evn", ICE40HX8KBEVNPlatform, "ice40", _HX8K, 12.0,
           "FTDI channel B (rx B10, tx B12)",
           "Lattice iCE40-HX8K breakout: iCE40HX8K-CT256, 12 MHz, 8 LEDs"),
    *[_board(f"ulx3s-{size}f", cls, "ecp5", _ECP5[size], 25.0, "FTDI US1 port (rx M1, tx L4)",
             f"Radiona ULX3S {size}F: LFE5U-{size}F-6BG381C, 25 MHz, 8 LEDs")
      for size, cls in ((25, ULX3S_25F_Platform), (45, ULX3S_45F_Platform),
                        (85, ULX3S_85F_Platform))],
    *[_board(f"orangecrab-r0.2-{size}f", cls, "ecp5", _ECP5[size], 48.0,
             "Feather header RX (N17) and TX (M18), to a 3.3 V USB-serial adapter "
             "(constraints/)",
             f"Good Stuff Department OrangeCrab r0.2 {size}F: LFE5U-{size}F-8MG285C, 48 MHz; "
             f"its USB port is the FPGA's own (bootloader), so the UART is on the header",
             extra_resources=(_uart("N17", "M18", Attrs(IO_TYPE="LVCMOS33")),))
      for size, cls in ((25, OrangeCrabR0_2_25FPlatform), (85, OrangeCrabR0_2_85FPlatform))],
    *[_board(f"ecpix5-{size}f", cls, "ecp5", _ECP5[size], 100.0,
             "FTDI channel B (rx R26, tx R24)",
             f"LambdaConcept ECPIX-5 {size}F: LFE5UM5G-{size}F-8BG554, 100 MHz, RGB LEDs")
      for size, cls in ((45, ECPIX545Platform), (85, ECPIX585Platform))],
]}


def board(name: str) -> Board:
    """The board called ``name``; :class:`BoardError` with the known names otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise BoardError(f"unknown board {name!r}; expected one of: "
                         f"{', '.join(sorted(BOARDS))}") from None
