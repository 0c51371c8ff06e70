"""The maxpool layer's component."""

from __future__ import annotations

from amaranth.lib import wiring

from ...layers import Layer, LayerPlan
from ..pool import MaxPoolUnit

__all__ = ["component"]


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return MaxPoolUnit(layer, lp.in_type, lanes=lp.in_lanes)
