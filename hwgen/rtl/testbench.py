"""Amaranth-simulator helpers for stream components: drivers, stalls, a one-call runner.

These are the single home of the stream test helpers used across tests/ (the cocotb benches in
sim/ have their own, as they run inside the HDL simulator).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from amaranth import Value
from amaranth.sim import Simulator

__all__ = ["Stalls", "Clock", "stream_put", "stream_get", "load_weights", "StreamRun",
           "run_stream"]


class Stalls:
    """Idle cycles inserted before each beat: none, or random with probability ``rate``."""

    def __init__(self, rate: float = 0.0, seed: int = 0):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"stall rate must be in [0, 1), not {rate!r}")
        self.rate = rate
        self._rng = random.Random(seed)

    def next(self) -> int:
        n = 0
        while self.rate and self._rng.random() < self.rate:
            n += 1
        return n


class Clock:
    """Counts the clock edges one testbench has awaited (its own notion of the current cycle)."""

    def __init__(self, ctx):
        self.ctx, self.now = ctx, 0

    async def idle(self, cycles: int) -> None:
        for _ in range(cycles):
            await self.ctx.tick()
            self.now += 1

    async def wait(self, condition, *sampled) -> tuple:
        """Tick until ``condition`` holds at an edge; values of ``sampled`` at that edge."""
        while True:
            _, _, *values, done = await self.ctx.tick().sample(*sampled, condition)
            self.now += 1
            if done:
                return tuple(values)


async def stream_put(clock: Clock, stream, beats: list[int], stalls: Stalls | None = None,
                     times: list[int] | None = None) -> None:
    """Drive raw payload integers into ``stream``, idling ``stalls`` cycles before each beat.

    The cycle of each transfer (counted by ``clock``, first edge = cycle 0) goes to ``times``.
    """
    stalls = stalls or Stalls()
    payload = Value.cast(stream.payload)
    for beat in beats:
        await clock.idle(stalls.next())
        clock.ctx.set(stream.valid, 1)
        clock.ctx.set(payload, beat)
        await clock.wait(stream.ready)
        clock.ctx.set(stream.valid, 0)
        if times is not None:
            times.append(clock.now - 1)


async def stream_get(clock: Clock, stream, count: int, stalls: Stalls | None = None,
                     times: list[int] | None = None) -> list[int]:
    """Take ``count`` raw payloads from ``stream``, holding ready low ``stalls`` cycles each."""
    stalls = stalls or Stalls()
    payload = Value.cast(stream.payload)
    out = []
    for _ in range(count):
        await clock.idle(stalls.next())
        clock.ctx.set(stream.ready, 1)
        (value,) = await clock.wait(stream.valid, payload)
        clock.ctx.set(stream.ready, 0)
        out.append(value)
        if times is not None:
            times.append(clock.now - 1)
    return out


@dataclass
class StreamRun:
    """What :func:`run_stream` saw: output payloads and the cycle of every transfer."""

    outputs: list[int]
    in_times: list[int] = field(default_factory=list)
    out_times: list[int] = field(default_factory=list)


async def load_weights(clock: Clock, dut, halfwords: list[int]) -> None:
    """Write a SPRAM weight image into a NetworkTop's ``load_*`` ports, one halfword a cycle."""
    for i, halfword in enumerate(halfwords):
        clock.ctx.set(dut.load_valid, 1)
        clock.ctx.set(dut.load_restart, i == 0)
        clock.ctx.set(dut.load_data, halfword)
        await clock.idle(1)
    clock.ctx.set(dut.load_valid, 0)


def run_stream(dut, beats: list[int], out_count: int, *, gaps: float = 0.0,
               backpressure: float = 0.0, seed: int = 0, vcd: str | None = None,
               load: list[int] | None = None, stall_limit: int = 20_000) -> StreamRun:
    """Simulate ``dut`` (``i_stream`` → ``o_stream``) on ``beats``; collect ``out_count`` beats.

    ``in_times`` and ``out_times`` are the cycles (first clock edge = 0) of every transfer.
    With ``load`` (SPRAM image halfwords), the weights are loaded first (see
    :func:`load_weights`); the times still count from the first edge.

    Two checks make a wrong beat count fail instead of hang or pass: a watchdog raises
    ``AssertionError`` when no beat has moved in or out for ``stall_limit`` cycles (a unit that
    sends too few beats), and after the last expected beat the output stays ready for twice
    the longest gap seen between output beats (at least 64 cycles): a beat offered then is an
    extra beat and fails the run.
    """
    result = StreamRun(outputs=[])
    loaded = [not load]
    done = [False]
    extra: list[int] = []

    async def source(ctx):
        clock = Clock(ctx)
        if load:
            await load_weights(clock, dut, load)
            loaded[0] = True
        await stream_put(clock, dut.i_stream, beats, Stalls(gaps, seed), result.in_times)

    async def sink(ctx):
        clock = Clock(ctx)
        while not loaded[0]:
            await clock.idle(1)
        result.outputs = await stream_get(clock, dut.o_stream, out_count,
                                          Stalls(backpressure, seed + 1), result.out_times)
        times = result.out_times
        gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0)
        ctx.set(dut.o_stream.ready, 1)
        payload = Value.cast(dut.o_stream.payload)
        for _ in range(max(64, 2 * gap)):
            _, _, valid, value = await ctx.tick().sample(dut.o_stream.valid, payload)
            if valid:
                extra.append(value)
        done[0] = True

    async def watchdog(ctx):
        clock = Clock(ctx)
        moved, last = 0, 0
        while not done[0]:
            await clock.idle(1)
            now = len(result.in_times) + len(result.out_times)
            if now != moved or not loaded[0]:  # weights loading is progress too
                moved, last = now, clock.now
            elif clock.now - last >= stall_limit:
                raise AssertionError(
                    f"no beat moved for {stall_limit} cycles: {len(result.in_times)} of "
                    f"{len(beats)} input beats taken, {len(result.out_times)} of {out_count} "
                    f"output beats sent")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.add_testbench(watchdog, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    if extra:
        raise AssertionError(f"{len(extra)} beat(s) after the {out_count} expected: "
                             f"{extra[:8]}")
    return result
