"""A network on a board: input tensors in over the UART, predicted classes out.

The raw protocol (docs/boards.md): the host sends one inference's input tensor as bytes, one
byte per element in element order (channels-last, row-major: the order of the network's input
stream). A binary input element is bit 0 of its byte (1 means +1, 0 means −1); an n-bit element
(n ≤ 8) is the low n bits of its byte (two's complement for signed inputs); the other bits are
ignored. After the last byte of a frame the board sends back one byte: the predicted class. A
partial frame is dropped when the line stays idle mid-frame for ``idle_cycles`` (BoardTop: 0.1 s),
so a host can always resynchronize by pausing.
"""

from amaranth import Elaboratable, Module, ResetInserter, Signal, Value
from amaranth.build import ResourceError
from amaranth.lib import io, stream, wiring
from amaranth.lib.wiring import In, Out

from ..numeric import TensorType
from ..plan import plan
from ..spec import Argmax, Network
from .network import NetworkTop
from .stream import lanes_signature
from .uart import UartRx, UartTx, uart_divisor

__all__ = ["check_network", "BytePacker", "BoardCore", "BoardTop"]


def check_network(network: Network) -> None:
    """Raise ValueError unless ``network`` fits the raw UART protocol (see the module doc)."""
    if not network.layers or not isinstance(network.layers[-1], Argmax):
        raise ValueError(f"network {network.name!r} does not end in argmax; the board's "
                         f"UART protocol sends back one class index per inference")
    classes = network.layer_io()[-1][1].size  # argmax's input scores
    if classes > 256:
        raise ValueError(f"network {network.name!r} has {classes} classes; the board's "
                         f"UART protocol sends the class as one byte (at most 256)")
    bits = network.input_type.bits
    if bits > 8:
        raise ValueError(f"network {network.name!r} has {bits}-bit inputs; the board's UART "
                         f"protocol sends one byte per input element (at most 8 bits)")


