"""The argmax layer's component: the index of the largest score of a stream."""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ...layers import Layer, LayerPlan
from ...layers.argmax import latency
from ...numeric import TensorType, width_for
from ..stream import check_positive, lanes_signature, output_buffer

__all__ = ["ArgmaxUnit", "component"]


class ArgmaxUnit(wiring.Component):
    """Index of the largest of ``in_type.size`` scores arriving ``lanes`` per beat.

    Ties go to the lowest index. A beat goes into an input register; with more than one lane
    a tree of compares finds the beat's best lane (the lower lane on ties), each level a
    registered stage; one more stage holds it while it is compared with the frame's best so
    far (the comparison itself computed a stage earlier), whose index goes to the output the
    cycle after. The index leaves :attr:`latency` cycles after the frame's
    last beat, through two output registers
    (:func:`~hwgen.rtl.stream.output_buffer`); the stages advance together, and stop only
    while both output registers are full and another index is done, so ``i_stream.ready``
    depends on registers only and one beat per cycle is taken otherwise.

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
        #: Cycles from the frame's last input beat to its index at the output
        #: (:func:`hwgen.layers.argmax.latency`).
        self.latency = latency(lanes)
        index_bits, _ = width_for(0, in_type.size - 1)
        super().__init__({
            "i_stream": In(lanes_signature(in_type, lanes)),
            "o_stream": Out(stream.Signature(unsigned(index_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        size = self.in_type.size
        advance = Signal()
        m.d.comb += self.i_stream.ready.eq(advance)

        # Stage 1: the beat, where it is in its frame, and its first index.
        beat = Signal(range(self.beats))
        base = Signal(range(size))  # beat·lanes, counted (no multiplier: DSP-free)
        last = beat == self.beats - 1
        with m.If(self.i_stream.valid & advance):
            m.d.sync += [beat.eq(Mux(last, 0, beat + 1)),
                         base.eq(Mux(last, 0, base + self.lanes))]
        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_base = Signal(range(size))
        s1_scores = Signal.like(self.i_stream.payload)
        with m.If(advance):
            m.d.sync += [s1_valid.eq(self.i_stream.valid), s1_first.eq(beat == 0),
                         s1_last.eq(last), s1_base.eq(base),
                         s1_scores.eq(self.i_stream.payload)]

        # Stages 2 …: the beat's best lane by a tree of compares, one registered level per
        # stage; the lower lane wins ties. Each entry is (value, lane); the beat's first index
        # travels beside them and is added to the lane once, into the compare stage.
        t_valid, t_first, t_last, t_base = s1_valid, s1_first, s1_last, s1_base
        level = [(s1_scores[k], Const(k, range(self.lanes))) for k in range(self.lanes)]
        depth = 0
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level) - 1, 2):
                (va, ia), (vb, ib) = level[i], level[i + 1]
                take_b = vb > va
                nxt.append((Mux(take_b, vb, va), Mux(take_b, ib, ia)))
            if len(level) % 2:
                nxt.append(level[-1])
            regs = []
            for j, (value, lane) in enumerate(nxt):
                r_value = Signal.like(s1_scores[0], name=f"l{depth}_value{j}")
                r_lane = Signal(range(self.lanes), name=f"l{depth}_lane{j}")
                with m.If(advance):
                    m.d.sync += [r_value.eq(value), r_lane.eq(lane)]
                regs.append((r_value, r_lane))
            r_valid, r_first, r_last = (Signal(name=f"l{depth}_{n}")
                                        for n in ("valid", "first", "last"))
            r_base = Signal(range(size), name=f"l{depth}_base")
            with m.If(advance):
                m.d.sync += [r_valid.eq(t_valid), r_first.eq(t_first), r_last.eq(t_last),
                             r_base.eq(t_base)]
            t_valid, t_first, t_last, t_base = r_valid, r_first, r_last, r_base
            level, depth = regs, depth + 1
        (t_value, t_lane), = level

        # Compare stage, fed by one more register stage: the frame's best so far. Whether a
        # beat beats the best is a register too (``beats_best``), compared while the beat is
        # one stage earlier against both values the best can take by then: the best so far
        # and the beat ahead of it, which becomes the best if it beats it. So the loop from
        # the best through a compare back into the best is one LUT of select, not a carry
        # chain. The cycle after a frame's last beat its best index (a register) goes into
        # the output registers.
        f_valid, f_first, f_last = Signal(), Signal(), Signal()
        f_value = Signal.like(s1_scores[0])
        f_index = Signal(range(size))
        best_value = Signal.like(s1_scores[0])
        best_index = Signal(range(size))
        beats_best = Signal()
        done = Signal()
        better = f_valid & (f_first | beats_best)
        with m.If(advance):
            m.d.sync += [f_valid.eq(t_valid), f_first.eq(t_first), f_last.eq(t_last),
                         f_value.eq(t_value), f_index.eq(t_base + t_lane),
                         beats_best.eq(Mux(better, t_value > f_value, t_value > best_value)),
                         done.eq(f_valid & f_last)]
            with m.If(better):
                m.d.sync += [best_value.eq(f_value), best_index.eq(f_index)]
        output_buffer(m, self.o_stream, best_index, done, advance)
        return m


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return ArgmaxUnit(lp.in_type, lanes=lp.in_lanes)
