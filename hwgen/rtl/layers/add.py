"""The add layer's component."""

from __future__ import annotations

from amaranth.lib import wiring

from ...layers import Layer, LayerPlan
from ..add import AddUnit

__all__ = ["component"]


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return AddUnit(layer, *lp.in_types, lp.out_type, lanes=lp.in_lanes)
