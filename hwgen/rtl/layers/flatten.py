"""The flatten layer's component: the stream passes unchanged."""

from __future__ import annotations

from amaranth.lib import wiring

from ...layers import Layer, LayerPlan
from ..stream import Passthrough, lanes_signature

__all__ = ["component"]


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return Passthrough(lanes_signature(lp.in_type, lp.in_lanes))
