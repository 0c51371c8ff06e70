"""The layer kinds: one module per kind (its dataclass, validation, TOML fields, golden
function and cost), and :data:`KINDS`, the one list of them that the spec loader and saver,
the golden model, the planner and the network top iterate.

Adding a kind: write ``hwgen/layers/<kind>.py`` (a frozen dataclass deriving from
:class:`~hwgen.layers.base.Layer`) and its component ``hwgen/rtl/layers/<kind>.py``, and add
one line here and one in ``hwgen/rtl/layers/__init__.py`` (docs/architecture.md).
"""

from __future__ import annotations

from .add import Add
from .argmax import Argmax
from .base import INPUT, Layer, LayerPlan, Mac
from .channel_shuffle import ChannelShuffle
from .channel_split import ChannelSplit
from .concat import Concat
from .conv2d import Conv2d
from .dense import Dense
from .depthwise_conv2d import DepthwiseConv2d
from .flatten import Flatten
from .global_sum_pool import GlobalSumPool
from .maxpool import MaxPool
from .weighted import Requantize, WeightedLayer
from .window import same_padding

__all__ = ["KINDS", "kind_of", "Layer", "LayerPlan", "Mac", "INPUT", "Requantize",
           "WeightedLayer", "same_padding", "Dense", "Conv2d", "DepthwiseConv2d", "MaxPool",
           "GlobalSumPool", "Flatten", "Add", "Argmax"]

#: Every layer kind by its TOML name, in the order the docs list them.
KINDS: dict[str, type[Layer]] = {cls.kind: cls for cls in (
    Dense,
    Conv2d,
    DepthwiseConv2d,
    MaxPool,
    GlobalSumPool,
    Flatten,
    Add,
    ChannelSplit,
    Concat,
    ChannelShuffle,
    Argmax,
)}


def kind_of(name: str) -> type[Layer]:
    """The layer class of a kind name (``KeyError`` for an unknown one)."""
    return KINDS[name]
