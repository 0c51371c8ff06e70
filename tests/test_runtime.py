"""The host runtime against a scripted board on a real pseudo-terminal: every request's bytes
on the wire are asserted, the responses are frames built with :mod:`hwgen.protocol`. A Board
numbers its requests 1, 2, 3, …; each script step names the id it expects."""

import io
import json
import os
import select
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from hwgen import golden, protocol, spec
from hwgen.cli import main
from hwgen.protocol import Command, ErrorCode
from hwgen.runtime import Board, BoardReplyError, LinkError, ProgressBar
from tests.helpers import error_line

DIGITS = Path(__file__).parent.parent / "designs" / "digits_bnn.toml"


@pytest.fixture(scope="module")
def digits():
    """digits_bnn, its first test images and labels, and the golden RESULT of each."""
    network = spec.load(DIGITS)
    with np.load(network.dataset) as data:
        x, y = data["x"][:4], data["y"][:4]
    values = golden.run(network, x)
    scores = values["fc3"]
    results = [protocol.Result(int(np.argmax(s)), tuple(int(v) for v in s), 900 + i, 705)
               for i, s in enumerate(scores)]
    return network, x, y, results


def info_for(network, **changes) -> protocol.Info:
    fields = dict(network_id=protocol.network_id(network),
                  input_bytes=network.input_type.size, classes=10, weight_bytes=0,
                  weights_next=0, clock_hz=12_000_000, baud=115200, cycles_per_inference=256)
    return protocol.Info(**(fields | changes))


def info_reply(info: protocol.Info, rid: int) -> bytes:
    return protocol.encode_frame(Command.INFO_REPLY, protocol.info_payload(info),
                                 request_id=rid)


def result_reply(result: protocol.Result, rid: int) -> bytes:
    return protocol.encode_frame(Command.RESULT, protocol.result_payload(result),
                                 request_id=rid)


def error_reply(code: int, command: int, rid: int) -> bytes:
    return protocol.encode_frame(Command.ERROR, protocol.error_payload(
        protocol.ErrorReply(code, command)), request_id=rid)


def load_reply(next_: int, loaded: bool, rid: int) -> bytes:
    return protocol.encode_frame(Command.LOAD_REPLY, protocol.load_payload(
        protocol.LoadReply(next_, loaded)), request_id=rid)


def info_request(rid: int) -> bytes:
    return protocol.info_request(request_id=rid)


def infer_frame(network, x, rid: int) -> bytes:
    return protocol.infer_request(protocol.input_bytes(x, network.input_type.binary),
                                  request_id=rid)


def infers(network, xs, results, first_id: int) -> list[tuple[bytes, bytes]]:
    """Script steps: each input's INFER answered by its RESULT, ids from ``first_id`` on."""
    return [(infer_frame(network, x, first_id + i), result_reply(r, first_id + i))
            for i, (x, r) in enumerate(zip(xs, results, strict=True))]


class Peer(threading.Thread):
    """A scripted board on a pseudo-terminal's master side. For each (request, reply) step it
    reads exactly ``len(request)`` bytes and records them; if they are the request it writes
    ``reply`` (``None``: stays silent; ``"hangup"``: closes the master), else it stops. After
    the script it keeps reading, into ``extra``, until :meth:`finish`."""

    def __init__(self, master: int, script):
        super().__init__(daemon=True)
        self.master, self.script = master, script
        self.received: list[bytes] = []
        self.extra = b""
        self.closed = False
        self._done = threading.Event()

    def _read(self, count: int, until: float) -> bytes:
        data = b""
        while len(data) < count and time.monotonic() < until:
            ready, _, _ = select.select([self.master], [], [], 0.01)
            if ready:
                try:
                    data += os.read(self.master, count - len(data))
                except OSError:
                    break
        return data

    def run(self):
        for request, reply in self.script:
            got = self._read(len(request), time.monotonic() + 5)
            self.received.append(got)
            if got != request:
                return
            if reply == "hangup":
                os.close(self.master)
                self.closed = True
                return
            if reply:
                os.write(self.master, reply)
        while not self._done.is_set():
            self.extra += self._read(1 << 16, time.monotonic() + 0.01)

    def finish(self) -> None:
        self._done.set()
        self.join(5)
        assert not self.is_alive()


