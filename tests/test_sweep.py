"""hwgen.sweep: the Pareto marks on rows with known answers, and ``hwgen sweep`` building a
hand and a folded point on the process pool into one table and plot."""

import csv
import json

import pytest

from hwgen.cli import main
from hwgen.sweep import COLUMNS, pareto
from tests.helpers import save_mini_spec


def row(board, logic, rate, built=True):
    return {"board": board, "logic": logic, "inferences_per_second_at_fmax": rate,
            "built": built}


def test_pareto_keeps_what_nothing_beats_per_board():
    rows = [row("a", 100, 10), row("a", 200, 30), row("a", 150, 5), row("a", 200, 20),
            row("b", 300, 1), row("a", 50, 0, built=False)]
    pareto(rows)
    assert [r["pareto"] for r in rows] == [True, True, False, False, True, False]


def test_equal_points_are_both_on_the_front():
    rows = [row("a", 100, 10), row("a", 100, 10)]
    pareto(rows)
    assert [r["pareto"] for r in rows] == [True, True]


@pytest.mark.synth
def test_sweep_builds_every_point_on_the_pool(tmp_path, capsys):
    spec = save_mini_spec(tmp_path)
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--board", "icebreaker", "--fold", "hand,max",
                 "--jobs", "2", "-o", str(out)]) == 0
    assert "sweep of mini: 2 builds on 2 workers" in capsys.readouterr().out
    doc = json.loads((out / "sweep.json").read_text())
    hand, folded = doc["rows"]
    assert hand["built"] and folded["built"]
    assert "refolds" not in hand and folded["refolds"] == 0  # built as build --fold builds
    assert folded["cycles_per_inference"] < hand["cycles_per_inference"]
    assert hand["pareto"] and folded["pareto"]  # less logic / more inferences per second
    with open(out / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(COLUMNS) and [r["fold"] for r in table] == ["hand", "max"]
    assert (out / "pareto.png").read_bytes().startswith(b"\x89PNG")
    for r in doc["rows"]:
        assert json.loads((out / "points" / r["label"] / "report.json").read_text())[
            "cycles_per_inference"] == r["cycles_per_inference"]
    report = json.loads((out / "points" / folded["label"] / "report.json").read_text())
    assert report["refolds"] == [] and report["fold"]["cycles_per_inference"] == \
        folded["cycles_per_inference"]
