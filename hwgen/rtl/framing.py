"""The parts of :class:`~hwgen.rtl.board.BoardCore`: the framed protocol of docs/protocol.md
as a request parser, a response serializer, a result capture and the CRC they share.

:class:`RequestParser` reads request frames byte by byte and decides every answer;
:class:`ResponseSerializer` sends the response frames it is handed; :class:`ResultCapture`
watches the network (its input beats, its classifier scores, its class) for the RESULT;
:class:`Crc16` is the one CRC register, used by the parser while a request arrives and by the
serializer while its response leaves (never both at once: the board answers one request at
a time). The wire format itself lives in :mod:`hwgen.protocol`.

The parts are built for size (bench/board_core.py counts their iCE40 logic cells; most of the
capture is its flip-flops: the scores and the two cycle counters). The serializer picks each
byte from constant tables held as bit masks (the header's by kind and byte, one flat 64-byte
table of every kind's body) and from its fields, placed in the flat table so that the low
bits of the address select a field's byte and the others the field (one unaligned field is
compared address by address); it never loads wide words.
The parser keeps only the error code and the command's decode: the kind of response follows
from them. Its timeouts test only the bits of the timeout that are 1 (a counter counting up
from 0 has those set first at the timeout itself), and it counts the payload down instead of
comparing a count with the length. The capture's cycle counters are as wide as the longest
count they must hold. The CRC is a byte a cycle (a bit-serial CRC was tried: its byte
register, bit counter and the stalls it needs cost more than the XOR trees it saves).
"""

import struct

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, enum, stream, wiring
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

__all__ = ["crc16_step", "Reply", "RESPONSE_LAYOUT", "Crc16", "RequestParser",
           "ResponseSerializer", "ResultCapture"]


class Reply(enum.Enum, shape=2):
    """The kind of response :class:`RequestParser` asks :class:`ResponseSerializer` for."""

    RESULT = 0
    INFO_REPLY = 1
    LOAD_REPLY = 2
    ERROR = 3


#: The command byte each kind of response carries.
REPLY_COMMAND = {Reply.RESULT: Command.RESULT, Reply.INFO_REPLY: Command.INFO_REPLY,
                 Reply.LOAD_REPLY: Command.LOAD_REPLY, Reply.ERROR: Command.ERROR}

#: What :class:`RequestParser` hands :class:`ResponseSerializer` per response: its kind, for an
#: ERROR the code and the request's command byte, and the request id to echo.
RESPONSE_LAYOUT = data.StructLayout({
    "kind": Reply,
    "code": 3,
    "for_command": 8,
    "request_id": 16,
})

#: Where each kind's body starts in :class:`ResponseSerializer`'s flat table of 64 bytes: most
#: multi-byte fields land at addresses whose low bits count their bytes, so a field's byte is
#: selected by those bits and the field by the others (INFO_REPLY's weights_next, at 14, is
#: found by comparing the address with each of its 4).
_BODY_BASE = {Reply.INFO_REPLY: 0, Reply.RESULT: 32, Reply.ERROR: 46, Reply.LOAD_REPLY: 48}

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


def _reached(counter: Value, value: int) -> Value:
    """``counter`` has reached ``value``, for a counter that counts up by one from 0 (and is
    never compared once past it): its bits that are 1 in ``value`` are all 1. The first count
    with those bits set is ``value`` itself, and the test looks at popcount(value) bits instead
    of comparing them all."""
    return Cat(*[counter[i] for i in range(len(counter)) if value >> i & 1]).all()


def _bytes_of(value: Value, count: int) -> list[Value]:
    """``count`` little-endian bytes of ``value`` (zero-extended)."""
    v = Value.cast(value)
    v = Cat(v, Const(0, max(0, 8 * count - len(v))))
    return [v[8 * k:8 * k + 8] for k in range(count)]


