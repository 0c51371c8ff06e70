"""The depthwise_conv2d layer's component: a sliding-window generator feeding a folded
vector-vector unit, one k×k filter per channel."""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring

from ...layers import Layer, LayerPlan, Mac
from ...layers.weighted import WeightMatrix
from ...numeric import TensorType
from ..arith import dot_dsp, dot_lut
from ..datapath import Mode, check_mac, check_weights
from ..folded import FoldedUnit
from ..stream import check_image, check_positive
from ..window import WindowedUnit

__all__ = ["VectorVectorUnit", "DepthwiseConvUnit", "component"]


class VectorVectorUnit(FoldedUnit):
    """Per-channel dot products of a window with each channel's own filter.

    Input, per window: ``k·k·C / pe`` beats of ``pe`` elements in (ky, kx, chunk) order, as
    :class:`~hwgen.rtl.window.SlidingWindow` emits them (chunk ``j`` holds channels
    ``j·pe .. j·pe + pe − 1``). Output, per window: ``C / pe`` beats of ``pe`` channels, channel
    ``c`` being ``Σ_{ky,kx} window[ky, kx, c]·w[c, ky, kx]`` (plus bias) through the layer's
    output stage. Each chunk takes ``k·k`` steps, one kernel position of its ``pe`` channels
    per cycle, so a window takes ``k·k·C / pe`` cycles, as many as it has input beats; the
    window is buffered (two buffers) and read back chunk by chunk. Timing, backpressure and
    SPRAM weights as in :class:`~hwgen.rtl.folded.FoldedUnit`.

    Parameters
    ----------
    weights : WeightMatrix
        The (C, k·k) filters (one row per channel, columns in (ky, kx) order), bias and output
        quantization.
    in_type, out_type : TensorType
        The layer's (H, W, C) input and output tensor types.
    pe : int
        Channels per beat, in and out; divides C.
    mac : Mac
        ``Mac.DSP`` puts each multi-bit product on its own DSP multiplier (channels share no
        input, so there is no packing); ``Mac.LUT`` (default), ``XNOR`` and ``ADDSUB`` keep
        them in logic.
    output_steps, spram :
        As for :class:`~hwgen.rtl.folded.FoldedUnit` (the plan's figures).

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in element, pe)))
    o_stream : Out(stream.Signature(ArrayLayout(out element, pe)))
    load_valid, load_first, load_data : In
        Only with ``spram``.
    """

    def __init__(self, weights: WeightMatrix, in_type: TensorType, out_type: TensorType, *,
                 pe: int, mac: Mac | str = Mac.LUT, output_steps: int = 0, spram: bool = False):
        check_weights(weights)
        check_positive("pe", pe)
        check_mac(mac)
        channels, positions = weights.out_features, weights.in_features
        if channels % pe:
            raise ValueError(f"pe {pe} does not divide the {channels} channels")
        window = TensorType((positions * channels,), in_type.bits, in_type.signed)
        channels_out = TensorType((channels,), out_type.bits, out_type.signed)
        super().__init__(weights, window, channels_out, pe=pe, lanes=pe, w_lanes=1,
                         nf=channels // pe, sf=positions, vector_words=positions * channels // pe,
                         mac=mac, shared_input=False, output_steps=output_steps, spram=spram)

    def _read_index(self, m: Module, go, last_sf, rd_done, nf_i, sf_i):
        # Step (chunk nf, position sf) reads window beat sf·NF + nf.
        index = Signal(range(self.vector_words), name="rd_index")
        with m.If(go):
            m.d.sync += index.eq(self._index_after(index, nf_i, sf_i, last_sf,
                                                   nf_i == self.nf - 1))
        return index

    def _index_after(self, index, nf_i, sf_i, last_sf, last_nf):
        return Mux(last_sf, Mux(last_nf, 0, nf_i + 1), index + self.nf)

    def _partials(self, m: Module, x_word, x_lane, w_word, w_lane, stage) -> list:
        mode = self.datapath.mode
        partials = []
        for p in range(self.pe):
            x, w = x_lane(p), w_lane(p, 0)
            if mode == Mode.XNOR:
                partials.append(stage(~(x ^ w)))
            elif mode == Mode.SIGN_X:
                partials.append(stage(Mux(w, x, -x)))
            elif mode == Mode.MASK_W:
                partials.append(stage(Mux(x, w, 0)))
            elif self.mac == Mac.DSP:
                partials += dot_dsp(m, [x], [[w]], 1,
                                    self.in_type.bits + self.weights.weight_bits, f"dsp{p}_",
                                    stage)
            else:
                partials.append(dot_lut(m, [(x, w)], f"dot{p}", stage))
        return partials


class DepthwiseConvUnit(WindowedUnit):
    """One depthwise_conv2d layer: every window of the image through a
    :class:`VectorVectorUnit`.

    Input: the (H, W, C) image channels-last, ``pe`` elements per beat. Output: per output
    pixel, C / ``pe`` beats of ``pe`` channels. The window generator runs ``pe`` lanes wide, so
    window beats and computation steps match one for one: a window takes ``k·k·C / pe``
    cycles (timing and backpressure as in :class:`~hwgen.rtl.window.WindowedUnit`).

    Parameters
    ----------
    weights : WeightMatrix
        As for :class:`VectorVectorUnit`.
    in_type, out_type : TensorType
        The layer's (H, W, C) input and (H', W', C) output tensor types.
    kernel, stride, pads, pad_value :
        The window, as for :class:`~hwgen.rtl.window.WindowedUnit`.
    pe : int
        Channels per beat, in and out; divides C.
    mac, output_steps, spram :
        As for :class:`VectorVectorUnit`.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in element, pe)))
    o_stream : Out(stream.Signature(ArrayLayout(out element, pe)))
    load_valid, load_first, load_data : In
        Only with ``spram``.
    """

    unit_name = "vvu"

    def __init__(self, weights: WeightMatrix, in_type: TensorType, out_type: TensorType, *,
                 kernel: int, stride: int = 1, pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                 pad_value: int = 0, pe: int, mac: Mac | str = Mac.LUT, output_steps: int = 0,
                 spram: bool = False):
        check_image("in_type", in_type)
        check_image("out_type", out_type)
        self.vvu = VectorVectorUnit(weights, in_type, out_type, pe=pe, mac=mac,
                                    output_steps=output_steps, spram=spram)
        super().__init__(in_type, out_type, self.vvu, kernel=kernel, stride=stride, pads=pads,
                         pad_value=pad_value, lanes=pe, out_lanes=pe)


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    h, w, _ = lp.in_type.shape
    return DepthwiseConvUnit(layer.weight_matrix(), lp.in_type, lp.out_type,
                             kernel=layer.kernel, stride=layer.stride, pads=layer.pads(h, w),
                             pad_value=layer.pad_value, pe=lp.pe, mac=lp.mac,
                             output_steps=lp.output_steps, spram=layer.weight_memory == "spram")
