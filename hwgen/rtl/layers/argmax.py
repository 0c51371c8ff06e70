"""The argmax layer's component: the index of the largest score of a stream."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ...layers import Layer, LayerPlan
from ...numeric import TensorType, width_for
from ..stream import check_positive, lanes_signature

__all__ = ["ArgmaxUnit", "component"]


class ArgmaxUnit(wiring.Component):
    """Index of the largest of ``in_type.size`` scores arriving ``lanes`` per beat.

    Ties go to the lowest index. The index leaves one cycle after the frame's last beat;
    ``i_stream.ready`` is low only while a finished index waits and the next beat would finish
    another frame, so it never depends on ``o_stream.ready`` combinationally. One beat per
    cycle is taken otherwise.

    Parameters
    ----------
    in_type : TensorType
        The scores' tensor type; a frame is its ``size`` elements, in order.
    lanes : int
        Scores per input beat; divides ``in_type.size``.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(score, lanes)))
    o_stream : Out(stream.Signature(unsigned(index bits)))
    """

    def __init__(self, in_type: TensorType, *, lanes: int):
        check_positive("lanes", lanes)
        if in_type.size % lanes:
            raise ValueError(f"lanes {lanes} does not divide {in_type.size} scores")
        self.in_type, self.lanes = in_type, lanes
        self.beats = in_type.size // lanes
        index_bits, _ = width_for(0, in_type.size - 1)
        super().__init__({
            "i_stream": In(lanes_signature(in_type, lanes)),
            "o_stream": Out(stream.Signature(unsigned(index_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        beat = Signal(range(self.beats))
        last = beat == self.beats - 1
        scores = self.i_stream.payload
        # Best lane of this beat: a tree that prefers the left (lower) index on ties.
        level = [(scores[k], k) for k in range(self.lanes)]
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level) - 1, 2):
                (va, ia), (vb, ib) = level[i], level[i + 1]
                take_b = vb > va
                nxt.append((Mux(take_b, vb, va), Mux(take_b, ib, ia)))
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        beat_value, beat_lane = level[0]

        best_value = Signal.like(scores[0])
        best_index = Signal(range(self.in_type.size))
        index = Signal(range(self.in_type.size))
        base = Signal(range(self.in_type.size))  # beat·lanes, counted (no multiplier: DSP-free)
        m.d.comb += index.eq(base + beat_lane)
        first = beat == 0
        better = first | (beat_value > best_value)
        new_value = Mux(better, beat_value, best_value)
        new_index = Mux(better, index, best_index)

        i_fire = self.i_stream.valid & self.i_stream.ready
        m.d.comb += self.i_stream.ready.eq(~(self.o_stream.valid & last))
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)
        with m.If(i_fire):
            m.d.sync += [
                beat.eq(Mux(last, 0, beat + 1)),
                base.eq(Mux(last, 0, base + self.lanes)),
                best_value.eq(new_value),
                best_index.eq(new_index),
            ]
            with m.If(last):
                m.d.sync += [self.o_stream.valid.eq(1), self.o_stream.payload.eq(new_index)]
        return m


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return ArgmaxUnit(lp.in_type, lanes=lp.in_lanes)
