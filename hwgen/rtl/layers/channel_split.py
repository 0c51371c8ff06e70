"""The channel split layer: each pixel's channels cut into two halves, one stream each."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, Value
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ...layers import Layer, LayerPlan
from ...numeric import TensorType
from ..stream import check_positive, lanes_signature

__all__ = ["ChannelSplitUnit", "component"]


class ChannelSplitUnit(wiring.Component):
    """Sends channels [0, C/2) of every pixel to ``o0_stream`` and [C/2, C) to ``o1_stream``.

    Beats are channels-last, ``lanes`` elements each, element [0] in the lowest bits and
    holding the lowest channel of its beat; a pixel's first C/(2·lanes) input beats go to
    ``o0_stream`` and its last C/(2·lanes) to ``o1_stream``, unchanged. Pixels and frames
    follow each other with no dead cycles.

    Each output has a 2-entry FIFO. An input beat is taken when its output's FIFO has room and
    is offered on that output the next cycle, so with both outputs ready the unit takes an input
    beat every cycle and every beat leaves one cycle after it was taken. The input is served in
    order: while the beat at its head has no room, the input waits, even if the other output
    could take the beats behind it. ``i_stream.ready`` depends on registered state only (the
    FIFO levels and the beat count), never on an output's ``ready``.

    Parameters
    ----------
    t : TensorType
        The input tensor type; its last dimension C (the channels) is even. Each output has its
        element format and shape, with C/2 channels.
    lanes : int
        Elements per beat, on all three streams; divides C/2.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(element, lanes)))
    o0_stream : Out(stream.Signature(ArrayLayout(element, lanes)))
        Channels [0, C/2) of each pixel.
    o1_stream : Out(stream.Signature(ArrayLayout(element, lanes)))
        Channels [C/2, C) of each pixel.
    """

    def __init__(self, t: TensorType, *, lanes: int):
        check_positive("lanes", lanes)
        channels = t.shape[-1]
        if channels % 2:
            raise ValueError(f"channel_split needs an even channel count, not {channels}")
        if (channels // 2) % lanes:
            raise ValueError(f"lanes {lanes} does not divide half the channels "
                             f"({channels // 2})")
        self.t, self.lanes = t, lanes
        signature = lanes_signature(t, lanes)
        super().__init__({
            "i_stream": In(signature),
            "o0_stream": Out(signature),
            "o1_stream": Out(signature),
        })

    @property
    def inputs(self) -> list:
        return [self.i_stream]

    @property
    def outputs(self) -> list:
        return [self.o0_stream, self.o1_stream]

    def elaborate(self, platform):
        m = Module()
        payload = Value.cast(self.i_stream.payload)
        half = self.t.shape[-1] // 2 // self.lanes  # beats per pixel and output
        beat = Signal(range(2 * half))
        second = Signal()  # the beat at the input's head goes to o1_stream
        m.d.comb += second.eq(beat >= half)
        writes = []
        for k, out in enumerate(self.outputs):
            m.submodules[f"fifo{k}"] = buf = fifo.SyncFIFO(width=len(payload), depth=2)
            wiring.connect(m, buf.r_stream, wiring.flipped(out))
            writes.append(buf.w_stream)
        w0, w1 = writes
        ready = Signal()
        m.d.comb += [
            ready.eq(Mux(second, w1.ready, w0.ready)),
            self.i_stream.ready.eq(ready),
            w0.valid.eq(self.i_stream.valid & ~second),
            w1.valid.eq(self.i_stream.valid & second),
            w0.payload.eq(payload),
            w1.payload.eq(payload),
        ]
        with m.If(self.i_stream.valid & ready):
            m.d.sync += beat.eq(Mux(beat == 2 * half - 1, 0, beat + 1))
        return m


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return ChannelSplitUnit(lp.in_type, lanes=lp.in_lanes)
