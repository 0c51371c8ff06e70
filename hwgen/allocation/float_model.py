"""A float ONNX model seen as widths to choose: its slots (each weighted op's weights, each
Relu's output), the integer network a choice of widths makes (post-training quantization,
:mod:`hwgen.importers.ptq`), and what each choice measurably costs in accuracy.

Every figure is measured on hwgen's integer golden model of the imported network, which is
exact against QONNX's executor and bit-exact against the RTL: the allocation's accuracy is
the built design's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Slot", "FloatModel", "WEIGHT_BITS", "ACTIVATION_BITS", "CLASSIFIER_BITS",
           "REFERENCE_BITS", "INPUT_BITS"]

#: The widths a hidden layer's weights may take (1: ±1, a BipolarQuant).
WEIGHT_BITS = (1, 2, 3, 4, 5, 6, 8, 16)
#: The widths a Relu's output may take. One bit is left out: a Relu's output is ≥ 0, and
#: hwgen's 1-bit tensors are ±1, with no zero.
ACTIVATION_BITS = (2, 3, 4, 5, 6, 8)
#: The widths the classifier's weights may take (one power-of-two scale for every class
#: needs a sign and a magnitude: at least 2 bits).
CLASSIFIER_BITS = (2, 3, 4, 5, 6, 8, 16)
#: Every other slot's width while one slot's sensitivity is measured.
REFERENCE_BITS = 8
#: The model input's width (unsigned, min/max over the calibration inputs): fixed by the data.
INPUT_BITS = 8
#: Ops a tensor passes through unchanged in its element count's meaning (a layer's input is
#: the nearest Relu output or the model input upstream of them).
_PASS_THROUGH = ("MaxPool", "Flatten", "Reshape", "Transpose", "Identity", "Squeeze",
                 "Unsqueeze")


@dataclass(frozen=True)
class Slot:
    """One width to choose: ``kind`` ``"weights"`` (of weighted op ``layer``: ``elements``
    weights, ``fan_in`` = k_h·k_w·C inputs per output) or ``"activations"`` (the Relu after
    ``layer``: ``elements`` values per inference; ``level_bits``, one threshold per output
    channel in bits: a width b stores 2^b − 1 of them), among ``candidates``."""

    key: str
    kind: str
    layer: str
    elements: int
    candidates: tuple[int, ...]
    fan_in: int = 0
    level_bits: int = 0


@dataclass(frozen=True)
class WorkingSet:
    """A weighted layer's activations in flight: its input (``in_slot``'s width; when None,
    ``in_bits``, default the model input's) and its output (``out_slot``'s width; when None,
    ``out_bits``, default 0: the classifier's scores, not counted)."""

    layer: str
    in_slot: str | None
    in_elements: int
    out_slot: str | None
    out_elements: int
    in_bits: int | None = None
    out_bits: int = 0


