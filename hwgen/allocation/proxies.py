"""Training-free proxies that rank bit allocations: the QE-Score (docs/allocation.md).

The QE-Score (Sun et al., "Entropy-Driven Mixed-Precision Quantization for Deep Network
Design", NeurIPS 2022) is the expected entropy of a network's output when its weights and
activations are Gaussian, re-normalized after every layer, and rounded to their bit widths:

    QE = Σ_l log(k_h·k_w·C_{l−1}·σ̂²(σ_A, N_x,l)·σ̂²(σ_W, N_W,l) / σ_A²) + log σ_A²

over the layers with weights, ``C_{l−1}`` the layer's input channels (1 for depthwise),
``N_x`` its input's bits and ``N_W`` its weights'. Larger is better: more of the output's
information survives the quantization.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

__all__ = ["sigma_hat", "qe_term", "qe_score", "layer_qe_terms", "SIGMA_A", "SIGMA_W"]

#: The QE-Score's standard deviations of activations and weights before rounding.
SIGMA_A = 5.0
SIGMA_W = 4.0


def sigma_hat(sigma: float, bits: int) -> float:
    """The standard deviation of a zero-mean Gaussian of std ``sigma`` rounded to integers
    and clipped to ``[−2^(bits−1), 2^(bits−1)]``, the QE-Score's σ̂ (σ = 4: 1.7388, 2.8904,
    3.8505 for 2, 3, 4 bits). One bit is a sign, ±1 with equal chance: σ̂ = 1."""
    if bits < 1:
        raise ValueError(f"bits must be at least 1, got {bits}")
    if bits == 1:
        return 1.0
    top = 1 << (bits - 1)
    k = np.arange(-top, top + 1, dtype=np.float64)
    # P(round(X) = k) inside, the tails folded onto the clip points
    upper = ndtr((k + 0.5) / sigma)
    lower = ndtr((k - 0.5) / sigma)
    p = upper - lower
    p[0], p[-1] = upper[0], 1.0 - lower[-1]
    mean = float(np.dot(p, k))
    return math.sqrt(float(np.dot(p, (k - mean) ** 2)))


def qe_term(fan_in: int, in_bits: int, weight_bits: int) -> float:
    """One layer's term of the QE-Score: ``log(fan_in·σ̂²(σ_A, N_x)·σ̂²(σ_W, N_W)/σ_A²)``,
    ``fan_in`` = k_h·k_w·C_{l−1} (1 channel for a depthwise layer)."""
    return math.log(fan_in * sigma_hat(SIGMA_A, in_bits) ** 2
                    * sigma_hat(SIGMA_W, weight_bits) ** 2 / SIGMA_A ** 2)


def layer_qe_terms(network) -> list[tuple[str, float]]:
    """Per layer with weights of ``network`` (an hwgen Network): its name and its term of
    the QE-Score (:func:`qe_term`)."""
    from ..layers.weighted import WeightedLayer
    from ..plan import plan

    terms = []
    for layer, lp in zip(network.layers, plan(network).layers, strict=True):
        if not isinstance(layer, WeightedLayer):
            continue
        kernel = getattr(layer, "kernel", 1)
        channels = 1 if layer.kind == "depthwise_conv2d" else lp.in_type.shape[-1]
        terms.append((layer.name, qe_term(kernel * kernel * channels, lp.in_type.bits,
                                          lp.weight_bits)))
    return terms


def qe_score(network) -> float:
    """The QE-Score of ``network``'s bit widths (module docstring; larger is better)."""
    return sum(term for _, term in layer_qe_terms(network)) + math.log(SIGMA_A ** 2)
