"""The add layer's component: two streams summed element by element, with optional
per-channel thresholds."""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ...layers import Layer, LayerPlan
from ...numeric import TensorType
from ..arith import sum_tree
from ..stream import check_positive, lanes_signature

__all__ = ["AddUnit", "component"]


class AddUnit(wiring.Component):
    """Sums two tensors element by element, then optionally counts per-channel thresholds.

    Beat k of ``a_stream`` and beat k of ``b_stream`` are added lane by lane (binary elements
    as ±1); with the layer's thresholds each sum becomes the number of its channel's
    thresholds it reaches (the channel being the tensor's last axis), otherwise the sum is the
    output. Beats are channels-last, ``lanes`` elements each, element [0] in the lowest bits.

    A beat pair is taken when both inputs are valid and the 2-entry output FIFO has room; the
    result leaves one cycle later, so an unstalled unit takes a pair every cycle.
    ``a_stream.ready`` depends on ``b_stream.valid`` and the other way round, never on
    ``o_stream.ready``.

    Parameters
    ----------
    a_type, b_type : TensorType
        The two input tensor types, of one shape.
    out_type : TensorType
        The output tensor type, of the inputs' shape.
    lanes : int
        Elements per beat, on all three streams; divides the channel count.
    thresholds : numpy.ndarray or None
        Per channel (one row each), the 2**n − 1 ascending thresholds of an n-bit output;
        ``None`` (default): the sum is the output.

    Members
    -------
    a_stream : In(stream.Signature(ArrayLayout(a element, lanes)))
    b_stream : In(stream.Signature(ArrayLayout(b element, lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(out element, lanes)))
    """

    def __init__(self, a_type: TensorType, b_type: TensorType, out_type: TensorType, *,
                 lanes: int, thresholds: np.ndarray | None = None):
        check_positive("lanes", lanes)
        for name, t in (("b_type", b_type), ("out_type", out_type)):
            if t.shape != a_type.shape:
                raise ValueError(f"{name} shape {t.shape} differs from a_type shape "
                                 f"{a_type.shape}")
        channels = a_type.shape[-1]
        if channels % lanes:
            raise ValueError(f"lanes {lanes} does not divide the {channels} channels")
        if thresholds is not None and len(thresholds) != channels:
            raise ValueError(f"thresholds have {len(thresholds)} rows, not one per "
                             f"channel ({channels})")
        self.thresholds, self.lanes = thresholds, lanes
        self.a_type, self.b_type, self.out_type = a_type, b_type, out_type
        super().__init__({
            "a_stream": In(lanes_signature(a_type, lanes)),
            "b_stream": In(lanes_signature(b_type, lanes)),
            "o_stream": Out(lanes_signature(out_type, lanes)),
        })

    @property
    def inputs(self) -> list:
        """The input streams in port order: ``[a_stream, b_stream]``."""
        return [self.a_stream, self.b_stream]

    @staticmethod
    def _value(element, t: TensorType):
        return Mux(element, 1, -1) if t.binary else element

    def elaborate(self, platform):
        m = Module()
        lanes, out_t = self.lanes, self.out_type
        out_bits = out_t.bits
        m.submodules.fifo = out = fifo.SyncFIFO(width=lanes * out_bits, depth=2)
        a, b, w = self.a_stream, self.b_stream, out.w_stream
        fire = a.valid & b.valid & w.ready
        m.d.comb += [a.ready.eq(b.valid & w.ready), b.ready.eq(a.valid & w.ready)]
        lo = self.a_type.range[0] + self.b_type.range[0]
        hi = self.a_type.range[1] + self.b_type.range[1]
        channels = out_t.shape[-1]
        chunks = channels // lanes
        chunk = Signal(range(chunks))
        with m.If(fire):
            m.d.sync += chunk.eq(Mux(chunk == chunks - 1, 0, chunk + 1))
        results = []
        for lane in range(lanes):
            total = Signal(range(lo, hi + 1), name=f"sum{lane}")
            m.d.comb += total.eq(self._value(a.payload[lane], self.a_type)
                                 + self._value(b.payload[lane], self.b_type))
            if self.thresholds is None:
                results.append(total)
                continue
            # Thresholds clipped to the reachable range keep the comparisons narrow.
            t = np.clip(self.thresholds, lo, hi + 1)
            hits = []
            for k in range(t.shape[1]):
                table = Array(Const(int(t[c * lanes + lane, k]), range(lo, hi + 2))
                              for c in range(chunks))
                hits.append(total >= table[chunk])
            results.append(hits[0] if len(hits) == 1 else sum_tree(hits))
        packed = []
        for lane, value in enumerate(results):
            sig = Signal(out_bits, name=f"out{lane}")
            m.d.comb += sig.eq(value)
            packed.append(sig)
        m.d.comb += [w.valid.eq(fire), w.payload.eq(Cat(*packed))]
        wiring.connect(m, out.r_stream, wiring.flipped(self.o_stream))
        return m


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return AddUnit(*lp.in_types, lp.out_type, lanes=lp.in_lanes, thresholds=layer.thresholds)
