"""Choosing one width per slot under budgets: an integer program over the measured
sensitivities (HAWQ-V3 style), the QBR rule, and an evolutionary search scored by the
QE-Score (training-free: no sensitivity measured). Pure NumPy/SciPy over the slots' tables
(:class:`~hwgen.allocation.float_model.Slot`, ``WorkingSet``); docs/allocation.md.

A choice maps each slot's key to a width. Its costs:

- weight memory: Σ over weight slots of elements × width, in bits;
- parameter memory: the weight memory and the thresholds, Σ over activation slots of
  ``level_bits`` × (2^width − 1): what a board's block RAM and SPRAM must hold;
- activation memory: the largest working set, over the weighted layers, of input elements ×
  input width + output elements × output width, in bits (the model input's width is fixed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Budgets", "weight_memory_bits", "parameter_bits", "slot_memory_bits",
           "working_set_bits", "solve_ilp", "solve_qbr",
           "solve_search", "choice_qe_score", "SOLVERS"]


@dataclass(frozen=True)
class Budgets:
    """Upper bounds in bits (None: no bound) on the weight memory, the largest activation
    working set and the parameter memory (weights and thresholds)."""

    weights: float | None = None
    activations: float | None = None
    parameters: float | None = None


def slot_memory_bits(slot, bits: int) -> int:
    """What one slot at ``bits`` stores: its weights, or its thresholds."""
    return slot.elements * bits if slot.kind == "weights" else slot.level_bits * ((1 << bits) - 1)


def weight_memory_bits(slots: Sequence, choice: Mapping[str, int]) -> int:
    return sum(s.elements * choice[s.key] for s in slots if s.kind == "weights")


def parameter_bits(slots: Sequence, choice: Mapping[str, int]) -> int:
    return sum(slot_memory_bits(s, choice[s.key]) for s in slots)


def working_set_bits(working_sets: Sequence, choice: Mapping[str, int],
                     input_bits: int) -> int:
    def bits(key: str | None, elements: int, fixed: int) -> int:
        return elements * (fixed if key is None else choice[key])

    return max((bits(w.in_slot, w.in_elements, w.in_bits or input_bits)
                + bits(w.out_slot, w.out_elements, w.out_bits) for w in working_sets),
               default=0)


def fits(slots, working_sets, choice, budgets: Budgets, input_bits: int) -> bool:
    return ((budgets.weights is None
             or weight_memory_bits(slots, choice) <= budgets.weights)
            and (budgets.parameters is None
                 or parameter_bits(slots, choice) <= budgets.parameters)
            and (budgets.activations is None
                 or working_set_bits(working_sets, choice, input_bits) <= budgets.activations))


def solve_ilp(slots: Sequence, working_sets: Sequence,
              sensitivity: Mapping[str, Mapping[int, float]], budgets: Budgets,
              input_bits: int) -> dict[str, int] | None:
    """The choice of least total sensitivity within the budgets (SciPy ``milp``: one binary
    per slot and width, one width per slot; ties to the least weight memory, then the
    narrowest activations); None when no choice fits."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    columns = [(s, b) for s in slots for b in s.candidates]
    index = {(s.key, b): i for i, (s, b) in enumerate(columns)}
    n = len(columns)
    totals = {kind: max(1, sum(s.elements * max(s.candidates) for s in slots
                               if s.kind == kind)) for kind in ("weights", "activations")}
    # sensitivity first; ties go to the least weight memory, then the narrowest activations
    # (fewer thresholds to build), each scaled below any sensitivity step
    cost = np.array([sensitivity[s.key][b] for s, b in columns], dtype=np.float64)
    tie = np.array([s.elements * b / totals[s.kind] * (1e-6 if s.kind == "weights" else 1e-7)
                    for s, b in columns], dtype=np.float64)
    rows, lower, upper = [], [], []
    for s in slots:  # one width per slot
        row = np.zeros(n)
        for b in s.candidates:
            row[index[(s.key, b)]] = 1
        rows.append(row)
        lower.append(1)
        upper.append(1)
    if budgets.weights is not None:
        rows.append(np.array([s.elements * b if s.kind == "weights" else 0
                              for s, b in columns], dtype=np.float64))
        lower.append(-np.inf)
        upper.append(budgets.weights)
    if budgets.parameters is not None:
        rows.append(np.array([slot_memory_bits(s, b) for s, b in columns], dtype=np.float64))
        lower.append(-np.inf)
        upper.append(budgets.parameters)
    if budgets.activations is not None:
        for w in working_sets:
            row = np.zeros(n)
            fixed = ((w.in_elements * (w.in_bits or input_bits) if w.in_slot is None else 0)
                     + (w.out_elements * w.out_bits if w.out_slot is None else 0))
            for key, elements in ((w.in_slot, w.in_elements), (w.out_slot, w.out_elements)):
                if key is None:
                    continue
                for b in next(s for s in slots if s.key == key).candidates:
                    row[index[(key, b)]] += elements * b
            rows.append(row)
            lower.append(-np.inf)
            upper.append(budgets.activations - fixed)
    result = milp(cost + tie, integrality=np.ones(n), bounds=Bounds(0, 1),
                  constraints=LinearConstraint(np.array(rows), lower, upper))
    if result.x is None:
        return None
    return {s.key: b for (s, b), v in zip(columns, result.x, strict=True) if v > 0.5}


