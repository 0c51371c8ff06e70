"""The framed UART protocol between a host and a board (docs/protocol.md): constants, CRC,
frame encoding and decoding, and the payloads of every command and response.

This module is the one place the wire format is defined: the board's RTL
(:mod:`hwgen.rtl.board`) takes its constants from here, the host runtime
(:mod:`hwgen.runtime`) and the simulated-board benches encode and decode with it.

A frame is ``MAGIC · version · command · request id (u16) · length (u16) · payload · CRC
(u16)``; every multi-byte field is little-endian and the CRC is CRC-16/CCITT-FALSE over
version … payload. A response carries the id of the request it answers, so a host never takes
a late or repeated answer for the one it waits for.
"""

from __future__ import annotations

import binascii
import dataclasses
import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAGIC", "VERSION", "HEADER_BYTES", "CRC_BYTES", "MAX_LOAD_DATA", "SCORE_BYTES",
    "MAX_CLASSES", "MAX_PAYLOAD", "result_bytes",
    "Command", "ErrorCode", "ProtocolError", "crc16", "encode_frame", "Frame", "FrameDecoder",
    "infer_request", "info_request", "load_request", "Result", "Info", "LoadReply",
    "ErrorReply", "parse_response", "input_bytes", "network_id",
    "result_payload", "info_payload", "load_payload", "error_payload",
]

#: The two bytes that start every frame.
MAGIC = bytes([0xA5, 0x5A])
#: Protocol version carried in every frame (2: request ids; 1 had none).
VERSION = 2
#: magic (2) + version (1) + command (1) + request id (2) + length (2).
HEADER_BYTES = 8
CRC_BYTES = 2
#: Largest data part of one LOAD request (after its 4-byte offset).
MAX_LOAD_DATA = 1024
#: Bytes per classifier score in a RESULT (a signed 32-bit integer).
SCORE_BYTES = 4
#: Most classes a RESULT carries (the board sends the class in one byte).
MAX_CLASSES = 256
#: The largest request id; a host counts 1 … MAX_REQUEST_ID and wraps. Id 0 is never a
#: request's: the board answers 0 when a frame broke off before its id was read.
MAX_REQUEST_ID = 0xFFFF


class Command(enum.IntEnum):
    """Frame command bytes. Requests have bit 7 clear; a response is its request | 0x80."""

    INFER = 0x01
    INFO = 0x02
    LOAD = 0x03
    RESULT = 0x81
    INFO_REPLY = 0x82
    LOAD_REPLY = 0x83
    ERROR = 0xEE


#: RESULT's payload before its scores: class, classes, cycles_first, cycles_last.
RESULT_HEAD_BYTES = 12


def result_bytes(classes: int) -> int:
    """Payload bytes of a RESULT with ``classes`` scores."""
    return RESULT_HEAD_BYTES + SCORE_BYTES * classes


#: The longest payload each command can carry; a header claiming more is not a frame.
MAX_PAYLOAD = {
    Command.INFER: 0xFFFF,
    Command.INFO: 0,
    Command.LOAD: 4 + MAX_LOAD_DATA,
    Command.RESULT: result_bytes(MAX_CLASSES),
    Command.INFO_REPLY: 30,
    Command.LOAD_REPLY: 5,
    Command.ERROR: 2,
}


class ErrorCode(enum.IntEnum):
    """The code in an ERROR frame; when a frame has several faults, the lowest code is sent."""

    BAD_CRC = 1          #: the frame's CRC does not match (nothing was done)
    BAD_VERSION = 2      #: the version byte is not :data:`VERSION`
    UNKNOWN_COMMAND = 3  #: not INFER, INFO or LOAD
    BAD_LENGTH = 4       #: the length does not fit the command (INFER: the input's bytes)
    NOT_LOADED = 5       #: INFER before the SPRAM weights were loaded
    BAD_OFFSET = 6       #: LOAD at an offset other than 0 or the next expected one
    TIMEOUT = 7          #: a frame stopped mid-way (line idle) or the network did not answer


class ProtocolError(Exception):
    """Bytes that are not a valid frame or payload; the message says which field is off."""


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)."""
    return binascii.crc_hqx(data, crc)


def encode_frame(command: int, payload: bytes = b"", *, request_id: int = 0,
                 version: int = VERSION) -> bytes:
    """One complete frame carrying ``payload``, for request ``request_id``."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes; a frame carries at most 65535")
    if not 0 <= request_id <= MAX_REQUEST_ID:
        raise ValueError(f"request id {request_id} is not in 0 … {MAX_REQUEST_ID}")
    body = struct.pack("<BBHH", version, command, request_id, len(payload)) + bytes(payload)
    return MAGIC + body + struct.pack("<H", crc16(body))


