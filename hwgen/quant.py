"""Export helpers: float-trained pieces to the integers of the numeric contract.

Floats live here and in training scripts only; what these functions return is what a
:class:`hwgen.spec.Dense` or :class:`hwgen.spec.Input` holds. NumPy only.

The conventions, which the golden model (:mod:`hwgen.golden`) fixes:

- ``sign(0) = +1``, for weights and activations alike: a binary value is never 0.
- A thresholded output is ``#{t : acc ≥ T[o, t]}`` with ``T`` ascending, so folding a
  BatchNorm followed by a step function gives the smallest integer accumulator at which each
  step is reached. A negative BatchNorm scale makes the step function *decreasing* in the
  accumulator; the fold then negates that output channel's weight row (and bias), which
  turns ``acc ≤ τ`` into ``−acc ≥ −τ``, so the hardware only ever compares "≥".
- Folded thresholds reproduce the float64 evaluation of :func:`batchnorm` exactly on every
  integer accumulator, not just up to rounding: the closed-form threshold is corrected
  against that very expression (see :func:`fold_batchnorm`).
"""

from __future__ import annotations

import numpy as np

from .layers.weighted import MAX_SHIFT, REQUANTIZE_PRODUCT_BITS, Requantize
from .numeric import value_range

__all__ = [
    "CALIBRATIONS",
    "binarize",
    "batchnorm",
    "calibrate",
    "fold_batchnorm",
    "fold_requantize",
    "flip_rows",
    "quantize_activations",
    "quantize_classifier",
    "quantize_unsigned",
    "quantize_weights",
    "uniform_levels",
]


def binarize(w: np.ndarray) -> np.ndarray:
    """Signs of ``w`` as ``int64`` ±1, with ``sign(0) = +1`` (the training forward pass must
    use the same rule, or a latent weight of exactly 0 would change meaning at export)."""
    return np.where(np.asarray(w) >= 0, 1, -1).astype(np.int64)


def batchnorm(a: np.ndarray, gamma, beta, mean, var, eps: float) -> np.ndarray:
    """Inference-mode BatchNorm in float64: ``gamma·(a − mean)/sqrt(var + eps) + beta``.

    Per-channel parameters broadcast along the last axis of ``a``. This is the reference
    expression :func:`fold_batchnorm` matches bit for bit; training code should evaluate its
    float model with it too.
    """
    a = np.asarray(a, dtype=np.float64)
    std = np.sqrt(np.asarray(var, dtype=np.float64) + eps)
    return np.asarray(gamma, np.float64) * (a - np.asarray(mean, np.float64)) / std \
        + np.asarray(beta, np.float64)