def _load_length_low(low: Value) -> Value:
    """What :func:`_bad_load_length_high` needs of a LOAD length's low byte, as 3 bits (taken
    into registers with the byte, so the length's checks are shallow when its high byte
    comes): odd; below 6 if the high byte is 0; its bits 2–7 above 4."""
    assert 4 + MAX_LOAD_DATA == 0b100_0000_0100
    return Cat(low[0], (low[3:] == 0) & ~(low[1] & low[2]),
               (low[3:] != 0) | (low[2] & (low[:2] != 0)))


def _bad_load_length_high(low_bits: Value, high: Value) -> Value:
    """A LOAD's length is odd, below 6 or above 4 + MAX_LOAD_DATA (1028), from
    :func:`_load_length_low` of its low byte and its high byte: bit tests, where comparisons
    with constants would cost a carry chain each."""
    odd, small, above_4 = low_bits[0], low_bits[1], low_bits[2]
    above_1028 = (high[3:] != 0) | (high[2] & (above_4 | (high[:2] != 0)))
    return odd | (small & (high == 0)) | above_1028


def _bad_load_length(length: Value) -> Value:
    """:func:`_bad_load_length_high` of a whole 16-bit length (for tests)."""
    return _bad_load_length_high(_load_length_low(length[:8]), length[8:])


