"""Post-training quantization of a float ONNX model into QONNX, which :mod:`.qonnx` then
imports exactly.

A float model (no ``Quant``, ``BipolarQuant`` or ``MultiThreshold`` node) gets the quantizers
hwgen's export helpers (:mod:`hwgen.quant`) would choose:

- every weight of a ``MatMul``, ``Gemm`` or ``Conv``: a signed, narrow, per-output-channel
  ``Quant`` of ``weight_bits`` (one width, or one per weighted op before the classifier in
  graph order) with :func:`hwgen.quant.quantize_weights`' step (the largest
  magnitude of the channel on the largest code; 1 bit: a ``BipolarQuant`` whose per-channel
  scale is the mean magnitude); the last weighted layer (the classifier) takes
  ``classifier_bits``;
- every ``Relu`` output: an unsigned ``Quant`` of ``act_bits`` (one width, or one per
  ``Relu`` in graph order) with the step :func:`hwgen.quant.calibrate` chooses
  (``act_calibration``: min/max by default, a percentile or the least squared error) on the
  calibration inputs' float activations;
- the model input, unless its format is given: a ``Quant`` of ``input_bits``, unsigned when
  the calibration inputs hold no negative value, with the min/max step.

The rounding of the inserted quantizers is QONNX's ``ROUND`` (half to even). The result is an
ordinary QONNX model: the import is exact against it, as for a model trained with quantizers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import SpecError
from ..quant import calibrate, quantize_weights

__all__ = ["WEIGHTED_OPS", "is_float_model", "quantize_float_model", "weighted_ops",
           "relu_activations"]

#: The ops whose second input is a weight.
WEIGHTED_OPS = ("MatMul", "Gemm", "Conv")
_QUANTIZERS = ("Quant", "BipolarQuant", "MultiThreshold", "Trunc")
QONNX_DOMAIN = "qonnx.custom_op.general"


def is_float_model(model) -> bool:
    """Whether ``model`` (a qonnx ModelWrapper) has no quantizer at all."""
    return not any(n.op_type in _QUANTIZERS for n in model.graph.node)


def _out_axis(node, attr) -> int:
    """The output-channel axis of the node's weight: MatMul (in, out) 1, Gemm 0 with
    transB else 1, Conv (O, C, k, k) 0."""
    if node.op_type == "MatMul":
        return 1
    if node.op_type == "Gemm":
        return 0 if attr(node, "transB", 0) else 1
    return 0


def _classifier_bias(model, name: str):
    """(the node, the input index) holding the classifier's constant bias: Gemm's C, or the
    constant of an Add right after it; None for none."""
    node = next(n for n in model.graph.node if n.name == name)
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        return node, 2
    for n in model.find_consumers(node.output[0]) or []:
        if n.op_type == "Add":
            index = 1 if n.input[0] == node.output[0] else 0
            if model.get_initializer(n.input[index]) is not None:
                return n, index
    return None


def _input_step(model, tensor: str, steps: dict[str, float]) -> float | None:
    """The scale of the integers a float tensor holds: an inserted quantizer's step, through
    views and a global average pool (step / positions); None where unknown."""
    while tensor not in steps:
        producer = model.find_producer(tensor)
        if producer is None:
            return None
        if producer.op_type == "GlobalAveragePool":
            shape = model.get_tensor_shape(producer.input[0])
            inner = _input_step(model, producer.input[0], steps)
            return None if inner is None else inner / float(np.prod(shape[2:]))
        if producer.op_type not in ("Flatten", "Reshape", "Identity", "Dropout"):
            return None
        tensor = producer.input[0]
    return steps[tensor]


def weighted_ops(model) -> list[str]:
    """The names of ``model``'s ops with constant weights (``MatMul``, ``Gemm``, ``Conv``), in
    graph order; the last is the classifier."""
    return [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS
            and model.get_initializer(n.input[1]) is not None]


def relu_activations(model, calibration: np.ndarray) -> dict[str, np.ndarray]:
    """Every ``Relu`` output of ``model`` (a cleaned float ModelWrapper) over the
    ``calibration`` rows (N × the input shape without the batch), flattened: what the
    inserted activation quantizers are calibrated on, computed once by QONNX's executor.
    The model's output is there too, under its name, one row per input."""
    from qonnx.core.onnx_exec import execute_onnx

    input_name, output = model.graph.input[0].name, model.graph.output[0].name
    seen: dict[str, list] = {n.output[0]: [] for n in model.graph.node if n.op_type == "Relu"}
    outputs = []
    for row in calibration:
        context = execute_onnx(model, {input_name: row[None].astype(np.float32)},
                               return_full_exec_context=True)
        for name, values in seen.items():
            values.append(np.asarray(context[name]).reshape(-1))
        outputs.append(np.asarray(context[output]).reshape(-1))
    return {**{name: np.concatenate(values) for name, values in seen.items()},
            output: np.array(outputs)}


def _per_op(bits: int | Sequence[int], names: list[str], what: str,
            source: str) -> dict[str, int]:
    if isinstance(bits, int):
        return dict.fromkeys(names, bits)
    bits = list(bits)
    if len(bits) != len(names):
        raise SpecError(source, "", f"{len(bits)} {what} widths for {len(names)} "
                        f"{what}s ({', '.join(names)})")
    return dict(zip(names, bits, strict=True))


