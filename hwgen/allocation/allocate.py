"""``hwgen allocate``: per-layer widths for a float model (or an hwgen spec), chosen against
budgets, and the integer network they make, folded for the board (docs/allocation.md).

1. Every slot's sensitivity is measured on the calibration data
   (:meth:`FloatModel.sensitivities`, or for an hwgen spec :meth:`SpecModel.sensitivities`),
   except for ``search``, scored by the QE-Score.
2. One choice of widths is solved within the budgets (:mod:`.solve`: ``ilp``, ``qbr`` or
   ``search``): ``weight_kb`` bounds the weights; with a board and no ``weight_kb``, its
   block RAM and SPRAM bound the weights and the thresholds together; ``activation_kb``
   bounds the largest working set.
3. The choice is imported (post-training quantization, exact) and measured.
4. With a board, the network is folded for it (:func:`hwgen.fold.fold`, ``fps`` at
   ``clock_mhz``). When no folding fits, the parameter budget (weights and thresholds) is
   lowered to 85 % of the choice's and the widths solved again, at most :data:`REFITS`
   times.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..toolchain.boards import BoardError
from .float_model import FloatModel
from .proxies import qe_score
from .solve import SOLVERS, Budgets, parameter_bits, weight_memory_bits, working_set_bits
from .spec_model import SpecModel

__all__ = ["AllocationError", "Allocation", "allocate", "format_allocation", "board_memory_kb",
           "front", "restrict_candidates", "REFITS", "KIB", "FRONT_BUDGETS"]

#: How many times a choice that no folding fits is solved again with less weight memory.
REFITS = 3
#: Bits in a KiB.
KIB = 8192


class AllocationError(BoardError):
    """No widths fit the budgets (or no folding of them fits the board)."""


@dataclass
class Allocation:
    """What :func:`allocate` chose and measured."""

    model: FloatModel | SpecModel
    method: str
    budgets: Budgets
    sensitivity: dict[str, dict[int, float]] | None
    widths: dict[str, int]
    imported: object
    network: object
    loss: float
    accuracy: float | None
    fold: object | None = None
    refits: list[dict] = field(default_factory=list)

    @property
    def weight_kb(self) -> float:
        return weight_memory_bits(self.model.slots, self.widths) / KIB

    @property
    def parameter_kb(self) -> float:
        """Weights and thresholds."""
        return parameter_bits(self.model.slots, self.widths) / KIB

    @property
    def working_set_kb(self) -> float:
        return working_set_bits(self.model.working_sets, self.widths,
                                self.model.input_bits) / KIB

    @property
    def qe(self) -> float:
        return qe_score(self.network)


def board_memory_kb(board_name: str) -> float:
    """The weight memory a board offers: its block RAMs' bits (the widest unit of the
    family's block RAM in :data:`hwgen.resources.RAM_KINDS`) and its SPRAMs' (16 k × 16), in
    KiB."""
    from ..resources import RAM_KINDS
    from ..toolchain.boards import board
    from ..weight_image import SPRAM_DEPTH, SPRAM_WIDTH

    info = board(board_name)
    block = max(words * bits for kind in RAM_KINDS[info.family] if kind.kind == "bram"
                for words, bits, _ in kind.units)
    return (info.resources.get("bram", 0) * block
            + info.resources.get("spram", 0) * SPRAM_DEPTH * SPRAM_WIDTH) / KIB


def allocate(model: FloatModel | SpecModel, *, method: str = "ilp", weight_kb: float | None = None,
             activation_kb: float | None = None, board: str | None = None,
             fps: float | None = None, clock_mhz: float | None = None,
             sensitivity: dict | None = None,
             log: Callable[[str], None] | None = None) -> Allocation:
    """Widths for ``model`` (module docstring); ``sensitivity`` when already measured.
    :class:`AllocationError` when nothing fits."""
    from ..fold import FoldError, fold

    say = log or (lambda text: None)
    solve = SOLVERS[method]
    if sensitivity is None and method != "search":  # the search's proxy needs none
        widths = sum(len(s.candidates) for s in model.slots)
        say(f"measuring the sensitivity of {len(model.slots)} slots' {widths} widths, each "
            f"alone, on {len(model.x)} calibration inputs")
        sensitivity = model.sensitivities(log=say)
    parameters = None
    if weight_kb is None and board is not None:
        parameters = board_memory_kb(board) * KIB
        say(f"parameter budget: {board}'s block RAM and SPRAM, {parameters / KIB:,.1f} KiB "
            f"for the weights and the thresholds")
    budgets = Budgets(None if weight_kb is None else weight_kb * KIB,
                      None if activation_kb is None else activation_kb * KIB, parameters)
    refits: list[dict] = []
    while True:
        choice = solve(model.slots, model.working_sets, sensitivity, budgets,
                       model.input_bits)
        if choice is None:
            least = model.widths({s.key: min(s.candidates) for s in model.slots})
            raise AllocationError(
                f"no widths of {model.path.name} fit "
                + _budget_text(budgets)
                + f": the narrowest need {weight_memory_bits(model.slots, least) / KIB:,.2f} "
                f"KiB of weights ({parameter_bits(model.slots, least) / KIB:,.2f} with the "
                f"thresholds) and a working set of "
                f"{working_set_bits(model.working_sets, least, model.input_bits) / KIB:,.2f} KiB")
        widths = model.widths(choice)
        imported = model.imported(widths)
        loss, accuracy = model.measure(imported)
        result = Allocation(model, method, budgets, sensitivity, widths, imported,
                            imported.network, loss, accuracy, refits=refits)
        if board is None:
            return result
        try:
            result.fold = fold(imported.network, board, fps=fps, clock_mhz=clock_mhz)
        except FoldError as exc:
            if len(refits) == REFITS:
                raise AllocationError(f"{exc} (after {REFITS} smaller parameter budgets)") \
                    from None
            lower = 0.85 * parameter_bits(model.slots, widths)
            refits.append({"parameter_kb": round(result.parameter_kb, 3), "why": str(exc)})
            say(f"no folding of these widths fits {board} ({exc}); solving again within "
                f"{lower / KIB:,.1f} KiB of weights and thresholds")
            budgets = Budgets(budgets.weights, budgets.activations, lower)
            continue
        result.network = result.fold.network
        return result


def restrict_candidates(model: FloatModel | SpecModel, weights: tuple[int, ...] | None = None,
                        activations: tuple[int, ...] | None = None) -> None:
    """Keep only ``weights`` (``--weight-bits``) among the weight slots' candidate widths and
    ``activations`` (``--activation-bits``) among the activation slots'; :class:`AllocationError`
    naming the option when a slot would have none left (the classifier of a float model
    needs 2 bits or more, a spec's layer no more than its own width)."""
    import dataclasses

    for i, s in enumerate(model.slots):
        keep, option = ((weights, "--weight-bits") if s.kind == "weights" else
                        (activations, "--activation-bits"))
        if keep is None:
            continue
        left = tuple(b for b in s.candidates if b in keep)
        if not left:
            raise AllocationError(
                f"{option} {','.join(map(str, keep))}: none of these widths is one "
                f"{s.layer}'s {s.kind} can take ({', '.join(map(str, s.candidates))})")
        model.slots[i] = dataclasses.replace(s, candidates=left)


def _budget_text(budgets: Budgets) -> str:
    parts = []
    if budgets.weights is not None:
        parts.append(f"{budgets.weights / KIB:,.2f} KiB of weights")
    if budgets.parameters is not None:
        parts.append(f"{budgets.parameters / KIB:,.2f} KiB of weights and thresholds")
    if budgets.activations is not None:
        parts.append(f"a working set of {budgets.activations / KIB:,.2f} KiB")
    return "within " + " and ".join(parts) if parts else "without budgets"


def format_allocation(result: Allocation, float_accuracy: float | None = None) -> str:
    """One table: per weighted layer its weights' and output's widths with the sensitivity
    measured for each (the model's :attr:`sensitivity_name`; "-" for the search, which
    measures none, and for a width not chosen), then the totals against the budgets, the
    QE-Score and the accuracy (or, for a network without classes, the output error)."""
    m, w, sens = result.model, result.widths, result.sensitivity
    name = m.sensitivity_name

    def delta(key: str) -> str:
        return "-" if sens is None else f"{sens[key][w[key]]:.4f}"

    head = ["layer", "weights", "W", f"{name}(W)", "weight KiB", "out", "A", f"{name}(A)"]
    rows = []
    for ws in m.working_sets:
        if f"w:{ws.layer}" not in w:
            continue
        weights = m.slot(f"w:{ws.layer}")
        if ws.out_slot is not None:
            out = [f"{ws.out_elements:,}", str(w[ws.out_slot]), delta(ws.out_slot)]
        elif ws.out_bits:
            out = [f"{ws.out_elements:,}", f"{ws.out_bits} (fixed)", "-"]
        else:
            out = ["scores", "-", "-"]
        rows.append([ws.layer, f"{weights.elements:,}", str(w[weights.key]),
                     delta(weights.key), f"{weights.elements * w[weights.key] / KIB:.2f}",
                     *out])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(wd) if i == 0 else c.rjust(wd)
                         for i, (c, wd) in enumerate(zip(row, widths, strict=True)))

    lines = [fmt(head), "  ".join("-" * wd for wd in widths)] + [fmt(r) for r in rows]
    b = result.budgets
    lines.append(f"weights {result.weight_kb:,.2f} KiB"
                 + (f" of {b.weights / KIB:,.2f}" if b.weights is not None else "")
                 + f"; with the thresholds {result.parameter_kb:,.2f} KiB"
                 + (f" of {b.parameters / KIB:,.2f}" if b.parameters is not None else "")
                 + f"; largest working set {result.working_set_kb:,.2f} KiB"
                 + (f" of {b.activations / KIB:,.2f}" if b.activations is not None else ""))
    if sens is None:
        lines.append(f"method search: the highest QE-Score found, {result.qe:.2f}")
    else:
        lines.append(f"method {result.method}: least total {name} ({m.sensitivity_text}, "
                     f"{sum(sens[k][v] for k, v in w.items()):.4f} in all); QE-Score "
                     f"{result.qe:.2f}")
    if result.accuracy is None:
        lines.append(f"on the {len(m.x)} calibration inputs: output error {result.loss:.4f} "
                     f"(mean square, relative to the reference's; no classes to count)")
        return "\n".join(lines)
    acc = f"integer network {result.accuracy:.4f} (loss {result.loss:.4f})"
    if float_accuracy is not None:
        acc = f"float model {float_accuracy:.4f}, " + acc
    lines.append(f"accuracy on the {len(m.x)} calibration inputs, against "
                 f"{m.accuracy_against}: {acc}")
    return "\n".join(lines)


