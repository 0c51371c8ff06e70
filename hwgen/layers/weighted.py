"""What the layers with weights per output channel share (dense, conv2d, depthwise_conv2d):
output quantization (thresholds, requantize), the weight and folding checks, their TOML fields,
DSP mapping and packing, the accumulate/quantize golden functions and the folded-unit cost.

Thresholds are shared with the add layer. NumPy only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import (
    SpecError,
    Where,
    check_bits,
    check_bool,
    check_choice,
    check_int_array,
    is_int,
    show,
)
from ..numeric import TensorType, dot_bounds, value_range, width_for
from .base import Layer, LayerPlan, Mac
from .tables import require, take_array, toml_value

__all__ = ["Requantize", "REQUANTIZE_PRODUCT_BITS", "MAX_SHIFT", "WeightedLayer", "WeightMatrix",
           "WEIGHT_MEMORIES", "MAC_KINDS", "DSP_OPERAND_BITS", "DSP_MIN_PRODUCT_BITS",
           "dsp_product_problem", "dsp_operand_problem", "dsp_packing", "packed_operand_bits",
           "layer_dsp_pack", "threshold_bits", "check_thresholds", "thresholds_from_toml",
           "quantize_thresholds", "requantize", "mac_kind", "lut_mac_cost", "requantize_factors",
           "output_steps", "layer_dsps", "default_simd", "divisors", "AUTO", "fixed",
           "DEFAULT_MAX_SIMD"]

#: Signed bits that every reachable ``acc·multiplier + rounding`` of a requantize fits in.
REQUANTIZE_PRODUCT_BITS = 48
#: Largest requantize shift.
MAX_SHIFT = REQUANTIZE_PRODUCT_BITS - 1
#: Where a layer's weights can live (``weight_memory``).
WEIGHT_MEMORIES = ("rom", "spram")
#: How a layer's multi-bit products are mapped (``mac``).
MAC_KINDS = ("auto", "lut", "dsp")
#: Signed operand width of the DSP multipliers products are mapped to: the iCE40 SB_MAC16's
#: 16×16. ECP5's MULT18X18D is 18×18, but hwgen packs for 16 bits on both families so that one
#: RTL (the one simulated) serves every device.
DSP_OPERAND_BITS = 16
#: Fewest result bits of a product Yosys puts on a DSP block: ``synth_ice40 -dsp`` maps a
#: multiplication to an SB_MAC16 only from 11 result bits on and keeps narrower ones in logic.
#: hwgen holds both families to it (as to :data:`DSP_OPERAND_BITS`), so that a layer's DSP
#: count is one number.
DSP_MIN_PRODUCT_BITS = 11
#: Largest SIMD chosen by default.
DEFAULT_MAX_SIMD = 16


@dataclass(frozen=True, eq=False)
class Requantize:
    """Integer scale + shift output quantization, per output channel ``o``::

        out[o] = clamp((acc[o]·multiplier[o] + 2**(shift[o] − 1)) >> shift[o], lo, hi)

    ``>>`` is an arithmetic (floor) shift, so the rounding is half up; the rounding term is 0
    where ``shift[o] = 0``. ``lo .. hi`` is the range of a ``bits``-bit (2..16) unsigned or
    ``signed`` integer. ``multiplier`` (signed, |M| < 2**31) and ``shift`` (0..47) are
    one-per-channel integer arrays; every reachable ``acc·multiplier + rounding`` must fit in
    :data:`REQUANTIZE_PRODUCT_BITS` signed bits.
    """

    multiplier: np.ndarray
    shift: np.ndarray
    bits: int
    signed: bool = False

    @property
    def range(self) -> tuple[int, int]:
        return value_range(self.bits, self.signed)


@dataclass(frozen=True, eq=False)
class WeightMatrix:
    """The numbers a layer with weights computes with, as the RTL takes them: ``matrix``
    (one row of int64 values per output channel: ±1 for 1-bit weights, else signed
    ``weight_bits``-bit), ``bias`` (one per channel, or ``None``) and the output
    quantization: ``thresholds`` (channels × 2**n − 1), ``requantize``, or neither (the raw
    accumulator). A plain value; :meth:`WeightedLayer.weight_matrix` makes it."""

    matrix: np.ndarray
    weight_bits: int
    bias: np.ndarray | None = None
    thresholds: np.ndarray | None = None
    requantize: Requantize | None = None

    @property
    def out_features(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.matrix.shape[1])


# -- thresholds (also the add layer's) -------------------------------------------------------

def threshold_bits(thresholds: np.ndarray | None) -> int | None:
    """n for 2**n − 1 thresholds per channel; ``None`` without thresholds."""
    return None if thresholds is None else int(thresholds.shape[1] + 1).bit_length() - 1


def check_thresholds(name: str, t: object, channels: int, where: Where) -> np.ndarray:
    """Layer ``name``'s thresholds checked as a (channels, 2**n − 1) array ascending along
    rows; returned as int64."""
    key = f"{name}.thresholds"
    if not isinstance(t, np.ndarray) or t.ndim != 2 or t.shape[0] != channels:
        got = f"shape {t.shape}" if isinstance(t, np.ndarray) else type(t).__name__
        raise where.array_error(key, f"expected an ({channels}, 2**out_bits - 1) integer "
                                f"array, got {got}")
    count = t.shape[1]
    if count < 1 or count > 255 or (count + 1) & count:
        raise where.array_error(key, f"{count} thresholds per channel, expected 2**n - 1 "
                                f"for an n-bit output (1, 3, 7, ... 255)")
    t = check_int_array(t, key, where, t.shape)
    unsorted = np.argwhere(np.diff(t, axis=1) < 0)
    if len(unsorted):
        o, i = (int(v) for v in unsorted[0])
        raise where.array_error(key, f"thresholds must ascend along each row; row {o} "
                                f"has {int(t[o, i])} before {int(t[o, i + 1])}")
    return t


def thresholds_from_toml(table: dict, arrays: dict, where: Where,
                         channels: int | None) -> np.ndarray:
    """The thresholds array of a table with ``output = "thresholds"``: ``out_bits`` (1..8)
    checked, the array taken from ``arrays`` and its shape checked against ``channels`` rows
    (``None``: any) and ``2**out_bits − 1`` columns."""
    name = table["name"]
    out_bits = require(table, "out_bits", int, where)
    if not 1 <= out_bits <= 8:
        raise where.spec_error("out_bits", f"expected an integer 1..8, got {out_bits}")
    thresholds = take_array(arrays, where, name, "thresholds")
    count = (1 << out_bits) - 1
    if isinstance(thresholds, np.ndarray):
        if channels is not None and thresholds.shape != (channels, count):
            raise where.array_error(f"{name}.thresholds", f"shape {thresholds.shape}, expected "
                                    f"({channels}, {count}) for out_bits = {out_bits}")
        if channels is None and (thresholds.ndim != 2 or thresholds.shape[1] != count):
            raise where.array_error(f"{name}.thresholds", f"shape {thresholds.shape}, expected "
                                    f"(channels, {count}) for out_bits = {out_bits}")
    return thresholds


def quantize_thresholds(acc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Count of thresholds each accumulator reaches (``acc ≥ T``); 1-bit outputs become ±1."""
    count = (acc[..., None] >= thresholds).sum(axis=-1).astype(np.int64)
    return 2 * count - 1 if thresholds.shape[-1] == 1 else count