@contextmanager
def scripted(script):
    """A pseudo-terminal with a :class:`Peer` playing ``script``; yields the path a host
    opens. On exit, asserts the host sent exactly the script's requests and nothing more."""
    master, slave = os.openpty()
    peer = Peer(master, script)
    peer.start()
    try:
        yield os.ttyname(slave)
        peer.finish()
        assert peer.received == [request for request, _ in script]
        assert peer.extra == b""
    finally:
        peer.finish()
        if not peer.closed:
            os.close(master)
        os.close(slave)


def test_the_info_request_on_the_wire(digits):
    network, *_ = digits
    info = info_for(network)
    # magic, version 2, INFO, request id 1, length 0, then CRC-16/CCITT-FALSE of
    # 02 02 01 00 00 00 (0xB767, from the bitwise reference in tests/test_protocol.py),
    # little-endian; docs/protocol.md shows this frame
    request = bytes.fromhex("a55a 0202 0100 0000 67b7")
    with scripted([(request, info_reply(info, 1))]) as port, Board(port) as board:
        assert board.info() == info


def test_check_network_matches(digits):
    network, *_ = digits
    info = info_for(network)
    with scripted([(info_request(1), info_reply(info, 1))]) as port, \
            Board(port, network=network) as board:
        assert board.check_network() == info


@pytest.mark.parametrize("change", [dict(network_id=0x12345678), dict(input_bytes=784)])
def test_check_network_mismatch_names_both_ids(digits, change):
    network, *_ = digits
    info = info_for(network, **change)
    with scripted([(info_request(1), info_reply(info, 1))]) as port, \
            Board(port, network=network) as board:
        with pytest.raises(LinkError) as exc:
            board.check_network()
    message = str(exc.value)
    assert f"0x{info.network_id:08x}" in message
    assert f"0x{protocol.network_id(network):08x}" in message
    assert port in message and "digits_bnn" in message


def test_infer_sends_the_image_and_returns_the_result(digits):
    network, x, _, results = digits
    request = infer_frame(network, x[0], 1)
    assert request[:8] == bytes.fromhex("a55a 0201 0100 4000")  # INFER, id 1, 64 bytes
    assert request[8:-2] == x[0].astype(np.uint8).tobytes()  # u8 pixels as they are
    with scripted([(request, result_reply(results[0], 1))]) as port, \
            Board(port, network=network) as board:
        assert board.infer(x[0]) == results[0]
        assert board.last_seconds > 0


def test_infer_many_yields_in_order_with_progress(digits):
    network, x, _, results = digits
    script = infers(network, x, results, 1)
    calls = []
    with scripted(script) as port, Board(port, network=network) as board:
        got = list(board.infer_many(x, progress=lambda done, total: calls.append((done, total))))
    assert got == results
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_bad_inputs_are_refused_before_anything_is_sent(digits):
    network, x, _, _ = digits
    with scripted([]) as port, Board(port, network=network) as board:
        with pytest.raises(ValueError, match="the network expects"):
            board.infer(x[0][:10])
        with pytest.raises(ValueError, match=r"in 0\.\.255"):
            list(board.infer_many(np.concatenate([x, np.full((1, 64), 256)])))


def test_infer_without_a_network_is_a_clear_error(digits):
    with scripted([]) as port, Board(port) as board:
        with pytest.raises(ValueError, match=r"Board.infer needs the network"):
            board.infer(digits[1][0])


def test_load_weights_in_chunks_at_the_replied_offsets():
    image = bytes(range(256)) * 9 + b"\x01\x02\x03\x04"  # 2,308 bytes: 1024 + 1024 + 260
    script = []
    for offset in (0, 1024, 2048):
        chunk = image[offset:offset + 1024]
        rid = offset // 1024 + 1
        request = (bytes.fromhex("a55a0203") + struct.pack("<HHI", rid, 4 + len(chunk), offset)
                   + chunk)
        request += struct.pack("<H", protocol.crc16(request[2:]))
        done = offset + len(chunk)
        script.append((request, load_reply(done, done == len(image), rid)))
    calls = []
    with scripted(script) as port, Board(port) as board:
        reply = board.load_weights(image, progress=lambda d, t: calls.append((d, t)))
    assert reply == protocol.LoadReply(len(image), True)
    assert calls == [(1024, 2308), (2048, 2308), (2308, 2308)]


