"""Stream payload layouts, the lane-count (width) converter between stages, forks, FIFOs
and the two-register output of a pipeline that stalls as a whole."""

from __future__ import annotations

import numbers

from amaranth import Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..numeric import TensorType
from ..plan import converter_capacity

__all__ = ["element_shape", "lanes_layout", "lanes_signature", "check_positive", "check_image",
           "check_signature", "WidthConverter", "Passthrough", "Fork", "StreamFifo",
           "output_buffer"]


def check_positive(name: str, value) -> None:
    """Raises ``ValueError`` unless ``value`` is a positive integer (a ``bool`` is not)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def check_image(name: str, t: TensorType) -> None:
    """Raises ``ValueError`` unless ``t`` is an (H, W, C) tensor type."""
    if len(t.shape) != 3:
        raise ValueError(f"{name} must be an (H, W, C) image, not shape {t.shape}")


def check_signature(name: str, value) -> None:
    """Raises ``TypeError`` unless ``value`` is an ``amaranth.lib.stream.Signature``."""
    if not isinstance(value, stream.Signature):
        raise TypeError(f"{name} must be a stream.Signature, not {value!r}")


def element_shape(t: TensorType) -> Shape:
    """The Amaranth shape of one stored element of ``t`` (binary: 1 bit, bit 1 meaning +1)."""
    if t.binary:
        return unsigned(1)
    return signed(t.bits) if t.signed else unsigned(t.bits)


def lanes_layout(t: TensorType, lanes: int) -> data.ArrayLayout:
    """``lanes`` elements of ``t`` per beat; element [0] in the lowest bits."""
    return data.ArrayLayout(element_shape(t), lanes)


def lanes_signature(t: TensorType, lanes: int) -> stream.Signature:
    return stream.Signature(lanes_layout(t, lanes))


class WidthConverter(wiring.Component):
    """Regroups a stream of ``in_lanes`` elements per beat into ``out_lanes`` per beat.

    Elements keep their order. Sustains one input beat per cycle when ``in_lanes <
    out_lanes`` and one output beat per cycle otherwise; the total element count need not be a
    multiple of either lane count. ``i_stream.ready`` depends on registered state only.

    Parameters
    ----------
    shape : Shape
        Shape of one element.
    in_lanes, out_lanes : int
        Elements per input and per output beat.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, in_lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(shape, out_lanes)))
    """

    def __init__(self, shape, *, in_lanes: int, out_lanes: int):
        check_positive("in_lanes", in_lanes)
        check_positive("out_lanes", out_lanes)
        self.shape = Shape.cast(shape)
        self.in_lanes, self.out_lanes = in_lanes, out_lanes
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(shape, in_lanes))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(shape, out_lanes))),
        })

    @property
    def capacity(self) -> int:
        """Elements held; enough that neither side waits on the other at its full rate
        (:func:`hwgen.plan.converter_capacity`, which the FIFO depths count on)."""
        return converter_capacity(self.in_lanes, self.out_lanes)

    def elaborate(self, platform):
        m = Module()
        a, b, width = self.in_lanes, self.out_lanes, self.shape.width
        cap = self.capacity
        buf = Signal(cap * width)
        count = Signal(range(cap + 1))
        i_fire = self.i_stream.valid & self.i_stream.ready
        o_fire = self.o_stream.valid & self.o_stream.ready

        m.d.comb += [
            self.i_stream.ready.eq(count <= cap - a),
            self.o_stream.valid.eq(count >= b),
            self.o_stream.payload.eq(buf[:b * width]),
        ]
        kept = Signal(range(cap + 1))
        shifted = Signal(cap * width)
        m.d.comb += [
            kept.eq(Mux(o_fire, count - b, count)),
            shifted.eq(Mux(o_fire, buf >> (b * width), buf)),
        ]
        with m.If(i_fire):
            m.d.sync += count.eq(kept + a)
            # The input beat lands right above the elements kept: one case per fill level.
            with m.Switch(kept):
                for level in range(cap - a + 1):
                    with m.Case(level):
                        lo, hi = level * width, (level + a) * width
                        m.d.sync += buf.eq(shifted)
                        m.d.sync += buf[lo:hi].eq(self.i_stream.payload.as_value())
        with m.Else():
            m.d.sync += [buf.eq(shifted), count.eq(kept)]
        return m


class Passthrough(wiring.Component):
    """A stage that only renames a stream (a flatten: same beats, new tensor shape).

    Combinational: every beat, ``valid`` and ``ready`` pass straight through, no latency.

    Parameters
    ----------
    signature : stream.Signature
        The signature of both streams.

    Members
    -------
    i_stream : In(signature)
    o_stream : Out(signature)
    """

    def __init__(self, signature: stream.Signature):
        check_signature("signature", signature)
        super().__init__({"i_stream": In(signature), "o_stream": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        wiring.connect(m, wiring.flipped(self.i_stream), wiring.flipped(self.o_stream))
        return m


class Fork(wiring.Component):
    """Copies every beat of one stream to ``count`` streams.

    Eager: each output takes the beat as soon as it is ready, and the input beat is consumed
    once every output has taken it (the cycle the last one does, no added latency). An
    output's ``valid`` depends on the input's ``valid`` and registered state only; the input's
    ``ready`` depends on the outputs' ``ready``.

    Parameters
    ----------
    signature : stream.Signature
        The signature of the input and of every output.
    count : int
        Number of outputs.

    Members
    -------
    i_stream : In(signature)
    o0_stream, o1_stream, … : Out(signature)
        ``count`` outputs, also listed in order by :attr:`outputs`.
    """

    def __init__(self, signature: stream.Signature, count: int):
        check_signature("signature", signature)
        check_positive("count", count)
        self.count = count
        members = {"i_stream": In(signature)}
        members.update({f"o{k}_stream": Out(signature) for k in range(count)})
        super().__init__(members)

    @property
    def outputs(self) -> list:
        return [getattr(self, f"o{k}_stream") for k in range(self.count)]

    def elaborate(self, platform):
        m = Module()
        taken = Signal(self.count)
        done = []
        for k, out in enumerate(self.outputs):
            m.d.comb += [out.valid.eq(self.i_stream.valid & ~taken[k]),
                         out.payload.eq(self.i_stream.payload)]
            done.append(taken[k] | out.ready)
        all_done = Signal()
        m.d.comb += [all_done.eq(Cat(*done).all()),
                     self.i_stream.ready.eq(all_done)]
        with m.If(self.i_stream.valid):
            with m.If(all_done):
                m.d.sync += taken.eq(0)
            with m.Else():
                for k, out in enumerate(self.outputs):
                    with m.If(out.ready):
                        m.d.sync += taken[k].eq(1)
        return m


class StreamFifo(wiring.Component):
    """A first-in first-out buffer of ``depth`` beats between two streams (block RAM when
    large).

    A beat written into an empty buffer is offered on ``o_stream`` two cycles later; ``depth``
    beats are held while ``o_stream`` waits. ``i_stream.ready`` and ``o_stream.valid`` come
    from registered state only (an :class:`amaranth.lib.fifo.SyncFIFOBuffered`).

    Parameters
    ----------
    signature : stream.Signature
        The signature of both streams; the payload is stored as its bits.
    depth : int
        Beats held.

    Members
    -------
    i_stream : In(signature)
    o_stream : Out(signature)
    """

    def __init__(self, signature: stream.Signature, depth: int):
        check_signature("signature", signature)
        check_positive("depth", depth)
        self.depth = depth
        super().__init__({"i_stream": In(signature), "o_stream": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        width = len(Value.cast(self.i_stream.payload))
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=width, depth=self.depth)
        wiring.connect(m, wiring.flipped(self.i_stream), buf.w_stream)
        wiring.connect(m, buf.r_stream, wiring.flipped(self.o_stream))
        return m


def output_buffer(m: Module, o_stream, data, valid, advance) -> None:
    """A pipeline's two-register output: ``data`` leaves the pipeline's last stage when that
    stage is ``valid`` and the pipeline advances, into a head register (``o_stream``) or,
    while the head waits for ``o_stream.ready``, a second register. ``advance`` (driven here)
    drops only while that second register is full and another beat waits; it reads registers
    only, so ``o_stream.ready`` reaches no further than these two registers, and a consumer
    that is always ready never stalls the pipeline."""
    head, spare = Signal(len(data), name="out_head"), Signal(len(data), name="out_spare")
    head_valid, spare_valid = Signal(name="out_head_valid"), Signal(name="out_spare_valid")
    push = valid & ~spare_valid
    m.d.comb += [
        advance.eq(~(valid & spare_valid)),
        o_stream.valid.eq(head_valid),
        o_stream.payload.eq(head),
    ]
    with m.If(~head_valid | o_stream.ready):
        m.d.sync += [head.eq(Mux(spare_valid, spare, data)),
                     head_valid.eq(spare_valid | push),
                     spare_valid.eq(0)]
    with m.Elif(push):
        m.d.sync += [spare.eq(data), spare_valid.eq(1)]
