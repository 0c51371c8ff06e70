"""The conv2d layer's component: a sliding-window generator feeding a folded matrix-vector
unit."""

from __future__ import annotations

from amaranth.lib import wiring

from ...layers import Layer, LayerPlan, Mac
from ...layers.weighted import WeightMatrix
from ...numeric import TensorType
from ..datapath import check_mac, check_weights
from ..stream import check_image, check_positive
from ..window import WindowedUnit
from .dense import MatrixVectorUnit

__all__ = ["ConvUnit", "component"]


class ConvUnit(WindowedUnit):
    """One conv2d layer: every window of the image, in (ky, kx, c) order, through a
    :class:`~hwgen.rtl.layers.dense.MatrixVectorUnit` holding the (O, k·k·C) weight matrix.

    Input: the (H, W, C) image channels-last, ``simd`` elements per beat. Output: per output
    pixel, O / ``pe`` beats of ``pe`` channels. Each window takes the unit's
    ``(O / pe)·(k·k·C / simd)`` cycles (timing and backpressure as in
    :class:`~hwgen.rtl.window.WindowedUnit`).

    Parameters
    ----------
    weights : WeightMatrix
        The (O, k·k·C) filters (columns in (ky, kx, c) order), bias and output quantization.
    in_type, out_type : TensorType
        The layer's (H, W, C) input and (H', W', O) output tensor types.
    kernel, stride, pads, pad_value :
        The window, as for :class:`~hwgen.rtl.window.WindowedUnit`.
    pe : int
        Output channels per output beat; divides O.
    simd : int
        Input elements per beat; divides C.
    mac, dsp_pack, output_steps, spram :
        As for :class:`~hwgen.rtl.layers.dense.MatrixVectorUnit`.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in element, simd)))
    o_stream : Out(stream.Signature(ArrayLayout(out element, pe)))
    load_valid, load_first, load_data : In
        Only with ``spram``.
    """

    unit_name = "mvu"

    def __init__(self, weights: WeightMatrix, in_type: TensorType, out_type: TensorType, *,
                 kernel: int, stride: int = 1, pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                 pad_value: int = 0, pe: int, simd: int, mac: Mac | str = Mac.LUT,
                 dsp_pack: int = 1, output_steps: int = 0, spram: bool = False):
        # Checked here, not only by the MatrixVectorUnit, so that no half-built unit is left.
        check_weights(weights)
        check_positive("pe", pe)
        check_positive("simd", simd)
        check_mac(mac)
        check_image("in_type", in_type)
        check_image("out_type", out_type)
        channels = in_type.shape[-1]
        if channels % simd:
            raise ValueError(f"simd {simd} does not divide the {channels} input channels")
        if weights.out_features % pe:
            raise ValueError(f"pe {pe} does not divide the {weights.out_features} output "
                             f"channels")
        vector_in = TensorType((weights.in_features,), in_type.bits, in_type.signed)
        vector_out = TensorType((weights.out_features,), out_type.bits, out_type.signed)
        self.mvu = MatrixVectorUnit(weights, vector_in, vector_out, pe=pe, simd=simd, mac=mac,
                                    dsp_pack=dsp_pack, output_steps=output_steps, spram=spram)
        super().__init__(in_type, out_type, self.mvu, kernel=kernel, stride=stride, pads=pads,
                         pad_value=pad_value, lanes=simd, out_lanes=pe)


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    h, w, _ = lp.in_type.shape
    return ConvUnit(layer.weight_matrix(), lp.in_type, lp.out_type, kernel=layer.kernel,
                    stride=layer.stride, pads=layer.pads(h, w), pad_value=layer.pad_value,
                    pe=lp.pe, simd=lp.simd, mac=lp.mac, dsp_pack=lp.dsp_pack,
                    output_steps=lp.output_steps, spram=layer.weight_memory == "spram")
