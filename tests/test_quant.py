"""hwgen.quant against float references, and the shipped digits_bnn design's accuracy."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hwgen import golden, quant, spec
from hwgen.numeric import TensorType

DESIGNS = Path(__file__).resolve().parents[1] / "designs"


def float_step(acc, gamma, beta, mean, var, eps, scale=1.0, levels=(0.0,)):
    """Reference: BatchNorm in float64, then the count of levels reached (sign for (0,))."""
    y = quant.batchnorm(np.asarray(acc) * scale, gamma, beta, mean, var, eps)
    return (y[..., None] >= np.asarray(levels)).sum(axis=-1)


def folded_step(acc, thresholds, flip):
    """The hardware side: flipped accumulator compared ``≥`` against the thresholds."""
    a = np.where(flip, -acc, acc)
    return (a[..., None] >= thresholds).sum(axis=-1)


def check_fold(acc, lo, hi, gamma, beta, mean, var, eps, scale=1.0, levels=(0.0,)):
    t, flip = quant.fold_batchnorm(gamma, beta, mean, var, eps, acc_range=(lo, hi),
                                   scale=scale, levels=levels)
    assert t.dtype == np.int64 and t.shape == (len(gamma), len(levels))
    assert (np.diff(t, axis=1) >= 0).all()
    np.testing.assert_array_equal(flip, np.asarray(gamma) < 0)
    np.testing.assert_array_equal(folded_step(acc, t, flip),
                                  float_step(acc, gamma, beta, mean, var, eps, scale, levels))
    return t, flip


def test_binarize_zero_is_plus_one():
    np.testing.assert_array_equal(quant.binarize([-0.5, -0.0, 0.0, 1e-9, 3.0]),
                                  [-1, 1, 1, 1, 1])


def test_fold_matches_batchnorm_sign_on_every_accumulator():
    rng = np.random.default_rng(1)
    n, k = 64, 57  # binary dot products of length 57: acc in -57..57
    gamma = rng.normal(0, 1, n)
    gamma[:8] = -np.abs(gamma[:8])  # negative scales are flipped rows
    mean, var = rng.normal(0, 6, n), rng.uniform(0, 40, n)
    beta = rng.normal(0, 1, n)
    acc = np.arange(-k, k + 1)[:, None].repeat(n, axis=1)
    check_fold(acc, -k, k, gamma, beta, mean, var, 1e-5)


def test_fold_exact_at_integer_boundaries():
    # BatchNorm crossing zero at (mathematically) integer accumulators, where the closed form
    # ceil(mean − beta·std/gamma) is off by one after rounding in a few percent of channels.
    rng = np.random.default_rng(5)
    n, eps = 2000, 1e-5
    gamma = rng.integers(1, 20, n) / 10 * rng.choice([-1, 1], n)
    var = rng.integers(1, 10, n) ** 2 - eps
    beta = rng.integers(-10, 10, n) * gamma / np.sqrt(var + eps)
    mean = rng.integers(-20, 20, n).astype(float)
    acc = np.arange(-40, 41)[:, None].repeat(n, axis=1)
    t, flip = check_fold(acc, -40, 40, gamma, beta, mean, var, eps)
    s = np.where(flip, -1, 1)
    closed = np.ceil(s * (mean - beta * np.sqrt(var + eps) / gamma))
    assert (closed != t[:, 0]).any()  # the correction step was needed, and was made


def test_fold_zero_variance_and_zero_gamma():
    acc = np.arange(-20, 21)[:, None].repeat(4, axis=1)
    gamma = np.array([2.0, -3.0, 0.0, 0.0])
    beta = np.array([0.5, 0.5, 0.0, -1e-3])  # gamma 0: always +1 (beta ≥ 0) / always -1
    mean = np.array([1.5, -2.0, 0.0, 0.0])
    var = np.zeros(4)
    t, _ = check_fold(acc, -20, 20, gamma, beta, mean, var, 1e-5)
    assert t[2, 0] == -20 and t[3, 0] == 21  # the ends of the reachable range


def test_fold_clips_to_the_reachable_range():
    t, _ = check_fold(np.arange(-5, 6)[:, None].repeat(2, axis=1), -5, 5,
                      gamma=[1.0, 1.0], beta=[0.0, 0.0], mean=[100.0, -100.0],
                      var=[1.0, 1.0], eps=1e-5)
    np.testing.assert_array_equal(t[:, 0], [6, -5])


def test_fold_multibit_input_with_scale():
    # A first layer trained on x / 255 with binary weights: acc of u8 inputs.
    rng = np.random.default_rng(2)
    w = quant.binarize(rng.normal(size=(32, 16)))
    x = rng.integers(0, 256, size=(500, 16))
    layer = spec.Dense("fc", w, 1)
    lo, hi = layer.acc_bounds(TensorType((16,), 8, False))
    acc = x @ w.T
    gamma, beta = rng.normal(0, 1, 32), rng.normal(0, 0.5, 32)
    a_f = acc / 255
    mean, var = a_f.mean(0), a_f.var(0)
    t, flip = check_fold(acc, lo, hi, gamma, beta, mean, var, 1e-4, scale=1 / 255)
    # and through the golden model, with the rows flipped
    fw, _ = quant.flip_rows(w, flip)
    net_layer = spec.Dense("fc", fw, 1, thresholds=t)
    net = spec.Network("n", spec.Input((16,), 8), [net_layer])
    want = np.where(float_step(acc, gamma, beta, mean, var, 1e-4, 1 / 255) == 1, 1, -1)
    np.testing.assert_array_equal(golden.predict(net, x), want)


def test_fold_multibit_output_levels():
    rng = np.random.default_rng(3)
    n = 16
    gamma = rng.normal(0, 1, n)
    beta, mean, var = rng.normal(0, 1, n), rng.normal(0, 5, n), rng.uniform(0.5, 30, n)
    acc = np.arange(-40, 41)[:, None].repeat(n, axis=1)
    levels = np.arange(3) + 0.5  # a 2-bit quantized ReLU
    check_fold(acc, -40, 40, gamma, beta, mean, var, 1e-5, levels=levels)


def test_fold_rejects_bad_arguments():
    with pytest.raises(ValueError, match="var \\+ eps must be positive"):
        quant.fold_batchnorm([1.0], [0.0], [0.0], [0.0], 0.0, acc_range=(-1, 1))
    with pytest.raises(ValueError, match="levels must be a non-empty ascending"):
        quant.fold_batchnorm([1.0], [0.0], [0.0], [1.0], 0.0, acc_range=(-1, 1),
                             levels=(1.0, 0.0))


def test_flip_rows():
    w = np.array([[1, -1], [-1, -1], [1, 1]])
    fw, fb = quant.flip_rows(w, [False, True, False], np.array([3, 4, 5]))
    np.testing.assert_array_equal(fw, [[1, -1], [1, 1], [1, 1]])
    np.testing.assert_array_equal(fb, [3, -4, 5])
    assert quant.flip_rows(w, [True, True, True])[1] is None


def test_quantize_classifier_keeps_argmax():
    rng = np.random.default_rng(4)
    w, b = rng.normal(0, 0.3, (10, 128)), rng.normal(0, 0.5, 10)
    qw, qb, scale = quant.quantize_classifier(w, b, bits=16)
    assert qw.dtype == np.int64 and np.abs(qw).max() == 32767
    x = rng.choice([-1, 1], size=(2000, 128))
    f = x @ w.T + b
    q = x @ qw.T + qb
    # integer scores are scale × float scores up to rounding (≤ 0.5 per term and bias)
    assert np.abs(q - scale * f).max() <= 0.5 * (128 + 1)
    top2 = np.sort(f, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) * scale > 129  # margins rounding cannot close
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(q.argmax(1)[clear], f.argmax(1)[clear])
    # and it is a valid 16-bit classifier layer
    layer = spec.Dense("fc", qw, 16, bias=qb)
    spec.Network("n", spec.Input((128,), 1), [layer, spec.Argmax()])


def test_quantize_unsigned():
    np.testing.assert_array_equal(quant.quantize_unsigned([0, 1, 16, 17.2, -3], 8, 15),
                                  [0, 15, 240, 255, 0])
    np.testing.assert_array_equal(quant.quantize_unsigned([0.24, 0.26, 2], 2, 2),
                                  [0, 1, 3])


def test_digits_bnn_reaches_its_stated_accuracy():
    path = DESIGNS / "digits_bnn.toml"
    net = spec.load(path)
    match = re.search(r"^# integer golden test accuracy: [0-9.]+ \((\d+)/(\d+)\)$",
                      path.read_text(), re.MULTILINE)
    assert match, "the header states the integer golden test accuracy"
    correct, total = int(match[1]), int(match[2])
    assert net.dataset is not None
    with np.load(net.dataset, allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    assert len(y) == total
    got = int((golden.predict(net, x) == y).sum())
    assert got == correct  # the integer model is exact: the same count, not just close
    assert correct / total >= 0.9


def test_mnist_mixed_reaches_its_stated_accuracy():
    """The shipped mixed-precision design: the integer accuracy its header states, on the
    whole test split, and a mix of weight widths and both requantization forms."""
    path = DESIGNS / "mnist_mixed.toml"
    net = spec.load(path)
    match = re.search(r"float (0\.\d+), integer golden model (0\.\d+)\.$", path.read_text(),
                      re.MULTILINE)
    assert match, "the header states the float and integer test accuracy"
    with np.load(net.dataset, allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    assert len(y) == 10000
    assert f"{np.mean(golden.predict(net, x) == y):.4f}" == match[2]
    assert float(match[2]) >= 0.97
    weighted = [la for la in net.layers if la.kind in ("conv2d", "dense")]
    assert len({la.weight_bits for la in weighted}) > 1
    assert any(la.requantize is not None for la in weighted)
    assert any(la.thresholds is not None and la.thresholds.shape[1] > 1 for la in weighted)


# Multi-bit export: weight and activation steps, requantize and uniform thresholds.


def test_quantize_weights_per_channel():
    rng = np.random.default_rng(11)
    w = rng.normal(0, 1, (6, 3, 3, 4)) * np.array([1e-3, 0.1, 1, 10, 100, 0])[:, None, None,
                                                                             None]
    for bits in (2, 4, 8, 16):
        q, step = quant.quantize_weights(w, bits)
        qmax = 2 ** (bits - 1) - 1
        assert q.dtype == np.int64 and q.shape == w.shape and step.shape == (6,)
        assert np.abs(q).max() == qmax  # every nonzero channel reaches the full range
        np.testing.assert_array_equal(np.abs(q.reshape(6, -1)).max(axis=1)[:5], qmax)
        err = np.abs(q * step[:, None, None, None] - w)
        assert (err <= step[:, None, None, None] / 2 * (1 + 1e-12)).all()
        assert step[5] == 1 and not q[5].any()
    with pytest.raises(ValueError, match="bits must be 2..16"):
        quant.quantize_weights(w, 1)


def test_calibrate_and_quantize_activations():
    x = np.array([-3.0, 0.0, 0.5, 1.25, 2.5])
    assert quant.calibrate(x, 4, signed=False) == 2.5 / 15
    assert quant.calibrate(x, 4, signed=True) == 3.0 / 7
    assert quant.calibrate(np.zeros(3), 8, signed=False) == 1.0
    q = quant.quantize_activations(x, 2.5 / 15, 4, signed=False)
    np.testing.assert_array_equal(q, [0, 0, 3, 8, 15])  # 7.5 rounds half up to 8
    np.testing.assert_array_equal(quant.quantize_activations(x, 3.0 / 7, 4, signed=True),
                                  [-7, 0, 1, 3, 6])  # 2.916… → 3, 5.83… → 6
    np.testing.assert_array_equal(quant.quantize_activations([-0.5, 0.5, 1.5], 1.0, 3, True),
                                  [0, 1, 2])  # half up, also below zero


def test_percentile_calibration_lets_outliers_saturate():
    x = np.concatenate([np.linspace(0.0, 1.0, 100_000), [50.0]])  # one outlier
    assert quant.calibrate(x, 4, False, "minmax") == 50.0 / 15
    # NumPy's linear percentile of 0..1 (and the outlier) at 99.99 %: about 0.9999
    assert quant.calibrate(x, 4, False, "percentile") == pytest.approx(0.9999 / 15, rel=1e-3)
    with pytest.raises(ValueError, match="expected one of minmax, percentile, mse"):
        quant.calibrate(x, 4, False, "entropy")


def test_mse_calibration_finds_the_step_of_least_error():
    """Brute force over a fine grid of steps is the oracle: the search's step is within its
    grid's spacing of the best, and at least as good as min/max."""
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal(20_000)) ** 2  # a ReLU-like long tail
    bits = 3

    def error(step: float) -> float:
        return float(np.sum((x - step * np.clip(np.rint(x / step), 0, 7)) ** 2))

    grid = np.linspace(0.01, x.max() / 7, 4000)
    best = grid[np.argmin([error(s) for s in grid])]
    step = quant.calibrate(x, bits, False, "mse")
    assert error(step) <= error(quant.calibrate(x, bits, False)) / 2  # min/max wastes codes
    assert error(step) <= error(best) * 1.05  # the search's steps are 5 % apart
    assert quant.CALIBRATIONS == ("minmax", "percentile", "mse")


