"""The maxpool layer's component: a sliding-window generator into a per-channel running
maximum."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...layers import Layer, LayerPlan
from ...layers.window import WindowGeometry
from ...numeric import TensorType
from ..pool import ChannelReduce
from ..stream import check_image, check_positive, element_shape, lanes_signature
from ..window import SlidingWindow

__all__ = ["MaxPoolUnit", "component"]


class MaxPoolUnit(wiring.Component):
    """One maxpool layer: a :class:`SlidingWindow` into a :class:`ChannelReduce`.

    Input and output are channels-last images, ``lanes`` elements per beat, element [0] in the
    lowest bits. On binary tensors (bit 1 meaning +1) the maximum is an OR. An output pixel is
    ``C / lanes`` beats, each leaving one cycle after the window's last beat of its channels;
    the window generator sets the rate (one window beat per cycle), and ``i_stream.ready``
    depends on registered state only.

    Parameters
    ----------
    in_type : TensorType
        The (H, W, C) input image type, also the output's element type.
    size, stride : int
        The size×size window and its step.
    lanes : int
        Elements per beat, in and out; divides C.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(element, lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(element, lanes)))
    """

    def __init__(self, in_type: TensorType, *, size: int, stride: int, lanes: int):
        check_positive("lanes", lanes)
        check_positive("size", size)
        check_positive("stride", stride)
        check_image("in_type", in_type)
        h, w, c = in_type.shape
        if size > h or size > w:
            raise ValueError(f"window {size}×{size} is larger than the image {h}×{w}")
        self.geometry = WindowGeometry(h, w, c, lanes, size, stride)
        self.in_type, self.lanes = in_type, lanes
        super().__init__({
            "i_stream": In(lanes_signature(in_type, lanes)),
            "o_stream": Out(lanes_signature(in_type, lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        g, shape = self.geometry, element_shape(self.in_type)
        m.submodules.window = window = SlidingWindow(shape, g)
        m.submodules.reduce = reduce = ChannelReduce(shape, lanes=g.lanes,
                                                     positions=g.kernel ** 2, chunks=g.chunks)
        wiring.connect(m, wiring.flipped(self.i_stream), window.i_stream)
        wiring.connect(m, window.o_stream, reduce.i_stream)
        wiring.connect(m, reduce.o_stream, wiring.flipped(self.o_stream))
        return m


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return MaxPoolUnit(lp.in_type, size=layer.size, stride=layer.step, lanes=lp.in_lanes)