def requantize(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, lo: int,
               hi: int) -> np.ndarray:
    """``clamp((acc·multiplier + 2**(shift − 1)) >> shift, lo, hi)`` per channel (last axis):
    round half up, an arithmetic shift, no rounding term where ``shift`` is 0. Exact in int64
    for every spec the loader accepts (products stay within 48 bits)."""
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    rounding = np.left_shift(np.int64(1), s) >> 1
    return np.clip((np.asarray(acc, dtype=np.int64) * m + rounding) >> s, lo, hi)


# -- DSP mapping -----------------------------------------------------------------------------

def dsp_operand_problem(x: TensorType, weight_bits: int) -> str | None:
    """Why products of ``x`` elements and ``weight_bits``-bit weights cannot go on a DSP
    multiplier, or ``None`` when they can."""
    xbits = x.bits + (0 if x.signed else 1)
    if xbits > DSP_OPERAND_BITS or weight_bits > DSP_OPERAND_BITS:
        return (f"{x.describe()} inputs × {weight_bits}-bit weights need {xbits}×{weight_bits}"
                f"-bit signed operands, beyond the DSP's {DSP_OPERAND_BITS}×{DSP_OPERAND_BITS}")
    return None


def dsp_packing(x: TensorType, weight_bits: int, pe: int) -> int:
    """Products one DSP multiplier computes per cycle: ``g`` output channels that share an
    input element, their weights packed ``x.bits + weight_bits`` bits apart into one signed
    operand of at most :data:`DSP_OPERAND_BITS` bits (``g`` divides ``pe``). Exact: each
    product fits its field, and the field extraction corrects the borrow of a negative lower
    product (docs/spec.md, "DSP packing"). The operands must fit a DSP
    (:func:`dsp_operand_problem`)."""
    g = 1
    for cand in range(2, pe + 1):
        if pe % cand == 0 and packed_operand_bits(x.bits, weight_bits, cand) \
                <= DSP_OPERAND_BITS:
            g = cand
    return g


