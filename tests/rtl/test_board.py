# amaranth: UnusedElaboratable=no
"""BoardCore in Amaranth's simulator: protocol frames in, the golden model's class and scores
out, every error frame, recovery, SPRAM weight loading; its parts' argument checks."""

import numpy as np
import pytest
from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hwgen import golden, protocol
from hwgen.plan import plan
from hwgen.rtl.board import BoardCore, BoardTop, BytePacker, crc16_step, cycles_bits
from hwgen.rtl.framing import Crc16, RequestParser, ResponseSerializer, ResultCapture
from hwgen.rtl.testbench import Clock, Stalls, stream_get, stream_put
from hwgen.rtl.uart import UartRx, UartTx
from hwgen.spec import Input
from hwgen.weight_image import spram_image
from tests.helpers import chain

NETWORKS = {
    # 8-bit input, 3 lanes; a 16-bit classifier; argmax
    "u8": (Input((12,), 8, lanes=3), [
        dict(out=10, weight_bits=1, out_bits=1, pe=5, simd=4),
        dict(out=5, weight_bits=16, out_bits=None, pe=5, simd=2, bias=True)]),
    # signed 4-bit input, one lane per beat
    "s4": (Input((6,), 4, signed=True, lanes=1), [
        dict(out=4, weight_bits=2, out_bits=None, pe=2, simd=3)]),
    # binary input
    "bin": (Input((16,), 1, lanes=4), [
        dict(out=8, weight_bits=1, out_bits=1, pe=4, simd=8),
        dict(out=3, weight_bits=8, out_bits=None, pe=3, simd=4)]),
}


def _network(name, count=6, seed=None):
    inp, layers = NETWORKS[name]
    rng = np.random.default_rng(seed if seed is not None else len(name))
    return chain(rng, inp, [dict(d) for d in layers], count=count, argmax=True)


def frame_bytes(network, x, rng=None):
    """INFER payload bytes for one input ``x``; unused high bits random when ``rng``."""
    t = network.input_type
    out = []
    for v in np.asarray(x).ravel():
        v = int(v)
        if t.binary:
            code, width = (v + 1) // 2, 1
        else:
            code, width = v & ((1 << t.bits) - 1), t.bits
        junk = int(rng.integers(0, 256 >> width)) << width if rng is not None else 0
        out.append(code | junk)
    return bytes(out)


def golden_results(network, x):
    """(class, scores) per input, from the golden model."""
    values = golden.run(network, x)
    scores = values[network.layers[-2].name].reshape(len(x), -1)
    classes = golden.predict(network, x)
    return [(int(c), tuple(int(v) for v in s)) for c, s in zip(classes, scores, strict=True)]


def core_for(network, *, idle_cycles=2000, result_cycles=None):
    if result_cycles is None:
        p = plan(network)
        result_cycles = 4 * (p.latency_bound + p.cycles_per_inference)
    return BoardCore(network, clk_hz=1_000_000, baud=100_000, idle_cycles=idle_cycles,
                     result_cycles=result_cycles)


class Noise(bytes):
    """Bytes sent to the board that it answers with nothing."""


def cycle_budget(core, requests, gaps: float, backpressure: float) -> int:
    """Cycles within which a working core answers ``requests``: per request its bytes and the
    longest response at the stall rates, the network's timeout and the idle timeout."""
    longest = protocol.HEADER_BYTES + protocol.result_bytes(protocol.MAX_CLASSES) + 2
    slowdown = 1 / (1 - max(gaps, backpressure))
    return sum(round(4 * slowdown * (len(r) + longest)) + core.result_cycles
               + core.idle_cycles + 100 for r in requests)


