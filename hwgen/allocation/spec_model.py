"""An hwgen spec seen as widths to choose: each weighted layer's weights, at most as wide as
the spec has them, re-quantized from the spec's own integer weights; measured against the
spec's own outputs (docs/allocation.md, "On an hwgen spec").

The spec is the reference, as the float model is for :class:`~.float_model.FloatModel`. A
layer's weights ``W`` (``b0`` bits) at ``b < b0`` bits become, per output channel ``o``,
``w = clip(round(W / α_o), ±(2^(b−1) − 1))`` with the step ``α_o`` of least squared error
on the channel's weights (an error-minimizing step search, :func:`_scales`), or at one bit
``w = sign(W)`` (±1) with ``α_o = mean|W_o|``, the least-squares scale of a sign. The
accumulator shrinks by ``α_o`` and the layer's output stage takes the factor back, so every
tensor downstream keeps its type: a requantize's ``multiplier/2^shift`` is multiplied by
``α_o``, thresholds are divided by it (rounded up), a bias too (rounded). A raw accumulator
output (the classifier) has no stage to absorb a per-channel factor: its layer uses one ``α``
for all channels (the largest), allowed only where nothing but an argmax reads it (the
network's scores keep their order). Activations keep the spec's widths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .float_model import WEIGHT_BITS, Slot, WorkingSet

__all__ = ["SpecModel", "Requantized", "requantized_layer"]


@dataclass
class Requantized:
    """The network a choice of widths makes, and the factor its last layer's raw scores
    are to be multiplied by to be on the spec's scale (1 when the last layer is not raw)."""

    network: object
    score_scale: float = 1.0


#: The steps :func:`_scales` tries below the largest weight's, as fractions of it.
STEP_FRACTIONS = np.geomspace(0.1, 1.0, 40)


def _scales(matrix: np.ndarray, bits: int, per_channel: bool) -> np.ndarray:
    """Per output channel, the step ``α`` of ``bits``-bit weights for ``matrix`` (rows are
    channels; one value for all when not ``per_channel``): at one bit the mean magnitude (a
    sign's least-squares scale); else, of the powers of two from 1 up to the first that holds
    ``max|W|`` and the steps ``max|W|/(2^(b−1) − 1)`` × :data:`STEP_FRACTIONS` (clipping the
    largest weights for finer steps), the one of least squared rounding and clipping error,
    a power of two on a tie (weights that share one, or already fit, keep every value)."""
    w = np.abs(matrix.astype(np.float64))
    if not per_channel:
        w = w.reshape(1, -1)
    if bits == 1:
        alpha = w.mean(axis=1)
    else:
        top = (1 << (bits - 1)) - 1
        peak = np.maximum(w.max(axis=1), 1.0)
        powers = 2.0 ** np.arange(0, max(0, int(np.ceil(np.log2(peak.max() / top)))) + 1)
        steps = np.concatenate([np.broadcast_to(powers, (len(w), len(powers))),
                                peak[:, None] / top * STEP_FRACTIONS], axis=1)
        errors = np.stack([np.sum((w - np.minimum(np.rint(w / steps[:, j, None]), top)
                                   * steps[:, j, None]) ** 2, axis=1)
                           for j in range(steps.shape[1])], axis=1)
        alpha = steps[np.arange(len(w)), np.argmin(errors, axis=1)]
    alpha = np.where(alpha > 0, alpha, 1.0)
    return alpha if per_channel else np.full(len(matrix), alpha[0])