def test_load_weights_bad_offset_reply(digits):
    image = bytes(2048)
    script = [(protocol.load_request(0, image[:1024], request_id=1), load_reply(1024, False, 1)),
              (protocol.load_request(1024, image[1024:], request_id=2),
               error_reply(ErrorCode.BAD_OFFSET, Command.LOAD, 2))]
    with scripted(script) as port, Board(port) as board:
        with pytest.raises(BoardReplyError) as exc:
            board.load_weights(image)
    assert exc.value.code == ErrorCode.BAD_OFFSET and exc.value.command == Command.LOAD
    assert "answered LOAD with ERROR BAD_OFFSET" in str(exc.value)


def test_load_weights_refuses_a_board_that_skips_ahead():
    image = bytes(2048)
    script = [(protocol.load_request(0, image[:1024], request_id=1), load_reply(0, False, 1))]
    with scripted(script) as port, Board(port) as board:
        with pytest.raises(LinkError, match="expects offset 0 next, not 1024"):
            board.load_weights(image)


def test_load_weights_short_image():
    script = [(protocol.load_request(0, bytes(4), request_id=1), load_reply(4, False, 1))]
    with scripted(script) as port, Board(port) as board:
        with pytest.raises(LinkError, match="still expects weights after all 4 bytes"):
            board.load_weights(bytes(4))


def test_load_weights_defaults_to_the_spram_image(digits, monkeypatch):
    network, *_ = digits
    import hwgen.weight_image

    monkeypatch.setattr(hwgen.weight_image, "spram_image", lambda n: b"\xaa\x55" * 3)
    script = [(protocol.load_request(0, b"\xaa\x55" * 3, request_id=1), load_reply(6, True, 1))]
    with scripted(script) as port, Board(port, network=network) as board:
        assert board.load_weights().weights_loaded


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_reply_raises_board_reply_error(digits, code):
    network, x, _, _ = digits
    script = [(infer_frame(network, x[0], 1), error_reply(code, Command.INFER, 1))]
    with scripted(script) as port, Board(port, network=network) as board:
        with pytest.raises(BoardReplyError) as exc:
            board.infer(x[0])
    assert exc.value.code == code
    assert f"{port}: the board answered INFER with ERROR {code.name}: " in str(exc.value)


def test_an_unknown_error_code_is_still_reported(digits):
    with scripted([(info_request(1), error_reply(99, Command.INFO, 1))]) as port, \
            Board(port) as board:
        with pytest.raises(BoardReplyError, match="ERROR code 99: an error code this host"):
            board.info()


def test_silence_is_a_link_error_within_the_timeout(digits):
    network, x, _, results = digits
    script = [(infer_frame(network, x[0], 1), None),  # no answer
              (info_request(2), info_reply(info_for(network), 2))]
    with scripted(script) as port, Board(port, network=network, timeout=0.2) as board:
        start = time.monotonic()
        with pytest.raises(LinkError) as exc:
            board.infer(x[0])
        elapsed = time.monotonic() - start
        # the deadline, then the board's idle time (bounded by the timeout) to resynchronize
        assert elapsed >= 0.2 + 0.1  # at least the deadline and the board's idle time
        assert str(exc.value) == (f"no response from {port} within 0.20 s (is the board "
                                  f"programmed with digits_bnn, at 115200 baud?)")
        assert board.info() == info_for(network)  # the link works again


def test_default_deadline_scales_with_the_frame(digits):
    network, x, _, _ = digits
    info = info_for(network, baud=9600)
    with scripted([(info_request(1), info_reply(info, 1))]) as port, \
            Board(port, network=network, baud=9600) as board:
        small, big = board.deadline(8, 38), board.deadline(1036, 13)
        assert big - small == pytest.approx(2 * (1036 + 13 - 8 - 38) * 10 / 9600)
        before = board.deadline(72, 60, 4 * (705 + 256))
        board.info()  # 12 MHz instead of the assumed 1 MHz
        after = board.deadline(72, 60, 4 * (705 + 256))
        assert before - after == pytest.approx(3844 / 1e6 - 3844 / 12e6)
    with scripted([]) as port, Board(port, timeout=42.0) as board:
        assert board.deadline(1036, 13) == 42.0


def test_noise_before_a_valid_frame_is_skipped(digits):
    network, *_ = digits
    info = info_for(network)
    noise = b"\x00\xff\xa5\x13boot\r\n\xa5"  # line noise, a lone magic byte just before
    with scripted([(info_request(1), noise + info_reply(info, 1))]) as port, \
            Board(port) as board:
        assert board.info() == info


