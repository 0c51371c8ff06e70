"""The network top: every layer's component chained by streams, with optional taps."""

from __future__ import annotations

import numbers

from amaranth import Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..plan import NetworkPlan, checked_plan, plan
from ..spec import INPUT, Network, output_names
from ..weight_image import SPRAM_WIDTH
from .layers import component, input_ports, output_ports
from .stream import Fork, StreamFifo, WidthConverter, element_shape, lanes_signature

__all__ = ["NetworkTop", "tap_name"]


def tap_name(tensor: str) -> str:
    """The port-name stem of a tensor's tap: ``tap_<layer>``, or ``tap_<layer>_<k>`` for output
    k of a layer with several."""
    return "tap_" + tensor.replace(".", "_")


class NetworkTop(wiring.Component):
    """A whole network: input tensor stream in, last layer's output stream out.

    One frame of ``input lanes``-wide beats per inference goes in; the last layer's frame comes
    out (one beat holding the class index for networks ending in argmax). Width converters are
    inserted where a layer's input lanes differ from its producer's output lanes. A tensor read
    by several layers goes through a :class:`~hwgen.rtl.stream.Fork`; each input of a
    layer with several inputs (add, concat) has a FIFO of the depth the plan gives
    (``NetworkPlan.fifos``).

    Networks with SPRAM weights (``weight_memory = "spram"``) have ports ``load_valid``,
    ``load_data`` (16 bits) and ``load_restart``: each cycle with ``load_valid`` writes the next
    halfword of :func:`~hwgen.weight_image.spram_image` (into its unit's SPRAM one cycle
    later), the first one when ``load_restart`` is high. ``spram_halfwords`` is the image's
    length in halfwords.

    The network is built as ``net_plan`` plans it (a build's one plan), or as
    :func:`hwgen.plan.plan` plans it with ``dsp_budget`` (the device's DSP multipliers, which
    ``mac = "auto"`` layers may use).

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
    net_plan : NetworkPlan or None
        The network's plan, instead of planning it here (not with ``dsp_budget``).

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

    def __init__(self, network: Network, *, taps: bool = False, dsp_budget: int | None = None,
                 net_plan: NetworkPlan | None = None):
        if not isinstance(network, Network):
            raise TypeError(f"network must be a hwgen.spec.Network, not {network!r}")
        if not isinstance(taps, bool):
            raise TypeError(f"taps must be True or False, not {taps!r}")
        if dsp_budget is not None and (not isinstance(dsp_budget, numbers.Integral)
                                       or isinstance(dsp_budget, bool) or dsp_budget < 0):
            raise ValueError(f"dsp_budget must be None or a non-negative integer, not "
                             f"{dsp_budget!r}")
        if dsp_budget is not None and net_plan is not None:
            raise ValueError("give dsp_budget or net_plan, not both (a plan has its budget)")
        self.network = network
        self.plan: NetworkPlan = (plan(network, dsp_budget) if net_plan is None
                                  else checked_plan(network, net_plan))
        self.taps = taps
        self.units = [component(layer, lp)
                      for layer, lp in zip(network.layers, self.plan.layers, strict=True)]
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
            for layer, unit in zip(network.layers, self.units, strict=True):
                for tensor, port in zip(output_names(layer), output_ports(unit), strict=True):
                    members[f"{tap_name(tensor)}_fire"] = Out(1)
                    members[f"{tap_name(tensor)}_payload"] = Out(len(Value.cast(port.payload)))
        super().__init__(members)

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
                m.submodules[f"{tensor.replace('.', '_')}_fork"] = fork
                wiring.connect(m, out_stream, fork.i_stream)
                available[tensor] = [(s, lanes) for s in fork.outputs]
            else:
                available[tensor] = [(out_stream, lanes)]

        produce(INPUT, wiring.flipped(self.i_stream), p.input_type, p.input_lanes)
        for layer, lp, unit, sources in zip(net.layers, p.layers, self.units, p.sources,
                                            strict=True):
            m.submodules[lp.name] = unit
            for port, (src, dst) in enumerate(zip(sources, input_ports(unit), strict=True)):
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
            for tensor, out in zip(output_names(layer), output_ports(unit), strict=True):
                if lp is not p.layers[-1]:
                    produce(tensor, out, lp.out_type, lp.out_lanes)
                if self.taps:
                    m.d.comb += [
                        getattr(self, f"{tap_name(tensor)}_fire").eq(out.valid & out.ready),
                        getattr(self, f"{tap_name(tensor)}_payload").eq(
                            Value.cast(out.payload)),
                    ]
        wiring.connect(m, self.units[-1].o_stream, wiring.flipped(self.o_stream))
        if self.spram_units:
            self._route_load(m)
        return m

    def _route_load(self, m: Module) -> None:
        """Hands each halfword of the load image to the unit whose range holds it, one cycle
        later (registered: the decoding does not reach the SPRAMs' address and write enable
        in the same cycle)."""
        counter = Signal(range(self.spram_halfwords + 1))
        index = Mux(self.load_restart, 0, counter)
        with m.If(self.load_valid):
            m.d.sync += counter.eq(index + 1)
        for unit, base in self.spram_units:
            inside = (index >= base) & (index < base + unit.spram_halfwords)
            m.d.sync += [unit.load_valid.eq(self.load_valid & inside),
                         unit.load_first.eq(index == base),
                         unit.load_data.eq(self.load_data)]
