"""The link fuzzer (issue 14): the host runtime and ``hwgen run`` against a fake board that
corrupts, truncates, delays, repeats, reorders, drops and invents answers
(tests/fuzz/fake_board.py). The invariant: every result the host hands out is the golden
model's, or the host says the link failed; a board that computes wrongly is caught by
``--check``; never a traceback.

The default run plays a seeded slice; ``-m slow`` plays many more seeds and prints the counts.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hwgen import golden, spec
from hwgen.runtime import Board, LinkError
from tests.fuzz.fake_board import FAULTS, FakeBoard
from tests.fuzz.invariant import assert_no_traceback, error_lines, run_main

DIGITS = Path(__file__).resolve().parents[2] / "designs" / "digits_bnn.toml"
TIMEOUT_S = 0.25


@pytest.fixture(scope="module")
def digits():
    network = spec.load(DIGITS)
    with np.load(network.dataset) as data:
        x = data["x"][:32]
    scores = golden.run(network, x)[network.layers[-2].name].reshape(len(x), -1)
    truth = [(int(c), tuple(int(v) for v in s))
             for c, s in zip(golden.predict(network, x), scores, strict=True)]
    return network, x, truth


def fault_mix(rng: np.random.Generator) -> dict[str, float]:
    """A random mix: mostly healthy answers, a few faults of a few kinds."""
    kinds = rng.choice(FAULTS[1:], size=int(rng.integers(1, 4)), replace=False)
    return {"ok": 4.0, **{str(k): float(rng.uniform(0.5, 2.0)) for k in kinds}}


def board_case(digits, seed: int, counts: Counter) -> None:
    """One seeded case of the runtime: check_network, then a few inferences."""
    network, x, truth = digits
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(x), size=5)
    with FakeBoard(network, rng, fault_mix(rng), delay_s=TIMEOUT_S) as fake, \
            Board(fake.port, network=network, timeout=TIMEOUT_S) as board:
        try:
            assert board.check_network() == fake.info
        except LinkError:
            counts["link errors"] += 1
        for i in picks:
            counts["requests"] += 1
            try:
                r = board.infer(x[i])
            except LinkError:
                counts["link errors"] += 1
                continue
            assert (r.predicted, r.scores) == truth[i], f"seed {seed}: a wrong result"
            counts["correct results"] += 1
        counts.update(f"fault {k}" for k in fake.applied.elements())
    counts["cases"] += 1


def run_case(digits, seed: int, tmp_path: Path, counts: Counter) -> None:
    """One seeded ``hwgen run`` (with --check when the board may lie) on the fake board."""
    network, x, truth = digits
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(x), size=4)
    check = bool(rng.random() < 0.5)
    folder = tmp_path / f"case{seed}"
    folder.mkdir()
    np.save(folder / "x.npy", x[picks])
    out = folder / "run.json"
    faults = fault_mix(rng) | ({"lie": 1.5} if check else {})
    with FakeBoard(network, rng, faults, delay_s=TIMEOUT_S, lie=check) as fake:
        argv = ["run", str(DIGITS), "--port", fake.port, "--inputs", str(folder / "x.npy"),
                "--timeout", str(TIMEOUT_S), "--json", str(out)] + (["--check"] if check
                                                                   else [])
        outcome = run_main(argv)
        lied = bool(fake.lies)
    assert_no_traceback(outcome)
    counts["cases"] += 1
    if outcome.code == 0:
        doc = json.loads(out.read_text())
        got = [(r["predicted"], tuple(r["scores"])) for r in doc["results"]]
        assert got == [truth[i] for i in picks], f"seed {seed}: exit 0 with a wrong result"
        counts["exit 0, every result right"] += 1
    else:
        assert outcome.code == 1, outcome.describe()
        if error_lines(outcome):
            counts["exit 1, link error"] += 1
        else:
            assert check and lied and "check: MISMATCH" in outcome.out, outcome.describe()
            counts["exit 1, check caught a wrong board"] += 1
        assert not out.exists() or error_lines(outcome) == [], outcome.describe()


@pytest.mark.parametrize("seed", range(12))
def test_runtime_never_hands_out_a_wrong_result(digits, seed):
    board_case(digits, seed, Counter())


@pytest.mark.parametrize("seed", range(6))
def test_hwgen_run_never_reports_a_wrong_result(digits, seed, tmp_path):
    run_case(digits, 1000 + seed, tmp_path, Counter())


@pytest.mark.slow
def test_link_fuzz_long(digits, tmp_path, capsys):
    counts_board, counts_run = Counter(), Counter()
    for seed in range(100, 400):
        board_case(digits, seed, counts_board)
    for seed in range(2000, 2150):
        run_case(digits, seed, tmp_path, counts_run)
    with capsys.disabled():
        print(f"\nlink fuzz, runtime.Board: {dict(sorted(counts_board.items()))}")
        print(f"link fuzz, hwgen run: {dict(sorted(counts_run.items()))}")
