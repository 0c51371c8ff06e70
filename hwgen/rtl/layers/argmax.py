"""The argmax layer's component."""

from __future__ import annotations

from amaranth.lib import wiring

from ...layers import Layer, LayerPlan
from ..argmax import ArgmaxUnit

__all__ = ["component"]


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return ArgmaxUnit(lp.in_type, lanes=lp.in_lanes)
