"""The conv2d layer's component: a sliding window feeding a matrix-vector unit."""

from __future__ import annotations

from amaranth.lib import wiring

from ...layers import Layer, LayerPlan
from ..conv import ConvUnit

__all__ = ["component"]


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return ConvUnit(layer, lp.in_type, lp.out_type, pe=lp.pe, simd=lp.simd, mac=lp.mac)
