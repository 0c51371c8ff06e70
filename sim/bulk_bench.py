"""cocotb bench for bulk verification: the stimulus, the stalls and the comparison all run inside
the simulated design (the ``hwgen_bulk`` harness that :func:`hwgen_sim.runner.verify_bulk`
writes), so Python only starts the clock, releases reset and waits for ``done``.

The harness reads the input beats and the expected output and score beats with $readmemh,
drives the network with LFSR-random input gaps and output backpressure, compares every
output beat (and every score beat of the layer before argmax), and counts mismatches.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge


@cocotb.test()
async def bulk(dut):
    """Run the whole stimulus; write cycles and the first mismatch to the results file."""
    with open(os.environ["HWGEN_CASE"]) as f:
        case = json.load(f)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    if not int(dut.done.value):
        await RisingEdge(dut.done)
    await FallingEdge(dut.clk)
    results = {
        "cycles": int(dut.cycles.value),
        "errors": int(dut.errors.value),
        "first_error_stream": int(dut.first_error_stream.value),
        "first_error_beat": int(dut.first_error_beat.value),
        "first_error_got": format(int(dut.first_error_got.value), "x"),
        "timed_out": bool(int(dut.timed_out.value)),
        "miscounted": int(dut.miscounted.value),
        "miscount": int(dut.miscount.value),
    }
    with open(case["results"], "w") as f:
        json.dump(results, f)
    assert results["errors"] == 0, f"{results['errors']} mismatching beats"
    assert not results["timed_out"], "the design stopped making progress"
