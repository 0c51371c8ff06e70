"""The flatten layer: its dataclass, golden function and cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where
from ..numeric import TensorType
from .base import Layer, LayerPlan

__all__ = ["Flatten"]


@dataclass(frozen=True, eq=False)
class Flatten(Layer):
    """(H, W, C) → (H·W·C,) in channels-last order; the stream is unchanged."""

    kind: ClassVar[str] = "flatten"
    is_view: ClassVar[bool] = True

    name: str = "flatten"
    inputs: tuple[str, ...] = ()

    def check(self, inputs: Sequence[TensorType], where: Where) -> tuple[Flatten, list[TensorType]]:
        (x,) = inputs
        return self, [TensorType((x.size,), x.bits, x.signed)]

    def golden(self, x: np.ndarray) -> list[np.ndarray]:
        return [x.reshape(len(x), -1)]

    @staticmethod
    def out_times(lp: LayerPlan, in_times: list[int]) -> list[int]:
        """Wires: every beat leaves when it arrives."""
        return in_times