def serve(core, requests, responses, *, gaps=0.0, backpressure=0.0):
    """Send ``requests`` to ``core`` one at a time, each after the previous one's response
    (a :class:`Noise` item is not waited for), and decode ``responses`` response frames
    (protocol objects) from what it sends back. Returns them and their request ids. Fails
    after :func:`cycle_budget` cycles, so a broken link fails in seconds."""
    max_cycles = cycle_budget(core, requests, gaps, backpressure)
    decoder = protocol.FrameDecoder()
    frames = []

    async def source(ctx):
        clock = Clock(ctx)
        answered = 0
        for item in requests:
            await stream_put(clock, core.i_stream, list(item), Stalls(gaps, 3))
            if not isinstance(item, Noise):
                answered += 1
                while len(frames) < answered:
                    await clock.idle(1)

    async def sink(ctx):
        clock = Clock(ctx)
        stalls = Stalls(backpressure, 4)
        while len(frames) < responses:
            (byte,) = await stream_get(clock, core.o_stream, 1, stalls)
            frames.extend(decoder.feed(bytes([byte])))
        await clock.idle(50)

    async def watchdog(ctx):
        await Clock(ctx).idle(max_cycles)
        raise AssertionError(f"{len(frames)} of {responses} responses in {max_cycles} cycles")

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.add_testbench(watchdog, background=True)
    sim.run()
    assert decoder.bad_frames == 0 and decoder.skipped_bytes == 0
    return [protocol.parse_response(f) for f in frames], [f.request_id for f in frames]


def test_crc_step_matches_the_protocol():
    rng = np.random.default_rng(0)
    data = bytes(rng.integers(0, 256, size=9).tolist())
    crc, byte = Signal(16), Signal(8)
    out = Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_step(crc, byte))
    got = []

    async def bench(ctx):
        value = 0xFFFF
        for b in data:
            ctx.set(crc, value)
            ctx.set(byte, b)
            value = ctx.get(out)
            got.append(value)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got[-1] == protocol.crc16(data)


def test_shared_crc_register():
    """Crc16: clear, then one byte per step (a cycle without step keeps it); clear wins."""
    rng = np.random.default_rng(2)
    data = bytes(rng.integers(0, 256, size=12).tolist())
    dut = Crc16()
    got = []

    async def bench(ctx):
        ctx.set(dut.clear, 1)
        ctx.set(dut.step, 1)  # clear wins
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for b in data:
            ctx.set(dut.byte, b)
            ctx.set(dut.step, 1)
            await ctx.tick()
            ctx.set(dut.step, 0)
            ctx.set(dut.byte, 0x5A)
            await ctx.tick()  # no step: no change
        got.append(ctx.get(dut.crc))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [protocol.crc16(data)]


def test_load_length_rule_for_every_length():
    """The parser's bit tests for a LOAD's length: odd, below 6 or above 1028 is bad."""
    from hwgen.rtl.framing import _bad_load_length

    length, bad = Signal(16), Signal()
    m = Module()
    m.d.comb += bad.eq(_bad_load_length(length))
    wrong = []

    async def bench(ctx):
        for v in range(1 << 16):
            ctx.set(length, v)
            if ctx.get(bad) != (v % 2 == 1 or v < 6 or v > 4 + protocol.MAX_LOAD_DATA):
                wrong.append(v)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert wrong == []


def test_cycle_counters_are_as_wide_as_the_longest_count():
    # 784 bytes at most 1.2 M cycles apart (0.1 s at 12 MHz): 30 bits; a 64-byte frame 27;
    # from the last byte: its CRC's two bytes and the result, 22 bits
    assert cycles_bits(784, 1_200_000, 100_000) == (30, 22)
    assert cycles_bits(64, 1_200_000, 1_000) == (27, 22)
    assert cycles_bits(65535, 10_000_000, 1) == (32, 25)  # never more than the protocol's 32
    assert cycles_bits(1, 1, 1) == (5, 5)
    core = core_for(_network("u8")[0])
    first, last = core.cycles_bits
    bound = (12 + 2) * (core.idle_cycles + 1) + core.result_cycles
    assert 2 ** (first - 1) <= bound < 2 ** first
    assert 2 ** (last - 1) <= 3 * (core.idle_cycles + 1) + core.result_cycles < 2 ** last


@pytest.mark.parametrize("name", list(NETWORKS))
def test_infer_returns_golden_class_scores_and_cycles(name):
    net, x = _network(name, count=3)
    core = core_for(net)
    rng = np.random.default_rng(1)
    ids = [0xFFFF, 1, 0x1234][:len(x)]  # each response echoes its request's id
    requests = [protocol.infer_request(frame_bytes(net, xi, rng), request_id=i)
                for xi, i in zip(x, ids, strict=True)]
    got, got_ids = serve(core, requests, len(x), gaps=0.3, backpressure=0.3)
    assert [(r.predicted, r.scores) for r in got] == golden_results(net, x)
    assert got_ids == ids
    p = plan(net)
    beats = p.input_type.size // p.input_lanes
    for r in got:
        assert 0 < r.cycles_last <= p.latency_bound
        # from the first beat: the other beats arrive, at least one cycle apart, then the last
        # beat's latency
        assert r.cycles_first >= r.cycles_last + beats - 1


