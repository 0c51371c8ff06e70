# amaranth: UnusedElaboratable=no
"""DepthwiseConvUnit in Amaranth's simulator: bit-exact against the golden model under input gaps
and output backpressure for every datapath (XNOR, ±x, masked weights, LUT and DSP products),
every weight width, both output kinds, cycles exactly as the cost model predicts; and separable
blocks (depthwise → pointwise conv2d → classifier) through the network top."""

import re

import numpy as np
import pytest

from hwgen import golden
from hwgen.numeric import TensorType
from hwgen.plan import plan
from hwgen.rtl.layers.depthwise_conv2d import DepthwiseConvUnit, VectorVectorUnit, component
from hwgen.rtl.testbench import run_stream
from hwgen.spec import DepthwiseConv2d, Input, Network
from hwgen.weight_image import spram_image, spram_layers
from hwgen_sim.runner import stream_beats
from tests.helpers import chain, random_inputs
from tests.rtl.test_network import bit_exact_and_cycle_exact


def run_layer(net: Network, x: np.ndarray, **stalls):
    """The network's one depthwise layer as its own unit, planned as the network plans it:
    (plan of the layer, what the unit produced, the golden model's beats)."""
    lp = plan(net).layers[0]
    layer = net.layers[0]
    unit = component(layer, lp)
    beats = stream_beats(x, lp.in_type, lp.pe)
    expected = stream_beats(golden.run(net, x)[layer.name], lp.out_type, lp.pe)
    return lp, run_stream(unit, beats, len(expected), **stalls), expected


def frame_interval(lp, got) -> int:
    """Cycles between the last output beats of the last two frames (frames back to back)."""
    per_frame = lp.out_type.size // lp.out_lanes
    ends = got.out_times[per_frame - 1::per_frame]
    return ends[-1] - ends[-2]