@dataclass(frozen=True)
class Frame:
    """A received frame whose CRC was correct."""

    version: int
    command: int
    payload: bytes
    request_id: int = 0


class FrameDecoder:
    """Finds frames in a byte stream: bytes before a :data:`MAGIC` are skipped.

    :meth:`feed` returns the frames completed by the new bytes. A frame with a wrong CRC, or a
    header that cannot start a frame (another version, an unknown command, a length beyond
    what its command carries: a magic that noise made) is skipped, counted in ``bad_frames``
    (``other_versions`` collects the versions of headers skipped for that reason), and hunting
    resumes after its magic; so noise cannot make the decoder wait for a long made-up length
    while a real frame goes by.

    Parameters
    ----------
    max_payload : dict or None
        The longest payload to accept per command (default :data:`MAX_PAYLOAD`); a host that
        knows the exact size of the response it waits for passes that, so a made-up header
        costs it no more than the real frame's length.
    """

    def __init__(self, max_payload: dict[int, int] | None = None):
        self.buffer = bytearray()
        self.bad_frames = 0
        self.skipped_bytes = 0
        self.other_versions: set[int] = set()
        self.max_payload = {int(k): v for k, v in (max_payload or MAX_PAYLOAD).items()}

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames = []
        while True:
            start = self.buffer.find(MAGIC)
            if start < 0:
                keep = 1 if self.buffer[-1:] == MAGIC[:1] else 0
                self.skipped_bytes += len(self.buffer) - keep
                del self.buffer[:len(self.buffer) - keep]
                return frames
            self.skipped_bytes += start
            del self.buffer[:start]
            if len(self.buffer) < HEADER_BYTES:
                return frames
            version, command, request_id, length = struct.unpack_from("<BBHH", self.buffer, 2)
            if version != VERSION:
                self.other_versions.add(version)
            if (version != VERSION or length > self.max_payload.get(command, -1)):
                self.bad_frames += 1
                del self.buffer[:len(MAGIC)]
                continue
            end = HEADER_BYTES + length + CRC_BYTES
            if len(self.buffer) < end:
                return frames
            body = bytes(self.buffer[2:HEADER_BYTES + length])
            (crc,) = struct.unpack_from("<H", self.buffer, HEADER_BYTES + length)
            if crc == crc16(body):
                frames.append(Frame(version, command, body[HEADER_BYTES - 2:], request_id))
                del self.buffer[:end]
            else:
                self.bad_frames += 1
                del self.buffer[:len(MAGIC)]


# Requests ---------------------------------------------------------------------------------


def infer_request(data: bytes, *, request_id: int) -> bytes:
    """An INFER frame carrying one input tensor's bytes (see :func:`input_bytes`)."""
    return encode_frame(Command.INFER, data, request_id=request_id)


def info_request(*, request_id: int) -> bytes:
    return encode_frame(Command.INFO, request_id=request_id)


def load_request(offset: int, data: bytes, *, request_id: int) -> bytes:
    """A LOAD frame writing ``data`` (an even number of bytes, at most MAX_LOAD_DATA) at byte
    ``offset`` of the weight image."""
    if not data or len(data) % 2 or len(data) > MAX_LOAD_DATA:
        raise ValueError(f"LOAD data must be 2..{MAX_LOAD_DATA} bytes, an even count; got "
                         f"{len(data)}")
    return encode_frame(Command.LOAD, struct.pack("<I", offset) + bytes(data),
                        request_id=request_id)