#: ``--pareto``: weight budgets on the front, spaced evenly in log from the narrowest widths'
#: weights to the reference's (8 bits everywhere for a float model, the spec's own widths).
FRONT_BUDGETS = 8


def front(model: FloatModel | SpecModel, sensitivity: dict | None, *,
          methods: tuple[str, ...] = ("ilp",),
          budgets_kb: list[float] | None = None, bits: tuple[int, ...] | None = None,
          x: np.ndarray | None = None, labels: np.ndarray | None = None,
          activation_kb: float | None = None, log: Callable[[str], None] | None = None
          ) -> list[dict]:
    """The accuracy-against-memory front: a row (``kind`` ``"uniform"``) per uniform width
    of ``bits`` (default: every candidate width), then a row per method and weight budget
    (``kind``: the method; default budgets :data:`FRONT_BUDGETS`); each with its widths,
    weight and parameter memory, largest working set, total sensitivity (None without a
    table), QE-Score, loss and accuracy on ``x``/``labels`` (default: the calibration data;
    accuracy None for a network without classes). A budget nothing fits is a row with
    ``fits`` false. ``log`` hears each row."""
    say = log or (lambda text: None)

    def row(kind: str, widths: dict[str, int], **extra) -> dict:
        imported = model.imported(widths)
        loss, accuracy = model.measure(imported, x, labels)
        out = {"kind": kind, **extra, "fits": True, "widths": widths,
               "weight_kb": round(weight_memory_bits(model.slots, widths) / KIB, 3),
               "parameter_kb": round(parameter_bits(model.slots, widths) / KIB, 3),
               "working_set_kb": round(working_set_bits(model.working_sets, widths,
                                                        model.input_bits) / KIB, 3),
               "sensitivity_sum": None if sensitivity is None else round(
                   sum(sensitivity[k][b] for k, b in widths.items()), 5),
               "qe_score": round(qe_score(imported.network), 3), "loss": round(loss, 6),
               "accuracy": accuracy}
        say(json.dumps({k: v for k, v in out.items() if k != "widths"}))
        return out

    bits = bits or tuple(sorted({b for s in model.slots for b in s.candidates}))
    rows = [row("uniform", model.widths(default=b), bits=b) for b in bits]
    if budgets_kb is None:
        narrowest = model.widths({s.key: min(s.candidates) for s in model.slots})
        budgets_kb = [float(kb) for kb in np.geomspace(
            weight_memory_bits(model.slots, narrowest),
            weight_memory_bits(model.slots, model.widths()), FRONT_BUDGETS) / KIB]
    for method in methods:
        for kb in budgets_kb:
            budgets = Budgets(kb * KIB, None if activation_kb is None else activation_kb * KIB)
            choice = SOLVERS[method](model.slots, model.working_sets, sensitivity, budgets,
                                     model.input_bits)
            rows.append(row(method, model.widths(choice), budget_kb=round(kb, 3))
                        if choice is not None else
                        {"kind": method, "budget_kb": round(kb, 3), "fits": False})
    return rows
