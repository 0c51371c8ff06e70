"""The wire format: CRC, frames, the decoder's hunting, payload layouts."""

import struct
from pathlib import Path

import numpy as np
import pytest

from hwgen import protocol
from hwgen.protocol import Command, ErrorCode, FrameDecoder


def test_crc_is_ccitt_false():
    assert protocol.crc16(b"123456789") == 0x29B1


def test_frame_layout():
    frame = protocol.encode_frame(Command.INFO, b"")
    assert frame[:6] == bytes([0xA5, 0x5A, 1, 0x02, 0, 0])
    assert frame[6:] == struct.pack("<H", protocol.crc16(bytes([1, 2, 0, 0])))
    assert protocol.load_request(0x01020304, b"\x10\x20")[6:12] == b"\x04\x03\x02\x01\x10\x20"


def test_decoder_hunts_splits_and_skips_bad_frames():
    frames = [protocol.infer_request(bytes(range(5))), protocol.info_request()]
    corrupt = bytearray(frames[0])
    corrupt[8] ^= 1
    # noise; a false magic whose made-up header claims 60000 bytes; a corrupt frame; 2 good
    stream = b"\x00\xa5" + b"\xa5\x5a\x07\x99\x60\xea" + bytes(corrupt) + b"".join(frames)
    d = FrameDecoder()
    got = []
    for i in range(0, len(stream), 3):
        got += d.feed(stream[i:i + 3])
    assert [(f.command, f.payload) for f in got] == [(1, bytes(range(5))), (2, b"")]
    assert d.bad_frames == 2


@pytest.mark.parametrize("response", [
    protocol.Result(3, (-5, 7, 2**31 - 1, -2**31), 1000, 7),
    protocol.Info(0xDEADBEEF, 784, 10, 4096, 2048, 12_000_000, 115200, 6084),
    protocol.LoadReply(2048, False),
    protocol.ErrorReply(ErrorCode.NOT_LOADED, Command.INFER),
])
def test_responses_round_trip(response):
    encode = {protocol.Result: (Command.RESULT, protocol.result_payload),
              protocol.Info: (Command.INFO_REPLY, protocol.info_payload),
              protocol.LoadReply: (Command.LOAD_REPLY, protocol.load_payload),
              protocol.ErrorReply: (Command.ERROR, protocol.error_payload)}
    command, payload = encode[type(response)]
    [frame] = FrameDecoder().feed(protocol.encode_frame(command, payload(response)))
    assert protocol.parse_response(frame) == response


def test_malformed_responses_are_named():
    with pytest.raises(protocol.ProtocolError, match="RESULT payload has 13 bytes, expected 16"):
        protocol.parse_response(protocol.Frame(1, Command.RESULT,
                                               struct.pack("<HHII", 0, 1, 0, 0) + b"\x00"))
    with pytest.raises(protocol.ProtocolError, match="unknown response command 0x01"):
        protocol.parse_response(protocol.Frame(1, Command.INFER, b""))


def test_input_bytes_encoding():
    assert protocol.input_bytes(np.array([-1, 1, 1]), True) == b"\x00\x01\x01"
    assert protocol.input_bytes(np.array([[-8, 7], [255, 0]]), False) == b"\xf8\x07\xff\x00"


def test_network_id_changes_with_any_weight():
    from hwgen.spec import load

    spec = Path(__file__).resolve().parents[1] / "designs" / "digits_bnn.toml"
    net = load(spec)
    before = protocol.network_id(net)
    assert before == protocol.network_id(load(spec))
    net.layers[1].weights[0, 0] *= -1
    assert protocol.network_id(net) != before