class BytePacker(wiring.Component):
    """Packs a byte stream, one byte per element, into beats of ``lanes`` elements.

    Each element takes the low bits of its byte (bit 0 alone for a binary element); the first
    byte lands in element [0]. Accepts one byte per cycle except the cycle a full beat leaves.

    Parameters
    ----------
    t : TensorType
        The element type (at most 8 bits).
    lanes : int
        Elements per output beat.

    Members
    -------
    i_stream : In(stream.Signature(8))
    o_stream : Out(stream.Signature(ArrayLayout(element, lanes)))
    """

    def __init__(self, t: TensorType, lanes: int):
        if t.bits > 8:
            raise ValueError(f"{t.bits}-bit input elements do not fit the raw byte protocol "
                             f"(one byte per element, at most 8 bits)")
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
        self.t, self.lanes = t, lanes
        super().__init__({
            "i_stream": In(stream.Signature(8)),
            "o_stream": Out(lanes_signature(t, lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        width = 1 if self.t.binary else self.t.bits
        buf = Signal(self.o_stream.payload.shape())
        count = Signal(range(lanes + 1))
        full = count == lanes
        m.d.comb += [
            self.i_stream.ready.eq(~full),
            self.o_stream.valid.eq(full),
            self.o_stream.payload.eq(buf),
        ]
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += count.eq(count + 1)
            with m.Switch(count):
                for k in range(lanes):
                    with m.Case(k):
                        m.d.sync += Value.cast(buf[k]).eq(self.i_stream.payload[:width])
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += count.eq(0)
        return m


class BoardCore(wiring.Component):
    """The platform-free part of a board top: UART byte streams ↔ network.

    Input bytes are packed into the network's input beats (:class:`BytePacker`); every class
    index the network produces leaves as one byte and is kept in ``last_class``. With
    ``idle_cycles``, a frame left partial for that many cycles without a new byte is dropped
    by resetting the packer and the network (anything still inside them is lost).

    Parameters
    ----------
    network : Network
        Must end in argmax with at most 256 classes, and have inputs of at most 8 bits.
    idle_cycles : int or None
        Idle time that drops a partial frame; ``None`` never drops one.

    Members
    -------
    i_stream : In(stream.Signature(8))
        Input tensor bytes (from the UART receiver).
    o_stream : Out(stream.Signature(8))
        One byte per inference, the predicted class (to the UART transmitter).
    last_class : Out(8)
        The class most recently sent (0 after reset).
    frame_dropped : Out(1)
        Pulses when a partial frame is dropped.
    """

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(8))
    last_class: Out(8)
    frame_dropped: Out(1)

    def __init__(self, network: Network, *, idle_cycles: int | None = None):
        check_network(network)
        if idle_cycles is not None and (not isinstance(idle_cycles, int) or idle_cycles < 1):
            raise ValueError(f"idle_cycles must be a positive integer or None, not "
                             f"{idle_cycles!r}")
        self.network = network
        self.plan = plan(network)
        self.frame_bytes = self.plan.input_type.size
        self.idle_cycles = idle_cycles
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        drop = Signal()
        packer = BytePacker(self.plan.input_type, self.plan.input_lanes)
        top = NetworkTop(self.network)
        m.submodules.packer = ResetInserter(drop)(packer)
        m.submodules.network = ResetInserter(drop)(top)
        wiring.connect(m, wiring.flipped(self.i_stream), packer.i_stream)
        wiring.connect(m, packer.o_stream, top.i_stream)

        result = top.o_stream
        m.d.comb += [
            self.o_stream.valid.eq(result.valid),
            self.o_stream.payload.eq(result.payload),
            result.ready.eq(self.o_stream.ready),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += self.last_class.eq(self.o_stream.payload)

        # Position in the current frame, and the idle timer that drops a partial frame.
        position = Signal(range(self.frame_bytes))
        with m.If(self.i_stream.valid & self.i_stream.ready):
            with m.If(position == self.frame_bytes - 1):
                m.d.sync += position.eq(0)
            with m.Else():
                m.d.sync += position.eq(position + 1)
        if self.idle_cycles is not None:
            idle = Signal(range(self.idle_cycles + 1))
            with m.If((self.i_stream.valid & self.i_stream.ready) | (position == 0)):
                m.d.sync += idle.eq(0)
            with m.Elif(idle == self.idle_cycles):
                m.d.comb += drop.eq(1)
                m.d.sync += [idle.eq(0), position.eq(0)]
            with m.Else():
                m.d.sync += idle.eq(idle + 1)
        m.d.comb += self.frame_dropped.eq(drop)
        return m


class BoardTop(Elaboratable):
    """A network on a board: UART receiver → :class:`BoardCore` → UART transmitter.

    Requests the platform's UART (``uart``, default ``("uart", 0)``) and as many ``led``
    resources as there are (up to 8), which show the bits of the last predicted class. Runs in
    the platform's default clock domain, whose frequency is ``clk_hz``.

    Parameters
    ----------
    network : Network
        As for :class:`BoardCore`.
    clk_hz : int
        The ``sync`` clock frequency.
    baud : int
        UART bit rate (default 115200).
    idle_s : float
        Idle time in seconds that drops a partial frame (default 0.1).
    """

    def __init__(self, network: Network, *, clk_hz: int, baud: int = 115200,
                 uart: tuple[str, int] = ("uart", 0), idle_s: float = 0.1):
        divisor = uart_divisor(clk_hz, baud)
        check_network(network)
        p = plan(network)
        # Never shorter than a result's way out: the pipeline plus two bytes on the line.
        idle_cycles = max(round(idle_s * clk_hz),
                          4 * (p.latency_bound + p.cycles_per_inference) + 20 * divisor)
        self.network, self.clk_hz, self.baud, self.uart = network, clk_hz, baud, uart
        self.idle_cycles = idle_cycles

    def elaborate(self, platform):
        if platform is None:
            raise TypeError("BoardTop needs a platform (simulate BoardCore instead)")
        m = Module()
        m.submodules.uart_rx = rx = UartRx(clk_hz=self.clk_hz, baud=self.baud)
        m.submodules.uart_tx = tx = UartTx(clk_hz=self.clk_hz, baud=self.baud)
        m.submodules.core = core = BoardCore(self.network, idle_cycles=self.idle_cycles)
        pins = platform.request(*self.uart, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", pins.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", pins.tx)
        m.d.comb += [rx.rx.eq(rx_buffer.i), tx_buffer.o.eq(tx.tx)]
        wiring.connect(m, rx.o_stream, core.i_stream)
        wiring.connect(m, core.o_stream, tx.i_stream)
        for i in range(8):
            try:
                led = platform.request("led", i, dir="-")
            except ResourceError:
                break
            m.submodules[f"led_{i}"] = buffer = io.Buffer("o", led)
            m.d.comb += buffer.o.eq(core.last_class[i])
        return m
