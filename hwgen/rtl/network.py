"""The network top: every layer's component chained by streams, with optional taps."""

from __future__ import annotations

import numbers
from functools import singledispatch

from amaranth import Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..plan import LayerPlan, NetworkPlan, plan
from ..spec import (
    INPUT,
    Add,
    Argmax,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    Flatten,
    GlobalSumPool,
    MaxPool,
    Network,
)
from .add import AddUnit
from .argmax import ArgmaxUnit
from .conv import ConvUnit
from .depthwise import DepthwiseConvUnit
from .mvu import MatrixVectorUnit
from .pool import MaxPoolUnit, global_sum_unit
from .stream import Fork, Passthrough, StreamFifo, WidthConverter, element_shape, lanes_signature
from .weights import SPRAM_WIDTH

__all__ = ["NetworkTop", "layer_component"]


@singledispatch
def layer_component(layer: object, lp: LayerPlan) -> wiring.Component:
    """The Amaranth component that computes ``layer`` as planned by ``lp``."""
    raise TypeError(f"no RTL for {type(layer).__name__}")


@layer_component.register
def _(layer: Dense, lp: LayerPlan) -> wiring.Component:
    return MatrixVectorUnit(layer, lp.in_type, lp.out_type, pe=lp.pe, simd=lp.simd, mac=lp.mac)


@layer_component.register
def _(layer: Conv2d, lp: LayerPlan) -> wiring.Component:
    return ConvUnit(layer, lp.in_type, lp.out_type, pe=lp.pe, simd=lp.simd, mac=lp.mac)


