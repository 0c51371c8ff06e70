"""The parts of :class:`~hwgen.rtl.board.BoardCore`: the framed protocol of docs/protocol.md
as a request parser, a response serializer and a result capture.

:class:`RequestParser` reads request frames byte by byte and decides every answer;
:class:`ResponseSerializer` sends the response frames it is handed; :class:`ResultCapture`
watches the network (its input beats, its classifier scores, its class) for the RESULT. The
wire format itself lives in :mod:`hwgen.protocol`.
"""

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol import (
    HEADER_BYTES,
    MAGIC,
    MAX_CLASSES,
    MAX_LOAD_DATA,
    MAX_PAYLOAD,
    VERSION,
    Command,
    ErrorCode,
    result_bytes,
)

__all__ = ["crc16_step", "RESPONSE_LAYOUT", "RequestParser", "ResponseSerializer",
           "ResultCapture"]

#: What :class:`RequestParser` hands :class:`ResponseSerializer` per response: its command,
#: for an ERROR the code and the request's command byte, and the request id to echo.
RESPONSE_LAYOUT = data.StructLayout({
    "command": 8,
    "code": 8,
    "for_command": 8,
    "request_id": 16,
})

#: Largest number a 32-bit field of the protocol holds.
_U32 = 2 ** 32 - 1


