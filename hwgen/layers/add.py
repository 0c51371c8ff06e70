"""The add layer: its dataclass, golden function and cost."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where, show
from ..numeric import TensorType, width_for
from .base import Layer
from .weighted import check_thresholds, quantize_thresholds, threshold_bits, thresholds_from_toml

__all__ = ["Add"]


@dataclass(frozen=True, eq=False)
class Add(Layer):
    """Element-wise sum of two tensors of one shape (binary elements count as ±1), then, with
    ``thresholds`` (C × 2**n − 1, per channel = last axis), the n-bit count of thresholds
    reached as in :class:`~hwgen.layers.dense.Dense`; without, the raw sum as the smallest
    integer type holding it. ``inputs`` names the two tensors."""

    kind: ClassVar[str] = "add"
    arity: ClassVar[int | None] = 2
    uses_arrays: ClassVar[bool] = True
    toml_keys: ClassVar[frozenset[str]] = frozenset({"output", "out_bits"})

    name: str
    inputs: tuple[str, ...] = ()
    thresholds: np.ndarray | None = None

    @property
    def out_bits(self) -> int | None:
        return threshold_bits(self.thresholds)

    def check(self, inputs: Sequence[TensorType], where: Where) -> tuple[Add, list[TensorType]]:
        x, other = inputs
        if x.shape != other.shape:
            raise where.spec_error("inputs", f"add needs two tensors of one shape, got "
                                   f"{self.inputs[0]} {x.shape} and {self.inputs[1]} "
                                   f"{other.shape}")
        if self.thresholds is not None:
            layer = dataclasses.replace(self, thresholds=check_thresholds(
                self.name, self.thresholds, x.shape[-1], where))
            return layer, [TensorType(x.shape, layer.out_bits, False)]
        bits, signed = width_for(x.range[0] + other.range[0], x.range[1] + other.range[1])
        return self, [TensorType(x.shape, bits, signed)]

    @classmethod
    def from_toml(cls, table: dict, arrays: dict, where: Where) -> Add:
        output = table.get("output", "none")
        if output not in ("thresholds", "none"):
            raise where.spec_error("output", f"expected \"thresholds\" or \"none\", got "
                                   f"{show(output)}")
        if output == "none":
            if "out_bits" in table:
                raise where.spec_error("out_bits", "only meaningful with output = "
                                       "\"thresholds\"")
            return cls(name=table["name"])
        return cls(name=table["name"],
                   thresholds=thresholds_from_toml(table, arrays, where, None))

    def to_toml(self) -> tuple[list[str], dict[str, np.ndarray]]:
        if self.thresholds is None:
            return [], {}
        return (['output = "thresholds"', f"out_bits = {self.out_bits}"],
                {f"{self.name}.thresholds": self.thresholds})

    def golden(self, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        """Values summed (binary tensors hold ±1 already), then thresholds."""
        acc = np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)
        return [acc if self.thresholds is None else quantize_thresholds(acc, self.thresholds)]
