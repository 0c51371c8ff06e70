# amaranth: UnusedElaboratable=no
"""WidthConverter: order kept, any stall pattern, full rate on the narrow side; StreamFifo's
order and latency; the constructors' argument checks."""

import re

import numpy as np
import pytest
from amaranth import unsigned
from amaranth.lib import stream

from hwgen.numeric import pack_lanes, unpack_lanes
from hwgen.rtl.stream import Fork, Passthrough, StreamFifo, WidthConverter
from hwgen.rtl.testbench import run_stream


def convert(a, b, elements, **stalls):
    rng = np.random.default_rng(a * 31 + b)
    data = rng.integers(0, 256, size=elements)
    dut = WidthConverter(unsigned(8), in_lanes=a, out_lanes=b)
    got = run_stream(dut, pack_lanes(data.reshape(-1, a), 8), elements // b, **stalls)
    return data, got


@pytest.mark.parametrize("a,b", [(1, 4), (4, 1), (3, 2), (2, 3), (5, 5), (8, 6), (1, 1), (6, 4)])
def test_order_under_stalls(a, b):
    elements = a * b * 5
    data, got = convert(a, b, elements, gaps=0.4, backpressure=0.4, seed=a + b)
    assert unpack_lanes(got.outputs, 8, b).reshape(-1).tolist() == data.tolist()


@pytest.mark.parametrize("a,b", [(1, 4), (4, 1), (3, 2), (2, 3), (8, 6), (7, 3)])
def test_full_rate(a, b):
    """With no stalls the narrow side moves a beat every cycle once started."""
    elements = a * b * 6
    _, got = convert(a, b, elements)
    narrow = got.in_times if a < b else got.out_times
    assert np.all(np.diff(narrow) == 1)


def test_rejects_bad_lanes():
    with pytest.raises(ValueError, match="in_lanes must be a positive integer, not 0"):
        WidthConverter(unsigned(8), in_lanes=0, out_lanes=2)


def test_stream_fifo_keeps_order_and_answers_two_cycles_later():
    dut = StreamFifo(stream.Signature(unsigned(8)), 4)
    got = run_stream(dut, list(range(10)), 10)
    assert got.outputs == list(range(10))
    assert got.out_times == [t + 2 for t in got.in_times]
    stalled = run_stream(dut, list(range(10)), 10, gaps=0.3, backpressure=0.6, seed=3)
    assert stalled.outputs == list(range(10))


SIGNATURE = stream.Signature(unsigned(8))


@pytest.mark.parametrize("make, error, message", [
    (lambda: WidthConverter(unsigned(8), in_lanes=2, out_lanes=True), ValueError,
     "out_lanes must be a positive integer, not True"),
    (lambda: Passthrough(unsigned(8)), TypeError,
     "signature must be a stream.Signature, not unsigned(8)"),
    (lambda: Fork(SIGNATURE, 0), ValueError, "count must be a positive integer, not 0"),
    (lambda: Fork(8, 2), TypeError, "signature must be a stream.Signature, not 8"),
    (lambda: StreamFifo(SIGNATURE, 2.0), ValueError, "depth must be a positive integer, not 2.0"),
    (lambda: StreamFifo(None, 2), TypeError, "signature must be a stream.Signature, not None"),
])
def test_constructors_reject_bad_arguments(make, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        make()
