"""The dense layer's component: a folded matrix-vector unit."""

from __future__ import annotations

from amaranth import Module, Mux
from amaranth.lib import wiring

from ...layers import Layer, LayerPlan, Mac
from ...layers.weighted import WeightMatrix, packed_operand_bits
from ...numeric import TensorType
from ..arith import dot_const, dot_dsp, dot_lut, popcount, sum_tree
from ..datapath import Mode, check_mac, check_weights
from ..folded import FoldedUnit
from ..stream import check_positive

__all__ = ["MatrixVectorUnit", "component"]


class MatrixVectorUnit(FoldedUnit):
    """Folded matrix-vector unit computing one dense layer per input vector.

    Input vectors arrive as ``in_features / simd`` beats of ``simd`` elements; each of
    ``out_features / pe`` output groups takes ``in_features / simd`` steps, each step the
    dot products of one input word with ``pe`` rows of ``simd`` weights, so a vector takes
    ``(out_features / pe)·(in_features / simd)`` cycles (timing, backpressure and SPRAM
    weights as in :class:`FoldedUnit`).

    Parameters
    ----------
    weights : WeightMatrix
        The (out_features, in_features) weights, bias and output quantization.
    in_type, out_type : TensorType
        The layer's input and output tensor types.
    pe, simd : int
        Output channels per output beat and input elements per input beat.
    mac : Mac
        ``Mac.DSP`` maps multi-bit products to DSP multipliers, ``dsp_pack`` output channels
        per multiplier; ``Mac.LUT`` (default), ``XNOR`` and ``ADDSUB`` keep them in logic (the
        datapath follows the operand widths).
    dsp_pack, output_steps, spram :
        As for :class:`~hwgen.rtl.folded.FoldedUnit` (the plan's figures).

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in element, simd)))
    o_stream : Out(stream.Signature(ArrayLayout(out element, pe)))
    load_valid, load_first, load_data : In
        Only with ``spram``.
    """

    def __init__(self, weights: WeightMatrix, in_type: TensorType, out_type: TensorType, *,
                 pe: int, simd: int, mac: Mac | str = Mac.LUT, dsp_pack: int = 1,
                 output_steps: int = 0, spram: bool = False):
        check_weights(weights)
        check_positive("pe", pe)
        check_positive("simd", simd)
        check_mac(mac)
        if weights.out_features % pe:
            raise ValueError(f"pe {pe} does not divide out_features {weights.out_features}")
        if weights.in_features % simd:
            raise ValueError(f"simd {simd} does not divide in_features {weights.in_features}")
        self.simd = simd
        sf = weights.in_features // simd
        super().__init__(weights, in_type, out_type, pe=pe, lanes=simd, w_lanes=simd,
                         nf=weights.out_features // pe, sf=sf, vector_words=sf, mac=mac,
                         shared_input=True, dsp_pack=dsp_pack, output_steps=output_steps,
                         spram=spram)

    def _read_index(self, m: Module, go, last_sf, rd_done, nf_i, sf_i):
        return sf_i

    def _index_after(self, index, nf_i, sf_i, last_sf, last_nf):
        return Mux(last_sf, 0, sf_i + 1)

    def _partials(self, m: Module, x_word, x_lane, w_word, w_lane, stage) -> list:
        dp, pe, simd = self.datapath, self.pe, self.simd
        if dp.mode == "mul" and self.mac == Mac.DSP:
            return self._dsp_partials(m, x_lane, w_word, stage)
        if dp.mode == Mode.MUL and self.unrolled:
            # Constant weights: shift-and-add with shared terms instead of products.
            return dot_const(m, [x_lane(k) for k in range(simd)],
                             self.weights.matrix.tolist(), "cmvm", stage)
        partials = []
        for p in range(pe):
            if dp.mode == Mode.XNOR:
                partials.append(popcount(~(x_word ^ w_word[p * simd:(p + 1) * simd]), stage))
            elif dp.mode == Mode.MASK_X:
                partials.append(sum_tree([Mux(w_lane(p, k), x_lane(k), 0) for k in range(simd)],
                                         stage))
            elif dp.mode == Mode.MASK_W:
                partials.append(sum_tree([Mux(x_lane(k), w_lane(p, k), 0) for k in range(simd)],
                                         stage))
            else:
                partials.append(dot_lut(m, [(x_lane(k), w_lane(p, k)) for k in range(simd)],
                                        f"dot{p}", stage))
        return partials

    def _dsp_partials(self, m: Module, x_lane, w_word, stage) -> list:
        """Per output channel, the dot product of one step on packed DSP products
        (:func:`~hwgen.rtl.arith.dot_dsp`)."""
        pack, simd = self.dsp_pack, self.simd
        stored = packed_operand_bits(self.in_type.bits, self.weights.weight_bits, pack)
        operands = [[w_word[(g * simd + k) * stored:(g * simd + k + 1) * stored].as_signed()
                     for k in range(simd)] for g in range(self.pe // pack)]
        return dot_dsp(m, [x_lane(k) for k in range(simd)], operands, pack,
                       self.in_type.bits + self.weights.weight_bits, "dsp", stage)


def component(layer: Layer, lp: LayerPlan) -> wiring.Component:
    """The component computing ``layer`` as ``lp`` plans it."""
    return MatrixVectorUnit(layer.weight_matrix(), lp.in_type, lp.out_type, pe=lp.pe,
                            simd=lp.simd, mac=lp.mac, dsp_pack=lp.dsp_pack,
                            output_steps=lp.output_steps, spram=layer.weight_memory == "spram")
