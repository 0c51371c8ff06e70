"""8N1 UART receiver and transmitter on ``amaranth.lib.stream`` byte streams."""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["MAX_BAUD_ERROR", "MIN_DIVISOR", "uart_divisor", "UartRx", "UartTx"]

#: Largest accepted mismatch between the requested baud rate and the one the divisor gives.
#: An 8N1 receiver samples the stop bit 9.5 bits after the start edge, so a rate error e moves
#: that sample by 9.5 · e bits of the half bit it may move in all; 2 % here (0.19 bit) leaves
#: the rest to the other end's error and to this receiver's sampling quantization (at most
#: half a clock cycle: an eighth of a bit at the smallest divisor, 4).
MAX_BAUD_ERROR = 0.02
#: Fewest clock cycles per bit: the receiver needs a middle to sample and a glitch check.
MIN_DIVISOR = 4


def uart_divisor(clk_hz: int, baud: int = 115200) -> int:
    """Clock cycles per bit: ``round(clk_hz / baud)``, at least :data:`MIN_DIVISOR`, and
    giving a rate within :data:`MAX_BAUD_ERROR` (2 %) of ``baud``; ValueError naming ``baud``
    otherwise. At 12 MHz: 3 Mbaud is divisor 4, 2 Mbaud 6, 1 Mbaud 12 (all exact); at 25 MHz,
    3 Mbaud (divisor 8, 4.2 % fast) is refused and 1 Mbaud (25) is exact."""
    if not isinstance(clk_hz, int) or isinstance(clk_hz, bool) or clk_hz < 1:
        raise ValueError(f"clk_hz must be a positive integer, not {clk_hz!r}")
    if not isinstance(baud, int) or isinstance(baud, bool) or baud < 1:
        raise ValueError(f"baud must be a positive integer, not {baud!r}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"baud {baud} is too fast for a {clk_hz} Hz clock: the UART needs at "
                         f"least {MIN_DIVISOR} clock cycles per bit (at most "
                         f"{clk_hz // MIN_DIVISOR} baud)")
    error = abs(clk_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"baud {baud} from a {clk_hz} Hz clock is off by {error:.1%} "
                         f"(divisor {divisor} gives {clk_hz / divisor:.0f} baud); at most "
                         f"{MAX_BAUD_ERROR:.0%} is accepted")
    return divisor


class UartRx(wiring.Component):
    """8N1 UART receiver: serial line in, one byte per stream beat out.

    The line goes through a two-flop synchronizer; a falling edge starts a frame, the start bit
    is checked again half a bit later (a shorter low pulse is ignored as a glitch), and each
    data bit and the stop bit are sampled in the middle of their bit time, least significant
    bit first: ``divisor // 2`` to ``divisor // 2 + 1`` cycles after the bit's start as the
    synchronizer sees it (the edge falls somewhere in a cycle), which is centred for an odd
    divisor and up to half a cycle late for an even one. At divisor 4 (3 Mbaud from 12 MHz)
    that is 50–75 % into each bit; a sender 2 % fast or slow moves the stop bit's sample to
    31–56 % or 69–95 % of it (tests/rtl/test_uart.py checks both).

    A byte whose stop bit reads 0 is dropped, ``frame_error`` pulses for one cycle, and the
    receiver waits for the line to go high before it looks for a start bit again. A byte is
    held on ``o_stream`` until taken; one that completes while the previous byte is still held
    is dropped and ``overrun`` pulses (take each byte within one byte time to never lose one).

    Parameters
    ----------
    clk_hz : int
        Frequency of the ``sync`` domain.
    baud : int
        Bit rate (default 115200); see :func:`uart_divisor` for the accepted error.

    Members
    -------
    rx : In(1)
        The serial line (idle high); asynchronous to ``sync``.
    o_stream : Out(stream.Signature(8))
    frame_error : Out(1)
    overrun : Out(1)
    """

    rx: In(1, init=1)
    o_stream: Out(stream.Signature(8))
    frame_error: Out(1)
    overrun: Out(1)

    def __init__(self, *, clk_hz: int, baud: int = 115200):
        self.divisor = uart_divisor(clk_hz, baud)
        self.clk_hz, self.baud = clk_hz, baud
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(div))
        shreg = Signal(8)
        bits = Signal(range(8))
        data = Signal(8)
        valid = Signal()
        m.d.comb += [self.o_stream.valid.eq(valid), self.o_stream.payload.eq(data)]
        with m.If(self.o_stream.ready):
            m.d.sync += valid.eq(0)
        m.d.sync += [self.frame_error.eq(0), self.overrun.eq(0)]

        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(div - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), timer.eq(div - 1),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(~line):
                        m.d.sync += self.frame_error.eq(1)
                        m.next = "BREAK"
                    with m.Else():
                        with m.If(valid & ~self.o_stream.ready):
                            m.d.sync += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [data.eq(shreg), valid.eq(1)]
                        # Back to IDLE in the middle of the stop bit, in time for the next start.
                        m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(line):  # a low stop bit: wait for the line to be released
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 UART transmitter: one byte per stream beat in, serial line out.

    ``i_stream.ready`` is high while the line is idle (it depends on registered state only); a
    byte then takes 10 bit times (start, 8 data bits least significant first, stop), and the
    next byte starts right after the stop bit.

    Parameters
    ----------
    clk_hz : int
        Frequency of the ``sync`` domain.
    baud : int
        Bit rate (default 115200).

    Members
    -------
    i_stream : In(stream.Signature(8))
    tx : Out(1)
        The serial line, driven from a register; high when idle and after reset.
    """

    i_stream: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, *, clk_hz: int, baud: int = 115200):
        self.divisor = uart_divisor(clk_hz, baud)
        self.clk_hz, self.baud = clk_hz, baud
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        shreg = Signal(10, init=(1 << 10) - 1)  # bit 0 is on the line
        bits = Signal(range(11))  # bits still to send, the current one included
        timer = Signal(range(div))
        m.d.comb += [self.tx.eq(shreg[0]), self.i_stream.ready.eq(bits == 0)]
        with m.If(bits == 0):
            with m.If(self.i_stream.valid):
                m.d.sync += [shreg.eq(Cat(0, self.i_stream.payload, 1)), bits.eq(10),
                             timer.eq(div - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq(Cat(shreg[1:], 1)), bits.eq(bits - 1), timer.eq(div - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m
