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

from .numeric import value_range

__all__ = [
    "binarize",
    "batchnorm",
    "fold_batchnorm",
    "flip_rows",
    "quantize_classifier",
    "quantize_unsigned",
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
    scale : float
        Positive factor from integer accumulator to float pre-activation.
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
    levels = np.asarray(levels, np.float64).reshape(-1)
    if not levels.size or (np.diff(levels) < 0).any():
        raise ValueError(f"levels must be a non-empty ascending sequence, got {levels!r}")
    if not scale > 0:
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
        return batchnorm(((s[:, None] * a) * scale).T, gamma, beta, mean, var, eps).T

    std = np.sqrt(var + eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        # acc ≥ mean/scale + (L − beta)·std/(gamma·scale) for gamma > 0; ≤ for gamma < 0.
        tau = (mean[:, None] + (levels[None, :] - beta[:, None]) * std[:, None]
               / gamma[:, None]) / scale
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