def test_bad_crc_then_silence_is_a_link_error(digits):
    network, *_ = digits
    bad = bytearray(info_reply(info_for(network), 1))
    bad[-1] ^= 0xFF
    script = [(info_request(1), bytes(bad))]
    with scripted(script) as port, Board(port, timeout=0.2) as board:
        with pytest.raises(LinkError, match=r"no response .* 1 frame\(s\) with a bad CRC"):
            board.info()


def test_answers_to_other_commands_and_other_ids_are_skipped(digits):
    network, x, _, results = digits
    stale = (info_reply(info_for(network), 1) + error_reply(ErrorCode.BAD_CRC, Command.LOAD, 0)
             + result_reply(results[1], 0) + result_reply(results[1], 2)
             + error_reply(ErrorCode.TIMEOUT, Command.INFER, 7))
    script = [(infer_frame(network, x[0], 1), stale + result_reply(results[0], 1))]
    with scripted(script) as port, Board(port, network=network) as board:
        assert board.infer(x[0]) == results[0]


def test_a_late_answer_is_never_taken_for_the_next_request(digits):
    """Issue 14: a board that answers after the host gave up; the late RESULT arrives while
    the host waits for the next request's, and is dropped."""
    network, x, _, results = digits
    script = [(infer_frame(network, x[0], 1), None),
              (infer_frame(network, x[1], 2), result_reply(results[0], 1)
               + result_reply(results[1], 2))]
    with scripted(script) as port, Board(port, network=network, timeout=0.2) as board:
        with pytest.raises(LinkError, match="no response"):
            board.infer(x[0])
        assert board.infer(x[1]) == results[1]


def test_a_repeated_answer_does_not_shift_later_results(digits):
    network, x, _, results = digits
    script = [(infer_frame(network, x[0], 1), result_reply(results[0], 1) * 2),
              (infer_frame(network, x[1], 2), result_reply(results[1], 2)),
              (infer_frame(network, x[2], 3), result_reply(results[1], 2)
               + result_reply(results[2], 3))]
    with scripted(script) as port, Board(port, network=network) as board:
        assert list(board.infer_many(x[:3])) == results[:3]


def test_a_class_that_is_not_the_argmax_is_refused(digits):
    network, x, _, results = digits
    scores = results[0].scores
    wrong = protocol.Result((results[0].predicted + 1) % 10, scores, 1, 1)
    with scripted([(infer_frame(network, x[0], 1), result_reply(wrong, 1))]) as port, \
            Board(port, network=network, timeout=0.2) as board:
        with pytest.raises(LinkError, match=f"RESULT class {wrong.predicted} is not the argmax "
                                            f"of its 10 scores"):
            board.infer(x[0])


def test_a_made_up_long_header_does_not_hide_the_real_answer(digits):
    """Issue 14: noise shaped like a RESULT header of length 65,535 before the real RESULT."""
    network, x, _, results = digits
    noise = bytes.fromhex("a55a 0281 0100 ffff")
    script = [(infer_frame(network, x[0], 1), noise + result_reply(results[0], 1))]
    with scripted(script) as port, Board(port, network=network, timeout=30) as board:
        assert board.infer(x[0]) == results[0]


@pytest.mark.parametrize("change, words", [
    (dict(clock_hz=1), "a clock of 1 Hz (expected 1 MHz to 1000 MHz)"),
    (dict(clock_hz=4_000_000_000), "a clock of 4000000000 Hz"),
    (dict(baud=9600), "9600 baud (this link runs at 115200)"),
    (dict(weights_next=9, weight_bytes=8), "9 of 8 weight bytes loaded"),
    (dict(classes=0), "0 classes (expected 1 … 256)"),
])
def test_an_absurd_info_is_refused(digits, change, words):
    """Issue 14: a board reporting clock_hz = 1 made the host sleep ~4,600 s in resync."""
    network, *_ = digits
    with scripted([(info_request(1), info_reply(info_for(network, **change), 1))]) as port, \
            Board(port, network=network, timeout=1.0) as board:
        start = time.monotonic()
        with pytest.raises(LinkError) as exc:
            board.info()
        assert time.monotonic() - start < 60  # not the hour a 1 Hz clock would have cost
    assert str(exc.value).startswith(f"{port}: the board's INFO reports ")
    assert words in str(exc.value)


