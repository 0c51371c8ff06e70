# amaranth: UnusedElaboratable=no
"""ChannelReduce (the maxpool and global-sum-pool reducer) against NumPy maxima and sums; the
maxpool unit as a whole runs in tests/rtl/test_network.py."""

import re

import numpy as np
import pytest
from amaranth import signed, unsigned

from hwgen.numeric import TensorType, decode, encode, pack_lanes, unpack_lanes
from hwgen.rtl.layers.global_sum_pool import global_sum_unit
from hwgen.rtl.layers.maxpool import MaxPoolUnit
from hwgen.rtl.pool import ChannelReduce
from hwgen.rtl.testbench import run_stream


def _values(rng, bits, is_signed, shape):
    if bits == 1:
        return rng.choice([-1, 1], size=shape, p=[0.7, 0.3])
    lo, hi = (-(1 << bits - 1), (1 << bits - 1) - 1) if is_signed else (0, (1 << bits) - 1)
    return rng.integers(lo, hi + 1, size=shape)


def _shape(bits, is_signed):
    return unsigned(1) if bits == 1 else (signed(bits) if is_signed else unsigned(bits))


@pytest.mark.parametrize("op", ["max", "sum"])
@pytest.mark.parametrize("bits, is_signed, lanes, positions, chunks", [
    (1, False, 4, 4, 2),
    (8, False, 2, 9, 3),
    (6, True, 3, 4, 1),
    (1, False, 3, 35, 1),
])
def test_reduce_is_the_lanewise_maximum_or_sum(op, bits, is_signed, lanes, positions, chunks):
    rng = np.random.default_rng(bits + positions)
    groups = 5
    values = _values(rng, bits, is_signed, (groups, positions, chunks, lanes))
    out_bits = bits if op == "max" else 16
    out_signed = is_signed if op == "max" else True
    dut = ChannelReduce(_shape(bits, is_signed), lanes=lanes, positions=positions,
                        chunks=chunks, op=op, out_shape=_shape(out_bits, out_signed))
    beats = pack_lanes(encode(values, bits, is_signed).reshape(-1, lanes), bits)
    want = values.max(axis=1) if op == "max" else values.sum(axis=1)
    run = run_stream(dut, beats, groups * chunks, gaps=0.3, backpressure=0.4, seed=bits)
    got = decode(unpack_lanes(run.outputs, out_bits, lanes), out_bits, out_signed)
    assert np.array_equal(got.reshape(want.shape), want)
    clean = run_stream(dut, beats, groups * chunks)
    assert clean.in_times == list(range(len(beats)))  # one beat per cycle, never throttled


def test_unknown_op_is_refused():
    with pytest.raises(ValueError, match="op must be"):
        ChannelReduce(unsigned(1), lanes=1, positions=2, chunks=1, op="min")


@pytest.mark.parametrize("kwargs, message", [
    (dict(lanes=0), "lanes must be a positive integer, not 0"),
    (dict(positions=-1), "positions must be a positive integer, not -1"),
    (dict(chunks=1.5), "chunks must be a positive integer, not 1.5"),
    (dict(op="sum"), "out_shape is required with op='sum'"),
])
def test_channel_reduce_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ChannelReduce(unsigned(4), **(dict(lanes=2, positions=4, chunks=1) | kwargs))


def test_pool_units_reject_bad_arguments():
    image, flat = TensorType((4, 4, 6), 4, False), TensorType((96,), 4, False)
    for make, message in [
        (lambda: MaxPoolUnit(image, size=2, stride=2, lanes=0),
         "lanes must be a positive integer, not 0"),
        (lambda: MaxPoolUnit(flat, size=2, stride=2, lanes=2),
         "in_type must be an (H, W, C) image, not shape (96,)"),
        (lambda: MaxPoolUnit(image, size=2, stride=2, lanes=4),
         "lanes 4 do not divide channels 6"),
        (lambda: global_sum_unit(image, TensorType((6,), 10, True), lanes=4),
         "lanes 4 does not divide the 6 channels"),
        (lambda: global_sum_unit(flat, TensorType((6,), 10, True), lanes=2),
         "in_type must be an (H, W, C) image, not shape (96,)"),
    ]:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            make()
