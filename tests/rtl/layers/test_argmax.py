# amaranth: UnusedElaboratable=no
"""Argmax unit: lowest index wins ties, signed scores, any lane count, stalls."""

import numpy as np
import pytest

from hwgen.numeric import TensorType
from hwgen.rtl.layers.argmax import ArgmaxUnit
from hwgen.rtl.testbench import run_stream
from hwgen_sim.runner import stream_beats


@pytest.mark.parametrize("size,lanes,bits", [(10, 1, 16), (10, 5, 12), (7, 7, 4), (12, 3, 9)])
def test_matches_numpy_with_ties(size, lanes, bits):
    rng = np.random.default_rng(size * lanes)
    t = TensorType((size,), bits, True)
    lo, hi = t.range
    scores = rng.integers(lo, hi + 1, size=(20, size))
    scores[0] = lo                       # all equal: index 0
    scores[1] = hi
    scores[2, :] = 3
    scores[2, [2, size - 1]] = 5         # a tie between two maxima
    scores[3] = np.arange(size)[::-1]    # maximum in the first lane
    scores[4] = np.arange(size)          # maximum in the last lane
    expected = np.argmax(scores, axis=1).tolist()
    got = run_stream(ArgmaxUnit(t, lanes=lanes), stream_beats(scores, t, lanes), len(scores),
                     gaps=0.3, backpressure=0.5, seed=1)
    assert got.outputs == expected


@pytest.mark.parametrize("lanes, latency", [
    # input register, the stage compared a cycle ahead, compare with the best so far, best
    # index to the output
    (1, 4),
    (2, 5),  # and one registered level of compares between lanes
    (4, 6),  # two levels
    (8, 7),  # three; a whole frame per beat: one frame per cycle
])
def test_one_frame_per_beats_and_latency(lanes, latency):
    t = TensorType((8,), 8, True)
    scores = np.random.default_rng(lanes).integers(-128, 128, size=(6, 8))
    beats = 8 // lanes
    unit = ArgmaxUnit(t, lanes=lanes)
    got = run_stream(unit, stream_beats(scores, t, lanes), 6)
    assert got.outputs == np.argmax(scores, axis=1).tolist()
    assert np.all(np.diff(got.out_times) == beats)
    assert got.out_times[0] - got.in_times[beats - 1] == latency == unit.latency


@pytest.mark.parametrize("lanes, message", [
    (0, "lanes must be a positive integer, not 0"),
    (3, "lanes 3 does not divide 10 scores"),
])
def test_constructor_rejects_bad_lanes(lanes, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        ArgmaxUnit(TensorType((10,), 8, True), lanes=lanes)