class Crc16(wiring.Component):
    """The CRC-16/CCITT-FALSE register of docs/protocol.md, extended one byte per cycle.

    ``clear`` sets it to 0xFFFF (and wins over ``step``); ``step`` adds ``byte``; ``crc`` is the
    CRC of the bytes added since the last clear.

    Members
    -------
    clear, step : In(1)
    byte : In(8)
    crc : Out(16)
    """

    clear: In(1)
    step: In(1)
    byte: In(8)
    crc: Out(16, init=0xFFFF)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.clear):
            m.d.sync += self.crc.eq(0xFFFF)
        with m.Elif(self.step):
            m.d.sync += self.crc.eq(crc16_step(self.crc, self.byte))
        return m


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
    last byte is taken (or after the result is ready, or a timeout ends); its payload stays as
    it is until ``response_done``. The parser does this only when the serializer is idle and ignores
    ``o_response.ready``. Until ``response_done``, the bytes that arrive are skipped.

    The frame's CRC is computed in the shared :class:`Crc16`: ``crc_clear`` and ``crc_step``
    with the byte taken on ``i_stream``, read back on ``crc``; the parser leaves it alone from
    its last CRC byte until ``response_done``.

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
        The response to send, one cycle of ``valid`` per response.
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
    crc_clear, crc_step : Out(1)
    crc_byte : Out(8)
    crc : In(16)
        The shared :class:`Crc16`.
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
            "crc_clear": Out(1),
            "crc_step": Out(1),
            "crc_byte": Out(8),
            "crc": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        byte = self.i_stream.payload
        take = self.i_stream.valid & self.i_stream.ready
        response = self.o_response.payload
        command = Signal(8)  # the request's command byte (0 after an idle timeout)
        error = Signal(3)  # the ErrorCode found so far, 0 for none
        request_id = Signal(16)  # 0 until the frame's id has been read
        version_ok = Signal()
        # the command decoded as it arrives (its byte is kept for the ERROR answer)
        is_infer, is_info, is_load = Signal(), Signal(), Signal()
        # the length's low byte checked as it arrives: INFER's, INFO's (0) and LOAD's rules
        low_infer, low_zero, low_load = Signal(), Signal(), Signal(3)
        crc_low_ok = Signal()  # the CRC's low byte matched
        # payload bytes still to come; its low byte holds the id's low byte until the id's
        # high byte comes, then the length's low byte until its high byte comes
        remaining = Signal(16)
        feed = Signal()  # this INFER's payload goes into the network
        weights_next = self.weights_next
        m.d.comb += [self.weights_loaded.eq(weights_next == self.weight_bytes),
                     self.crc_byte.eq(byte)]
        # one timer: the line's idle time inside a frame (cleared by each byte of it), or the
        # wait for a result (from the CRC's last byte); held at 0 while hunting for a magic
        timer = Signal(range(max(self.idle_cycles, self.result_cycles) + 1))
        timer_clear = Signal()
        with m.If(timer_clear):
            m.d.sync += timer.eq(0)
        with m.Else():
            m.d.sync += timer.eq(timer + 1)

        # the response follows from the error found and the command: an ERROR for any error,
        # else the command's reply (an INFER without an error is always fed: its RESULT)
        m.d.comb += [response.for_command.eq(command), response.code.eq(error),
                     response.request_id.eq(request_id),
                     response.kind.eq(Mux(error != 0, Reply.ERROR,
                                          Mux(is_info, Reply.INFO_REPLY,
                                              Mux(is_load, Reply.LOAD_REPLY, Reply.RESULT))))]

        load = _LoadWriter(self, m, take, byte, remaining, error, is_load)

        # inside a frame, a line idle for idle_cycles drops it with ERROR TIMEOUT (command 0)
        in_frame = Signal()
        idle_timeout = in_frame & ~take & _reached(timer, self.idle_cycles)
        with m.If(idle_timeout):
            m.d.sync += command.eq(0)
            m.d.sync += error.eq(ErrorCode.TIMEOUT)
            with m.If(feed):
                m.d.comb += self.abort.eq(1)
            load.abort(m)

        def mid_frame() -> None:
            m.d.comb += [in_frame.eq(1), timer_clear.eq(take)]
            with m.If(idle_timeout):
                m.next = "START"

        m.d.comb += [self.i_stream.ready.eq(1),  # bytes outside a frame are skipped
                     self.o_payload.payload.eq(byte)]
        with m.FSM(name="frame"):
            with m.State("MAGIC0"):
                m.d.comb += timer_clear.eq(1)
                with m.If(take & (byte == MAGIC[0])):
                    m.next = "MAGIC1"
            with m.State("MAGIC1"):
                m.d.comb += timer_clear.eq(1)
                with m.If(take):
                    with m.If(byte == MAGIC[1]):
                        m.d.sync += request_id.eq(0)
                        m.d.comb += self.crc_clear.eq(1)
                        m.next = "VERSION"
                    with m.Elif(byte != MAGIC[0]):
                        m.next = "MAGIC0"
            # the header bytes after the magic, each stored and added to the CRC
            for state, store, after in (
                    ("VERSION", version_ok.eq(byte == VERSION), "COMMAND"),
                    ("COMMAND", [command.eq(byte), is_infer.eq(byte == Command.INFER),
                                 is_info.eq(byte == Command.INFO),
                                 is_load.eq(byte == Command.LOAD)], "ID0"),
                    ("ID0", remaining[:8].eq(byte), "ID1"),
                    ("ID1", request_id.eq(Cat(remaining[:8], byte)), "LENGTH0"),
                    ("LENGTH0", [remaining[:8].eq(byte),
                                 low_infer.eq(byte == self.frame_bytes & 0xFF),
                                 low_zero.eq(byte == 0), low_load.eq(_load_length_low(byte))],
                     "LENGTH1")):
                with m.State(state):
                    mid_frame()
                    with m.If(take):
                        m.d.sync += store
                        m.d.comb += self.crc_step.eq(1)
                        m.next = after
            with m.State("LENGTH1"):
                mid_frame()
                empty = low_zero & (byte == 0)
                bad_length = Mux(is_infer, ~low_infer | (byte != self.frame_bytes >> 8),
                                 Mux(is_info, ~empty, _bad_load_length_high(low_load, byte)))
                with m.If(take):
                    m.d.comb += [self.new_request.eq(1), self.crc_step.eq(1)]
                    m.d.sync += remaining[8:].eq(byte)
                    with m.If(~version_ok):
                        m.d.sync += error.eq(ErrorCode.BAD_VERSION)
                    with m.Elif(~(is_infer | is_info | is_load)):
                        m.d.sync += error.eq(ErrorCode.UNKNOWN_COMMAND)
                    with m.Elif(bad_length):
                        m.d.sync += error.eq(ErrorCode.BAD_LENGTH)
                    with m.Elif(is_infer & ~self.weights_loaded):
                        m.d.sync += error.eq(ErrorCode.NOT_LOADED)
                    with m.Elif(is_load & Const(self.weight_bytes == 0)):
                        m.d.sync += error.eq(ErrorCode.BAD_OFFSET)  # no image to load
                    with m.Else():
                        m.d.sync += error.eq(0)
                    m.d.sync += feed.eq(version_ok & is_infer & ~bad_length
                                        & self.weights_loaded)
                    load.header(m)
                    with m.If(empty):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                mid_frame()
                with m.If(feed):
                    m.d.comb += [self.i_stream.ready.eq(self.o_payload.ready),
                                 self.o_payload.valid.eq(self.i_stream.valid)]
                with m.If(take):
                    m.d.sync += remaining.eq(remaining - 1)
                    m.d.comb += self.crc_step.eq(1)
                    load.payload_byte(m)
                    with m.If(remaining == 1):
                        m.next = "CRC0"
            with m.State("CRC0"):
                mid_frame()
                with m.If(take):  # the CRC is checked a byte at a time
                    m.d.sync += crc_low_ok.eq(byte == self.crc[:8])
                    m.next = "CRC1"
            with m.State("CRC1"):
                mid_frame()
                with m.If(take):
                    with m.If(~crc_low_ok | (byte != self.crc[8:])):
                        # an INFER's BAD_CRC still waits for its result
                        m.d.sync += error.eq(ErrorCode.BAD_CRC)
                        load.abort(m)  # the stores took bad data
                    with m.Elif(is_load & (error == 0)):
                        load.commit(m)
                    with m.If(feed):
                        m.next = "WAIT_RESULT"
                    with m.Else():
                        m.next = "START"
            with m.State("WAIT_RESULT"):
                with m.If(self.result_ready):
                    m.next = "START"
                with m.Elif(_reached(timer, self.result_cycles)):
                    m.d.comb += self.abort.eq(1)
                    m.d.sync += error.eq(ErrorCode.TIMEOUT)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += self.o_response.valid.eq(1)
                m.next = "RESPOND"
            with m.State("RESPOND"):
                with m.If(self.response_done):
                    m.next = "MAGIC0"
        return m



