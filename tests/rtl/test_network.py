"""NetworkTop in Amaranth's simulator: layers chained through width converters, bit-exact,
cycles per inference and latency exactly as the cost model predicts."""

import numpy as np
import pytest

from hwgen import golden
from hwgen.rtl.network import NetworkTop
from hwgen.rtl.testbench import run_stream
from hwgen.spec import Input
from hwgen_sim.runner import stream_beats
from tests.helpers import chain

NETWORKS = {
    # first layer 8-bit × binary weights, a binary layer, a 16-bit classifier, argmax
    "mlp": (Input((12,), 8, lanes=3), [
        dict(out=16, weight_bits=1, out_bits=1, pe=4, simd=6),
        dict(out=10, weight_bits=1, out_bits=2, pe=5, simd=8),
        dict(out=6, weight_bits=16, out_bits=None, pe=3, simd=2, bias=True)], True),
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
    top = NetworkTop(net)
    p = top.plan
    out_lp = p.layers[-1]
    expected = stream_beats(golden.run(net, x)[out_lp.name], out_lp.out_type, out_lp.out_lanes)
    got = run_stream(top, stream_beats(x, p.input_type, p.input_lanes), len(expected),
                     gaps=0.3, backpressure=0.3, seed=2)
    assert got.outputs == expected

    clean = run_stream(top, stream_beats(x, p.input_type, p.input_lanes), len(expected))
    per_frame = out_lp.out_type.size // out_lp.out_lanes
    ends = clean.out_times[per_frame - 1::per_frame]
    assert ends[-1] - ends[-2] == p.cycles_per_inference
    assert ends[0] - clean.in_times[0] == p.latency
