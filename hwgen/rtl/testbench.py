"""Amaranth-simulator helpers for stream components: drivers, stalls, a one-call runner.

These are the single home of the stream test helpers used across tests/ (the cocotb benches in
sim/ have their own, as they run inside the HDL simulator).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from amaranth import Value
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from ..numeric import TensorType, decode, encode, pack_lanes, unpack_lanes

__all__ = ["Stalls", "Clock", "stream_put", "stream_get", "load_weights", "StreamRun",
           "run_stream", "StreamsRun", "run_streams", "tensor_beats", "tensor_values",
           "check_ready_from_state"]


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

    While ``valid`` is low the payload holds junk (a random pattern), as the stream contract
    allows, so a unit that uses a payload it was not given shows it. The cycle of each transfer
    (counted by ``clock``, first edge = cycle 0) goes to ``times``.
    """
    stalls = stalls or Stalls()
    payload = Value.cast(stream.payload)
    junk = random.Random(len(beats))
    for beat in beats:
        clock.ctx.set(payload, junk.getrandbits(len(payload)))
        await clock.idle(stalls.next())
        clock.ctx.set(stream.valid, 1)
        clock.ctx.set(payload, beat)
        await clock.wait(stream.ready)
        clock.ctx.set(stream.valid, 0)
        if times is not None:
            times.append(clock.now - 1)
    clock.ctx.set(payload, junk.getrandbits(len(payload)))


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


def tensor_beats(values, t: TensorType, lanes: int) -> list[int]:
    """Element values (any shape, channels-last order) to beat payloads of ``lanes`` elements
    of ``t``: element [0] in the lowest bits, binary ±1 as bit 1/0, signed as two's
    complement."""
    codes = encode(np.asarray(values).reshape(-1), t.bits, t.signed)
    return pack_lanes(codes.reshape(-1, lanes), t.bits)


def tensor_values(words: list[int], t: TensorType, lanes: int) -> np.ndarray:
    """Inverse of :func:`tensor_beats`: beat payloads to a flat array of element values."""
    return decode(unpack_lanes(words, t.bits, lanes), t.bits, t.signed).reshape(-1)


@dataclass
class StreamRun:
    """What :func:`run_stream` saw: output payloads and the cycle of every transfer."""

    outputs: list[int]
    in_times: list[int] = field(default_factory=list)
    out_times: list[int] = field(default_factory=list)


@dataclass
class StreamsRun:
    """What :func:`run_streams` saw, by port name: output payloads and transfer cycles."""

    outputs: dict[str, list[int]]
    in_times: dict[str, list[int]]
    out_times: dict[str, list[int]]


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
               load: list[int] | None = None, stall_limit: int = 20_000,
               platform=None, checks=()) -> StreamRun:
    """Simulate ``dut`` (``i_stream`` → ``o_stream``) on ``beats``; collect ``out_count`` beats.

    ``in_times`` and ``out_times`` are the cycles (first clock edge = 0) of every transfer.
    With ``load`` (SPRAM image halfwords), the weights are loaded first (see
    :func:`load_weights`); the times still count from the first edge.

    Two checks make a wrong beat count fail instead of hang or pass: a watchdog raises
    ``AssertionError`` when no beat has moved in or out for ``stall_limit`` cycles (a unit that
    sends too few beats), and after the last expected beat the output stays ready for twice
    the longest gap seen between output beats (at least 64 cycles): a beat offered then is an
    extra beat and fails the run. ``platform`` is what ``dut`` is elaborated with (default
    none); ``checks`` as for :func:`run_streams`.
    """
    run = run_streams(dut, {"i_stream": beats}, {"o_stream": out_count}, gaps=gaps,
                      backpressure=backpressure, seed=seed, vcd=vcd, load=load,
                      stall_limit=stall_limit, platform=platform, checks=checks)
    return StreamRun(run.outputs["o_stream"], run.in_times["i_stream"],
                     run.out_times["o_stream"])


