"""Choosing one width per slot under budgets: an integer program over the measured
sensitivities (HAWQ-V3 style) and the QBR rule. Pure NumPy/SciPy over the slots' tables
(:class:`~hwgen.allocation.float_model.Slot`, ``WorkingSet``); docs/allocation.md.

A choice maps each slot's key to a width. Its costs:

- weight memory: Σ over weight slots of elements × width, in bits;
- activation memory: the largest working set, over the weighted layers, of input elements ×
  input width + output elements × output width, in bits (the model input's width is fixed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Budgets", "weight_memory_bits", "working_set_bits", "solve_ilp", "solve_qbr",
           "METHODS"]

#: ``hwgen allocate --method``.
METHODS = ("ilp", "qbr")


@dataclass(frozen=True)
class Budgets:
    """Upper bounds in bits (None: no bound) on the weight memory and the largest
    activation working set."""

    weights: float | None = None
    activations: float | None = None


def weight_memory_bits(slots: Sequence, choice: Mapping[str, int]) -> int:
    return sum(s.elements * choice[s.key] for s in slots if s.kind == "weights")


def working_set_bits(working_sets: Sequence, choice: Mapping[str, int],
                     input_bits: int) -> int:
    def bits(key: str | None, elements: int, fixed: int) -> int:
        return elements * (fixed if key is None else choice[key])

    return max(bits(w.in_slot, w.in_elements, input_bits)
               + bits(w.out_slot, w.out_elements, 0) for w in working_sets)


def fits(slots, working_sets, choice, budgets: Budgets, input_bits: int) -> bool:
    return ((budgets.weights is None
             or weight_memory_bits(slots, choice) <= budgets.weights)
            and (budgets.activations is None
                 or working_set_bits(working_sets, choice, input_bits) <= budgets.activations))


def solve_ilp(slots: Sequence, working_sets: Sequence,
              sensitivity: Mapping[str, Mapping[int, float]], budgets: Budgets,
              input_bits: int) -> dict[str, int] | None:
    """The choice of least total sensitivity within the budgets (SciPy ``milp``: one binary
    per slot and width, one width per slot; ties to the least weight memory); None when no
    choice fits."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    columns = [(s, b) for s in slots for b in s.candidates]
    index = {(s.key, b): i for i, (s, b) in enumerate(columns)}
    n = len(columns)
    total_weights = sum(s.elements * max(s.candidates) for s in slots if s.kind == "weights")
    # sensitivity first; the weight memory breaks ties (scaled below any sensitivity step)
    cost = np.array([sensitivity[s.key][b] for s, b in columns], dtype=np.float64)
    tie = np.array([s.elements * b if s.kind == "weights" else 0 for s, b in columns],
                   dtype=np.float64) / max(total_weights, 1) * 1e-6
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
    if budgets.activations is not None:
        for w in working_sets:
            row = np.zeros(n)
            fixed = w.in_elements * input_bits if w.in_slot is None else 0
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
    the weights are over their budget, take the step down of least sensitivity added per
    bit saved; then, while a step up of most sensitivity removed per bit added fits, take
    it. None when the rule cannot get within the budgets."""
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
    weights = [s for s in slots if s.kind == "weights"]

    def price(key: str, new: int) -> float:
        bits = abs(new - choice[key]) * by_key[key].elements
        return abs(sensitivity[key][new] - sensitivity[key][choice[key]]) / bits

    if budgets.weights is not None:
        while weight_memory_bits(slots, choice) > budgets.weights:
            downs = [(price(s.key, step(s.key, -1)), s.key) for s in weights
                     if step(s.key, -1) is not None]
            if not downs:
                return None
            _, key = min(downs)
            choice[key] = step(key, -1)
        while True:
            ups = []
            for s in weights:
                new = step(s.key, +1)
                if new is None:
                    continue
                trial = {**choice, s.key: new}
                if weight_memory_bits(slots, trial) <= budgets.weights and \
                        sensitivity[s.key][new] < sensitivity[s.key][choice[s.key]]:
                    ups.append((price(s.key, new), s.key, new))
            if not ups:
                break
            _, key, new = max(ups)
            choice[key] = new
    return choice if fits(slots, working_sets, choice, budgets, input_bits) else None
