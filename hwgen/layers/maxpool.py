"""The maxpool layer: its dataclass, golden function and cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where, check_positive
from ..numeric import TensorType
from .base import Layer, LayerPlan, weightless
from .tables import require_positive
from .window import WindowGeometry

__all__ = ["MaxPool"]


@dataclass(frozen=True, eq=False)
class MaxPool(Layer):
    """Max over ``size``×``size`` windows moved by ``stride`` (default ``size``), no padding;
    on a binary tensor this is OR (+1 wins)."""

    kind: ClassVar[str] = "maxpool"
    toml_keys: ClassVar[frozenset[str]] = frozenset({"size", "stride"})

    name: str
    size: int
    stride: int | None = None
    inputs: tuple[str, ...] = ()

    @property
    def step(self) -> int:
        """The stride in effect: ``stride``, or ``size`` when none is given."""
        return self.stride if self.stride is not None else self.size

    def check(self, inputs: Sequence[TensorType], where: Where) -> tuple[MaxPool, list[TensorType]]:
        (x,) = inputs
        if len(x.shape) != 3:
            raise where.spec_error("kind", f"maxpool needs an (H, W, C) input, got shape "
                                   f"{x.shape}")
        size = check_positive(self.size, "size", where)
        stride = None if self.stride is None else check_positive(self.stride, "stride", where)
        step = stride if stride is not None else size
        h, w, c = x.shape
        if size > h or size > w:
            raise where.spec_error("size", f"window {size}×{size} is larger than "
                                   f"the input {h}×{w}")
        if step > max(h, w):
            raise where.spec_error("stride", f"{step} is larger than the input {h}×{w}")
        ho, wo = (h - size) // step + 1, (w - size) // step + 1
        return (MaxPool(self.name, size, stride, self.inputs),
                [TensorType((ho, wo, c), x.bits, x.signed)])

    @classmethod
    def from_toml(cls, table: dict, arrays: dict, where: Where) -> MaxPool:
        return cls(name=table["name"], size=require_positive(table, "size", where),
                   stride=table.get("stride"))

    def to_toml(self) -> tuple[list[str], dict[str, np.ndarray]]:
        lines = [f"size = {self.size}"]
        if self.stride is not None:
            lines.append(f"stride = {self.stride}")
        return lines, {}

    def logic_features(self, lp) -> dict[str, float]:
        """A stream stage's features and its window generator's (size² positions of one
        beat's bits)."""
        return {**super().logic_features(lp), "window": 1.0,
                "window_bits": float(self.size ** 2 * lp.in_lanes * lp.in_type.bits)}

    def golden(self, x: np.ndarray) -> list[np.ndarray]:
        size, stride = self.size, self.step
        n, h, w, c = x.shape
        ho, wo = (h - size) // stride + 1, (w - size) // stride + 1
        out = np.full((n, ho, wo, c), np.iinfo(np.int64).min, dtype=np.int64)
        for ky in range(size):
            for kx in range(size):
                out = np.maximum(out, x[:, ky:ky + (ho - 1) * stride + 1:stride,
                                        kx:kx + (wo - 1) * stride + 1:stride, :])
        return [out]

    def geometry(self, x: TensorType, lanes: int) -> WindowGeometry:
        """The windows it reads from its input ``x``, ``lanes`` per beat."""
        h, w, c = x.shape
        return WindowGeometry(h, w, c, lanes, self.size, self.step)

    def lanes_wanted(self, inputs: Sequence[TensorType], upstream: int) -> int:
        return 1 if inputs[0].shape[-1] % upstream else upstream

    def cost(self, inputs: Sequence[TensorType], out: TensorType, lanes: int,
             dsp: bool) -> LayerPlan:
        return weightless(self, inputs, out, lanes,
                          cycles=self.geometry(inputs[0], lanes).cycles)

    def held(self, lp: LayerPlan) -> int:
        return self.geometry(lp.in_type, lp.in_lanes).buffer_words * lp.in_lanes