def test_a_host_with_another_crc_fails_within_the_cycle_budget(monkeypatch):
    """A host whose CRC differs from the board's (here CRC-16/XMODEM: init 0 instead of
    0xFFFF) gets nothing it can decode: the bench must fail on its cycle budget (a few
    thousand cycles here), not run for hundreds of thousands."""
    import binascii

    net, x = _network("u8", count=1)
    core = core_for(net)
    monkeypatch.setattr(protocol, "crc16", lambda data, crc=0: binascii.crc_hqx(data, 0))
    requests = [protocol.infer_request(frame_bytes(net, x[0]), request_id=1)]
    budget = cycle_budget(core, requests, 0.0, 0.0)
    assert budget < 10_000
    with pytest.raises(AssertionError, match=f"0 of 1 responses in {budget} cycles"):
        serve(core, requests, 1)


def test_info_reply_describes_the_network():
    net, _ = _network("u8")
    [info], ids = serve(core_for(net), [protocol.info_request(request_id=0xA55A)], 1)
    assert ids == [0xA55A]
    p = plan(net)
    assert info == protocol.Info(network_id=protocol.network_id(net), input_bytes=12,
                                 classes=5, weight_bytes=0, weights_next=0, clock_hz=1_000_000,
                                 baud=100_000, cycles_per_inference=p.cycles_per_inference)
    assert info.weights_loaded


def _error(code, command):
    return protocol.ErrorReply(code, command)


def test_bad_frames_get_error_frames_and_the_next_frame_works():
    net, x = _network("u8", count=2)
    good = protocol.infer_request(frame_bytes(net, x[0]), request_id=1)
    bad_crc = bytearray(good)
    bad_crc[12] ^= 0x40
    E = protocol.ErrorCode
    requests = [
        Noise(b"\x00\x17\xa5\xa5"),  # noise, and a false start, before the magic
        bytes(bad_crc),
        protocol.encode_frame(protocol.Command.INFER, frame_bytes(net, x[0])[:-1],
                              request_id=2),
        protocol.encode_frame(0x44, b"xyz", request_id=3),
        protocol.encode_frame(protocol.Command.INFO, b"", version=9, request_id=4),
        protocol.encode_frame(protocol.Command.INFO, b"\x00", request_id=5),
        protocol.encode_frame(protocol.Command.LOAD, b"\x00" * 6, request_id=6),  # no weights
        good[:11],  # a frame cut short after its id: the line goes idle
        good[:5],  # a frame cut short before its id
        protocol.infer_request(frame_bytes(net, x[1]), request_id=9),
    ]
    got, ids = serve(core_for(net), requests, 9, gaps=0.2, backpressure=0.2)
    assert got[:8] == [_error(E.BAD_CRC, 1), _error(E.BAD_LENGTH, 1),
                       _error(E.UNKNOWN_COMMAND, 0x44), _error(E.BAD_VERSION, 2),
                       _error(E.BAD_LENGTH, 2), _error(E.BAD_OFFSET, 3),
                       _error(E.TIMEOUT, 0), _error(E.TIMEOUT, 0)]
    assert ids == [1, 2, 3, 4, 5, 6, 1, 0, 9]  # a frame cut before its id is answered as 0
    assert (got[8].predicted, got[8].scores) == golden_results(net, x[1:])[0]


def test_network_timeout_resets_and_answers():
    net, x = _network("u8", count=2)
    core = core_for(net, result_cycles=3)  # far too short for this network
    got, ids = serve(core, [protocol.infer_request(frame_bytes(net, x[0]), request_id=77)], 1)
    assert got == [_error(protocol.ErrorCode.TIMEOUT, protocol.Command.INFER)] and ids == [77]


