"""The concat layer: its dataclass, golden function and cost."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where
from ..numeric import TensorType, width_for
from .base import Layer, LayerPlan, weightless

__all__ = ["Concat"]


@dataclass(frozen=True, eq=False)
class Concat(Layer):
    """Two or more tensors of one shape but the last axis, joined along the channels (last
    axis) in ``inputs`` order (ONNX ``Concat`` on the channel axis). The output is binary when
    every input is; otherwise it is the smallest integer type holding every input's values
    (binary elements as ±1)."""

    kind: ClassVar[str] = "concat"
    arity: ClassVar[int | None] = None

    name: str
    inputs: tuple[str, ...] = ()

    def check(self, inputs: Sequence[TensorType], where: Where) -> tuple[Concat, list[TensorType]]:
        first = inputs[0]
        for src, t in zip(self.inputs[1:], inputs[1:], strict=True):
            if t.shape[:-1] != first.shape[:-1] or len(t.shape) != len(first.shape):
                raise where.spec_error("inputs", f"concat needs tensors of one shape but the "
                                       f"channels, got {self.inputs[0]} {first.shape} and "
                                       f"{src} {t.shape}")
        shape = (*first.shape[:-1], sum(t.shape[-1] for t in inputs))
        if all(t.binary for t in inputs):
            return self, [TensorType(shape, 1, False)]
        bits, signed = width_for(min(t.range[0] for t in inputs),
                                 max(t.range[1] for t in inputs))
        return self, [TensorType(shape, bits, signed)]

    def golden(self, *xs: np.ndarray) -> list[np.ndarray]:
        return [np.concatenate([np.asarray(x, dtype=np.int64) for x in xs], axis=-1)]

    def lanes_wanted(self, inputs: Sequence[TensorType], upstream: int) -> int:
        """Lanes dividing every input's channels: the first input's lanes where they do."""
        return math.gcd(upstream, *(t.shape[-1] for t in inputs))

    def cost(self, inputs: Sequence[TensorType], out: TensorType, lanes: int,
             dsp: bool) -> LayerPlan:
        """One output beat a cycle, read from one input at a time."""
        return weightless(self, inputs, out, lanes, cycles=out.size // lanes)
