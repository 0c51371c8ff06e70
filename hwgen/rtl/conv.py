"""conv2d: a sliding-window generator feeding the folded matrix-vector unit."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..numeric import TensorType, encode
from ..plan import window_geometry
from ..spec import Conv2d, Dense, DepthwiseConv2d
from .mvu import MatrixVectorUnit
from .stream import element_shape, lanes_signature
from .weights import LOAD_PORTS
from .window import SlidingWindow

__all__ = ["ConvUnit", "WindowedUnit"]


class WindowedUnit(wiring.Component):
    """A sliding-window generator feeding ``unit`` (a folded compute unit with ``i_stream``,
    ``o_stream`` and, with SPRAM weights, the load ports): the shape every convolution-like
    layer shares. ``lanes`` elements per input beat (the window's width), ``out_lanes`` per
    output beat. Subclasses name the unit's submodule (``unit_name``)."""

    unit_name = "unit"

    def __init__(self, layer: Conv2d | DepthwiseConv2d, in_type: TensorType,
                 out_type: TensorType, unit: wiring.Component, *, lanes: int, out_lanes: int):
        self.geometry = window_geometry(layer, in_type, lanes)
        self.pad_code = int(encode(layer.pad_value, in_type.bits, in_type.signed))
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
        m.submodules.window = window = SlidingWindow(element_shape(self.in_type), self.geometry,
                                                     pad_code=self.pad_code)
        m.submodules[self.unit_name] = self.unit
        wiring.connect(m, wiring.flipped(self.i_stream), window.i_stream)
        wiring.connect(m, window.o_stream, self.unit.i_stream)
        wiring.connect(m, self.unit.o_stream, wiring.flipped(self.o_stream))
        if self.spram:
            for port in LOAD_PORTS:
                m.d.comb += getattr(self.unit, port).eq(getattr(self, port))
        return m


class ConvUnit(WindowedUnit):
    """One conv2d layer: every window of the image, in (ky, kx, c) order, through a
    :class:`~hwgen.rtl.mvu.MatrixVectorUnit` holding the (O, k·k·C) weight matrix.

    Input: the (H, W, C) image channels-last, ``simd`` elements per beat (``simd`` divides
    C). Output: per output pixel, O / ``pe`` beats of ``pe`` channels.
    """

    unit_name = "mvu"

    def __init__(self, layer: Conv2d, in_type: TensorType, out_type: TensorType, *, pe: int,
                 simd: int, mac: str = "lut"):
        matrix = Dense(layer.name, layer.matrix, layer.weight_bits, thresholds=layer.thresholds,
                       requantize=layer.requantize, mac=layer.mac,
                       bias=layer.bias, weight_memory=layer.weight_memory)
        vector_in = TensorType((layer.in_features,), in_type.bits, in_type.signed)
        vector_out = TensorType((layer.out_features,), out_type.bits, out_type.signed)
        self.mvu = MatrixVectorUnit(matrix, vector_in, vector_out, pe=pe, simd=simd, mac=mac)
        super().__init__(layer, in_type, out_type, self.mvu, lanes=simd, out_lanes=pe)
