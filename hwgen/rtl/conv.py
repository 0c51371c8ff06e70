"""conv2d: a sliding-window generator feeding the folded matrix-vector unit."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..numeric import TensorType, encode
from ..plan import window_geometry
from ..spec import Conv2d, Dense, DepthwiseConv2d
from .mvu import MatrixVectorUnit, check_mac
from .stream import check_image, check_positive, element_shape, lanes_signature
from .weights import LOAD_PORTS
from .window import SlidingWindow

__all__ = ["ConvUnit", "WindowedUnit"]


class WindowedUnit(wiring.Component):
    """A sliding-window generator feeding ``unit``: the shape every convolution-like layer
    shares.

    Every window of each (H, W, C) input image, padding included, goes from a
    :class:`~hwgen.rtl.window.SlidingWindow` into ``unit`` (a folded compute unit) one beat per
    cycle at most, and the unit's output is this component's. Timing and backpressure are the
    window generator's at the input and the unit's at the output; ``i_stream.ready`` depends
    on registered state only. Subclasses name the unit's submodule (``unit_name``).

    Parameters
    ----------
    layer : Conv2d or DepthwiseConv2d
        Kernel, stride, padding and pad value.
    in_type, out_type : TensorType
        The layer's (H, W, C) input and (H', W', C') output tensor types.
    unit : wiring.Component
        The compute unit, with ``i_stream`` taking ``lanes``-element window beats,
        ``o_stream`` and, when its ``spram`` is true, the load ports.
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

    def __init__(self, layer: Conv2d | DepthwiseConv2d, in_type: TensorType,
                 out_type: TensorType, unit: wiring.Component, *, lanes: int, out_lanes: int):
        check_positive("lanes", lanes)
        check_positive("out_lanes", out_lanes)
        check_image("in_type", in_type)
        check_image("out_type", out_type)
        if not isinstance(unit, wiring.Component):
            raise TypeError(f"unit must be a wiring.Component, not {unit!r}")
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

    Input: the (H, W, C) image channels-last, ``simd`` elements per beat. Output: per output
    pixel, O / ``pe`` beats of ``pe`` channels. Each window takes the unit's
    ``(O / pe)·(k·k·C / simd)`` cycles (timing and backpressure as in
    :class:`WindowedUnit`).

    Parameters
    ----------
    layer : Conv2d
        Filters, bias, output quantization, kernel, stride and padding.
    in_type, out_type : TensorType
        The layer's (H, W, C) input and (H', W', O) output tensor types.
    pe : int
        Output channels per output beat; divides O.
    simd : int
        Input elements per beat; divides C.
    mac : str
        As for :class:`~hwgen.rtl.mvu.MatrixVectorUnit`.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in element, simd)))
    o_stream : Out(stream.Signature(ArrayLayout(out element, pe)))
    load_valid, load_first, load_data : In
        Only with ``layer.weight_memory == "spram"``.
    """

    unit_name = "mvu"

    def __init__(self, layer: Conv2d, in_type: TensorType, out_type: TensorType, *, pe: int,
                 simd: int, mac: str = "lut"):
        # Checked here, not only by the MatrixVectorUnit, so that no half-built unit is left.
        check_positive("pe", pe)
        check_positive("simd", simd)
        check_mac(mac)
        check_image("in_type", in_type)
        check_image("out_type", out_type)
        channels = in_type.shape[-1]
        if channels % simd:
            raise ValueError(f"simd {simd} does not divide the {channels} input channels")
        if layer.out_features % pe:
            raise ValueError(f"pe {pe} does not divide the {layer.out_features} output "
                             f"channels")
        matrix = Dense(layer.name, layer.matrix, layer.weight_bits, thresholds=layer.thresholds,
                       requantize=layer.requantize, mac=layer.mac,
                       bias=layer.bias, weight_memory=layer.weight_memory)
        vector_in = TensorType((layer.in_features,), in_type.bits, in_type.signed)
        vector_out = TensorType((layer.out_features,), out_type.bits, out_type.signed)
        self.mvu = MatrixVectorUnit(matrix, vector_in, vector_out, pe=pe, simd=simd, mac=mac)
        super().__init__(layer, in_type, out_type, self.mvu, lanes=simd, out_lanes=pe)