def test_spram_weights_load_then_infer():
    from tests.rtl.test_weights import SPRAM_NETWORKS

    inp, layers, _ = SPRAM_NETWORKS["cnn"]
    net, x = chain(np.random.default_rng(5), inp, [dict(d) for d in layers], count=2,
                   argmax=True)
    image = spram_image(net)
    size = len(image)
    assert size > 16
    E = protocol.ErrorCode
    half = size // 2 // 2 * 2
    corrupt = bytearray(protocol.load_request(0, image[:half], request_id=3))
    corrupt[14] ^= 1
    requests = [
        protocol.infer_request(frame_bytes(net, x[0]), request_id=1),     # not loaded yet
        protocol.load_request(2, image[2:half], request_id=2),            # must start at 0
        bytes(corrupt),                                     # bad CRC: the load restarts
        protocol.info_request(request_id=4),
        protocol.load_request(0, image[:half], request_id=5),
        protocol.load_request(half + 2, image[half + 2:], request_id=6),  # a gap
        protocol.load_request(half, image[half:], request_id=7),
        protocol.info_request(request_id=8),
        protocol.infer_request(frame_bytes(net, x[0]), request_id=9),
        protocol.infer_request(frame_bytes(net, x[1]), request_id=10),
        protocol.load_request(size, b"\x01\x02", request_id=11),          # past the end
        protocol.load_request(0, image + b"\x01\x02", request_id=12),     # longer than it
        protocol.info_request(request_id=13),
        protocol.load_request(0, image[:half], request_id=14),  # loaded: starts again at 0
        protocol.infer_request(frame_bytes(net, x[0]), request_id=15),
    ]
    assert size + 2 <= protocol.MAX_LOAD_DATA
    got, ids = serve(core_for(net), requests, len(requests))
    assert ids == list(range(1, 16))
    assert got[0] == _error(E.NOT_LOADED, 1)
    assert got[1] == _error(E.BAD_OFFSET, 3)
    assert got[2] == _error(E.BAD_CRC, 3)
    assert got[3].weight_bytes == size and got[3].weights_next == 0
    assert got[4] == protocol.LoadReply(half, False)
    assert got[5] == _error(E.BAD_OFFSET, 3)
    assert got[6] == protocol.LoadReply(size, True)
    assert got[7].weights_loaded
    assert [(r.predicted, r.scores) for r in got[8:10]] == golden_results(net, x)
    assert got[10:12] == [_error(E.BAD_OFFSET, 3)] * 2
    assert got[12].weights_next == size and got[12].weights_loaded
    assert got[13] == protocol.LoadReply(half, False)
    assert got[14] == _error(E.NOT_LOADED, 1)


def test_core_over_uart_lines():
    """Request bytes sent by a UART transmitter into BoardCore's receiver, the response read
    back serially."""
    net, x = _network("bin", count=2)
    clk, baud = 8_000_000, 1_000_000
    m = Module()
    m.submodules.host_tx = host_tx = UartTx(clk_hz=clk, baud=baud)
    m.submodules.host_rx = host_rx = UartRx(clk_hz=clk, baud=baud)
    m.submodules.rx = rx = UartRx(clk_hz=clk, baud=baud)
    m.submodules.tx = tx = UartTx(clk_hz=clk, baud=baud)
    m.submodules.core = core = BoardCore(net, clk_hz=clk, baud=baud, idle_cycles=1000,
                                         result_cycles=10_000)
    m.d.comb += [rx.rx.eq(host_tx.tx), host_rx.rx.eq(tx.tx)]
    wiring.connect(m, rx.o_stream, core.i_stream)
    wiring.connect(m, core.o_stream, tx.i_stream)
    decoder = protocol.FrameDecoder()
    frames = []
    last = []

    async def host_send(ctx):
        clock = Clock(ctx)
        for xi in x:
            await stream_put(clock, host_tx.i_stream,
                             list(protocol.infer_request(frame_bytes(net, xi), request_id=1)))
            while len(frames) < len(last) + 1:
                await clock.idle(1)
            last.append(ctx.get(core.last_class))

    async def host_receive(ctx):
        clock = Clock(ctx)
        while len(frames) < len(x):
            (byte,) = await stream_get(clock, host_rx.o_stream, 1)
            frames.extend(decoder.feed(bytes([byte])))

    sim = Simulator(m)
    sim.add_clock(1 / clk)
    sim.add_testbench(host_send)
    sim.add_testbench(host_receive)
    sim.run()
    got = [protocol.parse_response(f) for f in frames]
    assert [(r.predicted, r.scores) for r in got] == golden_results(net, x)


