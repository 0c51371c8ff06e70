"""A network on a board: the framed UART protocol of docs/protocol.md in front of the network.

:class:`BoardCore` is the platform-free part (request bytes in, response bytes out), simulated
in tests/rtl/test_board.py and, as part of the whole board top, in sim/board_bench.py;
:class:`BoardTop` adds the UART, its pins and the LEDs. The wire format itself lives in
:mod:`hwgen.protocol`.
"""

from amaranth import (
    Cat,
    ClockDomain,
    Const,
    Elaboratable,
    Module,
    Mux,
    ResetInserter,
    Signal,
    Value,
)
from amaranth.build import ResourceError
from amaranth.lib import io, stream, wiring
from amaranth.lib.wiring import In, Out

from ..numeric import TensorType
from ..plan import plan
from ..protocol import (
    HEADER_BYTES,
    MAGIC,
    MAX_CLASSES,
    MAX_LOAD_DATA,
    MAX_PAYLOAD,
    VERSION,
    Command,
    ErrorCode,
    network_id,
    result_bytes,
)
from ..spec import Argmax, Network
from .network import NetworkTop
from .stream import lanes_signature
from .uart import UartRx, UartTx, uart_divisor
from .weights import spram_image

__all__ = ["check_network", "crc16_step", "BytePacker", "BoardCore", "BoardLogic", "BoardTop",
           "board_timeouts"]


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