def requantized_layer(layer, bits: int, in_type) -> tuple[object, float]:
    """``layer`` (a dense, conv2d or depthwise_conv2d of the spec, input of type
    ``in_type``) with ``bits``-bit weights (module docstring) and its output stage rescaled,
    checked (a ``mac`` the spec pins that the new width refuses becomes ``"auto"``); and the
    factor its raw output is to be multiplied by (1.0 for thresholds or requantize). The
    layer itself at ``bits ≥`` its width. ``ValueError`` when no valid layer has these
    widths (no multiplier and shift hold the rescaled requantize)."""
    from ..errors import SpecError, Where
    from ..layers.weighted import MAX_SHIFT, REQUANTIZE_PRODUCT_BITS, Requantize

    if bits >= layer.weight_bits:
        return layer, 1.0
    matrix = layer.matrix.astype(np.int64)
    raw = layer.thresholds is None and layer.requantize is None
    alpha = _scales(matrix, bits, per_channel=not raw)
    if bits == 1:
        new = np.where(matrix >= 0, 1, -1)
    else:
        top = (1 << (bits - 1)) - 1
        new = np.clip(np.rint(matrix / alpha[:, None]), -top, top)
    changes: dict = {"weights": new.astype(np.int64).reshape(layer.weights.shape),
                     "weight_bits": bits}
    if layer.bias is not None:
        changes["bias"] = np.rint(layer.bias / alpha).astype(np.int64)
    if layer.thresholds is not None:
        changes["thresholds"] = np.ceil(layer.thresholds / alpha[:, None]).astype(np.int64)
    rescaled = dataclasses.replace(layer, **changes)
    if layer.requantize is not None:
        rq = layer.requantize
        lo, hi = rescaled.acc_bounds(in_type)
        acc = [max(abs(int(a)), abs(int(b))) for a, b in zip(lo, hi, strict=True)]
        multiplier, shift = [], []
        for o in range(len(alpha)):
            factor = alpha[o] * float(rq.multiplier[o])
            s = int(rq.shift[o])
            # the largest shift (the most precise multiplier) with |M| < 2^31 and every
            # acc·M + rounding within REQUANTIZE_PRODUCT_BITS signed bits; for α = 2^p, M·2^p
            # itself (exact) when it fits
            for k in range(MAX_SHIFT - s, -s - 1, -1):
                m = int(round(factor * 2.0 ** k))
                rounding = 1 << (s + k - 1) if s + k > 0 else 0
                if abs(m) < 1 << 31 and abs(m) * acc[o] + rounding < \
                        1 << (REQUANTIZE_PRODUCT_BITS - 1):
                    break
            else:
                raise ValueError(f"{layer.name} at {bits} bits: no multiplier and shift hold "
                                 f"channel {o}'s requantize")
            multiplier.append(m)
            shift.append(s + k)
        rescaled = dataclasses.replace(rescaled, requantize=Requantize(
            np.array(multiplier, dtype=np.int64), np.array(shift, dtype=np.int64), rq.bits,
            rq.signed))
    where = Where("<allocate>", "<allocate>", layer.name)
    try:
        rescaled, _ = rescaled.check([in_type], where)
    except SpecError as first:
        if layer.mac == "auto":
            raise ValueError(str(first)) from None
        try:
            rescaled, _ = dataclasses.replace(rescaled, mac="auto").check([in_type], where)
        except SpecError as exc:
            raise ValueError(str(exc)) from None
    return rescaled, float(alpha[0]) if raw else 1.0


