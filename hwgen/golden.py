"""The golden model: integer NumPy functions that define what the hardware must compute.

NumPy only (no Amaranth), so cocotb benches can import it. Every function takes and returns
element *values* (binary tensors as ±1), batched along axis 0, as ``int64``.
"""

from __future__ import annotations

from functools import singledispatch

import numpy as np

from .spec import (
    INPUT,
    Add,
    Argmax,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    Flatten,
    GlobalSumPool,
    MaxPool,
    Network,
)

__all__ = ["run_layer", "run", "check_inputs", "predict", "accumulate", "quantize_thresholds",
           "requantize", "quantize_output", "windows"]


def windows(x: np.ndarray, kernel: int, stride: int, pads: tuple[int, int, int, int],
            pad_value: int) -> np.ndarray:
    """Every window of a batch of (H, W, C) tensors: (N, Ho, Wo, k·k·C), each window's
    elements in (ky, kx, c) order, the input padded (top, left, bottom, right) with
    ``pad_value``."""
    top, left, bottom, right = pads
    xp = np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (top, bottom), (left, right), (0, 0)),
                constant_values=pad_value)
    n, hp, wp, c = xp.shape
    ho, wo = (hp - kernel) // stride + 1, (wp - kernel) // stride + 1
    out = np.empty((n, ho, wo, kernel, kernel, c), dtype=np.int64)
    for ky in range(kernel):
        for kx in range(kernel):
            out[:, :, :, ky, kx, :] = xp[:, ky:ky + (ho - 1) * stride + 1:stride,
                                         kx:kx + (wo - 1) * stride + 1:stride, :]
    return out.reshape(n, ho, wo, kernel * kernel * c)


def accumulate(layer: Dense | Conv2d | DepthwiseConv2d, x: np.ndarray) -> np.ndarray:
    """``acc[..., o] = Σ_i x[..., i]·w[o, i] + bias[o]`` in exact 64-bit integers; for conv2d
    ``x`` is (N, H, W, C) and the sum runs over each window. For depthwise_conv2d
    ``acc[..., c] = Σ_{ky,kx} window[..., ky, kx, c]·w[c, ky, kx] + bias[c]``: each channel's
    window with its own filter."""
    if isinstance(layer, Conv2d | DepthwiseConv2d):
        _, height, width, _ = np.asarray(x).shape
        x = windows(x, layer.kernel, layer.stride, layer.pads(height, width), layer.pad_value)
    if isinstance(layer, DepthwiseConv2d):
        n, ho, wo, _ = x.shape
        per_channel = x.reshape(n, ho, wo, layer.kernel ** 2, layer.channels)
        acc = np.einsum("nyxjc,cj->nyxc", per_channel, layer.matrix.astype(np.int64))
    else:
        w = layer.matrix if isinstance(layer, Conv2d) else layer.weights
        acc = np.asarray(x, dtype=np.int64) @ w.T
    if layer.bias is not None:
        acc = acc + layer.bias
    return acc


def quantize_thresholds(acc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Count of thresholds each accumulator reaches (``acc ≥ T``); 1-bit outputs become ±1."""
    count = (acc[..., None] >= thresholds).sum(axis=-1).astype(np.int64)
    return 2 * count - 1 if thresholds.shape[-1] == 1 else count


def requantize(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, lo: int,
               hi: int) -> np.ndarray:
    """``clamp((acc·multiplier + 2**(shift − 1)) >> shift, lo, hi)`` per channel (last axis):
    round half up, an arithmetic shift, no rounding term where ``shift`` is 0. Exact in int64
    for every spec the loader accepts (products stay within 48 bits)."""
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    rounding = np.left_shift(np.int64(1), s) >> 1
    return np.clip((np.asarray(acc, dtype=np.int64) * m + rounding) >> s, lo, hi)


def quantize_output(layer: Dense | Conv2d | DepthwiseConv2d, acc: np.ndarray) -> np.ndarray:
    """A dense, conv2d or depthwise_conv2d layer's output from its accumulators (channels on
    the last axis): thresholds, requantize or the raw accumulator."""
    if layer.requantize is not None:
        rq = layer.requantize
        return requantize(acc, rq.multiplier, rq.shift, *rq.range)
    return acc if layer.thresholds is None else quantize_thresholds(acc, layer.thresholds)


@singledispatch
def run_layer(layer: object, x: np.ndarray) -> np.ndarray:
    """Output values of one layer for a batch of input values."""
    raise TypeError(f"no golden function for {type(layer).__name__}")


@run_layer.register
def _(layer: Dense, x: np.ndarray) -> np.ndarray:
    return quantize_output(layer, accumulate(layer, x))


@run_layer.register
def _(layer: Conv2d, x: np.ndarray) -> np.ndarray:
    return quantize_output(layer, accumulate(layer, x))


@run_layer.register
def _(layer: DepthwiseConv2d, x: np.ndarray) -> np.ndarray:
    return quantize_output(layer, accumulate(layer, x))


@run_layer.register
def _(layer: MaxPool, x: np.ndarray) -> np.ndarray:
    size, stride = layer.size, layer.stride or layer.size
    n, h, w, c = x.shape
    ho, wo = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.full((n, ho, wo, c), np.iinfo(np.int64).min, dtype=np.int64)
    for ky in range(size):
        for kx in range(size):
            out = np.maximum(out, x[:, ky:ky + (ho - 1) * stride + 1:stride,
                                    kx:kx + (wo - 1) * stride + 1:stride, :])
    return out


@run_layer.register
def _(layer: GlobalSumPool, x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.int64).sum(axis=(1, 2))


@run_layer.register
def _(layer: Flatten, x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


@run_layer.register
def _(layer: Argmax, x: np.ndarray) -> np.ndarray:
    return np.argmax(x, axis=-1).astype(np.int64)[..., None]


def check_inputs(network: Network, x: np.ndarray) -> np.ndarray:
    """``x`` as int64 after checking its shape and value range; ValueError says what is off."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"inputs must be integers, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError("inputs must be a batch (N × input shape), got a single value")
    if x.shape[1:] != network.input_type.shape:
        raise ValueError(f"inputs have shape {x.shape[1:]} per item, the network expects "
                         f"{network.input_type.shape}")
    lo, hi = network.input_type.range
    # Compared in the array's own dtype (NumPy compares Python ints exactly), so a uint64
    # beyond int64 is reported as itself, not as the negative number a cast would make.
    if network.input_type.binary:
        bad, expected = (x != -1) & (x != 1), "-1 or +1 (binary)"
    else:
        bad, expected = (x < lo) | (x > hi), f"in {lo}..{hi} ({network.input_type.describe()})"
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"inputs must be {expected}, found {int(x[idx])} at {idx}")
    return x.astype(np.int64)


def run(network: Network, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output values for a batch of inputs ``x`` (N × input shape), by name."""
    values = {INPUT: check_inputs(network, x)}
    for layer, sources in zip(network.layers, network.sources, strict=True):
        if isinstance(layer, Add):
            values[layer.name] = add(layer, values[sources[0]], values[sources[1]])
        else:
            values[layer.name] = run_layer(layer, values[sources[0]])
    del values[INPUT]
    return values


def add(layer: Add, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The add layer: values summed (binary tensors hold ±1 already), then thresholds."""
    acc = np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)
    return acc if layer.thresholds is None else quantize_thresholds(acc, layer.thresholds)


def predict(network: Network, x: np.ndarray) -> np.ndarray:
    """The network's final output for each input (the class index when it ends in argmax)."""
    out = run(network, x)[network.layers[-1].name]
    return out[:, 0] if out.shape[1:] == (1,) else out