def _check_range(name: str, value, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, not {value!r}")


def _check_positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def crc16_step(crc: Value, byte: Value) -> Value:
    """CRC-16/CCITT-FALSE of ``crc`` extended by one byte (most significant bit first)."""
    for i in range(8):
        feedback = crc[15] ^ byte[7 - i]
        crc = Cat(Const(0, 1), crc[:15]) ^ Mux(feedback, 0x1021, 0)
    return crc


def _zext(value, bits: int) -> Value:
    v = Value.cast(value)
    return Cat(v, Const(0, bits - len(v)))


class RequestParser(wiring.Component):
    """Reads request frames byte by byte and decides each one's response.

    Bytes outside a frame are skipped until the magic. The header is checked in the order of
    docs/protocol.md (version, command, length, then for an INFER whether the weights are
    loaded); the payload is read whatever was found, and the response is decided by the CRC:
    ERROR BAD_CRC, the first error found, or the command's reply.

    An accepted INFER's payload bytes pass through to ``o_payload`` as they arrive (``i_stream``
    then takes a byte only when ``o_payload`` does); the response waits for ``result_ready``
    and is RESULT (or ERROR BAD_CRC), or ERROR TIMEOUT with ``abort`` if the result has not
    come ``result_cycles`` after the CRC. A LOAD whose offset is 0 or the next byte of the
    image writes its data halfword by halfword to the ``load_*`` ports while it arrives;
    ``weights_next`` moves on when its CRC is right and goes back to 0 when a written frame
    turns out bad. A frame that stops for ``idle_cycles`` is answered ERROR TIMEOUT (command
    0), with ``abort`` if it was a feeding INFER.

    A response starts with one cycle of ``o_response.valid``, the cycle after the request's
    last byte (or the cycle the result is ready, or a timeout ends); the parser does this only
    when the serializer is idle and ignores ``o_response.ready``. Until ``response_done``, the
    bytes that arrive are skipped.

    Parameters
    ----------
    frame_bytes : int
        The INFER payload length (1 … 65535): the network's input elements.
    weight_bytes : int
        Bytes of the SPRAM weight image (0 for none).
    idle_cycles, result_cycles : int
        The two timeouts, in cycles.

    Members
    -------
    i_stream : In(stream.Signature(8))
        Request bytes; always ready but inside an INFER payload.
    o_payload : Out(stream.Signature(8))
        An accepted INFER's payload bytes, in order.
    o_response : Out(stream.Signature(RESPONSE_LAYOUT))
        The response to send, one cycle per response.
    response_done : In(1)
        The response's last byte leaves this cycle.
    new_request : Out(1)
        A request's header has been read this cycle: the previous result is void.
    result_ready : In(1)
        The class of the network's current inference has come out.
    abort : Out(1)
        Drop the inference in progress (reset the packer and the network) this cycle.
    load_valid, load_restart, load_data : Out(1), Out(1), Out(16)
        The SPRAM write port of :class:`~hwgen.rtl.network.NetworkTop`.
    weights_next : Out(range(weight_bytes + 1))
        Bytes of the weight image loaded so far.
    weights_loaded : Out(1)
        The weight image is complete (always 1 without one).
    """

    def __init__(self, *, frame_bytes: int, weight_bytes: int, idle_cycles: int,
                 result_cycles: int):
        _check_range("frame_bytes", frame_bytes, 1, MAX_PAYLOAD[Command.INFER])
        _check_range("weight_bytes", weight_bytes, 0, _U32)
        _check_positive("idle_cycles", idle_cycles)
        _check_positive("result_cycles", result_cycles)
        self.frame_bytes, self.weight_bytes = frame_bytes, weight_bytes
        self.idle_cycles, self.result_cycles = idle_cycles, result_cycles
        super().__init__({
            "i_stream": In(stream.Signature(8)),
            "o_payload": Out(stream.Signature(8)),
            "o_response": Out(stream.Signature(RESPONSE_LAYOUT)),
            "response_done": In(1),
            "new_request": Out(1),
            "result_ready": In(1),
            "abort": Out(1),
            "load_valid": Out(1),
            "load_restart": Out(1),
            "load_data": Out(16),
            "weights_next": Out(range(weight_bytes + 1)),
            "weights_loaded": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        byte = self.i_stream.payload
        take = self.i_stream.valid & self.i_stream.ready
        version, command = Signal(8), Signal(8)
        length, count = Signal(16), Signal(16)
        crc, low_byte = Signal(16, init=0xFFFF), Signal(8)  # low_byte: of the id, the CRC
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(crc16_step(crc, byte))
        request_id = Signal(16)  # 0 until the frame's id has been read
        offset = Signal(32)
        error = Signal(8)  # the ErrorCode found so far, 0 for none
        feed = Signal()  # this INFER's payload goes into the network
        writing = Signal()  # this LOAD's data goes into the SPRAM stores
        halfword_low = Signal(8)
        weights_next = self.weights_next
        m.d.comb += self.weights_loaded.eq(weights_next == self.weight_bytes)
        # one timer: the line's idle time inside a frame, or the wait for a result
        timer = Signal(range(max(self.idle_cycles, self.result_cycles) + 1))
        is_infer, is_info, is_load = (command == Command.INFER, command == Command.INFO,
                                      command == Command.LOAD)
        data_bytes = (length - 4)[:(4 + MAX_LOAD_DATA).bit_length()]
        response = self.o_response.payload

        def respond(cmd, code=0, for_command=0) -> None:
            """This cycle's response to the current request (its id echoed)."""
            m.d.comb += [response.command.eq(cmd), response.code.eq(code),
                         response.for_command.eq(for_command),
                         response.request_id.eq(request_id)]

        def mid_frame() -> None:
            """Inside a frame: a line idle for idle_cycles drops it with ERROR TIMEOUT."""
            with m.If(take):
                m.d.sync += timer.eq(0)
            with m.Elif(timer == self.idle_cycles):
                m.d.sync += timer.eq(0)
                respond(Command.ERROR, ErrorCode.TIMEOUT, 0)
                m.d.comb += self.o_response.valid.eq(1)
                with m.If(feed):
                    m.d.comb += self.abort.eq(1)
                with m.If(writing):
                    m.d.sync += weights_next.eq(0)
                m.next = "RESPOND"
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        m.d.comb += [self.i_stream.ready.eq(1),  # bytes outside a frame are skipped
                     self.o_payload.payload.eq(byte)]
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
                    m.d.comb += self.new_request.eq(1)
                    m.d.sync += [length[8:].eq(byte), crc.eq(crc_next),
                                 count.eq(0), writing.eq(0)]
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
                    m.d.comb += [self.i_stream.ready.eq(self.o_payload.ready),
                                 self.o_payload.valid.eq(self.i_stream.valid)]
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
                    m.d.comb += [
                        self.load_valid.eq(writing & count[0]),
                        self.load_restart.eq((count == 5) & (offset[:len(weights_next)] == 0)),
                        self.load_data.eq(Cat(halfword_low, byte)),
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
                        respond(Command.ERROR, ErrorCode.BAD_CRC, command)
                        # an INFER's BAD_CRC still waits for its result
                        m.d.sync += error.eq(ErrorCode.BAD_CRC)
                        with m.If(writing):
                            m.d.sync += weights_next.eq(0)  # the stores took bad data
                    with m.Elif(error != 0):
                        respond(Command.ERROR, error, command)
                    with m.Elif(is_info):
                        respond(Command.INFO_REPLY)
                    with m.Elif(is_load):
                        respond(Command.LOAD_REPLY)
                        m.d.sync += weights_next.eq(offset[:len(weights_next)] + data_bytes)
                    m.d.sync += timer.eq(0)
                    with m.If(feed):
                        m.next = "WAIT_RESULT"
                    with m.Else():
                        m.d.comb += self.o_response.valid.eq(1)
                        m.next = "RESPOND"
            with m.State("WAIT_RESULT"):
                with m.If(self.result_ready):
                    with m.If(error != 0):
                        respond(Command.ERROR, error, command)
                    with m.Else():
                        respond(Command.RESULT)
                    m.d.comb += self.o_response.valid.eq(1)
                    m.next = "RESPOND"
                with m.Elif(timer == self.result_cycles):
                    m.d.comb += self.abort.eq(1)
                    respond(Command.ERROR, ErrorCode.TIMEOUT, Command.INFER)
                    m.d.comb += self.o_response.valid.eq(1)
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += timer.eq(timer + 1)
            with m.State("RESPOND"):
                with m.If(self.response_done):
                    m.next = "MAGIC0"
        return m


class ResponseSerializer(wiring.Component):
    """Sends response frames: header, payload and CRC of docs/protocol.md, one byte per
    ``o_stream`` beat.

    A response is taken from ``i_stream`` while none is being sent; its first byte is offered
    the next cycle and ``done`` is high the cycle its last byte (the CRC's high byte) leaves.
    The header comes from constants and the taken fields; the payload is read 4 bytes at a
    time while it is sent, from the constants and the ports below: a RESULT's class and cycle
    counts, then its scores, each taken from ``score`` (sign-extended to 32 bits) with one
    cycle of ``next_score``; an INFO_REPLY's or LOAD_REPLY's ``weights_next`` and
    ``weights_loaded``.

    Parameters
    ----------
    classes : int
        Scores in a RESULT (1 … 256).
    score_bits : int
        Bits of a score (1 … 32).
    weight_bytes : int
        Bytes of the SPRAM weight image (0 for none); with the next four, reported in
        INFO_REPLY.
    network_id, input_bytes, clk_hz, baud, cycles_per_inference : int
        The rest of INFO_REPLY (each 0 … 2**32 − 1).

    Members
    -------
    i_stream : In(stream.Signature(RESPONSE_LAYOUT))
        The response to send; ready while none is being sent.
    o_stream : Out(stream.Signature(8))
        Response bytes.
    done : Out(1)
        A response's last byte leaves this cycle.
    result_class : In(8)
    cycles_first, cycles_last : In(32)
    score : In(signed(score_bits))
    next_score : Out(1)
    weights_next : In(range(weight_bytes + 1))
    weights_loaded : In(1)
    last_class : Out(8)
        The class of the most recent RESULT sent (0 after reset).
    """

    def __init__(self, *, classes: int, score_bits: int, weight_bytes: int, network_id: int,
                 input_bytes: int, clk_hz: int, baud: int, cycles_per_inference: int):
        _check_range("classes", classes, 1, MAX_CLASSES)
        _check_range("score_bits", score_bits, 1, 32)
        for name, value in (("weight_bytes", weight_bytes), ("network_id", network_id),
                            ("input_bytes", input_bytes), ("clk_hz", clk_hz), ("baud", baud),
                            ("cycles_per_inference", cycles_per_inference)):
            _check_range(name, value, 0, _U32)
        self.classes, self.score_bits, self.weight_bytes = classes, score_bits, weight_bytes
        self.network_id, self.input_bytes = network_id, input_bytes
        self.clk_hz, self.baud, self.cycles_per_inference = clk_hz, baud, cycles_per_inference
        super().__init__({
            "i_stream": In(stream.Signature(RESPONSE_LAYOUT)),
            "o_stream": Out(stream.Signature(8)),
            "done": Out(1),
            "result_class": In(8),
            "cycles_first": In(32),
            "cycles_last": In(32),
            "score": In(signed(score_bits)),
            "next_score": Out(1),
            "weights_next": In(range(weight_bytes + 1)),
            "weights_loaded": In(1),
            "last_class": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        classes = self.classes
        # The payload leaves through a 32-bit shift register, reloaded every 4 bytes with
        # the next 4 payload bytes (a RESULT's scores one by one); the CRC follows it.
        sending = Signal()
        resp_cmd, resp_code, resp_for, resp_id = Signal(8), Signal(8), Signal(8), Signal(16)
        body_end = Signal(range(HEADER_BYTES + result_bytes(MAX_CLASSES) + 1))
        tx_pos = Signal(range(HEADER_BYTES + result_bytes(MAX_CLASSES) + 2))
        tx_last = tx_pos == body_end + 1
        word = Signal(32)
        crc = Signal(16, init=0xFFFF)
        weights_next = _zext(self.weights_next, 32)

        # each payload as its 32-bit chunks (protocol layouts, little-endian)
        cpi = self.cycles_per_inference
        chunks = {
            Command.RESULT: [Cat(_zext(self.result_class, 16), Const(classes, 16)),
                             self.cycles_first, self.cycles_last],
            Command.INFO_REPLY: [
                Const(self.network_id, 32), Const(self.input_bytes, 32),
                Cat(Const(classes, 16), Const(self.weight_bytes & 0xFFFF, 16)),
                Cat(Const(self.weight_bytes >> 16, 16), weights_next[:16]),
                Cat(weights_next[16:], Const(self.clk_hz & 0xFFFF, 16)),
                Cat(Const(self.clk_hz >> 16, 16), Const(self.baud & 0xFFFF, 16)),
                Cat(Const(self.baud >> 16, 16), Const(cpi & 0xFFFF, 16)),
                Const(cpi >> 16, 32)],
            Command.LOAD_REPLY: [weights_next, _zext(self.weights_loaded, 32)],
            Command.ERROR: [_zext(Cat(resp_code, resp_for), 32)],
        }
        lengths = {Command.RESULT: result_bytes(classes),
                   **{cmd: MAX_PAYLOAD[cmd] for cmd in (Command.INFO_REPLY, Command.LOAD_REPLY,
                                                        Command.ERROR)}}

        start = self.i_stream.valid & self.i_stream.ready
        request = self.i_stream.payload
        m.d.comb += self.i_stream.ready.eq(~sending)
        with m.If(start):
            m.d.sync += [sending.eq(1), resp_cmd.eq(request.command),
                         resp_code.eq(request.code), resp_for.eq(request.for_command),
                         resp_id.eq(request.request_id), tx_pos.eq(0), crc.eq(0xFFFF)]
            with m.Switch(request.command):
                for cmd, n in lengths.items():
                    with m.Case(cmd):
                        m.d.sync += body_end.eq(HEADER_BYTES + n)

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
        m.d.comb += [self.o_stream.payload.eq(out), self.o_stream.valid.eq(sending)]

        tx_fire = self.o_stream.valid & self.o_stream.ready
        with m.If(tx_fire):
            m.d.sync += [tx_pos.eq(tx_pos + 1), word.eq(word >> 8)]
            with m.If((tx_pos >= 2) & (tx_pos < body_end)):
                m.d.sync += crc.eq(crc16_step(crc, out))
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
                                        m.d.sync += word.eq(self.score)
                                        m.d.comb += self.next_score.eq(1)
            with m.If(tx_last):
                m.d.comb += self.done.eq(1)
                m.d.sync += sending.eq(0)
                with m.If(resp_cmd == Command.RESULT):
                    m.d.sync += self.last_class.eq(self.result_class)
        return m


class ResultCapture(wiring.Component):
    """Watches one inference of the network for its RESULT: cycle counts, scores and class.

    ``cycles_first`` and ``cycles_last`` count from the cycle after the frame's first and last
    input beat (1 on the cycle after) and stop when the class comes out; ``ready`` rises then
    and falls with ``new_request``. The scores are shifted in as their beats leave the
    classifier (lane 0 of the first beat is score 0) and out one at a time: ``score`` is the
    next one, ``next_score`` moves on (and wins over a score beat in the same cycle).

    Parameters
    ----------
    classes : int
        Scores per inference (1 … 256).
    score_bits : int
        Bits of a score (1 … 32).
    score_lanes : int
        Scores per classifier beat; divides ``classes``.
    beats : int
        Network input beats per frame.

    Members
    -------
    i_class : In(stream.Signature(8))
        The network's class output; always ready.
    beat : In(1)
        A network input beat is transferred this cycle.
    abort : In(1)
        The frame in progress is dropped: its beats are forgotten.
    score_fire : In(1)
        A classifier beat is transferred this cycle.
    score_beat : In(score_lanes * score_bits)
        Its scores, lane 0 in the lowest bits.
    new_request : In(1)
        A new request: the result is void.
    ready : Out(1)
        The class of the current request has come out.
    result_class : Out(8)
    cycles_first, cycles_last : Out(32)
    score : Out(signed(score_bits))
    next_score : In(1)
    """

    def __init__(self, *, classes: int, score_bits: int, score_lanes: int, beats: int):
        _check_range("classes", classes, 1, MAX_CLASSES)
        _check_range("score_bits", score_bits, 1, 32)
        if (not isinstance(score_lanes, int) or isinstance(score_lanes, bool)
                or score_lanes < 1 or classes % score_lanes):
            raise ValueError(f"score_lanes must be a positive divisor of classes ({classes}), "
                             f"not {score_lanes!r}")
        _check_positive("beats", beats)
        self.classes, self.score_bits = classes, score_bits
        self.score_lanes, self.beats = score_lanes, beats
        super().__init__({
            "i_class": In(stream.Signature(8)),
            "beat": In(1),
            "abort": In(1),
            "score_fire": In(1),
            "score_beat": In(score_lanes * score_bits),
            "new_request": In(1),
            "ready": Out(1),
            "result_class": Out(8),
            "cycles_first": Out(32),
            "cycles_last": Out(32),
            "score": Out(signed(score_bits)),
            "next_score": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        sbits, lanes, beats = self.score_bits, self.score_lanes, self.beats
        scores = Signal(self.classes * sbits)  # score 0 in the lowest bits once captured
        m.d.comb += self.score.eq(scores[:sbits])
        with m.If(self.score_fire):
            m.d.sync += scores.eq(Cat(scores[lanes * sbits:], self.score_beat))
        with m.If(self.next_score):
            m.d.sync += scores.eq(scores >> sbits)

        beat = Signal(range(beats))
        first_beat = self.beat & (beat == 0)
        last_beat = self.beat & (beat == beats - 1)
        with m.If(self.abort):
            m.d.sync += beat.eq(0)
        with m.Elif(self.beat):
            m.d.sync += beat.eq(Mux(last_beat, 0, beat + 1))

        m.d.comb += self.i_class.ready.eq(1)
        new_result = self.i_class.valid
        counting = ~self.ready & ~new_result
        m.d.sync += [self.cycles_first.eq(Mux(first_beat, 1, self.cycles_first + counting)),
                     self.cycles_last.eq(Mux(last_beat, 1, self.cycles_last + counting))]
        with m.If(new_result):
            m.d.sync += [self.result_class.eq(self.i_class.payload), self.ready.eq(1)]
        with m.If(self.new_request):
            m.d.sync += self.ready.eq(0)
        return m