def test_packer_binary_and_signed_elements():
    from hwgen.numeric import TensorType

    packer = BytePacker(TensorType((4,), 3, True), 2)
    got = []

    async def bench(ctx):
        clock = Clock(ctx)
        await stream_put(clock, packer.i_stream, [0b11111_101, 0b011, 0b00001_100, 0b111])

    async def sink(ctx):
        got.extend(await stream_get(Clock(ctx), packer.o_stream, 2))

    sim = Simulator(packer)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(sink)
    sim.run()
    assert got == [0b011_101, 0b111_100]


def test_refuses_network_without_argmax():
    rng = np.random.default_rng(0)
    net, _ = chain(rng, Input((4,), 8), [dict(out=3, weight_bits=2, out_bits=None, pe=1,
                                              simd=4)])
    with pytest.raises(ValueError) as exc:
        core_for(net)
    assert str(exc.value) == ("network 'net' does not end in argmax; the board's UART protocol "
                              "sends back one class index per inference")


def test_refuses_wide_inputs():
    rng = np.random.default_rng(0)
    net, _ = chain(rng, Input((4,), 12), [dict(out=3, weight_bits=2, out_bits=None, pe=1,
                                               simd=4)], argmax=True)
    with pytest.raises(ValueError) as exc:
        BoardTop(net, clk_hz=12_000_000)
    assert str(exc.value) == ("network 'net' has 12-bit inputs; the board's UART protocol sends "
                              "one byte per input element (at most 8 bits)")


def test_board_top_needs_a_platform():
    net, _ = _network("u8")
    top = BoardTop(net, clk_hz=12_000_000)
    assert top.idle_cycles == 1_200_000
    p = plan(net)
    assert top.result_cycles == 4 * (p.latency_bound + p.cycles_per_inference)
    with pytest.raises(TypeError):
        top.elaborate(None)


# the parts of BoardCore (hwgen/rtl/framing.py): arguments refused with these messages

PARSER_ARGS = dict(frame_bytes=12, weight_bytes=0, idle_cycles=100, result_cycles=100)
SERIALIZER_ARGS = dict(classes=10, score_bits=16, weight_bytes=0, network_id=0xDEADBEEF,
                       input_bytes=64, clk_hz=12_000_000, baud=115200,
                       cycles_per_inference=256)
CAPTURE_ARGS = dict(classes=10, score_bits=16, score_lanes=5, beats=16)


@pytest.mark.parametrize("component, args, name, value, message", [
    (RequestParser, PARSER_ARGS, "frame_bytes", 0,
     "frame_bytes must be an integer from 1 to 65535, not 0"),
    (RequestParser, PARSER_ARGS, "frame_bytes", 65536,
     "frame_bytes must be an integer from 1 to 65535, not 65536"),
    (RequestParser, PARSER_ARGS, "weight_bytes", -2,
     "weight_bytes must be an integer from 0 to 4294967295, not -2"),
    (RequestParser, PARSER_ARGS, "idle_cycles", 0,
     "idle_cycles must be a positive integer, not 0"),
    (RequestParser, PARSER_ARGS, "result_cycles", 1.5,
     "result_cycles must be a positive integer, not 1.5"),
    (ResponseSerializer, SERIALIZER_ARGS, "classes", 257,
     "classes must be an integer from 1 to 256, not 257"),
    (ResponseSerializer, SERIALIZER_ARGS, "score_bits", 33,
     "score_bits must be an integer from 1 to 32, not 33"),
    (ResponseSerializer, SERIALIZER_ARGS, "network_id", 2 ** 32,
     "network_id must be an integer from 0 to 4294967295, not 4294967296"),
    (ResponseSerializer, SERIALIZER_ARGS, "clk_hz", "12e6",
     "clk_hz must be an integer from 0 to 4294967295, not '12e6'"),
    (ResponseSerializer, SERIALIZER_ARGS, "cycles_per_inference", -1,
     "cycles_per_inference must be an integer from 0 to 4294967295, not -1"),
    (ResultCapture, CAPTURE_ARGS, "classes", 0,
     "classes must be an integer from 1 to 256, not 0"),
    (ResultCapture, CAPTURE_ARGS, "score_bits", 0,
     "score_bits must be an integer from 1 to 32, not 0"),
    (ResultCapture, CAPTURE_ARGS, "score_lanes", 3,
     "score_lanes must be a positive divisor of classes (10), not 3"),
    (ResultCapture, CAPTURE_ARGS, "score_lanes", 0,
     "score_lanes must be a positive divisor of classes (10), not 0"),
    (ResultCapture, CAPTURE_ARGS, "beats", 0,
     "beats must be a positive integer, not 0"),
    (ResultCapture, CAPTURE_ARGS, "cycles_bits", 33,
     "cycles_bits must be an integer from 1 to 32, not 33"),
    (ResultCapture, {**CAPTURE_ARGS, "cycles_bits": 20}, "last_bits", 21,
     "last_bits must be an integer from 1 to 20, not 21"),
])
def test_board_parts_refuse_bad_arguments(component, args, name, value, message):
    with pytest.raises(ValueError) as exc:
        component(**{**args, name: value})
    assert str(exc.value) == message