def fold_batchnorm(gamma, beta, mean, var, eps: float, *, acc_range: tuple,
                   scale: float = 1.0, levels=(0.0,)) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds (and row flips) equal to BatchNorm followed by a step function.

    The float layer computes, per output channel ``o``, the pre-activation ``scale·acc[o]``
    from the integer accumulator ``acc`` of the hardware (``scale`` is how the float model's
    inputs relate to the integer ones, e.g. ``1/255`` for pixels trained as ``x/255``), then
    ``y = batchnorm(scale·acc, gamma, beta, mean, var, eps)`` and outputs
    ``#{k : y ≥ levels[k]}``. ``levels`` must ascend and have ``2**n − 1`` entries for an
    n-bit output; the default ``(0.0,)`` is ``sign`` with ``sign(0) = +1`` (a binary output).

    Parameters
    ----------
    gamma, beta, mean, var : array-like, one value per output channel
        BatchNorm scale, shift and population statistics.
    eps : float
        BatchNorm epsilon; ``var + eps`` must be positive (``var = 0`` is fine with
        ``eps > 0``).
    acc_range : (lo, hi), scalars or per-channel arrays
        The reachable integer accumulator range *before* any flip (e.g. from
        ``Dense.acc_bounds``). Thresholds are clipped to ``lo .. hi + 1`` of the possibly
        flipped accumulator: a step reached by every accumulator gets ``lo``, one reached by
        none gets ``hi + 1``. A zero ``gamma`` makes ``y = beta`` constant and is handled
        this way.
    scale : float or per-channel array
        Positive factor from integer accumulator to float pre-activation (per output
        channel for per-channel weight steps: ``x_step · w_step[o]``).
    levels : ascending sequence of floats
        Step positions on the BatchNorm output.

    Returns
    -------
    thresholds : int64 array (channels, len(levels)), each row ascending
        For the accumulator of the flipped layer.
    flip : bool array (channels,)
        Channels whose weight row and bias must be negated (``gamma < 0``); pass to
        :func:`flip_rows`.
    """
    gamma = np.atleast_1d(np.asarray(gamma, np.float64))
    n = gamma.shape[0]

    def channel(v) -> np.ndarray:
        return np.broadcast_to(np.asarray(v, np.float64), (n,)).copy()

    beta, mean, var = channel(beta), channel(mean), channel(var)
    scale = channel(scale)
    levels = np.asarray(levels, np.float64).reshape(-1)
    if not levels.size or (np.diff(levels) < 0).any():
        raise ValueError(f"levels must be a non-empty ascending sequence, got {levels!r}")
    if not (scale > 0).all():
        raise ValueError(f"scale must be positive, got {scale!r}")
    if not (var + eps > 0).all():
        raise ValueError("var + eps must be positive for every channel")
    lo = np.broadcast_to(np.asarray(acc_range[0], np.int64), (n,))
    hi = np.broadcast_to(np.asarray(acc_range[1], np.int64), (n,))
    if (lo > hi).any():
        raise ValueError("acc_range: lo must not exceed hi")

    flip = gamma < 0
    s = np.where(flip, -1, 1)
    # After the flip the accumulator is a = s·acc, in flo .. fhi, and y(a) is nondecreasing.
    flo, fhi = np.where(flip, -hi, lo), np.where(flip, -lo, hi)

    def y(a: np.ndarray) -> np.ndarray:  # a: (n, levels) integers of the flipped layer
        return batchnorm(((s[:, None] * a) * scale[:, None]).T, gamma, beta, mean, var, eps).T

    std = np.sqrt(var + eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        # acc ≥ mean/scale + (L − beta)·std/(gamma·scale) for gamma > 0; ≤ for gamma < 0.
        tau = (mean[:, None] + (levels[None, :] - beta[:, None]) * std[:, None]
               / gamma[:, None]) / scale[:, None]
        t = np.ceil(s[:, None] * tau)
    t = np.where(np.isfinite(t), t, 0.0)
    t = np.clip(t, flo[:, None], fhi[:, None] + 1).astype(np.int64)
    # gamma == 0: y = beta whatever the accumulator, so a level is reached by all or by none.
    reached = beta[:, None] >= levels[None, :]
    t = np.where((gamma == 0)[:, None], np.where(reached, flo[:, None], fhi[:, None] + 1), t)
    # Correct the closed form against the float expression itself: lower t while t - 1
    # still reaches the level, raise it while t does not. y is nondecreasing in a (each
    # float operation rounds monotonically), so this ends at the smallest reaching t, within
    # a step or two of the closed form.
    target = levels[None, :]
    for _ in range(64):
        down = (t > flo[:, None]) & (y(t - 1) >= target)
        up = (t <= fhi[:, None]) & (y(t) < target)
        if not (down.any() or up.any()):
            break
        t = t - down + (up & ~down)
    else:  # pragma: no cover - would mean y is not monotone
        raise ArithmeticError("threshold correction did not converge")
    return t, flip


def flip_rows(weights: np.ndarray, flip: np.ndarray, bias: np.ndarray | None = None):
    """``weights`` (and ``bias``) with the rows marked in ``flip`` negated.

    Binary weights stay ±1; ``bias`` may be ``None``. Returns ``(weights, bias)``.
    """
    f = np.where(np.asarray(flip, bool), -1, 1).astype(np.int64)
    w = np.asarray(weights, np.int64) * f[:, None]
    return w, None if bias is None else np.asarray(bias, np.int64) * f


def quantize_classifier(weights: np.ndarray, bias: np.ndarray | None = None, *,
                        bits: int = 16) -> tuple[np.ndarray, np.ndarray | None, float]:
    """A float classifier ``x @ weights.T + bias`` as integer weights, integer bias, scale.

    One scale per layer, ``scale = (2**(bits−1) − 1) / max|weights|``: the largest weight
    uses the full symmetric range. Weights and bias are rounded to nearest after
    multiplying by ``scale``; the integer scores approximate ``scale`` times the float ones,
    and a positive scale leaves the argmax unchanged, so only rounding (below one part in
    ``2**(bits−1)`` of the largest weight per term) can move a near-tie. The bias is not
    bounded by ``bits`` (the hardware adds it to the wide accumulator) but must fit 32 bits.

    Returns ``(int weights, int bias or None, scale)``.
    """
    w = np.asarray(weights, np.float64)
    qmax = value_range(bits, True)[1]
    peak = float(np.abs(w).max()) if w.size else 0.0
    scale = qmax / peak if peak > 0 else 1.0
    qw = np.clip(np.rint(w * scale), -qmax, qmax).astype(np.int64)
    qb = None
    if bias is not None:
        qb = np.rint(np.asarray(bias, np.float64) * scale).astype(np.int64)
        if np.abs(qb).max(initial=0) >= 1 << 31:
            raise ValueError("the scaled bias does not fit 32 bits; the bias is out of "
                             "proportion to the weights")
    return qw, qb, scale


def quantize_unsigned(x: np.ndarray, bits: int, scale: float = 1.0) -> np.ndarray:
    """Inputs as ``bits``-bit unsigned integers: ``clip(round(x·scale), 0, 2**bits − 1)``.

    E.g. scikit-learn's 8×8 digits (values 0..16) with ``bits=8, scale=15`` give 0..240,
    exactly 15 times the original values. Rounding is to nearest, ties to even.
    """
    hi = value_range(bits, False)[1] if bits > 1 else 1
    return np.clip(np.rint(np.asarray(x, np.float64) * scale), 0, hi).astype(np.int64)


# Multi-bit export: per-channel weight steps, calibrated activation steps, BatchNorm folded
# into scale + shift or into thresholds. A real value ``v`` and its integer ``q`` relate by
# ``v ≈ q · step`` throughout.


def quantize_weights(weights: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric quantization of a float weight tensor (axis 0 = output
    channel; any trailing shape, e.g. conv kernels).

    ``step[o] = max|weights[o]| / (2**(bits−1) − 1)`` and ``q = clip(rint(w / step), ±qmax)``,
    so the most negative code ``−2**(bits−1)`` is never used (the range stays symmetric). A
    channel of zeros gets step 1 and zero codes. ``bits`` is 2..16; for 1-bit weights use
    :func:`binarize`. Returns ``(int64 codes, float64 steps)``.
    """
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be 2..16 (1-bit weights: use binarize), got {bits!r}")
    w = np.asarray(weights, np.float64)
    qmax = value_range(bits, True)[1]
    peak = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    step = np.where(peak > 0, peak / qmax, 1.0)
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = np.clip(np.rint(w / step.reshape(shape)), -qmax, qmax).astype(np.int64)
    return q, step