class FloatModel:
    """The float ONNX model at ``path`` with its calibration inputs ``x`` (N × the model's
    input shape without the batch, floats) and their ``labels`` (default: the float model's
    own classes); ``act_calibration`` chooses the Relu outputs' steps
    (:data:`hwgen.quant.CALIBRATIONS`). :class:`~hwgen.spec.SpecError` for a model hwgen
    cannot quantize."""

    #: What :meth:`sensitivities` measures, for tables.
    sensitivity_name = "ΔKL"
    sensitivity_text = "the divergence from the float model each width adds alone"

    def __init__(self, path: str | Path, x: np.ndarray, labels: np.ndarray | None = None,
                 *, act_calibration: str = "minmax",
                 log: Callable[[str], None] | None = None):
        from ..errors import SpecError
        from ..importers.ptq import is_float_model, relu_activations, weighted_ops
        from ..importers.qonnx import calibration_inputs, load_model

        say = log or (lambda text: None)
        self.path = Path(path)
        self.input_bits = INPUT_BITS
        self.act_calibration = act_calibration
        source = str(path)
        self.model = load_model(self.path, source)
        if not is_float_model(self.model):
            raise SpecError(source, "", "the model is already quantized (it has Quant "
                            "nodes); hwgen allocate chooses the widths of a float model")
        self.x = calibration_inputs(self.model, x, source)
        self.weighted = weighted_ops(self.model)
        if len(self.weighted) < 2:
            raise SpecError(source, "", "one weighted op: nothing to allocate but the "
                            "classifier's width; use hwgen import --bits")
        say(f"running the float model on {len(self.x)} calibration inputs (QONNX executor)")
        self.activations = relu_activations(self.model, self.x)
        #: The float model's classes on the calibration inputs.
        self.float_classes = np.argmax(self.activations[self.model.graph.output[0].name],
                                       axis=1)
        self.labels = self.float_classes if labels is None else np.asarray(labels)
        #: What the accuracy is counted against, for tables.
        self.accuracy_against = ("the float model's own classes" if labels is None else
                                 "the labels")
        nodes = {n.name: n for n in self.model.graph.node}
        self.slots: list[Slot] = []
        relu_of: dict[str, str] = {}
        for name in self.weighted:
            node = nodes[name]
            weights = self.model.get_initializer(node.input[1])
            self.slots.append(Slot(f"w:{name}", "weights", name, int(weights.size),
                                   CLASSIFIER_BITS if name == self.weighted[-1] else
                                   WEIGHT_BITS, fan_in=_fan_in(node, weights)))
        for n in self.model.graph.node:
            if n.op_type != "Relu":
                continue
            owner = self._upstream(n.input[0], stop=("weighted",))
            if owner is None:
                raise SpecError(source, f"node {n.name or n.output[0]!r}", "a Relu that no "
                                "MatMul, Gemm or Conv feeds")
            shape = self.model.get_tensor_shape(n.output[0])
            relu_of[owner] = n.output[0]
            self.slots.append(Slot(f"a:{owner}", "activations", owner,
                                   int(np.prod(shape[1:])), ACTIVATION_BITS))
        #: Each Relu's activation slot, in graph order (the import's ``act_bits`` order).
        self.relu_slots = [f"a:{self._upstream(n.output[0], stop=('relu',))}"
                           for n in self.model.graph.node if n.op_type == "Relu"]
        self._with_threshold_widths()
        self.working_sets = []
        input_elements = int(np.prod(self.x.shape[1:]))
        for name in self.weighted:
            source_relu = self._upstream(nodes[name].input[0], stop=("relu",))
            in_slot = None if source_relu is None else f"a:{source_relu}"
            in_elements = (input_elements if in_slot is None else
                           self.slot(in_slot).elements)
            out = f"a:{name}" if name in relu_of else None
            self.working_sets.append(WorkingSet(
                name, in_slot, in_elements, out, 0 if out is None else self.slot(out).elements))

    def _with_threshold_widths(self) -> None:
        """Each activation slot's ``level_bits``: its layer's output channels × the bits of
        its thresholds in the network at :data:`REFERENCE_BITS` everywhere (an upper bound
        for narrower inputs and weights, whose accumulators are narrower)."""
        import dataclasses

        network = self.imported(self.widths()).network
        layers = {layer.name: layer for layer in network.layers}
        for i, s in enumerate(self.slots):
            layer = layers.get(s.layer)
            thresholds = getattr(layer, "thresholds", None)
            if s.kind != "activations" or thresholds is None:
                continue
            width = int(np.abs(thresholds).max()).bit_length() + 1  # signed
            self.slots[i] = dataclasses.replace(s, level_bits=thresholds.shape[0] * width)

    def _upstream(self, tensor: str, stop: tuple[str, ...]) -> str | None:
        """Walking up from ``tensor``: the weighted op it comes from (``"weighted"``: through
        bias Adds) or the weighted op whose Relu it is (``"relu"``: through pools and
        reshapes); None at the model input."""
        from ..importers.ptq import WEIGHTED_OPS

        while True:
            node = self.model.find_producer(tensor)
            if node is None:
                return None
            if "weighted" in stop and node.op_type in WEIGHTED_OPS and node.name in \
                    self.weighted:
                return node.name
            if "relu" in stop and node.op_type == "Relu":
                return self._upstream(node.input[0], stop=("weighted",))
            if node.op_type not in ("Add", *_PASS_THROUGH):
                return None
            # a bias Add: the input that is not a constant
            tensor = next((t for t in node.input if self.model.get_initializer(t) is None),
                          node.input[0])

    @property
    def classes(self) -> int:
        """How many class scores the model gives."""
        return int(self.activations[self.model.graph.output[0].name].shape[1])

    def slot(self, key: str) -> Slot:
        return next(s for s in self.slots if s.key == key)

    def widths(self, choice: Mapping[str, int] | None = None,
               default: int = REFERENCE_BITS) -> dict[str, int]:
        """Every slot's width: ``choice``'s, else ``default`` (clamped into the slot's
        candidates)."""
        out = {}
        for s in self.slots:
            bits = (choice or {}).get(s.key, default)
            out[s.key] = bits if bits in s.candidates else min(
                s.candidates, key=lambda b: (abs(b - bits), -b))
        return out

    def imported(self, widths: Mapping[str, int]):
        """The :class:`~hwgen.importers.qonnx.Imported` network these widths make."""
        from ..importers.qonnx import FloatOptions, import_onnx

        options = FloatOptions(
            self.x, weight_bits=tuple(widths[f"w:{n}"] for n in self.weighted[:-1]),
            act_bits=tuple(widths[key] for key in self.relu_slots),
            classifier_bits=widths[f"w:{self.weighted[-1]}"],
            input_bits=INPUT_BITS, activations=self.activations,
            act_calibration=self.act_calibration)
        return import_onnx(self.path, float_options=options)

    def scores(self, imported, x: np.ndarray | None = None) -> np.ndarray:
        """The imported network's class scores on ``x`` (default: the calibration inputs),
        dequantized to the float model's scale (``imported.scores``)."""
        from .. import golden
        from ..importers.qonnx import input_codes

        x = self.x if x is None else x
        network = imported.network
        scores_layer = network.layers[-2] if network.layers[-1].kind == "argmax" else \
            network.layers[-1]
        scores = golden.run(network, input_codes(imported, x))[scores_layer.name]
        scores = np.asarray(scores, np.float64).reshape(len(x), -1)
        if imported.scores is not None:
            _, a, b = imported.scores
            scores = scores * np.asarray(a, np.float64) + np.asarray(b, np.float64)
        return scores

    def measure(self, imported, x: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> tuple[float, float]:
        """(mean cross-entropy of the dequantized scores, accuracy) of the imported network
        on ``x``/``labels`` (default: the calibration inputs and labels)."""
        labels = self.labels if labels is None else labels
        scores = self.scores(imported, x)
        log_p = _log_softmax(scores)
        loss = float(-np.mean(log_p[np.arange(len(scores)), labels]))
        return loss, float(np.mean(np.argmax(scores, axis=1) == labels))

    def divergence(self, imported) -> float:
        """The mean KL divergence of the imported network's class distribution from the
        float model's, on the calibration inputs: how far the quantization moves the output,
        with no label noise in it."""
        reference = _log_softmax(self.activations[self.model.graph.output[0].name]
                                 .astype(np.float64))
        log_q = _log_softmax(self.scores(imported))
        return float(np.mean(np.sum(np.exp(reference) * (reference - log_q), axis=1)))

    def sensitivities(self, log: Callable[[str], None] | None = None
                      ) -> dict[str, dict[int, float]]:
        """Per slot and candidate width: the divergence from the float model
        (:meth:`divergence`) with that slot alone at that width and every other at
        :data:`REFERENCE_BITS`, less the divergence with all at the reference, and at least
        0 (a width that moves the output less than the reference does is as good as it, no
        better: the difference is the calibration set's noise). Not smoothed across widths:
        a 2-bit layer (ternary, the largest weight on its one step) can move the output more
        than the same layer at 1 bit (±1 scaled by the mean magnitude)."""
        say = log or (lambda text: None)
        reference = self.widths()
        base = self.divergence(self.imported(reference))
        table: dict[str, dict[int, float]] = {}
        for s in self.slots:
            row = {}
            for bits in s.candidates:
                if bits == reference[s.key]:
                    row[bits] = 0.0
                    continue
                row[bits] = max(0.0, self.divergence(self.imported({**reference,
                                                                     s.key: bits})) - base)
            table[s.key] = row
            say(f"  {s.key:<24s} " + "  ".join(f"{b}:{row[b]:.4f}" for b in s.candidates))
        return table


def _fan_in(node, weights: np.ndarray) -> int:
    """Inputs per output of a weighted op: MatMul (in, out), Gemm (out, in) with transB else
    (in, out), Conv (O, C/groups, k, k)."""
    if node.op_type == "Conv":
        return int(np.prod(weights.shape[1:]))
    trans_b = any(a.name == "transB" and a.i for a in node.attribute)
    return int(weights.shape[1] if node.op_type == "Gemm" and trans_b else weights.shape[0])


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
