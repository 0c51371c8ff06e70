"""The dense layer's component: a folded matrix-vector unit."""

from __future__ import annotations

from amaranth.lib import wiring

from ...layers import Layer, LayerPlan
from ..mvu import MatrixVectorUnit

__all__ = ["component"]


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return MatrixVectorUnit(layer, lp.in_type, lp.out_type, pe=lp.pe, simd=lp.simd, mac=lp.mac)
