"""One Amaranth component per layer kind, under the kind's name (as in :mod:`hwgen.layers`),
and :data:`COMPONENTS`, the one table of them the network top iterates.

A kind's module defines ``component(layer, lp)``: the component computing the checked layer as
its :class:`~hwgen.layers.base.LayerPlan` plans it. A component with one input and one output
has ``i_stream`` and ``o_stream``; one with several lists them in ``inputs`` and ``outputs``
(see :func:`input_ports`, :func:`output_ports`).
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.lib import wiring

from ...layers import KINDS, Layer, LayerPlan
from . import (
    add,
    argmax,
    channel_shuffle,
    channel_split,
    concat,
    conv2d,
    dense,
    depthwise_conv2d,
    flatten,
    global_sum_pool,
    maxpool,
)

__all__ = ["COMPONENTS", "component", "input_ports", "output_ports"]

#: Every kind's component builder by kind name.
COMPONENTS: dict[str, Callable[[Layer, LayerPlan], wiring.Component]] = {
    "dense": dense.component,
    "conv2d": conv2d.component,
    "depthwise_conv2d": depthwise_conv2d.component,
    "maxpool": maxpool.component,
    "global_sum_pool": global_sum_pool.component,
    "flatten": flatten.component,
    "add": add.component,
    "channel_split": channel_split.component,
    "concat": concat.component,
    "channel_shuffle": channel_shuffle.component,
    "argmax": argmax.component,
}

assert COMPONENTS.keys() == KINDS.keys(), "every kind of hwgen.layers needs its component"


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return COMPONENTS[layer.kind](layer, lp)


def input_ports(unit: wiring.Component) -> list:
    """A component's input streams in port order."""
    return list(unit.inputs) if hasattr(unit, "inputs") else [unit.i_stream]


def output_ports(unit: wiring.Component) -> list:
    """A component's output streams in order."""
    return list(unit.outputs) if hasattr(unit, "outputs") else [unit.o_stream]
