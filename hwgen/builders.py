"""Model builders: common binarized topologies as :class:`~hwgen.spec.Network` objects.

A builder fixes the topology, the bit widths and the folding; the weights come from the caller
(trained arrays, by layer name) or are synthetic: random ±1 (or random n-bit for the
classifier) from ``seed``, with thresholds set near the middle of each channel's reachable
accumulator range so every activation varies. Synthetic networks are for resource, timing
and verification work, not for accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

import numpy as np

from .layers.channel_shuffle import ChannelShuffle
from .layers.channel_split import ChannelSplit
from .layers.concat import Concat
from .numeric import TensorType, dot_bounds, value_range
from .spec import (
    Argmax,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    Flatten,
    GlobalSumPool,
    Input,
    MaxPool,
    Network,
    Requantize,
)

__all__ = ["bnn_cnn", "requantized_cnn", "shufflenet_v2", "POOL"]

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


def _bits_for(name: str, bits: int | Mapping[str, int], what: str) -> int:
    """``bits`` itself, or the value of the first of its glob patterns that matches ``name``."""
    if isinstance(bits, int):
        return bits
    for pattern, value in bits.items():
        if fnmatchcase(name, pattern):
            return int(value)
    raise ValueError(f"no {what} pattern matches layer {name!r}")


def shufflenet_v2(input: tuple[int, int, int] = (96, 96, 3),
                  channels: Sequence[int] = (24, 48, 96, 192),
                  units: Sequence[int] = (4, 8, 4), *, last: int = 1024, classes: int = 2,
                  first_stride: int = 2, pool: int = 2,
                  weight_bits: int | Mapping[str, int] = 8,
                  act_bits: int | Mapping[str, int] = 8, input_bits: int = 8,
                  classifier_bits: int = 8, name: str = "shufflenet_v2",
                  seed: int = 0) -> Network:
    """ShuffleNetV2 on multi-bit activations: a 3×3 convolution of ``channels[0]`` (stride
    ``first_stride``), a ``pool``×``pool`` maxpool, one stage per ``units`` entry, a 1×1
    convolution of ``last``, a global sum pool and a ``classifier_bits`` classifier of
    ``classes`` (raw scores) with argmax.

    Stage s (outputs ``channels[s]``, b = half of them) starts with a stride-2 unit: the
    input read by two branches, 3×3 stride-2 depthwise → 1×1 conv of b (``sSu1_dwl``,
    ``sSu1_pwl``) and 1×1 conv of b → 3×3 stride-2 depthwise → 1×1 conv of b (``sSu1_pw1``,
    ``sSu1_dw``, ``sSu1_pw2``), concatenated and shuffled (groups 2). Its other units split
    the channels (``sSuU_split``), run the second half through ``pw1`` → ``dw`` → ``pw2`` and
    concatenate the first half before it (``sSuU_cat``, ``sSuU_shuffle``). The rest are named
    ``conv1``, ``pool1``, ``conv5``, ``pool5`` (the global sum), ``fc`` and ``argmax``. 3×3
    layers pad 1 on every side (PyTorch's ``padding=1``).

    BatchNorm is folded into each layer's requantize; ReLU is an unsigned requantize (every
    convolution but the depthwise ones), a depthwise output (no ReLU) a signed one.
    ``weight_bits`` and ``act_bits`` (output bits of each layer that requantizes) are one
    width or glob patterns on layer names, the first match counting (``{"s3*_dw*": 8,
    "s3*": 5}``). Synthetic weights from ``seed``; each requantize is a power-of-two scale
    (multiplier 1) set so a random input's accumulator, whose spread is estimated from its
    fan-in and the input's mean square, spans about a quarter of the output range per
    standard deviation.
    """
    if len(channels) != len(units) + 1:
        raise ValueError(f"{len(units)} stages need {len(units) + 1} channel counts, "
                         f"got {len(channels)}")
    rng = np.random.default_rng(seed)
    net_input = Input(tuple(input), input_bits, lanes=input[-1])
    # per tensor: channels and the mean square of its values (for the synthetic scales)
    square = {"input": (2 ** input_bits - 1) ** 2 / 3}
    chans = {"input": input[-1]}
    layers: list = []

    def weighted(kind, layer_name: str, source: str, out: int, k: int = 1, stride: int = 1,
                 signed: bool = False):
        bits = _bits_for(layer_name, weight_bits, "weight_bits")
        a_bits = _bits_for(layer_name, act_bits, "act_bits")
        c = chans[source]
        depthwise = kind is DepthwiseConv2d
        w = _weights(rng, (c, k, k) if depthwise else (out, k, k, c), bits)
        fan_in = k * k * (1 if depthwise else c)
        spread = np.sqrt(fan_in * np.mean(w.astype(np.float64) ** 2) * square[source])
        lo, hi = value_range(a_bits, signed)
        sigma = (hi - lo + 1) / 4 if not signed else (hi - lo + 1) / 8
        shift = max(0, int(round(np.log2(spread / sigma))))
        rq = Requantize(np.ones(w.shape[0], dtype=np.int64),
                        np.full(w.shape[0], shift, dtype=np.int64), a_bits, signed)
        window = {"stride": stride, "padding": (1, 1, 1, 1) if k == 3 else "valid"}
        layers.append(kind(layer_name, weights=w, weight_bits=bits, requantize=rq,
                           inputs=(source,), **window))
        chans[layer_name] = w.shape[0]
        # a zero-mean Gaussian of std sigma: signed keeps sigma², ReLU halves it
        square[layer_name] = sigma ** 2 if signed else sigma ** 2 / 2
        return layer_name

    def alias(layer_name: str, source: str, count: int | None = None) -> str:
        chans[layer_name], square[layer_name] = count or chans[source], square[source]
        return layer_name

    x = weighted(Conv2d, "conv1", "input", channels[0], k=3, stride=first_stride)
    layers.append(MaxPool("pool1", pool, inputs=(x,)))
    x = alias("pool1", x)
    for s, (count, out) in enumerate(zip(units, channels[1:], strict=True), start=1):
        half = out // 2
        for u in range(1, count + 1):
            p = f"s{s}u{u}_"
            if u == 1:
                left = weighted(DepthwiseConv2d, p + "dwl", x, 0, k=3, stride=2, signed=True)
                left = weighted(Conv2d, p + "pwl", left, half)
                right = weighted(Conv2d, p + "pw1", x, half)
            else:
                layers.append(ChannelSplit(p + "split", inputs=(x,)))
                left = alias(p + "split.0", x, chans[x] // 2)
                right = weighted(Conv2d, p + "pw1", alias(p + "split.1", x, chans[x] // 2),
                                 half)
            right = weighted(DepthwiseConv2d, p + "dw", right, 0, k=3, stride=2 if u == 1
                             else 1, signed=True)
            right = weighted(Conv2d, p + "pw2", right, half)
            layers.append(Concat(p + "cat", (left, right)))
            alias(p + "cat", right, out)
            layers.append(ChannelShuffle(p + "shuffle", 2, inputs=(p + "cat",)))
            x = alias(p + "shuffle", p + "cat")
    x = weighted(Conv2d, "conv5", x, last)
    layers.append(GlobalSumPool("pool5", inputs=(x,)))
    pooled = Network(name, net_input, list(layers)).output_type
    fc = _weights(rng, (classes, pooled.size), classifier_bits)
    layers.append(Dense("fc", weights=fc, weight_bits=classifier_bits))
    layers.append(Argmax("argmax"))
    return Network(name, net_input, layers)
