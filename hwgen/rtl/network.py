"""The network top: every layer's component chained by streams, with optional taps."""

from __future__ import annotations

from functools import singledispatch

from amaranth import Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..plan import LayerPlan, NetworkPlan, plan
from ..spec import Argmax, Conv2d, Dense, Flatten, GlobalSumPool, MaxPool, Network
from .argmax import Argmax as ArgmaxUnit
from .conv import ConvUnit
from .mvu import MatrixVectorUnit
from .pool import MaxPoolUnit, global_sum_unit
from .stream import Passthrough, WidthConverter, element_shape, lanes_signature

__all__ = ["NetworkTop", "layer_component"]


@singledispatch
def layer_component(layer: object, lp: LayerPlan) -> wiring.Component:
    """The Amaranth component that computes ``layer`` as planned by ``lp``."""
    raise TypeError(f"no RTL for {type(layer).__name__}")


@layer_component.register
def _(layer: Dense, lp: LayerPlan) -> wiring.Component:
    return MatrixVectorUnit(layer, lp.in_type, lp.out_type, pe=lp.pe, simd=lp.simd)


@layer_component.register
def _(layer: Conv2d, lp: LayerPlan) -> wiring.Component:
    return ConvUnit(layer, lp.in_type, lp.out_type, pe=lp.pe, simd=lp.simd)


@layer_component.register
def _(layer: MaxPool, lp: LayerPlan) -> wiring.Component:
    return MaxPoolUnit(layer, lp.in_type, lanes=lp.in_lanes)


@layer_component.register
def _(layer: GlobalSumPool, lp: LayerPlan) -> wiring.Component:
    return global_sum_unit(lp.in_type, lp.out_type, lanes=lp.in_lanes)


@layer_component.register
def _(layer: Flatten, lp: LayerPlan) -> wiring.Component:
    return Passthrough(lanes_signature(lp.in_type, lp.in_lanes))


@layer_component.register
def _(layer: Argmax, lp: LayerPlan) -> wiring.Component:
    return ArgmaxUnit(lp.in_type, lanes=lp.in_lanes)


class NetworkTop(wiring.Component):
    """A whole network: input tensor stream in, last layer's output stream out.

    One frame of ``input lanes``-wide beats per inference goes in; the last layer's frame comes
    out (one beat holding the class index for networks ending in argmax). Width converters are
    inserted where a layer's output lanes differ from the next layer's input lanes.

    With ``taps``, every layer's output stream is also visible at ports ``tap_<layer>_fire``
    (a beat is transferred this cycle) and ``tap_<layer>_payload``, for simulation.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(input element, input lanes)))
    o_stream : Out(stream.Signature(last layer's payload))
    """

    def __init__(self, network: Network, *, taps: bool = False):
        self.network = network
        self.plan: NetworkPlan = plan(network)
        self.taps = taps
        self.units = [layer_component(layer, lp)
                      for layer, lp in zip(network.layers, self.plan.layers, strict=True)]
        members = {
            "i_stream": In(lanes_signature(self.plan.input_type, self.plan.input_lanes)),
            "o_stream": Out(self.units[-1].o_stream.signature),
        }
        if taps:
            for lp, unit in zip(self.plan.layers, self.units, strict=True):
                width = len(Value.cast(unit.o_stream.payload))
                members[f"tap_{lp.name}_fire"] = Out(1)
                members[f"tap_{lp.name}_payload"] = Out(width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        upstream = wiring.flipped(self.i_stream)
        lanes = self.plan.input_lanes
        for lp, unit in zip(self.plan.layers, self.units, strict=True):
            if lp.in_lanes != lanes:
                conv = WidthConverter(element_shape(lp.in_type), in_lanes=lanes,
                                      out_lanes=lp.in_lanes)
                m.submodules[f"{lp.name}_converter"] = conv
                wiring.connect(m, upstream, conv.i_stream)
                upstream = conv.o_stream
            m.submodules[lp.name] = unit
            wiring.connect(m, upstream, unit.i_stream)
            upstream, lanes = unit.o_stream, lp.out_lanes
            if self.taps:
                m.d.comb += [
                    getattr(self, f"tap_{lp.name}_fire").eq(unit.o_stream.valid
                                                            & unit.o_stream.ready),
                    getattr(self, f"tap_{lp.name}_payload").eq(
                        Value.cast(unit.o_stream.payload)),
                ]
        wiring.connect(m, upstream, wiring.flipped(self.o_stream))
        return m
