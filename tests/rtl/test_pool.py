"""WindowMax (and, once the window generator lands, MaxPoolUnit) against NumPy maxima."""

import numpy as np
import pytest
from amaranth import signed, unsigned

from hwgen.numeric import decode, encode, pack_lanes, unpack_lanes
from hwgen.rtl.pool import WindowMax
from hwgen.rtl.testbench import run_stream


@pytest.mark.parametrize("bits, is_signed, lanes, positions, chunks", [
    (1, False, 4, 4, 2),
    (8, False, 2, 9, 3),
    (6, True, 3, 4, 1),
])
def test_window_max_is_the_lanewise_maximum(bits, is_signed, lanes, positions, chunks):
    rng = np.random.default_rng(bits)
    groups = 5
    if bits == 1:
        values = rng.choice([-1, 1], size=(groups, positions, chunks, lanes), p=[0.7, 0.3])
    else:
        lo, hi = (-(1 << bits - 1), (1 << bits - 1) - 1) if is_signed else (0, (1 << bits) - 1)
        values = rng.integers(lo, hi + 1, size=(groups, positions, chunks, lanes))
    shape = unsigned(1) if bits == 1 else (signed(bits) if is_signed else unsigned(bits))
    dut = WindowMax(shape, lanes=lanes, positions=positions, chunks=chunks)
    beats = pack_lanes(encode(values, bits, is_signed).reshape(-1, lanes), bits)
    want = values.max(axis=1)  # (groups, chunks, lanes)
    run = run_stream(dut, beats, groups * chunks, gaps=0.3, backpressure=0.4, seed=bits)
    got = decode(unpack_lanes(run.outputs, bits, lanes), bits, is_signed)
    assert np.array_equal(got.reshape(want.shape), want)
    clean = run_stream(dut, beats, groups * chunks)
    assert clean.in_times == list(range(len(beats)))  # one beat per cycle, never throttled
