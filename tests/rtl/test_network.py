# amaranth: UnusedElaboratable=no
"""NetworkTop in Amaranth's simulator: layers chained through width converters, bit-exact,
cycles per inference and latency exactly as the cost model predicts."""

import numpy as np
import pytest

from hwgen import golden
from hwgen.rtl.network import NetworkTop
from hwgen.rtl.testbench import run_stream
from hwgen.spec import Input
from hwgen_sim.runner import stream_beats
from tests.helpers import RegisteredReads, chain, residual_block, shufflenet_unit


def bit_exact_and_cycle_exact(net, x, *, stalls, load=None, platform=None, checks=()):
    """Run ``net`` on ``x`` with each (gaps, backpressure) in ``stalls``, comparing every
    output beat with the golden model, then stall-free: back-to-back frames leave exactly
    cycles_per_inference apart. Returns the plan and the measured first-frame latency.
    ``load``: SPRAM image halfwords, written before each run; ``platform``: what the
    network is elaborated with; ``checks``: run beside every run (see ``run_streams``)."""
    top = NetworkTop(net)
    p = top.plan
    out_lp = p.layers[-1]
    expected = stream_beats(golden.run(net, x)[out_lp.name], out_lp.out_type, out_lp.out_lanes)
    beats = stream_beats(x, p.input_type, p.input_lanes)
    for seed, (gaps, backpressure) in enumerate(stalls):
        got = run_stream(top, beats, len(expected), gaps=gaps, backpressure=backpressure,
                         seed=seed, load=load, platform=platform, checks=checks)
        assert got.outputs == expected
    clean = run_stream(top, beats, len(expected), load=load, platform=platform, checks=checks)
    per_frame = out_lp.out_type.size // out_lp.out_lanes
    ends = clean.out_times[per_frame - 1::per_frame]
    assert ends[-1] - ends[-2] == p.cycles_per_inference
    return p, ends[0] - clean.in_times[0]