def packed_operand_bits(x_bits: int, weight_bits: int, pack: int) -> int:
    """Signed bits of ``pack`` weights packed ``x_bits + weight_bits`` apart: the top weight's
    bits, plus one where the lower weights' borrows can push the sum below the top field's
    range (every weight at its minimum)."""
    if pack == 1:
        return weight_bits
    return (pack - 1) * (x_bits + weight_bits) + weight_bits + 1


def layer_dsp_pack(layer: WeightedLayer, x: TensorType, pe: int) -> int:
    """:func:`dsp_packing` of a layer on DSPs; 1 for SPRAM weights, whose image has one layout
    whatever the mapping, and for layers whose channels never share an input element
    (depthwise_conv2d)."""
    if layer.weight_memory != "rom" or not layer.shares_inputs:
        return 1
    return dsp_packing(x, layer.weight_bits, pe)


def dsp_product_problem(layer: WeightedLayer, x: TensorType, pe: int) -> str | None:
    """Why the products of ``layer`` on DSPs (packed as :func:`layer_dsp_pack` packs them for
    ``pe``) would not become DSP multipliers, or ``None`` when they would: as signed operands
    they must make at least :data:`DSP_MIN_PRODUCT_BITS` result bits."""
    pack = layer_dsp_pack(layer, x, pe)
    product = (packed_operand_bits(x.bits, layer.weight_bits, pack) + x.bits
               + (0 if x.signed else 1))
    if product < DSP_MIN_PRODUCT_BITS:
        what = "products" if pack == 1 else f"packed products ({pack} per multiplier)"
        return (f"{x.describe()} inputs × {layer.weight_bits}-bit weights make {product}-bit "
                f"{what}, and Yosys keeps products narrower than {DSP_MIN_PRODUCT_BITS} bits "
                f"in logic on iCE40")
    return None


# -- cost ------------------------------------------------------------------------------------

def mac_kind(layer: WeightedLayer, x: TensorType, dsp: bool | None = None) -> Mac:
    """How a layer with weights computes its dot products (:class:`~hwgen.layers.base.Mac`);
    ``dsp`` decides ``mac = "auto"`` (``None``: logic)."""
    if layer.weight_bits == 1 and x.binary:
        return Mac.XNOR
    if layer.weight_bits == 1 or x.binary:
        return Mac.ADDSUB
    if layer.mac == "auto":
        return Mac.DSP if dsp else Mac.LUT
    return Mac(layer.mac)


def lut_mac_cost(x_bits: int, weight_bits: int) -> int:
    """Estimated LUT4s of one multi-bit product in logic, its share of the adder tree included
    (:func:`hwgen.rtl.arith.dot_lut`): a table for operands of 4 bits together, else a mask LUT
    and an adder bit per partial-product bit. docs/results.md has the measured counts."""
    if x_bits + weight_bits <= 4:
        return 2 * (x_bits + weight_bits)
    return 2 * x_bits * weight_bits


def requantize_factors(layer: WeightedLayer, x: TensorType) -> np.ndarray:
    """Per output channel, the factor a folded unit multiplies its accumulator term ``q`` by:
    the multiplier scaled to the largest shift, times 2 for binary inputs (whose ``q`` counts
    matches, ``acc = 2q + offset``)."""
    rq = layer.requantize
    beta = 2 if x.binary else 1
    return beta * (rq.multiplier.astype(object) << (int(rq.shift.max()) - rq.shift))


def signed_bits(values) -> int:
    """Two's-complement bits that hold every integer of ``values``."""
    bits, is_signed = width_for(int(min(values)), int(max(values)))
    return bits + (0 if is_signed else 1)