# Responses --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """RESULT: the predicted class, the classifier scores and two cycle counts.

    ``cycles_first`` counts clock cycles from the frame's first input beat entering the
    network to the class leaving it (so it includes waiting for the UART); ``cycles_last``
    from the last input beat entering to the class leaving.
    """

    predicted: int
    scores: tuple[int, ...]
    cycles_first: int
    cycles_last: int


@dataclass(frozen=True)
class Info:
    """INFO_REPLY: what the board runs and its weight-loading state."""

    network_id: int
    input_bytes: int
    classes: int
    weight_bytes: int
    weights_next: int
    clock_hz: int
    baud: int
    cycles_per_inference: int

    @property
    def weights_loaded(self) -> bool:
        return self.weights_next == self.weight_bytes


@dataclass(frozen=True)
class LoadReply:
    """LOAD_REPLY: the next byte offset the board expects; loaded when it equals the image
    size."""

    weights_next: int
    weights_loaded: bool


@dataclass(frozen=True)
class ErrorReply:
    """ERROR: the fault and the command byte of the frame it answers (0 for a timeout)."""

    code: ErrorCode | int
    command: int


_RESULT_HEAD = struct.Struct("<HHII")  # class, classes, cycles_first, cycles_last
assert _RESULT_HEAD.size == RESULT_HEAD_BYTES
_INFO = struct.Struct("<IIHIIIII")
_LOAD_REPLY = struct.Struct("<IB")
_ERROR = struct.Struct("<BB")


def result_payload(r: Result) -> bytes:
    return (_RESULT_HEAD.pack(r.predicted, len(r.scores), r.cycles_first, r.cycles_last)
            + b"".join(struct.pack("<i", s) for s in r.scores))


def info_payload(i: Info) -> bytes:
    return _INFO.pack(i.network_id, i.input_bytes, i.classes, i.weight_bytes, i.weights_next,
                      i.clock_hz, i.baud, i.cycles_per_inference)


def load_payload(r: LoadReply) -> bytes:
    return _LOAD_REPLY.pack(r.weights_next, int(r.weights_loaded))


def error_payload(e: ErrorReply) -> bytes:
    return _ERROR.pack(int(e.code), e.command)


def parse_response(frame: Frame) -> Result | Info | LoadReply | ErrorReply:
    """The response a frame carries; :class:`ProtocolError` for a malformed one."""
    if frame.version != VERSION:
        raise ProtocolError(f"response has protocol version {frame.version}, expected "
                            f"{VERSION}")
    p = frame.payload

    def need(size: int, what: str) -> None:
        if len(p) != size:
            raise ProtocolError(f"{what} payload has {len(p)} bytes, expected {size}")

    if frame.command == Command.RESULT:
        if len(p) < _RESULT_HEAD.size:
            need(_RESULT_HEAD.size, "RESULT")
        predicted, classes, first, last = _RESULT_HEAD.unpack_from(p)
        need(_RESULT_HEAD.size + SCORE_BYTES * classes, "RESULT")
        scores = struct.unpack_from(f"<{classes}i", p, _RESULT_HEAD.size)
        if not classes:
            raise ProtocolError("RESULT carries no scores")
        best = max(range(classes), key=lambda i: (scores[i], -i))  # ties: the lowest index
        if predicted != best:
            raise ProtocolError(f"RESULT class {predicted} is not the argmax of its "
                                f"{classes} scores (that is class {best})")
        return Result(predicted, tuple(scores), first, last)
    if frame.command == Command.INFO_REPLY:
        need(_INFO.size, "INFO_REPLY")
        return Info(*_INFO.unpack(p))
    if frame.command == Command.LOAD_REPLY:
        need(_LOAD_REPLY.size, "LOAD_REPLY")
        next_, loaded = _LOAD_REPLY.unpack(p)
        return LoadReply(next_, bool(loaded))
    if frame.command == Command.ERROR:
        need(_ERROR.size, "ERROR")
        code, command = _ERROR.unpack(p)
        try:
            code = ErrorCode(code)
        except ValueError:
            pass
        return ErrorReply(code, command)
    raise ProtocolError(f"unknown response command 0x{frame.command:02x}")


# Tensors and identity ---------------------------------------------------------------------


def input_bytes(x: np.ndarray, binary: bool) -> bytes:
    """One input tensor as INFER payload bytes, one byte per element in stream order
    (channels-last, row-major): a binary element is 1 for +1 and 0 for −1; an n-bit element
    is its two's complement's low 8 bits (the board keeps the low n)."""
    flat = np.asarray(x, dtype=np.int64).reshape(-1)
    if binary:
        return (flat > 0).astype(np.uint8).tobytes()
    return (flat & 0xFF).astype(np.uint8).tobytes()


def network_id(network) -> int:
    """A 32-bit fingerprint (CRC-32) of a network: its input, and every layer's fields and
    arrays. The board reports it in INFO so a host can tell which network it runs."""
    crc = zlib.crc32(repr((network.name, network.input)).encode())
    for layer in network.layers:
        crc = zlib.crc32(type(layer).__name__.encode(), crc)
        for f in dataclasses.fields(layer):
            value = getattr(layer, f.name)
            if isinstance(value, np.ndarray):
                arr = np.ascontiguousarray(value, dtype=np.int64)
                crc = zlib.crc32(f"{f.name}{arr.shape}".encode(), crc)
                crc = zlib.crc32(arr.tobytes(), crc)
            else:
                crc = zlib.crc32(f"{f.name}={value!r}".encode(), crc)
    return crc & 0xFFFFFFFF
