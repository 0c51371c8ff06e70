"""The sliding-window generator: line buffers in block RAM turning an image stream into windows."""

from __future__ import annotations

import numbers

from amaranth import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..plan import WindowGeometry

__all__ = ["SlidingWindow"]


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
    it replaces is no longer read. One input beat and one output beat per cycle at most;
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

        m.submodules.lines = lines = Memory(shape=unsigned(g.lanes * ebits), depth=words,
                                            init=[])
        wr = lines.write_port()
        rd = lines.read_port()

        # Row bookkeeping on free-running row counters (wide enough that differences between
        # them are exact as signed numbers): rows written, first row of the reader's frame.
        count_bits = (2 * (g.height + ring)).bit_length() + 1
        written = Signal(count_bits)
        frame_base = Signal(count_bits)
        row_top = Signal(signed((max(g.height, top) + s).bit_length() + 1), init=-top)
        first_held = Signal(count_bits)
        m.d.comb += first_held.eq(frame_base + Mux(row_top < 0, 0, row_top))
        ahead = Signal(signed(count_bits))
        m.d.comb += ahead.eq(written - first_held)

        # Writer: the ring is one address range, rows back to back.
        w_addr = Signal(range(words))
        w_col = Signal(range(row_words))
        i_fire = self.i_stream.valid & self.i_stream.ready
        m.d.comb += [
            self.i_stream.ready.eq(ahead < ring),
            wr.addr.eq(w_addr),
            wr.data.eq(self.i_stream.payload.as_value()),
            wr.en.eq(i_fire),
        ]
        with m.If(i_fire):
            m.d.sync += w_addr.eq(Mux(w_addr == words - 1, 0, w_addr + 1))
            with m.If(w_col == row_words - 1):
                m.d.sync += [w_col.eq(0), written.eq(written + 1)]
            with m.Else():
                m.d.sync += w_col.eq(w_col + 1)

        # Reader counters: window position (row_top, col_left) and offsets (ky, kx, chunk).
        col_left = Signal(signed((max(g.width, left) + s).bit_length() + 1), init=-left)
        ky = Signal(range(k))
        kx = Signal(range(k))
        chunk = Signal(range(g.chunks))
        base_addr = Signal(range(words))                     # row 0 of the reader's frame
        top_addr = Signal(range(words), init=(-top * row_words) % words)  # row ``row_top``
        ky_addr = Signal(range(words), init=(-top * row_words) % words)   # row row_top + ky
        left_addr = Signal(signed(col_left.shape().width + g.chunks.bit_length() + 1),
                           init=-left * g.chunks)            # col_left·chunks
        col_addr = Signal.like(left_addr, init=-left * g.chunks)  # (col_left + kx)·chunks + chunk

        need = Signal(count_bits)
        m.d.comb += need.eq(Mux(row_top + k > g.height, g.height, row_top + k))
        rows_in = Signal(signed(count_bits))
        m.d.comb += rows_in.eq(written - frame_base)

        out_valid, out_pad = Signal(), Signal()
        advance = Signal()
        m.d.comb += advance.eq((rows_in >= need) & (~out_valid | self.o_stream.ready))

        # Only a padded side can put a window position outside the image (the geometry's
        # output size keeps every window inside the padded image), so only those are tested.
        iy, ix = row_top + ky, col_left + kx
        outside = [test for amount, test in zip(g.pads, (iy < 0, ix < 0, iy >= g.height,
                                                          ix >= g.width), strict=True) if amount]
        pad = Cat(*outside).any() if outside else Const(0, 1)
        m.d.comb += [rd.addr.eq(ky_addr + col_addr[:len(rd.addr)]), rd.en.eq(advance)]
        pad_word = 0
        for lane in range(g.lanes):
            pad_word |= (self.pad_code & ((1 << ebits) - 1)) << (lane * ebits)
        m.d.comb += [
            self.o_stream.valid.eq(out_valid),
            self.o_stream.payload.eq(Mux(out_pad, pad_word, rd.data) if outside else rd.data),
        ]
        with m.If(advance):
            m.d.sync += [out_valid.eq(1), out_pad.eq(pad)]
        with m.Elif(self.o_stream.ready):
            m.d.sync += out_valid.eq(0)

        last_chunk = chunk == g.chunks - 1
        last_kx, last_ky = kx == k - 1, ky == k - 1
        last_col = col_left == (g.out_width - 1) * s - left
        last_row = row_top == (g.out_height - 1) * s - top
        next_top = _wrap_add(top_addr, s * row_words, words)
        next_base = _wrap_add(base_addr, g.height * row_words, words)
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
                            m.d.sync += [row_top.eq(row_top + s), top_addr.eq(next_top),
                                         ky_addr.eq(next_top)]
                        with m.Else():
                            first_top = _wrap_add(next_base, -top * row_words, words)
                            m.d.sync += [row_top.eq(-top), frame_base.eq(frame_base + g.height),
                                         base_addr.eq(next_base), top_addr.eq(first_top),
                                         ky_addr.eq(first_top)]
        return m
