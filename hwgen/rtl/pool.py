"""The per-channel reduction the pooling kinds share: a running maximum over each window
(:mod:`hwgen.rtl.layers.maxpool`) or a running sum over the whole image
(:mod:`hwgen.rtl.layers.global_sum_pool`)."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .stream import check_positive

__all__ = ["ChannelReduce"]


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
