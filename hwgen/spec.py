"""Networks as typed layers: the dataclasses a Python user builds, and the TOML + NPZ loader.

A :class:`Network` is an :class:`Input` and a chain of layers. Constructing one validates it
completely (every field's type and range, shapes chain, weights in range, foldings divide) and
infers every tensor's :class:`~hwgen.numeric.TensorType`; a problem raises :class:`SpecError`
naming the file and field. The input and layer dataclasses are plain values: the network
checks them, by the same code for a Python user and the TOML loader (which only maps TOML
tables to them), and stores NumPy scalars as Python ones. :func:`save` writes what
:func:`load` reads back as an equal network. docs/spec.md documents the TOML schema, the
limits and the numeric contract.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
import tomllib
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from .numeric import TensorType, dot_bounds, value_range, width_for

__all__ = [
    "SpecError",
    "Input",
    "Requantize",
    "Dense",
    "Conv2d",
    "DepthwiseConv2d",
    "MaxPool",
    "GlobalSumPool",
    "Add",
    "Flatten",
    "Argmax",
    "Layer",
    "same_padding",
    "Network",
    "LAYER_KINDS",
    "INPUT",
    "WEIGHT_MEMORIES",
    "MAC_KINDS",
    "DSP_OPERAND_BITS",
    "DSP_MIN_PRODUCT_BITS",
    "dsp_operand_problem",
    "dsp_product_problem",
    "dsp_packing",
    "packed_operand_bits",
    "layer_dsp_pack",
    "REQUANTIZE_PRODUCT_BITS",
    "load",
    "load_npz",
    "save",
    "MAX_ELEMENTS",
    "MAX_NAME",
]


class SpecError(Exception):
    """A network description that cannot be built, located by source (file) and field."""

    def __init__(self, source: str, field: str, message: str):
        self.source, self.field, self.message = source, field, message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: {self.field}" if self.field else self.source
        return _printable(f"{where}: {self.message}")  # one line, whatever the names hold


@dataclass(frozen=True)
class Where:
    """Names the spec and weights sources and the field prefix of the layer being checked."""

    spec: str
    arrays: str
    prefix: str

    def spec_error(self, key: str, message: str) -> SpecError:
        return SpecError(self.spec, f"{self.prefix}.{key}" if self.prefix else key, message)

    def array_error(self, key: str, message: str) -> SpecError:
        return SpecError(self.arrays, key, message)


_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: Longest network or layer name: names become Verilog identifiers (the top module, ports such
#: as ``tap_<layer>_fire``) and file and folder names (``build/<network>-<board>``).
MAX_NAME = 64
#: Most elements the weights file may hold, all its arrays together, and most elements of any
#: tensor of a network (its input and every layer's output). The NPZ's .npy headers are checked
#: against it before any array is read. The largest shipped design (cnv_w1a1) holds 1.5 million
#: weights; no Lattice FPGA hwgen targets stores more than a few million bits.
MAX_ELEMENTS = 1 << 24
#: Largest TOML file :func:`load` reads.
MAX_TOML_BYTES = 1 << 20
#: Most dimensions of the network input: (N,), (H, W) or (H, W, C).
MAX_INPUT_DIMS = 3


def _show(value: object, limit: int = 60) -> str:
    """``repr(value)`` for a message, shortened when long (a field may hold a huge value)."""
    try:
        text = repr(value)
    except RecursionError:  # a deeply nested list
        text = f"<a deeply nested {type(value).__name__}>"
    if len(text) > limit:
        size = f", {len(value):,} items" if isinstance(value, list | tuple | dict) else ""
        size = f", {len(value):,} characters" if isinstance(value, str) else size
        text = f"{text[:limit]}… ({type(value).__name__}{size})"
    return text


def _reason(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line for a message."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    if not isinstance(exc, OSError | ValueError) or not str(exc):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[:limit] + "…"


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so that a message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _is_int(value: object) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def _check_name(value: object, key: str, where: Where | None = None,
                source: str = "") -> str:
    """A network or layer name: a lower-case identifier of at most :data:`MAX_NAME`
    characters (it becomes Verilog identifiers and file names)."""
    if isinstance(value, str) and _NAME.fullmatch(value) and len(value) <= MAX_NAME:
        return value
    if isinstance(value, str) and _NAME.fullmatch(value):
        message = f"{len(value)} characters, at most {MAX_NAME} (the name becomes Verilog " \
                  f"identifiers and file names): {_show(value)}"
    else:
        message = f"expected a lower-case identifier ([a-z][a-z0-9_]*), got {_show(value)}"
    if where is None:
        raise SpecError(source, key, message)
    raise where.spec_error(key, message)


def _check_bool(value: object, key: str, where: Where) -> bool:
    if not _is_bool(value):
        raise where.spec_error(key, f"expected true or false, got {_show(value)}")
    return bool(value)


def _check_choice(value: object, key: str, where: Where, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise where.spec_error(key, f"expected one of {', '.join(map(repr, choices))}, got "
                               f"{_show(value)}")
    return value


def _check_inputs(value: object, where: Where) -> tuple[str, ...]:
    """A layer's ``inputs``: a tuple or list of tensor names (maybe empty)."""
    if not isinstance(value, tuple | list) or not all(isinstance(v, str) for v in value):
        raise where.spec_error("inputs", f"expected a list of tensor names, got "
                               f"{_show(value)}")
    return tuple(value)


