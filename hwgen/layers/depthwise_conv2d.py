"""The depthwise_conv2d layer: its dataclass, golden function and cost."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where
from ..numeric import TensorType
from .base import LayerPlan
from .conv2d import WINDOW_KEYS
from .tables import require_positive
from .weighted import Requantize, WeightedLayer, fixed
from .window import Window, check_kernel_size

__all__ = ["DepthwiseConv2d"]


@dataclass(frozen=True, eq=False)
class DepthwiseConv2d(Window, WeightedLayer):
    """Depthwise 2-D convolution on a channels-last (H, W, C) tensor: one k×k filter per
    channel, C channels out.

    ``acc[y, x, c] = Σ_{ky, kx} xp[y·s + ky, x·s + kx, c]·weights[c, ky, kx] + bias[c]``
    with ``xp`` the input padded as in :class:`~hwgen.layers.conv2d.Conv2d` (``padding``,
    ``pad_value``, ``stride`` alike). ``weights`` is (C, k, k); weight bits, bias, ``mac``,
    ``weight_memory`` and the output (thresholds, requantize or the raw accumulator) are as in
    :class:`~hwgen.layers.dense.Dense`, per channel, with ``k·k`` inputs per output. ``pe``
    channels are computed in parallel (it must divide C), one kernel position per cycle: the
    layer has no ``simd``. Binary weights on binary inputs take the XNOR-popcount path.
    """

    kind: ClassVar[str] = "depthwise_conv2d"
    toml_keys: ClassVar[frozenset[str]] = WeightedLayer.toml_keys | WINDOW_KEYS
    shares_inputs: ClassVar[bool] = False

    name: str
    weights: np.ndarray
    weight_bits: int
    stride: int = 1
    padding: str | tuple[int, int, int, int] = "valid"
    pad_value: int = 0
    thresholds: np.ndarray | None = None
    bias: np.ndarray | None = None
    pe: int | None = None
    inputs: tuple[str, ...] = ()
    weight_memory: str = "rom"
    requantize: Requantize | None = None
    mac: str = "auto"

    @property
    def kernel(self) -> int:
        return int(self.weights.shape[1])

    @property
    def channels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def out_features(self) -> int:
        """Output channels: the input's channels."""
        return self.channels

    @property
    def matrix(self) -> np.ndarray:
        """The filters as a (C, k·k) matrix, columns in (ky, kx) order."""
        return self.weights.reshape(self.weights.shape[0], -1)

    def check(self, inputs: Sequence[TensorType],
              where: Where) -> tuple[DepthwiseConv2d, list[TensorType]]:
        (x,) = inputs
        if len(x.shape) != 3:
            raise where.spec_error("kind", f"depthwise_conv2d needs an (H, W, C) input, got "
                                   f"shape {x.shape}")
        c = x.shape[2]
        w = self.weights
        if not isinstance(w, np.ndarray) or w.ndim != 3 or w.shape[1] != w.shape[2] \
                or w.shape[0] != c or w.shape[1] < 1:
            check_kernel_size(w, f"{self.name}.weights", where)
            got = w.shape if isinstance(w, np.ndarray) else type(w).__name__
            raise where.array_error(f"{self.name}.weights", f"expected a ({c}, k, k) integer "
                                    f"array (one k×k filter per input channel), got {got}")
        fields, ho, wo = self.check_window(x, where)
        layer, bits, signed = self.check_weighted(w, x, where, pe_what="channels")
        return dataclasses.replace(layer, **fields), [TensorType((ho, wo, c), bits, signed)]

    @classmethod
    def from_toml(cls, table: dict, arrays: dict, where: Where) -> DepthwiseConv2d:
        kernel = require_positive(table, "kernel", where)

        def filters(w: np.ndarray) -> int:
            if isinstance(w, np.ndarray) and (w.ndim != 3 or w.shape[1:] != (kernel, kernel)):
                raise where.array_error(f"{table['name']}.weights", f"shape {w.shape}, "
                                        f"expected (channels, {kernel}, {kernel}) for kernel = "
                                        f"{kernel}")
            return int(w.shape[0]) if isinstance(w, np.ndarray) else 0

        return cls(**cls.weighted_fields(table, arrays, where, filters),
                   stride=table.get("stride", 1), padding=table.get("padding", "valid"),
                   pad_value=table.get("pad_value", 0))

    def to_toml(self) -> tuple[list[str], dict[str, np.ndarray]]:
        lines, arrays = self.weighted_toml()
        return self.window_toml() + lines, arrays

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """``acc[..., c] = Σ_{ky,kx} window[..., ky, kx, c]·w[c, ky, kx] + bias[c]``: each
        channel's window (of :meth:`window_values`) with its own filter."""
        n, ho, wo, _ = x.shape
        per_channel = x.reshape(n, ho, wo, self.kernel ** 2, self.channels)
        acc = np.einsum("nyxjc,cj->nyxc", per_channel, self.matrix.astype(np.int64))
        return acc if self.bias is None else acc + self.bias

    def golden(self, x: np.ndarray) -> list[np.ndarray]:
        return [self.quantize_output(self.accumulate(self.window_values(x)))]

    def folding(self, x: TensorType) -> tuple[int, int]:
        return fixed(self.pe, 1), 1

    def simd_options(self, x: TensorType) -> list[int | None]:
        return [None]

    def lanes_wanted(self, inputs: Sequence[TensorType], upstream: int) -> int:
        return fixed(self.pe, 1)

    def cost(self, inputs: Sequence[TensorType], out: TensorType, lanes: int,
             dsp: bool) -> LayerPlan:
        x = inputs[0]
        pe = fixed(self.pe, 1)
        pixels = out.size // self.channels
        fold = (self.channels // pe) * self.in_features  # NF · k·k, one kernel position a cycle
        return self.folded_plan(x, out, pe=pe, simd=1,
                                cycles=max(pixels * fold, self.geometry(x, pe).in_beats),
                                macs=pixels * self.channels * self.in_features, dsp=dsp,
                                in_lanes=pe)
