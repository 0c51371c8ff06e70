"""The channel shuffle layer: ShuffleNet's fixed interleaving of each pixel's channel groups."""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...layers import Layer, LayerPlan
from ...numeric import TensorType
from ..stream import check_positive, element_shape, lanes_signature

__all__ = ["ChannelShuffleUnit", "component"]


def shuffle_source(channels: int, groups: int, j: int) -> int:
    """The input channel that output channel ``j`` copies: the (groups, C/groups) reshape of
    the channels, transposed and flattened."""
    return (j % groups) * (channels // groups) + j // groups


class ChannelShuffleUnit(wiring.Component):
    """Permutes each pixel's C channels: output channel j is input channel
    (j mod groups)·(C/groups) + ⌊j/groups⌋.

    Beats are channels-last, ``lanes`` elements each, element [0] in the lowest bits and
    holding the lowest channel of its beat; elements pass unchanged. A pixel is B = C/lanes
    beats on both streams.

    Two pixel buffers of registers take turns: one fills from ``i_stream`` while the other
    empties to ``o_stream``. A pixel's first output beat is offered the cycle after its last
    input beat was taken, and its beats then leave one per cycle while ``o_stream`` is ready;
    the input waits only while both buffers hold pixels not yet sent. With the input always
    valid and the output always ready, the unit takes an input beat every cycle and output
    beat k leaves exactly B cycles after input beat k was taken, across pixels and frames back
    to back. ``i_stream.ready``, ``o_stream.valid`` and ``o_stream.payload`` depend on
    registered state only.

    Parameters
    ----------
    t : TensorType
        The tensor type of both streams; its last dimension C holds the channels.
    groups : int
        Channel groups; divides C.
    lanes : int
        Elements per beat; divides C.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(element, lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(element, lanes)))
    """

    def __init__(self, t: TensorType, *, groups: int, lanes: int):
        check_positive("lanes", lanes)
        check_positive("groups", groups)
        channels = t.shape[-1]
        if channels % groups:
            raise ValueError(f"groups {groups} does not divide the {channels} channels")
        if channels % lanes:
            raise ValueError(f"lanes {lanes} does not divide the {channels} channels")
        self.t, self.groups, self.lanes = t, groups, lanes
        signature = lanes_signature(t, lanes)
        super().__init__({"i_stream": In(signature), "o_stream": Out(signature)})

    @property
    def inputs(self) -> list:
        return [self.i_stream]

    @property
    def outputs(self) -> list:
        return [self.o_stream]

    def elaborate(self, platform):
        m = Module()
        channels, groups, lanes = self.t.shape[-1], self.groups, self.lanes
        beats = channels // lanes
        shape = element_shape(self.t)
        bufs = [[Signal(shape, name=f"buf{s}_{c}") for c in range(channels)] for s in range(2)]
        full = Signal(2)  # buffer s holds a whole pixel not yet sent
        w_sel, w_beat = Signal(), Signal(range(beats))
        r_sel, r_beat = Signal(), Signal(range(beats))
        i, o = self.i_stream, self.o_stream

        m.d.comb += i.ready.eq(~full.bit_select(w_sel, 1))
        with m.If(i.valid & i.ready):
            with m.Switch(Cat(w_beat, w_sel)):
                for s in range(2):
                    for b in range(beats):
                        with m.Case(b | s << len(w_beat)):
                            m.d.sync += [bufs[s][b * lanes + lane].eq(i.payload[lane])
                                         for lane in range(lanes)]
            with m.If(w_beat == beats - 1):
                m.d.sync += [w_beat.eq(0), w_sel.eq(~w_sel), full.bit_select(w_sel, 1).eq(1)]
            with m.Else():
                m.d.sync += w_beat.eq(w_beat + 1)

        m.d.comb += o.valid.eq(full.bit_select(r_sel, 1))
        for lane in range(lanes):
            sources = [shuffle_source(channels, groups, b * lanes + lane) for b in range(beats)]
            picks = [Array(bufs[s][c] for c in sources)[r_beat] for s in range(2)]
            m.d.comb += o.payload[lane].eq(Mux(r_sel, picks[1], picks[0]))
        with m.If(o.valid & o.ready):
            with m.If(r_beat == beats - 1):
                m.d.sync += [r_beat.eq(0), r_sel.eq(~r_sel), full.bit_select(r_sel, 1).eq(0)]
            with m.Else():
                m.d.sync += r_beat.eq(r_beat + 1)
        return m


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return ChannelShuffleUnit(lp.in_type, groups=layer.groups, lanes=lp.in_lanes)