def test_board_parts_ports():
    """The ports whose shapes follow the parameters."""
    parser = RequestParser(**{**PARSER_ARGS, "weight_bytes": 1000})
    assert len(parser.weights_next) == 10
    serializer = ResponseSerializer(**SERIALIZER_ARGS)
    assert serializer.score.shape() == signed(16)
    capture = ResultCapture(**CAPTURE_ARGS)
    assert len(capture.score_beat) == 5 * 16
    assert capture.score.shape() == signed(16)


def test_capture_counts_from_the_cycle_after_the_first_and_last_beat():
    """cycles_first and cycles_last by the docstring's definition, with beats at chosen
    cycles, a beat in an aborted frame that must not count, and the class at a chosen cycle."""
    dut = ResultCapture(classes=2, score_bits=8, score_lanes=2, beats=3)
    seen = {}

    async def bench(ctx):
        clock = Clock(ctx)
        # cycle 0: a beat dropped by an abort in the same cycle; then beats at 3, 6, 7; the
        # class at 12
        for cycle in range(14):
            ctx.set(dut.beat, cycle in (0, 3, 6, 7))
            ctx.set(dut.abort, cycle == 0)
            ctx.set(dut.i_class.valid, cycle == 12)
            ctx.set(dut.i_class.payload, 1)
            await clock.idle(1)
        seen.update(ready=ctx.get(dut.ready), first=ctx.get(dut.cycles_first),
                    last=ctx.get(dut.cycles_last), result_class=ctx.get(dut.result_class))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == dict(ready=1, first=12 - 3, last=12 - 7, result_class=1)


def test_packer_refuses_bad_arguments():
    from hwgen.numeric import TensorType

    with pytest.raises(ValueError) as exc:
        BytePacker(TensorType((4,), 9), 2)
    assert str(exc.value) == ("9-bit input elements do not fit the raw byte protocol (one byte "
                              "per element, at most 8 bits)")
    with pytest.raises(ValueError) as exc:
        BytePacker(TensorType((4,), 8), 0)
    assert str(exc.value) == "lanes must be a positive integer, not 0"


def _serializer_frames(weight_bytes, responses, *, classes=3, score_bits=13, seed=0):
    """The bytes a ResponseSerializer (with its Crc16) sends for ``responses``: (kind, fields)
    pairs, each sent after the previous one, under random backpressure; a RESULT's scores come
    from a model of the capture (the next one after each ``next_score``)."""
    from hwgen.rtl.framing import Reply

    dut = ResponseSerializer(classes=classes, score_bits=score_bits, weight_bytes=weight_bytes,
                             network_id=0x1234ABCD, input_bytes=784, clk_hz=12_000_000,
                             baud=3_000_000, cycles_per_inference=4321)
    m = Module()
    m.submodules.serializer = dut
    m.submodules.crc = crc = Crc16()
    m.d.comb += [crc.clear.eq(dut.crc_clear), crc.step.eq(dut.crc_step),
                 crc.byte.eq(dut.crc_byte), dut.crc.eq(crc.crc)]
    sent = []
    scores = []
    state = {"index": 0}

    async def capture(ctx):
        async for _, _, next_score in ctx.tick().sample(dut.next_score):
            if next_score:
                state["index"] += 1
            index = state["index"]
            ctx.set(dut.score, scores[index] if index < len(scores) else 0)

    async def bench(ctx):
        clock = Clock(ctx)
        stalls = Stalls(0.4, seed)
        for kind, fields in responses:
            scores[:] = fields.get("scores", [])
            state["index"] = 0
            for name in ("result_class", "cycles_first", "cycles_last", "weights_next",
                         "weights_loaded"):
                ctx.set(getattr(dut, name), fields.get(name, 0))
            ctx.set(dut.score, scores[0] if scores else 0)
            payload = dut.i_stream.payload
            ctx.set(payload.kind, kind)
            ctx.set(payload.code, fields.get("code", 0))
            ctx.set(payload.for_command, fields.get("for_command", 0))
            ctx.set(payload.request_id, fields["request_id"])
            ctx.set(dut.i_stream.valid, 1)
            await clock.idle(1)
            ctx.set(dut.i_stream.valid, 0)
            frame = []
            while not _complete(frame):
                frame.extend(await stream_get(clock, dut.o_stream, 1, stalls))
            sent.append((Reply(kind), bytes(frame)))
            await clock.idle(3)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_process(capture)
    sim.add_testbench(bench)
    sim.run()
    return sent