NETWORKS = {
    # first layer 8-bit × binary weights, a binary layer, a 16-bit classifier, argmax
    "mlp": (Input((12,), 8, lanes=3), [
        dict(out=16, weight_bits=1, out_bits=1, pe=4, simd=6),
        dict(out=10, weight_bits=1, out_bits=2, pe=5, simd=8),
        dict(out=6, weight_bits=16, out_bits=None, pe=3, simd=2, bias=True)], True),
    # global sum pooling of a binary 3×5×6 image (two lanes) before a 16-bit classifier
    "gsp": (Input((3, 5, 6), 1, lanes=2), [
        dict(kind="global_sum_pool"),
        dict(out=4, weight_bits=16, out_bits=None, pe=2, simd=3, bias=True)], True),
    # binary input, raw scores out (no argmax), odd lanes everywhere
    "odd": (Input((15,), 1, lanes=5), [
        dict(out=9, weight_bits=1, out_bits=1, pe=3, simd=3),
        dict(out=7, weight_bits=4, out_bits=None, pe=7, simd=9)], False),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_matches_golden_and_cost_model(name):
    inp, layers, argmax = NETWORKS[name]
    rng = np.random.default_rng(len(name))
    net, x = chain(rng, inp, [dict(d) for d in layers], count=6, argmax=argmax)
    p, latency = bit_exact_and_cycle_exact(net, x, stalls=[(0.3, 0.3)])
    assert latency == p.latency == p.latency_bound


CONV_NETWORKS = {
    # 8-bit 5×7 RGB image, same padding, 8-bit × binary conv, OR-pool, binary conv (stride 2,
    # valid), flatten into a binary dense layer, 16-bit classifier, argmax
    "cnn": (Input((5, 7, 3), 8, lanes=3), [
        dict(kind="conv2d", out=6, kernel=3, padding="same", weight_bits=1, out_bits=1, pe=2,
             simd=3),
        dict(kind="maxpool", size=2),
        dict(kind="conv2d", out=5, kernel=1, weight_bits=1, out_bits=1, pe=5, simd=6),
        dict(kind="flatten"),
        dict(out=10, weight_bits=1, out_bits=1, pe=2, simd=5),
        dict(out=4, weight_bits=16, out_bits=None, pe=2, simd=10, bias=True)], True),
    # binary input, stride 2 valid 3×3, 3×3 pool stride 2 on integers, 2-bit activations
    "strided": (Input((9, 7, 2), 1, lanes=2), [
        dict(kind="conv2d", out=6, kernel=3, stride=2, weight_bits=1, out_bits=2, pe=3,
             simd=1),
        dict(kind="maxpool", size=2, stride=1),
        dict(kind="conv2d", out=3, kernel=2, pad_value=1, padding="same", weight_bits=4,
             out_bits=None, pe=1, simd=6, bias=True)], False),
    # a conv into global sum pooling on 4-bit activations, then the classifier
    "conv_gsp": (Input((5, 7, 3), 8, lanes=3), [
        dict(kind="conv2d", out=4, kernel=3, padding="same", weight_bits=1, out_bits=4, pe=2,
             simd=3),
        dict(kind="global_sum_pool"),
        dict(out=3, weight_bits=16, out_bits=None, pe=1, simd=4)], True),
    # rows and columns past the last window dropped (TensorFlow's floor): kernel 1 stride 2
    # "same" on 6×7, then a depthwise 2×2 stride 2 "valid" on the 3×4 result: 1×2 out
    "leftover": (Input((6, 7, 2), 1, lanes=2), [
        dict(kind="conv2d", out=4, kernel=1, stride=2, padding="same", weight_bits=1,
             out_bits=1, pe=2, simd=2),
        dict(kind="depthwise_conv2d", kernel=2, stride=2, weight_bits=2, out_bits=None,
             pe=2)], False),
    # the bottleneck is the last conv, behind a 3×3 stride-2 pool fed by a fast conv
    "late": (Input((7, 5, 3), 4, lanes=1), [
        dict(kind="conv2d", out=4, kernel=3, padding="same", weight_bits=2, out_bits=2, pe=4,
             simd=3),
        dict(kind="maxpool", size=3, stride=2),
        dict(kind="conv2d", out=8, kernel=3, padding="same", pad_value=0, weight_bits=1,
             out_bits=1, pe=1, simd=2)], False),
}


@pytest.mark.parametrize("name", list(CONV_NETWORKS))
def test_conv_network_matches_golden_and_cost_model(name):
    inp, layers, argmax = CONV_NETWORKS[name]
    rng = np.random.default_rng(len(name))
    net, x = chain(rng, inp, [dict(d) for d in layers], count=4, argmax=argmax)
    p, latency = bit_exact_and_cycle_exact(net, x, stalls=[(0.3, 0.3)])
    assert p.latency is None and 0 < latency <= p.latency_bound


@pytest.mark.parametrize("name", ["mlp", "cnn", "leftover"])
def test_registered_reads_keep_outputs_and_cycles(name):
    """Built as for ECP5 (every block-RAM read registered, weights in 4-word banks), a
    network gives the golden outputs, the cost model's cycles per inference and the latency
    it has without."""
    inp, layers, argmax = {**NETWORKS, **CONV_NETWORKS}[name]
    rng = np.random.default_rng(len(name))
    net, x = chain(rng, inp, [dict(d) for d in layers], count=4, argmax=argmax)
    _, plain = bit_exact_and_cycle_exact(net, x, stalls=[])
    _, registered = bit_exact_and_cycle_exact(net, x, stalls=[(0.3, 0.3)],
                                              platform=RegisteredReads())
    assert registered == plain


@pytest.mark.parametrize("long_fast", [False, True])
def test_residual_block_matches_golden_under_stalls_of_either_branch(long_fast):
    net, x = residual_block(long_fast)
    p, _ = bit_exact_and_cycle_exact(net, x, stalls=[(0.3, 0.3), (0.0, 0.8), (0.7, 0.0)])
    assert p.fifos and all(depth > 4 for depth in p.fifos.values())


@pytest.mark.parametrize("stride", [1, 2])
def test_shufflenet_unit_matches_golden_under_stalls(stride):
    """Channel split, concat and shuffle in a ShuffleNetV2 unit (and its stride-2 variant,
    whose input feeds both branches): bit-exact under gaps and backpressure, frames
    cycles_per_inference apart, the branch FIFOs planned."""
    net, x = shufflenet_unit(stride)
    p, latency = bit_exact_and_cycle_exact(net, x, stalls=[(0.3, 0.3), (0.0, 0.8), (0.7, 0.0)])
    assert set(p.fifos) == {("cat", 0), ("cat", 1)}
    assert 0 < latency <= p.latency_bound


def test_an_undersized_shortcut_fifo_deadlocks():
    """The reason for the planned depths: with 2-beat FIFOs the identity shortcut fills while
    the long branch is still gathering its first rows, the fork stalls, and nothing leaves."""
    from amaranth.sim import Simulator

    from hwgen.rtl.testbench import Clock, stream_get, stream_put

    net, x = residual_block(False)
    top = NetworkTop(net)
    for key in top.plan.fifos:
        top.plan.fifos[key] = 2
    p = top.plan
    out: list[int] = []

    async def source(ctx):
        await stream_put(Clock(ctx), top.i_stream, stream_beats(x, p.input_type, p.input_lanes))

    async def sink(ctx):
        out.extend(await stream_get(Clock(ctx), top.o_stream, len(x)))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink, background=True)
    sim.run_until(20 * p.cycles_per_inference * 1e-6)
    assert out == []