def crc16_step(crc: Value, byte: Value) -> Value:
    """CRC-16/CCITT-FALSE of ``crc`` extended by one byte (most significant bit first)."""
    for i in range(8):
        feedback = crc[15] ^ byte[7 - i]
        crc = Cat(Const(0, 1), crc[:15]) ^ Mux(feedback, 0x1021, 0)
    return crc


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

    Parameters
    ----------
    network : Network
        Ends in argmax with at most 256 classes, inputs of at most 8 bits (:func:`check_network`).
    clk_hz, baud : int
        Reported in INFO_REPLY.
    idle_cycles, result_cycles : int
        The two timeouts, in cycles.

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
                 result_cycles: int, dsp_budget: int | None = None):
        check_network(network)
        for name, value in (("idle_cycles", idle_cycles), ("result_cycles", result_cycles)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.network, self.dsp_budget = network, dsp_budget
        self.plan = plan(network, dsp_budget)
        self.clk_hz, self.baud = clk_hz, baud
        self.idle_cycles, self.result_cycles = idle_cycles, result_cycles
        self.frame_bytes = self.plan.input_type.size
        self.weight_bytes = len(spram_image(network))
        self.network_id = network_id(network)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        p = self.plan
        net_reset = Signal()
        packer = BytePacker(p.input_type, p.input_lanes)
        top = NetworkTop(self.network, taps=True, dsp_budget=self.dsp_budget)
        m.submodules.packer = ResetInserter(net_reset)(packer)
        m.submodules.network = ResetInserter(net_reset)(top)
        wiring.connect(m, packer.o_stream, top.i_stream)

        # --- the inference: cycle counters, captured scores, class ------------------------
        score_lp = p.layers[-2]
        classes, lanes = score_lp.out_type.size, score_lp.out_lanes
        sbits = score_lp.out_type.bits
        scores = Signal(classes * sbits)  # score 0 in the lowest bits once captured
        with m.If(getattr(top, f"tap_{score_lp.name}_fire")):
            m.d.sync += scores.eq(Cat(scores[lanes * sbits:],
                                      getattr(top, f"tap_{score_lp.name}_payload")))
        beats = p.input_type.size // p.input_lanes
        beat = Signal(range(beats))
        in_fire = top.i_stream.valid & top.i_stream.ready
        first_beat, last_beat = in_fire & (beat == 0), in_fire & (beat == beats - 1)
        with m.If(net_reset):
            m.d.sync += beat.eq(0)  # a dropped frame's beats are gone with it
        with m.Elif(in_fire):
            m.d.sync += beat.eq(Mux(last_beat, 0, beat + 1))
        # both count up from their beat and stop when the class comes out
        result_first, result_last = Signal(32), Signal(32)
        result_class = Signal(8)
        result_ready = Signal()  # the class of the current request has come out
        m.d.comb += top.o_stream.ready.eq(1)
        new_result = top.o_stream.valid
        counting = ~result_ready & ~new_result
        m.d.sync += [result_first.eq(Mux(first_beat, 1, result_first + counting)),
                     result_last.eq(Mux(last_beat, 1, result_last + counting))]
        with m.If(new_result):
            m.d.sync += [result_class.eq(top.o_stream.payload), result_ready.eq(1)]

        # --- request fields ---------------------------------------------------------------
        byte = self.i_stream.payload
        take = self.i_stream.valid & self.i_stream.ready
        version, command = Signal(8), Signal(8)
        length, count = Signal(16), Signal(16)
        crc, low_byte = Signal(16, init=0xFFFF), Signal(8)  # low_byte: of the id, the CRC
        request_id = Signal(16)  # 0 until the frame's id has been read
        offset = Signal(32)
        error = Signal(8)  # the ErrorCode found so far, 0 for none
        feed = Signal()  # this INFER's payload goes into the network
        writing = Signal()  # this LOAD's data goes into the SPRAM stores
        halfword_low = Signal(8)
        weights_next = Signal(range(self.weight_bytes + 1))  # bytes of the image loaded so far
        m.d.comb += self.weights_loaded.eq(weights_next == self.weight_bytes)
        # one timer: the line's idle time inside a frame, or the wait for a result
        timer = Signal(range(max(self.idle_cycles, self.result_cycles) + 1))
        is_infer, is_info, is_load = (command == Command.INFER, command == Command.INFO,
                                      command == Command.LOAD)
        data_bytes = (length - 4)[:(4 + MAX_LOAD_DATA).bit_length()]

        # --- response serializer ----------------------------------------------------------
        # The payload leaves through a 32-bit shift register, reloaded every 4 bytes with
        # the next 4 payload bytes (a RESULT's scores one by one); the header comes from
        # constants and the CRC follows the payload.
        resp_cmd, resp_code, resp_for, resp_id = Signal(8), Signal(8), Signal(8), Signal(16)
        body_end = Signal(range(HEADER_BYTES + result_bytes(MAX_CLASSES) + 1))
        tx_pos = Signal(range(HEADER_BYTES + result_bytes(MAX_CLASSES) + 2))
        tx_last = tx_pos == body_end + 1
        word = Signal(32)

        def zext(value, bits: int) -> Value:
            v = Value.cast(value)
            return Cat(v, Const(0, bits - len(v)))

        # each payload as its 32-bit chunks (protocol layouts, little-endian)
        chunks = {
            Command.RESULT: [Cat(zext(result_class, 16), Const(classes, 16)), result_first,
                             result_last],
            Command.INFO_REPLY: [
                Const(self.network_id, 32), Const(self.frame_bytes, 32),
                Cat(Const(classes, 16), Const(self.weight_bytes & 0xFFFF, 16)),
                Cat(Const(self.weight_bytes >> 16, 16), zext(weights_next, 32)[:16]),
                Cat(zext(weights_next, 32)[16:], Const(self.clk_hz & 0xFFFF, 16)),
                Cat(Const(self.clk_hz >> 16, 16), Const(self.baud & 0xFFFF, 16)),
                Cat(Const(self.baud >> 16, 16), Const(p.cycles_per_inference & 0xFFFF, 16)),
                Const(p.cycles_per_inference >> 16, 32)],
            Command.LOAD_REPLY: [zext(weights_next, 32), zext(self.weights_loaded, 32)],
            Command.ERROR: [zext(Cat(resp_code, resp_for), 32)],
        }
        lengths = {Command.RESULT: result_bytes(classes),
                   **{cmd: MAX_PAYLOAD[cmd] for cmd in (Command.INFO_REPLY, Command.LOAD_REPLY,
                                                        Command.ERROR)}}
        out = Signal(8)
        with m.If(tx_pos < HEADER_BYTES):
            with m.Switch(tx_pos[:3]):
                for i, value in enumerate([*MAGIC, VERSION]):
                    with m.Case(i):
                        m.d.comb += out.eq(value)
                with m.Case(3):
                    m.d.comb += out.eq(resp_cmd)
                with m.Case(4):
                    m.d.comb += out.eq(resp_id[:8])
                with m.Case(5):
                    m.d.comb += out.eq(resp_id[8:])
                with m.Case(6):
                    m.d.comb += out.eq(Mux(resp_cmd == Command.RESULT,
                                           lengths[Command.RESULT] & 0xFF, body_end[:8]
                                           - HEADER_BYTES))
                with m.Case(7):
                    m.d.comb += out.eq(Mux(resp_cmd == Command.RESULT,
                                           lengths[Command.RESULT] >> 8, 0))
        with m.Elif(tx_pos < body_end):
            m.d.comb += out.eq(word[:8])
        with m.Elif(tx_last):
            m.d.comb += out.eq(crc[8:])
        with m.Else():
            m.d.comb += out.eq(crc[:8])
        m.d.comb += self.o_stream.payload.eq(out)
        # one CRC for both directions: requests are read and responses sent at other times
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(crc16_step(crc, Mux(self.o_stream.valid, out, byte)))
        tx_fire = self.o_stream.valid & self.o_stream.ready
        with m.If(tx_fire):
            m.d.sync += [tx_pos.eq(tx_pos + 1), word.eq(word >> 8)]
            with m.If((tx_pos >= 2) & (tx_pos < body_end)):
                m.d.sync += crc.eq(crc_next)
            # the next 4 payload bytes start after this byte: positions 8, 12, 16, ...
            with m.If((tx_pos >= HEADER_BYTES - 1)
                      & (tx_pos[:2] == (HEADER_BYTES - 1) % 4)):
                with m.Switch(resp_cmd):
                    for cmd, words in chunks.items():
                        with m.Case(cmd):
                            with m.Switch(tx_pos):
                                for k, value in enumerate(words):
                                    with m.Case(HEADER_BYTES - 1 + 4 * k):
                                        m.d.sync += word.eq(value)
                                if cmd == Command.RESULT:
                                    with m.Default():  # the scores, one per 4 bytes
                                        m.d.sync += [word.eq(scores[:sbits].as_signed()),
                                                     scores.eq(scores >> sbits)]

        def respond(cmd, code=0, for_command=0) -> list:
            """Start sending a response to the current request (its id echoed)."""
            return [resp_cmd.eq(cmd), body_end.eq(HEADER_BYTES + lengths[cmd]),
                    resp_code.eq(code), resp_for.eq(for_command), resp_id.eq(request_id),
                    tx_pos.eq(0), crc.eq(0xFFFF)]

        def mid_frame() -> None:
            """Inside a frame: a line idle for idle_cycles drops it with ERROR TIMEOUT."""
            with m.If(take):
                m.d.sync += timer.eq(0)
            with m.Elif(timer == self.idle_cycles):
                m.d.sync += [timer.eq(0), *respond(Command.ERROR, ErrorCode.TIMEOUT, 0)]
                with m.If(feed):
                    m.d.comb += net_reset.eq(1)
                with m.If(writing):
                    m.d.sync += weights_next.eq(0)
                m.next = "RESPOND"
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        # --- request receiver -------------------------------------------------------------
        m.d.comb += self.i_stream.ready.eq(1)  # bytes outside a frame are skipped
        with m.FSM(name="frame"):
            with m.State("MAGIC0"):
                m.d.sync += timer.eq(0)
                with m.If(take & (byte == MAGIC[0])):
                    m.next = "MAGIC1"
            with m.State("MAGIC1"):
                with m.If(take):
                    with m.If(byte == MAGIC[1]):
                        m.d.sync += [crc.eq(0xFFFF), request_id.eq(0)]
                        m.next = "VERSION"
                    with m.Elif(byte != MAGIC[0]):
                        m.next = "MAGIC0"
            # the header bytes after the magic, each stored and added to the CRC
            for state, store, after in (
                    ("VERSION", version.eq(byte), "COMMAND"),
                    ("COMMAND", command.eq(byte), "ID0"),
                    ("ID0", low_byte.eq(byte), "ID1"),
                    ("ID1", request_id.eq(Cat(low_byte, byte)), "LENGTH0"),
                    ("LENGTH0", length[:8].eq(byte), "LENGTH1")):
                with m.State(state):
                    mid_frame()
                    with m.If(take):
                        m.d.sync += [store, crc.eq(crc_next)]
                        m.next = after
            with m.State("LENGTH1"):
                mid_frame()
                full = Cat(length[:8], byte)
                bad_length = Mux(is_infer, full != self.frame_bytes,
                                 Mux(is_info, full != 0,
                                     (full < 6) | (full > 4 + MAX_LOAD_DATA) | full[0]))
                with m.If(take):
                    m.d.sync += [length[8:].eq(byte), crc.eq(crc_next),
                                 count.eq(0), writing.eq(0), result_ready.eq(0)]
                    with m.If(version != VERSION):
                        m.d.sync += error.eq(ErrorCode.BAD_VERSION)
                    with m.Elif(~(is_infer | is_info | is_load)):
                        m.d.sync += error.eq(ErrorCode.UNKNOWN_COMMAND)
                    with m.Elif(bad_length):
                        m.d.sync += error.eq(ErrorCode.BAD_LENGTH)
                    with m.Elif(is_infer & ~self.weights_loaded):
                        m.d.sync += error.eq(ErrorCode.NOT_LOADED)
                    with m.Else():
                        m.d.sync += error.eq(0)
                    m.d.sync += feed.eq((version == VERSION) & is_infer & ~bad_length
                                        & self.weights_loaded)
                    with m.If(full == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                mid_frame()
                with m.If(feed):
                    m.d.comb += [self.i_stream.ready.eq(packer.i_stream.ready),
                                 packer.i_stream.valid.eq(self.i_stream.valid),
                                 packer.i_stream.payload.eq(byte)]
                with m.If(take):
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1)]
                    with m.If(is_load & (count < 4)):
                        start = Cat(offset[8:], byte)  # the offset, low byte first
                        m.d.sync += offset.eq(start)
                        with m.If((count == 3) & (error == 0)):
                            narrow = start[:len(weights_next)]
                            fits = ((start[len(weights_next):] == 0)
                                    & (narrow + data_bytes <= self.weight_bytes))
                            with m.If(((narrow == 0) | (narrow == weights_next)) & fits):
                                m.d.sync += writing.eq(1)
                            with m.Else():
                                m.d.sync += error.eq(ErrorCode.BAD_OFFSET)
                    with m.If(writing & ~count[0]):
                        m.d.sync += halfword_low.eq(byte)
                    if top.spram_units:
                        m.d.comb += [
                            top.load_valid.eq(writing & count[0]),
                            top.load_restart.eq((count == 5) & (offset[:len(weights_next)] == 0)),
                            top.load_data.eq(Cat(halfword_low, byte)),
                        ]
                    with m.If(count == length - 1):
                        m.next = "CRC0"
            with m.State("CRC0"):
                mid_frame()
                with m.If(take):
                    m.d.sync += low_byte.eq(byte)
                    m.next = "CRC1"
            with m.State("CRC1"):
                mid_frame()
                with m.If(take):
                    with m.If(Cat(low_byte, byte) != crc):
                        m.d.sync += respond(Command.ERROR, ErrorCode.BAD_CRC, command)
                        with m.If(writing):
                            m.d.sync += weights_next.eq(0)  # the stores took bad data
                    with m.Elif(error != 0):
                        m.d.sync += respond(Command.ERROR, error, command)
                    with m.Elif(is_info):
                        m.d.sync += respond(Command.INFO_REPLY)
                    with m.Elif(is_load):
                        m.d.sync += [*respond(Command.LOAD_REPLY),
                                     weights_next.eq(offset[:len(weights_next)] + data_bytes)]
                    with m.Else():
                        m.d.sync += respond(Command.RESULT)
                    m.d.sync += timer.eq(0)
                    with m.If(feed):
                        m.next = "WAIT_RESULT"
                    with m.Else():
                        m.next = "RESPOND"
            with m.State("WAIT_RESULT"):
                with m.If(result_ready):
                    m.next = "RESPOND"
                with m.Elif(timer == self.result_cycles):
                    m.d.comb += net_reset.eq(1)
                    m.d.sync += respond(Command.ERROR, ErrorCode.TIMEOUT, Command.INFER)
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += timer.eq(timer + 1)
            with m.State("RESPOND"):
                m.d.comb += self.o_stream.valid.eq(1)
                with m.If(tx_fire & tx_last):
                    with m.If(resp_cmd == Command.RESULT):
                        m.d.sync += self.last_class.eq(result_class)
                    m.next = "MAGIC0"
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
                 idle_s: float = 0.1, dsp_budget: int | None = None):
        divisor = uart_divisor(clk_hz, baud)
        check_network(network)
        self.network, self.clk_hz, self.baud = network, clk_hz, baud
        self.dsp_budget = dsp_budget
        self.idle_cycles, self.result_cycles = board_timeouts(network, clk_hz, divisor, idle_s)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = rx = UartRx(clk_hz=self.clk_hz, baud=self.baud)
        m.submodules.uart_tx = tx = UartTx(clk_hz=self.clk_hz, baud=self.baud)
        m.submodules.core = core = BoardCore(self.network, clk_hz=self.clk_hz, baud=self.baud,
                                             idle_cycles=self.idle_cycles,
                                             result_cycles=self.result_cycles,
                                             dsp_budget=self.dsp_budget)
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
    dsp_budget : int or None
        The device's DSP multipliers, for ``mac = "auto"`` layers (:func:`hwgen.plan.plan`).
    """

    def __init__(self, network: Network, *, clk_hz: int, clock_hz: float | None = None,
                 family: str | None = None, baud: int = 115200,
                 uart: tuple[str, int] = ("uart", 0), idle_s: float = 0.1,
                 dsp_budget: int | None = None):
        from .clock import clock_config

        self.family, self.oscillator_hz, self.clock_request_hz = family, clk_hz, clock_hz
        #: The PLL's settings; None when the design runs at the oscillator.
        self.pll_config = None if clock_hz is None else clock_config(family, clk_hz, clock_hz)
        if self.pll_config is not None:
            clk_hz = round(self.pll_config.out_hz)
        divisor = uart_divisor(clk_hz, baud)
        check_network(network)
        self.network, self.clk_hz, self.baud, self.uart = network, clk_hz, baud, uart
        self.idle_s, self.dsp_budget = idle_s, dsp_budget
        self.idle_cycles, self.result_cycles = board_timeouts(network, clk_hz, divisor, idle_s)

    def elaborate(self, platform):
        if platform is None:
            raise TypeError("BoardTop needs a platform (simulate BoardLogic instead)")
        m = Module()
        if self.pll_config is not None:
            from .clock import PllClock

            m.domains.sync = ClockDomain()  # driven by the PLL (defined here, used below)
            m.submodules.pll = PllClock(self.family, self.oscillator_hz, self.clock_request_hz)
        m.submodules.logic = logic = BoardLogic(self.network, clk_hz=self.clk_hz, baud=self.baud,
                                                idle_s=self.idle_s, dsp_budget=self.dsp_budget)
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


def board_timeouts(network: Network, clk_hz: int, divisor: int,
                   idle_s: float = 0.1) -> tuple[int, int]:
    """(idle_cycles, result_cycles) of a board: a frame idle for ``idle_s`` is dropped, but
    never sooner than two byte times; an inference has 4 × (latency bound + cycles per
    inference) to answer."""
    p = plan(network)
    result_cycles = 4 * (p.latency_bound + p.cycles_per_inference)
    return max(round(idle_s * clk_hz), 20 * divisor), result_cycles
