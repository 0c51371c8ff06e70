"""The allocation's solvers on tables with known answers: the integer program against an
exhaustive search, the QBR rule step by step."""

import itertools

import numpy as np
import pytest

from hwgen.allocation.float_model import Slot, WorkingSet
from hwgen.allocation.solve import (
    Budgets,
    choice_qe_score,
    parameter_bits,
    solve_ilp,
    solve_qbr,
    solve_search,
    weight_memory_bits,
    working_set_bits,
)

INPUT_BITS = 8


def table(seed: int):
    """Three weight slots and two activation slots of a chain, with random sensitivities
    that fall as the widths grow."""
    rng = np.random.default_rng(seed)
    slots = [Slot("w:a", "weights", "a", 1000, (1, 2, 4, 8), fan_in=100),
             Slot("w:b", "weights", "b", 300, (1, 2, 4, 8), fan_in=64),
             Slot("w:c", "weights", "c", 50, (2, 4, 8), fan_in=32),
             Slot("a:a", "activations", "a", 64, (2, 4, 8), level_bits=64 * 12),
             Slot("a:b", "activations", "b", 32, (2, 4, 8), level_bits=32 * 10)]
    working = [WorkingSet("a", None, 100, "a:a", 64), WorkingSet("b", "a:a", 64, "a:b", 32),
               WorkingSet("c", "a:b", 32, None, 0)]
    sensitivity = {s.key: dict(zip(s.candidates, sorted(rng.random(len(s.candidates)),
                                                        reverse=True), strict=True))
                   for s in slots}
    return slots, working, sensitivity


def exhaustive(slots, working, sensitivity, budgets):
    best = None
    for widths in itertools.product(*(s.candidates for s in slots)):
        choice = {s.key: b for s, b in zip(slots, widths, strict=True)}
        if budgets.weights is not None and weight_memory_bits(slots, choice) > budgets.weights:
            continue
        if budgets.parameters is not None and parameter_bits(slots, choice) > \
                budgets.parameters:
            continue
        if budgets.activations is not None and working_set_bits(
                working, choice, INPUT_BITS) > budgets.activations:
            continue
        cost = sum(sensitivity[k][b] for k, b in choice.items())
        if best is None or cost < best[0] - 1e-12:
            best = (cost, choice)
    return best


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("weights, activations, parameters", [
    (3000, None, None), (6000, 1400, None), (None, 1000, None), (12000, 2000, None),
    (None, None, 40_000), (6000, None, 30_000)])
def test_the_integer_program_finds_the_exhaustive_optimum(seed, weights, activations,
                                                          parameters):
    slots, working, sensitivity = table(seed)
    budgets = Budgets(weights, activations, parameters)
    best = exhaustive(slots, working, sensitivity, budgets)
    choice = solve_ilp(slots, working, sensitivity, budgets, INPUT_BITS)
    assert best is not None and choice is not None
    assert sum(sensitivity[k][b] for k, b in choice.items()) == pytest.approx(best[0])
    assert weights is None or weight_memory_bits(slots, choice) <= weights
    assert activations is None or working_set_bits(working, choice, INPUT_BITS) <= activations
    assert parameters is None or parameter_bits(slots, choice) <= parameters


def test_qbr_lowers_thresholds_too_when_the_parameters_are_over():
    slots, working, sensitivity = table(1)
    # at 8 bits: weights 10,800 bits, thresholds (768 + 320) × 255 = 277,440
    choice = solve_qbr(slots, working, sensitivity, Budgets(None, None, 40_000), INPUT_BITS)
    assert parameter_bits(slots, choice) <= 40_000
    assert choice["a:a"] < 8 and choice["a:b"] < 8


def test_nothing_fits_below_the_narrowest_choice():
    slots, working, sensitivity = table(0)
    least = 1000 + 300 + 2 * 50  # every weight at its narrowest
    assert solve_ilp(slots, working, sensitivity, Budgets(least - 1), INPUT_BITS) is None
    assert solve_ilp(slots, working, sensitivity, Budgets(least), INPUT_BITS) is not None
    assert solve_qbr(slots, working, sensitivity, Budgets(least - 1), INPUT_BITS) is None
    # the model input's 100 × 8 bits are in every working set of the first layer
    assert solve_ilp(slots, working, sensitivity, Budgets(None, 800 + 2 * 64 - 1),
                     INPUT_BITS) is None


def test_qbr_lowers_the_largest_working_set_first_then_the_cheapest_weights():
    slots, working, _ = table(0)
    # the first layer's weights lose the least per bit saved
    sensitivity = {"w:a": {1: 0.01, 2: 0.005, 4: 0.001, 8: 0.0},
                   "w:b": {1: 1.0, 2: 0.5, 4: 0.1, 8: 0.0},
                   "w:c": {2: 1.0, 4: 0.5, 8: 0.0},
                   "a:a": {2: 0.3, 4: 0.1, 8: 0.0}, "a:b": {2: 0.3, 4: 0.1, 8: 0.0}}
    # working sets at 8 bits: 100·8 + 64·8 = 1312, 64·8 + 32·8 = 768, 32·8 = 256
    choice = solve_qbr(slots, working, sensitivity, Budgets(None, 1100), INPUT_BITS)
    assert choice["a:a"] == 4 and choice["a:b"] == 8  # 800 + 256 = 1056 ≤ 1100
    # 8 bits everywhere: 8·1350 = 10,800 bits; 6,000 allowed: w:a goes down, to 2 bits
    # (1000·2 + 300·8 + 50·8 = 4,800), then rises again while it fits: 4 bits = 6,800 > 6,000
    choice = solve_qbr(slots, working, sensitivity, Budgets(6000), INPUT_BITS)
    assert (choice["w:a"], choice["w:b"], choice["w:c"]) == (2, 8, 8)


@pytest.mark.parametrize("weights, activations", [(3000, None), (6000, 1400), (None, None)])
def test_the_search_finds_the_highest_qe_score_within_the_budgets(weights, activations):
    slots, working, _ = table(0)
    budgets = Budgets(weights, activations)
    best = max((choice_qe_score(slots, working, dict(zip([s.key for s in slots], widths,
                                                          strict=True)), INPUT_BITS), widths)
               for widths in itertools.product(*(s.candidates for s in slots))
               if (weights is None or sum(s.elements * b for s, b in zip(
                   slots, widths, strict=True) if s.kind == "weights") <= weights)
               and (activations is None or working_set_bits(working, dict(zip(
                   [s.key for s in slots], widths, strict=True)), INPUT_BITS) <= activations))
    choice = solve_search(slots, working, None, budgets, INPUT_BITS)
    assert choice_qe_score(slots, working, choice, INPUT_BITS) == pytest.approx(best[0])
    assert choice == solve_search(slots, working, None, budgets, INPUT_BITS)  # seeded


def test_qe_score_of_a_choice_worked_by_hand():
    import math

    from hwgen.allocation.proxies import SIGMA_A, sigma_hat

    slots, working, _ = table(0)
    choice = {"w:a": 2, "w:b": 4, "w:c": 8, "a:a": 4, "a:b": 2}
    expected = math.log(SIGMA_A ** 2) + sum(
        math.log(fan * sigma_hat(5, x) ** 2 * sigma_hat(4, w) ** 2 / 25)
        for fan, x, w in ((100, 8, 2), (64, 4, 4), (32, 2, 8)))
    assert choice_qe_score(slots, working, choice, INPUT_BITS) == pytest.approx(expected)