def test_tied_scores_go_to_the_lowest_class_in_rtl():
    """Classes 1 and 4 get the same weights and the others none, so every inference ties
    (1 with 4, or 0 with 2, 3 and 5): the RTL's argmax must pick the lowest index, as NumPy's
    argmax does ("the first occurrence"), on every input."""
    from dataclasses import replace

    inp, layers, _ = NETWORKS["mlp"]
    rng = np.random.default_rng(21)
    net, x = chain(rng, inp, [dict(d) for d in layers], count=8, argmax=True)
    fc = net.layers[-2]
    w = np.zeros_like(fc.weights)
    w[1] = w[4] = fc.weights[1]
    net.layers[-2] = replace(fc, weights=w, bias=np.zeros_like(fc.bias))
    shared = golden.run(net, x)[fc.name].reshape(len(x), -1)[:, 1]
    bias = np.zeros_like(fc.bias)
    bias[1] = bias[4] = -int(np.median(shared))  # about half the inputs tie above 0
    net.layers[-2] = replace(fc, weights=w, bias=bias)
    scores = golden.run(net, x)[fc.name].reshape(len(x), -1)
    assert (scores[:, 1] == scores[:, 4]).all()
    want = np.argmax(scores, axis=1)
    assert set(want) == {0, 1}  # both kinds of tie occur
    assert (golden.predict(net, x) == want).all()
    bit_exact_and_cycle_exact(net, x, stalls=[(0.3, 0.3)])


def test_constructor_rejects_bad_arguments():
    net, _ = chain(np.random.default_rng(0), Input((4,), 8),
                   [dict(out=2, weight_bits=2, out_bits=1, pe=1, simd=1)], count=1)
    with pytest.raises(TypeError, match="^network must be a hwgen.spec.Network, not 'net'$"):
        NetworkTop("net")
    with pytest.raises(TypeError, match="^taps must be True or False, not 1$"):
        NetworkTop(net, taps=1)
    with pytest.raises(ValueError,
                       match="^dsp_budget must be None or a non-negative integer, not -1$"):
        NetworkTop(net, dsp_budget=-1)