class ResponseSerializer(wiring.Component):
    """Sends response frames: header, payload and CRC of docs/protocol.md, one byte per
    ``o_stream`` beat.

    A response is taken from ``i_stream`` while none is being sent, and its payload must stay
    as it is until ``done``; its first byte is offered two cycles later, each byte from a
    register, the next one at the earliest the cycle after a byte leaves, and ``done`` is high
    the cycle its last byte (the CRC's high byte) leaves. Each byte is picked by the response's
    kind and the byte's position from the constants (INFO_REPLY's figures, the lengths) and
    the ports below: a RESULT's class and cycle counts, then its scores, each sent from
    ``score`` (sign-extended to 32 bits) and moved on with one cycle of ``next_score`` the
    cycle after its fourth byte is picked; an INFO_REPLY's or LOAD_REPLY's ``weights_next``
    and ``weights_loaded``. These are read as their bytes leave. The CRC is computed in the
    shared :class:`Crc16` (``crc_clear``, ``crc_step`` with the byte leaving, ``crc``).

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
    crc_clear, crc_step : Out(1)
    crc_byte : Out(8)
    crc : In(16)
        The shared :class:`Crc16`.
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
            "crc_clear": Out(1),
            "crc_step": Out(1),
            "crc_byte": Out(8),
            "crc": In(16),
        })

    def _layout(self) -> tuple[list, dict, dict]:
        """The frames as tables: the header's bytes (an int, a ``(kind → int)`` dict for the
        command and length, or a field name for the request id's bytes), the bodies' flat
        table (:data:`_BODY_BASE`: each kind's body at its base address, its variable bytes as
        field names) and each kind's last body address."""
        lengths = {kind: (result_bytes(self.classes) if kind == Reply.RESULT
                          else MAX_PAYLOAD[REPLY_COMMAND[kind]]) for kind in Reply}
        header = [*MAGIC, VERSION, {k: int(REPLY_COMMAND[k]) for k in Reply}, "id0", "id1",
                  {k: lengths[k] & 0xFF for k in Reply}, {k: lengths[k] >> 8 for k in Reply}]
        assert len(header) == HEADER_BYTES
        wn = ["wn0", "wn1", "wn2", "wn3"]
        bodies = {
            Reply.INFO_REPLY: [
                *struct.pack("<IIHI", self.network_id, self.input_bytes, self.classes,
                             self.weight_bytes), *wn,
                *struct.pack("<III", self.clk_hz, self.baud, self.cycles_per_inference)],
            Reply.RESULT: ["class", 0, *struct.pack("<H", self.classes),
                           "cf0", "cf1", "cf2", "cf3", "cl0", "cl1", "cl2", "cl3"],
            Reply.ERROR: ["code", "command"],
            Reply.LOAD_REPLY: [*wn, "loaded"],
        }
        table, last = [0] * 64, {}
        for kind, body in bodies.items():
            assert len(body) == (result_bytes(0) if kind == Reply.RESULT
                                 else MAX_PAYLOAD[REPLY_COMMAND[kind]])
            base = _BODY_BASE[kind]
            table[base:base + len(body)] = body
            last[kind] = base + len(body) - 1
        assert len(table) == 64
        return header, table, last

    def elaborate(self, platform):
        m = Module()
        response = self.i_stream.payload
        header, table, last = self._layout()
        # ``pos``: the header's byte (0 … 7), then the body's address in the flat table
        # (from the kind's base), a score's byte (its low 2 bits), the CRC's byte (bit 0)
        pos = Signal(6)
        score_index = Signal(range(self.classes))
        # Each byte is picked (``nxt``) into a register the cycle before it is offered, so
        # neither the UART nor the CRC sees the table's logic: a byte at most every 2 cycles.
        nxt, out = Signal(8), Signal(8)
        have = Signal()  # ``out`` holds a byte to send
        in_crc = Signal()  # and that byte goes into the CRC
        load = Signal()  # the next byte is picked this cycle
        fire = self.o_stream.valid & self.o_stream.ready
        m.d.comb += [self.o_stream.payload.eq(out), self.o_stream.valid.eq(have),
                     self.crc_byte.eq(out), self.crc_step.eq(fire & in_crc)]
        with m.If(fire):
            m.d.sync += have.eq(0)
        with m.If(load):
            m.d.sync += [out.eq(nxt), have.eq(1)]
        # from a register: it enables every score flip-flop of the capture
        m.d.sync += self.next_score.eq(0)

        # the variable bytes, each from a field selected by few bits of ``pos``
        fields = {"id0": response.request_id[:8], "id1": response.request_id[8:],
                  "class": self.result_class, "code": _bytes_of(response.code, 1)[0],
                  "command": response.for_command,
                  "loaded": _bytes_of(self.weights_loaded, 1)[0]}
        for name, value in (("cf", self.cycles_first), ("cl", self.cycles_last),
                            ("wn", self.weights_next)):
            for k, byte in enumerate(_bytes_of(value, 4)):
                fields[f"{name}{k}"] = byte

        def rom(entries, index: Value) -> Value:
            """The constant bytes of ``entries`` (0 where a field is) at ``index``."""
            assert len(entries) == 1 << len(index)
            bits = []
            for b in range(8):
                word = sum(1 << a for a, e in enumerate(entries)
                           if isinstance(e, int) and (e >> b) & 1)
                bits.append(Const(word, len(entries)).bit_select(index, 1))
            return Cat(*bits)

        def variable(entries) -> Value:
            """The field bytes of ``entries`` at ``pos`` (0 where a constant is). A field's
            bytes are at consecutive addresses; those of an aligned field are selected by the
            low bits of ``pos`` and the field by comparing the others."""
            width = (len(entries) - 1).bit_length()
            at = pos[:width]
            groups = {}
            for a, e in enumerate(entries):
                if not isinstance(e, str):
                    continue
                name, k = (e[:-1], int(e[-1])) if e[-1].isdigit() else (e, 0)
                groups.setdefault((name, a - k), []).append(k)
            value = Const(0, 8)
            for (name, first), ks in groups.items():
                count = len(ks)
                assert ks == list(range(count))
                if count == 1:
                    value = value | Mux(at == first, fields[name], 0)
                    continue
                low = (count - 1).bit_length()
                assert count == 1 << low
                word = Cat(*[fields[f"{name}{k}"] for k in range(count)])
                if first % count == 0:  # aligned
                    hit, index = at[low:] == first >> low, at[:low]
                else:
                    hit = Cat(*[at == a for a in range(first, first + count)]).any()
                    index = (at - first)[:low]
                value = value | Mux(hit, word.word_select(index, 8), 0)
            return value

        score = Cat(self.score, self.score[-1].replicate(32 - self.score_bits))
        # the header's constant bytes by (kind, byte), its request id from the fields
        head_rom = [e[kind] if isinstance(e, dict) else e for kind in Reply for e in header]
        head = (rom(head_rom, Cat(pos[:3], response.kind))
                | variable([e if isinstance(e, str) else 0 for e in header]))
        body = rom(table, pos) | variable(table)
        # ``pos`` is a body's last address (each kind's body has its own): a register, set
        # as ``pos`` moves there, so the table's bit select stays out of the state's logic
        at_body_last = Signal()
        before_last = Const(sum(1 << (a - 1) for a in last.values()), 64)

        with m.FSM(name="response"):
            with m.State("IDLE"):
                m.d.comb += self.i_stream.ready.eq(1)
                with m.If(self.i_stream.valid):
                    m.d.sync += pos.eq(0)
                    m.d.comb += self.crc_clear.eq(1)
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += [load.eq(~have), nxt.eq(head)]
                with m.If(load):
                    # the bytes after the magic (``pos`` is below 8 here: no comparator)
                    assert len(MAGIC) == 2
                    m.d.sync += [pos.eq(pos + 1), in_crc.eq(pos[1:3] != 0)]
                    with m.If(pos[:3] == HEADER_BYTES - 1):
                        with m.Switch(response.kind):
                            for kind in Reply:
                                with m.Case(kind):
                                    m.d.sync += [pos.eq(_BODY_BASE[kind]),
                                                 at_body_last.eq(_BODY_BASE[kind]
                                                                 == last[kind])]
                        m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += [load.eq(~have), nxt.eq(body)]
                with m.If(load):
                    m.d.sync += [pos.eq(pos + 1), in_crc.eq(1),
                                 at_body_last.eq(before_last.bit_select(pos, 1))]
                    with m.If(at_body_last):
                        m.d.sync += [pos.eq(0), score_index.eq(0)]
                        with m.If(response.kind == Reply.RESULT):
                            m.next = "SCORES"
                        with m.Else():
                            m.next = "CRC"
            with m.State("SCORES"):
                m.d.comb += [load.eq(~have), nxt.eq(score.word_select(pos[:2], 8))]
                with m.If(load):
                    m.d.sync += [pos.eq(pos + 1), in_crc.eq(1)]
                    with m.If(pos[:2] == 3):
                        m.d.sync += self.next_score.eq(1)
                        m.d.sync += [pos.eq(0), score_index.eq(score_index + 1)]
                        with m.If(score_index == self.classes - 1):
                            m.next = "CRC"
            with m.State("CRC"):
                # picked once the last byte before it has left: the CRC includes it
                m.d.comb += [load.eq(~have), nxt.eq(Mux(pos[0], self.crc[8:], self.crc[:8]))]
                with m.If(load):
                    m.d.sync += [pos.eq(pos + 1), in_crc.eq(0)]
                    with m.If(pos[0]):
                        m.next = "LAST"
            with m.State("LAST"):
                with m.If(fire):
                    m.d.comb += self.done.eq(1)
                    with m.If(response.kind == Reply.RESULT):
                        m.d.sync += self.last_class.eq(self.result_class)
                    m.next = "IDLE"
        return m


