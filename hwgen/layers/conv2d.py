"""The conv2d layer: its dataclass, golden function and cost."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where
from ..numeric import TensorType
from .base import LayerPlan
from .tables import require_positive
from .weighted import Requantize, WeightedLayer, default_simd, divisors, fixed
from .window import Window, check_kernel_size

__all__ = ["Conv2d"]

#: The TOML keys of a sliding-window layer with weights, besides the weighted ones.
WINDOW_KEYS = frozenset({"kernel", "stride", "padding", "pad_value"})


@dataclass(frozen=True, eq=False)
class Conv2d(Window, WeightedLayer):
    """2-D convolution on a channels-last (H, W, C) tensor, one output per window position.

    ``acc[y, x, o] = Σ_{ky, kx, c} xp[y·s + ky, x·s + kx, c]·weights[o, ky, kx, c] + bias[o]``
    where ``xp`` is the input padded with ``pad_value`` (a value of the input's type: ±1 for
    binary inputs). ``padding`` is ``"valid"`` (none), ``"same"`` (``ceil(H / s)`` output rows,
    see :func:`~hwgen.layers.window.same_padding`) or explicit ``(top, left, bottom, right)``
    rows and columns, each below k). Weights, bias, ``pe``, ``mac`` and output
    quantization (thresholds, requantize or none) are as in :class:`~hwgen.layers.dense.Dense`
    with ``k·k·C`` inputs per output; ``simd`` must divide C.
    """

    kind: ClassVar[str] = "conv2d"
    toml_keys: ClassVar[frozenset[str]] = (WeightedLayer.toml_keys | WINDOW_KEYS
                                           | {"out_features", "simd"})

    name: str
    weights: np.ndarray
    weight_bits: int
    stride: int = 1
    padding: str | tuple[int, int, int, int] = "valid"
    pad_value: int = 0
    thresholds: np.ndarray | None = None
    bias: np.ndarray | None = None
    pe: int | None = None
    simd: int | None = None
    inputs: tuple[str, ...] = ()
    weight_memory: str = "rom"
    requantize: Requantize | None = None
    mac: str = "auto"

    @property
    def kernel(self) -> int:
        return int(self.weights.shape[1])

    @property
    def matrix(self) -> np.ndarray:
        """The weights as an (O, k·k·C) matrix, columns in (ky, kx, c) order."""
        return self.weights.reshape(self.weights.shape[0], -1)

    def check(self, inputs: Sequence[TensorType], where: Where) -> tuple[Conv2d, list[TensorType]]:
        (x,) = inputs
        if len(x.shape) != 3:
            raise where.spec_error("kind", f"conv2d needs an (H, W, C) input, got shape "
                                   f"{x.shape}")
        c = x.shape[2]
        key = f"{self.name}.weights"
        w = self.weights
        if not isinstance(w, np.ndarray) or w.ndim != 4 or w.shape[1] != w.shape[2] \
                or w.shape[3] != c or w.shape[0] < 1 or w.shape[1] < 1:
            check_kernel_size(w, key, where)
            got = w.shape if isinstance(w, np.ndarray) else type(w).__name__
            raise where.array_error(key, f"expected an (out_channels, k, k, {c}) integer "
                                    f"array, got {got}")
        fields, ho, wo = self.check_window(x, where)
        layer, bits, signed = self.check_weighted(w, x, where, simd_divides=c,
                                                  simd_what="in_channels")
        out = TensorType((ho, wo, layer.out_features), bits, signed)
        return dataclasses.replace(layer, **fields), [out]

    @classmethod
    def from_toml(cls, table: dict, arrays: dict, where: Where) -> Conv2d:
        kernel = require_positive(table, "kernel", where)
        out_features = require_positive(table, "out_features", where)
        name = table["name"]

        def rows(weights: np.ndarray) -> int:
            if isinstance(weights, np.ndarray) and weights.ndim >= 2 \
                    and weights.shape[0] != out_features:
                raise where.array_error(f"{name}.weights", f"shape {weights.shape}, expected "
                                        f"{out_features} rows (out_features)")
            return out_features

        fields = cls.weighted_fields(table, arrays, where, rows)
        w = fields["weights"]
        if isinstance(w, np.ndarray) and w.ndim == 4 and w.shape[1:3] != (kernel, kernel):
            raise where.array_error(f"{name}.weights", f"shape {w.shape}, expected "
                                    f"(out_features, {kernel}, {kernel}, in_channels) for "
                                    f"kernel = {kernel}")
        return cls(**fields, simd=table.get("simd"), stride=table.get("stride", 1),
                   padding=table.get("padding", "valid"), pad_value=table.get("pad_value", 0))

    def to_toml(self) -> tuple[list[str], dict[str, np.ndarray]]:
        lines, arrays = self.weighted_toml()
        return self.window_toml() + [f"out_features = {self.out_features}"] + lines, arrays

    def golden(self, x: np.ndarray) -> list[np.ndarray]:
        return [self.quantize_output(self.accumulate(self.window_values(x)))]

    def folding(self, x: TensorType) -> tuple[int, int]:
        return fixed(self.pe, 1), fixed(self.simd, default_simd(x.shape[-1]))

    def simd_options(self, x: TensorType) -> list[int | None]:
        return divisors(x.shape[-1])

    def lanes_wanted(self, inputs: Sequence[TensorType], upstream: int) -> int:
        return self.folding(inputs[0])[1]

    def cost(self, inputs: Sequence[TensorType], out: TensorType, lanes: int,
             dsp: bool) -> LayerPlan:
        x = inputs[0]
        pe, simd = self.folding(x)
        pixels = out.size // self.out_features
        fold = (self.out_features // pe) * (self.in_features // simd)
        return self.folded_plan(x, out, pe=pe, simd=simd,
                                cycles=max(pixels * fold, self.geometry(x, simd).in_beats),
                                macs=pixels * self.out_features * self.in_features, dsp=dsp)