def test_uniform_levels_fold_is_the_quantizer_on_every_accumulator():
    # BatchNorm then the unsigned n-bit quantizer, with per-channel weight steps: the folded
    # thresholds reproduce the float path exactly on every reachable integer accumulator.
    rng = np.random.default_rng(12)
    n, bits = 48, 3
    scale = 0.004 * rng.uniform(0.5, 2, n)  # x_step · w_step[o]
    gamma = rng.normal(0, 1, n)
    beta, mean, var = rng.normal(0, 0.5, n), rng.normal(0, 3, n), rng.uniform(0.1, 4, n)
    out_step = 0.25
    acc = np.arange(-2000, 2001)[:, None].repeat(n, axis=1)
    t, flip = quant.fold_batchnorm(gamma, beta, mean, var, 1e-5, acc_range=(-2000, 2000),
                                   scale=scale, levels=quant.uniform_levels(bits, out_step))
    hw = (np.where(flip, -acc, acc)[..., None] >= t).sum(axis=-1)
    y = quant.batchnorm(acc * scale, gamma, beta, mean, var, 1e-5)
    np.testing.assert_array_equal(hw, quant.quantize_activations(y, out_step, bits, False))
    assert len(np.unique(hw)) == 2 ** bits  # every output code occurs


@pytest.mark.parametrize("bits, signed, mbits, common",
                         [(8, False, 16, False), (4, True, 16, False), (6, False, 8, False),
                          (6, False, 12, True)])