class ResultCapture(wiring.Component):
    """Watches one inference of the network for its RESULT: cycle counts, scores and class.

    ``cycles_first`` and ``cycles_last`` are the cycles since the frame's first and last input
    beat (k cycles after the beat they read k, from k = 2: a beat is seen a cycle late, so the
    class must not come the cycle right after a beat, which no network does) and stop when the
    class comes out; ``ready`` rises then and falls with ``new_request``. The counters have
    ``cycles_bits`` and ``last_bits`` bits (the rest of their 32-bit ports is 0): the board
    core sizes them to the longest counts a request can make. The scores are shifted in as
    their beats leave the classifier (lane 0 of the first beat is score 0) and out one at a
    time: ``score`` is the next one, ``next_score`` moves on (and wins over a score beat in
    the same cycle).

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
    cycles_bits : int
        Bits of the ``cycles_first`` counter (1 … 32, default 32).
    last_bits : int or None
        Bits of the ``cycles_last`` counter (1 … ``cycles_bits``; default ``cycles_bits``).

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

    def __init__(self, *, classes: int, score_bits: int, score_lanes: int, beats: int,
                 cycles_bits: int = 32, last_bits: int | None = None):
        _check_range("classes", classes, 1, MAX_CLASSES)
        _check_range("score_bits", score_bits, 1, 32)
        if (not isinstance(score_lanes, int) or isinstance(score_lanes, bool)
                or score_lanes < 1 or classes % score_lanes):
            raise ValueError(f"score_lanes must be a positive divisor of classes ({classes}), "
                             f"not {score_lanes!r}")
        _check_positive("beats", beats)
        _check_range("cycles_bits", cycles_bits, 1, 32)
        last_bits = cycles_bits if last_bits is None else last_bits
        _check_range("last_bits", last_bits, 1, cycles_bits)
        self.classes, self.score_bits = classes, score_bits
        self.score_lanes, self.beats = score_lanes, beats
        self.cycles_bits, self.last_bits = cycles_bits, last_bits
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
        with m.If(self.next_score):
            m.d.sync += scores.eq(scores >> sbits)
        with m.Elif(self.score_fire):
            m.d.sync += scores.eq(Cat(scores[lanes * sbits:], self.score_beat))

        # A beat is seen a cycle after it is transferred, from a register, so the network's
        # input handshake stays out of the counters' logic; they restart at 2 then, the count
        # they would have reached (a result never comes the cycle after an input beat).
        seen = Signal()
        m.d.sync += seen.eq(self.beat & ~self.abort)
        beat = Signal(range(beats))
        first_beat = seen & (beat == 0)
        last_beat = seen & (beat == beats - 1)
        with m.If(self.abort):
            m.d.sync += beat.eq(0)
        with m.Elif(seen):
            m.d.sync += beat.eq(Mux(last_beat, 0, beat + 1))

        m.d.comb += self.i_class.ready.eq(1)
        new_result = self.i_class.valid
        counting = ~self.ready & ~new_result
        for counter, restart, bits in ((self.cycles_first, first_beat, self.cycles_bits),
                                       (self.cycles_last, last_beat, self.last_bits)):
            count = Signal(bits, name=f"{counter.name}_count")
            m.d.comb += counter.eq(count)
            with m.If(restart):
                m.d.sync += count.eq(2)
            with m.Elif(counting):
                m.d.sync += count.eq(count + 1)
        with m.If(new_result):
            m.d.sync += [self.result_class.eq(self.i_class.payload), self.ready.eq(1)]
        with m.If(self.new_request):
            m.d.sync += self.ready.eq(0)
        return m


class _LoadWriter:
    """The LOAD payload inside :class:`RequestParser`: its offset, the checks, the halfword
    writes and ``weights_next``; nothing at all without an SPRAM image."""

    def __init__(self, parser: RequestParser, m: Module, take, byte, remaining, error,
                 is_load):
        self.parser, self.byte, self.remaining = parser, byte, remaining
        self.error, self.is_load = error, is_load
        self.enabled = parser.weight_bytes > 0
        if not self.enabled:
            return
        self.bits = bits = len(parser.weights_next)
        # an image of UP5K SPRAM (at most 128 KiB) is addressed by the offset's low 3 bytes
        assert bits <= 24, "a weight image of 16 MiB or more"
        self.stored = (bits + 7) // 8  # offset bytes kept before its last one
        self.head = Signal(range(7))  # payload bytes taken, up to 6
        self.odd = Signal()  # an odd number of payload bytes taken
        self.offset = Signal(8 * self.stored)  # the offset's low bytes
        self.high = Signal()  # a bit of the offset above them (before its last byte) is set
        self.writing = Signal()  # this LOAD's data goes into the SPRAM stores
        # the offset's checks, taken with its last byte (from registers: its low 3 bytes
        # address the image) and acted on with the next byte, the first data byte
        self.offset_ok = Signal()  # 0 or weights_next, and the data fit the image
        self.above = Signal()  # a bit of the offset beyond the image's addresses is set
        self.restart = Signal()  # it starts the image again (offset 0)
        self.end = Signal(bits)  # where it ends: weights_next after it
        # the highest offset its data fit at, taken with the offset's third byte (a byte
        # before the check, so the check is one comparison): weight_bytes − data bytes
        self.limit = Signal(signed(max((parser.weight_bytes + 2).bit_length(), 16) + 1))
        self.halfword_low = Signal(8)

    def header(self, m: Module) -> None:
        """The header's last byte is taken."""
        if self.enabled:
            m.d.sync += [self.head.eq(0), self.odd.eq(0), self.writing.eq(0), self.high.eq(0)]

    def payload_byte(self, m: Module) -> None:
        """A payload byte is taken."""
        if not self.enabled:
            return
        p, byte, head = self.parser, self.byte, self.head
        m.d.sync += self.odd.eq(~self.odd)
        with m.If(head != 6):
            m.d.sync += head.eq(head + 1)
        with m.If(self.is_load & (head < 3)):
            for k in range(3):
                with m.If(head == k):
                    if k < self.stored:
                        m.d.sync += self.offset[8 * k:8 * k + 8].eq(byte)
                    else:
                        m.d.sync += self.high.eq(self.high | (byte != 0))
        with m.If(head == 2):
            # data bytes = remaining − 2 (after the offset's last byte, which comes next)
            m.d.sync += self.limit.eq(p.weight_bytes + 2 - self.remaining)
        with m.If(head == 3):
            # the offset is complete with this byte, and data bytes = remaining - 1
            whole = Cat(self.offset, Const(0, 8 * (3 - self.stored)), byte)
            narrow = whole[:self.bits]
            m.d.sync += [self.end.eq(narrow + (self.remaining - 1)),
                         self.restart.eq(narrow == 0),
                         self.above.eq(self.high | (whole[self.bits:] != 0)),
                         self.offset_ok.eq(((narrow == 0) | (narrow == p.weights_next))
                                           & (narrow <= self.limit))]
        with m.If(self.is_load & (head == 4) & (self.error == 0)):
            with m.If(self.offset_ok & ~self.above):
                m.d.sync += self.writing.eq(1)
            with m.Else():
                m.d.sync += self.error.eq(ErrorCode.BAD_OFFSET)
        with m.If(~self.odd):  # used only with the odd byte after it, while writing
            m.d.sync += self.halfword_low.eq(byte)
        m.d.comb += [
            p.load_valid.eq(self.writing & self.odd),
            p.load_restart.eq((head == 5) & self.restart),
            p.load_data.eq(Cat(self.halfword_low, byte)),
        ]

    def abort(self, m: Module) -> None:
        """The frame is dropped or its CRC is bad: a load it wrote must start again."""
        if self.enabled:
            with m.If(self.writing):
                m.d.sync += self.parser.weights_next.eq(0)

    def commit(self, m: Module) -> None:
        """A good LOAD (no error, right CRC) ends."""
        if self.enabled:
            m.d.sync += self.parser.weights_next.eq(self.end)
