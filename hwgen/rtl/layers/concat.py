"""The concat layer: several tensors of one leading shape joined along their channels."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ...layers import Layer, LayerPlan
from ...numeric import TensorType
from ..stream import check_positive, element_shape, lanes_signature

__all__ = ["ConcatUnit", "component"]


class ConcatUnit(wiring.Component):
    """Joins two or more tensors along the channels: per pixel, input 0's channels, then
    input 1's, and so on.

    Beats are channels-last, ``lanes`` elements each, element [0] in the lowest bits and
    holding the lowest channel of its beat. For every pixel the output carries the
    C_0/lanes beats of ``i0_stream``, then the C_1/lanes beats of ``i1_stream``, … with each
    element converted to ``out_type``'s format: a binary element becomes its value ±1 (or
    stays a bit when ``out_type`` is binary), a multi-bit element is sign- or zero-extended.
    Pixels and frames follow each other with no dead cycles.

    The unit reads one input at a time, in that order. A beat is taken when the input read now
    is valid and the 2-entry output FIFO has room, and is offered on ``o_stream`` the next
    cycle: with every input valid and ``o_stream`` ready the unit sends a beat every cycle,
    each one cycle after its input beat was taken. The inputs not read now are not ready, so an
    input that runs ahead waits. Every input's ``ready`` depends on registered state only (the
    beat count and the FIFO level), never on ``o_stream.ready`` or on another input.

    Parameters
    ----------
    in_types : sequence of TensorType
        The input tensor types, two or more, equal in all dimensions but the last.
    out_type : TensorType
        The output tensor type: the inputs' leading dimensions and the sum of their channels;
        its range holds every input's range.
    lanes : int
        Elements per beat, on every stream; divides every input's channel count.

    Members
    -------
    i0_stream, i1_stream, … : In(stream.Signature(ArrayLayout(input k element, lanes)))
        One per input, also listed in order by :attr:`inputs`.
    o_stream : Out(stream.Signature(ArrayLayout(out element, lanes)))
    """

    def __init__(self, in_types: Sequence[TensorType], out_type: TensorType, *, lanes: int):
        check_positive("lanes", lanes)
        in_types = tuple(in_types)
        if len(in_types) < 2:
            raise ValueError(f"concat needs at least two inputs, got {len(in_types)}")
        lead = in_types[0].shape[:-1]
        for k, t in enumerate(in_types):
            if t.shape[:-1] != lead:
                raise ValueError(f"input {k} shape {t.shape} differs from input 0 in its "
                                 f"leading dimensions {lead}")
        for k, t in enumerate(in_types):
            if t.shape[-1] % lanes:
                raise ValueError(f"lanes {lanes} does not divide the {t.shape[-1]} channels "
                                 f"of input {k}")
        expected = (*lead, sum(t.shape[-1] for t in in_types))
        if tuple(out_type.shape) != expected:
            raise ValueError(f"out_type shape {out_type.shape} is not {expected}")
        lo, hi = out_type.range
        for k, t in enumerate(in_types):
            if not lo <= t.range[0] <= t.range[1] <= hi:
                raise ValueError(f"out_type {out_type.describe()} cannot hold input {k} "
                                 f"({t.describe()})")
        self.in_types, self.out_type, self.lanes = in_types, out_type, lanes
        members = {f"i{k}_stream": In(lanes_signature(t, lanes))
                   for k, t in enumerate(in_types)}
        members["o_stream"] = Out(lanes_signature(out_type, lanes))
        super().__init__(members)

    @property
    def inputs(self) -> list:
        return [getattr(self, f"i{k}_stream") for k in range(len(self.in_types))]

    @property
    def outputs(self) -> list:
        return [self.o_stream]

    def _converted(self, m: Module, k: int):
        """Input k's payload as ``lanes`` elements of the output format, lane 0 lowest."""
        t, out_t = self.in_types[k], self.out_type
        stream = self.inputs[k]
        if out_t.binary:  # then every input is binary too (the range check)
            return stream.payload.as_value()
        elements = []
        for lane in range(self.lanes):
            element = Signal(element_shape(out_t), name=f"i{k}_lane{lane}")
            x = stream.payload[lane]
            m.d.comb += element.eq(Mux(x, 1, -1) if t.binary else x)
            elements.append(element)
        return Cat(*elements)

    def elaborate(self, platform):
        m = Module()
        lanes, out_t = self.lanes, self.out_type
        width = lanes * element_shape(out_t).width
        m.submodules.fifo = out = fifo.SyncFIFO(width=width, depth=2)
        wiring.connect(m, out.r_stream, wiring.flipped(self.o_stream))
        w = out.w_stream

        counts = [t.shape[-1] // lanes for t in self.in_types]  # beats per pixel, by input
        total = sum(counts)
        beat = Signal(range(total))  # the pixel's output beat; it names the input read now
        valid = Signal()
        payload = Signal(width)
        first = 0
        for k, stream in enumerate(self.inputs):
            reading = Signal(name=f"reading{k}")
            m.d.comb += [reading.eq((beat >= first) & (beat < first + counts[k])),
                         stream.ready.eq(reading & w.ready)]
            data = self._converted(m, k)
            with m.If(reading):
                m.d.comb += [valid.eq(stream.valid), payload.eq(data)]
            first += counts[k]
        m.d.comb += [w.valid.eq(valid), w.payload.eq(payload)]
        with m.If(valid & w.ready):
            m.d.sync += beat.eq(Mux(beat == total - 1, 0, beat + 1))
        return m


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return ConcatUnit(lp.in_types, lp.out_type, lanes=lp.in_lanes)