def _check_int_array(a: object, key: str, where: Where, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise where.array_error(key, f"expected a NumPy integer array, got {type(a).__name__}")
    if not np.issubdtype(a.dtype, np.integer):
        raise where.array_error(key, f"dtype {a.dtype}, expected an integer dtype")
    if np.issubdtype(a.dtype, np.unsignedinteger) and a.size \
            and int(a.max()) > np.iinfo(np.int64).max:
        raise where.array_error(key, f"value {int(a.max())} does not fit in 64-bit signed "
                                f"integers")
    if a.shape != shape:
        raise where.array_error(key, f"shape {a.shape}, expected {shape}")
    return a.astype(np.int64)


def _check_positive(value: object, key: str, where: Where) -> int:
    """A positive integer (a NumPy integer is taken as the Python int of its value)."""
    if not _is_int(value) or value < 1:
        raise where.spec_error(key, f"expected a positive integer, got {_show(value)}")
    return int(value)


def _check_bits(value: object, key: str, where: Where, lo: int = 1, hi: int = 16,
                note: str = "") -> int:
    if not _is_int(value) or not lo <= value <= hi:
        raise where.spec_error(key, f"expected an integer {lo}..{hi}{note}, got {_show(value)}")
    return int(value)


def _set(obj: object, name: str, value: object) -> None:
    """Store a checked (normalized) field on a frozen spec dataclass."""
    if getattr(obj, name) is not value:
        object.__setattr__(obj, name, value)


@dataclass(frozen=True, eq=False)
class Input:
    """The network input: ``shape`` elements of ``bits`` bits, streamed ``lanes`` per beat.

    ``bits == 1`` is a binary (±1) input; otherwise values are unsigned unless ``signed``.
    ``lanes`` (elements per beat) must divide the last dimension; ``None`` lets the network
    choose (the first layer's SIMD).
    """

    shape: tuple[int, ...]
    bits: int
    signed: bool = False
    lanes: int | None = None

    def check(self, where: Where) -> TensorType:
        """Every field checked (NumPy integers and bools stored as Python ones); the input's
        tensor type."""
        if not isinstance(self.shape, tuple) or not self.shape:
            raise where.spec_error("shape", f"expected a list of positive integers, got "
                                   f"{_show(self.shape)}")
        if len(self.shape) > MAX_INPUT_DIMS:
            raise where.spec_error("shape", f"{len(self.shape)} dimensions, expected 1 to "
                                   f"{MAX_INPUT_DIMS}: (N,), (H, W) or (H, W, C)")
        shape = tuple(_check_positive(dim, "shape", where) for dim in self.shape)
        if math.prod(shape) > MAX_ELEMENTS:
            raise where.spec_error("shape", f"{shape} has {math.prod(shape):,} elements, more "
                                   f"than the {MAX_ELEMENTS:,} a tensor may hold")
        _set(self, "shape", shape)
        _set(self, "bits", _check_bits(self.bits, "bits", where))
        _set(self, "signed", _check_bool(self.signed, "signed", where))
        if self.lanes is not None:
            _set(self, "lanes", _check_positive(self.lanes, "lanes", where))
            if shape[-1] % self.lanes:
                raise where.spec_error("lanes", f"{self.lanes} does not divide the last "
                                       f"dimension {shape[-1]} of the input")
        return TensorType(shape, self.bits, self.signed)


#: Signed bits that every reachable ``acc·multiplier + rounding`` of a requantize fits in.
REQUANTIZE_PRODUCT_BITS = 48
#: Largest requantize shift.
MAX_SHIFT = REQUANTIZE_PRODUCT_BITS - 1


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


def _threshold_bits(thresholds: np.ndarray | None) -> int | None:
    """n for 2**n − 1 thresholds per channel; ``None`` without thresholds."""
    return None if thresholds is None else int(thresholds.shape[1] + 1).bit_length() - 1


@dataclass(frozen=True, eq=False)
class Dense:
    """Fully connected layer: ``acc[o] = Σ_i x[i]·weights[o, i] + bias[o]``.

    ``weights`` (out × in) holds values: ±1 when ``weight_bits == 1`` (XNOR-popcount with
    binary inputs), otherwise signed ``weight_bits``-bit integers. With ``thresholds``
    (out × 2**n − 1, each row ascending) the output is ``#{t : acc ≥ thresholds[o, t]}``, an
    n-bit unsigned value (n = 1: binary, bit 1 meaning +1); without, the raw accumulator leaves
    the layer as an integer of the smallest type holding every reachable value (a classifier's
    scores). With ``requantize`` instead of thresholds, the accumulator is scaled, shifted and
    clamped to ``requantize.bits`` (see :class:`Requantize`). ``pe`` output channels are
    computed in parallel from ``simd`` input elements per cycle. ``weight_memory`` is where the
    weights live: ``"rom"`` (block RAM or logic, set by the bitstream) or ``"spram"`` (the
    UP5K's single-port RAMs, loaded after configuration; docs/protocol.md). ``mac`` maps the
    multi-bit products: ``"lut"`` (logic), ``"dsp"`` (the device's multiplier blocks) or
    ``"auto"`` (hwgen chooses; see :func:`hwgen.plan.mac_mapping`); a layer with binary
    weights or inputs has no products and must leave it ``"auto"``.
    """

    kind: ClassVar[str] = "dense"

    name: str
    weights: np.ndarray
    weight_bits: int
    thresholds: np.ndarray | None = None
    bias: np.ndarray | None = None
    pe: int | None = None
    simd: int | None = None
    inputs: tuple[str, ...] = ()
    weight_memory: str = "rom"
    requantize: Requantize | None = None
    mac: str = "auto"

    @property
    def out_features(self) -> int:
        return int(self.weights.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.weights.shape[1])

    @property
    def out_bits(self) -> int | None:
        """Output bits when thresholded or requantized, ``None`` for raw accumulator output."""
        if self.requantize is not None:
            return self.requantize.bits
        return _threshold_bits(self.thresholds)

    def acc_bounds(self, x: TensorType) -> tuple[np.ndarray, np.ndarray]:
        """Per output channel, the reachable accumulator range (bias included)."""
        lo, hi = dot_bounds(self.weights, *x.range)
        if self.bias is not None:
            lo, hi = lo + self.bias, hi + self.bias
        return lo, hi

    def output_type(self, x: TensorType, where: Where) -> TensorType:
        if len(x.shape) != 1:
            raise where.spec_error("kind", f"dense needs a 1-D input, got shape {x.shape} "
                                   f"(add a flatten layer)")
        w = self.weights
        if isinstance(w, np.ndarray) and w.ndim == 2 and w.shape[1] != x.size:
            raise where.array_error(f"{self.name}.weights", f"shape {w.shape} does not chain: "
                                    f"the layer's input has {x.size} elements, expected "
                                    f"({w.shape[0]}, {x.size})")
        if not isinstance(w, np.ndarray) or w.ndim != 2 or w.shape[0] < 1:
            got = w.shape if isinstance(w, np.ndarray) else type(w).__name__
            raise where.array_error(f"{self.name}.weights", f"expected a 2-D (out_features, "
                                    f"{x.size}) integer array, got {got}")
        out_bits, signed = _check_matrix_layer(self, w, x, where, simd_divides=x.size,
                                               simd_what="in_features")
        return TensorType((self.out_features,), out_bits, signed)


def _check_matrix_layer(layer, w: np.ndarray, x: TensorType, where: Where, *,
                        simd_divides: int = 0, simd_what: str = "",
                        pe_what: str = "out_features") -> tuple[int, bool]:
    """Shared checks of a layer with weights per output channel (dense, conv2d,
    depthwise_conv2d): weight range, bias, thresholds, folding. Stores the checked int64 arrays
    on the layer and returns the output element's (bits, signed). ``w`` is the weights array as
    given; its first axis is the output channel. ``pe_what`` names the output channels in the
    message when ``pe`` does not divide them; a layer without ``simd`` skips that check."""
    key = f"{layer.name}.weights"
    _set(layer, "weight_bits", _check_bits(layer.weight_bits, "weight_bits", where))
    w = _check_int_array(w, key, where, w.shape)
    if layer.weight_bits == 1:
        bad = ~np.isin(w, (-1, 1))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise where.array_error(key, f"1-bit weights must be -1 or +1, found "
                                    f"{int(w[idx])} at {idx}")
    else:
        lo, hi = value_range(layer.weight_bits, True)
        bad = (w < lo) | (w > hi)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise where.array_error(key, f"{layer.weight_bits}-bit weights must lie in "
                                    f"{lo}..{hi}, found {int(w[idx])} at {idx}")
    object.__setattr__(layer, "weights", w)
    out = int(w.shape[0])
    if layer.bias is not None:
        b = _check_int_array(layer.bias, f"{layer.name}.bias", where, (out,))
        if ((b >= 1 << 31) | (b <= -(1 << 31))).any():
            raise where.array_error(f"{layer.name}.bias", "bias values must fit in 32 bits")
        object.__setattr__(layer, "bias", b)
    reach = int(np.abs(w.reshape(out, -1)).sum(axis=1).max()) * max(-x.range[0], x.range[1])
    reach += int(np.abs(layer.bias).max()) if layer.bias is not None else 0
    if reach >= 1 << 63:  # every partial sum of the golden model's int64 dot products is exact
        raise SpecError(where.spec, where.prefix, f"accumulators reach ±{reach} "
                        f"({x.describe()} inputs × {layer.weight_bits}-bit weights), beyond "
                        f"64-bit signed integers; quantize the input (thresholds or "
                        f"requantize on the layer before)")
    _check_choice(layer.weight_memory, "weight_memory", where, WEIGHT_MEMORIES)
    if layer.pe is not None:
        _set(layer, "pe", _check_positive(layer.pe, "pe", where))
        if out % layer.pe:
            raise where.spec_error("pe", f"{layer.pe} does not divide {pe_what} {out}")
    if getattr(layer, "simd", None) is not None:
        _set(layer, "simd", _check_positive(layer.simd, "simd", where))
        if simd_divides % layer.simd:
            raise where.spec_error("simd", f"{layer.simd} does not divide {simd_what} "
                                   f"{simd_divides}")
    _check_choice(layer.mac, "mac", where, MAC_KINDS)
    if layer.mac != "auto" and (layer.weight_bits == 1 or x.binary):
        raise where.spec_error("mac", f"{layer.mac!r}: the layer has no multiplications "
                               f"({'binary weights' if layer.weight_bits == 1 else 'binary inputs'}"
                               f" take an add/subtract or XNOR path); leave mac = \"auto\"")
    if layer.mac == "dsp" and dsp_operand_problem(x, layer.weight_bits):
        raise where.spec_error("mac", f'"dsp": {dsp_operand_problem(x, layer.weight_bits)}')
    if layer.mac == "dsp" and dsp_product_problem(layer, x, layer.pe or 1):
        raise where.spec_error("mac", f'"dsp": {dsp_product_problem(layer, x, layer.pe or 1)}'
                               f'; use "lut"')
    if layer.requantize is not None:
        if layer.thresholds is not None:
            raise where.spec_error("requantize", "a layer has thresholds or requantize, not "
                                   "both")
        _check_requantize(layer, out, x, where)
        return layer.requantize.bits, bool(layer.requantize.signed)
    if layer.thresholds is None:
        lo, hi = layer.acc_bounds(x)
        return width_for(int(lo.min()), int(hi.max()))
    object.__setattr__(layer, "thresholds", _check_thresholds(layer, out, where))
    return layer.out_bits, False


def _check_requantize(layer, channels: int, x: TensorType, where: Where) -> None:
    """``layer.requantize`` checked: bits, signedness, one multiplier and shift per channel,
    and no reachable ``acc·multiplier + rounding`` beyond :data:`REQUANTIZE_PRODUCT_BITS`."""
    rq = layer.requantize
    if not isinstance(rq, Requantize):
        raise where.spec_error("requantize", f"expected a hwgen.spec.Requantize, got "
                               f"{type(rq).__name__}")
    bits = _check_bits(rq.bits, "out_bits", where, 2, 16, " for a requantized output (1-bit "
                       "outputs use thresholds)")
    signed = _check_bool(rq.signed, "out_signed", where)
    m = _check_int_array(rq.multiplier, f"{layer.name}.multiplier", where, (channels,))
    s = _check_int_array(rq.shift, f"{layer.name}.shift", where, (channels,))
    for key, values, lo, hi in (("multiplier", m, -(1 << 31) + 1, (1 << 31) - 1),
                                ("shift", s, 0, MAX_SHIFT)):
        bad = np.argwhere((values < lo) | (values > hi))
        if len(bad):
            o = int(bad[0][0])
            raise where.array_error(f"{layer.name}.{key}", f"must lie in {lo}..{hi}, found "
                                    f"{int(values[o])} at channel {o}")
    acc_lo, acc_hi = layer.acc_bounds(x)
    for o, (lo, hi, mo, so) in enumerate(zip(acc_lo.tolist(), acc_hi.tolist(), m.tolist(),
                                             s.tolist(), strict=True)):
        reach = max(abs(lo * mo), abs(hi * mo)) + (1 << so >> 1)  # Python ints: exact
        if reach >= 1 << (REQUANTIZE_PRODUCT_BITS - 1):
            raise where.array_error(f"{layer.name}.multiplier", f"requantize overflows at "
                                    f"channel {o}: acc·multiplier reaches ±{reach} (acc in "
                                    f"{lo}..{hi}, multiplier {mo}), beyond "
                                    f"{REQUANTIZE_PRODUCT_BITS}-bit signed; use a smaller "
                                    f"multiplier and shift")
    object.__setattr__(layer, "requantize", Requantize(m, s, bits, signed))


def _check_thresholds(layer, channels: int, where: Where) -> np.ndarray:
    """``layer.thresholds`` checked as a (channels, 2**n − 1) array ascending along rows."""
    key = f"{layer.name}.thresholds"
    t = layer.thresholds
    if not isinstance(t, np.ndarray) or t.ndim != 2 or t.shape[0] != channels:
        got = f"shape {t.shape}" if isinstance(t, np.ndarray) else type(t).__name__
        raise where.array_error(key, f"expected an ({channels}, 2**out_bits - 1) integer "
                                f"array, got {got}")
    count = t.shape[1]
    if count < 1 or count > 255 or (count + 1) & count:
        raise where.array_error(key, f"{count} thresholds per channel, expected 2**n - 1 "
                                f"for an n-bit output (1, 3, 7, ... 255)")
    t = _check_int_array(t, key, where, t.shape)
    unsorted = np.argwhere(np.diff(t, axis=1) < 0)
    if len(unsorted):
        o, i = (int(v) for v in unsorted[0])
        raise where.array_error(key, f"thresholds must ascend along each row; row {o} "
                                f"has {int(t[o, i])} before {int(t[o, i + 1])}")
    return t


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of one dimension for "same": ceil(size / stride) outputs, the
    odd pixel of padding after (the TensorFlow convention)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _check_kernel_size(w: object, key: str, where: Where) -> None:
    """Refuses the weights of a sliding-window layer whose kernel is 0×0."""
    if isinstance(w, np.ndarray) and w.ndim >= 3 and w.shape[1] == w.shape[2] == 0:
        raise where.array_error(key, f"shape {w.shape}: a 0×0 kernel, expected k ≥ 1")


class _Window:
    """What the sliding-window layers (conv2d, depthwise_conv2d) share: padding geometry and the
    checks of stride, padding and pad value against the input."""

    def pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) padding for an input of ``height`` × ``width``."""
        if self.padding == "valid":
            return 0, 0, 0, 0
        top, bottom = same_padding(height, self.kernel, self.stride)
        left, right = same_padding(width, self.kernel, self.stride)
        return top, left, bottom, right

    def _check_window(self, x: TensorType, where: Where) -> tuple[int, int]:
        """Stride, padding, pad value, kernel size and stride fit checked against the
        (H, W, C) input ``x`` (the kernel comes from weights already checked); returns the
        output's (height, width)."""
        h, w_, _ = x.shape
        _set(self, "stride", _check_positive(self.stride, "stride", where))
        if not isinstance(self.padding, str) or self.padding not in ("valid", "same"):
            raise where.spec_error("padding", f'expected "valid" or "same", got '
                                   f"{_show(self.padding)}")
        lo, hi = x.range
        expected = "-1 or +1 (binary input)" if x.binary else f"an integer in {lo}..{hi}"
        if not _is_int(self.pad_value):  # checked even where unused: save() writes it
            raise where.spec_error("pad_value", f"expected {expected}, got "
                                   f"{_show(self.pad_value)}")
        _set(self, "pad_value", int(self.pad_value))
        padded = self.padding == "same" and any(self.pads(h, w_))
        if padded and (not lo <= self.pad_value <= hi or (x.binary and self.pad_value == 0)):
            raise where.spec_error("pad_value", f"expected {expected}, got {self.pad_value!r}")
        k = self.kernel
        top, left, bottom, right = self.pads(h, w_)
        if k > h + top + bottom or k > w_ + left + right:
            raise where.spec_error("kind", f"kernel {k}×{k} is larger than the padded input "
                                   f"{h + top + bottom}×{w_ + left + right}")
        if self.stride > max(h + top + bottom, w_ + left + right):
            raise where.spec_error("stride", f"{self.stride} is larger than the padded input "
                                   f"{h + top + bottom}×{w_ + left + right}")
        # rows and columns past the last window are read and dropped, as TensorFlow and
        # PyTorch do (floor((H + pads − k) / s) + 1 outputs)
        return ((h + top + bottom - k) // self.stride + 1,
                (w_ + left + right - k) // self.stride + 1)


@dataclass(frozen=True, eq=False)
class Conv2d(_Window):
    """2-D convolution on a channels-last (H, W, C) tensor, one output per window position.

    ``acc[y, x, o] = Σ_{ky, kx, c} xp[y·s + ky, x·s + kx, c]·weights[o, ky, kx, c] + bias[o]``
    where ``xp`` is the input padded with ``pad_value`` (a value of the input's type: ±1 for
    binary inputs). ``padding`` is ``"valid"`` (none) or ``"same"`` (``ceil(H / s)`` output rows,
    see :func:`same_padding`). Weights, bias, ``pe``, ``mac`` and output quantization
    (thresholds, requantize or none) are as in :class:`Dense` with ``k·k·C`` inputs per output;
    ``simd`` must divide C.
    """

    kind: ClassVar[str] = "conv2d"

    name: str
    weights: np.ndarray
    weight_bits: int
    stride: int = 1
    padding: str = "valid"
    pad_value: int = 0
    thresholds: np.ndarray | None = None
    bias: np.ndarray | None = None
    pe: int | None = None
    simd: int | None = None
    inputs: tuple[str, ...] = ()
    weight_memory: str = "rom"
    requantize: Requantize | None = None
    mac: str = "auto"

    @property
    def kernel(self) -> int:
        return int(self.weights.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weights.shape[0])

    @property
    def in_features(self) -> int:
        """Inputs per output value: k·k·C."""
        return int(np.prod(self.weights.shape[1:]))

    @property
    def matrix(self) -> np.ndarray:
        """The weights as an (O, k·k·C) matrix, columns in (ky, kx, c) order."""
        return self.weights.reshape(self.weights.shape[0], -1)

    out_bits = Dense.out_bits

    def acc_bounds(self, x: TensorType) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = dot_bounds(self.matrix, *x.range)
        if self.bias is not None:
            lo, hi = lo + self.bias, hi + self.bias
        return lo, hi

    def output_type(self, x: TensorType, where: Where) -> TensorType:
        if len(x.shape) != 3:
            raise where.spec_error("kind", f"conv2d needs an (H, W, C) input, got shape "
                                   f"{x.shape}")
        c = x.shape[2]
        key = f"{self.name}.weights"
        w = self.weights
        if not isinstance(w, np.ndarray) or w.ndim != 4 or w.shape[1] != w.shape[2] \
                or w.shape[3] != c or w.shape[0] < 1 or w.shape[1] < 1:
            _check_kernel_size(w, key, where)
            got = w.shape if isinstance(w, np.ndarray) else type(w).__name__
            raise where.array_error(key, f"expected an (out_channels, k, k, {c}) integer "
                                    f"array, got {got}")
        ho, wo = self._check_window(x, where)
        bits, signed = _check_matrix_layer(self, w, x, where, simd_divides=c,
                                           simd_what="in_channels")
        return TensorType((ho, wo, self.out_features), bits, signed)


@dataclass(frozen=True, eq=False)
class DepthwiseConv2d(_Window):
    """Depthwise 2-D convolution on a channels-last (H, W, C) tensor: one k×k filter per
    channel, C channels out.

    ``acc[y, x, c] = Σ_{ky, kx} xp[y·s + ky, x·s + kx, c]·weights[c, ky, kx] + bias[c]``
    with ``xp`` the input padded as in :class:`Conv2d` (``padding``, ``pad_value``, ``stride``
    alike). ``weights`` is (C, k, k); weight bits, bias, ``mac``, ``weight_memory`` and the
    output (thresholds, requantize or the raw accumulator) are as in :class:`Dense`, per
    channel, with ``k·k`` inputs per output. ``pe`` channels are computed in parallel (it must
    divide C), one kernel position per cycle: the layer has no ``simd``. Binary weights on
    binary inputs take the XNOR-popcount path.
    """

    kind: ClassVar[str] = "depthwise_conv2d"

    name: str
    weights: np.ndarray
    weight_bits: int
    stride: int = 1
    padding: str = "valid"
    pad_value: int = 0
    thresholds: np.ndarray | None = None
    bias: np.ndarray | None = None
    pe: int | None = None
    inputs: tuple[str, ...] = ()
    weight_memory: str = "rom"
    requantize: Requantize | None = None
    mac: str = "auto"

    @property
    def kernel(self) -> int:
        return int(self.weights.shape[1])

    @property
    def channels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def out_features(self) -> int:
        """Output channels: the input's channels."""
        return self.channels

    @property
    def in_features(self) -> int:
        """Inputs per output value: k·k."""
        return int(np.prod(self.weights.shape[1:]))

    @property
    def matrix(self) -> np.ndarray:
        """The filters as a (C, k·k) matrix, columns in (ky, kx) order."""
        return self.weights.reshape(self.weights.shape[0], -1)

    out_bits = Dense.out_bits

    acc_bounds = Conv2d.acc_bounds

    def output_type(self, x: TensorType, where: Where) -> TensorType:
        if len(x.shape) != 3:
            raise where.spec_error("kind", f"depthwise_conv2d needs an (H, W, C) input, got "
                                   f"shape {x.shape}")
        c = x.shape[2]
        w = self.weights
        if not isinstance(w, np.ndarray) or w.ndim != 3 or w.shape[1] != w.shape[2] \
                or w.shape[0] != c or w.shape[1] < 1:
            _check_kernel_size(w, f"{self.name}.weights", where)
            got = w.shape if isinstance(w, np.ndarray) else type(w).__name__
            raise where.array_error(f"{self.name}.weights", f"expected a ({c}, k, k) integer "
                                    f"array (one k×k filter per input channel), got {got}")
        ho, wo = self._check_window(x, where)
        bits, signed = _check_matrix_layer(self, w, x, where, pe_what="channels")
        return TensorType((ho, wo, c), bits, signed)


@dataclass(frozen=True, eq=False)
class MaxPool:
    """Max over ``size``×``size`` windows moved by ``stride`` (default ``size``), no padding;
    on a binary tensor this is OR (+1 wins)."""

    kind: ClassVar[str] = "maxpool"

    name: str
    size: int
    stride: int | None = None
    inputs: tuple[str, ...] = ()

    def output_type(self, x: TensorType, where: Where) -> TensorType:
        if len(x.shape) != 3:
            raise where.spec_error("kind", f"maxpool needs an (H, W, C) input, got shape "
                                   f"{x.shape}")
        _set(self, "size", _check_positive(self.size, "size", where))
        if self.stride is not None:
            _set(self, "stride", _check_positive(self.stride, "stride", where))
        stride = self.stride if self.stride is not None else self.size
        h, w, c = x.shape
        if self.size > h or self.size > w:
            raise where.spec_error("size", f"window {self.size}×{self.size} is larger than "
                                   f"the input {h}×{w}")
        if stride > max(h, w):
            raise where.spec_error("stride", f"{stride} is larger than the input {h}×{w}")
        ho, wo = (h - self.size) // stride + 1, (w - self.size) // stride + 1
        return TensorType((ho, wo, c), x.bits, x.signed)


@dataclass(frozen=True, eq=False)
class GlobalSumPool:
    """Per-channel sum over every position of an (H, W, C) tensor → (C,) integers; binary
    elements count as ±1. The output type is the smallest integer holding H·W·[lo, hi]."""

    kind: ClassVar[str] = "global_sum_pool"

    name: str = "global_sum_pool"
    inputs: tuple[str, ...] = ()

    def output_type(self, x: TensorType, where: Where) -> TensorType:
        if len(x.shape) != 3:
            raise where.spec_error("kind", f"global_sum_pool needs an (H, W, C) input, got "
                                   f"shape {x.shape}")
        positions = x.shape[0] * x.shape[1]
        lo, hi = x.range
        bits, signed = width_for(positions * lo, positions * hi)
        return TensorType((x.shape[2],), bits, signed)


@dataclass(frozen=True, eq=False)
class Flatten:
    """(H, W, C) → (H·W·C,) in channels-last order; the stream is unchanged."""

    kind: ClassVar[str] = "flatten"

    name: str = "flatten"
    inputs: tuple[str, ...] = ()

    def output_type(self, x: TensorType, where: Where) -> TensorType:
        return TensorType((x.size,), x.bits, x.signed)


@dataclass(frozen=True, eq=False)
class Argmax:
    """Index of the largest score of a 1-D integer input; ties go to the lowest index."""

    kind: ClassVar[str] = "argmax"

    name: str = "argmax"
    inputs: tuple[str, ...] = ()

    def output_type(self, x: TensorType, where: Where) -> TensorType:
        if len(x.shape) != 1:
            raise where.spec_error("kind", f"argmax needs a 1-D input, got shape {x.shape}")
        bits, _ = width_for(0, x.size - 1)
        return TensorType((1,), bits, False)


@dataclass(frozen=True, eq=False)
class Add:
    """Element-wise sum of two tensors of one shape (binary elements count as ±1), then, with
    ``thresholds`` (C × 2**n − 1, per channel = last axis), the n-bit count of thresholds
    reached as in :class:`Dense`; without, the raw sum as the smallest integer type holding
    it. ``inputs`` names the two tensors (layer names or ``"input"``)."""

    kind: ClassVar[str] = "add"

    name: str
    inputs: tuple[str, ...] = ()
    thresholds: np.ndarray | None = None

    @property
    def out_bits(self) -> int | None:
        return _threshold_bits(self.thresholds)

    def output_type(self, x: TensorType, where: Where, other: TensorType) -> TensorType:
        if x.shape != other.shape:
            raise where.spec_error("inputs", f"add needs two tensors of one shape, got "
                                   f"{self.inputs[0]} {x.shape} and {self.inputs[1]} "
                                   f"{other.shape}")
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", _check_thresholds(self, x.shape[-1], where))
            return TensorType(x.shape, self.out_bits, False)
        bits, signed = width_for(x.range[0] + other.range[0], x.range[1] + other.range[1])
        return TensorType(x.shape, bits, signed)


Layer = Dense | Conv2d | DepthwiseConv2d | MaxPool | GlobalSumPool | Flatten | Add | Argmax

_LAYER_CLASSES = (Dense, Conv2d, DepthwiseConv2d, MaxPool, GlobalSumPool, Flatten, Add, Argmax)
LAYER_KINDS: dict[str, type] = {cls.kind: cls for cls in _LAYER_CLASSES}


def _layer_arrays(network: Network) -> list[tuple[str, np.ndarray]]:
    """Every checked array of the network's layers, by its NPZ key."""
    found = []
    for layer in network.layers:
        rq = getattr(layer, "requantize", None)
        for suffix, array in (("weights", getattr(layer, "weights", None)),
                              ("thresholds", getattr(layer, "thresholds", None)),
                              ("bias", getattr(layer, "bias", None)),
                              ("multiplier", rq.multiplier if rq is not None else None),
                              ("shift", rq.shift if rq is not None else None)):
            if array is not None:
                found.append((f"{layer.name}.{suffix}", array))
    return found


def _check_tensor(t: TensorType, where: Where) -> None:
    """A layer's output fits the limits every tensor keeps: at most :data:`MAX_ELEMENTS`
    elements, values within 64-bit signed integers (the golden model computes in int64)."""
    if t.size > MAX_ELEMENTS:
        raise SpecError(where.spec, where.prefix, f"the output {t.shape} has {t.size:,} "
                        f"elements, more than the {MAX_ELEMENTS:,} a tensor may hold")
    lo, hi = t.range
    if lo < -(1 << 63) or hi >= 1 << 63:
        raise SpecError(where.spec, where.prefix, f"the output's values reach {lo}..{hi}, "
                        f"beyond 64-bit signed integers; quantize an earlier output "
                        f"(thresholds or requantize)")


#: The name by which layers refer to the network input in ``inputs``.
INPUT = "input"
#: Where a dense, conv2d or depthwise_conv2d layer's weights can live (``weight_memory``).
WEIGHT_MEMORIES = ("rom", "spram")
#: How a dense, conv2d or depthwise_conv2d layer's multi-bit products are mapped (``mac``).
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


def dsp_product_problem(layer: Dense | Conv2d | DepthwiseConv2d, x: TensorType,
                        pe: int) -> str | None:
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


def layer_dsp_pack(layer: Dense | Conv2d | DepthwiseConv2d, x: TensorType, pe: int) -> int:
    """:func:`dsp_packing` of a layer on DSPs; 1 for SPRAM weights, whose image has one layout
    whatever the mapping, and for depthwise_conv2d, whose channels never share an input
    element."""
    if layer.weight_memory != "rom" or isinstance(layer, DepthwiseConv2d):
        return 1
    return dsp_packing(x, layer.weight_bits, pe)


@dataclass(eq=False)
class Network:
    """A validated network: input, layers, and every tensor's type (``types[0]`` is the input).

    ``source`` and ``arrays_source`` name where the description and the integer arrays came
    from, for error messages; ``dataset`` optionally names an NPZ with a test split
    (``x`` values and ``y`` labels).
    """

    name: str
    input: Input
    layers: list[Layer]
    dataset: Path | None = None
    source: str = "<python>"
    arrays_source: str = "<python>"
    types: list[TensorType] = field(init=False)
    #: Each layer's input tensor names (layer names or ``"input"``), in port order.
    sources: list[tuple[str, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.source, self.arrays_source = str(self.source), str(self.arrays_source)
        _check_name(self.name, "name", source=self.source)
        if not isinstance(self.input, Input):
            raise SpecError(self.source, "input", f"expected a hwgen.spec.Input, got "
                            f"{type(self.input).__name__}")
        types = [self.input.check(Where(self.source, self.arrays_source, "input"))]
        if not isinstance(self.layers, list | tuple):
            raise SpecError(self.source, "layers", f"expected a list of layers, got "
                            f"{type(self.layers).__name__}")
        self.layers = list(self.layers)
        if not self.layers:
            raise SpecError(self.source, "layers", "a network needs at least one layer")
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, _LAYER_CLASSES):
                hint = (" (a TOML table; in Python build the layer, e.g. hwgen.spec.Dense(...))"
                        if isinstance(layer, dict) else "")
                raise SpecError(self.source, f"layers[{index}]", f"expected a layer ("
                                f"{', '.join(c.__name__ for c in _LAYER_CLASSES)}), got "
                                f"{type(layer).__name__}{hint}")
        if self.dataset is not None:
            if not isinstance(self.dataset, str | os.PathLike):
                raise SpecError(self.source, "dataset", f"expected a file name, got "
                                f"{_show(self.dataset)}")
            self.dataset = Path(self.dataset)
            if not self.dataset.name:
                raise SpecError(self.source, "dataset", f"expected a file name, got "
                                f"{_show(str(self.dataset))}")
        self.sources = self._resolve_sources()
        by_name = {INPUT: types[0]}
        for index, layer in enumerate(self.layers):
            where = Where(self.source, self.arrays_source, f"layers[{index}]")
            if isinstance(layer, Argmax) and index != len(self.layers) - 1:
                raise where.spec_error("kind", "argmax must be the last layer")
            x = [by_name[src] for src in self.sources[index]]
            y = layer.output_type(x[0], where, x[1]) if isinstance(layer, Add) \
                else layer.output_type(x[0], where)
            _check_tensor(y, where)
            types.append(y)
            by_name[layer.name] = y
        self.types = types
        self._check_array_total()

    def _check_array_total(self) -> None:
        """All the layers' arrays hold at most :data:`MAX_ELEMENTS` elements (what a weights
        file may hold), so that every network :func:`save` writes loads back."""
        total = 0
        for key, array in _layer_arrays(self):
            total += array.size
            if total > MAX_ELEMENTS:
                raise SpecError(self.arrays_source, key, f"the network's arrays hold more "
                                f"than the {MAX_ELEMENTS:,} elements a weights file may hold")

    def _resolve_sources(self) -> list[tuple[str, ...]]:
        """Each layer's input tensor names: its ``inputs``, or the previous layer (the network
        input for the first). Refuses bad names, forward references, cycles and tensors no
        layer reads."""
        names: dict[str, int] = {}
        for index, layer in enumerate(self.layers):
            where = Where(self.source, self.arrays_source, f"layers[{index}]")
            _check_name(layer.name, "name", where)
            _set(layer, "inputs", _check_inputs(layer.inputs, where))
            if layer.name == INPUT:
                raise where.spec_error("name", f"{INPUT!r} names the network input; choose "
                                       f"another layer name")
            if layer.name in names:
                raise where.spec_error("name", f"duplicate layer name {layer.name!r}")
            names[layer.name] = index
        sources = []
        for index, layer in enumerate(self.layers):
            where = Where(self.source, self.arrays_source, f"layers[{index}]")
            wanted = 2 if isinstance(layer, Add) else 1
            given = tuple(layer.inputs)
            if not given:
                if wanted == 2:
                    raise where.spec_error("inputs", "add needs two input tensors")
                given = (self.layers[index - 1].name if index else INPUT,)
            if len(given) != wanted:
                raise where.spec_error("inputs", f"expected {wanted} tensor name(s), got "
                                       f"{_show(list(given))}")
            for src in given:
                if src != INPUT and src not in names:
                    raise where.spec_error("inputs", f"unknown tensor {_show(src)} (expected "
                                           f"{INPUT!r} or a layer name)")
                if src != INPUT and names[src] >= index:
                    cycle = self._cycle_through(index, names)
                    if cycle:
                        raise where.spec_error("inputs", "the graph has a cycle: "
                                               + " → ".join(cycle))
                    raise where.spec_error("inputs", f"{_show(src)} is defined later (layers"
                                           f"[{names[src]}]); list layers in dataflow order")
            sources.append(given)
        read = {src for srcs in sources for src in srcs}
        for index, layer in enumerate(self.layers[:-1]):
            if layer.name not in read:
                where = Where(self.source, self.arrays_source, f"layers[{index}]")
                raise where.spec_error("name", f"the output of {layer.name!r} is read by no "
                                       f"layer (only the last layer's output leaves the "
                                       f"network)")
        if INPUT not in read:
            raise SpecError(self.source, "input", "no layer reads the network input")
        return sources

    def _cycle_through(self, start: int, names: dict[str, int]) -> list[str]:
        """A cycle of layer names through layer ``start``, or [] when there is none."""
        def inputs_of(i: int) -> list[int]:
            layer = self.layers[i]
            given = tuple(layer.inputs) or ((self.layers[i - 1].name,) if i else ())
            return [names[g] for g in given if g in names]

        path: list[int] = []

        def walk(i: int) -> bool:
            if i in path:
                path.append(i)
                return i == start
            path.append(i)
            if any(walk(j) for j in inputs_of(i)):
                return True
            path.pop()
            return False

        if not walk(start):
            return []
        return [self.layers[i].name for i in reversed(path)]

    @property
    def input_type(self) -> TensorType:
        return self.types[0]

    @property
    def output_type(self) -> TensorType:
        return self.types[-1]

    def type_of(self, tensor: str) -> TensorType:
        """The type of a tensor: ``"input"`` or a layer's output."""
        if tensor == INPUT:
            return self.types[0]
        return self.types[1 + [layer.name for layer in self.layers].index(tensor)]

    def layer_io(self) -> list[tuple[Layer, TensorType, TensorType]]:
        """Each layer with its (first) input and its output tensor types."""
        return [(layer, self.type_of(self.sources[i][0]), self.types[i + 1])
                for i, layer in enumerate(self.layers)]

    @property
    def is_chain(self) -> bool:
        """Every layer reads the previous one (no branches, no add)."""
        return all(src == ((self.layers[i - 1].name,) if i else (INPUT,))
                   for i, src in enumerate(self.sources))


# ---------------------------------------------------------------------------------------------
# TOML + NPZ

_INPUT_KEYS = {"shape", "bits", "signed", "lanes"}
_TOP_KEYS = {"name", "weights", "input", "layers", "dataset"}
_DENSE_KEYS = {"name", "kind", "out_features", "weight_bits", "output", "out_bits",
               "out_signed", "bias", "pe", "simd", "weight_memory", "mac"}
_CONV_KEYS = _DENSE_KEYS | {"kernel", "stride", "padding", "pad_value"}
_DEPTHWISE_KEYS = _CONV_KEYS - {"out_features", "simd"}
_ARGMAX_KEYS = {"name", "kind"}


def _check_keys(table: dict, allowed: set[str], source: str, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            name = f"{prefix}.{key}" if prefix else key
            raise SpecError(source, name, f"unknown field (expected one of: "
                            f"{', '.join(sorted(allowed))})")


def _require(table: dict, key: str, kind: type | tuple, source: str, prefix: str):
    name = f"{prefix}.{key}" if prefix else key
    if key not in table:
        raise SpecError(source, name, "missing")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(
            k.__name__ for k in kind)
        raise SpecError(source, name, f"expected {expected}, got {_show(value)}")
    return value


def _require_positive(table: dict, key: str, where: Where) -> int:
    """A required positive integer field of a layer table."""
    return _check_positive(_require(table, key, int, where.spec, where.prefix), key, where)


def _load_arrays(path: Path, source: str) -> dict[str, np.ndarray]:
    """The arrays of the weights NPZ at ``path``, named by the spec ``source``."""
    return load_npz(path, source, "weights")


def load_npz(path: str | os.PathLike, source: str, field: str, *,
             max_elements: int = MAX_ELEMENTS, what: str = "weights file") -> dict[str, np.ndarray]:
    """The arrays of the NPZ at ``path``, by name, every .npy header read and checked before
    its data: a numeric dtype (no object arrays, never unpickled) and at most
    ``max_elements`` elements in all. ``source`` and ``field`` name where the path was given
    (a spec's ``weights`` or ``dataset.test``), ``what`` the file in messages. Any problem is a
    :class:`SpecError` naming ``source: field`` (a missing file, a folder, a device) or the NPZ
    and the array (an empty file, a .npy, a broken header, truncated data)."""
    path = Path(path)
    shown = repr(str(path))
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise SpecError(source, field, f"{what} {shown} not found") from None
    except (OSError, ValueError) as exc:
        raise SpecError(source, field, f"{what} {shown}: {_reason(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError(source, field, f"{what} {shown} is a directory, not an NPZ file")
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(source, field, f"{what} {shown} is not a regular file")
    npz = str(path)
    if info.st_size == 0:
        raise SpecError(npz, "", "empty file, expected an NPZ archive of integer arrays "
                        "(numpy.savez)")
    try:
        with open(path, "rb") as f:
            if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
                raise SpecError(npz, "", "a single .npy array, expected an NPZ archive of "
                                "named arrays (numpy.savez)")
            f.seek(0)
            with zipfile.ZipFile(f) as archive, warnings.catch_warnings():
                # numpy warns when it reads a header written by Python 2: read it quietly
                warnings.simplefilter("ignore")
                return _read_members(archive, npz, max_elements, what)
    except SpecError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise SpecError(npz, "", f"not a readable NPZ file ({_reason(exc)})") from None


_NPY_MAGIC = b"\x93NUMPY"


def _read_members(archive: zipfile.ZipFile, npz: str, max_elements: int,
                  what: str) -> dict[str, np.ndarray]:
    """Every member of an open NPZ archive as an array, keyed by its name without ``.npy``."""
    arrays: dict[str, np.ndarray] = {}
    total = 0
    for member in archive.infolist():
        name = member.filename
        if not name.endswith(".npy"):
            raise SpecError(npz, _printable(name), "not a .npy array (an NPZ archive holds "
                            "only .npy members, as numpy.savez writes them)")
        key = _printable(name[:-len(".npy")])
        if key in arrays:
            raise SpecError(npz, key, "appears twice in the archive")
        try:
            with archive.open(member) as f:
                shape, dtype = _npy_header(f)
        except Exception as exc:  # noqa: BLE001 - any failure to parse bytes: unreadable
            raise SpecError(npz, key, f"not a readable .npy array ({_reason(exc)})") from None
        if dtype.hasobject or dtype.kind not in "biufc":
            kind = "object" if dtype.hasobject else str(dtype)
            raise SpecError(npz, key, f"dtype {kind}, expected an integer dtype")
        count = math.prod(shape)
        total += count
        if count > max_elements or total > max_elements:
            raise SpecError(npz, key, f"shape {shape} ({count:,} elements): the {what} "
                            f"may hold at most {max_elements:,} elements in all")
        try:
            with archive.open(member) as f:
                arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt data, bad CRC
            raise SpecError(npz, key, f"not a readable .npy array ({_reason(exc)})") from None
    return arrays


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of the .npy file open at ``f`` (no data read)."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]}, expected 1.0 or 2.0")
    if not isinstance(shape, tuple) or any(not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"bad shape {_show(shape)} in the header")
    return shape, dtype


def _dense_from_toml(table: dict, arrays: dict, where: Where) -> Dense:
    _check_keys(table, _DENSE_KEYS, where.spec, where.prefix)
    return Dense(**_matrix_fields(table, arrays, where))


def _conv_from_toml(table: dict, arrays: dict, where: Where) -> Conv2d:
    src = where.spec
    _check_keys(table, _CONV_KEYS, src, where.prefix)
    kernel = _require_positive(table, "kernel", where)
    fields = _matrix_fields(table, arrays, where)
    w = fields["weights"]
    if isinstance(w, np.ndarray) and w.ndim == 4 and w.shape[1:3] != (kernel, kernel):
        raise where.array_error(f"{fields['name']}.weights", f"shape {w.shape}, expected "
                                f"(out_features, {kernel}, {kernel}, in_channels) for "
                                f"kernel = {kernel}")
    return Conv2d(**fields, stride=table.get("stride", 1),
                  padding=table.get("padding", "valid"), pad_value=table.get("pad_value", 0))


def _maxpool_from_toml(table: dict, arrays: dict, where: Where) -> MaxPool:
    _check_keys(table, {"name", "kind", "size", "stride"}, where.spec, where.prefix)
    return MaxPool(name=table["name"], size=_require_positive(table, "size", where),
                   stride=table.get("stride"))


def _flatten_from_toml(table: dict, arrays: dict, where: Where) -> Flatten:
    _check_keys(table, {"name", "kind"}, where.spec, where.prefix)
    return Flatten(name=table["name"])


def _global_sum_pool_from_toml(table: dict, arrays: dict, where: Where) -> GlobalSumPool:
    _check_keys(table, {"name", "kind"}, where.spec, where.prefix)
    return GlobalSumPool(name=table["name"])


def _matrix_fields(table: dict, arrays: dict, where: Where) -> dict:
    """The fields a dense or conv2d table shares, with its arrays taken from ``arrays``."""
    name = table["name"]
    out_features = _require_positive(table, "out_features", where)

    def rows(weights: np.ndarray) -> int:
        if isinstance(weights, np.ndarray) and weights.ndim >= 2 \
                and weights.shape[0] != out_features:
            raise where.array_error(f"{name}.weights", f"shape {weights.shape}, expected "
                                    f"{out_features} rows (out_features)")
        return out_features

    return dict(_channel_fields(table, arrays, where, rows), simd=table.get("simd"))


def _array(arrays: dict, where: Where, name: str, suffix: str) -> np.ndarray:
    """``<name>.<suffix>`` taken out of ``arrays`` (so that unused arrays can be reported)."""
    key = f"{name}.{suffix}"
    if key not in arrays:
        raise where.array_error(key, "missing from the weights file")
    return arrays.pop(key)


def _channel_fields(table: dict, arrays: dict, where: Where,
                    channels_of: Callable[[np.ndarray], int]) -> dict:
    """The fields of a layer with weights per output channel (dense, conv2d,
    depthwise_conv2d): weight bits, weights, output quantization and its arrays, bias, pe,
    weight memory and mac. ``channels_of`` checks the weights array against the table and
    returns the layer's output channel count."""
    src = where.spec
    name = table["name"]
    weight_bits = _require(table, "weight_bits", int, src, where.prefix)
    output = table.get("output", "thresholds")
    if output not in ("thresholds", "requantize", "none"):
        raise where.spec_error("output", f"expected \"thresholds\", \"requantize\" or "
                               f"\"none\", got {_show(output)}")
    has_bias = table.get("bias", False)
    if not isinstance(has_bias, bool):
        raise where.spec_error("bias", f"expected true or false, got {_show(has_bias)}")

    def array(suffix: str) -> np.ndarray:
        return _array(arrays, where, name, suffix)

    weights = array("weights")
    channels = channels_of(weights)
    thresholds = requantize = None
    if "out_signed" in table and output != "requantize":
        raise where.spec_error("out_signed", "only meaningful with output = \"requantize\"")
    if output == "requantize":
        out_bits = _require(table, "out_bits", int, src, where.prefix)
        if not 2 <= out_bits <= 16:
            raise where.spec_error("out_bits", f"expected an integer 2..16 for a requantized "
                                   f"output (1-bit outputs use thresholds), got {out_bits}")
        out_signed = table.get("out_signed", False)
        if not isinstance(out_signed, bool):
            raise where.spec_error("out_signed", f"expected true or false, got {_show(out_signed)}")
        multiplier, shift = array("multiplier"), array("shift")
        for key, value in (("multiplier", multiplier), ("shift", shift)):
            if isinstance(value, np.ndarray) and value.shape != (channels,):
                raise where.array_error(f"{name}.{key}", f"shape {value.shape}, expected "
                                        f"({channels},): one per output channel")
        requantize = Requantize(multiplier, shift, out_bits, out_signed)
    elif output == "thresholds":
        out_bits = _require(table, "out_bits", int, src, where.prefix)
        if not 1 <= out_bits <= 8:
            raise where.spec_error("out_bits", f"expected an integer 1..8, got {out_bits}")
        thresholds = array("thresholds")
        count = (1 << out_bits) - 1
        if isinstance(thresholds, np.ndarray) and thresholds.shape != (channels, count):
            raise where.array_error(f"{name}.thresholds", f"shape {thresholds.shape}, expected "
                                    f"({channels}, {count}) for out_bits = {out_bits}")
    elif "out_bits" in table:
        raise where.spec_error("out_bits", "only meaningful with output = \"thresholds\"")
    return dict(name=name, weights=weights, weight_bits=weight_bits, thresholds=thresholds,
                requantize=requantize, bias=array("bias") if has_bias else None,
                pe=table.get("pe"), weight_memory=table.get("weight_memory", "rom"),
                mac=table.get("mac", "auto"))


def _depthwise_from_toml(table: dict, arrays: dict, where: Where) -> DepthwiseConv2d:
    src = where.spec
    _check_keys(table, _DEPTHWISE_KEYS, src, where.prefix)
    kernel = _require_positive(table, "kernel", where)

    def filters(w: np.ndarray) -> int:
        if isinstance(w, np.ndarray) and (w.ndim != 3 or w.shape[1:] != (kernel, kernel)):
            raise where.array_error(f"{table['name']}.weights", f"shape {w.shape}, expected "
                                    f"(channels, {kernel}, {kernel}) for kernel = {kernel}")
        return int(w.shape[0]) if isinstance(w, np.ndarray) else 0

    return DepthwiseConv2d(**_channel_fields(table, arrays, where, filters),
                           stride=table.get("stride", 1), padding=table.get("padding", "valid"),
                           pad_value=table.get("pad_value", 0))


def _add_from_toml(table: dict, arrays: dict, where: Where) -> Add:
    _check_keys(table, {"name", "kind", "output", "out_bits"}, where.spec, where.prefix)
    name = table["name"]
    output = table.get("output", "none")
    if output not in ("thresholds", "none"):
        raise where.spec_error("output", f"expected \"thresholds\" or \"none\", got "
                               f"{_show(output)}")
    if output == "none":
        if "out_bits" in table:
            raise where.spec_error("out_bits", "only meaningful with output = \"thresholds\"")
        return Add(name=name)
    out_bits = _require(table, "out_bits", int, where.spec, where.prefix)
    if not 1 <= out_bits <= 8:
        raise where.spec_error("out_bits", f"expected an integer 1..8, got {out_bits}")
    key = f"{name}.thresholds"
    if key not in arrays:
        raise where.array_error(key, "missing from the weights file")
    thresholds = arrays.pop(key)
    count = (1 << out_bits) - 1
    if isinstance(thresholds, np.ndarray) and (thresholds.ndim != 2
                                               or thresholds.shape[1] != count):
        raise where.array_error(key, f"shape {thresholds.shape}, expected (channels, {count}) "
                                f"for out_bits = {out_bits}")
    return Add(name=name, thresholds=thresholds)


def _argmax_from_toml(table: dict, arrays: dict, where: Where) -> Argmax:
    _check_keys(table, _ARGMAX_KEYS, where.spec, where.prefix)
    return Argmax(name=table["name"])


_FROM_TOML = {"dense": _dense_from_toml, "conv2d": _conv_from_toml,
              "depthwise_conv2d": _depthwise_from_toml, "maxpool": _maxpool_from_toml,
              "flatten": _flatten_from_toml, "global_sum_pool": _global_sum_pool_from_toml,
              "add": _add_from_toml, "argmax": _argmax_from_toml}


#: Layer kinds whose tables may name arrays of the NPZ.
_KINDS_WITH_ARRAYS = ("dense", "conv2d", "depthwise_conv2d", "add")


def load(path: str | os.PathLike) -> Network:
    """Read a network from a TOML file and the NPZ of integer arrays it names."""
    if not isinstance(path, str | os.PathLike):
        raise SpecError("<python>", "path", f"expected a TOML file name (str or os.PathLike), "
                        f"got {_show(path)}")
    path = Path(path)
    source = str(path)
    try:
        with open(path, "rb") as f:  # at most MAX_TOML_BYTES: the path may be /dev/zero
            data = f.read(MAX_TOML_BYTES + 1)
        text = data.decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise SpecError(source, "", "file not found") from None
    except IsADirectoryError:
        raise SpecError(source, "", "is a directory, not a TOML file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte, or not UTF-8
        raise SpecError(source, "", f"cannot read ({_reason(exc)})") from None
    if len(data) > MAX_TOML_BYTES:
        raise SpecError(source, "", f"larger than {MAX_TOML_BYTES:,} bytes; a network spec "
                        f"is a few kilobytes (the arrays go in the NPZ)")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, "", f"invalid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(source, "", "invalid TOML: arrays or tables nested too deeply") from None
    _check_keys(doc, _TOP_KEYS, source, "")
    name = doc.get("name", path.stem)
    weights_name = doc.get("weights", f"{path.stem}.npz")
    if not isinstance(weights_name, str) or not weights_name or "\0" in weights_name:
        raise SpecError(source, "weights", f"expected a file name, got {_show(weights_name)}")
    arrays_path = path.parent / weights_name
    arrays_source = str(arrays_path)

    table = _require(doc, "input", dict, source, "")
    _check_keys(table, _INPUT_KEYS, source, "input")
    shape = _require(table, "shape", list, source, "input")
    inp = Input(shape=tuple(shape), bits=_require(table, "bits", int, source, "input"),
                signed=table.get("signed", False), lanes=table.get("lanes"))

    tables = _require(doc, "layers", list, source, "")
    seen: set[str] = set()
    arrays = _load_arrays(arrays_path, source) if any(
        isinstance(t, dict) and t.get("kind") in _KINDS_WITH_ARRAYS for t in tables) else {}
    layers: list[Layer] = []
    for index, layer_table in enumerate(tables):
        prefix = f"layers[{index}]"
        if not isinstance(layer_table, dict):
            raise SpecError(source, prefix, "expected a table ([[layers]])")
        kind = _require(layer_table, "kind", str, source, prefix)
        if kind not in _FROM_TOML:
            raise SpecError(source, f"{prefix}.kind", f"unknown layer kind {_show(kind)} (expected "
                            f"one of: {', '.join(sorted(_FROM_TOML))})")
        layer_name = _require(layer_table, "name", str, source, prefix)
        where = Where(source, arrays_source, prefix)
        _check_name(layer_name, "name", where)  # before its arrays are looked up by name
        if layer_name in seen:
            raise SpecError(source, f"{prefix}.name", f"duplicate layer name {layer_name!r}")
        seen.add(layer_name)
        table = {k: v for k, v in layer_table.items() if k != "inputs"}
        layer = _FROM_TOML[kind](table, arrays, where)
        if "inputs" in layer_table:  # checked with the layer's other fields by Network
            layer = dataclasses.replace(layer, inputs=layer_table["inputs"])
        layers.append(layer)
    if arrays:
        raise SpecError(arrays_source, sorted(arrays)[0], "array not used by any layer")

    dataset = None
    if "dataset" in doc:
        data_table = _require(doc, "dataset", dict, source, "")
        _check_keys(data_table, {"test"}, source, "dataset")
        test = _require(data_table, "test", str, source, "dataset")
        if not test or "\0" in test:
            raise SpecError(source, "dataset.test", f"expected a file name, got {_show(test)}")
        dataset = path.parent / test
    return Network(name=name, input=inp, layers=layers, dataset=dataset, source=source,
                   arrays_source=arrays_source)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):  # a basic string: TOML escapes quote, backslash and controls
        return '"' + "".join(_TOML_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20
                                                     or ord(c) == 0x7F else c)
                             for c in value) + '"'
    return str(int(value))


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def save(network: Network, path: str | os.PathLike, *, header: str = "") -> None:
    """Write ``network`` as ``path`` (TOML) and the NPZ beside it (``<stem>.npz``); what it
    writes loads back (:func:`load`) as an equal network, or it raises :class:`SpecError`."""
    if not isinstance(network, Network):
        raise SpecError("<python>", "network", f"expected a hwgen.spec.Network, got "
                        f"{type(network).__name__}")
    if not isinstance(path, str | os.PathLike):
        raise SpecError("<python>", "path", f"expected a TOML file name (str or os.PathLike), "
                        f"got {_show(path)}")
    path = Path(path)
    if path.suffix == ".npz":
        raise SpecError(str(path), "", "a .npz name for the TOML: the weights file "
                        "<stem>.npz would overwrite it; use a .toml name")
    for what, text in (("path", path.stem), ("dataset", network.dataset and
                                              network.dataset.name)):
        if text and not _encodable(text):
            raise SpecError(str(path), what, f"{_show(text)} is not valid Unicode; TOML "
                            f"cannot hold it")
    arrays: dict[str, np.ndarray] = {}
    lines = [f"# {_printable(line)}" for line in header.splitlines()]
    lines += [f"name = {_toml_value(network.name)}",
              f"weights = {_toml_value(path.stem + '.npz')}", ""]
    inp = network.input
    lines += ["[input]", f"shape = {_toml_value(list(inp.shape))}", f"bits = {inp.bits}"]
    if inp.signed:
        lines.append("signed = true")
    if inp.lanes is not None:
        lines.append(f"lanes = {inp.lanes}")
    for layer in network.layers:
        lines += ["", "[[layers]]", f"name = {_toml_value(layer.name)}",
                  f"kind = {_toml_value(layer.kind)}"]
        if layer.inputs:
            lines.append(f"inputs = {_toml_value(list(layer.inputs))}")
        if isinstance(layer, Add) and layer.thresholds is not None:
            lines += ['output = "thresholds"', f"out_bits = {layer.out_bits}"]
            arrays[f"{layer.name}.thresholds"] = layer.thresholds
        if isinstance(layer, Conv2d | DepthwiseConv2d):
            lines += [f"kernel = {layer.kernel}", f"stride = {layer.stride}",
                      f"padding = {_toml_value(layer.padding)}",
                      f"pad_value = {layer.pad_value}"]
        if isinstance(layer, MaxPool):
            lines.append(f"size = {layer.size}")
            if layer.stride is not None:
                lines.append(f"stride = {layer.stride}")
        if isinstance(layer, Dense | Conv2d | DepthwiseConv2d):
            if not isinstance(layer, DepthwiseConv2d):
                lines.append(f"out_features = {layer.out_features}")
            lines.append(f"weight_bits = {layer.weight_bits}")
            arrays[f"{layer.name}.weights"] = layer.weights.astype(
                np.int8 if layer.weight_bits <= 8 else np.int16)
            if layer.thresholds is not None:
                lines += ['output = "thresholds"', f"out_bits = {layer.out_bits}"]
                arrays[f"{layer.name}.thresholds"] = layer.thresholds
            elif layer.requantize is not None:
                rq = layer.requantize
                lines += ['output = "requantize"', f"out_bits = {rq.bits}",
                          f"out_signed = {_toml_value(rq.signed)}"]
                arrays[f"{layer.name}.multiplier"] = rq.multiplier
                arrays[f"{layer.name}.shift"] = rq.shift
            else:
                lines.append('output = "none"')
            if layer.bias is not None:
                lines.append("bias = true")
                arrays[f"{layer.name}.bias"] = layer.bias
            for key in ("pe", "simd"):
                if getattr(layer, key, None) is not None:
                    lines.append(f"{key} = {getattr(layer, key)}")
            if layer.weight_memory != "rom":
                lines.append(f"weight_memory = {_toml_value(layer.weight_memory)}")
            if layer.mac != "auto":
                lines.append(f"mac = {_toml_value(layer.mac)}")
    if network.dataset is not None:
        lines += ["", "[dataset]", f"test = {_toml_value(network.dataset.name)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    np.savez(path.with_suffix(".npz"), **arrays)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, as os.fsdecode makes of non-UTF-8 bytes
        return False
    return True

