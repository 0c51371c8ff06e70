# amaranth: UnusedElaboratable=no
"""BoardCore in Amaranth's simulator: raw UART bytes in, the golden model's class out."""

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hwgen import golden
from hwgen.rtl.board import BoardCore, BoardTop, BytePacker
from hwgen.rtl.testbench import Clock, Stalls, stream_get, stream_put
from hwgen.rtl.uart import UartRx, UartTx
from hwgen.spec import Input
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
    """The raw protocol's bytes for inputs ``x``; unused high bits random when ``rng``."""
    t = network.input_type
    out = []
    for v in np.asarray(x).reshape(len(x), -1).ravel():
        v = int(v)
        if t.binary:
            code, width = (v + 1) // 2, 1
        else:
            code, width = v & ((1 << t.bits) - 1), t.bits
        junk = int(rng.integers(0, 256 >> width)) << width if rng is not None else 0
        out.append(code | junk)
    return out


def _run_core(core, data, count, *, gaps=0.0, backpressure=0.0, until=None):
    got = []

    async def source(ctx):
        await stream_put(Clock(ctx), core.i_stream, data, Stalls(gaps, 3))

    async def sink(ctx):
        got.extend(await stream_get(Clock(ctx), core.o_stream, count, Stalls(backpressure, 4)))

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return got


@pytest.mark.parametrize("name", list(NETWORKS))
def test_core_predicts_golden_classes(name):
    net, x = _network(name)
    expected = golden.predict(net, x).tolist()
    core = BoardCore(net)
    data = frame_bytes(net, x, np.random.default_rng(1))
    assert _run_core(core, data, len(x), gaps=0.3, backpressure=0.3) == expected


def test_core_last_class():
    net, x = _network("u8")
    core = BoardCore(net)
    seen = []

    async def source(ctx):
        await stream_put(Clock(ctx), core.i_stream, frame_bytes(net, x[:2]))

    async def sink(ctx):
        clock = Clock(ctx)
        for _ in range(2):
            await stream_get(clock, core.o_stream, 1)
            await clock.idle(1)
            seen.append(ctx.get(core.last_class))

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert seen == golden.predict(net, x[:2]).tolist()


def test_core_drops_partial_frame_after_idle():
    net, x = _network("u8")
    core = BoardCore(net, idle_cycles=50)
    dropped = []

    async def source(ctx):
        clock = Clock(ctx)
        await stream_put(clock, core.i_stream, frame_bytes(net, x[:1])[:7])  # partial frame
        await clock.idle(200)
        await stream_put(clock, core.i_stream, frame_bytes(net, x[1:3]))

    async def monitor(ctx):
        async for _, _, pulse in ctx.tick().sample(core.frame_dropped):
            dropped.append(pulse)

    got = []

    async def sink(ctx):
        got.extend(await stream_get(Clock(ctx), core.o_stream, 2))

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.add_process(monitor)
    sim.run()
    assert got == golden.predict(net, x[1:3]).tolist()
    assert sum(dropped) == 1


def test_core_over_uart_lines():
    """Bytes sent by a UART transmitter into BoardCore's receiver, answers read back serially."""
    net, x = _network("bin", count=3)
    clk, baud = 8_000_000, 1_000_000
    m = Module()
    m.submodules.host_tx = host_tx = UartTx(clk_hz=clk, baud=baud)
    m.submodules.host_rx = host_rx = UartRx(clk_hz=clk, baud=baud)
    m.submodules.rx = rx = UartRx(clk_hz=clk, baud=baud)
    m.submodules.tx = tx = UartTx(clk_hz=clk, baud=baud)
    m.submodules.core = core = BoardCore(net, idle_cycles=1000)
    m.d.comb += [rx.rx.eq(host_tx.tx), host_rx.rx.eq(tx.tx)]
    wiring.connect(m, rx.o_stream, core.i_stream)
    wiring.connect(m, core.o_stream, tx.i_stream)
    got = []

    async def host_send(ctx):
        await stream_put(Clock(ctx), host_tx.i_stream, frame_bytes(net, x))

    async def host_receive(ctx):
        got.extend(await stream_get(Clock(ctx), host_rx.o_stream, len(x)))

    sim = Simulator(m)
    sim.add_clock(1 / clk)
    sim.add_testbench(host_send)
    sim.add_testbench(host_receive)
    sim.run()
    assert got == golden.predict(net, x).tolist()


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
        BoardCore(net)
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
    with pytest.raises(TypeError):
        top.elaborate(None)
