"""A network on a board: the framed UART protocol of docs/protocol.md in front of the network.

:class:`BoardCore` is the platform-free part (request bytes in, response bytes out), simulated
in tests/rtl/test_board.py and, as part of the whole board top, in sim/board_bench.py;
:class:`BoardTop` adds the UART, its pins and the LEDs. The wire format itself lives in
:mod:`hwgen.protocol`.
"""

from amaranth import ClockDomain, Elaboratable, Module, Mux, ResetInserter, Signal, Value
from amaranth.build import ResourceError
from amaranth.lib import io, stream, wiring
from amaranth.lib.wiring import In, Out

from ..numeric import TensorType
from ..plan import NetworkPlan, checked_plan
from ..protocol import MAX_CLASSES, network_id
from ..spec import Argmax, Network
from ..weight_image import spram_image
from .framing import Crc16, RequestParser, ResponseSerializer, ResultCapture, crc16_step
from .network import NetworkTop
from .stream import lanes_signature
from .uart import UartRx, UartTx, uart_divisor

__all__ = ["check_network", "crc16_step", "BytePacker", "BoardCore", "BoardLogic", "BoardTop",
           "board_timeouts", "cycles_bits"]


def check_network(network: Network) -> None:
    """Raise ValueError unless ``network`` fits the UART protocol: it ends in argmax with at
    most 256 classes, its input elements have at most 8 bits and number at most 65535."""
    if not network.layers or not isinstance(network.layers[-1], Argmax):
        raise ValueError(f"network {network.name!r} does not end in argmax; the board's "
                         f"UART protocol sends back one class index per inference")
    classes = network.layer_io()[-1][1].size  # argmax's input scores
    if classes > MAX_CLASSES:
        raise ValueError(f"network {network.name!r} has {classes} classes; the board's "
                         f"UART protocol sends the class as one byte (at most 256)")
    bits = network.input_type.bits
    if bits > 8:
        raise ValueError(f"network {network.name!r} has {bits}-bit inputs; the board's UART "
                         f"protocol sends one byte per input element (at most 8 bits)")
    if network.input_type.size > 0xFFFF:
        raise ValueError(f"network {network.name!r} has {network.input_type.size} input "
                         f"elements; one INFER frame carries at most 65535")


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
    """The platform-free part of a board top: the framed protocol of docs/protocol.md between
    UART byte streams and the network.

    A request is read byte by byte: INFER payload bytes stream straight into the network
    through a :class:`BytePacker` (and the classifier scores are captured from its output as
    they leave), LOAD data goes 16 bits at a time into the SPRAM weight stores, and after the
    CRC the response frame is sent: RESULT, INFO_REPLY, LOAD_REPLY or ERROR. One request is
    served at a time; bytes that arrive while a response is pending are discarded.

    Timeouts keep the board answering: a frame that stops for ``idle_cycles`` is dropped with
    an ERROR TIMEOUT (the packer and the network are reset if it was an INFER), and so is an
    inference whose result does not come within ``result_cycles``.

    Composed of the parts in :mod:`hwgen.rtl.framing`: request bytes → :class:`RequestParser`
    (→ :class:`BytePacker` → the network for INFER payload, → its SPRAM ports for LOAD data)
    → one response descriptor → :class:`ResponseSerializer` → response bytes, with
    :class:`ResultCapture` watching the network for the RESULT's class, scores and cycles.

    Parameters
    ----------
    network : Network
        Ends in argmax with at most 256 classes, inputs of at most 8 bits (:func:`check_network`).
    clk_hz, baud : int
        Reported in INFO_REPLY.
    idle_cycles, result_cycles : int
        The two timeouts, in cycles.
    net_plan : NetworkPlan or None
        The network's plan (:func:`hwgen.plan.checked_plan`); ``None``: without DSPs.

    Members
    -------
    i_stream : In(stream.Signature(8))
        Request bytes (from the UART receiver).
    o_stream : Out(stream.Signature(8))
        Response bytes (to the UART transmitter).
    last_class : Out(8)
        The class of the most recent RESULT (0 after reset).
    weights_loaded : Out(1)
        The SPRAM weight image is complete (always 1 without SPRAM weights).
    """

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(8))
    last_class: Out(8)
    weights_loaded: Out(1)

    def __init__(self, network: Network, *, clk_hz: int, baud: int, idle_cycles: int,
                 result_cycles: int, net_plan: NetworkPlan | None = None):
        check_network(network)
        for name, value in (("idle_cycles", idle_cycles), ("result_cycles", result_cycles)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.network = network
        self.plan = checked_plan(network, net_plan)
        self.clk_hz, self.baud = clk_hz, baud
        self.idle_cycles, self.result_cycles = idle_cycles, result_cycles
        self.frame_bytes = self.plan.input_type.size
        self.weight_bytes = len(spram_image(network, self.plan))
        self.network_id = network_id(network)
        #: Bits of RESULT's cycle counters: cycles_first, cycles_last.
        self.cycles_bits = cycles_bits(self.frame_bytes, idle_cycles, result_cycles)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        p = self.plan
        score_lp = p.layers[-2]
        m.submodules.parser = parser = RequestParser(
            frame_bytes=self.frame_bytes, weight_bytes=self.weight_bytes,
            idle_cycles=self.idle_cycles, result_cycles=self.result_cycles)
        m.submodules.serializer = serializer = ResponseSerializer(
            classes=score_lp.out_type.size, score_bits=score_lp.out_type.bits,
            weight_bytes=self.weight_bytes, network_id=self.network_id,
            input_bytes=self.frame_bytes, clk_hz=self.clk_hz, baud=self.baud,
            cycles_per_inference=p.cycles_per_inference)
        m.submodules.capture = capture = ResultCapture(
            classes=score_lp.out_type.size, score_bits=score_lp.out_type.bits,
            score_lanes=score_lp.out_lanes, beats=p.input_type.size // p.input_lanes,
            cycles_bits=self.cycles_bits[0], last_bits=self.cycles_bits[1])
        m.submodules.crc = crc = Crc16()
        # one CRC: the parser's while a request arrives, the serializer's while it answers
        m.d.comb += [crc.clear.eq(parser.crc_clear | serializer.crc_clear),
                     crc.step.eq(parser.crc_step | serializer.crc_step),
                     crc.byte.eq(Mux(serializer.crc_step, serializer.crc_byte,
                                     parser.crc_byte)),
                     parser.crc.eq(crc.crc), serializer.crc.eq(crc.crc)]
        packer = BytePacker(p.input_type, p.input_lanes)
        top = NetworkTop(self.network, taps=True, net_plan=self.plan)
        # the parser's abort, a cycle later from a register: it resets every flip-flop of the
        # network, and its timeout comparisons stay out of that path
        abort = Signal()
        m.d.sync += abort.eq(parser.abort)
        m.submodules.packer = ResetInserter(abort)(packer)
        m.submodules.network = ResetInserter(abort)(top)
        # the response's end reaches the parser a cycle later, from a register: the UART's
        # ready stays out of the parser's state (bytes arriving meanwhile are skipped anyway)
        response_done = Signal()
        m.d.sync += response_done.eq(serializer.done)

        # request bytes → parser → packer → network; parser → serializer → response bytes
        wiring.connect(m, wiring.flipped(self.i_stream), parser.i_stream)
        wiring.connect(m, parser.o_payload, packer.i_stream)
        wiring.connect(m, packer.o_stream, top.i_stream)
        wiring.connect(m, parser.o_response, serializer.i_stream)
        wiring.connect(m, serializer.o_stream, wiring.flipped(self.o_stream))
        m.d.comb += [
            parser.response_done.eq(response_done),
            parser.result_ready.eq(capture.ready),
            # the capture watches the network
            capture.new_request.eq(parser.new_request),
            capture.abort.eq(abort),
            capture.beat.eq(top.i_stream.valid & top.i_stream.ready),
            capture.score_fire.eq(getattr(top, f"tap_{score_lp.name}_fire")),
            capture.score_beat.eq(getattr(top, f"tap_{score_lp.name}_payload")),
            capture.i_class.valid.eq(top.o_stream.valid),
            capture.i_class.payload.eq(top.o_stream.payload),
            top.o_stream.ready.eq(capture.i_class.ready),
            # the serializer reads the result and the weight image's progress as it sends
            serializer.result_class.eq(capture.result_class),
            serializer.cycles_first.eq(capture.cycles_first),
            serializer.cycles_last.eq(capture.cycles_last),
            serializer.score.eq(capture.score),
            capture.next_score.eq(serializer.next_score),
            serializer.weights_next.eq(parser.weights_next),
            serializer.weights_loaded.eq(parser.weights_loaded),
            self.last_class.eq(serializer.last_class),
            self.weights_loaded.eq(parser.weights_loaded),
        ]
        if top.spram_units:
            m.d.comb += [top.load_valid.eq(parser.load_valid),
                         top.load_restart.eq(parser.load_restart),
                         top.load_data.eq(parser.load_data)]
        return m


class BoardLogic(wiring.Component):
    """Everything of a board top but its pins and clock: serial line in → UART receiver →
    :class:`BoardCore` → UART transmitter → serial line out. The simulated board
    (sim/board_bench.py) is this component with its lines as ports.

    Parameters
    ----------
    network : Network
        As for :class:`BoardCore`.
    clk_hz : int
        The ``sync`` clock frequency.
    baud : int
        UART bit rate.
    idle_s : float
        Idle time in seconds that drops a partial frame.
    net_plan : NetworkPlan or None
        As for :class:`BoardCore`.

    Members
    -------
    rx : In(1)
        The serial line from the host (idle high).
    tx : Out(1)
        The serial line to the host.
    last_class : Out(8)
    weights_loaded : Out(1)
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    last_class: Out(8)
    weights_loaded: Out(1)

    def __init__(self, network: Network, *, clk_hz: int, baud: int = 115200,
                 idle_s: float = 0.1, net_plan: NetworkPlan | None = None):
        divisor = uart_divisor(clk_hz, baud)
        check_network(network)
        self.network, self.clk_hz, self.baud = network, clk_hz, baud
        self.plan = checked_plan(network, net_plan)
        self.idle_cycles, self.result_cycles = board_timeouts(self.plan, clk_hz, divisor,
                                                              idle_s)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = rx = UartRx(clk_hz=self.clk_hz, baud=self.baud)
        m.submodules.uart_tx = tx = UartTx(clk_hz=self.clk_hz, baud=self.baud)
        m.submodules.core = core = BoardCore(self.network, clk_hz=self.clk_hz, baud=self.baud,
                                             idle_cycles=self.idle_cycles,
                                             result_cycles=self.result_cycles,
                                             net_plan=self.plan)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx),
                     self.last_class.eq(core.last_class),
                     self.weights_loaded.eq(core.weights_loaded)]
        wiring.connect(m, rx.o_stream, core.i_stream)
        wiring.connect(m, core.o_stream, tx.i_stream)
        return m


class BoardTop(Elaboratable):
    """A network on a board: :class:`BoardLogic` on the board's UART pins, LEDs and clock.

    Requests the platform's UART (``uart``, default ``("uart", 0)``) and as many ``led``
    resources as there are (up to 8), which show the bits of the last predicted class. Runs in
    the ``sync`` domain: the platform's default clock at ``clk_hz`` (the oscillator), or with
    ``clock_hz`` the PLL's output closest to it from below (:class:`~hwgen.rtl.clock.PllClock`;
    ``self.clk_hz`` is then the achieved frequency and ``self.pll_config`` the PLL's settings).

    Parameters
    ----------
    network : Network
        As for :class:`BoardCore`.
    clk_hz : int
        The board's oscillator frequency.
    clock_hz : float or None
        A requested ``sync`` frequency; ``None`` runs at the oscillator.
    family : str
        ``"ice40"`` or ``"ecp5"`` (for the PLL).
    baud : int
        UART bit rate (default 115200).
    idle_s : float
        Idle time in seconds that drops a partial frame (default 0.1).
    net_plan : NetworkPlan or None
        The network's plan for the board (:func:`hwgen.toolchain.synth.board_plan`: its DSPs
        for ``mac = "auto"`` layers); ``None``: :func:`hwgen.plan.plan` without DSPs.
    """

    def __init__(self, network: Network, *, clk_hz: int, clock_hz: float | None = None,
                 family: str | None = None, baud: int = 115200,
                 uart: tuple[str, int] = ("uart", 0), idle_s: float = 0.1,
                 net_plan: NetworkPlan | None = None):
        from .clock import clock_config

        self.family, self.oscillator_hz, self.clock_request_hz = family, clk_hz, clock_hz
        #: The PLL's settings; None when the design runs at the oscillator.
        self.pll_config = None if clock_hz is None else clock_config(family, clk_hz, clock_hz)
        if self.pll_config is not None:
            clk_hz = round(self.pll_config.out_hz)
        divisor = uart_divisor(clk_hz, baud)
        check_network(network)
        self.network, self.clk_hz, self.baud, self.uart = network, clk_hz, baud, uart
        self.idle_s, self.plan = idle_s, checked_plan(network, net_plan)
        self.idle_cycles, self.result_cycles = board_timeouts(self.plan, clk_hz, divisor,
                                                              idle_s)

    def elaborate(self, platform):
        if platform is None:
            raise TypeError("BoardTop needs a platform (simulate BoardLogic instead)")
        m = Module()
        if self.pll_config is not None:
            from .clock import PllClock

            m.domains.sync = ClockDomain()  # driven by the PLL (defined here, used below)
            m.submodules.pll = PllClock(self.family, self.oscillator_hz, self.clock_request_hz)
        m.submodules.logic = logic = BoardLogic(self.network, clk_hz=self.clk_hz, baud=self.baud,
                                                idle_s=self.idle_s, net_plan=self.plan)
        pins = platform.request(*self.uart, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", pins.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", pins.tx)
        m.d.comb += [logic.rx.eq(rx_buffer.i), tx_buffer.o.eq(logic.tx)]
        for i in range(8):
            try:
                led = platform.request("led", i, dir="-")
            except ResourceError:
                break
            m.submodules[f"led_{i}"] = buffer = io.Buffer("o", led)
            m.d.comb += buffer.o.eq(logic.last_class[i])
        return m


def board_timeouts(net_plan: NetworkPlan, clk_hz: int, divisor: int,
                   idle_s: float = 0.1) -> tuple[int, int]:
    """(idle_cycles, result_cycles) of a board: a frame idle for ``idle_s`` is dropped, but
    never sooner than two byte times; an inference has 4 × (latency bound + cycles per
    inference) to answer, by the plan the board is built with."""
    result_cycles = 4 * (net_plan.latency_bound + net_plan.cycles_per_inference)
    return max(round(idle_s * clk_hz), 20 * divisor), result_cycles



def cycles_bits(frame_bytes: int, idle_cycles: int, result_cycles: int) -> tuple[int, int]:
    """Bits of RESULT's two cycle counters (at most the protocol's 32): enough for the longest
    counts a request can make. A frame's bytes come at most ``idle_cycles`` apart (or it is
    dropped) and its result at most ``result_cycles`` after its CRC, so ``cycles_first`` is
    below (frame_bytes + 2) · (idle_cycles + 1) + result_cycles, and ``cycles_last``, which
    starts with the last payload byte at the earliest, below 3 · (idle_cycles + 1) +
    result_cycles."""
    def bits(longest: int) -> int:
        return min(32, (longest + 16).bit_length())

    first = bits((frame_bytes + 2) * (idle_cycles + 1) + result_cycles)
    return first, min(first, bits(3 * (idle_cycles + 1) + result_cycles))
