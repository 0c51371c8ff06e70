"""The channel_split layer: its dataclass, golden function and cost."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import Where
from ..numeric import TensorType
from .base import Layer

__all__ = ["ChannelSplit"]


@dataclass(frozen=True, eq=False)
class ChannelSplit(Layer):
    """A tensor's channels (last axis, an even count C) split into two halves: output
    ``<name>.0`` holds channels 0 … C/2 − 1, output ``<name>.1`` channels C/2 … C − 1, both of
    the input's element type (ShuffleNetV2's channel split; ONNX ``Split`` into two equal
    parts along the channels)."""

    kind: ClassVar[str] = "channel_split"
    outputs: ClassVar[int] = 2

    name: str
    inputs: tuple[str, ...] = ()

    def check(self, inputs: Sequence[TensorType],
              where: Where) -> tuple[ChannelSplit, list[TensorType]]:
        (x,) = inputs
        channels = x.shape[-1]
        if channels % 2:
            raise where.spec_error("kind", f"channel_split needs an even channel count, got "
                                   f"{channels} (input shape {x.shape})")
        half = TensorType((*x.shape[:-1], channels // 2), x.bits, x.signed)
        return self, [half, half]

    def golden(self, x: np.ndarray) -> list[np.ndarray]:
        half = x.shape[-1] // 2
        return [x[..., :half], x[..., half:]]

    def lanes_wanted(self, inputs: Sequence[TensorType], upstream: int) -> int:
        """Lanes dividing half the channels: the upstream lanes where they do."""
        return math.gcd(upstream, inputs[0].shape[-1] // 2)