def solve_qbr(slots: Sequence, working_sets: Sequence,
              sensitivity: Mapping[str, Mapping[int, float]], budgets: Budgets,
              input_bits: int, start: int = 8) -> dict[str, int] | None:
    """The QBR rule from every slot at ``start`` bits: while the largest working set is over
    the activation budget, lower the wider of its activation widths by one step; then while
    the weights (or the parameters: weights and thresholds) are over their budget, take the
    step down of least sensitivity added per bit saved; then, while a step up of most
    sensitivity removed per bit added fits, take it. None when the rule cannot get within
    the budgets."""
    by_key = {s.key: s for s in slots}
    choice = {s.key: min(s.candidates, key=lambda b: (abs(b - start), -b)) for s in slots}

    def step(key: str, direction: int) -> int | None:
        widths = sorted(by_key[key].candidates)
        i = widths.index(choice[key]) + direction
        return widths[i] if 0 <= i < len(widths) else None

    def working(w) -> int:
        return working_set_bits([w], choice, input_bits)

    if budgets.activations is not None:
        while working_set_bits(working_sets, choice, input_bits) > budgets.activations:
            largest = max(working_sets, key=working)
            keys = [k for k in (largest.in_slot, largest.out_slot)
                    if k is not None and step(k, -1) is not None]
            if not keys:
                return None
            key = max(keys, key=lambda k: choice[k])
            choice[key] = step(key, -1)
    def memory(trial) -> tuple[int, int]:
        return weight_memory_bits(slots, trial), parameter_bits(slots, trial)

    def over(trial) -> tuple[bool, bool]:
        weights, parameters = memory(trial)
        return (budgets.weights is not None and weights > budgets.weights,
                budgets.parameters is not None and parameters > budgets.parameters)

    def price(key: str, new: int) -> float:
        bits = abs(slot_memory_bits(by_key[key], new) - slot_memory_bits(by_key[key],
                                                                          choice[key]))
        return abs(sensitivity[key][new] - sensitivity[key][choice[key]]) / max(bits, 1)

    if budgets.weights is None and budgets.parameters is None:
        return choice if fits(slots, working_sets, choice, budgets, input_bits) else None
    while any(over(choice)):
        weights_over, _ = over(choice)
        # over the weight budget: only weights help; over the parameters: thresholds too
        movable = [s for s in slots if (s.kind == "weights" or not weights_over)
                   and (s.kind == "weights" or s.level_bits) and step(s.key, -1) is not None]
        if not movable:
            return None
        _, key = min((price(s.key, step(s.key, -1)), s.key) for s in movable)
        choice[key] = step(key, -1)
    while True:
        ups = []
        for s in slots:
            new = step(s.key, +1)
            if new is None or (s.kind == "activations" and budgets.activations is not None):
                continue
            trial = {**choice, s.key: new}
            if not any(over(trial)) and \
                    sensitivity[s.key][new] < sensitivity[s.key][choice[s.key]]:
                ups.append((price(s.key, new), s.key, new))
        if not ups:
            break
        _, key, new = max(ups)
        choice[key] = new
    return choice if fits(slots, working_sets, choice, budgets, input_bits) else None


def choice_qe_score(slots: Sequence, working_sets: Sequence, choice: Mapping[str, int],
                    input_bits: int) -> float:
    """The QE-Score (:mod:`.proxies`) of a choice, from the slots' fan-ins and widths: each
    weighted layer's input width is its input slot's (the model input's ``input_bits``)."""
    import math

    from .proxies import SIGMA_A, qe_term

    by_layer = {s.layer: s for s in slots if s.kind == "weights"}
    total = math.log(SIGMA_A ** 2)
    for w in working_sets:
        weights = by_layer[w.layer]
        in_bits = (w.in_bits or input_bits) if w.in_slot is None else choice[w.in_slot]
        total += qe_term(weights.fan_in, in_bits, choice[weights.key])
    return total


def solve_search(slots: Sequence, working_sets: Sequence,
                 sensitivity: Mapping[str, Mapping[int, float]] | None, budgets: Budgets,
                 input_bits: int, *, population: int = 24, generations: int = 60,
                 seed: int = 0) -> dict[str, int] | None:
    """A small evolutionary search for the choice of highest QE-Score within the budgets
    (``sensitivity`` is not used: the proxy is training-free). It starts from the uniform
    choices that fit and random ones; each generation every member has a child with one slot
    moved one width up or down, children over budget are dropped, and the best
    ``population`` stay. Seeded: the same answer every run. None when nothing fits."""
    rng = np.random.default_rng(seed)
    keys = [s.key for s in slots]
    widths = {s.key: sorted(s.candidates) for s in slots}

    def ok(choice) -> bool:
        return fits(slots, working_sets, choice, budgets, input_bits)

    def score(choice) -> float:
        return choice_qe_score(slots, working_sets, choice, input_bits)

    start = [{k: min(widths[k], key=lambda b: (abs(b - u), -b)) for k in keys}
             for u in sorted({b for s in slots for b in s.candidates})]
    start += [{k: widths[k][int(rng.integers(len(widths[k])))] for k in keys}
              for _ in range(population)]
    members = {tuple(c[k] for k in keys): c for c in start if ok(c)}
    if not members:
        return None
    for _ in range(generations):
        for choice in list(members.values()):
            key = keys[int(rng.integers(len(keys)))]
            i = widths[key].index(choice[key]) + int(rng.choice([-1, 1]))
            if 0 <= i < len(widths[key]):
                child = {**choice, key: widths[key][i]}
                if ok(child):
                    members[tuple(child[k] for k in keys)] = child
        ranked = sorted(members.items(), key=lambda item: (-score(item[1]), item[0]))
        members = dict(ranked[:population])
    return max(members.values(), key=lambda c: (score(c), -weight_memory_bits(slots, c)))


#: ``hwgen allocate --method``: the solver of each (the CLI names them without importing
#: this module, to start fast).
SOLVERS = {"ilp": solve_ilp, "qbr": solve_qbr, "search": solve_search}
