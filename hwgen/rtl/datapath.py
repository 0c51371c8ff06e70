"""How a folded unit computes its dot products: the :class:`Datapath` mode chosen from the
operand widths and the integer ranges on the way, and the checks of the folded units'
``mac`` and ``weights`` arguments."""

from __future__ import annotations

import enum

import numpy as np
from amaranth import signed, unsigned

from ..layers import Mac
from ..layers.weighted import Requantize, WeightMatrix
from ..numeric import TensorType, dot_bounds, width_for

__all__ = ["Datapath", "Mode", "check_mac", "check_weights", "int_shape", "signed_shape"]


def check_mac(mac) -> Mac:
    """``mac`` as a :class:`~hwgen.layers.base.Mac`; ``ValueError`` unless it is one."""
    try:
        return Mac(mac)
    except ValueError:
        raise ValueError(f"mac must be one of {', '.join(repr(str(m)) for m in Mac)}, not "
                         f"{mac!r}") from None


def check_weights(weights) -> None:
    """Raises ``TypeError`` unless ``weights`` is a :class:`~hwgen.layers.weighted.WeightMatrix`."""
    if not isinstance(weights, WeightMatrix):
        raise TypeError(f"weights must be a hwgen.layers.weighted.WeightMatrix, not "
                        f"{type(weights).__name__}")


class Mode(enum.StrEnum):
    """How a folded unit accumulates (see :class:`Datapath`)."""

    XNOR = "xnor"
    MASK_X = "mask_x"
    SIGN_X = "sign_x"
    MASK_W = "mask_w"
    MUL = "mul"


def int_shape(lo: int, hi: int):
    """The smallest Amaranth shape holding ``lo .. hi``."""
    bits, is_signed = width_for(lo, hi)
    return signed(bits) if is_signed else unsigned(bits)


def signed_shape(lo: int, hi: int):
    """The smallest signed Amaranth shape holding ``lo .. hi``."""
    bits, is_signed = width_for(lo, hi)
    return signed(bits + (0 if is_signed else 1))


class Datapath:
    """How a layer's dot products are computed, and the integer ranges on the way.

    ``weights`` is a :class:`~hwgen.layers.weighted.WeightMatrix` whose row ``o`` holds
    output channel ``o``'s weights. The unit accumulates ``A`` per output channel (and, for
    binary weights on multi-bit inputs, the input sum ``S`` shared by all channels) and
    reconstructs the accumulator as ``acc = beta·q + offset[o]`` with ``q = A`` (or
    ``2A − S``):

    ============  =================================  ====  =============================
    mode          A per channel                      beta  offset[o]
    ============  =================================  ====  =============================
    ``xnor``      popcount(XNOR(x, w))                2    bias[o] − in_features
    ``mask_x``    Σ x[i] over w[o, i] = +1            1    bias[o]  (q = 2A − S)
    ``sign_x``    Σ ±x[i] (the sign of w[o, i])       1    bias[o]
    ``mask_w``    Σ w[o, i] over x[i] = +1            2    bias[o] − Σ_i w[o, i]
    ``mul``       Σ x[i]·w[o, i]                      1    bias[o]
    ============  =================================  ====  =============================

    ``mask_x`` serves channels that share their input elements (``shared_input``, a dense
    layer: one masked sum per channel and one ``S``); channels that each read their own
    elements (depthwise) add or subtract them instead (``sign_x``).

    Thresholds compare ``q`` against ``ceil((T − offset) / beta)``, clipped to the reachable
    range of ``q``, so no reconstruction is built for thresholded outputs; a requantized
    output is ``q`` times one per-channel factor plus one constant, shifted and clamped
    (:meth:`requantize_constants`).
    """

    def __init__(self, weights: WeightMatrix, in_type: TensorType, *, shared_input: bool = True):
        check_weights(weights)
        w = weights.matrix.astype(np.int64)
        bias = weights.bias if weights.bias is not None else np.zeros(w.shape[0], np.int64)
        xlo, xhi = in_type.range
        if in_type.binary and weights.weight_bits == 1:
            self.mode, self.beta = Mode.XNOR, 2
            offset = bias - w.shape[1]
            q_lo, q_hi = np.zeros(w.shape[0], np.int64), np.full(w.shape[0], w.shape[1])
            a_lo, a_hi = 0, w.shape[1]
        elif weights.weight_bits == 1 and shared_input:
            self.mode, self.beta = Mode.MASK_X, 1
            offset = bias
            q_lo, q_hi = dot_bounds(w, xlo, xhi)
            plus = (w > 0).sum(axis=1)
            a_lo, a_hi = int(plus.max()) * min(0, xlo), int(plus.max()) * max(0, xhi)
        elif in_type.binary:
            self.mode, self.beta = Mode.MASK_W, 2
            offset = bias - w.sum(axis=1)
            q_lo, q_hi = np.minimum(w, 0).sum(axis=1), np.maximum(w, 0).sum(axis=1)
            a_lo, a_hi = int(q_lo.min()), int(q_hi.max())
        else:
            self.mode, self.beta = Mode.MUL if weights.weight_bits > 1 else Mode.SIGN_X, 1
            offset = bias
            q_lo, q_hi = dot_bounds(w, xlo, xhi)
            lo_t, hi_t = np.minimum(w * xlo, w * xhi), np.maximum(w * xlo, w * xhi)
            a_lo = int(np.minimum(lo_t, 0).sum(axis=1).min())
            a_hi = int(np.maximum(hi_t, 0).sum(axis=1).max())
        self.offset = offset.astype(np.int64)
        #: Every prefix of the accumulation stays inside this range.
        self.acc_range = (min(0, a_lo), max(0, a_hi))
        n = w.shape[1]
        self.sum_range = (n * min(0, xlo), n * max(0, xhi))
        self.q_range = (int(q_lo.min()), int(q_hi.max()))

    def requantize_constants(self, rq: Requantize) -> tuple[list[int], list[int], int]:
        """Per channel ``(factor[o], constant[o])`` and one ``shift`` such that
        ``clamp((q·factor[o] + constant[o]) >> shift, lo, hi)`` is the layer's requantized
        output (:class:`~hwgen.spec.Requantize`). A channel with a smaller shift ``s`` has its
        multiplier scaled by ``2**(shift − s)``, which leaves the floor of the quotient
        unchanged, so the hardware shifts by a constant."""
        shift = int(rq.shift.max())
        factors, constants = [], []
        for m, s, off in zip(rq.multiplier.tolist(), rq.shift.tolist(), self.offset.tolist(),
                             strict=True):
            scaled = m << (shift - s)
            factors.append(self.beta * scaled)
            constants.append(off * scaled + ((1 << shift) >> 1))
        return factors, constants, shift

    def q_thresholds(self, thresholds: np.ndarray) -> np.ndarray:
        """Thresholds moved into the ``q`` domain and clipped to ``q``'s reachable range."""
        shifted = thresholds.astype(np.int64) - self.offset[:, None]
        t = -((-shifted) // self.beta)
        lo, hi = self.q_range
        return np.clip(t, lo, hi + 1)
