"""The channel_shuffle layer: its dataclass, golden function and cost."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where, check_positive
from ..numeric import TensorType
from .base import Layer, LayerPlan
from .tables import require_positive

__all__ = ["ChannelShuffle"]


@dataclass(frozen=True, eq=False)
class ChannelShuffle(Layer):
    """ShuffleNet's channel shuffle with ``groups`` g: the C channels of each position, read as
    a g × C/g matrix, transposed, so output channel j is input channel
    ``(j mod g)·(C/g) + j div g`` (g divides C)."""

    kind: ClassVar[str] = "channel_shuffle"
    toml_keys: ClassVar[frozenset[str]] = frozenset({"groups"})

    name: str
    groups: int
    inputs: tuple[str, ...] = ()

    def check(self, inputs: Sequence[TensorType],
              where: Where) -> tuple[ChannelShuffle, list[TensorType]]:
        (x,) = inputs
        groups = check_positive(self.groups, "groups", where)
        channels = x.shape[-1]
        if channels % groups:
            raise where.spec_error("groups", f"{groups} does not divide the {channels} "
                                   f"channels of the input")
        return dataclasses.replace(self, groups=groups), [x]

    @classmethod
    def from_toml(cls, table: dict, arrays: dict, where: Where) -> ChannelShuffle:
        return cls(name=table["name"], groups=require_positive(table, "groups", where))

    def to_toml(self) -> tuple[list[str], dict[str, np.ndarray]]:
        return [f"groups = {self.groups}"], {}

    def golden(self, x: np.ndarray) -> list[np.ndarray]:
        *lead, channels = x.shape
        grouped = x.reshape(*lead, self.groups, channels // self.groups)
        return [np.swapaxes(grouped, -1, -2).reshape(x.shape)]

    @staticmethod
    def out_times(lp: LayerPlan, in_times: list[int]) -> list[int]:
        """A position's beats leave one a cycle from the cycle after its last input beat."""
        beats = lp.in_type.shape[-1] // lp.in_lanes
        times, last = [], -1
        for k in range(len(in_times)):
            last = max(last + 1, in_times[k - k % beats + beats - 1] + 1)
            times.append(last)
        return times

    def held(self, lp: LayerPlan) -> int:
        """Two positions' channels (its ping-pong buffers)."""
        return 2 * lp.in_type.shape[-1]
