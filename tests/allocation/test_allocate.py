"""hwgen allocate end to end on a small float MLP: the widths within the budgets, the
accuracy measured on the imported network, the spec written, the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwgen import golden, spec
from hwgen.allocation.allocate import KIB, AllocationError, allocate
from hwgen.allocation.float_model import FloatModel
from hwgen.allocation.solve import weight_memory_bits
from hwgen.cli import main
from hwgen.importers.qonnx import input_codes
from tests.importers.test_ptq import float_mlp


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """The 20 → 16 → 8 → 4 float MLP, 120 calibration inputs, its sensitivities."""
    path = float_mlp(tmp_path_factory.mktemp("alloc") / "mlp.onnx")
    x = np.random.default_rng(1).random((120, 20)).astype(np.float32)
    model = FloatModel(path, x)
    return path, x, model, model.sensitivities()


def test_slots_and_working_sets_follow_the_graph(mlp):
    _, _, model, sensitivity = mlp
    assert [(s.key, s.elements) for s in model.slots] == [
        ("w:fc1", 320), ("w:fc2", 128), ("w:classifier", 32), ("a:fc1", 16), ("a:fc2", 8)]
    assert [(w.layer, w.in_slot, w.in_elements, w.out_slot, w.out_elements)
            for w in model.working_sets] == [("fc1", None, 20, "a:fc1", 16),
                                             ("fc2", "a:fc1", 16, "a:fc2", 8),
                                             ("classifier", "a:fc2", 8, None, 0)]
    assert all(sensitivity[s.key][8] == 0.0 for s in model.slots)  # the reference
    assert sensitivity["w:classifier"][2] > sensitivity["w:classifier"][16]


def test_allocation_meets_the_weight_budget_and_measures_the_imported_network(mlp):
    _, x, model, sensitivity = mlp
    result = allocate(model, weight_kb=1800 / KIB, sensitivity=sensitivity)
    assert weight_memory_bits(model.slots, result.widths) <= 1800
    layers = {layer.name: layer for layer in result.network.layers}
    assert [layers[n].weight_bits for n in ("fc1", "fc2")] == [
        result.widths["w:fc1"], result.widths["w:fc2"]]
    # the accuracy is the golden model's on the calibration inputs, against the float classes
    predicted = golden.predict(result.network, input_codes(result.imported, x))
    assert result.accuracy == pytest.approx(np.mean(predicted == model.float_classes))
    qbr = allocate(model, method="qbr", weight_kb=1800 / KIB, sensitivity=sensitivity)
    assert weight_memory_bits(model.slots, qbr.widths) <= 1800
    total = sum(sensitivity[k][b] for k, b in result.widths.items())
    assert total <= sum(sensitivity[k][b] for k, b in qbr.widths.items()) + 1e-12


def test_the_search_needs_no_sensitivity_and_scores_the_network_it_makes(mlp):
    from hwgen.allocation.float_model import INPUT_BITS
    from hwgen.allocation.proxies import qe_score
    from hwgen.allocation.solve import choice_qe_score

    _, _, model, _ = mlp
    result = allocate(model, method="search", weight_kb=1800 / KIB)
    assert result.sensitivity is None
    assert weight_memory_bits(model.slots, result.widths) <= 1800
    # the QE-Score from the slots is the imported network's
    assert choice_qe_score(model.slots, model.working_sets, result.widths, INPUT_BITS) == \
        pytest.approx(qe_score(result.network))


def test_a_budget_below_the_narrowest_widths_is_refused(mlp):
    _, _, model, sensitivity = mlp
    with pytest.raises(AllocationError, match=r"^no widths of mlp.onnx fit within 0\.05 KiB "
                       r"of weights: the narrowest need 0\.06 KiB of weights \(0\.\d\d with "
                       r"the thresholds\) and a working set of 0\.02 KiB$"):
        allocate(model, weight_kb=400 / KIB, sensitivity=sensitivity)


def test_allocation_folds_for_the_board(mlp):
    _, _, model, sensitivity = mlp
    result = allocate(model, board="icebreaker", sensitivity=sensitivity)
    assert result.fold is not None and result.network is result.fold.network
    assert all(not layer.leaves_folding() for layer in result.network.layers)


def test_cli_writes_the_spec_and_the_front(mlp, tmp_path, capsys):
    path, x, _, _ = mlp
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "mlp.toml"
    assert main(["allocate", str(path), "--calibration", str(tmp_path / "x.npy"),
                 "--weight-kb", "0.2", "--activation-kb", "0.05", "--board", "icebreaker",
                 "--pareto", str(tmp_path / "front.json"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "weights " in text and "of 0.20" in text and "QE-Score" in text
    assert "bottleneck:" in text  # the fold's table
    network = spec.load(out)
    assert out.read_text().startswith("# Written by hwgen allocate")
    assert sum(layer.weights.size * layer.weight_bits for layer in network.layers
               if hasattr(layer, "weight_bits")) <= 0.2 * KIB
    doc = json.loads((tmp_path / "front.json").read_text())
    kinds = {r["kind"] for r in doc["rows"]}
    assert kinds == {"ilp", "uniform"} and len(doc["rows"]) == 8 + 8  # widths, budgets
    # run again: hwgen replaces what it wrote
    assert main(["allocate", str(path), "--calibration", str(tmp_path / "x.npy"),
                 "-o", str(out)]) == 0


def test_cli_refusals_name_the_argument(tmp_path, capsys):
    (tmp_path / "mine.toml").write_text("# my own spec\n")
    np.save(tmp_path / "x.npy", np.zeros((4, 20), np.float32))
    np.save(tmp_path / "xc.npy", np.zeros((4, 20), np.complex64))
    np.save(tmp_path / "y7.npy", np.array([0, 1, 2, 7]))
    model = float_mlp(tmp_path / "m.onnx")
    cases = [
        (["allocate", str(tmp_path / "m.txt"), "--calibration", "x.npy"],
         "MODEL " + str(tmp_path / "m.txt") + ": expected a float .onnx model"),
        (["allocate", str(model), "--calibration", str(tmp_path / "x.npy"), "-o",
          str(tmp_path / "mine.toml")], "-o"),
        (["allocate", str(model), "--calibration", str(tmp_path / "x.npy"), "--fps", "10"],
         "--fps needs --board"),
        (["allocate", str(model), "--calibration", str(tmp_path / "x.npy"), "--pareto",
          str(tmp_path / "f.txt")], "--pareto " + str(tmp_path / "f.txt")),
        (["allocate", str(model), "--calibration", str(tmp_path / "none.npy")],
         "--calibration"),
        (["allocate", str(model)], "--calibration X.npy is needed for a float model"),
        (["allocate", str(model), "--calibration", str(tmp_path / "x.npy"), "--labels",
          str(tmp_path / "y7.npy")], "labels must be class numbers 0..3, found 7 at 3"),
        (["allocate", str(model), "--calibration", str(tmp_path / "xc.npy")],
         "calibration inputs of shape (4, 20); expected N × (20,) numbers"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "mine.toml").read_text() == "# my own spec\n"
    assert not (tmp_path / "m_allocated.toml").exists()
