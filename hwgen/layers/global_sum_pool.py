"""The global_sum_pool layer: its dataclass, golden function and cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where
from ..numeric import TensorType, width_for
from .base import Layer, LayerPlan

__all__ = ["GlobalSumPool"]


@dataclass(frozen=True, eq=False)
class GlobalSumPool(Layer):
    """Per-channel sum over every position of an (H, W, C) tensor → (C,) integers; binary
    elements count as ±1. The output type is the smallest integer holding H·W·[lo, hi]."""

    kind: ClassVar[str] = "global_sum_pool"

    name: str = "global_sum_pool"
    inputs: tuple[str, ...] = ()

    def check(self, inputs: Sequence[TensorType],
              where: Where) -> tuple[GlobalSumPool, list[TensorType]]:
        (x,) = inputs
        if len(x.shape) != 3:
            raise where.spec_error("kind", f"global_sum_pool needs an (H, W, C) input, got "
                                   f"shape {x.shape}")
        positions = x.shape[0] * x.shape[1]
        lo, hi = x.range
        bits, signed = width_for(positions * lo, positions * hi)
        return self, [TensorType((x.shape[2],), bits, signed)]

    def golden(self, x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(x, dtype=np.int64).sum(axis=(1, 2))]

    def lanes_wanted(self, inputs: Sequence[TensorType], upstream: int) -> int:
        return 1 if inputs[0].shape[-1] % upstream else upstream

    @staticmethod
    def out_times(lp: LayerPlan, in_times: list[int]) -> list[int]:
        """Output beat c one cycle after the last position's beat of chunk c."""
        chunks = lp.in_type.shape[-1] // lp.in_lanes
        return [t + 1 for t in in_times[-chunks:]]

    def held(self, lp: LayerPlan) -> int:
        return lp.in_type.size