#: How :func:`calibrate` chooses an activation step: the largest value seen (``minmax``), the
#: 99.99th percentile (``percentile``) or the step of least squared error (``mse``).
CALIBRATIONS = ("minmax", "percentile", "mse")
#: ``percentile`` calibration's percentile of the values (of their magnitudes when signed).
CALIBRATION_PERCENTILE = 99.99
#: ``mse`` calibration tries the min/max step times these fractions.
MSE_STEP_FRACTIONS = np.geomspace(0.05, 1.0, 60)
#: ``mse`` calibration looks at most at this many values (evenly spaced through the samples).
MSE_MAX_VALUES = 1 << 20


def calibrate(samples: np.ndarray, bits: int, signed: bool, method: str = "minmax") -> float:
    """The activation step for ``samples`` (float activations on sample data) at ``bits``.

    ``minmax``: the largest magnitude seen onto the largest ``bits``-bit code (unsigned:
    ``max(samples) / (2**bits − 1)``, values below 0 clamp to 0, as after a ReLU; signed:
    ``max|samples| / (2**(bits−1) − 1)``). ``percentile``: the
    :data:`CALIBRATION_PERCENTILE` th percentile instead of the largest (outliers saturate).
    ``mse``: of the min/max step times :data:`MSE_STEP_FRACTIONS`, the one whose rounding
    and saturation error ``Σ (x − step·clamp(round(x/step)))²`` on the samples is least
    (the error-minimizing step search of Sheng et al., "A Quantization-Friendly Separable
    Convolution for MobileNets", 2018, without the offset: hwgen's activations have zero
    point 0). All-zero samples give step 1.
    """
    if method not in CALIBRATIONS:
        raise ValueError(f"calibration method {method!r}: expected one of "
                         f"{', '.join(CALIBRATIONS)}")
    x = np.asarray(samples, np.float64).reshape(-1)
    lo, hi = value_range(bits, signed) if bits > 1 else (0, 1)
    seen = np.abs(x) if signed else np.maximum(x, 0.0)
    peak = float(seen.max(initial=0.0))
    if peak <= 0:
        return 1.0
    if method == "percentile":
        top = float(np.percentile(seen, CALIBRATION_PERCENTILE))
        return (top if top > 0 else peak) / hi
    if method == "minmax":
        return peak / hi
    if x.size > MSE_MAX_VALUES:
        x = x[np.linspace(0, x.size - 1, MSE_MAX_VALUES).astype(np.int64)]
    steps = peak / hi * MSE_STEP_FRACTIONS
    errors = [float(np.sum((x - step * np.clip(np.rint(x / step), lo, hi)) ** 2))
              for step in steps]
    return float(steps[int(np.argmin(errors))])


