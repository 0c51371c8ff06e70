"""The argmax layer: its dataclass, golden function and cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where
from ..numeric import TensorType, width_for
from .base import Layer, LayerPlan, weightless

__all__ = ["Argmax", "latency"]


def latency(lanes: int) -> int:
    """Cycles from an argmax's last input beat to its index: the input register, one
    registered level per level of the tree finding the beat's best lane (⌈log2 lanes⌉), the
    stage whose comparison with the best so far is computed a cycle ahead, the compare stage,
    and the best index into the output register
    (:class:`~hwgen.rtl.layers.argmax.ArgmaxUnit`)."""
    return 4 + (lanes - 1).bit_length()


@dataclass(frozen=True, eq=False)
class Argmax(Layer):
    """Index of the largest score of a 1-D integer input; ties go to the lowest index."""

    kind: ClassVar[str] = "argmax"
    last_only: ClassVar[bool] = True

    name: str = "argmax"
    inputs: tuple[str, ...] = ()

    def check(self, inputs: Sequence[TensorType], where: Where) -> tuple[Argmax, list[TensorType]]:
        (x,) = inputs
        if len(x.shape) != 1:
            raise where.spec_error("kind", f"argmax needs a 1-D input, got shape {x.shape}")
        bits, _ = width_for(0, x.size - 1)
        return self, [TensorType((1,), bits, False)]

    def golden(self, x: np.ndarray) -> list[np.ndarray]:
        return [np.argmax(x, axis=-1).astype(np.int64)[..., None]]

    def cost(self, inputs: Sequence[TensorType], out: TensorType, lanes: int,
             dsp: bool) -> LayerPlan:
        return weightless(self, inputs, out, lanes, cycles=inputs[0].size // lanes, out_lanes=1)

    @staticmethod
    def out_times(lp: LayerPlan, in_times: list[int]) -> list[int]:
        """It answers :func:`latency` cycles after its last input beat."""
        return [in_times[-1] + latency(lp.in_lanes)]

    def held(self, lp: LayerPlan) -> int:
        return lp.in_type.size
