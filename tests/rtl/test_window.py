# amaranth: UnusedElaboratable=no
"""SlidingWindow against the golden model's windows(), with stalls, odd sizes and padding."""

import numpy as np
import pytest
from amaranth import signed, unsigned
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.golden import windows
from hwgen.numeric import decode, encode, pack_lanes, unpack_lanes
from hwgen.rtl.testbench import run_stream
from hwgen.rtl.window import SlidingWindow, WindowGeometry

CASES = [
    # height, width, channels, lanes, kernel, stride, pads (top, left, bottom, right)
    (5, 7, 3, 3, 3, 1, (1, 1, 1, 1)),
    (5, 7, 6, 2, 3, 2, (0, 0, 0, 0)),
    (7, 5, 2, 1, 3, 2, (1, 1, 1, 1)),
    (6, 6, 4, 4, 2, 2, (0, 0, 0, 0)),
    (4, 5, 5, 5, 1, 1, (0, 0, 0, 0)),
    (7, 7, 3, 1, 5, 1, (2, 2, 2, 2)),
    (5, 6, 2, 2, 3, 2, (0, 0, 1, 1)),
    (9, 9, 1, 1, 3, 3, (0, 0, 0, 0)),
    # a row before the last already reaches into the bottom padding (its need is clamped)
    (6, 5, 2, 2, 3, 2, (0, 1, 2, 0)),
]


def _frames(geometry, bits, is_signed, count, rng):
    shape = (count, geometry.height, geometry.width, geometry.channels)
    if bits == 1:
        return rng.choice([-1, 1], size=shape)
    lo, hi = (-(1 << bits - 1), (1 << bits - 1) - 1) if is_signed else (0, (1 << bits) - 1)
    return rng.integers(lo, hi + 1, size=shape)


@pytest.mark.parametrize("bits, is_signed", [(1, False), (8, False), (4, True)])
@pytest.mark.parametrize("case", CASES)
def test_windows_match_the_golden_model_under_stalls(case, bits, is_signed):
    h, w, c, lanes, k, s, pads = case
    geometry = WindowGeometry(h, w, c, lanes, k, s, pads)
    rng = np.random.default_rng(h * 100 + w * 10 + k + bits)
    frames = 3
    x = _frames(geometry, bits, is_signed, frames, rng)
    pad_value = 1 if bits == 1 else int(rng.integers(-3, 3) if is_signed else 5)
    shape = unsigned(1) if bits == 1 else (signed(bits) if is_signed else unsigned(bits))
    pad_code = int(encode(np.array(pad_value), bits, is_signed))
    dut = SlidingWindow(shape, geometry, pad_code=pad_code)
    beats = pack_lanes(encode(x, bits, is_signed).reshape(-1, lanes), bits)
    want = windows(x, k, s, pads, pad_value).reshape(-1, lanes)
    out_count = geometry.out_beats * frames
    assert want.shape[0] == out_count
    run = run_stream(dut, beats, out_count, gaps=0.3, backpressure=0.3, seed=k + bits)
    got = decode(unpack_lanes(run.outputs, bits, lanes), bits, is_signed)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("case", CASES)
def test_windows_wait_for_their_rows_on_a_slow_input(case):
    """An input far slower than the reader (nine cycles in ten idle) and an output always
    ready: the reader catches up with the writer at every row, so a window that started
    before the last row it reads was written would read that row's slot stale."""
    h, w, c, lanes, k, s, pads = case
    geometry = WindowGeometry(h, w, c, lanes, k, s, pads)
    rng = np.random.default_rng(h * 10 + w + k)
    frames = 2
    x = _frames(geometry, 4, True, frames, rng)
    dut = SlidingWindow(signed(4), geometry, pad_code=int(encode(np.array(-2), 4, True)))
    beats = pack_lanes(encode(x, 4, True).reshape(-1, lanes), 4)
    want = windows(x, k, s, pads, -2).reshape(-1, lanes)
    run = run_stream(dut, beats, geometry.out_beats * frames, gaps=0.9, seed=k)
    assert np.array_equal(decode(unpack_lanes(run.outputs, 4, lanes), 4, True), want)


@pytest.mark.parametrize("case", CASES)
def test_back_to_back_frames_take_the_modelled_cycles(case):
    h, w, c, lanes, k, s, pads = case
    geometry = WindowGeometry(h, w, c, lanes, k, s, pads)
    frames = 4
    rng = np.random.default_rng(0)
    x = rng.choice([-1, 1], size=(frames, h, w, c))
    dut = SlidingWindow(unsigned(1), geometry, pad_code=0)
    beats = pack_lanes(encode(x, 1, False).reshape(-1, lanes), 1)
    run = run_stream(dut, beats, geometry.out_beats * frames)
    per_frame = geometry.out_beats
    ends = [run.out_times[(f + 1) * per_frame - 1] for f in range(frames)]
    assert ends[-1] - ends[-2] == geometry.cycles
    assert ends[-2] - ends[-3] == geometry.cycles


def test_geometry_refuses_lanes_that_do_not_divide_channels():
    with pytest.raises(ValueError, match="lanes"):
        WindowGeometry(4, 4, 6, 4, 3, 1)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_geometries_match_the_golden_model(data):
    """Any small geometry: sizes from 1, kernels 1–5, strides 1–3, any padding below k."""
    k = data.draw(st.sampled_from([1, 2, 3, 5]), "kernel")
    s = data.draw(st.integers(1, 3), "stride")
    pads = tuple(data.draw(st.integers(0, k - 1), f"pad{i}") for i in range(4))
    h = data.draw(st.integers(max(1, k - pads[0] - pads[2]), 7), "height")
    w = data.draw(st.integers(max(1, k - pads[1] - pads[3]), 7), "width")
    lanes = data.draw(st.integers(1, 3), "lanes")
    c = lanes * data.draw(st.integers(1, 2), "chunks")
    geometry = WindowGeometry(h, w, c, lanes, k, s, pads)
    rng = np.random.default_rng(data.draw(st.integers(0, 1 << 16), "seed"))
    x = _frames(geometry, 3, True, 2, rng)
    dut = SlidingWindow(signed(3), geometry, pad_code=int(encode(np.array(-2), 3, True)))
    beats = pack_lanes(encode(x, 3, True).reshape(-1, lanes), 3)
    want = windows(x, k, s, pads, -2).reshape(-1, lanes)
    run = run_stream(dut, beats, len(want), gaps=0.2, backpressure=0.2, seed=k)
    assert np.array_equal(decode(unpack_lanes(run.outputs, 3, lanes), 3, True), want)


def test_sliding_window_rejects_bad_arguments():
    with pytest.raises(TypeError, match=r"^geometry must be a WindowGeometry, not \(4, 4\)$"):
        SlidingWindow(unsigned(4), (4, 4))
    geometry = WindowGeometry(4, 4, 2, 2, 3, 1)
    with pytest.raises(ValueError, match=r"^pad_code must be a 3-bit pattern \(0 to 7\), not -2$"):
        SlidingWindow(signed(3), geometry, pad_code=-2)
    with pytest.raises(ValueError, match=r"^pad_code must be a 1-bit pattern \(0 to 1\), not 2$"):
        SlidingWindow(unsigned(1), geometry, pad_code=2)
