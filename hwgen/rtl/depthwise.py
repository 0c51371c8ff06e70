"""depthwise_conv2d: a sliding-window generator feeding a folded vector-vector unit, one k×k
filter per channel."""

from __future__ import annotations

from amaranth import Module, Mux, Signal

from ..numeric import TensorType
from ..spec import Dense, DepthwiseConv2d
from .arith import dot_dsp, dot_lut
from .conv import WindowedUnit
from .mvu import FoldedUnit, check_mac
from .stream import check_image, check_positive

__all__ = ["VectorVectorUnit", "DepthwiseConvUnit"]


class VectorVectorUnit(FoldedUnit):
    """Per-channel dot products of a window with each channel's own filter.

    Input, per window: ``k·k·C / pe`` beats of ``pe`` elements in (ky, kx, chunk) order, as
    :class:`~hwgen.rtl.window.SlidingWindow` emits them (chunk ``j`` holds channels
    ``j·pe .. j·pe + pe − 1``). Output, per window: ``C / pe`` beats of ``pe`` channels, channel
    ``c`` being ``Σ_{ky,kx} window[ky, kx, c]·w[c, ky, kx]`` (plus bias) through the layer's
    output stage. Each chunk takes ``k·k`` steps, one kernel position of its ``pe`` channels
    per cycle, so a window takes ``k·k·C / pe`` cycles, as many as it has input beats; the
    window is buffered (two buffers) and read back chunk by chunk. Timing, backpressure and
    SPRAM weights as in :class:`~hwgen.rtl.mvu.FoldedUnit`.

    Parameters
    ----------
    layer : DepthwiseConv2d
        Filters, bias and output quantization (values as in the spec).
    in_type, out_type : TensorType
        The layer's (H, W, C) input and output tensor types.
    pe : int
        Channels per beat, in and out; divides C.
    mac : str
        ``"dsp"`` puts each multi-bit product on its own DSP multiplier (channels share no
        input, so there is no packing); ``"lut"`` (default), ``"xnor"`` and ``"addsub"`` keep
        them in logic.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in element, pe)))
    o_stream : Out(stream.Signature(ArrayLayout(out element, pe)))
    load_valid, load_first, load_data : In
        Only with ``layer.weight_memory == "spram"``.
    """

    def __init__(self, layer: DepthwiseConv2d, in_type: TensorType, out_type: TensorType, *,
                 pe: int, mac: str = "lut"):
        check_positive("pe", pe)
        check_mac(mac)
        channels, positions = layer.channels, layer.in_features
        if channels % pe:
            raise ValueError(f"pe {pe} does not divide the {channels} channels")
        filters = Dense(layer.name, layer.matrix, layer.weight_bits, thresholds=layer.thresholds,
                        requantize=layer.requantize, bias=layer.bias, mac=layer.mac,
                        weight_memory=layer.weight_memory)
        window = TensorType((positions * channels,), in_type.bits, in_type.signed)
        channels_out = TensorType((channels,), out_type.bits, out_type.signed)
        super().__init__(filters, window, channels_out, pe=pe, lanes=pe, w_lanes=1,
                         nf=channels // pe, sf=positions, vector_words=positions * channels // pe,
                         mac=mac, shared_input=False)

    def _read_index(self, m: Module, go, last_sf, rd_done, nf_i, sf_i):
        # Step (chunk nf, position sf) reads window beat sf·NF + nf.
        index = Signal(range(self.vector_words), name="rd_index")
        with m.If(go):
            m.d.sync += index.eq(Mux(rd_done, 0, Mux(last_sf, nf_i + 1, index + self.nf)))
        return index

    def _partials(self, m: Module, x_word, x_lane, w_word, w_lane) -> list:
        mode = self.datapath.mode
        partials = []
        for p in range(self.pe):
            x, w = x_lane(p), w_lane(p, 0)
            if mode == "xnor":
                partials.append(~(x ^ w))
            elif mode == "sign_x":
                partials.append(Mux(w, x, -x))
            elif mode == "mask_w":
                partials.append(Mux(x, w, 0))
            elif self.mac == "dsp":
                partials += dot_dsp(m, [x], [[w]], 1, self.in_type.bits + self.layer.weight_bits,
                                    f"dsp{p}_")
            else:
                partials.append(dot_lut(m, [(x, w)], f"dot{p}"))
        return partials


class DepthwiseConvUnit(WindowedUnit):
    """One depthwise_conv2d layer: every window of the image through a
    :class:`VectorVectorUnit`.

    Input: the (H, W, C) image channels-last, ``pe`` elements per beat. Output: per output
    pixel, C / ``pe`` beats of ``pe`` channels. The window generator runs ``pe`` lanes wide, so
    window beats and computation steps match one for one: a window takes ``k·k·C / pe``
    cycles (timing and backpressure as in :class:`~hwgen.rtl.conv.WindowedUnit`).

    Parameters
    ----------
    layer : DepthwiseConv2d
        Filters, bias, output quantization, kernel, stride and padding.
    in_type, out_type : TensorType
        The layer's (H, W, C) input and (H', W', C) output tensor types.
    pe : int
        Channels per beat, in and out; divides C.
    mac : str
        As for :class:`VectorVectorUnit`.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in element, pe)))
    o_stream : Out(stream.Signature(ArrayLayout(out element, pe)))
    load_valid, load_first, load_data : In
        Only with ``layer.weight_memory == "spram"``.
    """

    unit_name = "vvu"

    def __init__(self, layer: DepthwiseConv2d, in_type: TensorType, out_type: TensorType, *,
                 pe: int, mac: str = "lut"):
        check_image("in_type", in_type)
        check_image("out_type", out_type)
        self.vvu = VectorVectorUnit(layer, in_type, out_type, pe=pe, mac=mac)
        super().__init__(layer, in_type, out_type, self.vvu, lanes=pe, out_lanes=pe)
