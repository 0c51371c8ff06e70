# amaranth: UnusedElaboratable=no
"""UART transmitter and receiver in Amaranth's simulator: loopback, bit timing, framing."""

import random

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hwgen.rtl.testbench import Clock, Stalls, stream_get, stream_put
from hwgen.rtl.uart import UartRx, UartTx, uart_divisor

CLK, BAUD = 8_000_000, 1_000_000  # 8 cycles per bit


def test_divisor():
    assert uart_divisor(12_000_000) == 104
    assert uart_divisor(25_000_000) == 217
    assert uart_divisor(CLK, BAUD) == 8


@pytest.mark.parametrize(("clk", "baud", "message"), [
    (12_000_000, 0, "baud must be a positive integer, not 0"),
    (300_000, 115200, "a 300000 Hz clock is too slow for 115200 baud (needs at least 4 cycles "
                      "per bit)"),
    (1_000_000, 115200, "115200 baud from a 1000000 Hz clock is off by 3.5% (divisor 9); at "
                        "most 2% is accepted"),
])
def test_divisor_errors(clk, baud, message):
    with pytest.raises(ValueError) as exc:
        UartRx(clk_hz=clk, baud=baud)
    assert str(exc.value) == message


def _loopback(data, *, backpressure=0.0, gaps=0.0):
    m = Module()
    m.submodules.tx = tx = UartTx(clk_hz=CLK, baud=BAUD)
    m.submodules.rx = rx = UartRx(clk_hz=CLK, baud=BAUD)
    m.d.comb += rx.rx.eq(tx.tx)
    got, errors = [], []

    async def source(ctx):
        await stream_put(Clock(ctx), tx.i_stream, data, Stalls(gaps, 1))

    async def sink(ctx):
        got.extend(await stream_get(Clock(ctx), rx.o_stream, len(data), Stalls(backpressure, 2)))

    async def monitor(ctx):
        async for _, _, frame_error, overrun in ctx.tick().sample(rx.frame_error, rx.overrun):
            if frame_error or overrun:
                errors.append((frame_error, overrun))

    sim = Simulator(m)
    sim.add_clock(1 / CLK)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.add_process(monitor)
    sim.run_until(12 * 10 * 8 * (len(data) + 2) / CLK)
    return got, errors


def test_loopback_random_bytes():
    rng = random.Random(7)
    data = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(28)]
    got, errors = _loopback(data, gaps=0.3, backpressure=0.05)
    assert got == data
    assert errors == []


def _tx_bits(byte: int) -> list[int]:
    return [0] + [(byte >> i) & 1 for i in range(8)] + [1]


def test_tx_bit_timing():
    """Start bit, 8 data bits LSB first, stop bit, each exactly 8 cycles; idle high."""
    dut = UartTx(clk_hz=CLK, baud=BAUD)
    line = []

    async def bench(ctx):
        clock = Clock(ctx)
        await clock.idle(3)
        assert ctx.get(dut.tx) == 1
        ctx.set(dut.i_stream.valid, 1)
        ctx.set(dut.i_stream.payload, 0xA5)
        await clock.wait(dut.i_stream.ready)
        ctx.set(dut.i_stream.valid, 0)
        for _ in range(11 * 8):
            line.append(ctx.get(dut.tx))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1 / CLK)
    sim.add_testbench(bench)
    sim.run()
    expected = [b for b in _tx_bits(0xA5) for _ in range(8)] + [1] * 8
    assert line == expected


async def _drive_line(ctx, rx_pin, bits, cycles_per_bit):
    for bit in bits:
        ctx.set(rx_pin, bit)
        await ctx.tick().repeat(cycles_per_bit)


@pytest.mark.parametrize("cycles_per_bit", [31, 32, 33])  # ±3 % baud mismatch still decodes
def test_rx_framing(cycles_per_bit):
    """A bad stop bit drops the byte and flags frame_error; a short glitch is no start bit."""
    dut = UartRx(clk_hz=32 * BAUD, baud=BAUD)
    got, frame_errors = [], []

    async def line(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(20)
        await _drive_line(ctx, dut.rx, _tx_bits(0x3C), cycles_per_bit)
        bad = _tx_bits(0x81)
        bad[-1] = 0  # stop bit low
        await _drive_line(ctx, dut.rx, bad, cycles_per_bit)
        await _drive_line(ctx, dut.rx, [1] * 3, cycles_per_bit)
        await _drive_line(ctx, dut.rx, [0], 2)  # a 2-cycle glitch
        await _drive_line(ctx, dut.rx, [1] * 3, cycles_per_bit)
        await _drive_line(ctx, dut.rx, _tx_bits(0xE7) + [1], cycles_per_bit)

    async def sink(ctx):
        ctx.set(dut.o_stream.ready, 1)
        async for _, _, valid, payload, frame_error in ctx.tick().sample(
                dut.o_stream.valid, dut.o_stream.payload, dut.frame_error):
            if valid:
                got.append(payload)
            if frame_error:
                frame_errors.append(1)

    sim = Simulator(dut)
    sim.add_clock(1 / (32 * BAUD))
    sim.add_testbench(line)
    sim.add_process(sink)
    sim.run_until(60 * 33 / (32 * BAUD))
    assert got == [0x3C, 0xE7]
    assert frame_errors == [1]


def test_rx_overrun_keeps_the_held_byte():
    m = Module()
    m.submodules.tx = tx = UartTx(clk_hz=CLK, baud=BAUD)
    m.submodules.rx = rx = UartRx(clk_hz=CLK, baud=BAUD)
    m.d.comb += rx.rx.eq(tx.tx)
    overruns = []

    async def source(ctx):
        await stream_put(Clock(ctx), tx.i_stream, [1, 2, 3])

    async def monitor(ctx):
        async for _, _, overrun in ctx.tick().sample(rx.overrun):
            overruns.append(overrun)

    async def sink(ctx):
        clock = Clock(ctx)
        await clock.idle(4 * 10 * 8)
        assert await stream_get(clock, rx.o_stream, 1) == [1]

    sim = Simulator(m)
    sim.add_clock(1 / CLK)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.add_process(monitor)
    sim.run_until(5 * 10 * 8 / CLK)
    assert sum(overruns) == 2


def test_ports():
    assert set(UartRx(clk_hz=CLK, baud=BAUD).signature.members) == {
        "rx", "o_stream", "frame_error", "overrun"}
    assert set(UartTx(clk_hz=CLK, baud=BAUD).signature.members) == {"i_stream", "tx"}
    assert isinstance(UartTx(clk_hz=CLK, baud=BAUD), wiring.Component)