def test_fold_requantize_tracks_the_float_layer(bits, signed, mbits, common):
    # A W6 A8 dense layer with bias and BatchNorm, exported: the integer requantize output
    # equals the float quantizer wherever the float value is farther from a rounding boundary
    # than the export's error bound, and is never more than one step away.
    rng = np.random.default_rng(bits + mbits)
    n_in, n_out, wbits, abits = 40, 24, 6, 8
    x_step = 0.02
    wq, w_step = quant.quantize_weights(rng.normal(0, 0.3, (n_out, n_in)), wbits)
    x = rng.integers(0, 2 ** abits, (3000, n_in))
    acc = x @ wq.T
    bias_f = rng.normal(0, 0.5, n_out)
    gamma = rng.normal(0, 1, n_out)
    beta, mean, var = rng.normal(0, 0.3, n_out), rng.normal(0, 1, n_out), rng.uniform(.5, 3, n_out)
    y = quant.batchnorm(acc * (x_step * w_step) + bias_f, gamma, beta, mean, var, 1e-5)
    out_step = quant.calibrate(y, bits, signed)
    lo, hi = spec.Dense("d", wq, wbits).acc_bounds(TensorType((n_in,), abits))
    rq, b = quant.fold_requantize(x_step * w_step, out_step, bits=bits, signed=signed,
                                  gamma=gamma, beta=beta, mean=mean, var=var, eps=1e-5,
                                  bias=bias_f, acc_range=(lo, hi), multiplier_bits=mbits,
                                  common_shift=common)
    assert (np.abs(rq.multiplier) < 2 ** (mbits - 1)).all()
    assert (len(set(rq.shift.tolist())) == 1) == common
    layer = spec.Dense("d", wq, wbits, bias=b, requantize=rq)  # the spec accepts it
    hw = golden.quantize_output(layer, acc + b)
    want = quant.quantize_activations(y, out_step, bits, signed)
    assert np.abs(hw - want).max() <= 1
    a = gamma * x_step * w_step / (np.sqrt(var + 1e-5) * out_step)
    bound = np.abs(a) / 2 + np.abs(acc + b) * np.abs(a - rq.multiplier / 2.0 ** rq.shift) + 1e-9
    v = y / out_step
    clear = np.abs(v - np.floor(v) - 0.5) > bound  # far from every k + 1/2
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(hw[clear], want[clear])


