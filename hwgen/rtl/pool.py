"""Pooling: maxpool (a sliding-window generator into a per-channel running maximum) and
global sum pooling (a per-channel running sum over the whole image)."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..numeric import TensorType
from ..plan import window_geometry
from ..spec import MaxPool
from .stream import check_image, check_positive, element_shape, lanes_signature
from .window import SlidingWindow

__all__ = ["ChannelReduce", "MaxPoolUnit", "global_sum_unit"]


class ChannelReduce(wiring.Component):
    """Per-lane maximum or sum over each group of ``positions`` positions.

    The input is a stream in (position, chunk) order: ``positions`` positions, each ``chunks``
    beats of ``lanes`` elements. One output beat per chunk leaves one cycle after the last
    position's beat of that chunk. With ``op = "sum"`` the elements are read as values (a
    1-bit ``in_shape`` means binary: bit 1 is +1, bit 0 is −1) and summed into ``out_shape``;
    with ``op = "max"`` the output shape is the input's. Accepts one beat per cycle unless its
    2-entry output FIFO is full; ``i_stream.ready`` depends on registered state only.

    Parameters
    ----------
    in_shape : ShapeLike
        Shape of one input element.
    lanes, positions, chunks : int
        Elements per beat, positions per group and beats per position.
    op : str
        ``"max"`` or ``"sum"``.
    out_shape : ShapeLike
        Shape of one output element: required with ``op = "sum"``, ignored with ``"max"``.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in_shape, lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(out_shape, lanes)))
    """

    def __init__(self, in_shape, *, lanes: int, positions: int, chunks: int, op: str = "max",
                 out_shape=None):
        if op not in ("max", "sum"):
            raise ValueError(f"op must be 'max' or 'sum', not {op!r}")
        for name, value in (("lanes", lanes), ("positions", positions), ("chunks", chunks)):
            check_positive(name, value)
        if op == "sum" and out_shape is None:
            raise ValueError("out_shape is required with op='sum'")
        self.in_shape, self.op = Shape.cast(in_shape), op
        self.out_shape = self.in_shape if op == "max" else Shape.cast(out_shape)
        self.lanes, self.positions, self.chunks = lanes, positions, chunks
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(self.in_shape, lanes))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(self.out_shape, lanes))),
        })

    def _value(self, element):
        if self.op == "max":
            return element
        if self.in_shape.width == 1 and not self.in_shape.signed:
            return Mux(element, 1, -1)  # binary ±1
        return element

    def elaborate(self, platform):
        m = Module()
        layout = data.ArrayLayout(self.out_shape, self.lanes)
        m.submodules.fifo = out = fifo.SyncFIFO(width=layout.size, depth=2)
        # The chunks' partial results in a ring: the chunk of the current beat is always at
        # the head, and its merged value goes to the tail (no per-chunk decoding or muxing).
        ring = Signal(self.chunks * layout.size)
        head = layout(ring[:layout.size])
        position = Signal(range(self.positions))
        chunk = Signal(range(self.chunks))
        fire = self.i_stream.valid & self.i_stream.ready
        merged = Signal(layout)
        first = position == 0
        for lane in range(self.lanes):
            x, b = self._value(self.i_stream.payload[lane]), head[lane]
            if self.op == "max":
                m.d.comb += merged[lane].eq(Mux(first | (x > b), x, b))
            else:
                m.d.comb += merged[lane].eq(Mux(first, 0, b) + x)
        with m.If(fire):
            m.d.sync += ring.eq(Cat(ring[layout.size:], merged.as_value()))
        last = position == self.positions - 1
        w = out.w_stream
        m.d.comb += [
            self.i_stream.ready.eq(w.ready),
            w.valid.eq(fire & last),
            w.payload.eq(merged.as_value()),
        ]
        wiring.connect(m, out.r_stream, wiring.flipped(self.o_stream))
        with m.If(fire):
            with m.If(chunk == self.chunks - 1):
                m.d.sync += [chunk.eq(0), position.eq(Mux(last, 0, position + 1))]
            with m.Else():
                m.d.sync += chunk.eq(chunk + 1)
        return m


class MaxPoolUnit(wiring.Component):
    """One maxpool layer: a :class:`SlidingWindow` into a :class:`ChannelReduce`.

    Input and output are channels-last images, ``lanes`` elements per beat, element [0] in the
    lowest bits. On binary tensors (bit 1 meaning +1) the maximum is an OR. An output pixel is
    ``C / lanes`` beats, each leaving one cycle after the window's last beat of its channels;
    the window generator sets the rate (one window beat per cycle), and ``i_stream.ready``
    depends on registered state only.

    Parameters
    ----------
    layer : MaxPool
        Window size and stride.
    in_type : TensorType
        The (H, W, C) input image type, also the output's element type.
    lanes : int
        Elements per beat, in and out; divides C.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(element, lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(element, lanes)))
    """

    def __init__(self, layer: MaxPool, in_type: TensorType, *, lanes: int):
        check_positive("lanes", lanes)
        check_image("in_type", in_type)
        self.geometry = window_geometry(layer, in_type, lanes)
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


def global_sum_unit(in_type: TensorType, out_type: TensorType, *, lanes: int) -> ChannelReduce:
    """The global_sum_pool layer: one :class:`ChannelReduce` sum over all H·W positions."""
    check_image("in_type", in_type)
    check_positive("lanes", lanes)
    h, w, c = in_type.shape
    if c % lanes:
        raise ValueError(f"lanes {lanes} does not divide the {c} channels")
    return ChannelReduce(element_shape(in_type), lanes=lanes, positions=h * w,
                         chunks=c // lanes, op="sum", out_shape=element_shape(out_type))
