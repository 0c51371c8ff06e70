"""The global_sum_pool layer's component: a per-channel running sum over all positions."""

from __future__ import annotations

from amaranth.lib import wiring

from ...layers import Layer, LayerPlan
from ...numeric import TensorType
from ..pool import ChannelReduce
from ..stream import check_image, check_positive, element_shape

__all__ = ["global_sum_unit", "component"]


def global_sum_unit(in_type: TensorType, out_type: TensorType, *, lanes: int) -> ChannelReduce:
    """The global_sum_pool layer: one :class:`ChannelReduce` sum over all H·W positions."""
    check_image("in_type", in_type)
    check_positive("lanes", lanes)
    h, w, c = in_type.shape
    if c % lanes:
        raise ValueError(f"lanes {lanes} does not divide the {c} channels")
    return ChannelReduce(element_shape(in_type), lanes=lanes, positions=h * w,
                         chunks=c // lanes, op="sum", out_shape=element_shape(out_type))


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return global_sum_unit(lp.in_type, lp.out_type, lanes=lp.in_lanes)