def output_steps(layer: WeightedLayer, x: TensorType, sf: int) -> int:
    """Cycles per output group of a folded unit's serial output stage, or 0 for the parallel
    one. A group's sums wait SF cycles for the next group's, so when the work fits in SF
    cycles one small circuit per lane does it step by step: a requantize multiplication
    shift-and-add over the factor's bits, or multi-bit thresholds (n ≥ 2 bits, 2**n − 1
    thresholds) by binary search, n compares. The serial stage adds ``steps − 1`` cycles of
    latency and no cycles per inference."""
    if layer.requantize is not None:
        steps = signed_bits(requantize_factors(layer, x).tolist())
    elif layer.thresholds is not None and layer.thresholds.shape[1] > 1:
        steps = layer.out_bits
    else:
        return 0
    return steps if steps <= sf else 0


def layer_dsps(layer: WeightedLayer, x: TensorType, pe: int, simd: int,
               operand_bits: int = DSP_OPERAND_BITS) -> int:
    """DSP multipliers of a layer mapped to DSPs: the packed products, and its parallel
    requantize multipliers split into pieces of ``operand_bits`` signed bits (16: the
    SB_MAC16, and the count the plan budgets with on every family; 18: the ECP5's
    MULT18X18D, as Yosys' mul2dsp splits them there)."""
    count = pe // layer_dsp_pack(layer, x, pe) * simd
    if layer.requantize is not None and not output_steps(layer, x, layer.in_features // simd):
        lo, hi = layer.acc_bounds(x)
        qbits, signed = width_for(int(lo.min()), int(hi.max()))
        qbits += not signed  # an unsigned sum times a signed factor: one more bit
        fbits = signed_bits(requantize_factors(layer, x).tolist())
        count += pe * -(-qbits // operand_bits) * -(-fbits // operand_bits)
    return count


#: ``pe``/``simd`` left to hwgen: chosen for the board by ``hwgen fold`` whenever a command
#: knows the board (build, flow, check --board), the defaults (PE 1, SIMD
#: :func:`default_simd`) otherwise.
AUTO = "auto"


def is_auto(value: object) -> bool:
    """Whether a ``pe``/``simd`` field is ``"auto"`` (whatever else it holds)."""
    return isinstance(value, str) and value == AUTO


def fixed(value: int | str | None, default: int) -> int:
    """A ``pe``/``simd`` field's value, ``default`` when unset or ``"auto"``."""
    return default if value is None or is_auto(value) else value


def check_fold_field(value: object, key: str, where: Where) -> int:
    """A ``pe``/``simd`` given as a number: a positive integer."""
    if not is_int(value) or value < 1:
        raise where.spec_error(key, f'expected a positive integer or "auto", got {show(value)}')
    return int(value)


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n``, ascending."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def default_simd(in_features: int) -> int:
    """The largest divisor of ``in_features`` not above 16."""
    return max(d for d in range(1, min(in_features, DEFAULT_MAX_SIMD) + 1)
               if in_features % d == 0)


# -- the shared base -------------------------------------------------------------------------

class WeightedLayer(Layer):
    """The base of dense, conv2d and depthwise_conv2d: integer weights per output channel,
    then thresholds, requantize or the raw accumulator (see :class:`~hwgen.layers.dense.Dense`
    for the fields). Subclasses define ``matrix`` (out × inputs per output) and the folding."""

    #: Whether its output channels share input elements (so DSPs can pack them).
    shares_inputs: ClassVar[bool] = True
    uses_arrays: ClassVar[bool] = True
    #: The TOML keys every layer with weights has.
    toml_keys: ClassVar[frozenset[str]] = frozenset({
        "weight_bits", "output", "out_bits", "out_signed", "bias", "pe", "weight_memory",
        "mac"})

    weights: np.ndarray
    weight_bits: int
    thresholds: np.ndarray | None
    bias: np.ndarray | None
    pe: int | None
    weight_memory: str
    requantize: Requantize | None
    mac: str

    @property
    def out_features(self) -> int:
        return int(self.weights.shape[0])

    @property
    def in_features(self) -> int:
        """Inputs per output value."""
        return int(np.prod(self.weights.shape[1:]))

    @property
    def matrix(self) -> np.ndarray:
        """The weights as an (out, inputs per output) matrix."""
        return self.weights.reshape(self.weights.shape[0], -1)

    @property
    def out_bits(self) -> int | None:
        """Output bits when thresholded or requantized, ``None`` for raw accumulator output."""
        if self.requantize is not None:
            return self.requantize.bits
        return threshold_bits(self.thresholds)

    def weight_matrix(self) -> WeightMatrix:
        """Its weights (as the (out, inputs per output) :attr:`matrix`), bias and output
        quantization, for the RTL."""
        return WeightMatrix(self.matrix, self.weight_bits, self.bias, self.thresholds,
                            self.requantize)

    def logic_features(self, lp: LayerPlan) -> dict[str, float]:
        """The folded unit's: its control, the ``pe × simd`` products by how they are mapped
        (XNOR bits, add/subtract operand bits, LUT multiplier bit-products, DSP lanes), the
        ``pe`` accumulators, the output stage (threshold compares, requantize products) and
        the input and output stream bits."""
        x = lp.in_type
        lanes = lp.pe * lp.simd
        lo, hi = self.acc_bounds(x)
        acc = width_for(int(lo.min()), int(hi.max()))[0]
        out: dict[str, float] = {"mvu": 1.0, "mvu_acc": float(lp.pe * acc),
                                 "mvu_in": float(lp.in_lanes * x.bits),
                                 "mvu_out": float(lp.out_lanes * lp.out_type.bits)}
        multi = x.bits if self.weight_bits == 1 else self.weight_bits
        out[{Mac.XNOR: "mac_xnor", Mac.ADDSUB: "mac_addsub", Mac.LUT: "mac_lut",
             Mac.DSP: "mac_dsp"}[lp.mac]] = float(
            lanes * ({Mac.XNOR: 1, Mac.ADDSUB: multi, Mac.DSP: 1}.get(lp.mac)
                     or self.weight_bits * x.bits))
        if self.thresholds is not None:
            compares = 1 if lp.output_steps else self.thresholds.shape[1]
            out["thresholds"] = float(lp.pe * compares * acc)
        elif self.requantize is not None:
            fbits = signed_bits(requantize_factors(self, x).tolist())
            serial = lp.output_steps or lp.mac == Mac.DSP
            out["requantize"] = float(lp.pe * (acc + fbits if serial else acc * fbits))
        return out

    def acc_bounds(self, x: TensorType) -> tuple[np.ndarray, np.ndarray]:
        """Per output channel, the reachable accumulator range (bias included)."""
        lo, hi = dot_bounds(self.matrix, *x.range)
        if self.bias is not None:
            lo, hi = lo + self.bias, hi + self.bias
        return lo, hi

    def check_weighted(self, w: np.ndarray, x: TensorType, where: Where, *,
                       simd_divides: int = 0, simd_what: str = "",
                       pe_what: str = "out_features") -> tuple[WeightedLayer, int, bool]:
        """The checks every layer with weights shares: weight range, bias, thresholds or
        requantize, folding, weight memory, mac. ``w`` is the weights array as given (its
        first axis the output channel); ``pe_what`` names the output channels when ``pe``
        does not divide them; a layer without ``simd`` skips that check. Returns the checked
        copy and the output element's (bits, signed)."""
        key = f"{self.name}.weights"
        weight_bits = check_bits(self.weight_bits, "weight_bits", where)
        w = check_int_array(w, key, where, w.shape)
        if weight_bits == 1:
            bad = ~np.isin(w, (-1, 1))
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise where.array_error(key, f"1-bit weights must be -1 or +1, found "
                                        f"{int(w[idx])} at {idx}")
        else:
            lo, hi = value_range(weight_bits, True)
            bad = (w < lo) | (w > hi)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise where.array_error(key, f"{weight_bits}-bit weights must lie in "
                                        f"{lo}..{hi}, found {int(w[idx])} at {idx}")
        changes: dict = {"weights": w, "weight_bits": weight_bits}
        out = int(w.shape[0])
        bias = self.bias
        if bias is not None:
            bias = check_int_array(bias, f"{self.name}.bias", where, (out,))
            if ((bias >= 1 << 31) | (bias <= -(1 << 31))).any():
                raise where.array_error(f"{self.name}.bias", "bias values must fit in 32 bits")
            changes["bias"] = bias
        reach = int(np.abs(w.reshape(out, -1)).sum(axis=1).max()) * max(-x.range[0], x.range[1])
        reach += int(np.abs(bias).max()) if bias is not None else 0
        if reach >= 1 << 63:  # every partial sum of the golden model's int64 dot products is exact
            raise SpecError(where.spec, where.prefix, f"accumulators reach ±{reach} "
                            f"({x.describe()} inputs × {weight_bits}-bit weights), beyond "
                            f"64-bit signed integers; quantize the input (thresholds or "
                            f"requantize on the layer before)")
        check_choice(self.weight_memory, "weight_memory", where, WEIGHT_MEMORIES)
        if self.pe is not None and not is_auto(self.pe):
            changes["pe"] = check_fold_field(self.pe, "pe", where)
            if out % changes["pe"]:
                raise where.spec_error("pe", f"{self.pe} does not divide {pe_what} {out}")
        if getattr(self, "simd", None) is not None and not is_auto(self.simd):
            changes["simd"] = check_fold_field(self.simd, "simd", where)
            if simd_divides % changes["simd"]:
                raise where.spec_error("simd", f"{self.simd} does not divide {simd_what} "
                                       f"{simd_divides}")
        layer = dataclasses.replace(self, **changes)
        check_choice(layer.mac, "mac", where, MAC_KINDS)
        if layer.mac != "auto" and (weight_bits == 1 or x.binary):
            raise where.spec_error("mac", f"{layer.mac!r}: the layer has no multiplications "
                                   f"({'binary weights' if weight_bits == 1 else 'binary inputs'}"
                                   f" take an add/subtract or XNOR path); leave mac = \"auto\"")
        if layer.mac == "dsp" and dsp_operand_problem(x, weight_bits):
            raise where.spec_error("mac", f'"dsp": {dsp_operand_problem(x, weight_bits)}')
        if layer.mac == "dsp" and dsp_product_problem(layer, x, layer.pe or 1):
            raise where.spec_error("mac", f'"dsp": {dsp_product_problem(layer, x, layer.pe or 1)}'
                                   f'; use "lut"')
        if layer.requantize is not None:
            if layer.thresholds is not None:
                raise where.spec_error("requantize", "a layer has thresholds or requantize, "
                                       "not both")
            rq = layer._checked_requantize(out, x, where)
            return dataclasses.replace(layer, requantize=rq), rq.bits, bool(rq.signed)
        if layer.thresholds is None:
            lo, hi = layer.acc_bounds(x)
            return (layer, *width_for(int(lo.min()), int(hi.max())))
        layer = dataclasses.replace(
            layer, thresholds=check_thresholds(layer.name, layer.thresholds, out, where))
        return layer, layer.out_bits, False

    def _checked_requantize(self, channels: int, x: TensorType, where: Where) -> Requantize:
        """``requantize`` checked: bits, signedness, one multiplier and shift per channel, and
        no reachable ``acc·multiplier + rounding`` beyond :data:`REQUANTIZE_PRODUCT_BITS`."""
        rq = self.requantize
        if not isinstance(rq, Requantize):
            raise where.spec_error("requantize", f"expected a hwgen.spec.Requantize, got "
                                   f"{type(rq).__name__}")
        bits = check_bits(rq.bits, "out_bits", where, 2, 16, " for a requantized output (1-bit "
                          "outputs use thresholds)")
        signed = check_bool(rq.signed, "out_signed", where)
        m = check_int_array(rq.multiplier, f"{self.name}.multiplier", where, (channels,))
        s = check_int_array(rq.shift, f"{self.name}.shift", where, (channels,))
        for key, values, lo, hi in (("multiplier", m, -(1 << 31) + 1, (1 << 31) - 1),
                                    ("shift", s, 0, MAX_SHIFT)):
            bad = np.argwhere((values < lo) | (values > hi))
            if len(bad):
                o = int(bad[0][0])
                raise where.array_error(f"{self.name}.{key}", f"must lie in {lo}..{hi}, found "
                                        f"{int(values[o])} at channel {o}")
        acc_lo, acc_hi = self.acc_bounds(x)
        for o, (lo, hi, mo, so) in enumerate(zip(acc_lo.tolist(), acc_hi.tolist(), m.tolist(),
                                                 s.tolist(), strict=True)):
            reach = max(abs(lo * mo), abs(hi * mo)) + (1 << so >> 1)  # Python ints: exact
            if reach >= 1 << (REQUANTIZE_PRODUCT_BITS - 1):
                raise where.array_error(f"{self.name}.multiplier", f"requantize overflows at "
                                        f"channel {o}: acc·multiplier reaches ±{reach} (acc in "
                                        f"{lo}..{hi}, multiplier {mo}), beyond "
                                        f"{REQUANTIZE_PRODUCT_BITS}-bit signed; use a smaller "
                                        f"multiplier and shift")
        return Requantize(m, s, bits, signed)

    # -- TOML -------------------------------------------------------------------------------
    @staticmethod
    def weighted_fields(table: dict, arrays: dict, where: Where,
                        channels_of: Callable[[np.ndarray], int]) -> dict:
        """The fields of a layer with weights per output channel: weight bits, weights, output
        quantization and its arrays, bias, pe, weight memory and mac. ``channels_of`` checks
        the weights array against the table and returns the layer's output channel count."""
        name = table["name"]
        weight_bits = require(table, "weight_bits", int, where)
        output = table.get("output", "thresholds")
        if output not in ("thresholds", "requantize", "none"):
            raise where.spec_error("output", f"expected \"thresholds\", \"requantize\" or "
                                   f"\"none\", got {show(output)}")
        has_bias = table.get("bias", False)
        if not isinstance(has_bias, bool):
            raise where.spec_error("bias", f"expected true or false, got {show(has_bias)}")

        def array(suffix: str) -> np.ndarray:
            return take_array(arrays, where, name, suffix)

        weights = array("weights")
        channels = channels_of(weights)
        thresholds = rq = None
        if "out_signed" in table and output != "requantize":
            raise where.spec_error("out_signed", "only meaningful with output = \"requantize\"")
        if output == "requantize":
            out_bits = require(table, "out_bits", int, where)
            if not 2 <= out_bits <= 16:
                raise where.spec_error("out_bits", f"expected an integer 2..16 for a "
                                       f"requantized output (1-bit outputs use thresholds), "
                                       f"got {out_bits}")
            out_signed = table.get("out_signed", False)
            if not isinstance(out_signed, bool):
                raise where.spec_error("out_signed", f"expected true or false, got "
                                       f"{show(out_signed)}")
            multiplier, shift = array("multiplier"), array("shift")
            for key, value in (("multiplier", multiplier), ("shift", shift)):
                if isinstance(value, np.ndarray) and value.shape != (channels,):
                    raise where.array_error(f"{name}.{key}", f"shape {value.shape}, expected "
                                            f"({channels},): one per output channel")
            rq = Requantize(multiplier, shift, out_bits, out_signed)
        elif output == "thresholds":
            thresholds = thresholds_from_toml(table, arrays, where, channels)
        elif "out_bits" in table:
            raise where.spec_error("out_bits", "only meaningful with output = \"thresholds\"")
        return dict(name=name, weights=weights, weight_bits=weight_bits, thresholds=thresholds,
                    requantize=rq, bias=array("bias") if has_bias else None,
                    pe=table.get("pe"), weight_memory=table.get("weight_memory", "rom"),
                    mac=table.get("mac", "auto"))

    def weighted_toml(self) -> tuple[list[str], dict[str, np.ndarray]]:
        """The TOML lines and arrays every layer with weights writes (after its own keys)."""
        lines = [f"weight_bits = {self.weight_bits}"]
        arrays = {f"{self.name}.weights": self.weights.astype(
            np.int8 if self.weight_bits <= 8 else np.int16)}
        if self.thresholds is not None:
            lines += ['output = "thresholds"', f"out_bits = {self.out_bits}"]
            arrays[f"{self.name}.thresholds"] = self.thresholds
        elif self.requantize is not None:
            rq = self.requantize
            lines += ['output = "requantize"', f"out_bits = {rq.bits}",
                      f"out_signed = {toml_value(rq.signed)}"]
            arrays[f"{self.name}.multiplier"] = rq.multiplier
            arrays[f"{self.name}.shift"] = rq.shift
        else:
            lines.append('output = "none"')
        if self.bias is not None:
            lines.append("bias = true")
            arrays[f"{self.name}.bias"] = self.bias
        for key in ("pe", "simd"):
            if getattr(self, key, None) is not None:
                lines.append(f"{key} = {toml_value(getattr(self, key))}")
        if self.weight_memory != "rom":
            lines.append(f"weight_memory = {toml_value(self.weight_memory)}")
        if self.mac != "auto":
            lines.append(f"mac = {toml_value(self.mac)}")
        return lines, arrays

    def arrays(self) -> list[tuple[str, np.ndarray]]:
        rq = self.requantize
        found = []
        for suffix, array in (("weights", self.weights), ("thresholds", self.thresholds),
                              ("bias", self.bias),
                              ("multiplier", rq.multiplier if rq is not None else None),
                              ("shift", rq.shift if rq is not None else None)):
            if array is not None:
                found.append((f"{self.name}.{suffix}", array))
        return found

    # -- golden -----------------------------------------------------------------------------
    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """``acc[..., o] = Σ_i x[..., i]·w[o, i] + bias[o]`` in exact 64-bit integers over the
        layer's input vectors ``x`` (for windowed kinds, their windows)."""
        acc = np.asarray(x, dtype=np.int64) @ self.matrix.astype(np.int64).T
        return acc if self.bias is None else acc + self.bias

    def quantize_output(self, acc: np.ndarray) -> np.ndarray:
        """Its output from its accumulators (channels on the last axis): thresholds,
        requantize or the raw accumulator."""
        if self.requantize is not None:
            rq = self.requantize
            return requantize(acc, rq.multiplier, rq.shift, *rq.range)
        return acc if self.thresholds is None else quantize_thresholds(acc, self.thresholds)

    def golden(self, x: np.ndarray) -> list[np.ndarray]:
        return [self.quantize_output(self.accumulate(x))]

    # -- cost -------------------------------------------------------------------------------
    def folded_plan(self, x: TensorType, y: TensorType, *, pe: int, simd: int, cycles: int,
                    macs: int, dsp: bool | None, in_lanes: int | None = None) -> LayerPlan:
        """The plan of a folded unit: ``pe`` outputs from ``simd`` inputs a cycle, its mac
        mapping, DSPs and output stage (SF = inputs per output / SIMD steps a group); it
        reads ``in_lanes`` (default SIMD) elements a beat."""
        mac = mac_kind(self, x, dsp)
        extra: dict = dict(output_steps=output_steps(self, x, self.in_features // simd))
        if mac == Mac.DSP:
            extra.update(dsps=layer_dsps(self, x, pe, simd), dsp_pack=layer_dsp_pack(self, x, pe))
        return LayerPlan(
            name=self.name, kind=self.kind, in_type=x, out_type=y, weight_bits=self.weight_bits,
            pe=pe, simd=simd, in_lanes=in_lanes or simd, out_lanes=pe, cycles=cycles, macs=macs,
            weight_memory_bits=self.weights.size * self.weight_bits, mac=mac, in_types=(x,),
            **extra)

    def folding(self, x: TensorType) -> tuple[int, int]:
        """(PE, SIMD) with the defaults resolved."""
        raise NotImplementedError

    def simd_options(self, x: TensorType) -> list[int | None]:
        """The SIMD values the kind allows (``[None]`` for a kind without SIMD)."""
        raise NotImplementedError

    def fold_options(self, inputs: Sequence[TensorType], *, dsps: bool, spram: bool,
                     keep: bool = False) -> list[dict]:
        """Every PE dividing its output channels × every SIMD of :meth:`simd_options`; its
        multi-bit products in logic or (``dsps``) on DSPs; its weights in ROM or
        (``spram``) SPRAM. With ``keep``, only what the spec leaves to hwgen varies
        (``pe``/``simd`` = ``"auto"``, ``mac = "auto"``); the rest stays as written."""
        x = inputs[0]
        products = self.weight_bits > 1 and not x.binary  # multi-bit: logic or DSPs
        macs = (["lut", "dsp"] if dsps else ["lut"]) if products else ["auto"]
        memories = ["rom", "spram"] if spram else ["rom"]
        pes, simds = divisors(self.out_features), self.simd_options(x)
        if keep:
            if not is_auto(self.pe):
                pes = [self.folding(x)[0]]
            if not is_auto(getattr(self, "simd", None)) and simds != [None]:
                simds = [self.folding(x)[1]]
            macs = macs if self.mac == "auto" else [self.mac]
            memories = [self.weight_memory]
        # a kind without SIMD (depthwise) has no such field to replace
        return [{"pe": pe, **({} if simd is None else {"simd": simd}), "mac": mac,
                 "weight_memory": memory}
                for pe in pes for simd in simds for mac in macs for memory in memories]

    def leaves_folding(self) -> bool:
        """Whether the spec leaves its ``pe`` or ``simd`` to hwgen (``"auto"``)."""
        return is_auto(self.pe) or is_auto(getattr(self, "simd", None))

    def held(self, lp: LayerPlan) -> int:
        """Its two buffered input vectors (a window of every channel where channels do not
        share inputs) and its pipeline's groups in flight."""
        ratio = max(1, -(-lp.in_type.size // max(1, lp.out_type.size)))
        vector = self.in_features if self.shares_inputs else self.in_features * self.out_features
        return 2 * vector + (lp.depth + 4) * (lp.pe or 1) * ratio