@layer_component.register
def _(layer: DepthwiseConv2d, lp: LayerPlan) -> wiring.Component:
    return DepthwiseConvUnit(layer, lp.in_type, lp.out_type, pe=lp.pe, mac=lp.mac)


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
    inserted where a layer's input lanes differ from its producer's output lanes. A tensor read
    by several layers goes through a :class:`~hwgen.rtl.stream.Fork`; each input of an add
    layer has a FIFO of the depth the plan gives (``NetworkPlan.fifos``).

    Networks with SPRAM weights (``weight_memory = "spram"``) have ports ``load_valid``,
    ``load_data`` (16 bits) and ``load_restart``: each cycle with ``load_valid`` writes the next
    halfword of :func:`~hwgen.rtl.weights.spram_image`, the first one when ``load_restart`` is
    high. ``spram_halfwords`` is the image's length in halfwords.

    ``dsp_budget`` (the device's DSP multipliers) lets ``mac = "auto"`` layers use DSPs
    (:func:`hwgen.plan.plan`).

    With ``taps``, every layer's output stream is also visible at ports ``tap_<layer>_fire``
    (a beat is transferred this cycle) and ``tap_<layer>_payload``, for simulation.

    Frames may follow each other back to back; cycles and latency are the plan's
    (:attr:`plan`), and backpressure on ``o_stream`` stalls the layers through their streams.

    Parameters
    ----------
    network : Network
        The validated network.
    taps : bool
        Add the ``tap_*`` ports.
    dsp_budget : int or None
        DSP multipliers ``mac = "auto"`` layers may use; ``None`` (default): none.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(input element, input lanes)))
    o_stream : Out(stream.Signature(last layer's payload))
    load_valid, load_restart : In(1)
    load_data : In(16)
        Only with SPRAM weights (see above).
    tap_<layer>_fire : Out(1)
    tap_<layer>_payload : Out(payload width of the layer's output)
        Only with ``taps``, one pair per layer.
    """

    def __init__(self, network: Network, *, taps: bool = False, dsp_budget: int | None = None):
        if not isinstance(network, Network):
            raise TypeError(f"network must be a hwgen.spec.Network, not {network!r}")
        if not isinstance(taps, bool):
            raise TypeError(f"taps must be True or False, not {taps!r}")
        if dsp_budget is not None and (not isinstance(dsp_budget, numbers.Integral)
                                       or isinstance(dsp_budget, bool) or dsp_budget < 0):
            raise ValueError(f"dsp_budget must be None or a non-negative integer, not "
                             f"{dsp_budget!r}")
        self.network = network
        self.plan: NetworkPlan = plan(network, dsp_budget)
        self.taps = taps
        self.units = []
        for layer, lp, sources in zip(network.layers, self.plan.layers, network.sources,
                                      strict=True):
            if isinstance(layer, Add):
                a, b = (network.type_of(src) for src in sources)
                self.units.append(AddUnit(layer, a, b, lp.out_type, lanes=lp.in_lanes))
            else:
                self.units.append(layer_component(layer, lp))
        members = {
            "i_stream": In(lanes_signature(self.plan.input_type, self.plan.input_lanes)),
            "o_stream": Out(self.units[-1].o_stream.signature),
        }
        #: (unit, first halfword) of each unit with SPRAM weights, in image order.
        self.spram_units = []
        self.spram_halfwords = 0
        for unit in self.units:
            if getattr(unit, "spram", False):
                self.spram_units.append((unit, self.spram_halfwords))
                self.spram_halfwords += unit.spram_halfwords
        if self.spram_units:
            members.update({"load_valid": In(1), "load_restart": In(1),
                            "load_data": In(SPRAM_WIDTH)})
        if taps:
            for lp, unit in zip(self.plan.layers, self.units, strict=True):
                width = len(Value.cast(unit.o_stream.payload))
                members[f"tap_{lp.name}_fire"] = Out(1)
                members[f"tap_{lp.name}_payload"] = Out(width)
        super().__init__(members)

    @staticmethod
    def _input_ports(unit) -> list:
        return [unit.a_stream, unit.b_stream] if isinstance(unit, AddUnit) else [unit.i_stream]

    def elaborate(self, platform):
        m = Module()
        net, p = self.network, self.plan
        readers: dict[str, int] = {}
        for sources in net.sources:
            for src in sources:
                readers[src] = readers.get(src, 0) + 1
        available: dict[str, list] = {}

        def produce(tensor: str, out_stream, t, lanes: int) -> None:
            if readers.get(tensor, 0) > 1:
                fork = Fork(lanes_signature(t, lanes), readers[tensor])
                m.submodules[f"{tensor}_fork"] = fork
                wiring.connect(m, out_stream, fork.i_stream)
                available[tensor] = [(s, lanes) for s in fork.outputs]
            else:
                available[tensor] = [(out_stream, lanes)]

        produce(INPUT, wiring.flipped(self.i_stream), p.input_type, p.input_lanes)
        for lp, unit, sources in zip(p.layers, self.units, p.sources, strict=True):
            m.submodules[lp.name] = unit
            for port, (src, dst) in enumerate(zip(sources, self._input_ports(unit),
                                                  strict=True)):
                upstream, lanes = available[src].pop(0)
                src_type = net.type_of(src)
                depth = p.fifos.get((lp.name, port))
                suffix = "" if port == 0 else str(port)
                if depth:
                    buf = StreamFifo(lanes_signature(src_type, lanes), depth)
                    m.submodules[f"{lp.name}_fifo{port}"] = buf
                    wiring.connect(m, upstream, buf.i_stream)
                    upstream = buf.o_stream
                if lanes != lp.in_lanes:
                    conv = WidthConverter(element_shape(src_type), in_lanes=lanes,
                                          out_lanes=lp.in_lanes)
                    m.submodules[f"{lp.name}_converter{suffix}"] = conv
                    wiring.connect(m, upstream, conv.i_stream)
                    upstream = conv.o_stream
                wiring.connect(m, upstream, dst)
            if lp is not p.layers[-1]:
                produce(lp.name, unit.o_stream, lp.out_type, lp.out_lanes)
            if self.taps:
                m.d.comb += [
                    getattr(self, f"tap_{lp.name}_fire").eq(unit.o_stream.valid
                                                            & unit.o_stream.ready),
                    getattr(self, f"tap_{lp.name}_payload").eq(
                        Value.cast(unit.o_stream.payload)),
                ]
        wiring.connect(m, self.units[-1].o_stream, wiring.flipped(self.o_stream))
        if self.spram_units:
            self._route_load(m)
        return m

    def _route_load(self, m: Module) -> None:
        """Hands each halfword of the load image to the unit whose range holds it."""
        counter = Signal(range(self.spram_halfwords + 1))
        index = Mux(self.load_restart, 0, counter)
        with m.If(self.load_valid):
            m.d.sync += counter.eq(index + 1)
        for unit, base in self.spram_units:
            inside = (index >= base) & (index < base + unit.spram_halfwords)
            m.d.comb += [unit.load_valid.eq(self.load_valid & inside),
                         unit.load_first.eq(index == base),
                         unit.load_data.eq(self.load_data)]
