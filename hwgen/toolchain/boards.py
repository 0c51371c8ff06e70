"""The boards hwgen builds for: their amaranth-boards platform, FPGA and on-chip resources.

Adding a board is one entry in :data:`BOARDS`. Device, package and the UART's pins are read
from the amaranth-boards platform; the resource counts are the Lattice datasheets' (and agree with
the "available" counts nextpnr reports). Pins that amaranth-boards does not declare (the UART of
the UPduino v3 and of the OrangeCrab) are the board's ``extra_resources``, kept here as data so
that an installed hwgen has them and added to the platform by :meth:`Board.platform`;
constraints/README.md lists them with their sources.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth_boards.ecpix5 import ECPIX545Platform, ECPIX585Platform
from amaranth_boards.ice40_hx8k_b_evn import ICE40HX8KBEVNPlatform
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform, OrangeCrabR0_2_85FPlatform
from amaranth_boards.ulx3s import ULX3S_25F_Platform, ULX3S_45F_Platform, ULX3S_85F_Platform
from amaranth_boards.upduino_v3 import UpduinoV3Platform

from ..rtl.uart import uart_divisor

__all__ = ["Board", "BoardError", "BOARDS", "board", "LINK_BAUDS"]

#: The rates the USB-UART bridges on these boards make exactly (FTDI's FT2232H and FT231X:
#: 3 MHz ÷ 1, ÷ 1.5, ÷ 2, ÷ 3, … and the classic rates), fastest first: what
#: :meth:`Board.fastest_baud` chooses from.
LINK_BAUDS = (3_000_000, 2_000_000, 1_500_000, 1_000_000, 921_600, 460_800, 230_400, 115_200)


class BoardError(Exception):
    """An unknown board name, or a network that cannot run on a board."""


@dataclass(frozen=True)
class Board:
    """One supported board.

    ``resources`` counts the FPGA's primitives by hwgen's report names: ``lcs`` (iCE40 logic
    cells, each a LUT4 and a flip-flop) or ``lut4`` (ECP5 LUT4s), ``ffs``, ``bram`` (iCE40
    SB_RAM40_4K or ECP5 DP16KD), ``spram`` (UP5K SB_SPRAM256KA) and ``dsp`` (SB_MAC16 or
    MULT18X18D). ``clock_mhz`` is the oscillator (the platform's default clock): a build's
    first pass runs at it and ``hwgen build --clock-mhz auto`` (the default) then picks a PLL
    clock under the measured fmax; ``--clock-mhz osc`` stays at it. ``uart`` is the
    platform resource (name, number) with ``rx`` and ``tx`` that the board top requests;
    ``uart_host`` says how it reaches the host. ``baud`` is the link's default rate: the
    fastest that the board's USB-UART carries reliably and its oscillator makes exactly;
    ``max_baud`` the fastest the USB-UART carries at all (``None`` for an adapter of the
    user's choice); docs/boards.md gives the sources.
    """

    name: str
    platform_class: type
    family: str
    device: str
    package: str
    resources: dict[str, int]
    clock_mhz: float
    uart_host: str
    description: str
    uart: tuple[str, int] = ("uart", 0)
    extra_resources: tuple = ()
    platform_settings: tuple = ()
    #: The link's default rate (``hwgen build --baud``, ``hwgen run --baud``).
    baud: int = 115_200
    #: The fastest rate the board's USB-UART carries reliably; None: an external adapter.
    max_baud: int | None = None

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

    def fastest_baud(self, clk_hz: int) -> int:
        """The fastest of :data:`LINK_BAUDS` up to ``max_baud`` (up to ``baud`` for an adapter)
        that a ``clk_hz`` clock makes within the UART's tolerance (the slowest, 115200, when
        none does)."""
        ceiling = self.max_baud if self.max_baud is not None else self.baud
        for rate in LINK_BAUDS:
            if rate <= ceiling:
                try:
                    uart_divisor(clk_hz, rate)
                    return rate
                except ValueError:
                    continue
        return LINK_BAUDS[-1]

    def check_baud(self, baud: int, clk_hz: int) -> int:
        """The UART divisor of ``baud`` on this board at ``clk_hz``; BoardError naming the
        board when its USB-UART does not carry that rate or the clock does not make it within
        2 % (with the fastest rate that works)."""
        if not isinstance(baud, int) or isinstance(baud, bool) or baud < 1:
            raise BoardError(f"baud must be a positive integer, not {baud!r}")
        if self.max_baud is not None and baud > self.max_baud:
            raise BoardError(f"{self.name}: baud {baud} is more than its USB-UART "
                             f"({self.uart_host}) carries reliably, {self.max_baud}; the "
                             f"default is {self.baud}")
        try:
            return uart_divisor(clk_hz, baud)
        except ValueError as exc:
            raise BoardError(f"{self.name}: {exc}; at {clk_hz / 1e6:g} MHz the fastest rate "
                             f"that works is {self.fastest_baud(clk_hz)}") from None

    def uart_pins(self) -> dict[str, str]:
        """The package pins of the UART's ``rx`` and ``tx``, read from the platform (extra
        resources and connector pins resolved): ``{"rx": "6", "tx": "9"}`` on the iCEBreaker."""
        platform = self.platform()
        resource = platform.lookup(*self.uart)
        mapping = {f"{name}_{number}:{pin}": location
                   for (name, number), conn in platform.connectors.items()
                   for pin, location in conn}
        return {sub.name: " ".join(sub.ios[0].map_names(mapping, resource))
                for sub in resource.ios
                if isinstance(sub, Subsignal) and sub.name in ("rx", "tx")}


def _uart(rx: str, tx: str, io_attrs: Attrs) -> Resource:
    """A UART on header pins; ``io_attrs`` pulls them up, so that ``rx`` idles (mark) while no
    adapter is connected."""
    return Resource("uart", 0, Subsignal("rx", Pins(rx, dir="i")),
                    Subsignal("tx", Pins(tx, dir="o")), io_attrs)


_UP5K = {"lcs": 5280, "ffs": 5280, "bram": 30, "spram": 4, "dsp": 8}
_HX8K = {"lcs": 7680, "ffs": 7680, "bram": 32, "spram": 0, "dsp": 0}
_ECP5 = {  # LUT4s, DP16KD, MULT18X18D by device size
    25: {"lut4": 24288, "ffs": 24288, "bram": 56, "spram": 0, "dsp": 28},
    45: {"lut4": 43848, "ffs": 43848, "bram": 108, "spram": 0, "dsp": 72},
    85: {"lut4": 83640, "ffs": 83640, "bram": 208, "spram": 0, "dsp": 156},
}


#: An FTDI FT2232H's channel B as the UART (iCEBreaker, HX8K breakout, ECPIX-5): 3 Mbaud, its
#: "usual safe ceiling" (docs/boards.md), exact from a 12 MHz clock (divisor 4).
_FT2232H = {"baud": 3_000_000, "max_baud": 3_000_000}


def _board(name: str, platform_class: type, family: str, resources: dict, clock_mhz: float,
           uart_host: str, description: str, **kw) -> Board:
    return Board(name=name, platform_class=platform_class, family=family,
                 device=platform_class.device, package=platform_class.package,
                 resources=resources, clock_mhz=clock_mhz, uart_host=uart_host,
                 description=description, **kw)


BOARDS: dict[str, Board] = {b.name: b for b in [
    _board("icebreaker", ICEBreakerPlatform, "ice40", _UP5K, 12.0,
           "FTDI FT2232H channel B (its second serial port)",
           "1BitSquared iCEBreaker: iCE40UP5K-SG48, 12 MHz oscillator, 2 LEDs (+5 on the "
           "break-off PMOD)", **_FT2232H),
    # UPduino v3: its FT232H's UART lines are the flash's SCK (FPGA pin 15) and MOSI (pin 14)
    # and its DTR# output is the flash chip select (tinyvision-ai-inc/UPduino-v3.0,
    # Board/v3.0/UPduino_v3.0.sch), so the UART goes on two plain GPIOs of the right-hand
    # header (gpio_2, gpio_46 in the same repository's RTL/common/upduino.pdc).
    _board("upduino-v3", UpduinoV3Platform, "ice40", _UP5K, 12.0,
           "a 3.3 V USB-serial adapter on the right-hand header",
           "tinyVision UPduino v3: iCE40UP5K-SG48, its internal oscillator (SB_HFOSC) divided "
           "to 12 MHz (48 MHz is above a UP5K network's fmax), an RGB LED",
           extra_resources=(_uart("2", "46", Attrs(IO_STANDARD="SB_LVCMOS", PULLUP=1)),),
           platform_settings=(("hfosc_div", 2),)),
    _board("ice40-hx8k-b-evn", ICE40HX8KBEVNPlatform, "ice40", _HX8K, 12.0,
           "FTDI FT2232H channel B (its second serial port)",
           "Lattice iCE40-HX8K breakout: iCE40HX8K-CT256, 12 MHz oscillator, 8 LEDs",
           **_FT2232H),
    *[_board(f"ulx3s-{size}f", cls, "ecp5", _ECP5[size], 25.0,
             "FTDI FT231X on the US1 USB port",
             f"Radiona ULX3S {size}F: LFE5U-{size}F-6BG381C, 25 MHz oscillator, 8 LEDs",
             # 25 MHz makes 3 Mbaud only 4.2 % fast (divisor 8), 1 Mbaud exactly (25)
             baud=1_000_000, max_baud=3_000_000)
      for size, cls in ((25, ULX3S_25F_Platform), (45, ULX3S_45F_Platform),
                        (85, ULX3S_85F_Platform))],
    # OrangeCrab r0.2: the Feather header's serial pins, 0 = RX (N17) and 1 = TX (M18), as
    # amaranth-boards' "io" connector and litex-boards' gsd_orangecrab feather_serial.
    *[_board(f"orangecrab-r0.2-{size}f", cls, "ecp5", _ECP5[size], 48.0,
             "a 3.3 V USB-serial adapter on Feather header pins 0 (RX) and 1 (TX)",
             f"Good Stuff Department OrangeCrab r0.2 {size}F: LFE5U-{size}F-8MG285C, 48 MHz "
             f"oscillator, an RGB LED; its USB port is the FPGA's own (DFU bootloader), not a "
             f"serial bridge",
             extra_resources=(_uart("N17", "M18", Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),))
      for size, cls in ((25, OrangeCrabR0_2_25FPlatform), (85, OrangeCrabR0_2_85FPlatform))],
    *[_board(f"ecpix5-{size}f", cls, "ecp5", _ECP5[size], 100.0,
             "FTDI FT2232H channel B (its second serial port)",
             f"LambdaConcept ECPIX-5 {size}F: LFE5UM5G-{size}F-8BG554, 100 MHz oscillator, "
             f"4 RGB LEDs",
             # 100 MHz makes 2 Mbaud exactly (divisor 50), 3 Mbaud only 1.0 % fast (33)
             **{**_FT2232H, "baud": 2_000_000})
      for size, cls in ((45, ECPIX545Platform), (85, ECPIX585Platform))],
]}


def board(name: str) -> Board:
    """The board called ``name``; :class:`BoardError` with the known names otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise BoardError(f"unknown board {name!r}; expected one of: "
                         f"{', '.join(sorted(BOARDS))}") from None
