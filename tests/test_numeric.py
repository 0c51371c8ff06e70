"""hwgen.numeric: element formats, minimal widths, encodings, lane packing and dot bounds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.numeric import (
    TensorType,
    decode,
    dot_bounds,
    encode,
    pack_lanes,
    unpack_lanes,
    value_range,
    width_for,
)

FAST = settings(max_examples=60, deadline=None)


# --- TensorType ------------------------------------------------------------------------------

@pytest.mark.parametrize("t, rng, text", [
    (TensorType((4,), 1), (-1, 1), "bin"),
    (TensorType((4,), 1, signed=True), (-1, 1), "bin"),   # binary is never "signed"
    (TensorType((4,), 2), (0, 3), "u2"),
    (TensorType((4,), 8), (0, 255), "u8"),
    (TensorType((4,), 16), (0, 65535), "u16"),
    (TensorType((4,), 2, signed=True), (-2, 1), "s2"),
    (TensorType((4,), 8, signed=True), (-128, 127), "s8"),
    (TensorType((4,), 12, signed=True), (-2048, 2047), "s12"),
])
def test_tensor_type_range_and_describe(t, rng, text):
    assert t.range == rng
    assert t.describe() == text
    assert t.binary == (t.bits == 1)


def test_binary_tensor_type_normalizes_signed():
    t = TensorType((3,), 1, signed=True)
    assert t.signed is False
    assert t == TensorType((3,), 1)


def test_tensor_type_size():
    assert TensorType((8, 8, 3), 4).size == 192
    assert TensorType((10,), 1).size == 10
    assert isinstance(TensorType((2, 3), 1).size, int)


def test_value_range_matches_brute_force_decode():
    # Every code of a format decodes into the format's range, and both ends are reached.
    for bits, signed in itertools.product(range(1, 9), (False, True)):
        values = decode(np.arange(1 << bits), bits, signed)
        assert (int(values.min()), int(values.max())) == value_range(bits, signed), (bits, signed)


# --- width_for -------------------------------------------------------------------------------

def brute_width(lo: int, hi: int) -> tuple[int, bool]:
    """Smallest width ≥ 2 (1 is binary) that holds lo..hi, unsigned when lo ≥ 0."""
    signed = lo < 0
    for bits in itertools.count(2):
        vlo, vhi = value_range(bits, signed)
        if vlo <= lo and hi <= vhi:
            return bits, signed
    raise AssertionError  # pragma: no cover


@pytest.mark.parametrize("lo, hi, expected", [
    (0, 0, (2, False)),
    (0, 1, (2, False)),
    (0, 3, (2, False)),
    (0, 4, (3, False)),
    (0, 255, (8, False)),
    (0, 256, (9, False)),
    (-1, -1, (2, True)),
    (-1, 0, (2, True)),
    (-2, 1, (2, True)),
    (-2, 2, (3, True)),
    (-3, 1, (3, True)),
    (-128, 127, (8, True)),
    (-129, 0, (9, True)),
    (-128, 128, (9, True)),
    (-1, 1 << 15, (17, True)),
    (-(1 << 15), (1 << 15) - 1, (16, True)),
])
def test_width_for_edges(lo, hi, expected):
    assert width_for(lo, hi) == expected


@pytest.mark.parametrize("k", [1, 2, 3, 7, 8, 15, 16, 31, 40])
def test_width_for_powers_of_two(k):
    p = 1 << k
    assert width_for(0, p - 1) == (max(2, k), False)
    assert width_for(0, p) == (k + 1, False)
    assert width_for(-p, 0) == (k + 1, True)
    assert width_for(-p, p - 1) == (k + 1, True)
    assert width_for(-p - 1, 0) == (k + 2, True)
    assert width_for(-p, p) == (k + 2, True)


def test_width_for_brute_force_small():
    for lo in range(-70, 70):
        for hi in range(lo, 70):
            assert width_for(lo, hi) == brute_width(lo, hi), (lo, hi)


def test_width_for_accepts_numpy_integers():
    assert width_for(np.int64(-5), np.int64(5)) == (4, True)


def test_width_for_rejects_empty_range():
    with pytest.raises(ValueError, match=r"empty range 3\.\.2"):
        width_for(3, 2)


# --- encode / decode -------------------------------------------------------------------------

def test_binary_encoding_is_two_b_minus_one():
    np.testing.assert_array_equal(encode(np.array([-1, 1, 1, -1]), 1, False), [0, 1, 1, 0])
    np.testing.assert_array_equal(decode(np.array([0, 1]), 1, False), [-1, 1])
    assert encode(np.array([1]), 1, False).dtype == np.uint64
    assert decode(np.array([1]), 1, False).dtype == np.int64


def test_signed_twos_complement_codes():
    np.testing.assert_array_equal(encode(np.array([-1, -128, 127, 0, -2]), 8, True),
                                  [0xFF, 0x80, 0x7F, 0x00, 0xFE])
    np.testing.assert_array_equal(decode(np.array([0xFF, 0x80, 0x7F, 0]), 8, True),
                                  [-1, -128, 127, 0])
    np.testing.assert_array_equal(decode(np.array([0b10, 0b11, 0b01]), 2, True), [-2, -1, 1])


def test_unsigned_codes_are_values():
    v = np.arange(16)
    np.testing.assert_array_equal(encode(v, 4, False), v)
    np.testing.assert_array_equal(decode(v, 4, False), v)


@pytest.mark.parametrize("bits, signed", [(1, False), (2, False), (2, True), (5, True),
                                          (8, False), (8, True), (16, True), (16, False),
                                          (24, True)])
def test_encode_decode_roundtrip_full_range(bits, signed):
    lo, hi = value_range(bits, signed)
    rng = np.random.default_rng(bits)
    if bits == 1:
        v = np.array([-1, 1, 1, -1])
    else:
        v = np.concatenate([[lo, hi, 0 if lo <= 0 else lo],
                            rng.integers(lo, hi + 1, size=200)])
    codes = encode(v, bits, signed)
    assert (codes < (1 << bits)).all()
    np.testing.assert_array_equal(decode(codes, bits, signed), v)


def test_encode_is_injective_on_range():
    for bits, signed in [(3, True), (3, False), (6, True)]:
        lo, hi = value_range(bits, signed)
        codes = encode(np.arange(lo, hi + 1), bits, signed)
        assert sorted(codes.tolist()) == list(range(1 << bits))


# --- lanes -----------------------------------------------------------------------------------

def test_pack_lanes_lane_zero_in_lowest_bits():
    assert pack_lanes(np.array([[1, 0, 0, 1]]), 1) == [0b1001]
    assert pack_lanes(np.array([[0x12, 0x34], [0xFF, 0x00]]), 8) == [0x3412, 0x00FF]
    np.testing.assert_array_equal(unpack_lanes([0x3412], 8, 2), [[0x12, 0x34]])


@FAST
@given(bits=st.integers(1, 16), lanes=st.integers(1, 9), beats=st.integers(0, 6),
       seed=st.integers(0, 2**32 - 1))
def test_pack_unpack_roundtrip(bits, lanes, beats, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 1 << bits, size=(beats, lanes)).astype(np.uint64)
    words = pack_lanes(codes, bits)
    assert len(words) == beats
    assert all(0 <= w < 1 << (bits * lanes) for w in words)
    back = unpack_lanes(words, bits, lanes)
    assert back.shape == (beats, lanes)
    np.testing.assert_array_equal(back, codes)
    assert pack_lanes(back, bits) == words


def test_pack_lanes_of_encoded_signed_values():
    v = np.array([[-1, 2, -4, 3]])
    words = pack_lanes(encode(v, 3, True), 3)
    assert words == [0b011_100_010_111]
    np.testing.assert_array_equal(decode(unpack_lanes(words, 3, 4), 3, True), v)


# --- dot_bounds ------------------------------------------------------------------------------

def brute_dot_bounds(w: np.ndarray, lo: int, hi: int, values=None):
    values = list(range(lo, hi + 1)) if values is None else values
    xs = np.array(list(itertools.product(values, repeat=w.shape[1])), dtype=np.int64)
    acc = xs @ w.T
    return acc.min(axis=0), acc.max(axis=0)


def test_dot_bounds_brute_force_random():
    rng = np.random.default_rng(7)
    for _ in range(40):
        k, out = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        lo = int(rng.integers(-4, 3))
        hi = int(rng.integers(lo, 5))
        w = rng.integers(-6, 7, size=(out, k))
        got_lo, got_hi = dot_bounds(w, lo, hi)
        exp_lo, exp_hi = brute_dot_bounds(w, lo, hi)
        np.testing.assert_array_equal(got_lo, exp_lo)
        np.testing.assert_array_equal(got_hi, exp_hi)


def test_dot_bounds_binary_inputs_brute_force():
    # Binary inputs are ±1 only, but the extremes sit at the ends so -1..1 gives the same bounds.
    rng = np.random.default_rng(8)
    for _ in range(20):
        w = rng.choice([-1, 1], size=(3, int(rng.integers(1, 7))))
        got = dot_bounds(w, -1, 1)
        exp = brute_dot_bounds(w, -1, 1, values=[-1, 1])
        np.testing.assert_array_equal(got[0], exp[0])
        np.testing.assert_array_equal(got[1], exp[1])
        k = w.shape[1]
        np.testing.assert_array_equal(got[0], -k)
        np.testing.assert_array_equal(got[1], k)


def test_dot_bounds_known_values():
    w = np.array([[1, -2, 3], [0, 0, 0]])
    lo, hi = dot_bounds(w, 0, 255)
    np.testing.assert_array_equal(lo, [-510, 0])
    np.testing.assert_array_equal(hi, [1020, 0])
    lo, hi = dot_bounds(w, -128, 127)
    np.testing.assert_array_equal(lo, [-128 - 254 - 384, 0])
    np.testing.assert_array_equal(hi, [127 + 256 + 381, 0])
