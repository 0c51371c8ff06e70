"""The depthwise_conv2d layer's component: a sliding window feeding a vector-vector unit."""

from __future__ import annotations

from amaranth.lib import wiring

from ...layers import Layer, LayerPlan
from ..depthwise import DepthwiseConvUnit

__all__ = ["component"]


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return DepthwiseConvUnit(layer, lp.in_type, lp.out_type, pe=lp.pe, mac=lp.mac)
