"""conv2d: a sliding-window generator feeding the folded matrix-vector unit."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..numeric import TensorType, encode
from ..plan import window_geometry
from ..spec import Conv2d, Dense
from .mvu import MatrixVectorUnit
from .stream import element_shape, lanes_signature
from .weights import LOAD_PORTS
from .window import SlidingWindow

__all__ = ["ConvUnit"]


class ConvUnit(wiring.Component):
    """One conv2d layer: every window of the image, in (ky, kx, c) order, through a
    :class:`~hwgen.rtl.mvu.MatrixVectorUnit` holding the (O, k·k·C) weight matrix.

    Input: the (H, W, C) image channels-last, ``simd`` elements per beat (``simd`` divides
    C). Output: per output pixel, O / ``pe`` beats of ``pe`` channels.
    """

    def __init__(self, layer: Conv2d, in_type: TensorType, out_type: TensorType, *, pe: int,
                 simd: int, mac: str = "lut"):
        self.geometry = window_geometry(layer, in_type, simd)
        self.pad_code = int(encode(layer.pad_value, in_type.bits, in_type.signed))
        matrix = Dense(layer.name, layer.matrix, layer.weight_bits, thresholds=layer.thresholds,
                       requantize=layer.requantize, mac=layer.mac,
                       bias=layer.bias, weight_memory=layer.weight_memory)
        vector_in = TensorType((layer.in_features,), in_type.bits, in_type.signed)
        vector_out = TensorType((layer.out_features,), out_type.bits, out_type.signed)
        self.in_type = in_type
        self.mvu = MatrixVectorUnit(matrix, vector_in, vector_out, pe=pe, simd=simd, mac=mac)
        self.spram = self.mvu.spram
        members = {
            "i_stream": In(lanes_signature(in_type, simd)),
            "o_stream": Out(lanes_signature(out_type, pe)),
        }
        if self.spram:
            members.update(LOAD_PORTS)
        super().__init__(members)

    @property
    def spram_halfwords(self) -> int:
        return self.mvu.spram_halfwords

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = window = SlidingWindow(element_shape(self.in_type), self.geometry,
                                                     pad_code=self.pad_code)
        m.submodules.mvu = self.mvu
        wiring.connect(m, wiring.flipped(self.i_stream), window.i_stream)
        wiring.connect(m, window.o_stream, self.mvu.i_stream)
        wiring.connect(m, self.mvu.o_stream, wiring.flipped(self.o_stream))
        if self.spram:
            for port in LOAD_PORTS:
                m.d.comb += getattr(self.mvu, port).eq(getattr(self, port))
        return m
