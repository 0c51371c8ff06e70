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


def test_divisor_at_high_baud():
    """The board clocks at the fast rates: exact where the clock is a multiple of the rate."""
    assert [uart_divisor(12_000_000, b) for b in (3_000_000, 2_000_000, 1_000_000)] == [4, 6, 12]
    assert uart_divisor(25_000_000, 1_000_000) == 25
    assert uart_divisor(50_000_000, 2_000_000) == 25
    assert uart_divisor(36_000_000, 3_000_000) == 12


@pytest.mark.parametrize(("clk", "baud", "message"), [
    (12_000_000, 0, "baud must be a positive integer, not 0"),
    (12_000_000, True, "baud must be a positive integer, not True"),
    (300_000, 115200, "baud 115200 is too fast for a 300000 Hz clock: the UART needs at least 4 "
                      "clock cycles per bit (at most 75000 baud)"),
    (12_000_000, 4_000_000, "baud 4000000 is too fast for a 12000000 Hz clock: the UART needs "
                            "at least 4 clock cycles per bit (at most 3000000 baud)"),
    (1_000_000, 115200, "baud 115200 from a 1000000 Hz clock is off by 3.5% (divisor 9 gives "
                        "111111 baud); at most 2% is accepted"),
    (25_000_000, 3_000_000, "baud 3000000 from a 25000000 Hz clock is off by 4.2% (divisor 8 "
                            "gives 3125000 baud); at most 2% is accepted"),
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


def _sink(dut, got: list, frame_errors: list):
    """A process taking every byte ``dut`` (a UartRx) receives into ``got`` and a 1 into
    ``frame_errors`` for every cycle its ``frame_error`` is high."""
    async def sink(ctx):
        ctx.set(dut.o_stream.ready, 1)
        async for _, _, valid, payload, frame_error in ctx.tick().sample(
                dut.o_stream.valid, dut.o_stream.payload, dut.frame_error):
            if valid:
                got.append(payload)
            if frame_error:
                frame_errors.append(1)

    return sink


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

    sink = _sink(dut, got, frame_errors)

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


async def _drive_timed(ctx, rx_pin, data, bit_s, start_s):
    """The bytes of ``data`` back to back on ``rx_pin``, each bit ``bit_s`` seconds, the first
    start bit at ``start_s``: edges fall anywhere within a clock cycle."""
    ctx.set(rx_pin, 1)
    await ctx.delay(start_s)
    for byte in data:
        for bit in _tx_bits(byte):
            ctx.set(rx_pin, bit)
            await ctx.delay(bit_s)
    await ctx.delay(3 * bit_s)


def _receive_timed(clk, baud, data, rate_error, phase):
    """What UartRx(clk, baud) receives from a sender whose rate is ``baud · (1 + rate_error)``:
    the bytes and the number of frame errors."""
    dut = UartRx(clk_hz=clk, baud=baud)
    got, frame_errors = [], []

    async def line(ctx):
        await _drive_timed(ctx, dut.rx, data, 1 / (baud * (1 + rate_error)),
                           (20 + phase) / clk)

    sink = _sink(dut, got, frame_errors)

    sim = Simulator(dut)
    sim.add_clock(1 / clk)
    sim.add_testbench(line)
    sim.add_process(sink)
    sim.run_until((30 + 10 * (len(data) + 2) * clk / baud) / clk)
    return got, len(frame_errors)


@pytest.mark.parametrize("rate_error", [-0.02, 0.0, 0.02])
@pytest.mark.parametrize("phase", [0.1, 0.5, 0.9])
def test_rx_at_divisor_4_tolerates_2_percent(rate_error, phase):
    """3 Mbaud from 12 MHz (4 cycles per bit): back-to-back bytes from a sender 2 % slow or
    fast, its edges anywhere within a clock cycle, all arrive."""
    rng = random.Random(3)
    data = [0x00, 0xFF, 0x55, 0xAA, 0x80, 0x01] + [rng.randrange(256) for _ in range(10)]
    got, frame_errors = _receive_timed(12_000_000, 3_000_000, data, rate_error, phase)
    assert got == data
    assert frame_errors == 0


def test_rx_at_divisor_4_fails_5_percent_off():
    """The tolerance is real: a sender 5 % fast puts the stop-bit sample into the next start
    bit, so bytes are lost (the divisor check refuses such a rate)."""
    data = [0xFF] * 8
    got, frame_errors = _receive_timed(12_000_000, 3_000_000, data, 0.05, 0.5)
    assert got != data and frame_errors > 0


def test_loopback_at_3_mbaud_from_12_mhz():
    m = Module()
    m.submodules.tx = tx = UartTx(clk_hz=12_000_000, baud=3_000_000)
    m.submodules.rx = rx = UartRx(clk_hz=12_000_000, baud=3_000_000)
    m.d.comb += rx.rx.eq(tx.tx)
    data = list(range(0, 256, 7))
    got = []

    async def source(ctx):
        await stream_put(Clock(ctx), tx.i_stream, data)

    async def sink(ctx):
        got.extend(await stream_get(Clock(ctx), rx.o_stream, len(data)))

    sim = Simulator(m)
    sim.add_clock(1 / 12_000_000)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run_until(4 * 10 * (len(data) + 4) / 12_000_000)
    assert got == data