def _complete(frame) -> bool:
    """``frame`` holds a whole frame (by its length field)."""
    return (len(frame) >= protocol.HEADER_BYTES
            and len(frame) == protocol.HEADER_BYTES + (frame[6] | frame[7] << 8) + 2)


@pytest.mark.parametrize("weight_bytes", [0, 1000])
def test_serializer_sends_the_protocol_frames(weight_bytes):
    """ResponseSerializer's frames are the protocol's (hwgen.protocol's encoders) for every
    kind of response, with random fields and scores, under backpressure: the flat byte table,
    its field bytes selected by address bits (INFO's weights_next is not aligned) and the
    header's constants by kind."""
    from hwgen.rtl.framing import Reply

    rng = np.random.default_rng(weight_bytes)
    C, E = protocol.Command, protocol.ErrorCode
    responses, expected = [], []
    for _ in range(3):
        rid = int(rng.integers(0, 1 << 16))
        scores = [int(v) for v in rng.integers(-(1 << 12), 1 << 12, size=3)]
        first, last = int(rng.integers(0, 1 << 32)), int(rng.integers(0, 1 << 32))
        responses.append((Reply.RESULT, dict(request_id=rid, result_class=2, scores=scores,
                                             cycles_first=first, cycles_last=last)))
        expected.append(protocol.encode_frame(C.RESULT, protocol.result_payload(
            protocol.Result(2, tuple(scores), first, last)), request_id=rid))
        wn = int(rng.integers(0, weight_bytes + 1))
        rid = int(rng.integers(0, 1 << 16))
        responses.append((Reply.INFO_REPLY, dict(request_id=rid, weights_next=wn,
                                                 weights_loaded=wn == weight_bytes)))
        expected.append(protocol.encode_frame(C.INFO_REPLY, protocol.info_payload(
            protocol.Info(0x1234ABCD, 784, 3, weight_bytes, wn, 12_000_000, 3_000_000, 4321)),
            request_id=rid))
        rid = int(rng.integers(0, 1 << 16))
        responses.append((Reply.LOAD_REPLY, dict(request_id=rid, weights_next=wn,
                                                 weights_loaded=wn == weight_bytes)))
        expected.append(protocol.encode_frame(C.LOAD_REPLY, protocol.load_payload(
            protocol.LoadReply(wn, wn == weight_bytes)), request_id=rid))
        code, command = int(rng.integers(1, 8)), int(rng.integers(0, 256))
        rid = int(rng.integers(0, 1 << 16))
        responses.append((Reply.ERROR, dict(request_id=rid, code=code, for_command=command)))
        expected.append(protocol.encode_frame(C.ERROR, protocol.error_payload(
            protocol.ErrorReply(E(code), command)), request_id=rid))
    sent = _serializer_frames(weight_bytes, responses)
    assert [frame for _, frame in sent] == expected


def test_reached_is_the_first_count_at_the_value():
    """framing._reached: a counter counting up from 0 first has the bits of ``value`` set at
    ``value`` itself."""
    from hwgen.rtl.framing import _reached

    values = [1, 2, 7, 12, 1000, 7300, 1_200_000 % 8192, 8191]
    counter = Signal(13)
    hits = [Signal(name=f"hit{k}") for k in range(len(values))]
    m = Module()
    m.d.sync += counter.eq(counter + 1)
    m.d.comb += [h.eq(_reached(counter, v)) for h, v in zip(hits, values, strict=True)]
    first = {}

    async def bench(ctx):
        for count in range(8192):
            for k, h in enumerate(hits):
                if ctx.get(h) and k not in first:
                    first[k] = count
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert [first[k] for k in range(len(values))] == values