class SpecModel:
    """The hwgen spec at ``path`` (a loaded :class:`~hwgen.spec.Network` ``network``) with
    calibration inputs ``x`` (integer codes, N × its input shape) and ``labels`` (default:
    the spec's own classes, when it ends in an argmax). Its slots are the weights of every
    weighted layer, their candidates the widths at most the spec's (only the spec's for a
    layer at 1 bit, or a raw output read by a layer other than an argmax)."""

    #: What :meth:`sensitivities` measures, for tables.
    sensitivity_name = "error"
    sensitivity_text = "the relative output error each width adds alone"

    def __init__(self, path: str | Path, network, x: np.ndarray,
                 labels: np.ndarray | None = None, *,
                 log: Callable[[str], None] | None = None):
        from .. import golden
        from ..layers.weighted import WeightedLayer

        say = log or (lambda text: None)
        self.path = Path(path)
        self.network = network
        self.x = golden.check_inputs(network, x)
        self.input_bits = network.input_type.bits
        layers = network.layers
        self.has_classes = layers[-1].kind == "argmax"
        self.scores_layer = layers[-2].name if self.has_classes else layers[-1].name
        readers: dict[str, list[str]] = {}
        for layer, sources in zip(layers, network.sources, strict=True):
            for source in sources:
                readers.setdefault(source.split(".")[0], []).append(layer.kind)
        self.weighted: list[str] = []
        self.slots: list[Slot] = []
        self.working_sets: list[WorkingSet] = []
        self._index = {layer.name: i for i, layer in enumerate(layers)}
        for i, layer in enumerate(layers):
            if not isinstance(layer, WeightedLayer):
                continue
            raw = layer.thresholds is None and layer.requantize is None
            in_type = network.input_types(i)[0]
            out_type = network.types[i + 1]
            read_by = readers.get(layer.name, [])
            only_argmax = bool(read_by) and all(kind == "argmax" for kind in read_by)
            scores = raw and all(kind == "argmax" for kind in read_by)  # not counted
            self.working_sets.append(WorkingSet(
                layer.name, None, in_type.size, None, out_type.size, in_bits=in_type.bits,
                out_bits=0 if scores else out_type.bits))
            self.weighted.append(layer.name)
            # a raw output read by another layer, or the network's output, keeps its width:
            # its scale would reach the readers, or the scores
            candidates = [layer.weight_bits] if raw and not only_argmax else [
                b for b in WEIGHT_BITS if b < layer.weight_bits] + [layer.weight_bits]
            candidates = tuple(b for b in candidates if self._valid(i, b))
            self.slots.append(Slot(f"w:{layer.name}", "weights", layer.name,
                                   int(layer.weights.size), candidates,
                                   fan_in=layer.in_features))
        if all(len(s.candidates) == 1 for s in self.slots):
            from ..errors import SpecError

            raise SpecError(str(path), "layers", "no layer's weights can be narrowed: every "
                            "weighted layer is at 1 bit, or a raw output read by another layer")
        say(f"running the spec's golden model on {len(self.x)} calibration inputs")
        self.reference = self._scores(network, 1.0)
        self.float_classes = np.argmax(self.reference, axis=1) if self.has_classes else None
        #: What the accuracy is counted against, for tables.
        self.accuracy_against = "the spec's own classes" if labels is None else "the labels"
        self.labels = (self.float_classes if labels is None else np.asarray(labels)) \
            if self.has_classes else None

    def _valid(self, index: int, bits: int) -> bool:
        """Whether layer ``index`` has a valid layer at ``bits`` (:func:`requantized_layer`)."""
        try:
            requantized_layer(self.network.layers[index], bits,
                              self.network.input_types(index)[0])
        except ValueError:
            return False
        return True

    def slot(self, key: str) -> Slot:
        return next(s for s in self.slots if s.key == key)

    def widths(self, choice: Mapping[str, int] | None = None,
               default: int | None = None) -> dict[str, int]:
        """Every slot's width: ``choice``'s, else ``default`` clamped into the slot's
        candidates, else the spec's own."""
        out = {}
        for s in self.slots:
            bits = (choice or {}).get(s.key, max(s.candidates) if default is None else default)
            out[s.key] = bits if bits in s.candidates else min(
                s.candidates, key=lambda b: (abs(b - bits), -b))
        return out

    def imported(self, widths: Mapping[str, int]) -> Requantized:
        """The network these widths make (module docstring), validated."""
        from ..spec import Network

        layers = list(self.network.layers)
        scale = 1.0
        for s in self.slots:
            i = self._index[s.layer]
            layers[i], factor = requantized_layer(layers[i], widths[s.key],
                                                  self.network.input_types(i)[0])
            if layers[i].name == self.scores_layer:
                scale = factor
        network = Network(self.network.name, self.network.input, layers,
                          dataset=self.network.dataset, source=self.network.source,
                          arrays_source=self.network.arrays_source)
        return Requantized(network, scale)

    def _scores(self, network, scale: float, x: np.ndarray | None = None) -> np.ndarray:
        from .. import golden

        x = self.x if x is None else golden.check_inputs(self.network, x)
        out = golden.run(network, x)[self.scores_layer]
        return np.asarray(out, np.float64).reshape(len(x), -1) * scale

    def error(self, imported: Requantized, x: np.ndarray | None = None) -> float:
        """The output's squared error from the spec's, relative to the spec's output's mean
        square (the scores before an argmax, else the last layer's output)."""
        reference = self.reference if x is None else self._scores(self.network, 1.0, x)
        got = self._scores(imported.network, imported.score_scale, x)
        return float(np.mean((got - reference) ** 2) / max(np.mean(reference ** 2), 1e-30))

    def measure(self, imported: Requantized, x: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> tuple[float, float | None]:
        """(relative output error (:meth:`error`), accuracy against ``labels`` — default
        the calibration labels — or None for a network without classes)."""
        loss = self.error(imported, x)
        if not self.has_classes:
            return loss, None
        labels = (self.labels if x is None else labels)
        if labels is None:
            labels = np.argmax(self._scores(self.network, 1.0, x), axis=1)
        predicted = np.argmax(self._scores(imported.network, imported.score_scale, x), axis=1)
        return loss, float(np.mean(predicted == labels))

    def sensitivities(self, log: Callable[[str], None] | None = None
                      ) -> dict[str, dict[int, float]]:
        """Per slot and candidate width: the relative output error (:meth:`error`) with that
        slot alone at that width and every other at the spec's own (0 at the spec's)."""
        say = log or (lambda text: None)
        reference = self.widths()
        table: dict[str, dict[int, float]] = {}
        for s in self.slots:
            row = {bits: 0.0 if bits == reference[s.key] else
                   self.error(self.imported({**reference, s.key: bits}))
                   for bits in s.candidates}
            table[s.key] = row
            say(f"  {s.key:<24s} " + "  ".join(f"{b}:{row[b]:.4f}" for b in s.candidates))
        return table