def quantize_float_model(model, calibration: np.ndarray, *, source: str,
                         weight_bits: int | Sequence[int], act_bits: int | Sequence[int],
                         classifier_bits: int, input_bits: int | None,
                         activations: dict[str, np.ndarray] | None = None,
                         act_calibration: str = "minmax"):
    """``model`` (a cleaned float ModelWrapper) with quantizers inserted as the module
    docstring says, calibrated on ``calibration`` (N × the model's input shape without the
    batch, floats); ``input_bits`` None leaves the input float (its format then comes from
    the import's options). ``activations``: :func:`relu_activations` of the same model and
    calibration, when already computed. Returns ``(model, notes)``."""
    from onnx import helper, numpy_helper

    graph = model.graph
    input_name = graph.input[0].name
    notes = []

    def attr(node, name, default):
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    weighted = weighted_ops(model)
    if not weighted:
        raise SpecError(source, "", "no MatMul, Gemm or Conv with constant weights to quantize")
    relus = [n for n in graph.node if n.op_type == "Relu"]
    widths = _per_op(weight_bits, weighted[:-1], "weighted op", source)
    act_widths = _per_op(act_bits, [n.output[0] for n in relus], "Relu", source)
    seen = activations if activations is not None else relu_activations(model, calibration)

    consts = []

    def const(name: str, value) -> str:
        consts.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def quant_node(x: str, out: str, scale, bits: int, signed: bool, narrow: bool):
        return helper.make_node(
            "Quant", [x, const(f"{out}_scale", scale), const(f"{out}_zero", 0.0),
                      const(f"{out}_bits", float(bits))], [out], name=f"{out}_quant",
            domain=QONNX_DOMAIN, signed=int(signed), narrow=int(narrow), rounding_mode="ROUND")

    nodes = []
    if input_bits is not None:
        signed = bool(np.min(calibration) < 0)
        step = calibrate(calibration, input_bits, signed)
        renamed = f"{input_name}_quantized"
        nodes.append(quant_node(input_name, renamed, step, input_bits, signed, False))
        for n in graph.node:
            for i, name in enumerate(n.input):
                if name == input_name:
                    n.input[i] = renamed
        notes.append(f"input: {'signed' if signed else 'unsigned'} {input_bits}-bit, step "
                     f"{step:g} (min/max of the calibration inputs)")
    steps: dict[str, float] = {}  # inserted activation quantizers: output → step
    if input_bits is not None:
        steps[renamed] = step
    classifier_bias = _classifier_bias(model, weighted[-1])
    for original in graph.node:
        n = type(original)()
        n.CopyFrom(original)
        if n.name == weighted[-1]:
            # one power-of-two scale for every class and the bias on the scores' grid, so
            # the scores' scale is one number and the bias a whole multiple of it
            w = model.get_initializer(n.input[1]).astype(np.float64)
            qmax = (1 << (classifier_bits - 1)) - 1
            peak = float(np.abs(w).max()) or 1.0
            scale = 2.0 ** math.ceil(math.log2(peak / qmax))
            out = f"{n.input[1]}_quantized"
            nodes.append(quant_node(n.input[1], out, scale, classifier_bits, True, True))
            n.input[1] = out
            step_in = _input_step(model, n.input[0], steps)
            if classifier_bias is not None and step_in is not None:
                holder, index = classifier_bias
                bias_out = f"{holder.input[index]}_quantized"
                nodes.append(quant_node(holder.input[index], bias_out,
                                        np.float32(step_in) * np.float32(scale), 32, True,
                                        False))
                holder.input[index] = bias_out
                if holder.name == n.name:
                    n.input[index] = bias_out
            elif classifier_bias is not None:
                notes.append("the classifier's bias stays float: its input's scale is not "
                             "known here")
        elif n.name in weighted:
            bits = widths[n.name]
            w = model.get_initializer(n.input[1]).astype(np.float64)
            axis = _out_axis(n, attr)
            moved = np.moveaxis(w, axis, 0)
            shape = [1] * w.ndim
            shape[axis] = w.shape[axis]
            if bits == 1:
                scale = np.abs(moved.reshape(len(moved), -1)).mean(axis=1)
                scale = np.where(scale > 0, scale, 1.0).reshape(shape)
                out = f"{n.input[1]}_quantized"
                nodes.append(helper.make_node(
                    "BipolarQuant", [n.input[1], const(f"{out}_scale", scale)], [out],
                    name=f"{out}_quant", domain=QONNX_DOMAIN))
            else:
                _, step = quantize_weights(moved, bits)
                out = f"{n.input[1]}_quantized"
                nodes.append(quant_node(n.input[1], out, step.reshape(shape), bits, True,
                                        True))
            n.input[1] = out
        if n.op_type == "Relu":
            name = n.output[0]
            step = calibrate(seen[name], act_widths[name], False, act_calibration)
            n.output[0] = f"{name}_float"
            nodes += [n, quant_node(n.output[0], name, step, act_widths[name], False, False)]
            steps[name] = step
        else:
            nodes.append(n)
    def described(bits) -> str:
        return f"{bits}" if isinstance(bits, int) else "/".join(map(str, bits))

    notes.append(f"post-training quantization: weights {described(weight_bits)}-bit per "
                 f"channel, the classifier {classifier_bits}-bit, {len(relus)} Relu output(s) "
                 f"{described(act_bits)}-bit unsigned ({act_calibration} over "
                 f"{len(calibration)} calibration inputs)")
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(consts)
    from qonnx.transformation.infer_shapes import InferShapes

    return model.transform(InferShapes()), notes


def float_predictions(model, x: np.ndarray) -> np.ndarray:
    """The classes a float model (ModelWrapper, its output the scores) gives inputs ``x``
    (N × its input shape without the batch), by QONNX's executor."""
    from qonnx.core.onnx_exec import execute_onnx

    name, out = model.graph.input[0].name, model.graph.output[0].name
    return np.array([int(np.argmax(execute_onnx(model, {name: row[None].astype(np.float32)})
                                   [out])) for row in x])
