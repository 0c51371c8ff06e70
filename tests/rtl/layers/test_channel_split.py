# amaranth: UnusedElaboratable=no
"""ChannelSplitUnit: bit-exact against np.split under any stall pattern, one beat a cycle, each
beat one cycle after it was taken; the constructor's argument checks."""

import re

import numpy as np
import pytest

from hwgen.numeric import TensorType
from hwgen.rtl.layers.channel_split import ChannelSplitUnit
from hwgen.rtl.stream import Fork, lanes_signature
from hwgen.rtl.testbench import check_ready_from_state, run_streams, tensor_beats, tensor_values
from tests.helpers import random_inputs

FRAMES = 3


def split(t: TensorType, lanes: int, *, seed: int = 0, **stalls):
    """Runs FRAMES frames back to back; the inputs, the two halves np.split expects, the run."""
    x = random_inputs(np.random.default_rng(seed), t, FRAMES, extremes=False)
    expected = np.split(x, 2, axis=-1)
    beats = len(tensor_beats(expected[0], t, lanes))
    run = run_streams(ChannelSplitUnit(t, lanes=lanes), {"i_stream": tensor_beats(x, t, lanes)},
                      {"o0_stream": beats, "o1_stream": beats}, seed=seed, **stalls)
    return x, expected, run


CASES = [
    (TensorType((2, 3, 4), 1), 1),             # binary, one lane
    (TensorType((2, 2, 12), 1), 3),            # binary, several beats per half
    (TensorType((3, 2, 8), 4, True), 4),       # signed, one beat per half
    (TensorType((5, 6), 3, True), 1),          # signed, 1-D pixels
    (TensorType((2, 2, 16), 5, False), 2),     # unsigned
]


@pytest.mark.parametrize("stall", [0.0, 0.3])
@pytest.mark.parametrize("t, lanes", CASES)
def test_bit_exact_against_np_split(t, lanes, stall):
    _, expected, run = split(t, lanes, seed=lanes + t.bits, gaps=stall, backpressure=stall)
    for k, name in enumerate(("o0_stream", "o1_stream")):
        got = tensor_values(run.outputs[name], t, lanes)
        np.testing.assert_array_equal(got, expected[k].reshape(-1))


@pytest.mark.parametrize("t, lanes", [CASES[1], CASES[2]])
def test_one_beat_a_cycle_each_leaving_one_cycle_later(t, lanes):
    """Unstalled: every input beat is taken on consecutive cycles, and each leaves on its
    output exactly one cycle after it was taken."""
    _, _, run = split(t, lanes)
    taken = run.in_times["i_stream"]
    assert taken == list(range(taken[0], taken[0] + len(taken)))
    half = t.shape[-1] // 2 // lanes
    per_pixel = np.array(taken).reshape(-1, 2, half)
    assert run.out_times["o0_stream"] == (per_pixel[:, 0] + 1).reshape(-1).tolist()
    assert run.out_times["o1_stream"] == (per_pixel[:, 1] + 1).reshape(-1).tolist()


def test_input_ready_follows_registered_state_only():
    dut = ChannelSplitUnit(TensorType((2, 2, 8), 1), lanes=2)
    check_ready_from_state(dut, dut.inputs, dut.outputs)


def test_the_ready_check_sees_a_combinational_path():
    """The check itself (here beside its first user): a Fork's input ready follows its outputs'
    readies, as its docstring says."""
    dut = Fork(lanes_signature(TensorType((4,), 1), 2), 2)
    with pytest.raises(AssertionError, match="combinational path"):
        check_ready_from_state(dut, [dut.i_stream], dut.outputs, cycles=5)


T = TensorType((2, 2, 8), 4, True)


@pytest.mark.parametrize("make, message", [
    (lambda: ChannelSplitUnit(T, lanes=0), "lanes must be a positive integer, not 0"),
    (lambda: ChannelSplitUnit(T, lanes=2.0), "lanes must be a positive integer, not 2.0"),
    (lambda: ChannelSplitUnit(TensorType((2, 2, 7), 4, True), lanes=1),
     "channel_split needs an even channel count, not 7"),
    (lambda: ChannelSplitUnit(T, lanes=8), "lanes 8 does not divide half the channels (4)"),
    (lambda: ChannelSplitUnit(T, lanes=3), "lanes 3 does not divide half the channels (4)"),
])
def test_constructor_rejects_bad_arguments(make, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make()