def test_fold_requantize_negative_gamma_and_plain_layer():
    # No BatchNorm (identity defaults), a negative gamma gives a negative multiplier.
    rq, b = quant.fold_requantize([0.01, 0.02], 0.1, bits=8, acc_range=(-100, 100))
    np.testing.assert_array_equal(b, [0, 0])
    np.testing.assert_allclose(rq.multiplier / 2.0 ** rq.shift, [0.1, 0.2], rtol=2 ** -14)
    rq, _ = quant.fold_requantize([0.01], 0.1, bits=8, gamma=-2.0, acc_range=(-100, 100))
    assert rq.multiplier[0] < 0


def test_fold_requantize_refuses():
    with pytest.raises(ValueError, match="gamma is 0 at channel 1"):
        quant.fold_requantize([1.0, 1.0], 1.0, bits=8, gamma=[1, 0], acc_range=(0, 9))
    with pytest.raises(ValueError, match="zero multiplier"):
        quant.fold_requantize([1e-20], 1.0, bits=8, acc_range=(0, 9))
    with pytest.raises(ValueError, match="positive"):
        quant.fold_requantize([1.0], 0.0, bits=8, acc_range=(0, 9))
    with pytest.raises(ValueError, match="channel 1: .* zero multiplier at the common shift"):
        quant.fold_requantize([1.0, 1e-9], 1.0, bits=8, acc_range=(0, 9), common_shift=True)