def quantize_activations(x: np.ndarray, step: float, bits: int, signed: bool) -> np.ndarray:
    """``clamp(floor(x / step + 1/2), lo, hi)``: round half up and saturate to ``bits``, the
    rounding the hardware's requantize and :func:`uniform_levels` thresholds apply."""
    lo, hi = value_range(bits, signed) if bits > 1 else (0, 1)
    return np.clip(np.floor(np.asarray(x, np.float64) / step + 0.5), lo, hi).astype(np.int64)


def uniform_levels(bits: int, step: float) -> np.ndarray:
    """Levels for :func:`fold_batchnorm` that make its step function the unsigned ``bits``-bit
    uniform quantizer of :func:`quantize_activations`: ``(k − 1/2)·step`` for k = 1 .. 2**bits
    − 1 (``#{k : y ≥ level_k}`` = ``clamp(floor(y/step + 1/2), 0, 2**bits − 1)``)."""
    return (np.arange(1, 2 ** bits) - 0.5) * step


def fold_requantize(scale, out_step: float, *, bits: int, signed: bool = False,
                    gamma=1.0, beta=0.0, mean=0.0, var=1.0, eps: float = 0.0, bias=0.0,
                    acc_range: tuple, multiplier_bits: int = 16,
                    common_shift: bool = False) -> tuple[Requantize, np.ndarray]:
    """A float layer's affine tail (bias, then inference BatchNorm) and output quantization as
    a :class:`~hwgen.spec.Requantize` and an integer accumulator bias.

    The float layer computes ``z[o] = scale[o]·acc[o] + bias[o]`` from the integer dot product
    ``acc`` (``scale[o] = x_step · w_step[o]``), then ``y = batchnorm(z, gamma, beta, mean,
    var, eps)`` (the default parameters are the identity: no BatchNorm) and outputs
    ``quantize_activations(y, out_step, bits, signed)`` (an unsigned output is a ReLU). That is
    ``y/out_step = a[o]·(acc[o] + c[o]/a[o])`` with ``a = gamma·scale/(std·out_step)``; the
    hardware gets ``multiplier = rint(a·2**shift)`` and the integer bias ``rint(c/a)``.

    ``shift`` is the largest (≤ 47) for which ``|multiplier| < 2**(multiplier_bits − 1)`` and
    every ``(acc + bias)·multiplier`` over ``acc_range`` (lo, hi before the bias) fits the
    48-bit product. The integer output then differs from the float one by at most one step
    where ``|a|/2`` (the bias rounding, in output steps) plus the multiplier's relative error
    times ``|y/out_step|`` stays below the distance to a rounding boundary; tests/test_quant.py
    measures it.

    ``common_shift`` gives every channel the same shift (the largest all of them allow), so
    channels with a smaller ``|a|`` get fewer multiplier bits. The hardware aligns per-channel
    shifts to the largest one by widening the multipliers (docs/cost-model.md), so a common
    shift keeps its products exactly ``multiplier_bits`` wide: the cheaper choice in logic.

    A channel with ``gamma = 0`` is constant and has no scale + shift form; it is
    refused, as is one whose ``a`` rounds to a zero multiplier even at the largest shift.

    Returns ``(requantize, int64 bias)``.
    """
    scale = np.atleast_1d(np.asarray(scale, np.float64))
    n = scale.shape[0]

    def channel(v) -> np.ndarray:
        return np.broadcast_to(np.asarray(v, np.float64), (n,)).copy()

    gamma, beta, mean, var, bias = map(channel, (gamma, beta, mean, var, bias))
    if not (scale > 0).all() or not out_step > 0:
        raise ValueError("scale and out_step must be positive")
    if not (var + eps > 0).all():
        raise ValueError("var + eps must be positive for every channel")
    if (gamma == 0).any():
        raise ValueError(f"gamma is 0 at channel {int(np.flatnonzero(gamma == 0)[0])}: a "
                         "constant output channel has no scale + shift form")
    if not 2 <= multiplier_bits <= 32:
        raise ValueError(f"multiplier_bits must be 2..32, got {multiplier_bits!r}")
    std = np.sqrt(var + eps)
    a = gamma * scale / (std * out_step)
    c = (gamma * (bias - mean) / std + beta) / out_step
    int_bias = np.rint(c / a).astype(np.int64)
    lo = np.broadcast_to(np.asarray(acc_range[0], np.int64), (n,)) + int_bias
    hi = np.broadcast_to(np.asarray(acc_range[1], np.int64), (n,)) + int_bias
    reach = np.maximum(np.abs(lo), np.abs(hi)).astype(np.float64) + 1
    mlimit = float(1 << (multiplier_bits - 1))
    plimit = float(1 << (REQUANTIZE_PRODUCT_BITS - 1))

    def fits(o: int, s: int) -> bool:
        m = abs(int(np.rint(a[o] * 2.0 ** s)))
        return m < mlimit and reach[o] * m + 2.0 ** s < plimit

    shift = np.array([next((s for s in range(MAX_SHIFT, -1, -1) if fits(o, s)), -1)
                      for o in range(n)], np.int64)
    if (shift < 0).any():  # pragma: no cover - s = 0 always fits unless |a| is huge
        o = int(np.flatnonzero(shift < 0)[0])
        raise ValueError(f"channel {o}: scale {a[o]!r} per accumulator step is too large for "
                         f"a {multiplier_bits}-bit multiplier")
    if common_shift:
        shift[:] = shift.min()
    mult = np.rint(a * 2.0 ** shift).astype(np.int64)
    if (mult == 0).any():
        o = int(np.flatnonzero(mult == 0)[0])
        raise ValueError(f"channel {o}: scale {a[o]!r} per accumulator step rounds to a zero "
                         f"multiplier{' at the common shift' if common_shift else ''}; use a "
                         f"smaller out_step" + ("" if not common_shift else
                                                " or per-channel shifts"))
    return Requantize(mult, shift, bits, signed), int_bias
