"""The sliding-window generator (line buffers in block RAM turning an image stream into
windows) and :class:`WindowedUnit`, a window generator feeding a compute unit."""

from __future__ import annotations

import numbers

from amaranth import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..layers.window import WindowGeometry
from ..numeric import TensorType, encode
from .memory import COLLISION_FREE
from .stream import check_image, check_positive, element_shape, lanes_signature
from .weights import LOAD_PORTS

__all__ = ["SlidingWindow", "WindowedUnit"]


def _wrap_add(value, constant: int, modulus: int):
    """``(value + constant) mod modulus`` for ``0 ≤ value < modulus`` and any ``constant``."""
    c = constant % modulus
    if c == 0:
        return value
    total = value + c
    return Mux(total >= modulus, total - modulus, total)


class SlidingWindow(wiring.Component):
    """Streams every window of each input image, padding included.

    Input: an image of ``height``×``width``×``channels`` elements in channels-last order,
    ``lanes`` elements per beat. Output, per output pixel in row-major order: its window's
    ``kernel``·``kernel``·``channels / lanes`` beats in (ky, kx, chunk) order; positions
    outside the image carry ``pad_code`` in every lane. Frames follow each other with no gap.

    Rows are kept in a ring of :attr:`WindowGeometry.rows` rows in one memory. An output row
    starts once every image row it reads has been written; a new row is written once the row
    it replaces is no longer read. A beat read from the rows leaves through an output
    register (one cycle). One input beat and one output beat per cycle at most;
    ``i_stream.ready`` and ``o_stream.valid`` depend on registered state only.

    Parameters
    ----------
    shape : ShapeLike
        Shape of one element.
    geometry : WindowGeometry
        Image size, channels, lanes, kernel, stride and padding.
    pad_code : int
        The bit pattern (0 .. 2**width − 1) of a padding element.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, geometry.lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(shape, geometry.lanes)))
    """

    def __init__(self, shape, geometry: WindowGeometry, *, pad_code: int = 0):
        if not isinstance(geometry, WindowGeometry):
            raise TypeError(f"geometry must be a WindowGeometry, not {geometry!r}")
        width = Shape.cast(shape).width
        if not isinstance(pad_code, numbers.Integral) or not 0 <= pad_code < 1 << width:
            raise ValueError(f"pad_code must be a {width}-bit pattern (0 to {(1 << width) - 1}), "
                             f"not {pad_code!r}")
        self.shape, self.geometry, self.pad_code = Shape.cast(shape), geometry, pad_code
        layout = data.ArrayLayout(shape, geometry.lanes)
        super().__init__({
            "i_stream": In(stream.Signature(layout)),
            "o_stream": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        k, s = g.kernel, g.stride
        top, left, _, _ = g.pads
        row_words = g.width * g.chunks
        ring = g.rows
        words = ring * row_words
        ebits = self.shape.width

        # Collision-free: a row is read only once written, and written only once no longer
        # read, and the ring never holds the row written and a row read in one slot (padded
        # positions read nothing).
        m.submodules.lines = lines = Memory(shape=unsigned(g.lanes * ebits), depth=words,
                                            init=[], attrs=COLLISION_FREE)
        wr = lines.write_port()
        rd = lines.read_port()

        # Row bookkeeping in registers kept exact as the counters move (no subtraction or
        # clamp between a counter and the stall decisions): ``rows_in`` image rows of the
        # reader's frame written (may run ahead into the next frame), ``need`` the rows the
        # current output row reads (min(row_top + k, height)), ``limit`` the rows the ring
        # can hold counted from the frame's first row (ring + max(row_top, 0)).
        count_bits = (2 * (g.height + ring)).bit_length() + 1
        row_top = Signal(signed((max(g.height, top) + s).bit_length() + 1), init=-top)
        rows_in = Signal(signed(count_bits))
        need = Signal(range(g.height + 1), init=min(k - top, g.height))
        limit = Signal(range(g.height + ring + 1), init=ring)

        # Writer: the ring is one address range, rows back to back.
        w_addr = Signal(range(words))
        w_col = Signal(range(row_words))
        i_fire = self.i_stream.valid & self.i_stream.ready
        wrote_row = Signal()
        m.d.comb += [
            self.i_stream.ready.eq(rows_in < limit),
            wr.addr.eq(w_addr),
            wr.data.eq(self.i_stream.payload.as_value()),
            wr.en.eq(i_fire),
            wrote_row.eq(i_fire & (w_col == row_words - 1)),
        ]
        with m.If(i_fire):
            m.d.sync += [w_addr.eq(Mux(w_addr == words - 1, 0, w_addr + 1)),
                         w_col.eq(Mux(w_col == row_words - 1, 0, w_col + 1))]

        # Reader counters: window position (row_top, col_left) and offsets (ky, kx, chunk).
        col_left = Signal(signed((max(g.width, left) + s).bit_length() + 1), init=-left)
        ky = Signal(range(k))
        kx = Signal(range(k))
        chunk = Signal(range(g.chunks))
        # row ``-top`` of the reader's next frame (its row 0 is ``height`` rows after this
        # frame's): moved on by one addition from itself at each frame's end, never from the
        # other addresses, so a frame's end is no chain of additions
        frame_top = Signal(range(words), init=((g.height - top) * row_words) % words)
        top_addr = Signal(range(words), init=(-top * row_words) % words)  # row ``row_top``
        ky_addr = Signal(range(words), init=(-top * row_words) % words)   # row row_top + ky
        left_addr = Signal(signed(col_left.shape().width + g.chunks.bit_length() + 1),
                           init=-left * g.chunks)            # col_left·chunks
        col_addr = Signal.like(left_addr, init=-left * g.chunks)  # (col_left + kx)·chunks + chunk

        # The beat read from the line buffer (``out_valid``, ``out_pad`` and the memory's
        # read data) moves into an output register whenever that register is free or taken,
        # so no read data reaches the next layer's logic in the cycle it leaves the memory;
        # the read data go in as they come (a padded beat is replaced after the register).
        out_valid, out_pad = Signal(), Signal()
        reg_valid, reg_data = Signal(), Signal(g.lanes * ebits, reset_less=True)
        reg_free = ~reg_valid | self.o_stream.ready
        advance = Signal()
        m.d.comb += advance.eq((rows_in >= need) & (~out_valid | reg_free))

        # Only a padded side can put a window position outside the image (the geometry's
        # output size keeps every window inside the padded image), so only those are tested.
        iy, ix = row_top + ky, col_left + kx
        outside = [test for amount, test in zip(g.pads, (iy < 0, ix < 0, iy >= g.height,
                                                          ix >= g.width), strict=True) if amount]
        pad = Cat(*outside).any() if outside else Const(0, 1)
        # A padded position reads nothing (its address may be a row being written).
        m.d.comb += [rd.addr.eq(ky_addr + col_addr[:len(rd.addr)]), rd.en.eq(advance & ~pad)]
        pad_word = 0
        for lane in range(g.lanes):
            pad_word |= (self.pad_code & ((1 << ebits) - 1)) << (lane * ebits)
        reg_pad = Signal()
        with m.If(reg_free):
            m.d.sync += [reg_valid.eq(out_valid), reg_data.eq(rd.data), reg_pad.eq(out_pad)]
        m.d.comb += [self.o_stream.valid.eq(reg_valid),
                     self.o_stream.payload.eq(Mux(reg_pad, pad_word, reg_data) if outside
                                              else reg_data)]
        with m.If(advance):
            m.d.sync += [out_valid.eq(1), out_pad.eq(pad)]
        with m.Elif(reg_free):
            m.d.sync += out_valid.eq(0)

        last_chunk = chunk == g.chunks - 1
        last_kx, last_ky = kx == k - 1, ky == k - 1
        last_col = col_left == (g.out_width - 1) * s - left
        last_row = row_top == (g.out_height - 1) * s - top
        next_top = _wrap_add(top_addr, s * row_words, words)
        with m.If(advance):
            m.d.sync += [chunk.eq(Mux(last_chunk, 0, chunk + 1)), col_addr.eq(col_addr + 1)]
            with m.If(last_chunk):
                m.d.sync += kx.eq(Mux(last_kx, 0, kx + 1))
                with m.If(last_kx):
                    m.d.sync += ky.eq(Mux(last_ky, 0, ky + 1))
                    with m.If(~last_ky):
                        m.d.sync += [ky_addr.eq(_wrap_add(ky_addr, row_words, words)),
                                     col_addr.eq(left_addr)]
                    with m.Elif(~last_col):
                        m.d.sync += [col_left.eq(col_left + s),
                                     left_addr.eq(left_addr + s * g.chunks),
                                     col_addr.eq(left_addr + s * g.chunks),
                                     ky_addr.eq(top_addr)]
                    with m.Else():
                        m.d.sync += [col_left.eq(-left), left_addr.eq(-left * g.chunks),
                                     col_addr.eq(-left * g.chunks)]
                        with m.If(~last_row):
                            next_row = row_top + s
                            m.d.sync += [row_top.eq(next_row), top_addr.eq(next_top),
                                         ky_addr.eq(next_top),
                                         need.eq(Mux(next_row + k > g.height, g.height,
                                                     next_row + k)),
                                         limit.eq(ring + Mux(next_row < 0, 0, next_row))]
                        with m.Else():
                            m.d.sync += [row_top.eq(-top), top_addr.eq(frame_top),
                                         ky_addr.eq(frame_top),
                                         frame_top.eq(_wrap_add(frame_top,
                                                                g.height * row_words, words)),
                                         need.eq(min(k - top, g.height)), limit.eq(ring)]
        frame_done = advance & last_chunk & last_kx & last_ky & last_col & last_row
        m.d.sync += rows_in.eq(rows_in + wrote_row - Mux(frame_done, g.height, 0))
        return m


class WindowedUnit(wiring.Component):
    """A sliding-window generator feeding ``unit``: the shape every convolution-like layer
    shares.

    Every window of each (H, W, C) input image, padding included, goes from a
    :class:`~hwgen.rtl.window.SlidingWindow` into ``unit`` (a folded compute unit) one beat per
    cycle at most, and the unit's output is this component's. Timing and backpressure are the
    window generator's at the input and the unit's at the output; ``i_stream.ready`` depends
    on registered state only. A pointwise window (1×1, stride 1, no padding) has no
    generator: the input stream is the unit's. Subclasses name the unit's submodule
    (``unit_name``).

    Parameters
    ----------
    in_type, out_type : TensorType
        The layer's (H, W, C) input and (H', W', C') output tensor types.
    unit : wiring.Component
        The compute unit, with ``i_stream`` taking ``lanes``-element window beats,
        ``o_stream`` and, when its ``spram`` is true, the load ports.
    kernel, stride : int
        The k×k window and its step.
    pads : tuple of int
        Rows and columns of padding (top, left, bottom, right).
    pad_value : int
        The value of padded positions (of ``in_type``: ±1 for binary).
    lanes, out_lanes : int
        Elements per input beat (the window's beats too; divides C) and per output beat.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in element, lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(out element, out_lanes)))
    load_valid, load_first, load_data : In
        Only when ``unit.spram``; passed to the unit.
    """

    unit_name = "unit"

    def __init__(self, in_type: TensorType, out_type: TensorType, unit: wiring.Component, *,
                 kernel: int, stride: int, pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                 pad_value: int = 0, lanes: int, out_lanes: int):
        check_positive("lanes", lanes)
        check_positive("out_lanes", out_lanes)
        check_image("in_type", in_type)
        check_image("out_type", out_type)
        if not isinstance(unit, wiring.Component):
            raise TypeError(f"unit must be a wiring.Component, not {unit!r}")
        h, w, c = in_type.shape
        self.geometry = WindowGeometry(h, w, c, lanes, kernel, stride, tuple(pads))
        self.pad_code = int(encode(pad_value, in_type.bits, in_type.signed))
        self.in_type = in_type
        self.unit = unit
        self.spram = unit.spram
        members = {
            "i_stream": In(lanes_signature(in_type, lanes)),
            "o_stream": Out(lanes_signature(out_type, out_lanes)),
        }
        if self.spram:
            members.update(LOAD_PORTS)
        super().__init__(members)

    @property
    def spram_halfwords(self) -> int:
        return self.unit.spram_halfwords

    def elaborate(self, platform):
        m = Module()
        m.submodules[self.unit_name] = self.unit
        if self.geometry.pointwise:  # every input beat is a window beat: no generator
            wiring.connect(m, wiring.flipped(self.i_stream), self.unit.i_stream)
        else:
            m.submodules.window = window = SlidingWindow(element_shape(self.in_type),
                                                         self.geometry, pad_code=self.pad_code)
            wiring.connect(m, wiring.flipped(self.i_stream), window.i_stream)
            wiring.connect(m, window.o_stream, self.unit.i_stream)
        wiring.connect(m, self.unit.o_stream, wiring.flipped(self.o_stream))
        if self.spram:
            for port in LOAD_PORTS:
                m.d.comb += getattr(self.unit, port).eq(getattr(self, port))
        return m