def test_a_board_of_another_protocol_version_is_named(digits):
    v1_info = bytes.fromhex("a55a 0182 1e00") + bytes(30)
    v1_info += struct.pack("<H", protocol.crc16(v1_info[2:]))
    with scripted([(info_request(1), v1_info)]) as port, Board(port, timeout=0.2) as board:
        with pytest.raises(LinkError, match="the board speaks protocol version 1, this host 2 "
                                            r"\(rebuild the bitstream with this hwgen\)"):
            board.info()


@pytest.mark.parametrize("timeout", [float("inf"), 1e300, 1e-9, 0.0, -1.0, float("nan")])
def test_timeouts_out_of_range_are_refused(timeout):
    with pytest.raises(ValueError, match="timeout must be a number of seconds from 0.001 to "
                                         "86400"):
        Board("/dev/null", timeout=timeout)


def test_a_result_of_the_wrong_size_is_a_link_error(digits):
    network, x, _, results = digits
    scores = results[0].scores[:4]
    short = protocol.Result(int(np.argmax(scores)), scores, 1, 1)
    with scripted([(infer_frame(network, x[0], 1), result_reply(short, 1))]) as port, \
            Board(port, network=network) as board:
        with pytest.raises(LinkError, match=f"RESULT with class {short.predicted} of 4 scores; "
                                            f"digits_bnn has 10 classes"):
            board.infer(x[0])


def test_a_malformed_payload_is_a_link_error():
    reply = protocol.encode_frame(Command.INFO_REPLY, b"\x00" * 5, request_id=1)
    with scripted([(info_request(1), reply)]) as port, \
            Board(port, timeout=0.2) as board:
        with pytest.raises(LinkError, match="malformed response to INFO request 1: INFO_REPLY "
                                            "payload"):
            board.info()


def test_a_hangup_is_a_serial_error(digits):
    with scripted([(info_request(1), "hangup")]) as port, \
            Board(port, timeout=30) as board:
        start = time.monotonic()
        with pytest.raises(LinkError, match=f"{port}: serial error"):
            board.info()
        assert time.monotonic() - start < 20  # the hang-up, not the 30 s deadline


def test_a_port_that_does_not_exist(tmp_path):
    port = str(tmp_path / "ttyUSB9")
    with pytest.raises(LinkError, match=f"cannot open serial port {port}: No such file"):
        Board(port)


def test_a_busy_port():
    with scripted([]) as port, Board(port):
        with pytest.raises(LinkError, match=f"cannot open serial port {port}: busy"):
            Board(port)


def test_progress_bar_draws_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term, log = Terminal(), io.StringIO()
    for stream in (term, log):
        bar = ProgressBar(40, stream=stream)
        for done in range(1, 41):
            bar.update(done)
        bar.close()
    last = term.getvalue().rsplit("\r", 1)[1]
    assert last.startswith("  40/40 [" + "#" * 30 + "] 100 %  ") and last.endswith("/s \n")
    assert log.getvalue() == ""


# hwgen run --------------------------------------------------------------------------------




@pytest.fixture
def arrays(digits, tmp_path):
    """The first three test images and labels as .npy files; the third label is wrong."""
    _, x, y, _ = digits
    labels = y[:3].copy()
    labels[2] = (labels[2] + 1) % 10
    np.save(tmp_path / "x.npy", x[:3])
    np.save(tmp_path / "y.npy", labels)
    return str(tmp_path / "x.npy"), str(tmp_path / "y.npy")


