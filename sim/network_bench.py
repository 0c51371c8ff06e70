"""cocotb bench for a network top generated with taps (``NetworkTop(network, taps=True)``).

Runs inside the HDL simulator; started by :mod:`hwgen_sim.runner`, which writes the case file
named by ``HWGEN_CASE`` (JSON: stimulus beats, every tap's expected beats, stall rates, the cost
model's cycle figures) and reads back the results file the bench writes.

Two phases:

1. timing: the first frames back to back with the input always valid and the output always
   ready; the first frame's latency and the spacing of the last frames' outputs are measured;
2. stress: every frame, with random input gaps and random output backpressure.

In both, every beat on every tap is compared with the golden model's beat, in order, and when
the last output beat has left every tap must have sent exactly its expected beats (a tap that
never fired is a mismatch, not a pass). One clock-edge wait per cycle drives, samples and
checks everything.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly


class Tap:
    """Expected beats of one stream and a cursor over them."""

    def __init__(self, spec: dict, dut):
        self.name = spec["name"]
        self.lanes, self.bits, self.signed = spec["lanes"], spec["bits"], spec["signed"]
        self.frame_beats = spec["frame_beats"]
        self.expected = [int(b, 16) for b in spec["beats"]]
        self.fire = getattr(dut, spec["fire"]) if spec.get("fire") else None
        self.payload = getattr(dut, spec["payload"])
        self.seen = 0

    def element(self, word: int, lane: int) -> int:
        mask = (1 << self.bits) - 1
        v = (word >> (lane * self.bits)) & mask
        if self.bits == 1:
            return 2 * v - 1
        if self.signed and v >= 1 << (self.bits - 1):
            v -= 1 << self.bits
        return v

    def check(self, got: int, frame_offset: int) -> dict | None:
        """Compare the next beat; a mismatch as (layer, frame, element, expected, got)."""
        index = self.seen
        self.seen += 1
        if index >= len(self.expected):
            return {"layer": self.name, "frame": None, "index": None, "expected": None,
                    "got": got, "note": "more beats than expected"}
        want = self.expected[index]
        if got == want:
            return None
        for lane in range(self.lanes):
            if self.element(got, lane) != self.element(want, lane):
                beat_in_frame = index % self.frame_beats
                return {"layer": self.name, "frame": frame_offset + index // self.frame_beats,
                        "index": beat_in_frame * self.lanes + lane,
                        "expected": self.element(want, lane), "got": self.element(got, lane)}
        raise AssertionError("unreachable")


async def run_phase(dut, case: dict, beats: list[int], taps: list[Tap], out_tap: Tap, *,
                    gaps: float, backpressure: float, rng: random.Random, frame_offset: int,
                    max_cycles: int) -> dict:
    """Stream ``beats`` in and every expected output out; return times and mismatches.

    The phase ends when the output, every input beat and every tap's beats are through: a
    layer whose last rows no later layer reads (a pool or a strided window dropping them)
    may still be sending them after the network's last output. Once the output and the
    input are through, a tap still missing beats is given ``quiet`` cycles without any tap
    firing before its count is judged."""
    out_needed = len(out_tap.expected)
    quiet = case["cycles_per_inference"] + case["latency_bound"] + 100
    fed, cycle, last_fire = 0, 0, 0
    in_times, out_times, mismatches = [], [], []
    valid = 0

    def through() -> bool:
        if out_tap.seen < out_needed or fed < len(beats):
            return False
        return all(t.seen >= len(t.expected) for t in taps) or cycle - last_fire > quiet

    while not through():
        await FallingEdge(dut.clk)
        if not valid and fed < len(beats) and rng.random() >= gaps:
            valid = 1
            dut.i_stream__payload.value = beats[fed]
        dut.i_stream__valid.value = valid
        ready = int(rng.random() >= backpressure)
        dut.o_stream__ready.value = ready
        await ReadOnly()
        if valid and int(dut.i_stream__ready.value):
            in_times.append(cycle)
            fed += 1
            valid = 0
        for tap in taps:
            if int(tap.fire.value):
                last_fire = cycle
                bad = tap.check(int(tap.payload.value), frame_offset)
                if bad:
                    mismatches.append(bad)
        if ready and int(dut.o_stream__valid.value):
            out_times.append(cycle)
            bad = out_tap.check(int(dut.o_stream__payload.value), frame_offset)
            if bad:
                mismatches.append(bad)
        cycle += 1
        if mismatches or cycle > max_cycles:
            break
    if not mismatches and cycle <= max_cycles:
        for tap in taps:
            if tap.seen != len(tap.expected):
                mismatches.append({"layer": tap.name, "frame": "all", "index": "beat count",
                                   "expected": len(tap.expected), "got": tap.seen})
    await FallingEdge(dut.clk)
    dut.i_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    return {"cycles": cycle, "in_times": in_times, "out_times": out_times,
            "mismatches": mismatches, "timed_out": cycle > max_cycles}


def _taps(case: dict, dut, frames: slice) -> tuple[list[Tap], Tap]:
    taps = []
    for spec in case["taps"]:
        per = spec["frame_beats"]
        part = dict(spec, beats=spec["beats"][frames.start * per:frames.stop * per])
        taps.append(Tap(part, dut))
    out_spec = case["output"]
    per = out_spec["frame_beats"]
    out = Tap(dict(out_spec, beats=out_spec["beats"][frames.start * per:frames.stop * per]), dut)
    return taps, out


@cocotb.test()
async def network(dut):
    """Every tap bit-exact against the golden model; cycles against the cost model."""
    with open(os.environ["HWGEN_CASE"]) as f:
        case = json.load(f)
    rng = random.Random(case["seed"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    load = case.get("load", [])
    if load:
        dut.load_valid.value = 0
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    # SPRAM weights: written once; the memory keeps them across the reset between phases
    for i, halfword in enumerate(load):
        dut.load_valid.value = 1
        dut.load_restart.value = int(i == 0)
        dut.load_data.value = halfword
        await FallingEdge(dut.clk)
    if load:
        dut.load_valid.value = 0

    beats = [int(b, 16) for b in case["input"]["beats"]]
    per_in = case["input"]["frame_beats"]
    frames = case["frames"]
    budget = case["cycles_per_inference"] * 4 + case["latency_bound"] * 4 + 1000

    results = {"frames": frames}
    timing_frames = min(case["timing_frames"], frames)
    taps, out = _taps(case, dut, slice(0, timing_frames))
    timing = await run_phase(dut, case, beats[:timing_frames * per_in], taps, out, gaps=0.0,
                             backpressure=0.0, rng=rng, frame_offset=0,
                             max_cycles=budget * timing_frames)
    outs = timing["out_times"]
    per_out = case["output"]["frame_beats"]
    frame_ends = outs[per_out - 1::per_out]
    results["latency_cycles"] = frame_ends[0] - timing["in_times"][0] if frame_ends else None
    results["cycles_per_inference"] = (frame_ends[-1] - frame_ends[-2]
                                       if len(frame_ends) >= 2 else None)
    results["timing_mismatches"] = timing["mismatches"]

    # Reset between phases so the stress phase starts from the first frame again.
    dut.rst.value = 1
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    taps, out = _taps(case, dut, slice(0, frames))
    stress = await run_phase(dut, case, beats, taps, out, gaps=case["gaps"],
                             backpressure=case["backpressure"], rng=rng, frame_offset=0,
                             max_cycles=budget * frames * 4)
    results["stress_cycles"] = stress["cycles"]
    results["mismatches"] = stress["mismatches"]
    results["timed_out"] = stress["timed_out"] or timing["timed_out"]
    results["frames_checked"] = out.seen // per_out
    with open(case["results"], "w") as f:
        json.dump(results, f, indent=1)
    assert not (results["mismatches"] or results["timing_mismatches"]), \
        f"mismatch: {(results['timing_mismatches'] or results['mismatches'])[0]}"
    assert not results["timed_out"], "simulation stalled (no progress within the cycle budget)"
