"""The wire format: CRC, frames, the decoder's hunting, payload layouts."""

import struct
from pathlib import Path

import numpy as np
import pytest

from hwgen import protocol
from hwgen.protocol import Command, ErrorCode, FrameDecoder


def crc16_reference(data: bytes) -> int:
    """CRC-16/CCITT-FALSE bit by bit from its definition (poly 0x1021, init 0xFFFF, MSB
    first, no reflection, no final xor), independent of binascii."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def test_crc_is_ccitt_false():
    # the published check value of CRC-16/CCITT-FALSE (Greg Cook's CRC catalogue, "CRC-16/
    # IBM-3740", check=0x29b1)
    assert protocol.crc16(b"123456789") == 0x29B1
    assert crc16_reference(b"123456789") == 0x29B1
    rng = np.random.default_rng(3)
    for size in (0, 1, 7, 64, 300):
        data = rng.integers(0, 256, size).astype(np.uint8).tobytes()
        assert protocol.crc16(data) == crc16_reference(data)


def test_frame_layout_against_hand_written_bytes():
    # docs/protocol.md's examples, byte by byte: magic, version 2, command, id, length, CRC
    assert protocol.info_request(request_id=1) == bytes.fromhex("a55a 02 02 0100 0000 67b7")
    assert protocol.encode_frame(Command.INFO, b"", request_id=0x1234)[:8] == bytes.fromhex(
        "a55a 02 02 3412 0000")
    load = protocol.load_request(0x01020304, b"\x10\x20", request_id=7)
    assert load[:-2] == bytes.fromhex("a55a 02 03 0700 0600 04030201 1020")
    assert load[-2:] == struct.pack("<H", crc16_reference(load[2:-2]))


def test_request_ids_out_of_range_are_refused():
    for bad in (-1, 0x10000):
        with pytest.raises(ValueError, match=f"request id {bad} is not in 0 … 65535"):
            protocol.info_request(request_id=bad)


def test_decoder_hunts_splits_and_skips_bad_frames():
    frames = [protocol.infer_request(bytes(range(5)), request_id=9),
              protocol.info_request(request_id=10)]
    corrupt = bytearray(frames[0])
    corrupt[10] ^= 1
    # noise; a false magic whose made-up header claims 60000 bytes; a corrupt frame; 2 good
    stream = (b"\x00\xa5" + b"\xa5\x5a\x02\x01\x00\x00\x60\xea" + bytes(corrupt)
              + b"".join(frames))
    d = FrameDecoder({Command.INFER: 100, Command.INFO: 0})
    got = []
    for i in range(0, len(stream), 3):
        got += d.feed(stream[i:i + 3])
    assert [(f.command, f.request_id, f.payload) for f in got] == [(1, 9, bytes(range(5))),
                                                                   (2, 10, b"")]
    assert d.bad_frames == 2


def test_a_header_longer_than_its_command_carries_is_no_frame():
    """A RESULT carries at most 256 scores: a header claiming 65,535 bytes is noise, and the
    decoder hunts on at once instead of waiting for 65 KB."""
    real = protocol.encode_frame(Command.ERROR, b"\x07\x01", request_id=3)
    for command, length in ((Command.RESULT, 0xFFFF), (Command.INFO_REPLY, 31),
                            (Command.ERROR, 3), (0x44, 0)):
        d = FrameDecoder()
        noise = b"\xa5\x5a\x02" + bytes([command]) + struct.pack("<HH", 3, length)
        [frame] = d.feed(noise + real)
        assert (frame.command, frame.request_id, d.bad_frames) == (Command.ERROR, 3, 1)


def test_the_decoder_names_other_protocol_versions():
    d = FrameDecoder()
    v1 = b"\xa5\x5a\x01\x82\x1e\x00" + bytes(32)
    assert d.feed(v1) == [] and d.other_versions == {1}


@pytest.mark.parametrize("response", [
    protocol.Result(2, (-5, 7, 2**31 - 1, -2**31), 1000, 7),
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
    [frame] = FrameDecoder().feed(protocol.encode_frame(command, payload(response),
                                                        request_id=0xBEEF))
    assert frame.request_id == 0xBEEF
    assert protocol.parse_response(frame) == response


@pytest.mark.parametrize("scores, predicted", [((5, 9, 9, 1), 1), ((-3, -3), 0), ((7,), 0),
                                               ((0, 1, 2, 2**31 - 1), 3)])
def test_a_result_class_is_the_argmax_with_ties_to_the_lowest(scores, predicted):
    def frame(cls):
        payload = protocol.result_payload(protocol.Result(cls, scores, 1, 1))
        return protocol.Frame(protocol.VERSION, Command.RESULT, payload)

    assert protocol.parse_response(frame(predicted)).predicted == predicted
    for other in set(range(len(scores))) - {predicted}:
        with pytest.raises(protocol.ProtocolError, match=f"RESULT class {other} is not the "
                                                         f"argmax of its {len(scores)} scores "
                                                         f"\\(that is class {predicted}\\)"):
            protocol.parse_response(frame(other))


def test_malformed_responses_are_named():
    with pytest.raises(protocol.ProtocolError, match="RESULT payload has 13 bytes, expected 16"):
        protocol.parse_response(protocol.Frame(2, Command.RESULT,
                                               struct.pack("<HHII", 0, 1, 0, 0) + b"\x00"))
    with pytest.raises(protocol.ProtocolError, match="unknown response command 0x01"):
        protocol.parse_response(protocol.Frame(2, Command.INFER, b""))
    with pytest.raises(protocol.ProtocolError, match="response has protocol version 1, "
                                                     "expected 2"):
        protocol.parse_response(protocol.Frame(1, Command.ERROR, b"\x01\x01"))


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
