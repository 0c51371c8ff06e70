"""Model builders: common binarized topologies as :class:`~hwgen.spec.Network` objects.

A builder fixes the topology, the bit widths and the folding; the weights come from the caller
(trained arrays, by layer name) or are synthetic: random ±1 (or random n-bit for the
classifier) from ``seed``, with thresholds set near the middle of each channel's reachable
accumulator range so every activation varies. Synthetic networks are for resource, timing
and verification work, not for accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .numeric import TensorType, dot_bounds, value_range
from .spec import Argmax, Conv2d, Dense, Flatten, Input, MaxPool, Network, Requantize

__all__ = ["bnn_cnn", "requantized_cnn", "POOL"]

#: The entry of ``bnn_cnn(channels=...)`` that places a maxpool.
POOL = "pool"


def _scaled(channels: int, factor: float) -> int:
    return max(1, int(round(channels * factor)))


def _synthetic_thresholds(rng: np.random.Generator, matrix: np.ndarray,
                          x: TensorType) -> np.ndarray:
    """One threshold per channel near the middle of its accumulator range (±1/16 of it)."""
    lo, hi = dot_bounds(matrix, *x.range)
    spread = np.maximum(1, (hi - lo) // 16)
    middle = (lo + hi) // 2
    return (middle + rng.integers(-spread, spread + 1))[:, None]


def _weights(rng: np.random.Generator, shape: tuple[int, ...], bits: int) -> np.ndarray:
    if bits == 1:
        return rng.choice(np.array([-1, 1]), size=shape)
    lo, hi = value_range(bits, True)
    return rng.integers(lo, hi + 1, size=shape)


def bnn_cnn(input: tuple[int, int, int] = (32, 32, 3),
            channels: Sequence[int | str] = (64, 64, 128), *,
            dense: Sequence[int] = (), classes: int = 10, kernel: int = 3,
            padding: str = "same", pool: int = 2, first_width: float = 1.0,
            width: float = 1.0, input_bits: int = 8, classifier_bits: int = 16,
            argmax: bool = True, folding: Mapping[str, tuple[int, int]] | None = None,
            weights: Mapping[str, Mapping[str, np.ndarray]] | None = None,
            weight_memory: Mapping[str, str] | None = None,
            name: str = "bnn_cnn", seed: int = 0) -> Network:
    """A binarized CNN: k×k binary convolutions (the first on ``input_bits``-bit pixels),
    maxpools, flatten, binary hidden dense layers and a ``classifier_bits`` classifier.

    ``channels`` lists conv output channels and :data:`POOL` entries (a ``pool``×``pool``
    maxpool); without any :data:`POOL` entry a maxpool follows every convolution. The first
    convolution's channels are multiplied by ``first_width`` ("wider first layer"), the other
    convolutions' and the hidden dense layers' by ``width``. Layers are named ``conv1``...,
    ``pool1``..., ``flatten``, ``fc1``... and ``classifier``. ``folding`` maps layer names to
    ``(pe, simd)`` and ``weight_memory`` to ``"rom"`` or ``"spram"``; ``weights`` maps layer
    names to their ``weights``/``thresholds``/``bias`` arrays (spec values); layers not in it
    get synthetic arrays from ``seed``.
    """
    folding, weights = dict(folding or {}), dict(weights or {})
    memories = dict(weight_memory or {})
    rng = np.random.default_rng(seed)
    entries = list(channels)
    if POOL not in entries:
        entries = [e for c in channels for e in (c, POOL)]
    x = TensorType(tuple(input), input_bits, False)
    net_input = Input(tuple(input), input_bits)
    layers: list = []
    convs = pools = 0

    def arrays(layer_name: str, matrix_shape: tuple[int, int], bits: int,
               x_type: TensorType, thresholded: bool) -> dict:
        given = dict(weights.get(layer_name, {}))
        if "weights" not in given:
            given["weights"] = _weights(rng, matrix_shape, bits)
        if thresholded and "thresholds" not in given:
            matrix = given["weights"].reshape(given["weights"].shape[0], -1)
            given["thresholds"] = _synthetic_thresholds(rng, matrix, x_type)
        return given

    def fold(layer_name: str) -> dict:
        pe, simd = folding.get(layer_name, (None, None))
        return {"pe": pe, "simd": simd, "weight_memory": memories.get(layer_name, "rom")}

    for entry in entries:
        if entry == POOL:
            pools += 1
            layers.append(MaxPool(f"pool{pools}", pool))
        else:
            convs += 1
            out = _scaled(int(entry), first_width if convs == 1 else width)
            layer_name = f"conv{convs}"
            c = x.shape[-1]
            a = arrays(layer_name, (out, kernel * kernel * c), 1, x, True)
            a["weights"] = a["weights"].reshape(out, kernel, kernel, c)
            layers.append(Conv2d(layer_name, weight_bits=1, padding=padding,
                                 pad_value=-1 if x.binary else 0, **a, **fold(layer_name)))
        x = Network(name, net_input, list(layers)).output_type
    layers.append(Flatten("flatten"))
    x = TensorType((x.size,), x.bits, x.signed)
    for index, hidden in enumerate(dense, start=1):
        layer_name = f"fc{index}"
        out = _scaled(hidden, width)
        layers.append(Dense(layer_name, weight_bits=1,
                            **arrays(layer_name, (out, x.size), 1, x, True), **fold(layer_name)))
        x = TensorType((out,), 1, False)
    layers.append(Dense("classifier", weight_bits=classifier_bits,
                        **arrays("classifier", (classes, x.size), classifier_bits, x, False),
                        **fold("classifier")))
    if argmax:
        layers.append(Argmax("argmax"))
    return Network(name, net_input, layers)


def requantized_cnn(input: tuple[int, int, int], channels: Sequence[int | str],
                    weight_bits: Sequence[int], *, kernels: Sequence[int] | None = None,
                    act_bits: int = 8, input_bits: int = 8, padding: str = "same",
                    pool: int = 2, name: str = "requantized_cnn", seed: int = 0) -> Network:
    """A fully convolutional network of multi-bit activations: k×k convolutions (``kernels``,
    default 3) with ``weight_bits[i]``-bit weights (1: ±1), each followed by a requantize to
    ``act_bits`` unsigned bits (a ReLU with a power-of-two scale), and :data:`POOL` entries
    (``pool``×``pool`` maxpools). Synthetic weights from ``seed``; each shift is set so the
    typical accumulator of a random input spans the output range. No classifier or argmax:
    the last convolution's map is the output (a detection head)."""
    rng = np.random.default_rng(seed)
    x = TensorType(tuple(input), input_bits, False)
    net_input = Input(tuple(input), input_bits)
    convs = [c for c in channels if c != POOL]
    if len(weight_bits) != len(convs):
        raise ValueError(f"{len(convs)} convolutions, {len(weight_bits)} weight widths")
    kernels = list(kernels or [3] * len(convs))
    layers: list = []
    index = pools = 0
    for entry in channels:
        if entry == POOL:
            pools += 1
            layers.append(MaxPool(f"pool{pools}", pool))
        else:
            bits, k, c, out = weight_bits[index], kernels[index], x.shape[-1], int(entry)
            index += 1
            w = _weights(rng, (out, k, k, c), bits)
            # the accumulator's typical magnitude: √(fan-in) × weight rms × input rms
            spread = np.sqrt(k * k * c) * np.sqrt(np.mean(w.astype(np.float64) ** 2)) \
                * (2 ** x.bits) / 2
            shift = max(0, int(np.ceil(np.log2(spread))) - act_bits + 1)
            layers.append(Conv2d(
                f"conv{index}", weights=w, weight_bits=bits, padding=padding, pad_value=0,
                requantize=Requantize(np.ones(out, dtype=np.int64),
                                      np.full(out, shift, dtype=np.int64), act_bits)))
        x = Network(name, net_input, list(layers)).output_type
    return Network(name, net_input, layers)
