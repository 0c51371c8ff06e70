# amaranth: UnusedElaboratable=no
"""ConcatUnit: bit-exact against np.concatenate under any stall pattern (binary inputs widened to
±1 or kept as bits, narrower ones sign- or zero-extended), one beat a cycle, each one cycle
after its input beat; the constructor's argument checks."""

import re

import numpy as np
import pytest

from hwgen.numeric import TensorType
from hwgen.rtl.layers.concat import ConcatUnit
from hwgen.rtl.testbench import check_ready_from_state, run_streams, tensor_beats, tensor_values
from tests.helpers import random_inputs

FRAMES = 3


def concat(in_types, out_type, lanes, *, seed=0, **stalls):
    """Runs FRAMES frames back to back; np.concatenate's output and the run."""
    rng = np.random.default_rng(seed)
    xs = [random_inputs(rng, t, FRAMES, extremes=False) for t in in_types]
    expected = np.concatenate(xs, axis=-1)
    dut = ConcatUnit(in_types, out_type, lanes=lanes)
    inputs = {f"i{k}_stream": tensor_beats(x, t, lanes)
              for k, (t, x) in enumerate(zip(in_types, xs, strict=True))}
    run = run_streams(dut, inputs, {"o_stream": expected.size // lanes}, seed=seed, **stalls)
    return expected, run


def tt(channels: int, bits: int, signed: bool = False, lead=(2, 2)) -> TensorType:
    return TensorType((*lead, channels), bits, signed)


CASES = [
    ([tt(2, 1), tt(3, 1)], tt(5, 1), 1),                       # binary stays binary
    ([tt(4, 1), tt(8, 1), tt(4, 1)], tt(16, 1), 4),            # three inputs
    ([tt(4, 3, True), tt(2, 1), tt(6, 2)], tt(12, 4, True), 2),  # ±1, sign- and zero-extend
    ([tt(6, 4, True), tt(3, 4, True)], tt(9, 4, True), 3),     # signed, same format
    ([tt(2, 3, lead=(5,)), tt(4, 5, lead=(5,))], tt(6, 5, lead=(5,)), 2),  # unsigned, 1-D
]


@pytest.mark.parametrize("stall", [0.0, 0.3])
@pytest.mark.parametrize("in_types, out_type, lanes", CASES)
def test_bit_exact_against_np_concatenate(in_types, out_type, lanes, stall):
    expected, run = concat(in_types, out_type, lanes, seed=lanes + len(in_types), gaps=stall,
                           backpressure=stall)
    got = tensor_values(run.outputs["o_stream"], out_type, lanes)
    np.testing.assert_array_equal(got, expected.reshape(-1))


@pytest.mark.parametrize("in_types, out_type, lanes", [CASES[1], CASES[2]])
def test_one_beat_a_cycle_each_leaving_one_cycle_later(in_types, out_type, lanes):
    """Unstalled: the input beats, in pixel order across the inputs, are taken on consecutive
    cycles, and output beat k leaves exactly one cycle after the k-th of them."""
    _, run = concat(in_types, out_type, lanes)
    taken = sorted(t for times in run.in_times.values() for t in times)
    assert taken == list(range(taken[0], taken[0] + len(taken)))
    assert run.out_times["o_stream"] == [t + 1 for t in taken]
    # The k-th beat taken is the one of the input the pixel reads then.
    pixels = FRAMES * out_type.size // out_type.shape[-1]
    order = np.concatenate([np.full((pixels, t.shape[-1] // lanes), k)
                            for k, t in enumerate(in_types)], axis=-1).reshape(-1)
    owner = {t: k for k, times in enumerate(run.in_times.values()) for t in times}
    assert [owner[t] for t in taken] == order.tolist()


def test_input_readies_follow_registered_state_only():
    """Neither o_stream.ready nor another input's valid reaches an input's ready."""
    dut = ConcatUnit(*CASES[2][:2], lanes=CASES[2][2])
    check_ready_from_state(dut, dut.inputs, dut.outputs)


S4 = tt(4, 4, True)


@pytest.mark.parametrize("make, message", [
    (lambda: ConcatUnit([S4, S4], tt(8, 4, True), lanes=0),
     "lanes must be a positive integer, not 0"),
    (lambda: ConcatUnit([S4], S4, lanes=2), "concat needs at least two inputs, got 1"),
    (lambda: ConcatUnit([S4, tt(4, 4, True, lead=(2, 3))], tt(8, 4, True), lanes=2),
     "input 1 shape (2, 3, 4) differs from input 0 in its leading dimensions (2, 2)"),
    (lambda: ConcatUnit([S4, S4, tt(4, 4, True, lead=(4,))], tt(12, 4, True), lanes=2),
     "input 2 shape (4, 4) differs from input 0 in its leading dimensions (2, 2)"),
    (lambda: ConcatUnit([S4, tt(6, 4, True)], tt(10, 4, True), lanes=4),
     "lanes 4 does not divide the 6 channels of input 1"),
    (lambda: ConcatUnit([S4, S4], tt(9, 4, True), lanes=2),
     "out_type shape (2, 2, 9) is not (2, 2, 8)"),
    (lambda: ConcatUnit([S4, S4], TensorType((32,), 4, True), lanes=2),
     "out_type shape (32,) is not (2, 2, 8)"),
    (lambda: ConcatUnit([S4, tt(4, 5, True)], tt(8, 4, True), lanes=2),
     "out_type s4 cannot hold input 1 (s5)"),
    (lambda: ConcatUnit([tt(4, 4), S4], tt(8, 4, True), lanes=2),
     "out_type s4 cannot hold input 0 (u4)"),
    (lambda: ConcatUnit([tt(4, 3), tt(4, 1)], tt(8, 3), lanes=2),
     "out_type u3 cannot hold input 1 (bin)"),
    (lambda: ConcatUnit([tt(4, 1), tt(4, 2, True)], tt(8, 1), lanes=2),
     "out_type bin cannot hold input 1 (s2)"),
])
def test_constructor_rejects_bad_arguments(make, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make()
