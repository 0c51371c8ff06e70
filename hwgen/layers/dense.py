"""The dense (fully connected) layer: its dataclass, golden function and cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where
from ..numeric import TensorType
from .base import LayerPlan
from .tables import require_positive
from .weighted import Requantize, WeightedLayer, default_simd, divisors, fixed

__all__ = ["Dense"]


@dataclass(frozen=True, eq=False)
class Dense(WeightedLayer):
    """Fully connected layer: ``acc[o] = Σ_i x[i]·weights[o, i] + bias[o]``.

    ``weights`` (out × in) holds values: ±1 when ``weight_bits == 1`` (XNOR-popcount with
    binary inputs), otherwise signed ``weight_bits``-bit integers. With ``thresholds``
    (out × 2**n − 1, each row ascending) the output is ``#{t : acc ≥ thresholds[o, t]}``, an
    n-bit unsigned value (n = 1: binary, bit 1 meaning +1); without, the raw accumulator leaves
    the layer as an integer of the smallest type holding every reachable value (a classifier's
    scores). With ``requantize`` instead of thresholds, the accumulator is scaled, shifted and
    clamped to ``requantize.bits`` (see :class:`~hwgen.layers.weighted.Requantize`). ``pe``
    output channels are computed in parallel from ``simd`` input elements per cycle.
    ``weight_memory`` is where the weights live: ``"rom"`` (block RAM or logic, set by the
    bitstream) or ``"spram"`` (the UP5K's single-port RAMs, loaded after configuration;
    docs/protocol.md). ``mac`` maps the multi-bit products: ``"lut"`` (logic), ``"dsp"`` (the
    device's multiplier blocks) or ``"auto"`` (hwgen chooses; see :func:`hwgen.plan.plan`); a
    layer with binary weights or inputs has no products and must leave it ``"auto"``.
    """

    kind: ClassVar[str] = "dense"
    toml_keys: ClassVar[frozenset[str]] = WeightedLayer.toml_keys | {"out_features", "simd"}

    name: str
    weights: np.ndarray
    weight_bits: int
    thresholds: np.ndarray | None = None
    bias: np.ndarray | None = None
    pe: int | None = None
    simd: int | None = None
    inputs: tuple[str, ...] = ()
    weight_memory: str = "rom"
    requantize: Requantize | None = None
    mac: str = "auto"

    def check(self, inputs: Sequence[TensorType], where: Where) -> tuple[Dense, list[TensorType]]:
        (x,) = inputs
        if len(x.shape) != 1:
            raise where.spec_error("kind", f"dense needs a 1-D input, got shape {x.shape} "
                                   f"(add a flatten layer)")
        w = self.weights
        if isinstance(w, np.ndarray) and w.ndim == 2 and w.shape[1] != x.size:
            raise where.array_error(f"{self.name}.weights", f"shape {w.shape} does not chain: "
                                    f"the layer's input has {x.size} elements, expected "
                                    f"({w.shape[0]}, {x.size})")
        if not isinstance(w, np.ndarray) or w.ndim != 2 or w.shape[0] < 1:
            got = w.shape if isinstance(w, np.ndarray) else type(w).__name__
            raise where.array_error(f"{self.name}.weights", f"expected a 2-D (out_features, "
                                    f"{x.size}) integer array, got {got}")
        layer, bits, signed = self.check_weighted(w, x, where, simd_divides=x.size,
                                                  simd_what="in_features")
        return layer, [TensorType((layer.out_features,), bits, signed)]

    @classmethod
    def from_toml(cls, table: dict, arrays: dict, where: Where) -> Dense:
        out_features = require_positive(table, "out_features", where)

        def rows(weights: np.ndarray) -> int:
            if isinstance(weights, np.ndarray) and weights.ndim >= 2 \
                    and weights.shape[0] != out_features:
                raise where.array_error(f"{table['name']}.weights", f"shape {weights.shape}, "
                                        f"expected {out_features} rows (out_features)")
            return out_features

        return cls(**cls.weighted_fields(table, arrays, where, rows), simd=table.get("simd"))

    def to_toml(self) -> tuple[list[str], dict[str, np.ndarray]]:
        lines, arrays = self.weighted_toml()
        return [f"out_features = {self.out_features}"] + lines, arrays

    def folding(self, x: TensorType) -> tuple[int, int]:
        return fixed(self.pe, 1), fixed(self.simd, default_simd(self.in_features))

    def simd_options(self, x: TensorType) -> list[int | None]:
        return divisors(self.in_features)

    def lanes_wanted(self, inputs: Sequence[TensorType], upstream: int) -> int:
        return self.folding(inputs[0])[1]

    def cost(self, inputs: Sequence[TensorType], out: TensorType, lanes: int,
             dsp: bool) -> LayerPlan:
        x = inputs[0]
        pe, simd = self.folding(x)
        fold = (self.out_features // pe) * (self.in_features // simd)
        return self.folded_plan(x, out, pe=pe, simd=simd, cycles=fold,
                                macs=self.out_features * self.in_features, dsp=dsp)

    @staticmethod
    def out_times(lp: LayerPlan, in_times: list[int]) -> list[int]:
        """It starts once its whole input vector is in; each of its NF output beats takes SF
        cycles, plus the pipeline depth."""
        beats = lp.out_type.size // lp.out_lanes
        sf = lp.cycles // beats
        return [in_times[-1] + (j + 1) * sf + lp.depth for j in range(beats)]