def run_streams(dut, inputs: dict[str, list[int]], outputs: dict[str, int], *,
                gaps: float = 0.0, backpressure: float = 0.0, seed: int = 0,
                vcd: str | None = None, load: list[int] | None = None,
                stall_limit: int = 20_000, platform=None, checks=()) -> StreamsRun:
    """Simulate ``dut`` with several input and output streams at once.

    ``inputs`` maps a port name of ``dut`` (``"i0_stream"``) to the raw payloads driven into
    it, ``outputs`` a port name to the number of beats collected from it. Every port has its
    own driver and its own stall pattern: input k (in the dict's order) idles with rate
    ``gaps`` and seed ``seed + 2k``, output k holds ready low with rate ``backpressure`` and
    seed ``seed + 2k + 1`` (so one input and one output stall as :func:`run_stream`'s do).
    The times are the cycles (first clock edge = 0) of every transfer, port by port; ``load``
    is written before the first input's beats as in :func:`run_stream`, and the other ports
    wait for it.

    The checks of :func:`run_stream` apply to every port: the watchdog fails the run when no
    beat has moved on any port for ``stall_limit`` cycles, and each output, after its last
    expected beat, stays ready for twice the longest gap seen between its beats (at least
    64 cycles) and fails the run on any beat offered then. ``platform`` is what ``dut``
    is elaborated with (default none). Each of ``checks`` is called with the elaborated
    design (a ``Fragment``) and returns testbenches that run in the background beside the
    streams; an ``AssertionError`` in one fails the run.
    """
    if not inputs or not outputs:
        raise ValueError("run_streams needs at least one input and one output stream")
    result = StreamsRun(outputs={name: [] for name in outputs},
                        in_times={name: [] for name in inputs},
                        out_times={name: [] for name in outputs})
    loaded = [not load]
    finished: set[str] = set()
    extra: dict[str, list[int]] = {}

    async def wait_loaded(clock):
        while not loaded[0]:
            await clock.idle(1)

    def source(k: int, name: str):
        async def drive(ctx):
            clock = Clock(ctx)
            if k == 0 and load:
                await load_weights(clock, dut, load)
                loaded[0] = True
            await wait_loaded(clock)
            await stream_put(clock, getattr(dut, name), inputs[name],
                             Stalls(gaps, seed + 2 * k), result.in_times[name])
        return drive

    def sink(k: int, name: str):
        async def collect(ctx):
            clock = Clock(ctx)
            port = getattr(dut, name)
            await wait_loaded(clock)
            result.outputs[name] = await stream_get(
                clock, port, outputs[name], Stalls(backpressure, seed + 2 * k + 1),
                result.out_times[name])
            seen = await _watch_for_extra(ctx, port, result.out_times[name])
            if seen:
                extra[name] = seen
            finished.add(name)
        return collect

    async def watchdog(ctx):
        clock = Clock(ctx)
        moved, last = 0, 0
        while len(finished) < len(outputs):
            await clock.idle(1)
            now = _moved(result.in_times) + _moved(result.out_times)
            if now != moved or not loaded[0]:  # weights loading is progress too
                moved, last = now, clock.now
            elif clock.now - last >= stall_limit:
                raise AssertionError(_stall_message(stall_limit, result, inputs, outputs))

    design = Fragment.get(dut, platform)
    sim = Simulator(design)
    sim.add_clock(1e-6)
    for check in checks:
        for bench in check(design):
            sim.add_testbench(bench, background=True)
    for k, name in enumerate(inputs):
        sim.add_testbench(source(k, name))
    for k, name in enumerate(outputs):
        sim.add_testbench(sink(k, name))
    sim.add_testbench(watchdog, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    if extra:
        several = len(outputs) > 1
        raise AssertionError("; ".join(
            f"{name + ': ' if several else ''}{len(seen)} beat(s) after the {outputs[name]} "
            f"expected: {seen[:8]}" for name, seen in extra.items()))
    return result


async def _watch_for_extra(ctx, port, times: list[int]) -> list[int]:
    """Hold ``port`` ready for twice its longest gap between beats (≥ 64 cycles); the
    payloads offered meanwhile."""
    gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0)
    ctx.set(port.ready, 1)
    payload = Value.cast(port.payload)
    seen = []
    for _ in range(max(64, 2 * gap)):
        _, _, valid, value = await ctx.tick().sample(port.valid, payload)
        if valid:
            seen.append(value)
    return seen


def _moved(times: dict[str, list[int]]) -> int:
    return sum(len(t) for t in times.values())


def _stall_message(limit: int, result: StreamsRun, inputs: dict[str, list[int]],
                   outputs: dict[str, int]) -> str:
    message = (f"no beat moved for {limit} cycles: {_moved(result.in_times)} of "
               f"{sum(len(b) for b in inputs.values())} input beats taken, "
               f"{_moved(result.out_times)} of {sum(outputs.values())} output beats sent")
    if len(inputs) + len(outputs) > 2:
        ports = [f"{name} {len(result.in_times[name])}/{len(beats)}"
                 for name, beats in inputs.items()]
        ports += [f"{name} {len(result.out_times[name])}/{count}"
                  for name, count in outputs.items()]
        message += f" ({', '.join(ports)})"
    return message


def check_ready_from_state(dut, inputs: list, outputs: list, *, cycles: int = 200,
                           seed: int = 0) -> None:
    """Fails unless every input's ``ready`` depends on registered state only.

    Drives random valids, payloads and readies for ``cycles`` cycles; at every cycle, before
    the edge, flips each output's ``ready`` and each input's ``valid`` in turn and raises
    ``AssertionError`` when any input's ``ready`` changes with it (a combinational path).
    """
    rng = random.Random(seed)
    failures: list[str] = []

    async def bench(ctx):
        for cycle in range(cycles):
            for port in inputs:
                ctx.set(port.valid, rng.random() < 0.7)
                payload = Value.cast(port.payload)
                ctx.set(payload, rng.getrandbits(len(payload)))
            for port in outputs:
                ctx.set(port.ready, rng.random() < 0.7)
            before = [ctx.get(port.ready) for port in inputs]
            for signal in [p.ready for p in outputs] + [p.valid for p in inputs]:
                value = ctx.get(signal)
                ctx.set(signal, not value)
                if [ctx.get(port.ready) for port in inputs] != before:
                    failures.append(f"cycle {cycle}: an input's ready follows {signal.name}")
                ctx.set(signal, value)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    if failures:
        raise AssertionError(f"{len(failures)} combinational path(s): {failures[:4]}")
