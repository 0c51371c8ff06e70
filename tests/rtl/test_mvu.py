# amaranth: UnusedElaboratable=no
"""MatrixVectorUnit in Amaranth's simulator: every datapath mode and output kind, bit-exact
against the golden model under gaps and backpressure, with exact cycle counts."""

import numpy as np
import pytest

from hwgen import golden
from hwgen.numeric import TensorType
from hwgen.plan import MVU_DEPTH
from hwgen.rtl.mvu import MatrixVectorUnit
from hwgen.rtl.testbench import run_stream
from hwgen.spec import Input, Network
from hwgen_sim.runner import stream_beats
from tests.helpers import chain


def run_unit(network: Network, x: np.ndarray, *, gaps=0.0, backpressure=0.0, seed=0):
    layer = network.layers[0]
    in_type, out_type = network.types[0], network.types[1]
    unit = MatrixVectorUnit(layer, in_type, out_type, pe=layer.pe, simd=layer.simd)
    beats = stream_beats(x, in_type, layer.simd)
    expected = stream_beats(golden.run(network, x)[layer.name], out_type, layer.pe)
    got = run_stream(unit, beats, len(expected), gaps=gaps, backpressure=backpressure,
                     seed=seed)
    return unit, got, expected


CASES = [
    # id, input (shape, bits, signed), weight bits, out bits, pe, simd, bias
    ("xnor-1bit", (24, 1, False), 1, 1, 4, 8, False),
    ("xnor-2bit-out", (30, 1, False), 1, 2, 3, 5, True),
    ("xnor-raw", (16, 1, False), 1, None, 2, 16, False),
    ("maskx-u8", (12, 8, False), 1, 1, 4, 4, False),
    ("maskx-s5-raw", (10, 5, True), 1, None, 5, 2, True),
    ("maskx-u3-3bit", (9, 3, False), 1, 3, 1, 3, False),
    ("maskw-w16-raw", (20, 1, False), 16, None, 5, 4, True),
    ("maskw-w4-2bit", (14, 1, False), 4, 2, 7, 7, False),
    ("mul-u8-w16", (6, 8, False), 16, None, 2, 3, True),
    ("mul-s4-w3", (15, 4, True), 3, 1, 1, 5, False),
    ("full-fold", (8, 1, False), 1, 1, 1, 1, False),
    ("no-fold", (8, 2, False), 2, None, 4, 8, False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bit_exact_under_stalls(case):
    _, (size, bits, signed), wbits, obits, pe, simd, bias = case
    rng = np.random.default_rng(hash(case[0]) % 2**32)
    out = pe * 3 if pe > 1 else 5
    net, x = chain(rng, Input((size,), bits, signed),
                   [dict(out=out, weight_bits=wbits, out_bits=obits, pe=pe, simd=simd,
                         bias=bias)], count=7)
    _, got, expected = run_unit(net, x, gaps=0.4, backpressure=0.4, seed=3)
    assert got.outputs == expected


@pytest.mark.parametrize("pe,simd", [(1, 1), (2, 4), (4, 16), (3, 2)])
def test_cycles_follow_folding(pe, simd):
    rng = np.random.default_rng(pe * 100 + simd)
    net, x = chain(rng, Input((16,), 1), [dict(out=12, weight_bits=1, out_bits=1, pe=pe,
                                               simd=simd)], count=5)
    unit, got, expected = run_unit(net, x)
    assert got.outputs == expected
    fold = unit.nf * unit.sf
    ends = got.out_times[unit.nf - 1::unit.nf]
    # Back to back: one vector per fold, once the first vector has arrived.
    assert [b - a for a, b in zip(ends[1:], ends[2:], strict=False)] == [fold] * (len(ends) - 2)
    # Latency: from the vector's last input beat to its last output beat.
    assert ends[0] - got.in_times[unit.sf - 1] == fold + MVU_DEPTH


def test_extremes_do_not_overflow():
    """Most negative 16-bit weights × largest 8-bit inputs, summed over 64 lanes."""
    w = np.full((4, 64), -32768)
    w[1] = 32767
    w[2, ::2] = 32767
    from hwgen.spec import Dense
    net = Network("x", Input((64,), 8), [Dense("fc", w, 16, bias=np.array([-7, 7, 0, 1]),
                                                pe=2, simd=8)])
    x = np.array([[255] * 64, [0] * 64, list(range(0, 256, 4))])
    _, got, expected = run_unit(net, x, gaps=0.2, backpressure=0.2)
    assert got.outputs == expected
    # -32768·255·64 - 7 = -534,773,767 ≥ -2**29: 30 bits signed, and no fewer.
    assert net.output_type == TensorType((4,), 30, True)


def test_constructor_rejects_bad_folding():
    rng = np.random.default_rng(0)
    net, _ = chain(rng, Input((8,), 1), [dict(out=4, weight_bits=1, out_bits=1, pe=1, simd=1)])
    layer = net.layers[0]
    with pytest.raises(ValueError, match="pe 3 does not divide out_features 4"):
        MatrixVectorUnit(layer, net.types[0], net.types[1], pe=3, simd=1)
    with pytest.raises(ValueError, match="simd 3 does not divide in_features 8"):
        MatrixVectorUnit(layer, net.types[0], net.types[1], pe=1, simd=3)
