"""QONNX/ONNX models → :class:`hwgen.spec.Network`, exact in integers.

A QONNX graph computes in floats: weights pass through ``Quant``/``BipolarQuant`` nodes,
matrix products are followed by scales, biases and BatchNorm, and an activation quantizer
(``Quant``, ``BipolarQuant`` or ``MultiThreshold``) turns each result back into a few bits.
hwgen computes the same network in integers: each weighted layer's integer accumulator is
compared with per-channel integer thresholds. The import follows every tensor symbolically,
as an affine image of an integer tensor hwgen has:

- an *activation* is ``α·v + β``, ``v`` the values of an hwgen tensor (the input or a layer's
  output: ±1 for binary tensors, else integers), ``α``, ``β`` rational constants;
- an *accumulation* is ``A[o]·acc[o] + B[o]`` followed by monotone elementwise functions
  (Relu, Clip, more scales and biases), ``acc`` the integer dot product of a layer still
  being read.

When a quantizer meets an accumulation, the layer is emitted: its output level k is reached
exactly when ``acc ≥ T[o, k]``, and each ``T[o, k]`` is found by a binary search over the
accumulator's reachable range, evaluating the quantizer in exact rational arithmetic as QONNX
defines it (``ROUND`` is half to even). A channel whose function falls as ``acc`` rises has its
weight row negated. Scores at the end (no quantizer) become the raw accumulator with an integer
bias, if the per-class scale is the same for every class; otherwise the argmax would need the
floats and the import refuses.

Exactness is judged against QONNX's own executor (:func:`verify`): it computes in float32,
so a model whose scales are not powers of two can differ from the rational definition on an
input that lands within float32 rounding of a threshold; :func:`verify` counts such inputs.

Supported (see docs/import.md): ``Quant`` (zero point 0), ``BipolarQuant``,
``MultiThreshold``, ``MatMul``, ``Gemm``, ``Add``/``Sub``/``Mul``/``Div`` by constants,
``BatchNormalization``, ``Relu``, ``Clip``, ``Identity``, ``Dropout``, ``Flatten``,
``Reshape`` (to one dimension per sample), ``ArgMax`` and ``TopK`` (k = 1) at the end. Every
other op is refused with one line naming the node.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import MAX_NAME, SpecError, reason
from ..layers import Add as AddLayer
from ..layers import (
    Argmax,
    ChannelShuffle,
    ChannelSplit,
    Concat,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    Flatten,
    GlobalSumPool,
    MaxPool,
)
from ..layers.window import same_padding
from ..numeric import dot_bounds, value_range, width_for
from ..spec import INPUT, Input, Network

__all__ = ["InputFormat", "FloatOptions", "Imported", "SUPPORTED_OPS", "OPSET_RANGE",
           "import_onnx", "load_model", "calibration_inputs", "input_codes", "verify",
           "VerifyResult"]

#: The ops the import reads, by the name ONNX gives them.
SUPPORTED_OPS = ("Quant", "BipolarQuant", "MultiThreshold", "Trunc", "Sign", "MatMul", "Gemm",
                 "Conv", "Add", "Sub", "Mul", "Div", "BatchNormalization", "Relu", "Clip",
                 "MaxPool", "AveragePool", "GlobalAveragePool", "Identity", "Dropout",
                 "Flatten", "Reshape", "Transpose", "Split", "Concat", "ArgMax", "TopK")
#: Default-domain opsets the import accepts (those whose ops above keep today's meaning).
OPSET_RANGE = (9, 21)
#: Largest file the import reads: hwgen's networks hold at most a few million weights.
MAX_MODEL_BYTES = 256 << 20
#: Most bits of an activation quantizer's output (a layer's thresholds: 2**8 − 1 per channel).
MAX_ACTIVATION_BITS = 8
#: Most bits of a weight quantizer.
MAX_WEIGHT_BITS = 16
#: Most bits of a quantizer on a constant that is not a weight (a bias).
MAX_CONSTANT_BITS = 32


@dataclass(frozen=True)
class InputFormat:
    """The integer format of a model input that carries no quantizer: the model's float input
    is ``scale · v``, ``v`` a ``bits``-bit integer (unsigned unless ``signed``; ``bits = 1``:
    ±1)."""

    bits: int
    signed: bool = False
    scale: float = 1.0


@dataclass(frozen=True)
class Imported:
    """An imported model: the network and what ties it to the model's tensors.

    ``input_scale``: the model's float input is ``input_scale · v`` for hwgen input values
    ``v``; ``input_from`` says where that format came from. ``outputs`` maps each hwgen layer
    whose output is a model tensor to ``(tensor name, α, β)``: the tensor is ``α·v + β``
    (per channel). ``scores``: ``(tensor name, A, B)``: the model's class scores are
    ``A·s + B`` for the network's integer scores ``s``, or None when the model ends in a
    quantized tensor. ``notes``: one line per decision the import made.
    """

    network: Network
    model: object  # the cleaned qonnx ModelWrapper
    input_name: str
    input_scale: float
    input_from: str
    outputs: dict[str, tuple[str, np.ndarray, np.ndarray]]
    scores: tuple[str, float, np.ndarray] | None
    class_output: str | None
    notes: list[str] = field(default_factory=list)


# -- symbolic tensors ------------------------------------------------------------------------

@dataclass
class _Const:
    """A constant tensor (an initializer)."""

    value: np.ndarray


@dataclass
class _Weights:
    """A quantized constant: ``value = scale · q``, ``q`` integers of ``bits`` bits (±1 for
    a binary quantizer), ``scale`` broadcastable to ``q``."""

    q: np.ndarray
    scale: np.ndarray
    bits: int
    node: str


@dataclass
class _Act:
    """``α·v + β`` of hwgen tensor ``source`` (``None``: the raw model input, not yet
    quantized). ``shape``: the model's shape without the batch; ``order`` for a flattened
    4-D tensor: model element j is hwgen element ``order[j]``."""

    source: str | None
    alpha: Fraction
    beta: Fraction
    shape: tuple[int, ...]
    bits: int = 0
    signed: bool = False
    order: np.ndarray | None = None


@dataclass
class _Acc:
    """``post(A[o]·acc[o] + B[o])`` of a layer still being read (dense, conv2d,
    depthwise_conv2d, or the add of two tensors): ``weights`` (out × inputs per output, in
    hwgen's order; None for an add) and ``weight_bits``; ``bounds``, each channel's reachable
    accumulator range; ``build(weights, weight_bits, thresholds, bias)`` makes the hwgen
    layer; ``shape`` the model's shape without the batch; ``post``: the monotone functions
    after the first non-affine one, in order: ``("relu",)``, ``("clip", lo, hi)``,
    ``("affine", a, b)`` (per-channel lists); ``shape`` is the pooled one after a ``pool``."""

    name: str
    weights: np.ndarray | None
    weight_bits: int
    bounds: tuple[np.ndarray, np.ndarray]
    build: Callable
    shape: tuple[int, ...]
    A: list[Fraction]
    B: list[Fraction]
    post: list[tuple] = field(default_factory=list)
    #: a MaxPool read before the quantizer: (hwgen layer name, size, stride), and each
    #: channel's sign of the affine functions after it (the max commutes with rising ones only)
    pool: tuple[str, int, int] | None = None
    pool_signs: list[int] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return int(self.shape[0])


@dataclass
class _Grouped:
    """An activation viewed as (g, C/g, H, W), its two group axes swapped once
    ``transposed``: the middle of a channel shuffle."""

    act: _Act
    groups: int
    transposed: bool = False


def _frac(x) -> Fraction:
    return Fraction(float(x))


class _Reader:
    """One pass over a cleaned QONNX graph in topological order (see the module docstring)."""

    def __init__(self, model, source: str, input_format: InputFormat | None):
        self.model, self.source = model, source
        self.input_format = input_format
        self.values: dict[str, object] = {}
        self.layers: list = []
        self.names: set[str] = set()
        self.outputs: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
        self.notes: list[str] = []
        self.input: Input | None = None
        self.input_scale: float | None = None
        self.input_from = ""
        self.scores = None
        self.class_output: str | None = None
        self.types: dict[str, tuple[int, bool]] = {}  # hwgen tensor → (bits, signed)

    # errors --------------------------------------------------------------------------------

    def error(self, node, message: str) -> SpecError:
        return SpecError(self.source, f"node {node.name!r} ({node.op_type})", message)

    # names ---------------------------------------------------------------------------------

    def layer_name(self, text: str) -> str:
        """A new layer name made from ``text`` (an ONNX node's name): lower case, unique."""
        base = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "layer"
        if not base[0].isalpha():
            base = f"l_{base}"
        base = base[:MAX_NAME - 4]
        name, k = base, 1
        while name in self.names or name == INPUT:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    # values --------------------------------------------------------------------------------

    def get(self, node, tensor: str):
        if tensor in self.values:
            return self.values[tensor]
        init = self.model.get_initializer(tensor)
        if init is not None:
            return _Const(np.asarray(init))
        raise self.error(node, f"input {tensor!r} is neither a constant nor computed before "
                         f"this node (dynamic inputs are not supported)")

    def const(self, node, index: int, what: str) -> np.ndarray:
        if len(node.input) <= index or not node.input[index]:
            raise self.error(node, f"missing {what}")
        value = self.get(node, node.input[index])
        if not isinstance(value, _Const):
            raise self.error(node, f"its {what} must be a constant")
        return value.value

    def scalar(self, node, index: int, what: str) -> float:
        value = self.const(node, index, what)
        if value.size != 1:
            raise self.error(node, f"its {what} must be a single number, got shape "
                             f"{tuple(value.shape)}")
        return float(value.reshape(-1)[0])

    def attr(self, node, name: str, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def exact(self, node, value, what: str) -> np.ndarray:
        """A constant operand as exact rationals (an object array): a float constant, or a
        quantized one (``scale · q``, e.g. a bias through a Quant)."""
        if isinstance(value, _Const):
            return np.vectorize(_frac, otypes=[object])(np.asarray(value.value, np.float64))
        if isinstance(value, _Weights):
            scale = np.vectorize(_frac, otypes=[object])(value.scale)
            return scale * value.q.astype(object)
        raise self.error(node, f"its {what} must be a constant")

    def per_channel(self, node, value: np.ndarray, channels: int, what: str) -> list[Fraction]:
        """A constant operand that applies per channel of a (batch, channels) tensor: a
        scalar or a vector of ``channels`` (any shape broadcasting so); floats or the
        rationals of :meth:`exact`."""
        v = np.asarray(value)
        def frac(x):
            return x if isinstance(x, Fraction) else _frac(x)
        if v.size == 1:
            return [frac(v.reshape(-1)[0])] * channels
        squeezed = v.reshape(-1)
        if squeezed.size == channels and max(v.shape) == channels:
            return [frac(x) for x in squeezed]
        raise self.error(node, f"its {what} has shape {tuple(v.shape)}; expected a scalar or "
                         f"one value per channel ({channels})")

    # the graph -----------------------------------------------------------------------------

    def read(self) -> None:
        graph = self.model.graph
        inits = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise SpecError(self.source, "graph.input", f"{len(inputs)} inputs; hwgen networks "
                            f"have one")
        self.input_name = inputs[0].name
        shape = self.model.get_tensor_shape(self.input_name)
        if shape is None or any(not isinstance(d, int) or d < 1 for d in shape):
            raise SpecError(self.source, f"input {self.input_name!r}", f"shape {shape} is not "
                            f"static; export the model with a fixed input shape")
        if len(shape) not in (2, 4) or shape[0] != 1:
            raise SpecError(self.source, f"input {self.input_name!r}", f"shape {tuple(shape)}; "
                            f"expected (1, features) or (1, channels, height, width)")
        self.raw_shape = tuple(shape[1:])
        self.values[self.input_name] = _Act(None, Fraction(1), Fraction(0), self.raw_shape)
        if self.input_format is not None:
            self.set_input(None, self.input_format.bits, self.input_format.signed,
                           self.input_format.scale, "the options --input-bits/--input-signed/"
                           "--input-scale")
        for node in graph.node:
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None or node.op_type not in SUPPORTED_OPS:
                raise self.error(node, f"unsupported op; hwgen imports {', '.join(SUPPORTED_OPS)}")
            if node.domain not in ("", "ai.onnx", "qonnx.custom_op.general",
                                   "finn.custom_op.general"):
                raise self.error(node, f"op domain {node.domain!r} is not ONNX's or QONNX's")
            handler(node)
        outputs = [o.name for o in graph.output]
        if len(outputs) != 1:
            raise SpecError(self.source, "graph.output", f"{len(outputs)} outputs; hwgen "
                            f"networks have one (the class or the scores)")
        self.finish(outputs[0])

    def set_input(self, node, bits: int, signed: bool, scale: float, origin: str) -> None:
        if self.input is not None:
            raise self.error(node, "a second quantizer on the model input")
        if len(self.raw_shape) == 1:
            shape = self.raw_shape
        else:
            c, h, w = self.raw_shape
            shape = (h, w, c)
        self.input = Input(shape=shape, bits=bits, signed=signed and bits > 1)
        self.input_scale, self.input_from = scale, origin
        self.types[INPUT] = (bits, signed and bits > 1)
        lo, hi = (-1, 1) if bits == 1 else value_range(bits, signed)
        self.values[self.input_name] = _Act(INPUT, _frac(scale), Fraction(0), self.raw_shape,
                                            bits, signed and bits > 1)
        self.input_range = (lo, hi)

    # quantizers ----------------------------------------------------------------------------

    def quant_params(self, node) -> tuple[float, int, bool, bool, str]:
        scale = self.const(node, 1, "scale")
        zero = self.const(node, 2, "zero point")
        if np.any(zero != 0):
            raise self.error(node, "non-zero zero point; hwgen's integers are symmetric "
                             "(zero point 0)")
        bits = self.scalar(node, 3, "bit width")
        if bits != int(bits) or not 1 <= bits <= MAX_CONSTANT_BITS:
            raise self.error(node, f"bit width {bits:g}; expected an integer "
                             f"1..{MAX_CONSTANT_BITS}")
        if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
            raise self.error(node, "scale must be positive and finite")
        mode = self.attr(node, "rounding_mode", b"ROUND")
        mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
        if mode not in ("ROUND", "HALF_EVEN", "FLOOR", "CEIL"):
            raise self.error(node, f"rounding mode {mode}; hwgen reads ROUND (half to even), "
                             f"FLOOR and CEIL")
        return scale, int(bits), bool(self.attr(node, "signed", 1)), \
            bool(self.attr(node, "narrow", 0)), mode

    def op_Quant(self, node) -> None:
        x = self.get(node, node.input[0])
        scale, bits, signed, narrow, mode = self.quant_params(node)
        if isinstance(x, _Const):  # weights
            self.values[node.output[0]] = self.quantize_weights(node, x.value, scale, bits,
                                                                signed, narrow, mode)
            return
        if bits > MAX_ACTIVATION_BITS:
            raise self.error(node, f"{bits}-bit activations; hwgen's thresholds give at most "
                             f"{MAX_ACTIVATION_BITS}")
        if scale.size != 1:
            raise self.error(node, "a per-channel activation scale; hwgen's activations have "
                             "one scale per tensor")
        s = float(scale.reshape(-1)[0])
        lo, hi = _quant_range(bits, signed, narrow)
        if node.input[0] == self.input_name:
            if mode not in ("ROUND", "HALF_EVEN") or (narrow and bits > 1):
                raise self.error(node, "the input quantizer must be ROUND and not narrow "
                                 "(hwgen's input takes every code of its bits)")
            self.set_input(node, bits, signed, s, f"the model's {node.op_type} node "
                           f"{node.name!r}")
            self.values[node.output[0]] = self.values[self.input_name]
            return
        if bits == 1 and signed:
            self.emit(node, x, ("bipolar",), Fraction(0), s)
            return
        self.emit(node, x, ("quant", _frac(s), lo, hi, mode), lo, s)

    def op_BipolarQuant(self, node) -> None:
        x = self.get(node, node.input[0])
        scale = self.const(node, 1, "scale")
        if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
            raise self.error(node, "scale must be positive and finite")
        if isinstance(x, _Const):
            self.values[node.output[0]] = self.quantize_weights(node, x.value, scale, 1, True,
                                                                False, "ROUND")
            return
        if scale.size != 1:
            raise self.error(node, "a per-channel activation scale; hwgen's activations have "
                             "one scale per tensor")
        s = float(scale.reshape(-1)[0])
        if node.input[0] == self.input_name:
            self.set_input(node, 1, True, s, f"the model's BipolarQuant node {node.name!r}")
            self.values[node.output[0]] = self.values[self.input_name]
            return
        self.emit(node, x, ("bipolar",), Fraction(0), s)

    def op_MultiThreshold(self, node) -> None:
        x = self.get(node, node.input[0])
        t = self.const(node, 1, "thresholds")
        if not isinstance(x, _Acc):
            raise self.error(node, "thresholds on a tensor that is not a layer's accumulation")
        if t.ndim != 2 or t.shape[0] not in (1, x.channels) or t.shape[1] < 1:
            raise self.error(node, f"thresholds of shape {tuple(t.shape)}; expected "
                             f"({x.channels}, steps) or (1, steps)")
        steps = t.shape[1]
        if steps > 2 ** MAX_ACTIVATION_BITS - 1:
            raise self.error(node, f"{steps} thresholds; at most {2 ** MAX_ACTIVATION_BITS - 1}")
        rows = np.broadcast_to(t, (x.channels, steps))
        table = [sorted(_frac(v) for v in row) for row in rows]
        out_scale = float(self.attr(node, "out_scale", 1.0))
        out_bias = float(self.attr(node, "out_bias", 0.0))
        if out_scale <= 0 or not math.isfinite(out_scale) or not math.isfinite(out_bias):
            raise self.error(node, "out_scale must be positive and finite")
        self.emit(node, x, ("thresholds", table, steps), _frac(out_bias) / _frac(out_scale),
                  out_scale, levels=steps)

    def op_Trunc(self, node) -> None:
        """QONNX's Trunc (version 1, or 2 when the model imports its domain at 2 or more) of a
        layer's accumulation, e.g. an AveragePool's mean: thresholds from its exact
        definition, like Quant's. The output integers are those the accumulation reaches."""
        x = self.get(node, node.input[0])
        if not isinstance(x, _Acc):
            raise self.error(node, "Trunc of a tensor that is not a layer's accumulation (an "
                             "AveragePool, a convolution, a product); hwgen cannot narrow a "
                             "finished activation")
        version = {o.domain: o.version for o in self.model.model.opset_import}.get(node.domain, 1)
        version = 2 if version >= 2 else 1
        scale = self.const(node, 1, "scale")
        if np.any(self.const(node, 2, "zero point") != 0):
            raise self.error(node, "non-zero zero point; hwgen's integers are symmetric "
                             "(zero point 0)")
        if scale.size != 1 or not math.isfinite(float(scale.reshape(-1)[0])) \
                or float(scale.reshape(-1)[0]) <= 0:
            raise self.error(node, "scale must be one positive, finite number")
        s = _frac(scale.reshape(-1)[0])
        in_bits = self.scalar(node, 3, "input bit width")
        mode = self.attr(node, "rounding_mode", b"FLOOR")
        mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
        if mode not in ("ROUND", "HALF_EVEN", "FLOOR", "CEIL"):
            raise self.error(node, f"rounding mode {mode}; hwgen reads ROUND (half to even), "
                             f"FLOOR and CEIL")
        if version == 1:
            out_bits = self.scalar(node, 4, "output bit width")
            shift, out_scale, clamp = Fraction(2) ** int(in_bits - out_bits), s, None
        else:
            out_scale = _frac(self.scalar(node, 4, "output scale"))
            out_bits = self.scalar(node, 5, "output bit width")
            if out_scale <= 0:
                raise self.error(node, "output scale must be positive")
            shift = Fraction(2) ** round(math.log2(out_scale / s))
            clamp = _quant_range(int(out_bits), bool(self.attr(node, "signed", 1)),
                                 bool(self.attr(node, "narrow", 0)))
        if out_bits != int(out_bits) or not 1 <= out_bits <= MAX_CONSTANT_BITS:
            raise self.error(node, f"output bit width {out_bits:g}; expected an integer "
                             f"1..{MAX_CONSTANT_BITS}")

        def truncated(z: Fraction) -> int:
            y = Fraction(round(z / s)) / shift
            if clamp is not None:
                y = min(max(y, Fraction(clamp[0])), Fraction(clamp[1]))
            return _round(y, mode)

        lo, hi = self.reached(x, truncated)
        if hi - lo > 2 ** MAX_ACTIVATION_BITS - 1:
            raise self.error(node, f"the truncated values span {lo}..{hi}, {hi - lo} steps; "
                             f"hwgen's thresholds give at most {2 ** MAX_ACTIVATION_BITS - 1}")
        self.emit(node, x, ("function", truncated, lo, hi), lo, float(out_scale))

    def op_Sign(self, node) -> None:
        """Sign of a layer's accumulation, exact as a one-bit (±1) activation only where the
        accumulation cannot be 0 (Sign(0) = 0 is not ±1)."""
        x = self.get(node, node.input[0])
        if not isinstance(x, _Acc):
            raise self.error(node, "Sign of a tensor that is not a layer's accumulation")
        lo, hi = x.bounds
        for o in range(x.channels):
            zero = -x.B[o] / x.A[o] if x.A[o] and not x.post else None
            if x.post or (zero is not None and zero.denominator == 1
                          and int(lo[o]) <= zero <= int(hi[o])) or (not x.A[o] and not x.B[o]):
                raise self.error(node, f"channel {o} can be 0 before the Sign, whose output 0 "
                                 f"is not one of hwgen's binary values ±1; use BipolarQuant "
                                 f"(0 → +1)")
        self.emit(node, x, ("bipolar",), Fraction(0), 1.0)

    def reached(self, x: _Acc, function) -> tuple[int, int]:
        """The least and greatest of ``function`` (non-decreasing) over every channel's
        reachable accumulations of ``x``, the functions after it (``post``) included."""
        lo, hi = x.bounds
        values = [function(_post(x.A[o] * int(a) + x.B[o], o, x.post))
                  for o in range(x.channels) for a in (lo[o], hi[o])]
        return min(values), max(values)

    def quantize_weights(self, node, w: np.ndarray, scale: np.ndarray, bits: int, signed: bool,
                         narrow: bool, mode: str) -> _Weights:
        """QONNX's Quant on a constant, in float32 as its executor does: the integers."""
        w32 = np.asarray(w, dtype=np.float32)
        s32 = np.asarray(scale, dtype=np.float32)
        try:
            u = w32 / s32
        except ValueError:
            raise self.error(node, f"scale of shape {tuple(scale.shape)} does not broadcast to "
                             f"the weights' {tuple(w.shape)}") from None
        if bits == 1 and signed:
            q = np.where(u >= 0, 1, -1)
        else:
            if not signed:
                raise self.error(node, "unsigned weights; hwgen's multi-bit weights are "
                                 "signed two's complement")
            lo, hi = _quant_range(bits, signed, narrow)
            u = np.clip(u, lo, hi)
            q = {"FLOOR": np.floor, "CEIL": np.ceil}.get(mode, np.round)(u)
        return _Weights(q.astype(np.int64), np.broadcast_to(s32, w.shape).astype(np.float64),
                        bits, node.name)

    # the weighted layer ---------------------------------------------------------------------

    def data_input(self, node, x) -> None:
        """Refuses a layer's data input unless it is a quantized activation."""
        if isinstance(x, _Act) and x.source is None:
            raise SpecError(self.source, f"input {self.input_name!r}", "no Quant or "
                            "BipolarQuant on the model input, so its integer format is "
                            "unknown; give --input-bits (and --input-signed, --input-scale)")
        if not isinstance(x, _Act):
            raise self.error(node, "its data input is not a quantized activation; put a "
                             "Quant, BipolarQuant or MultiThreshold before it")

    def matmul(self, node, x, w, rows_last: bool) -> None:
        """``x @ W`` with ``W`` (in, out) when ``rows_last``, else (out, in)."""
        self.data_input(node, x)
        if isinstance(w, _Const):
            raise self.error(node, "float weights without a Quant/BipolarQuant node; hwgen "
                             "imports quantized (QONNX) weights")
        if not isinstance(w, _Weights) or w.q.ndim != 2:
            raise self.error(node, "weights must be a quantized 2-D constant")
        if w.bits > MAX_WEIGHT_BITS:
            raise self.error(node, f"{w.bits}-bit weights; hwgen's have at most "
                             f"{MAX_WEIGHT_BITS}")
        q, s = (w.q.T, w.scale.T) if rows_last else (w.q, w.scale)
        out, n_in = q.shape
        if len(x.shape) != 1 or x.shape[0] != n_in:
            raise self.error(node, f"input of shape {x.shape} does not match weights with "
                             f"{n_in} inputs (a 4-D tensor needs a Flatten first)")
        if np.any(s != s[:, :1]):
            raise self.error(node, "a weight scale that varies along the input axis; hwgen "
                             "takes one scale per output channel")
        source = x.source
        if x.order is not None:  # a flattened (c, h, w) tensor: hwgen's order is (h, w, c)
            permuted = np.empty_like(q)
            permuted[:, x.order] = q
            q = permuted
            source = self.flatten(x.source)
        name = self.layer_name(node.name)

        def build(weights, bits, thresholds, bias):
            return Dense(name=name, weights=weights, weight_bits=bits, thresholds=thresholds,
                         bias=bias, inputs=(source,))

        self.values[node.output[0]] = self.accumulation(name, x, q, s[:, 0], w.bits, build,
                                                        (out,))

    def accumulation(self, name: str, x: _Act, q: np.ndarray, scale: np.ndarray, bits: int,
                     build: Callable, shape: tuple[int, ...]) -> _Acc:
        """The accumulation of weights ``q`` (out × inputs per output) with per-channel
        ``scale`` on activation ``x``: float = Σ (α·v + β)·(s_o·q) = α·s_o·acc + β·s_o·Σq
        (a padded tap counts too: its value v makes α·v + β = 0)."""
        rowsum = q.sum(axis=1)
        A = [x.alpha * _frac(scale[o]) for o in range(len(q))]
        B = [x.beta * _frac(scale[o]) * int(rowsum[o]) for o in range(len(q))]
        return _Acc(name, q, bits, dot_bounds(q, *self.range_of(x.source)), build, shape, A, B)

    def range_of(self, tensor: str) -> tuple[int, int]:
        bits, signed = self.types[tensor]
        return (-1, 1) if bits == 1 and not signed else value_range(bits, signed)

    def flatten(self, source: str) -> str:
        name = self.layer_name(f"{source}_flatten")
        self.layers.append(Flatten(name=name, inputs=(source,)))
        self.types[name] = self.types[source]
        return name

    def op_Conv(self, node) -> None:
        """Conv with group 1 (conv2d) or group = channels (depthwise_conv2d), a square
        kernel, equal strides, no dilation, and no padding or the padding hwgen calls
        "same"; the padded value must be a value of the input (float 0 = α·v + β)."""
        x, w = (self.get(node, t) for t in node.input[:2])
        self.data_input(node, x)
        if len(x.shape) != 3:
            raise self.error(node, f"input of shape {x.shape}; expected (C, H, W)")
        if isinstance(w, _Weights) and w.bits > MAX_WEIGHT_BITS:
            raise self.error(node, f"{w.bits}-bit weights; hwgen's have at most "
                             f"{MAX_WEIGHT_BITS}")
        if not isinstance(w, _Weights) or w.q.ndim != 4:
            raise self.error(node, "float weights without a Quant/BipolarQuant node; hwgen "
                             "imports quantized (QONNX) weights" if isinstance(w, _Const)
                             else "weights must be a quantized 4-D constant")
        c, h, wd = x.shape
        o, per_group, kh, kw = w.q.shape
        group = int(self.attr(node, "group", 1))
        if kh != kw:
            raise self.error(node, f"kernel {kh}×{kw}; hwgen's kernels are square")
        if any(d != 1 for d in self.attr(node, "dilations", [1, 1])):
            raise self.error(node, "dilation; hwgen's convolutions have none")
        strides = list(self.attr(node, "strides", [1, 1]))
        if strides[0] != strides[1]:
            raise self.error(node, f"strides {strides}; hwgen's are equal in both dimensions")
        stride = strides[0]
        padding, pads = self.padding(node, (h, wd), kh, stride)
        pad_value = 0
        if padding != "valid":
            pad = -x.beta / x.alpha
            lo, hi = self.range_of(x.source)
            if pad.denominator != 1 or not lo <= pad <= hi or (x.bits == 1 and pad == 0):
                raise self.error(node, f"zero padding of an input whose 0 is the value "
                                 f"{float(pad):g}, not one of its integers {lo}..{hi}"
                                 + (" (±1)" if x.bits == 1 else ""))
            pad_value = int(pad)
        scale = w.scale.reshape(o, -1)
        if np.any(scale != scale[:, :1]):
            raise self.error(node, "a weight scale that varies within a filter; hwgen takes "
                             "one scale per output channel")
        ho = (h + pads[0] + pads[2] - kh) // stride + 1
        wo = (wd + pads[1] + pads[3] - kh) // stride + 1
        name, source = self.layer_name(node.name), x.source
        common = dict(name=name, stride=stride, padding=padding, pad_value=pad_value,
                      inputs=(source,))
        if group == 1 and per_group == c:
            q = w.q.transpose(0, 2, 3, 1).reshape(o, -1)  # (O, ky, kx, C) like hwgen

            def build(weights, bits, thresholds, bias):
                return Conv2d(weights=weights.reshape(o, kh, kh, c), weight_bits=bits,
                              thresholds=thresholds, bias=bias, **common)
        elif group == c == o and per_group == 1:
            q = w.q.reshape(o, -1)

            def build(weights, bits, thresholds, bias):
                return DepthwiseConv2d(weights=weights.reshape(o, kh, kh), weight_bits=bits,
                                       thresholds=thresholds, bias=bias, **common)
        else:
            raise self.error(node, f"group {group} with {c} input and {o} output channels; "
                             f"hwgen reads group 1 (conv2d) or group = channels (depthwise)")
        acc = self.accumulation(name, x, q, scale[:, 0], w.bits, build, (o, ho, wo))
        if len(node.input) > 2 and node.input[2]:
            bias = self.per_channel(node, self.exact(node, self.get(node, node.input[2]),
                                                     "bias"), o, "bias")
            acc.B = [b + v for b, v in zip(acc.B, bias, strict=True)]
        self.values[node.output[0]] = acc

    def padding(self, node, size: tuple[int, int], kernel: int,
                stride: int) -> tuple[str | tuple[int, int, int, int], tuple[int, int, int, int]]:
        """(hwgen's padding: "valid", "same" or the pads themselves; the pads (top, left,
        bottom, right) in effect) of a Conv."""
        auto = self.attr(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if auto == "VALID":
            return "valid", (0, 0, 0, 0)
        if auto == "SAME_UPPER":
            pads = [same_padding(n, kernel, stride) for n in size]
            return "same", (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
        if auto == "SAME_LOWER":  # the odd pixel before
            pads = [same_padding(n, kernel, stride)[::-1] for n in size]
            lower = (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
            return lower, lower
        if auto != "NOTSET":
            raise self.error(node, f"auto_pad {auto}; expected NOTSET, VALID, SAME_UPPER or "
                             f"SAME_LOWER")
        onnx_pads = [int(v) for v in self.attr(node, "pads", [0, 0, 0, 0])]
        pads = (onnx_pads[0], onnx_pads[1], onnx_pads[2], onnx_pads[3])  # ONNX: t, l, b, r
        if not any(pads):
            return "valid", pads
        same = [same_padding(n, kernel, stride) for n in size]
        outs = [(n + pads[d] + pads[d + 2] - kernel) // stride + 1 for d, n in enumerate(size)]
        if all(pads[d] == same[d][0] and outs[d] == -(-n // stride)
               for d, n in enumerate(size)):
            return "same", pads
        if any(p >= kernel for p in pads):
            raise self.error(node, f"pads {list(pads)}: each must be below the kernel size "
                             f"{kernel}")
        return pads, pads

    def op_MaxPool(self, node) -> None:
        """A MaxPool of a quantized activation is hwgen's maxpool; one of a layer's
        accumulation (PyTorch's conv → pool → BatchNorm → quantizer) is the maxpool after the
        layer's thresholds, exact because the max commutes with the non-decreasing functions
        up to the quantizer (a falling one is refused when the quantizer is read)."""
        x = self.get(node, node.input[0])
        if isinstance(x, _Acc) and len(x.shape) == 3 and x.pool is None:
            size, stride = self.pool_window(node)
            c, h, w = x.shape
            x.pool = (self.layer_name(node.name), size, stride)
            x.pool_signs = [1] * c
            x.shape = (c, (h - size) // stride + 1, (w - size) // stride + 1)
            self.values[node.output[0]] = x
            return
        if not isinstance(x, _Act) or x.source is None or len(x.shape) != 3:
            raise self.error(node, "MaxPool on a tensor that is not a quantized (C, H, W) "
                             "activation or a convolution's (C, H, W) accumulation")
        size, stride = self.pool_window(node)
        c, h, w = x.shape
        name = self.layer_name(node.name)
        self.layers.append(MaxPool(name=name, size=size,
                                   stride=None if stride == size else stride,
                                   inputs=(x.source,)))
        self.types[name] = self.types[x.source]
        self.values[node.output[0]] = _Act(name, x.alpha, x.beta, (c, (h - size) // stride + 1,
                                           (w - size) // stride + 1), x.bits, x.signed)
        self.outputs[name] = (node.output[0], np.full(c, float(x.alpha)),
                              np.full(c, float(x.beta)))

    def pool_window(self, node) -> tuple[int, int]:
        """(size, stride) of a MaxPool or AveragePool with a square window, equal strides and
        no padding."""
        k = list(self.attr(node, "kernel_shape"))
        strides = list(self.attr(node, "strides", [1, 1]))
        if len(k) != 2 or k[0] != k[1] or strides[0] != strides[1]:
            raise self.error(node, f"kernel {k}, strides {strides}; hwgen pools square "
                             f"windows with equal strides")
        if any(self.attr(node, "pads", [0, 0, 0, 0])) or self.attr(node, "ceil_mode", 0) \
                or any(d != 1 for d in self.attr(node, "dilations", [1, 1])):
            raise self.error(node, f"padding, ceil_mode or dilation; hwgen reads a "
                             f"{node.op_type} without them")
        return k[0], strides[0]

    def op_AveragePool(self, node) -> None:
        """A k×k mean without padding: hwgen's depthwise_conv2d with every weight 1 (two-bit
        weights), whose sum is read as (α / k²)·sum + β; a quantizer (Quant, Trunc,
        MultiThreshold) must follow, as after any layer."""
        x = self.get(node, node.input[0])
        if not isinstance(x, _Act) or x.source is None or len(x.shape) != 3:
            raise self.error(node, "AveragePool on a tensor that is not a quantized (C, H, W) "
                             "activation")
        size, stride = self.pool_window(node)
        c, h, w = x.shape
        name = self.layer_name(node.name)

        def build(weights, bits, thresholds, bias):
            return DepthwiseConv2d(name=name, weights=weights.reshape(c, size, size),
                                   weight_bits=bits, thresholds=thresholds, bias=bias,
                                   stride=stride, padding="valid", pad_value=0,
                                   inputs=(x.source,))
        ones = np.ones((c, size * size), dtype=np.int64)
        acc = self.accumulation(name, x, ones, np.ones(c), 2, build,
                                (c, (h - size) // stride + 1, (w - size) // stride + 1))
        # the mean: the sum's scale and offset divided by k², exactly
        acc.A = [x.alpha / (size * size)] * c
        acc.B = [x.beta] * c
        self.values[node.output[0]] = acc

    def op_GlobalAveragePool(self, node) -> None:
        """The mean over positions: hwgen's global_sum_pool, whose sum is read as the
        activation (α / (H·W))·sum + β."""
        x = self.get(node, node.input[0])
        if not isinstance(x, _Act) or x.source is None or len(x.shape) != 3:
            raise self.error(node, "GlobalAveragePool on a tensor that is not a quantized "
                             "(C, H, W) activation")
        c, h, w = x.shape
        name = self.layer_name(node.name)
        self.layers.append(GlobalSumPool(name=name, inputs=(x.source,)))
        lo, hi = self.range_of(x.source)
        self.types[name] = width_for(h * w * lo, h * w * hi)
        act = self.values[node.output[0]] = _Act(name, x.alpha / (h * w), x.beta, (c,))
        self.outputs[name] = (node.output[0], np.full(c, float(act.alpha)),
                              np.full(c, float(act.beta)))

    def op_MatMul(self, node) -> None:
        self.matmul(node, self.get(node, node.input[0]), self.get(node, node.input[1]), True)

    def op_Gemm(self, node) -> None:
        if self.attr(node, "transA", 0):
            raise self.error(node, "transA = 1 is not supported")
        alpha, beta = float(self.attr(node, "alpha", 1.0)), float(self.attr(node, "beta", 1.0))
        self.matmul(node, self.get(node, node.input[0]), self.get(node, node.input[1]),
                    not self.attr(node, "transB", 0))
        acc = self.values[node.output[0]]
        a = _frac(alpha)
        acc.A = [v * a for v in acc.A]
        acc.B = [v * a for v in acc.B]
        if len(node.input) > 2 and node.input[2]:
            c = self.per_channel(node, self.exact(node, self.get(node, node.input[2]), "bias C"),
                                 acc.channels, "bias C")
            acc.B = [b + _frac(beta) * v for b, v in zip(acc.B, c, strict=True)]

    # elementwise ---------------------------------------------------------------------------

    def affine(self, node, x, a: list[Fraction] | Fraction, b: list[Fraction] | Fraction):
        """``a·x + b`` (per channel or scalars) of an accumulation or activation."""
        if isinstance(x, _Acc):
            n = x.channels
            a = a if isinstance(a, list) else [a] * n
            b = b if isinstance(b, list) else [b] * n
            if x.pool is not None:
                x.pool_signs = [sg * (-1 if ai < 0 else 1) for sg, ai in zip(x.pool_signs, a,
                                                                             strict=True)]
            if x.post:
                x.post.append(("affine", a, b))
            else:
                x.A = [ai * v for ai, v in zip(a, x.A, strict=True)]
                x.B = [ai * v + bi for ai, v, bi in zip(a, x.B, b, strict=True)]
            return x
        if isinstance(x, _Act) and x.source is not None:
            if isinstance(a, list) or isinstance(b, list):
                raise self.error(node, "a per-channel scale or bias on a quantized activation; "
                                 "only a scalar can be folded")
            return _Act(x.source, a * x.alpha, a * x.beta + b, x.shape, x.bits, x.signed,
                        x.order)
        raise self.error(node, "scales and biases apply to a layer's accumulation or a "
                         "quantized activation")

    def residual(self, node, a: _Act, b: _Act) -> _Acc:
        """The sum of two quantized activations of one scale: hwgen's add, its thresholds
        from the quantizer that follows."""
        if a.source is None or b.source is None or a.shape != b.shape or a.order is not None \
                or b.order is not None:
            raise self.error(node, "a residual add of two quantized activations of one shape")
        if a.alpha != b.alpha:
            raise self.error(node, f"the two inputs' scales differ ({float(a.alpha):g}, "
                             f"{float(b.alpha):g}); hwgen adds integers of one scale")
        name, sources = self.layer_name(node.name), (a.source, b.source)
        (alo, ahi), (blo, bhi) = self.range_of(a.source), self.range_of(b.source)
        channels = a.shape[0]

        def build(weights, bits, thresholds, bias):
            return AddLayer(name=name, inputs=sources, thresholds=thresholds)

        bounds = (np.full(channels, alo + blo), np.full(channels, ahi + bhi))
        return _Acc(name, None, 0, bounds, build, a.shape, [a.alpha] * channels,
                    [a.beta + b.beta] * channels)

    def operands(self, node):
        """(the tensor, the constant) of a binary elementwise node, in either order."""
        a, b = (self.get(node, t) for t in node.input[:2])
        constant = (_Const, _Weights)
        if isinstance(b, constant) and not isinstance(a, constant):
            return a, self.exact(node, b, "constant"), False
        if isinstance(a, constant) and not isinstance(b, constant):
            return b, self.exact(node, a, "constant"), True
        raise self.error(node, "one operand must be a constant (residual adds of two tensors "
                         "are not imported yet)")

    def constant_operand(self, node, x, c):
        if isinstance(x, _Acc):
            return self.per_channel(node, c, x.channels, "constant")
        if np.asarray(c).size != 1:
            raise self.error(node, "a per-channel constant on a quantized activation")
        return self.per_channel(node, c, 1, "constant")[0]

    def op_Add(self, node) -> None:
        a, b = (self.get(node, t) for t in node.input[:2])
        if isinstance(a, _Act) and isinstance(b, _Act):
            self.values[node.output[0]] = self.residual(node, a, b)
            return
        x, c, _ = self.operands(node)
        self.values[node.output[0]] = self.affine(node, x, Fraction(1),
                                                  self.constant_operand(node, x, c))

    def op_Sub(self, node) -> None:
        x, c, swapped = self.operands(node)
        c = self.constant_operand(node, x, c)
        neg = [-v for v in c] if isinstance(c, list) else -c
        if swapped:  # c − x
            self.values[node.output[0]] = self.affine(node, x, Fraction(-1), c)
        else:
            self.values[node.output[0]] = self.affine(node, x, Fraction(1), neg)

    def op_Mul(self, node) -> None:
        x, c, _ = self.operands(node)
        self.values[node.output[0]] = self.affine(node, x, self.constant_operand(node, x, c),
                                                  Fraction(0))

    def op_Div(self, node) -> None:
        x, c, swapped = self.operands(node)
        if swapped:
            raise self.error(node, "a constant divided by a tensor is not affine")
        c = self.constant_operand(node, x, c)
        values = c if isinstance(c, list) else [c]
        if any(v == 0 for v in values):
            raise self.error(node, "division by zero")
        inv = [1 / v for v in c] if isinstance(c, list) else 1 / c
        self.values[node.output[0]] = self.affine(node, x, inv, Fraction(0))

    def op_BatchNormalization(self, node) -> None:
        x = self.get(node, node.input[0])
        if not isinstance(x, _Acc):
            raise self.error(node, "BatchNorm on a tensor that is not a layer's accumulation")
        n = x.channels
        gamma, beta, mean, var = (np.asarray(self.const(node, i, what), dtype=np.float64)
                                  for i, what in ((1, "scale"), (2, "bias"), (3, "mean"),
                                                  (4, "variance")))
        eps = float(self.attr(node, "epsilon", 1e-5))
        for what, v in (("scale", gamma), ("bias", beta), ("mean", mean), ("variance", var)):
            if v.size not in (1, n):
                raise self.error(node, f"{what} has {v.size} values for {n} channels")
        a = np.broadcast_to(gamma / np.sqrt(var + eps), (n,))
        b = np.broadcast_to(beta, (n,)) - np.broadcast_to(mean, (n,)) * a
        self.values[node.output[0]] = self.affine(node, x, [_frac(v) for v in a],
                                                  [_frac(v) for v in b])

    def op_Relu(self, node) -> None:
        self.monotone(node, ("relu",))

    def op_Clip(self, node) -> None:
        lo = self.scalar(node, 1, "min") if len(node.input) > 1 and node.input[1] else -math.inf
        hi = self.scalar(node, 2, "max") if len(node.input) > 2 and node.input[2] else math.inf
        lo, hi = self.attr(node, "min", lo), self.attr(node, "max", hi)
        self.monotone(node, ("clip", lo, hi))

    def monotone(self, node, op: tuple) -> None:
        x = self.get(node, node.input[0])
        if not isinstance(x, _Acc):
            raise self.error(node, "on a tensor that is not a layer's accumulation (hwgen "
                             "folds it into the next quantizer)")
        x.post.append(op)
        self.values[node.output[0]] = x

    def passthrough(self, node) -> None:
        self.values[node.output[0]] = self.get(node, node.input[0])

    op_Identity = op_Dropout = passthrough

    def op_Flatten(self, node) -> None:
        self.reshape(node, self.get(node, node.input[0]))

    def op_Reshape(self, node) -> None:
        """To (batch, features): a flatten; (batch, g, C/g, H, W) and back after a Transpose
        of the two group axes: a channel shuffle (PyTorch's ShuffleNet idiom)."""
        self.const(node, 1, "shape")
        out = self.model.get_tensor_shape(node.output[0])
        x = self.get(node, node.input[0])
        if isinstance(x, _Act) and x.source is not None and len(x.shape) == 3 \
                and out is not None and len(out) == 5 and out[3:] == list(x.shape[1:]) \
                and out[1] * out[2] == x.shape[0]:
            self.values[node.output[0]] = _Grouped(x, out[1])
            return
        if isinstance(x, _Grouped):
            if not x.transposed or out is None or list(out[1:]) != list(x.act.shape):
                raise self.error(node, "a grouped view of channels must be transposed (axes 1 "
                                 "and 2) and reshaped back: a channel shuffle")
            name = self.layer_name(node.name)
            self.layers.append(ChannelShuffle(name=name, groups=x.groups,
                                              inputs=(x.act.source,)))
            self.types[name] = self.types[x.act.source]
            act = self.values[node.output[0]] = dataclasses.replace(x.act, source=name)
            self.tie(name, node.output[0], act)
            return
        if out is None or len(out) != 2:
            raise self.error(node, f"output shape {out}; hwgen reads reshapes to (batch, "
                             f"features) and the channel shuffle's (batch, g, C/g, H, W)")
        self.reshape(node, x)

    def tie(self, tensor: str, model_tensor: str, act: _Act) -> None:
        """Record that hwgen tensor ``tensor`` is ``act`` of the model's ``model_tensor``
        (checked by :func:`verify`)."""
        channels = act.shape[0]
        self.outputs[tensor] = (model_tensor, np.full(channels, float(act.alpha)),
                                np.full(channels, float(act.beta)))

    def op_Transpose(self, node) -> None:
        x = self.get(node, node.input[0])
        perm = list(self.attr(node, "perm", []))
        if not isinstance(x, _Grouped) or perm != [0, 2, 1, 3, 4] or x.transposed:
            raise self.error(node, f"perm {perm}; hwgen reads a Transpose only as the channel "
                             f"shuffle's swap of the two group axes of a (batch, g, C/g, H, W) "
                             f"view")
        self.values[node.output[0]] = dataclasses.replace(x, transposed=True)

    def op_Split(self, node) -> None:
        """Two equal halves along the channels: hwgen's channel_split."""
        x = self.get(node, node.input[0])
        if not isinstance(x, _Act) or x.source is None or x.order is not None:
            raise self.error(node, "Split of a tensor that is not a quantized activation")
        axis = self.attr(node, "axis", 0)
        sizes = None
        if len(node.input) > 1 and node.input[1]:
            sizes = [int(v) for v in self.const(node, 1, "split")]
        elif self.attr(node, "split", None) is not None:
            sizes = list(self.attr(node, "split"))
        channels = x.shape[0]
        if axis != 1 or len(node.output) != 2 or (sizes is not None
                                                  and sizes != [channels // 2] * 2) \
                or channels % 2:
            raise self.error(node, "hwgen reads a Split into two equal halves of the channels "
                             "(axis 1)")
        name = self.layer_name(node.name)
        self.layers.append(ChannelSplit(name=name, inputs=(x.source,)))
        for k, out in enumerate(node.output):
            half = f"{name}.{k}"
            self.types[half] = self.types[x.source]
            self.values[out] = _Act(half, x.alpha, x.beta, (channels // 2, *x.shape[1:]),
                                    x.bits, x.signed)
            self.tie(half, out, self.values[out])

    def op_Concat(self, node) -> None:
        xs = [self.get(node, t) for t in node.input]
        if self.attr(node, "axis", None) != 1 or any(
                not isinstance(x, _Act) or x.source is None or x.order is not None for x in xs):
            raise self.error(node, "hwgen reads a Concat of quantized activations along the "
                             "channels (axis 1)")
        first = xs[0]
        if any((x.alpha, x.beta, x.shape[1:]) != (first.alpha, first.beta, first.shape[1:])
               for x in xs):
            raise self.error(node, "the inputs' scales, offsets or positions differ; hwgen "
                             "joins integers of one scale")
        name = self.layer_name(node.name)
        self.layers.append(Concat(name=name, inputs=tuple(x.source for x in xs)))
        if all(self.types[x.source] == (1, False) for x in xs):
            self.types[name] = (1, False)
        else:
            ranges = [self.range_of(x.source) for x in xs]
            self.types[name] = width_for(min(r[0] for r in ranges), max(r[1] for r in ranges))
        act = self.values[node.output[0]] = _Act(
            name, first.alpha, first.beta, (sum(x.shape[0] for x in xs), *first.shape[1:]),
            self.types[name][0], self.types[name][1])
        self.tie(name, node.output[0], act)

    def reshape(self, node, x) -> None:
        if not isinstance(x, _Act):
            raise self.error(node, "flattening a tensor that is not a quantized activation")
        if len(x.shape) == 1:
            self.values[node.output[0]] = x
            return
        c, h, w = x.shape
        order = np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
        self.values[node.output[0]] = _Act(x.source, x.alpha, x.beta, (c * h * w,), x.bits,
                                           x.signed, order)

    # emitting ------------------------------------------------------------------------------

    def emit(self, node, x, quantizer: tuple, beta_codes: Fraction | int, alpha: float,
             levels: int | None = None) -> None:
        """The layer of accumulation ``x`` with ``quantizer`` as its output: output code c
        (0 … levels) stands for ``alpha·(c + beta_codes)``."""
        if not isinstance(x, _Acc):
            raise self.error(node, "a quantizer on a tensor that is not a layer's "
                             "accumulation (a weight, the input, or an accumulation)")
        if levels is None:
            levels = 1 if quantizer[0] == "bipolar" else quantizer[3] - quantizer[2]
        if x.pool is not None and min(x.pool_signs) < 0:
            raise self.error(node, f"channel {x.pool_signs.index(-1)} falls (a negative scale) "
                             f"between the MaxPool {x.pool[0]!r} and this quantizer; the max "
                             f"commutes with rising functions only (put the MaxPool after "
                             f"the quantizer)")
        weights = None if x.weights is None else x.weights.copy()
        lo, hi = x.bounds
        thresholds = []
        for o in range(x.channels):
            def code(acc: int, o=o, sign=1) -> int:
                return _code(sign * x.A[o] * acc + x.B[o], o, x.post, quantizer)

            slope = x.A[o] * math.prod((op[1][o] for op in x.post if op[0] == "affine"),
                                       start=Fraction(1))
            sign = -1 if slope < 0 else 1
            if sign < 0 and weights is None:
                raise self.error(node, "the sum of the residual add falls as its inputs rise "
                                 "(a negative scale); hwgen's add compares with ≥ only")
            if sign < 0:
                weights[o] = -weights[o]
            row_lo, row_hi = int(lo[o]), int(hi[o])  # the range is symmetric under negation
            if sign < 0:
                row_lo, row_hi = -int(hi[o]), -int(lo[o])
            exact = functools.partial(code, o=o, sign=sign)
            guesses = _float_thresholds(x.A[o] * sign, x.B[o], o, x.post, quantizer, levels,
                                        row_lo, row_hi)
            row, start = [], row_lo
            for k in range(1, levels + 1):
                t = None if guesses is None else int(guesses[k - 1])
                if t is None or not _is_first_reaching(exact, k, t, start, row_hi):
                    t = _first_reaching(exact, k, start, row_hi)
                row.append(t)
                start = min(t, row_hi + 1)
            thresholds.append(row)
        # an n-bit output has 2**n − 1 thresholds: those past the levels are never reached
        bits = max(1, levels.bit_length())
        never = int(max(np.abs(lo).max(), np.abs(hi).max())) + 1
        table = np.array([row + [never] * ((1 << bits) - 1 - levels) for row in thresholds],
                         dtype=np.int64)
        bits_w = self.flipped_bits(x, weights, lambda m: self.error(node, m))
        self.layers.append(x.build(weights, bits_w, table, None))
        self.types[x.name] = (bits, False)
        # code c stands for alpha·(c + beta_codes); hwgen's binary value v = 2c − 1
        if bits == 1:
            a = Fraction(alpha) / 2  # one bit: one level
            if quantizer[0] == "bipolar":
                act = _Act(x.name, _frac(alpha), Fraction(0), x.shape, 1)
            else:
                base = _frac(alpha) * Fraction(beta_codes)
                act = _Act(x.name, a, base + a, x.shape, 1)
        else:
            act = _Act(x.name, _frac(alpha), _frac(alpha) * Fraction(beta_codes), x.shape, bits)
        if x.pool is not None:  # the layer's codes, pooled: the model's tensor is the pool's
            pool, size, stride = x.pool
            self.layers.append(MaxPool(name=pool, size=size,
                                       stride=None if stride == size else stride,
                                       inputs=(x.name,)))
            self.types[pool] = self.types[x.name]
            act = dataclasses.replace(act, source=pool)
        self.values[node.output[0]] = act
        self.outputs[act.source] = (node.output[0], np.full(x.channels, float(act.alpha)),
                                    np.full(x.channels, float(act.beta)))

    def flipped_bits(self, x: _Acc, weights: np.ndarray, fail) -> int:
        """The weight bits of a layer whose falling rows were negated: one more when a
        negated −2**(n−1) needs it (n > 1); ``fail(message)`` makes the error otherwise."""
        bits = x.weight_bits
        if weights is not None and bits > 1 and weights.max() >= 1 << (bits - 1):
            if bits == MAX_WEIGHT_BITS:
                raise fail(f"a channel with a negative scale negates its "
                                 f"{bits}-bit weights, and −2**{bits - 1} has no "
                                 f"{bits}-bit negation; use a narrow-range weight quantizer")
            self.notes.append(f"{x.name}: {bits + 1}-bit weights: a negated row holds "
                              f"2**{bits - 1}")
            bits += 1
        return bits

    def finish(self, output: str) -> None:
        x = self.values.get(output)
        if isinstance(x, _Acc):
            self.scores_layer(x, output)
        elif isinstance(x, _Act) and x.source not in (None, INPUT) and len(x.shape) == 1:
            self.layers.append(Argmax(name=self.layer_name("argmax"),
                                      inputs=(x.source,)))
            self.notes.append(f"appended an argmax after {output!r}: the model ends in "
                              f"quantized scores")
        elif isinstance(x, tuple) and x[0] == "class":
            self.class_output = output
        else:
            raise SpecError(self.source, f"output {output!r}", "expected class scores or their "
                            "argmax, computed by at least one layer")

    def scores_layer(self, x: _Acc, output: str, argmax_node=None) -> None:
        if x.pool is not None:
            raise SpecError(self.source, f"output {output!r}", "a MaxPool of the class "
                            "scores; hwgen's scores come from a dense layer")
        if x.post:
            raise SpecError(self.source, f"output {output!r}", "a Relu or Clip after the last "
                            "layer's product; hwgen's scores are the raw accumulator")
        A, B = x.A, x.B
        if x.weights is None or len(x.shape) != 1:
            raise SpecError(self.source, f"output {output!r}", "the class scores must come "
                            "from a dense layer")
        weights = x.weights.copy()
        if any(a < 0 for a in A):
            weights = -weights
            A = [-a for a in A]
        if len(set(A)) != 1 or A[0] == 0:
            raise SpecError(self.source, f"output {output!r}", "the class scores have a "
                            "different scale per class; the argmax of integer scores would not "
                            "be the model's (only one positive scale for every class is exact)")
        offsets = [(b - min(B)) / A[0] for b in B]
        if any(v.denominator != 1 for v in offsets):
            raise SpecError(self.source, f"output {output!r}", "the class biases are not "
                            "whole multiples of the scores' scale; the argmax of integer scores "
                            "would not be the model's")
        bias = np.array([int(v) for v in offsets], dtype=np.int64)
        bits = self.flipped_bits(x, weights,
                                 lambda m: SpecError(self.source, f"output {output!r}", m))
        self.layers.append(x.build(weights, bits, None, bias if bias.any() else None))
        self.layers.append(Argmax(name=self.layer_name("argmax"),
                                  inputs=(x.name,)))
        self.scores = (output, float(A[0]), np.array([float(min(B))] * x.channels))
        if argmax_node is None:
            self.notes.append(f"appended an argmax after {output!r}: the model ends in class "
                              f"scores")

    def op_ArgMax(self, node) -> None:
        x = self.get(node, node.input[0])
        if self.attr(node, "select_last_index", 0):
            raise self.error(node, "select_last_index = 1; hwgen's ties go to the lowest index")
        if self.attr(node, "axis", 0) not in (1, -1):
            raise self.error(node, "axis must be the features (1 or -1)")
        self.class_of(node, x)

    def op_TopK(self, node) -> None:
        x = self.get(node, node.input[0])
        k = self.const(node, 1, "k")
        if k.size != 1 or int(k.reshape(-1)[0]) != 1 or not self.attr(node, "largest", 1):
            raise self.error(node, "only TopK with k = 1 and largest = 1 (an argmax)")
        if self.attr(node, "axis", -1) not in (1, -1):
            raise self.error(node, "axis must be the features (1 or -1)")
        self.class_of(node, x, output=node.output[1])

    def class_of(self, node, x, output: str | None = None) -> None:
        if isinstance(x, _Acc):
            self.scores_layer(x, node.input[0], argmax_node=node)
        elif isinstance(x, _Act) and x.source not in (None, INPUT) and len(x.shape) == 1:
            self.layers.append(Argmax(name=self.layer_name(node.name), inputs=(x.source,)))
        else:
            raise self.error(node, "an argmax of a tensor that is not a layer's output")
        self.values[output or node.output[0]] = ("class",)


def _quant_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """QONNX's integer range of a Quant."""
    if signed:
        return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - int(narrow)


def _round(u: Fraction, mode: str) -> int:
    if mode == "FLOOR":
        return math.floor(u)
    if mode == "CEIL":
        return math.ceil(u)
    return round(u)  # Fraction rounds half to even, as numpy's round


def _code(z: Fraction, o: int, post: list[tuple], quantizer: tuple) -> int:
    """The output code (0 … levels) of a channel ``o`` whose pre-function value is ``z``."""
    z = _post(z, o, post)
    kind = quantizer[0]
    if kind == "bipolar":
        return int(z >= 0)
    if kind == "quant":
        _, s, lo, hi, mode = quantizer
        return _round(min(max(z / s, Fraction(lo)), Fraction(hi)), mode) - lo
    if kind == "function":  # an integer-valued non-decreasing function, lo … hi
        return quantizer[1](z) - quantizer[2]
    table = quantizer[1][o]
    return sum(1 for t in table if z >= t)


def _post(z: Fraction, o: int, post: list[tuple]) -> Fraction:
    """``z`` through the monotone functions ``post`` of channel ``o`` (see :class:`_Acc`)."""
    for op in post:
        if op[0] == "relu":
            z = max(z, Fraction(0))
        elif op[0] == "clip":
            if op[1] != -math.inf:
                z = max(z, _frac(op[1]))
            if op[2] != math.inf:
                z = min(z, _frac(op[2]))
        else:
            z = op[1][o] * z + op[2][o]
    return z


def _is_first_reaching(code, k: int, t: int, lo: int, hi: int) -> bool:
    """Whether ``t`` is :func:`_first_reaching`'s answer (checked exactly, two calls)."""
    if t == hi + 1:
        return code(hi) < k
    return lo <= t <= hi and code(t) >= k and (t == lo or code(t - 1) < k)


def _float_thresholds(a: Fraction, b: Fraction, o: int, post: list[tuple], quantizer: tuple,
                      levels: int, lo: int, hi: int) -> np.ndarray | None:
    """For each level k = 1 … ``levels``, a guess of the least accumulation in lo … hi whose
    code (of ``a·acc + b`` through ``post`` and ``quantizer``) reaches k, by a bisection of
    every level at once in float64. Only a guess: the caller checks each exactly
    (:func:`_is_first_reaching`) and searches exactly where it is wrong. None for a
    quantizer without a float form."""
    kind = quantizer[0]
    if kind == "function":
        return None
    af, bf = float(a), float(b)

    def codes(acc: np.ndarray) -> np.ndarray:
        z = af * acc + bf
        for op in post:
            if op[0] == "relu":
                z = np.maximum(z, 0.0)
            elif op[0] == "clip":
                z = np.clip(z, float(op[1]), float(op[2]))
            else:
                z = float(op[1][o]) * z + float(op[2][o])
        if kind == "bipolar":
            return (z >= 0).astype(np.int64)
        if kind == "quant":
            _, step, q_lo, q_hi, mode = quantizer
            u = np.clip(z / float(step), q_lo, q_hi)
            rounded = {"FLOOR": np.floor, "CEIL": np.ceil}.get(mode, np.round)(u)
            return rounded.astype(np.int64) - q_lo
        table = np.array([float(t) for t in quantizer[1][o]])
        return np.searchsorted(table, z, side="right")

    k = np.arange(1, levels + 1)
    low = np.full(levels, float(lo))
    high = np.full(levels, float(hi + 1))  # hi + 1: not reached
    reached = codes(np.array([float(hi)]))[0] >= k
    high = np.where(reached, float(hi), high)
    for _ in range(int(hi - lo).bit_length() + 1):
        mid = np.floor((low + high) / 2)
        ok = codes(mid) >= k
        high = np.where(reached & ok, mid, high)
        low = np.where(reached & ~ok, mid + 1, low)
    return np.where(reached, low, float(hi + 1)).astype(np.int64)


def _first_reaching(code, k: int, lo: int, hi: int) -> int:
    """The least ``a`` in lo … hi with ``code(a) ≥ k`` (``code`` non-decreasing), or hi + 1."""
    if code(hi) < k:
        return hi + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if code(mid) >= k:
            hi = mid
        else:
            lo = mid + 1
    return lo


# -- the entry points ------------------------------------------------------------------------

def load_model(path: Path, source: str):
    """The ONNX file ``path`` read and cleaned (:func:`_cleaned`) as a qonnx ModelWrapper;
    :class:`SpecError` naming ``source`` for a file that is missing, too large, not ONNX, of
    an opset outside :data:`OPSET_RANGE`, or that QONNX cannot read."""
    try:
        import onnx
        from qonnx.core.modelwrapper import ModelWrapper
    except ImportError:
        raise SpecError(source, "", "reading ONNX needs the onnx extra: pip install "
                        "'hwgen[onnx]'") from None
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SpecError(source, "", "file not found") from None
    except OSError as exc:
        raise SpecError(source, "", f"cannot read ({reason(exc)})") from None
    if path.is_dir():
        raise SpecError(source, "", "is a folder, not an ONNX model")
    if size > MAX_MODEL_BYTES:
        raise SpecError(source, "", f"{size:,} bytes, larger than the {MAX_MODEL_BYTES:,} an "
                        f"hwgen network can hold")
    try:
        proto = onnx.load(os.fspath(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
        raise SpecError(source, "", f"not an ONNX model ({reason(exc)})") from None
    if not proto.graph.node:
        raise SpecError(source, "", "not an ONNX model (no graph nodes)")
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx") and not (
                OPSET_RANGE[0] <= opset.version <= OPSET_RANGE[1]):
            raise SpecError(source, "opset_import", f"ONNX opset {opset.version}; hwgen reads "
                            f"opsets {OPSET_RANGE[0]}..{OPSET_RANGE[1]}")
    try:
        model = _cleaned(ModelWrapper(proto))
    except Exception as exc:  # noqa: BLE001 - a malformed graph fails anywhere in qonnx
        raise SpecError(source, "", f"QONNX could not read the graph ({reason(exc)})") from None
    return model


def _cleaned(model):
    """QONNX's clean-up (shapes inferred, constants folded but for the quantizers on
    weights), keeping the model's node and tensor names; a node without a unique name gets
    ``<op>_<k>``."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (
        GiveUniqueParameterTensors,
        RemoveStaticGraphInputs,
        RemoveUnusedTensors,
    )
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    for node in model.graph.node:
        if node.op_type in ("Quant", "BipolarQuant", "Trunc", "MultiThreshold"):
            node.domain = "qonnx.custom_op.general"
    for t in (InferShapes(), GiveUniqueParameterTensors(),
              FoldConstants(exclude_op_types=["Quant", "BipolarQuant"]),
              FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs()):
        model = model.transform(t)
    seen: dict[str, int] = {}
    for node in model.graph.node:
        seen[node.name] = seen.get(node.name, 0) + 1
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if not node.name or seen[node.name] > 1:
            k = counts[node.op_type] = counts.get(node.op_type, -1) + 1
            node.name = f"{node.op_type}_{k}"
    return model


@dataclass(frozen=True)
class FloatOptions:
    """Post-training quantization of a float model (:mod:`hwgen.importers.ptq`): bits of the
    weights (one width, or one per weighted op before the classifier), the Relu outputs (one,
    or one per Relu), the classifier's weights and the input (ignored when the input's
    format is given), and the float calibration inputs (N × the model's input shape without
    the batch); ``activations``, the Relu outputs over them when already computed
    (:func:`hwgen.importers.ptq.relu_activations`); ``act_calibration``, how the Relu outputs'
    steps are chosen (:data:`hwgen.quant.CALIBRATIONS`)."""

    calibration: np.ndarray
    weight_bits: int | tuple[int, ...] = 8
    act_bits: int | tuple[int, ...] = 8
    classifier_bits: int = 8
    input_bits: int = 8
    activations: dict | None = None
    act_calibration: str = "minmax"


def calibration_inputs(model, x: np.ndarray, source: str) -> np.ndarray:
    """Calibration inputs shaped as the model's input without the batch (N rows)."""
    shape = tuple(model.get_tensor_shape(model.graph.input[0].name)[1:])
    x = np.asarray(x)
    size = int(np.prod(shape))
    if x.ndim < 1 or len(x) == 0 or x.size != len(x) * size or not np.issubdtype(
            x.dtype, np.number) or np.iscomplexobj(x):
        raise SpecError(source, "calibration", f"calibration inputs of shape {x.shape}; "
                        f"expected N × {shape} numbers")
    if not np.all(np.isfinite(x)):
        raise SpecError(source, "calibration", "calibration inputs hold NaN or infinity")
    return x.reshape(len(x), *shape).astype(np.float32)


def import_onnx(path: str | os.PathLike, *, input_format: InputFormat | None = None,
                float_options: FloatOptions | None = None,
                name: str | None = None) -> Imported:
    """Read the QONNX/ONNX model at ``path`` as a validated :class:`Imported` network;
    :class:`SpecError` (one line naming the file and the node) for anything that cannot be
    imported exactly. ``input_format`` gives the input's integer format when the model's input
    has no quantizer (and overrides none that it has: a model with one refuses it)."""
    path = Path(path)
    source = str(path)
    model = load_model(path, source)
    notes = []
    from .ptq import is_float_model, quantize_float_model

    if is_float_model(model):
        if float_options is None:
            raise SpecError(source, "", "a float model (no Quant, BipolarQuant or "
                            "MultiThreshold node); give --bits and --calibration to quantize "
                            "it after training")
        calibration = calibration_inputs(model, float_options.calibration, source)
        model, notes = quantize_float_model(
            model, calibration, source=source, weight_bits=float_options.weight_bits,
            act_bits=float_options.act_bits, classifier_bits=float_options.classifier_bits,
            input_bits=None if input_format is not None else float_options.input_bits,
            activations=float_options.activations,
            act_calibration=float_options.act_calibration)
    elif float_options is not None:
        raise SpecError(source, "", "the model is already quantized (it has Quant nodes); "
                        "--bits and --calibration are for float models")
    reader = _Reader(model, source, input_format)
    reader.notes += notes
    reader.read()
    if reader.input is None:
        raise SpecError(source, f"input {reader.input_name!r}", "no Quant or BipolarQuant on "
                        "the model input, so its integer format is unknown; give --input-bits "
                        "(and --input-signed, --input-scale)")
    net_name = name or re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "model"
    if not net_name[0].isalpha():
        net_name = f"m_{net_name}"
    layers, previous = [], INPUT
    for layer in reader.layers:  # a chain's inputs go without saying
        layers.append(dataclasses.replace(layer, inputs=()) if layer.inputs == (previous,)
                      else layer)
        previous = layer.name
    # the test split of a model is the NPZ <stem>.test.npz beside it (x inputs, y labels)
    dataset = path.with_name(f"{path.stem}.test.npz")
    network = Network(name=net_name[:MAX_NAME], input=reader.input, layers=layers,
                      source=source, arrays_source=source,
                      dataset=dataset if dataset.is_file() else None)
    return Imported(network=network, model=model, input_name=reader.input_name,
                    input_scale=reader.input_scale, input_from=reader.input_from,
                    outputs=reader.outputs, scores=reader.scores,
                    class_output=reader.class_output, notes=reader.notes)


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found over ``inputs`` inputs: how many classes agree, and per layer
    (and ``"scores"``) the inputs whose integer outputs differ."""

    inputs: int
    classes_equal: int
    mismatches: dict[str, int]

    @property
    def exact(self) -> bool:
        return self.classes_equal == self.inputs and not any(self.mismatches.values())


def model_input(imported: Imported, x: np.ndarray) -> np.ndarray:
    """The model's float32 input for hwgen input values ``x`` (N × hwgen input shape):
    ``input_scale · x``, channels first for an image."""
    xf = np.asarray(x, dtype=np.float64) * imported.input_scale
    if xf.ndim == 4:  # (N, H, W, C) → (N, C, H, W)
        xf = xf.transpose(0, 3, 1, 2)
    return xf.astype(np.float32)


def input_codes(imported: Imported, x: np.ndarray) -> np.ndarray:
    """hwgen input values for the model's float inputs ``x`` (N × the model's input shape
    without the batch): its input quantizer as QONNX's executor applies it (float32, clipped,
    half to even); channels last for an image."""
    t = imported.network.input_type
    lo, hi = (0, 1) if t.binary else t.range
    u = np.asarray(x, dtype=np.float32) / np.float32(imported.input_scale)
    if t.binary:
        v = np.where(u >= 0, 1, -1)
    else:
        v = np.round(np.clip(u, lo, hi)).astype(np.int64)
    if v.ndim == 4:
        v = v.transpose(0, 2, 3, 1)
    return v.reshape(len(v), *t.shape)


#: Inputs per run of QONNX's executor in :func:`verify`.
VERIFY_BATCH = 500


def _execute(model, input_name: str, xf: np.ndarray,
             wanted: set[str]) -> dict[str, np.ndarray]:
    """The ``wanted`` tensors of ``model`` (activations, batch first) for the batch ``xf``,
    by QONNX's executor: up to
    :data:`VERIFY_BATCH` inputs a run with the batch dimension rewritten (QONNX's
    ChangeBatchSize), or one at a time where the graph does not allow it (a Reshape to a
    constant shape with the batch in it)."""
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize

    def run(m, rows: np.ndarray) -> dict[str, np.ndarray]:
        out = execute_onnx(m, {input_name: rows}, return_full_exec_context=True)
        return {k: np.asarray(out[k]) for k in wanted}

    context: dict[str, list] = {}
    batched = {}
    for start in range(0, len(xf), VERIFY_BATCH):
        rows = xf[start:start + VERIFY_BATCH]
        out = None
        if len(rows) > 1:
            try:
                if len(rows) not in batched:
                    batched[len(rows)] = model.transform(ChangeBatchSize(len(rows)))
                out = run(batched[len(rows)], rows)
                if any(v.ndim == 0 or v.shape[0] != len(rows) for v in out.values()):
                    out = None
            except Exception:  # noqa: BLE001 - a graph that needs batch 1: one at a time
                out = None
        if out is None:
            parts = [run(model, row[None]) for row in rows]
            out = {k: np.concatenate([p[k] for p in parts]) if parts[0][k].ndim
                   else np.stack([p[k] for p in parts]) for k in wanted}
        for k, v in out.items():
            context.setdefault(k, []).append(v)
    return {k: np.concatenate(v) if v[0].ndim else np.stack(v) for k, v in context.items()}


def verify(imported: Imported, x: np.ndarray) -> VerifyResult:
    """Run hwgen input values ``x`` through QONNX's executor and hwgen's golden model and
    compare every layer output the import tied to a model tensor (as integers, after the
    import's α, β), the class scores (after their scale and offset) and the classes."""
    from .. import golden

    network = imported.network
    x = golden.check_inputs(network, np.asarray(x))
    ours = golden.run(network, x)
    wanted = {tensor for tensor, _, _ in imported.outputs.values()}
    wanted |= {t for t in (imported.scores and imported.scores[0], imported.class_output) if t}
    theirs = _execute(imported.model, imported.input_name, model_input(imported, x), wanted)
    mismatches = {}

    def integers(t: np.ndarray, alpha, beta) -> np.ndarray:
        """A model tensor as hwgen's integers, channels last, flat per input; NaN where a
        value is not within float rounding of an integer."""
        t = np.asarray(t, dtype=np.float64)
        if t.ndim == 4:
            t = t.transpose(0, 2, 3, 1)
        v = (t - beta) / alpha
        r = np.round(v)
        exact = np.abs(v - r) <= 1e-3 * np.maximum(1, np.abs(r))
        return np.where(exact, r, np.nan).reshape(len(x), -1)

    for layer, (tensor, alpha, beta) in imported.outputs.items():
        got = integers(theirs[tensor], alpha, beta)
        mismatches[layer] = int(np.sum(np.any(got != ours[layer].reshape(len(x), -1),
                                              axis=1)))
    if imported.scores is not None:
        tensor, scale, offset = imported.scores
        score_layer = network.layers[-2].name
        got = integers(theirs[tensor], scale, offset)
        mismatches["scores"] = int(np.sum(np.any(got != ours[score_layer], axis=1)))
        # the class of the scores as integers: float32 noise in the executor can break an
        # exact tie, which the model's arithmetic gives to the lowest class
        scores = np.where(np.isnan(got), theirs[tensor].reshape(len(x), -1) / scale, got)
        their_class = np.argmax(scores, axis=1)
    if imported.class_output is not None:
        their_class = theirs[imported.class_output].reshape(len(x))
    our_class = golden.predict(network, x)
    return VerifyResult(len(x), int(np.sum(their_class == our_class)), mismatches)