def test_run_prints_accuracy_latency_and_checks_golden(digits, arrays, tmp_path, capsys):
    network, x, _, results = digits
    script = [(info_request(1), info_reply(info_for(network), 1))]
    script += infers(network, x[:3], results[:3], 2)
    out = tmp_path / "run.json"
    with scripted(script) as port:
        assert main(["run", str(DIGITS), "--port", port, "--inputs", arrays[0], "--labels",
                     arrays[1], "--check", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{port}: digits_bnn (network 0x{protocol.network_id(network):08x}), 12 MHz" in text
    assert f"#0  class {results[0].predicted}  label {results[0].predicted}  scores " in text
    assert "accuracy: 0.6667 (2/3)" in text
    assert "host latency per inference: mean " in text and "inferences/s" in text
    assert "board cycles from the last input byte to the class: mean 705.0 (58.8 µs" in text
    assert "check: every class and score matched the golden model (3 inferences)" in text
    doc = json.loads(out.read_text())
    assert doc["count"] == 3 and doc["accuracy"] == pytest.approx(2 / 3)
    assert doc["check"] == {"checked": 3, "mismatches": 0}
    assert [r["scores"] for r in doc["results"]] == [list(r.scores) for r in results[:3]]


def test_run_check_mismatch_exits_1(digits, arrays, capsys):
    network, x, _, results = digits
    wrong = protocol.Result(results[1].predicted, (results[1].scores[0] + 1,)
                            + results[1].scores[1:], 1, 1)
    script = [(info_request(1), info_reply(info_for(network), 1))]
    script += infers(network, x[:3], [results[0], wrong, results[2]], 2)
    with scripted(script) as port:
        assert main(["run", str(DIGITS), "--port", port, "--inputs", arrays[0],
                     "--check"]) == 1
    text = capsys.readouterr().out
    assert "#1  class" in text and "MISMATCH" in text
    assert "check: MISMATCH in 1 of 3 inference(s); the first:" in text
    assert f"  #1: board class {wrong.predicted} scores {list(wrong.scores)}; golden" in text


def test_run_defaults_to_the_test_split_and_loads_spram_weights(digits, monkeypatch, capsys):
    network, x, _, results = digits
    import hwgen.weight_image

    monkeypatch.setattr(hwgen.weight_image, "spram_image", lambda n: bytes(range(8)))
    # --board ulx3s-85f: its 1 Mbaud link rate is the default --baud
    info = info_for(network, weight_bytes=8, baud=1_000_000)
    script = [(info_request(1), info_reply(info, 1)),
              (protocol.load_request(0, bytes(range(8)), request_id=2), load_reply(8, True, 2))]
    script += infers(network, x[:2], results[:2], 3)
    with scripted(script) as port:
        assert main(["run", str(DIGITS), "--port", port, "--count", "2", "--board",
                     "ulx3s-85f"]) == 0
    text = capsys.readouterr().out
    assert "loading 8 bytes of SPRAM weights" in text
    # 12 MHz is neither the ULX3S's 25 MHz oscillator nor anything its PLL makes from it
    assert ("note: the board reports a 12 MHz clock, which neither ulx3s-85f's 25 MHz "
            "oscillator nor its PLL makes") in text
    assert "accuracy: 1.0000 (2/2)" in text and "digits_bnn.test.npz" in text


@pytest.mark.parametrize("board, clock_hz", [("icebreaker", 12_000_000),
                                             ("icebreaker", 20_250_000),
                                             ("ulx3s-85f", 96_875_000)])
def test_run_takes_a_pll_clock_and_prints_both_rates(digits, arrays, capsys, board, clock_hz):
    """A clock the board's PLL makes (``--clock-mhz auto`` builds) is no surprise; the
    summary gives inferences/s over the link beside what the line carries at that baud and
    the network's own rate at the board's clock."""
    from hwgen.toolchain.boards import board as find_board

    network, x, _, results = digits
    baud = find_board(board).baud
    script = [(info_request(1), info_reply(info_for(network, clock_hz=clock_hz, baud=baud), 1))]
    script += infers(network, x[:3], results[:3], 2)
    with scripted(script) as port:
        assert main(["run", str(DIGITS), "--port", port, "--inputs", arrays[0],
                     "--board", board]) == 0
    text = capsys.readouterr().out
    assert "note:" not in text
    line = next(t for t in text.splitlines() if t.startswith("throughput: "))
    assert line.endswith(f" inferences/s over the link (the line carries "
                         f"{baud / 10 / (74 + 62):,.1f}/s at {baud:,} baud)")
    assert (f"the network alone: {clock_hz / 256:,.1f} inferences/s at {clock_hz / 1e6:g} MHz"
            in text.splitlines())


def test_run_refuses_a_board_with_another_network(digits, arrays, capsys):
    network, *_ = digits
    script = [(info_request(1), info_reply(info_for(network, network_id=7), 1))]
    with scripted(script) as port:
        assert main(["run", str(DIGITS), "--port", port, "--inputs", arrays[0]]) == 1
    assert "the board runs network 0x00000007" in error_line(capsys)


def test_run_image_size_mismatch(digits, arrays, capsys):
    network, *_ = digits
    script = [(info_request(1), info_reply(info_for(network, weight_bytes=8), 1))]
    with scripted(script) as port:
        assert main(["run", str(DIGITS), "--port", port, "--inputs", arrays[0]]) == 1
    assert "expects 8 bytes of SPRAM weights, digits_bnn's image has 0" in error_line(capsys)


def test_run_silent_board(digits, arrays, capsys):
    network, x, *_ = digits
    script = [(info_request(1), info_reply(info_for(network), 1)),
              (infer_frame(network, x[0], 2), None)]
    with scripted(script) as port:
        assert main(["run", str(DIGITS), "--port", port, "--inputs", arrays[0], "--timeout",
                     "0.2"]) == 1
    assert "no response from" in error_line(capsys)


def test_run_missing_inputs_file(tmp_path, capsys):
    assert main(["run", str(DIGITS), "--port", "/dev/null", "--inputs",
                 str(tmp_path / "none.npy")]) == 2
    err = error_line(capsys)
    assert "--inputs" in err and "none.npy: file not found" in err


def test_run_bad_port(tmp_path, arrays, capsys):
    port = str(tmp_path / "ttyACM7")
    assert main(["run", str(DIGITS), "--port", port, "--inputs", arrays[0]]) == 1
    assert f"cannot open serial port {port}" in error_line(capsys)


def test_run_dry_run_opens_no_port(arrays, capsys):
    assert main(["run", str(DIGITS), "--port", "/nonexistent/tty", "--inputs", arrays[0],
                 "--dry-run"]) == 0
    # 64 input bytes, an 8-byte header (magic, version, command, id, length), a 2-byte CRC
    assert "would send 3 INFER frame(s) of 74 bytes" in capsys.readouterr().out


def test_run_inferences_checks_against_the_golden_model(digits):
    """The host loop of ``hwgen run`` as a library call: results in order, a wrong score
    reported as a Mismatch with the golden answer, the summary's figures."""
    from hwgen.runtime import Mismatch, run_inferences

    network, x, _, results = digits
    wrong = protocol.Result(results[1].predicted, (results[1].scores[0] - 1,)
                            + results[1].scores[1:], 1, 1)
    seen = []
    with scripted(infers(network, x[:3], [results[0], wrong, results[2]], 1)) as port, \
            Board(port, network=network) as board:
        report = run_inferences(board, x[:3], check=True,
                                on_result=lambda i, r, s, bad: seen.append((i, bad)))
    assert report.results == [results[0], wrong, results[2]]
    assert report.mismatches == [Mismatch(1, wrong, results[1].predicted, results[1].scores)]
    assert seen == [(0, False), (1, True), (2, False)]
    summary = report.summary(np.array([r.predicted for r in results[:3]]), 12_000_000)
    assert summary["accuracy"] == 1.0 and summary["count"] == 3
    assert summary["check"] == {"checked": 3, "mismatches": 1}
    # the link: digits_bnn's 74-byte INFER and 62-byte RESULT at the default 115200 baud
    assert summary["link"] == {"baud": 115200, "request_bytes": 74, "response_bytes": 62,
                               "inferences_per_second": summary["inferences_per_second"],
                               "line_inferences_per_second": 115200 / 10 / (74 + 62)}
    assert summary["inferences_per_second"] == 3 / report.total_s
    assert summary["network_inferences_per_second"] is None  # INFO was not asked


def test_summary_gives_the_network_rate_beside_the_link():
    from hwgen.runtime import RunReport, line_rate

    report = RunReport(results=[protocol.Result(0, (5, 1), 10, 5)] * 4, seconds=[0.01] * 4,
                       total_s=0.02, baud=3_000_000, request_bytes=794, response_bytes=30,
                       cycles_per_inference=6_084)
    summary = report.summary(None, 12_000_000)
    assert summary["inferences_per_second"] == 200.0
    assert summary["link"]["line_inferences_per_second"] == line_rate(3_000_000, 794, 30) \
        == 3_000_000 / 10 / 824
    assert summary["network_inferences_per_second"] == 12_000_000 / 6_084
    assert RunReport(results=report.results, seconds=report.seconds, total_s=0.02).summary(
        None, 12_000_000)["link"] is None
