"""hwgen.golden against independent float64 arithmetic on values (verification ladder step 1)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import golden
from hwgen.numeric import TensorType, encode
from hwgen.spec import Argmax, Dense, Input, Network, Requantize
from tests.helpers import chain, random_inputs

# --- an independent reference: float64 matrix products and plain comparisons ----------------


def ref_dense(layer: Dense, x: np.ndarray) -> np.ndarray:
    acc = np.asarray(x, dtype=np.float64) @ np.asarray(layer.weights, dtype=np.float64).T
    if layer.bias is not None:
        acc = acc + np.asarray(layer.bias, dtype=np.float64)
    if layer.thresholds is None:
        return acc
    t = np.asarray(layer.thresholds, dtype=np.float64)
    if t.shape[1] == 1:  # sign with the contract's tie rule: acc ≥ T is +1
        return np.where(acc >= t[:, 0], 1.0, -1.0)
    out = np.zeros(acc.shape)
    for k in range(t.shape[1]):
        out += acc >= t[:, k]
    return out


def ref_argmax(x: np.ndarray) -> np.ndarray:
    out = []
    for row in np.asarray(x, dtype=np.float64):
        best = 0
        for i, v in enumerate(row):
            if v > row[best]:
                best = i
        out.append([best])
    return np.array(out, dtype=np.float64)


def ref_run(net: Network, x: np.ndarray) -> list[np.ndarray]:
    outs, v = [], np.asarray(x, dtype=np.float64)
    for layer in net.layers:
        v = ref_dense(layer, v) if isinstance(layer, Dense) else ref_argmax(v)
        outs.append(v)
    return outs


def pm1(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.choice([-1, 1], size=shape)


def assert_same(golden_out: np.ndarray, ref_out: np.ndarray) -> None:
    assert golden_out.dtype == np.int64
    assert golden_out.shape == ref_out.shape
    np.testing.assert_array_equal(golden_out.astype(np.float64), ref_out)


# --- binary layers ---------------------------------------------------------------------------

def test_binary_dense_sign_matches_float():
    rng = np.random.default_rng(1)
    for k, out in [(1, 1), (7, 3), (16, 8), (63, 5), (200, 17)]:
        w = pm1(rng, out, k)
        x = pm1(rng, 32, k)
        t = rng.integers(-k, k + 1, size=(out, 1))
        net = Network("b", Input((k,), 1), [Dense("fc", w, 1, thresholds=t)])
        got = golden.run(net, x)["fc"]
        assert_same(got, ref_dense(net.layers[0], x))
        assert set(np.unique(got)) <= {-1, 1}


def test_binary_threshold_tie_gives_plus_one():
    w = np.array([[1, 1, -1, 1], [1, 1, 1, 1]])
    x = np.array([[1, 1, 1, 1]])  # acc = [2, 4]
    t_eq = np.array([[2], [4]])
    t_above = np.array([[3], [5]])
    at = Network("t", Input((4,), 1), [Dense("fc", w, 1, thresholds=t_eq)])
    above = Network("t", Input((4,), 1), [Dense("fc", w, 1, thresholds=t_above)])
    np.testing.assert_array_equal(golden.run(at, x)["fc"], [[1, 1]])
    np.testing.assert_array_equal(golden.run(above, x)["fc"], [[-1, -1]])


def test_binary_dot_is_xnor_popcount():
    rng = np.random.default_rng(2)
    k = 45
    w = pm1(rng, 6, k)
    x = pm1(rng, 20, k)
    layer = Network("p", Input((k,), 1), [Dense("fc", w, 1)]).layers[0]
    acc = golden.accumulate(layer, x)
    xb, wb = encode(x, 1, False), encode(w, 1, False)
    xnor = 1 - (xb[:, None, :] ^ wb[None, :, :])
    np.testing.assert_array_equal(acc, 2 * xnor.sum(axis=-1).astype(np.int64) - k)


def test_binary_raw_output_type_holds_accumulators():
    rng = np.random.default_rng(3)
    w = pm1(rng, 4, 31)
    net = Network("r", Input((31,), 1), [Dense("fc", w, 1)])
    assert net.output_type.signed and net.output_type.bits == 6  # -31..31
    x = np.stack([w[0], -w[0]])  # reaches +31 and -31 on channel 0
    acc = golden.run(net, x)["fc"]
    assert acc[0, 0] == 31 and acc[1, 0] == -31


# --- multi-bit inputs, n-bit thresholds, classifier ------------------------------------------

def test_u8_input_binary_weights_matches_float():
    rng = np.random.default_rng(4)
    k, out = 64, 12
    w = pm1(rng, out, k)
    x = rng.integers(0, 256, size=(40, k))
    x[0], x[1] = 0, 255
    t = rng.integers(-2000, 2000, size=(out, 1))
    t[0, 0] = int(x[5] @ w[0])  # an exact tie on one channel
    net = Network("m", Input((k,), 8), [Dense("fc", w, 1, thresholds=t)])
    got = golden.run(net, x)["fc"]
    assert_same(got, ref_dense(net.layers[0], x))
    assert got[5, 0] == 1


def test_s8_input_4bit_weights_raw_matches_float():
    rng = np.random.default_rng(5)
    w = rng.integers(-8, 8, size=(9, 30))
    x = rng.integers(-128, 128, size=(25, 30))
    net = Network("s", Input((30,), 8, signed=True), [Dense("fc", w, 4)])
    assert_same(golden.run(net, x)["fc"], ref_dense(net.layers[0], x))


@pytest.mark.parametrize("out_bits", [2, 3, 4])
def test_nbit_thresholds_count_reached(out_bits):
    rng = np.random.default_rng(out_bits)
    k, out = 20, 6
    w = pm1(rng, out, k)
    x = pm1(rng, 50, k)
    count = (1 << out_bits) - 1
    t = np.sort(rng.integers(-k, k + 1, size=(out, count)), axis=1)
    t[0] = 0  # all thresholds equal: output jumps 0 → max at acc = 0
    net = Network("n", Input((k,), 1), [Dense("fc", w, 1, thresholds=t)])
    assert net.output_type.bits == out_bits and not net.output_type.signed
    got = golden.run(net, x)["fc"]
    assert_same(got, ref_dense(net.layers[0], x))
    acc = x @ w.T
    expected = np.array([[int((t[o] <= acc[n, o]).sum()) for o in range(out)]
                         for n in range(len(x))])
    np.testing.assert_array_equal(got, expected)
    assert got.min() >= 0 and got.max() <= count
    np.testing.assert_array_equal(got[:, 0], np.where(acc[:, 0] >= 0, count, 0))


def test_quantize_thresholds_direct():
    acc = np.array([[-5, 0, 3, 10]])
    t = np.array([[-1, 0, 3]] * 4)
    np.testing.assert_array_equal(golden.quantize_thresholds(acc, t), [[0, 2, 3, 3]])
    np.testing.assert_array_equal(golden.quantize_thresholds(acc, t[:, :1]), [[-1, 1, 1, 1]])


def test_16bit_classifier_with_bias_is_int64_matmul():
    rng = np.random.default_rng(6)
    k, out = 128, 10
    w = rng.integers(-(1 << 15), 1 << 15, size=(out, k))
    w[0] = -(1 << 15)
    w[1] = (1 << 15) - 1
    b = rng.integers(-(1 << 30), 1 << 30, size=out)
    x = rng.integers(0, 256, size=(30, k))
    x[0], x[1] = 255, 0
    net = Network("c", Input((k,), 8), [Dense("fc", w, 16, bias=b)])
    got = golden.run(net, x)["fc"]
    expected = x.astype(np.int64) @ w.astype(np.int64).T + b.astype(np.int64)
    np.testing.assert_array_equal(got, expected)
    assert got[0, 0] == -(1 << 15) * 255 * k + b[0]
    lo, hi = net.output_type.range
    assert net.output_type.signed and lo <= got.min() and got.max() <= hi


def test_bias_shifts_threshold_comparison():
    w = np.array([[1, 1, 1, 1]])
    t = np.array([[3]])
    x = np.array([[1, 1, 1, -1]])  # acc 2
    no_bias = Network("a", Input((4,), 1), [Dense("fc", w, 1, thresholds=t)])
    with_bias = Network("a", Input((4,), 1), [Dense("fc", w, 1, thresholds=t,
                                                   bias=np.array([1]))])
    assert golden.run(no_bias, x)["fc"][0, 0] == -1
    assert golden.run(with_bias, x)["fc"][0, 0] == 1


# --- argmax ----------------------------------------------------------------------------------

def test_argmax_ties_go_to_lowest_index():
    net = Network("a", Input((5,), 8, signed=True), [Argmax()])
    x = np.array([[3, 7, 7, 1, 7],
                  [-5, -5, -5, -5, -5],
                  [0, 1, 2, 3, 3],
                  [9, -1, 9, 9, 0],
                  [-128, -127, -128, -127, -128]])
    np.testing.assert_array_equal(golden.predict(net, x), [1, 0, 3, 0, 1])
    np.testing.assert_array_equal(golden.run(net, x)["argmax"], [[1], [0], [3], [0], [1]])


def test_argmax_random_against_reference():
    rng = np.random.default_rng(9)
    net = Network("a", Input((7,), 3), [Argmax()])
    x = rng.integers(0, 4, size=(200, 7))  # few values: many ties
    np.testing.assert_array_equal(golden.predict(net, x), ref_argmax(x)[:, 0])


def test_predict_without_argmax_returns_scores():
    rng = np.random.default_rng(10)
    w = rng.integers(-3, 4, size=(3, 4))
    net = Network("p", Input((4,), 2), [Dense("fc", w, 3)])
    x = rng.integers(0, 4, size=(5, 4))
    out = golden.predict(net, x)
    assert out.shape == (5, 3)
    np.testing.assert_array_equal(out, x @ w.T)


# --- random chains ---------------------------------------------------------------------------

LAYER_CHOICES = [(1, 1), (1, 2), (2, 1), (4, 3), (8, 1), (1, None), (16, None)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), depth=st.integers(2, 4),
       in_bits=st.sampled_from([1, 2, 8]), signed=st.booleans(), argmax=st.booleans())
def test_random_chains_match_float_reference(seed, depth, in_bits, signed, argmax):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 40))
    specs = []
    for i in range(depth):
        # only the last layer may leave raw accumulators
        choices = LAYER_CHOICES if i == depth - 1 else [c for c in LAYER_CHOICES if c[1]]
        weight_bits, out_bits = choices[int(rng.integers(len(choices)))]
        specs.append(dict(out=int(rng.integers(1, 24)), weight_bits=weight_bits,
                          out_bits=out_bits, pe=1, simd=1, bias=bool(rng.integers(2))))
    use_argmax = argmax and specs[-1]["out_bits"] != 1
    net, x = chain(rng, Input((k,), in_bits, signed=signed), specs, count=12,
                   argmax=use_argmax)
    outs = golden.run(net, x)
    assert list(outs) == [layer.name for layer in net.layers]
    refs = ref_run(net, x)
    for i, layer in enumerate(net.layers):
        assert_same(outs[layer.name], refs[i])
        # every value lies within the inferred tensor type: the width derivation holds
        t = net.types[i + 1]
        lo, hi = t.range
        assert outs[layer.name].shape[1:] == t.shape
        assert lo <= outs[layer.name].min() and outs[layer.name].max() <= hi
        if t.binary:
            assert set(np.unique(outs[layer.name])) <= {-1, 1}


def test_chain_extreme_inputs_within_types():
    # Extreme inputs reach the accumulator bounds, which must still fit the inferred widths.
    rng = np.random.default_rng(11)
    for in_bits, signed, weight_bits in [(8, False, 16), (8, True, 8), (16, True, 16),
                                         (1, False, 1)]:
        inp = Input((33,), in_bits, signed=signed)
        w = rng.integers(-1, 1, size=(4, 33)) * 2 + 1 if weight_bits == 1 else \
            np.full((4, 33), -(1 << (weight_bits - 1)))
        net = Network("e", inp, [Dense("fc", w, weight_bits)])
        xt = net.input_type
        x = np.stack([np.full(33, xt.range[0]), np.full(33, xt.range[1])])
        x = random_inputs(rng, xt, 4) if xt.binary else x
        out = golden.run(net, x)["fc"]
        lo, hi = net.output_type.range
        assert lo <= out.min() and out.max() <= hi


# --- input checking --------------------------------------------------------------------------

def u8_net() -> Network:
    return Network("u", Input((4,), 8), [Dense("fc", np.ones((2, 4), int), 1)])


@pytest.mark.parametrize("x, message", [
    ([[0, 1, 256, 3]], "inputs must be in 0..255 (u8), found 256 at (0, 2)"),
    ([[0, 1, 2, 3], [0, -1, 2, 3]], "inputs must be in 0..255 (u8), found -1 at (1, 1)"),
    ([[0, 1, 2]], "inputs have shape (3,) per item, the network expects (4,)"),
    ([0, 1, 2, 3], "inputs have shape () per item, the network expects (4,)"),
])
def test_check_inputs_rejects_u8(x, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        golden.run(u8_net(), np.array(x))


def test_check_inputs_rejects_floats():
    with pytest.raises(ValueError, match="inputs must be integers, got dtype float64"):
        golden.check_inputs(u8_net(), np.zeros((1, 4)))


def test_check_inputs_binary_rejects_zero():
    net = Network("b", Input((3,), 1), [Dense("fc", np.ones((2, 3), int), 1)])
    with pytest.raises(ValueError, match=re.escape(
            "inputs must be -1 or +1 (binary), found 0 at (0, 1)")):
        golden.predict(net, np.array([[1, 0, -1]]))
    # encodings (0/1 bits) are not values: 0 is rejected
    with pytest.raises(ValueError, match="binary"):
        golden.run(net, np.array([[1, 1, 1], [0, 1, 0]]))


def test_check_inputs_signed_range():
    net = Network("s", Input((2,), 4, signed=True), [Argmax()])
    ok = golden.check_inputs(net, np.array([[-8, 7]], dtype=np.int8))
    assert ok.dtype == np.int64
    with pytest.raises(ValueError, match=re.escape("in -8..7 (s4), found 8 at (0, 1)")):
        golden.check_inputs(net, np.array([[-8, 8]]))
    with pytest.raises(ValueError, match=re.escape("found -9 at (0, 0)")):
        golden.check_inputs(net, np.array([[-9, 0]]))


def test_run_layer_unknown_kind():
    with pytest.raises(TypeError, match="no golden function for str"):
        golden.run_layer("conv", np.zeros((1, 2), int))


# --- conv2d, maxpool, flatten -------------------------------------------------------------

def _conv_loops(x, w, stride, pads, pad_value):
    """Straightforward nested-loop convolution (float64), the reference for the golden one."""
    top, left, bottom, right = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)),
                constant_values=pad_value)
    k = w.shape[1]
    ho = (xp.shape[1] - k) // stride + 1
    wo = (xp.shape[2] - k) // stride + 1
    out = np.zeros((len(x), ho, wo, w.shape[0]))
    for n in range(len(x)):
        for y in range(ho):
            for xx in range(wo):
                patch = xp[n, y * stride:y * stride + k, xx * stride:xx * stride + k, :]
                for o in range(w.shape[0]):
                    out[n, y, xx, o] = float((patch * w[o]).sum())
    return out


@pytest.mark.parametrize("h, w, c, k, stride, padding, pad_value, bits", [
    (5, 7, 3, 3, 1, "same", -1, 1),
    (5, 7, 3, 3, 1, "same", 1, 1),
    (7, 5, 2, 3, 2, "valid", 0, 8),
    (7, 7, 4, 5, 1, "same", 3, 8),
    (5, 7, 2, 1, 2, "valid", -1, 1),
    (5, 5, 1, 3, 2, "same", 0, 4),
])
def test_conv2d_matches_nested_loops(h, w, c, k, stride, padding, pad_value, bits):
    from hwgen.spec import Conv2d

    rng = np.random.default_rng(h * 100 + w * 10 + k)
    weights = rng.choice([-1, 1], size=(4, k, k, c)) if bits == 1 else \
        rng.integers(-8, 8, size=(4, k, k, c))
    t = TensorType((h, w, c), bits, False)
    x = rng.choice([-1, 1], size=(3, h, w, c)) if bits == 1 else \
        rng.integers(0, 2 ** bits, size=(3, h, w, c))
    bias = rng.integers(-5, 6, size=4)
    layer = Conv2d("c", weights, 1 if bits == 1 else 4, stride=stride, padding=padding,
                   pad_value=pad_value, bias=bias)
    net = Network("n", Input(t.shape, bits), [layer])
    got = golden.run(net, x)["c"]
    want = _conv_loops(x, weights, stride, layer.pads(h, w), pad_value) + bias
    assert got.shape == (3, *net.output_type.shape)
    assert np.array_equal(got, want.astype(np.int64))
    if padding == "same":
        assert got.shape[1:3] == (-(-h // stride), -(-w // stride))


# --- depthwise_conv2d ------------------------------------------------------------------------

def _depthwise_loops(x, w, stride, pads, pad_value, bias):
    """Nested loops over Python integers: acc[n, y, x, c] = Σ xp[...]·w[c, ky, kx] + bias[c]."""
    top, left, bottom, right = pads
    n_, h, wd, c_ = x.shape
    k = w.shape[1]

    def xp(n, y, xx, c):
        y, xx = y - top, xx - left
        return int(x[n, y, xx, c]) if 0 <= y < h and 0 <= xx < wd else pad_value

    ho = (h + top + bottom - k) // stride + 1
    wo = (wd + left + right - k) // stride + 1
    return [[[[sum(xp(n, y * stride + ky, xx * stride + kx, c) * int(w[c, ky, kx])
                   for ky in range(k) for kx in range(k)) + int(bias[c])
               for c in range(c_)] for xx in range(wo)] for y in range(ho)] for n in range(n_)]


@pytest.mark.parametrize("h, w, c, k, stride, padding, pad_value, bits, signed, wbits", [
    (5, 7, 3, 3, 1, "same", -1, 1, False, 1),    # binary × binary (XNOR path)
    (5, 7, 3, 3, 1, "same", 1, 1, False, 8),     # binary input, 8-bit filters
    (7, 5, 2, 3, 2, "valid", 0, 8, False, 1),    # u8 × ±1
    (7, 7, 4, 5, 1, "same", 3, 8, False, 16),    # 16-bit filters, nonzero pad
    (6, 6, 4, 2, 2, "valid", 0, 4, True, 4),     # even kernel
    (5, 5, 1, 3, 2, "same", -8, 4, True, 3),     # one channel, negative pad value
    (4, 6, 5, 1, 1, "valid", 0, 16, True, 16),   # 1×1: a per-channel scale, s16 × W16
])
def test_depthwise_matches_nested_loops(h, w, c, k, stride, padding, pad_value, bits, signed,
                                        wbits):
    from hwgen.spec import DepthwiseConv2d

    rng = np.random.default_rng(h * 100 + w * 10 + k + wbits)
    t = TensorType((h, w, c), bits, signed)
    lo, hi = (-1, 1) if wbits == 1 else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
    weights = rng.choice([lo, hi], size=(c, k, k)) if wbits == 1 else \
        rng.integers(lo, hi + 1, size=(c, k, k))
    weights[0] = lo  # one filter at the most negative weight
    x = random_inputs(rng, t, 3)
    bias = rng.integers(-(1 << 30), 1 << 30, size=c)
    layer = DepthwiseConv2d("dw", weights, wbits, stride=stride, padding=padding,
                            pad_value=pad_value, bias=bias)
    net = Network("n", Input(t.shape, bits, signed), [layer])
    got = golden.run(net, x)["dw"]
    assert got.dtype == np.int64 and got.shape == (3, *net.output_type.shape)
    assert got.tolist() == _depthwise_loops(x, weights, stride, layer.pads(h, w), pad_value,
                                            bias)
    lo_acc, hi_acc = net.output_type.range  # the raw output type holds every value seen
    assert lo_acc <= got.min() and got.max() <= hi_acc


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 4), st.integers(1, 3),
       st.integers(1, 2), st.sampled_from(["valid", "same"]), st.integers(0, 2**31 - 1))
def test_depthwise_is_conv2d_with_block_diagonal_filters(h, w, c, k, stride, padding, seed):
    """Channel c of a depthwise layer is a conv2d whose filter o is zero except at c = o."""
    from hwgen.spec import Conv2d, DepthwiseConv2d, SpecError

    rng = np.random.default_rng(seed)
    filters = rng.integers(-8, 8, size=(c, k, k))
    full = np.zeros((c, k, k, c), dtype=np.int64)
    for o in range(c):
        full[o, :, :, o] = filters[o]
    common = dict(stride=stride, padding=padding, pad_value=5)
    inp = Input((h, w, c), 4, True)
    try:
        dw = Network("n", inp, [DepthwiseConv2d("a", filters, 4, **common)])
    except SpecError:  # the kernel or stride does not fit this input: conv2d refuses it too
        with pytest.raises(SpecError):
            Network("n", inp, [Conv2d("a", full, 4, **common)])
        return
    conv = Network("n", inp, [Conv2d("a", full, 4, **common)])
    x = random_inputs(rng, dw.input_type, 2)
    assert np.array_equal(golden.run(dw, x)["a"], golden.run(conv, x)["a"])
    assert dw.output_type == conv.output_type


def test_depthwise_output_quantization_is_per_channel():
    from hwgen.spec import DepthwiseConv2d

    rng = np.random.default_rng(9)
    w = rng.integers(-4, 4, size=(3, 3, 3))
    rq = Requantize(np.array([5, -3, 1]), np.array([3, 1, 0]), 4, True)
    t = np.array([[-20], [0], [20]])
    x = rng.integers(0, 16, size=(4, 5, 5, 3))
    acc = np.array(_depthwise_loops(x, w, 1, (1, 1, 1, 1), 2, np.zeros(3, int)))
    for out, want in ((dict(requantize=rq),
                       np.clip((acc * rq.multiplier + [4, 1, 0]) >> rq.shift, -8, 7)),
                      (dict(thresholds=t), np.where(acc >= t[:, 0], 1, -1))):
        layer = DepthwiseConv2d("dw", w, 3, padding="same", pad_value=2, **out)
        net = Network("n", Input((5, 5, 3), 4), [layer])
        assert np.array_equal(golden.run(net, x)["dw"], want)


@pytest.mark.parametrize("size, stride", [(2, None), (3, None), (3, 2)])
def test_maxpool_matches_loops_and_is_or_on_binary(size, stride):
    from hwgen.spec import MaxPool

    rng = np.random.default_rng(size)
    x = rng.choice([-1, 1], size=(2, 7, 6, 3), p=[0.8, 0.2])
    net = Network("n", Input((7, 6, 3), 1), [MaxPool("p", size, stride)])
    got = golden.run(net, x)["p"]
    s = stride or size
    for n in range(2):
        for y in range(got.shape[1]):
            for xx in range(got.shape[2]):
                window = x[n, y * s:y * s + size, xx * s:xx * s + size, :]
                assert np.array_equal(got[n, y, xx], np.where((window > 0).any(axis=(0, 1)),
                                                              1, -1))


def test_flatten_is_channels_last_order():
    from hwgen.spec import Flatten

    x = np.arange(2 * 2 * 3 * 4).reshape(2, 2, 3, 4) % 200
    net = Network("n", Input((2, 3, 4), 8), [Flatten()])
    assert np.array_equal(golden.run(net, x)["flatten"], x.reshape(2, 24))


def test_global_sum_pool_sums_values_per_channel():
    from hwgen.spec import GlobalSumPool

    net = Network("n", Input((2, 3, 2), 1), [GlobalSumPool("g")])
    x = np.array([[[[1, -1], [1, -1], [1, 1]], [[-1, -1], [1, -1], [1, 1]]]])
    assert golden.run(net, x)["g"].tolist() == [[4, -2]]


def test_requantize_is_round_half_up_and_saturates():
    """Against exact rationals: floor(acc·M / 2**S + 1/2), clamped; ties round up (towards
    +inf) for negative values too, and shift 0 has no rounding term."""
    from fractions import Fraction
    from math import floor

    rng = np.random.default_rng(4)
    acc = rng.integers(-5000, 5000, size=(200, 5))
    acc[0] = [-6, -2, 6, 2, 0]  # exact halves below
    m = np.array([1, 3, -7, 1, 1 << 20])
    s = np.array([2, 2, 3, 0, 30])
    for lo, hi in ((0, 15), (-128, 127), (-32768, 32767)):
        got = golden.requantize(acc, m, s, lo, hi)
        ref = [[min(hi, max(lo, floor(Fraction(int(a) * int(mo), 1 << int(so)) + Fraction(1, 2))))
                for a, mo, so in zip(row, m, s, strict=True)] for row in acc]
        assert got.tolist() == ref
    assert golden.requantize(np.array([-6, -2, 6, 2]), np.ones(4, int), np.full(4, 2),
                             -99, 99).tolist() == [-1, 0, 2, 1]  # -1.5 → -1, -0.5 → 0


def test_requantized_dense_layer_uses_bias_then_requantize():
    rng = np.random.default_rng(5)
    w = rng.integers(-8, 8, size=(3, 10))
    b = np.array([5, -9, 0])
    rq = Requantize(np.array([9, -2, 1]), np.array([4, 1, 0]), 6, True)
    net = Network("n", Input((10,), 4, True), [Dense("fc", w, 4, bias=b, requantize=rq)])
    x = rng.integers(-8, 8, size=(50, 10))
    acc = x @ w.T + b
    assert np.array_equal(golden.predict(net, x),
                          np.clip((acc * rq.multiplier + [8, 1, 0]) >> rq.shift, -32, 31))
    assert net.output_type.bits == 6 and net.output_type.signed
