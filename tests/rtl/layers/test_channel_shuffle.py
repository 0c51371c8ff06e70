# amaranth: UnusedElaboratable=no
"""ChannelShuffleUnit: bit-exact against NumPy's reshape-transpose under any stall pattern, one
beat a cycle in and out with output beat k exactly C/lanes cycles after input beat k; the
constructor's argument checks."""

import re

import numpy as np
import pytest

from hwgen.numeric import TensorType
from hwgen.rtl.layers.channel_shuffle import ChannelShuffleUnit
from hwgen.rtl.testbench import check_ready_from_state, run_stream, tensor_beats, tensor_values
from tests.helpers import random_inputs

FRAMES = 3


def reference(x: np.ndarray, groups: int) -> np.ndarray:
    """ShuffleNet's channel shuffle: (…, groups, C/groups) → transpose the two → flatten."""
    *lead, channels = x.shape
    y = x.reshape(*lead, groups, channels // groups)
    return np.swapaxes(y, -1, -2).reshape(x.shape)


def test_reference_is_shufflenets_permutation():
    x = np.arange(6)
    assert reference(x, 2).tolist() == [0, 3, 1, 4, 2, 5]
    assert reference(x, 3).tolist() == [0, 2, 4, 1, 3, 5]


def shuffle(t: TensorType, groups: int, lanes: int, *, seed: int = 0, **stalls):
    """Runs FRAMES frames back to back; the reference's output and the run."""
    x = random_inputs(np.random.default_rng(seed), t, FRAMES, extremes=False)
    expected = reference(x, groups)
    dut = ChannelShuffleUnit(t, groups=groups, lanes=lanes)
    run = run_stream(dut, tensor_beats(x, t, lanes), x.size // lanes, seed=seed, **stalls)
    return expected, run


CASES = [
    (TensorType((2, 2, 12), 1), 3, 1),          # binary, one lane
    (TensorType((2, 3, 12), 1), 4, 6),          # binary, two beats per pixel
    (TensorType((3, 2, 8), 4, True), 2, 4),     # signed
    (TensorType((2, 2, 6), 5, True), 3, 6),     # one beat per pixel
    (TensorType((5, 12), 3, False), 6, 2),      # unsigned, 1-D pixels
    (TensorType((2, 2, 4), 3, True), 1, 2),     # one group: the identity
]


@pytest.mark.parametrize("stall", [0.0, 0.3])
@pytest.mark.parametrize("t, groups, lanes", CASES)
def test_bit_exact_against_reshape_transpose(t, groups, lanes, stall):
    expected, run = shuffle(t, groups, lanes, seed=groups + lanes, gaps=stall,
                            backpressure=stall)
    got = tensor_values(run.outputs, t, lanes)
    np.testing.assert_array_equal(got, expected.reshape(-1))


@pytest.mark.parametrize("t, groups, lanes", [CASES[0], CASES[2], CASES[3]])
def test_full_rate_with_a_pixel_of_latency(t, groups, lanes):
    """Unstalled: an input beat every cycle, and output beat k exactly C/lanes cycles after
    input beat k (a pixel's first output beat the cycle after its last input beat), so the
    output too moves a beat every cycle across pixels and frames."""
    _, run = shuffle(t, groups, lanes)
    taken = run.in_times
    assert taken == list(range(taken[0], taken[0] + len(taken)))
    beats = t.shape[-1] // lanes
    assert run.out_times == [time + beats for time in taken]


def test_input_ready_follows_registered_state_only():
    dut = ChannelShuffleUnit(TensorType((2, 2, 8), 3, True), groups=2, lanes=4)
    check_ready_from_state(dut, dut.inputs, dut.outputs)


T = TensorType((2, 2, 12), 4, True)


@pytest.mark.parametrize("make, message", [
    (lambda: ChannelShuffleUnit(T, groups=3, lanes=0), "lanes must be a positive integer, not 0"),
    (lambda: ChannelShuffleUnit(T, groups=True, lanes=2),
     "groups must be a positive integer, not True"),
    (lambda: ChannelShuffleUnit(T, groups=-3, lanes=2),
     "groups must be a positive integer, not -3"),
    (lambda: ChannelShuffleUnit(T, groups=5, lanes=2), "groups 5 does not divide the 12 channels"),
    (lambda: ChannelShuffleUnit(T, groups=3, lanes=8), "lanes 8 does not divide the 12 channels"),
])
def test_constructor_rejects_bad_arguments(make, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make()