CASES = [
    # id, input (shape, bits, signed), kernel, stride, padding, pad value, weight bits,
    # output (None raw, n thresholds bits, "u8"/"s4" requantize), pe, mac, bias
    ("k3s1-same-W8u8-rq_u8-pe1-lut", ((5, 6, 4), 8, False), 3, 1, "same", 7, 8, "u8", 1,
     "lut", True),
    ("k3s2-valid-W4s4-thr2-peC-lut", ((7, 7, 4), 4, True), 3, 2, "valid", 0, 4, 2, 4, "lut",
     False),
    ("k3s1-same-W8s8-rq_s8-pe2-dsp", ((5, 5, 4), 8, True), 3, 1, "same", -128, 8, "s8", 2,
     "dsp", True),
    ("k3s2-same-W16u8-raw-peC-dsp", ((6, 6, 4), 8, False), 3, 2, "same", 255, 16, None, 4,
     "dsp", True),
    ("xnor-k3s1-same-thr1-pe2", ((5, 5, 4), 1, False), 3, 1, "same", 1, 1, 1, 2, "auto",
     False),
    ("xnor-k3s2-valid-raw-peC", ((7, 5, 4), 1, False), 3, 2, "valid", -1, 1, None, 4, "auto",
     True),
    # pointwise (1×1, stride 1, no padding): no window generator, the stream goes straight in
    ("k1s1-valid-W8u8-rq_u8-pe2-lut", ((4, 5, 4), 8, False), 1, 1, "valid", 0, 8, "u8", 2,
     "lut", True),
    ("signx-W1u4-raw-peC", ((5, 5, 4), 4, False), 3, 1, "same", 15, 1, None, 4, "auto", True),
    ("signx-W1s6-thr3-pe1", ((4, 5, 2), 6, True), 3, 1, "same", -32, 1, 3, 1, "auto", False),
    ("maskw-W2bin-rq_s4-pe2", ((5, 5, 4), 1, False), 3, 1, "same", -1, 2, "s4", 2, "auto",
     True),
    ("maskw-W16bin-raw-pe1", ((4, 4, 2), 1, False), 3, 2, "same", 1, 16, None, 1, "auto",
     False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bit_exact_under_stalls(case):
    name, (shape, bits, signed), k, stride, padding, pad, wbits, out, pe, mac, bias = case
    rng = np.random.default_rng(sum(map(ord, name)))
    net, x = chain(rng, Input(shape, bits, signed), [dict(
        kind="depthwise_conv2d", kernel=k, stride=stride, padding=padding, pad_value=pad,
        weight_bits=wbits, out_bits=out, pe=pe, mac=mac, bias=bias)], count=4)
    lp, got, expected = run_layer(net, x, gaps=0.4, backpressure=0.4, seed=3)
    assert lp.mac == (mac if mac != "auto" else
                      "xnor" if wbits == 1 and bits == 1 else "addsub")
    assert got.outputs == expected
    if out is not None:  # the output stage is exercised, not a constant
        values = golden.run(net, x)[net.layers[0].name]
        assert len(np.unique(values)) > 1


# W1..W8 and W16 at their extremes: every filter holds the most negative and the most positive
# weight; all-max, all-min and random frames; raw output, so every accumulator bit leaves.
WIDTHS = [
    # weight bits, input bits, signed input, mac
    (1, 4, True, "auto"), (2, 8, False, "dsp"), (3, 2, False, "lut"), (4, 8, True, "dsp"),
    (5, 8, False, "lut"), (6, 4, False, "dsp"), (7, 6, True, "lut"), (8, 8, True, "dsp"),
    (16, 8, False, "lut"), (16, 16, True, "dsp"),
]


@pytest.mark.parametrize("wbits, abits, signed, mac", WIDTHS,
                         ids=[f"W{w}{'s' if s else 'u'}{a}-{m}" for w, a, s, m in WIDTHS])
def test_every_weight_width_at_its_extremes(wbits, abits, signed, mac):
    rng = np.random.default_rng(wbits * 100 + abits)
    in_type = TensorType((4, 5, 2), abits, signed)
    lo, hi = (-1, 1) if wbits == 1 else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
    w = rng.integers(lo, hi + 1, size=(2, 3, 3)) if wbits > 1 else \
        rng.choice([-1, 1], size=(2, 3, 3))
    w[0], w[1, :, 0], w[1, :, 2] = lo, lo, hi
    layer = DepthwiseConv2d("dw", w, wbits, padding="same", pad_value=in_type.range[1], pe=2,
                            mac=mac, bias=np.array([-7, 1 << 20]))
    net = Network("n", Input(in_type.shape, abits, signed), [layer])
    x = random_inputs(rng, in_type, 3)
    lp, got, expected = run_layer(net, x, gaps=0.3, backpressure=0.3, seed=1)
    assert lp.mac == ("addsub" if wbits == 1 else mac)
    assert got.outputs == expected
    # channel 0 (every weight the most negative) reaches both ends of its accumulator range
    acc_lo, acc_hi = layer.acc_bounds(net.input_type)
    reached = golden.run(net, x)["dw"][..., 0]
    assert (reached.min(), reached.max()) == (acc_lo[0], acc_hi[0])


@pytest.mark.parametrize("shape, k, stride, padding, pe", [
    ((5, 7, 4), 3, 1, "same", 1),     # pixels · C · k·k
    ((5, 7, 4), 3, 1, "same", 4),     # pe = C
    ((7, 7, 6), 3, 2, "valid", 3),    # stride 2
    ((5, 5, 4), 1, 2, "valid", 2),    # 1×1 stride 2: bound by the input beats
])
def test_cycles_per_frame_are_the_cost_models(shape, k, stride, padding, pe):
    rng = np.random.default_rng(k * 10 + pe)
    net, x = chain(rng, Input(shape, 4), [dict(
        kind="depthwise_conv2d", kernel=k, stride=stride, padding=padding, weight_bits=4,
        out_bits=2, pe=pe)], count=4)
    lp, got, expected = run_layer(net, x)
    assert got.outputs == expected
    h, w, c = shape
    ho, wo, _ = lp.out_type.shape
    assert lp.cycles == max(ho * wo * (c // pe) * k * k, h * w * c // pe)
    assert frame_interval(lp, got) == lp.cycles


def test_constructor_rejects_pe_not_dividing_the_channels():
    net = Network("n", Input((5, 5, 4), 8), [DepthwiseConv2d("dw", np.ones((4, 3, 3), int), 8)])
    with pytest.raises(ValueError, match="^pe 3 does not divide the 4 channels$"):
        VectorVectorUnit(net.layers[0].weight_matrix(), net.types[0], net.types[1], pe=3)


# --- separable blocks through the network top ------------------------------------------------

SEPARABLE = {
    # The quantization-friendly MobileNet block: depthwise 3×3 requantized to s8 with no
    # BatchNorm or ReLU after it (the clamp is the s8 range, negative values pass), pointwise
    # 1×1 conv2d with 2-bit thresholds (BatchNorm + ReLU + quantizer folded), global sum
    # pooling, 16-bit classifier, argmax.
    "requantized": (Input((6, 6, 4), 8, lanes=2), [
        dict(kind="depthwise_conv2d", kernel=3, padding="same", weight_bits=8, out_bits="s8",
             pe=2, bias=True),
        dict(kind="conv2d", out=8, kernel=1, weight_bits=4, out_bits=2, pe=4, simd=4),
        dict(kind="global_sum_pool"),
        dict(out=5, weight_bits=16, out_bits=None, pe=1, simd=8, bias=True)], True),
    # The raw form: the depthwise accumulators (s15) go straight into the pointwise conv's
    # products (s15 × W4), which requantizes; stride 2, flatten, classifier.
    "raw": (Input((7, 7, 4), 4, lanes=4), [
        dict(kind="depthwise_conv2d", kernel=3, stride=2, weight_bits=8, out_bits=None, pe=4,
             mac="dsp"),
        dict(kind="conv2d", out=6, kernel=1, weight_bits=4, out_bits="u4", pe=2, simd=2),
        dict(kind="flatten"),
        dict(out=4, weight_bits=16, out_bits=None, pe=2, simd=6)], True),
}


@pytest.mark.parametrize("name", list(SEPARABLE))
def test_separable_block_through_the_network(name):
    inp, layers, argmax = SEPARABLE[name]
    rng = np.random.default_rng(len(name))
    net, x = chain(rng, inp, [dict(d) for d in layers], count=4, argmax=argmax)
    dw = net.types[1]
    assert dw.signed and (dw.bits == 8 if name == "requantized" else dw.bits > 8)
    assert (golden.run(net, x)[net.layers[0].name] < 0).any()  # no ReLU between the two
    p, latency = bit_exact_and_cycle_exact(net, x, stalls=[(0.3, 0.3)])
    assert p.bottleneck == net.layers[0].name
    assert 0 < latency <= p.latency_bound


def test_depthwise_weights_in_spram():
    """Filters in SPRAM (words of pe · weight_bits bits), loaded before the first frame."""
    rng = np.random.default_rng(4)
    net, x = chain(rng, Input((5, 5, 4), 8, lanes=4), [
        dict(kind="depthwise_conv2d", kernel=3, padding="same", weight_bits=5, out_bits=3,
             pe=4, weight_memory="spram"),
        dict(kind="conv2d", out=4, kernel=1, weight_bits=2, out_bits=None, pe=4, simd=4)],
        count=3)
    assert [(n, width, len(words)) for n, width, words in spram_layers(net)] == \
        [("dw0", 4 * 5, 4 // 4 * 9)]
    image = spram_image(net)
    halfwords = [int.from_bytes(image[i:i + 2], "little") for i in range(0, len(image), 2)]
    assert len(halfwords) == 2 * 9  # 20-bit words: two 16-bit columns
    bit_exact_and_cycle_exact(net, x, stalls=[(0.3, 0.3)], load=halfwords)


@pytest.mark.slow
def test_separable_block_with_a_residual_shortcut():
    """depthwise → pointwise on the long branch of an add whose shortcut is the input (the
    inverted-residual pattern): the planned FIFO depths hold under stalls of either side."""
    from hwgen.spec import Add, Argmax, GlobalSumPool
    from tests.helpers import conv, dense, depthwise

    rng = np.random.default_rng(3)
    inp = Input((5, 6, 4), 4, lanes=4)
    x = random_inputs(rng, TensorType((5, 6, 4), 4), 4)
    dw = depthwise(rng, "dw", TensorType((5, 6, 4), 4), x, 3, 4, "s6", padding="same", pe=2,
                   bias=True)
    probe = Network("p", inp, [dw])
    pw = conv(rng, "pw", probe.output_type, golden.run(probe, x)["dw"], 4, 1, 4, "s5", pe=4,
              simd=2)
    layers = [dw, pw, Add("sum", ("pw", "input")), GlobalSumPool("gsp")]
    probe = Network("p", inp, layers)
    layers += [dense(rng, "fc", probe.output_type, golden.run(probe, x)["gsp"], 3, 8, None,
                     pe=1, simd=4), Argmax("argmax")]
    net = Network("res", inp, layers)
    p, _ = bit_exact_and_cycle_exact(net, x, stalls=[(0.3, 0.3), (0.0, 0.8), (0.7, 0.0)])
    assert p.fifos[("sum", 1)] > 4 * p.fifos[("sum", 0)]  # the shortcut waits for the window


@pytest.mark.parametrize("kwargs, message", [
    (dict(pe=0), "pe must be a positive integer, not 0"),
    (dict(pe=2, mac="auto"), "mac must be one of 'xnor', 'addsub', 'lut', 'dsp', not 'auto'"),
])
def test_constructor_rejects_bad_arguments(kwargs, message):
    net = Network("n", Input((5, 5, 4), 8), [DepthwiseConv2d("dw", np.ones((4, 3, 3), int), 8)])
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        VectorVectorUnit(net.layers[0].weight_matrix(), net.types[0], net.types[1], **kwargs)
    with pytest.raises(ValueError, match=re.escape("in_type must be an (H, W, C) image, not "
                                                   "shape (100,)")):
        DepthwiseConvUnit(net.layers[0].weight_matrix(), TensorType((100,), 8, False),
                          net.types[1], kernel=3, pe=2)
