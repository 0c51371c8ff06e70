"""The golden model: integer NumPy functions that define what the hardware must compute.

NumPy only (no Amaranth), so cocotb benches can import it. Every function takes and returns
element *values* (binary tensors as ±1), batched along axis 0, as ``int64``.
"""

from __future__ import annotations

import numpy as np

from .layers import INPUT, Layer
from .layers.weighted import WeightedLayer, quantize_thresholds, requantize
from .layers.window import Window, windows
from .spec import Network, output_names

__all__ = ["run_layer", "run", "check_inputs", "predict", "accumulate", "quantize_thresholds",
           "requantize", "quantize_output", "windows"]


def accumulate(layer: WeightedLayer, x: np.ndarray) -> np.ndarray:
    """A layer with weights' accumulators for a batch of input values ``x``, in exact 64-bit
    integers (for conv2d and depthwise_conv2d over each window of ``x``)."""
    if isinstance(layer, Window):
        x = layer.window_values(x)
    return layer.accumulate(x)


def quantize_output(layer: WeightedLayer, acc: np.ndarray) -> np.ndarray:
    """A layer with weights' output from its accumulators (channels on the last axis):
    thresholds, requantize or the raw accumulator."""
    return layer.quantize_output(acc)


def run_layer(layer: Layer, *xs: np.ndarray) -> np.ndarray:
    """Output values of one layer (its first output) for batches of input values."""
    if not isinstance(layer, Layer):
        raise TypeError(f"no golden function for {type(layer).__name__}")
    return layer.golden(*xs)[0]


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
    """Every tensor's values for a batch of inputs ``x`` (N × input shape), by name: each
    layer's output under the layer's name, or ``<layer>.<k>`` for a layer with several."""
    values = {INPUT: check_inputs(network, x)}
    for layer, sources in zip(network.layers, network.sources, strict=True):
        outs = layer.golden(*(values[src] for src in sources))
        values.update(zip(output_names(layer), outs, strict=True))
    del values[INPUT]
    return values


def predict(network: Network, x: np.ndarray) -> np.ndarray:
    """The network's final output for each input (the class index when it ends in argmax)."""
    out = run(network, x)[network.layers[-1].name]
    return out[:, 0] if out.shape[1:] == (1,) else out
