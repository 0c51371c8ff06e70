"""The global_sum_pool layer's component: a per-channel reduction over positions."""

from __future__ import annotations

from amaranth.lib import wiring

from ...layers import Layer, LayerPlan
from ..pool import global_sum_unit

__all__ = ["component"]


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return global_sum_unit(lp.in_type, lp.out_type, lanes=lp.in_lanes)
