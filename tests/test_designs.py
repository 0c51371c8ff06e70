"""The shipped reference designs re-checked against what README and docs/results.md state:
their golden-model accuracy on their test splits, their RTL bit-exact on those whole splits
(bulk, inside Verilator), and the README's main job, digits_bnn, built for the iCEBreaker and
the ULX3S-85F.

The default run keeps the fast representatives (digits_bnn and mnist_mixed in the golden
model; digits_bnn's whole split in RTL is tests/sim/test_runner.py's); ``pytest -m slow``
runs the rest (about an hour on 2 cores).
"""

from pathlib import Path

import numpy as np
import pytest

from hwgen import golden, spec

DESIGNS = Path(__file__).resolve().parents[1] / "designs"

#: Correct answers of the golden model on each design's whole test split, as README states.
STATED_CORRECT = {"digits_bnn": (435, 450), "mnist_cnn": (9773, 10000),
                  "mnist_mixed": (9831, 10000)}
#: Designs with synthetic weights: RTL checked on this many random inputs.
SYNTHETIC = {"cnv_w1a1": 300, "face32_bnn": 200, "human_detect": 2, "vww_shufflenet": 2}


#: The QONNX models trained with Brevitas (designs/train_brevitas.py); their accuracy under
#: QONNX's executor is in <name>.json, measured by the training script.
IMPORTED = {"tfc_w1a1": ["dense"] * 4, "sfc_w1a1": ["dense"] * 4,
            "cnv_mnist_w1a1": ["conv2d", "maxpool", "conv2d", "maxpool", "flatten", "dense",
                               "dense"]}


#: Float models (no quantizer) for hwgen allocate, by designs/train_mnist_float.py.
FLOAT = ("mnist_float",)


def test_every_shipped_design_is_listed_here():
    shipped = {p.stem for p in DESIGNS.glob("*.toml")}
    assert shipped == set(STATED_CORRECT) | set(SYNTHETIC)
    assert {p.stem for p in DESIGNS.glob("*.onnx")} == set(IMPORTED) | set(FLOAT)


@pytest.mark.parametrize("name", FLOAT)
def test_float_model_accuracy_is_as_stated(name):
    """By onnxruntime, independent of hwgen and QONNX, on the whole test split."""
    import json

    import onnxruntime

    session = onnxruntime.InferenceSession(str(DESIGNS / f"{name}.onnx"))
    with np.load(DESIGNS / "mnist_cnn.test.npz") as data:
        x = data["x"].reshape(len(data["x"]), -1).astype(np.float32) / 255
        y = data["y"]
    predicted = np.array([np.argmax(session.run(None, {"x": row[None]})[0]) for row in x])
    stated = json.loads((DESIGNS / f"{name}.json").read_text())["float_test_accuracy"]
    assert round(float(np.mean(predicted == y)), 4) == stated


#: Lattice's human-detection CNN: per mix of 16-bit (C) and 1-bit (B) layers, its table's
#: weight memory in KiB; and each layer's at 16 bits.
HUMAN_DETECT_KIB = {"CCCCCCC": 1371, "CCBBCCC": 1169, "CCBBBCC": 899, "CBBBBCC": 831,
                    "CBBBBBC": 291}
HUMAN_DETECT_LAYER_KIB_AT_16 = [3.4, 72, 72, 144, 288, 576, 216]


@pytest.mark.parametrize("mix", list(HUMAN_DETECT_KIB))
def test_hwgen_check_gives_lattices_human_detection_weight_totals(mix, tmp_path, capsys):
    import dataclasses

    from hwgen.cli import main

    shipped = spec.load(DESIGNS / "human_detect.toml")  # CBBBBBC; ±1 are 16-bit weights too
    convs = [layer for layer in shipped.layers if layer.kind == "conv2d"]
    bits = dict(zip([c.name for c in convs], [16 if m == "C" else 1 for m in mix],
                    strict=True))
    network = dataclasses.replace(shipped, layers=[
        dataclasses.replace(layer, weight_bits=bits[layer.name]) if layer.name in bits
        else layer for layer in shipped.layers])
    spec.save(network, tmp_path / f"{mix}.toml")
    assert main(["check", str(tmp_path / f"{mix}.toml")]) == 0
    memory = capsys.readouterr().out.split("memory (KB")[1].splitlines()
    rows = {line.split()[0]: line.split() for line in memory[3:] if line.strip()
            and not line.startswith("-") and not line.startswith("peak")}
    assert round(float(rows["total"][2])) == HUMAN_DETECT_KIB[mix]  # W KB, as built
    at_16 = [float(rows[c.name][3]) for c in convs]
    assert [round(kib, 1) for kib in at_16] == HUMAN_DETECT_LAYER_KIB_AT_16


#: The HAWQ report's Visual Wake Words ShuffleNetV2-0.5×, per stage (hwgen's layer-name
#: prefix): MACs in millions and the schemes (W bits, A bits read) of its bit table.
VWW_STAGES = {"conv3x3": "conv1", "stage1": "s1u", "stage2": "s2u", "stage3": "s3u",
              "conv1x1": "conv5"}
VWW_REPORT_MMACS = {"conv3x3": 6.0, "stage1": 4.6, "stage2": 7.2, "stage3": 4.1,
                    "conv1x1": 1.3}
VWW_REPORT_SCHEMES = {"conv3x3": {"W8A6"}, "stage1": {"W8A8"}, "stage2": {"W6A8", "W8A8"},
                      "stage3": {"W5A8", "W6A8", "W8A8"}, "conv1x1": {"W6A8"}}


def _vww_check(capsys) -> dict:
    import json

    from hwgen.cli import main

    assert main(["check", "--json", str(DESIGNS / "vww_shufflenet.toml")]) == 0
    return json.loads(capsys.readouterr().out)


def _vww_stage(name: str) -> str | None:
    return next((stage for stage, prefix in VWW_STAGES.items() if name.startswith(prefix)),
                None)


def test_hwgen_check_gives_the_vww_reports_per_stage_macs_and_bits(capsys):
    report = _vww_check(capsys)
    macs = dict.fromkeys(VWW_STAGES, 0)
    schemes = {stage: set() for stage in VWW_STAGES}
    for layer in report["layers"]:
        stage = _vww_stage(layer["name"])
        if stage is not None:
            macs[stage] += layer["macs"]
            if layer["scheme"] != "-":
                schemes[stage].add(layer["scheme"])
    assert macs == {"conv3x3": 5_971_968, "stage1": 4_603_392, "stage2": 7_195_392,
                    "stage3": 4_136_832, "conv1x1": 1_327_104}
    assert {stage: round(m / 1e6, 1) for stage, m in macs.items()} == VWW_REPORT_MMACS
    assert schemes == VWW_REPORT_SCHEMES
    assert report["totals"]["macs"] == sum(macs.values()) + 192 * 2  # + the classifier


def test_the_vww_reports_peak_activation_is_the_first_convs_input_and_output_at_8_bits(
        capsys):
    """The report's 243 KB is conv3×3's 96×96×3 input and 96×96×24 output at 8 bits
    (KiB); hwgen's largest pair is the maxpool's (216 + 54 KiB), which the report does not
    count."""
    report = _vww_check(capsys)
    layers = {layer["name"]: layer for layer in report["layers"]}
    conv = layers["conv1"]["memory"]["out_activations_kb"]
    image = {"actual": 96 * 96 * 3 * 6 / 8 / 1024, "8": 96 * 96 * 3 / 1024}
    assert image["8"] + conv["8"] == 243.0
    assert image["actual"] + conv["actual"] == 236.25
    pool = layers["pool1"]["memory"]["out_activations_kb"]
    assert conv["actual"] + pool["actual"] == 270.0
    totals = report["totals"]["memory"]
    assert totals["peak_working_set_kb"]["actual"] == totals["weights_kb"]["actual"] + 270.0


def _imported(name: str):
    import json

    from hwgen.importers.qonnx import import_onnx

    imported = import_onnx(DESIGNS / f"{name}.onnx")
    with np.load(imported.network.dataset) as data:
        x, y = data["x"], data["y"].reshape(-1)
    stated = json.loads((DESIGNS / f"{name}.json").read_text())
    return imported, x.reshape(len(x), *imported.network.input_type.shape), y, stated


@pytest.mark.parametrize("name", ["tfc_w1a1", "cnv_mnist_w1a1",
                                  pytest.param("sfc_w1a1", marks=pytest.mark.slow)])
def test_imported_model_equals_qonnx_executor_on_test_images(name):
    """The shipped QONNX file imports and agrees with QONNX's executor, layer by layer, on the
    first 200 test images (the whole split: the slow test below)."""
    from hwgen.importers.qonnx import verify

    imported, x, _, _ = _imported(name)
    assert [layer.kind for layer in imported.network.layers] == IMPORTED[name] + ["argmax"]
    result = verify(imported, x[:200])
    assert result.exact, result


@pytest.mark.slow
@pytest.mark.parametrize("name", list(IMPORTED))
def test_imported_model_accuracy_is_the_executors_on_the_whole_split(name):
    """The golden model's accuracy on all 10,000 test images is the one the training script
    measured with QONNX's executor, and the two agree on every image."""
    from hwgen.importers.qonnx import verify

    imported, x, y, stated = _imported(name)
    correct = int(np.sum(golden.predict(imported.network, x) == y))
    assert correct == round(stated["qonnx_test_accuracy"] * len(y))
    assert verify(imported, x).exact


@pytest.mark.slow
@pytest.mark.cocotb
@pytest.mark.parametrize("name", list(IMPORTED))
def test_imported_model_rtl_is_bit_exact_on_the_whole_split(name, tmp_path):
    from hwgen_sim.runner import verify_bulk

    imported, x, _, _ = _imported(name)
    result = verify_bulk(imported.network, x, tmp_path, gaps=0.1, backpressure=0.1, seed=1)
    assert result.ok, result.first_mismatch
    assert result.inferences == len(x)


def _split(name: str):
    network = spec.load(DESIGNS / f"{name}.toml")
    with np.load(network.dataset) as data:
        return network, data["x"], data["y"].reshape(-1)


@pytest.mark.parametrize("name", [
    "digits_bnn", "mnist_mixed", pytest.param("mnist_cnn", marks=pytest.mark.slow)])
def test_golden_accuracy_is_as_stated(name):
    network, x, y = _split(name)
    correct, total = STATED_CORRECT[name]
    assert len(y) == total
    assert int(np.sum(golden.predict(network, x).reshape(-1) == y)) == correct


@pytest.mark.slow
@pytest.mark.cocotb
@pytest.mark.parametrize("name", list(STATED_CORRECT))
def test_rtl_is_bit_exact_on_the_whole_test_split(name, tmp_path):
    """Every output and score of every test image compared inside the simulated design."""
    from hwgen_sim.runner import verify_bulk

    network, x, y = _split(name)
    result = verify_bulk(network, x, tmp_path, gaps=0.1, backpressure=0.1, seed=1)
    assert result.ok, result.first_mismatch
    assert result.inferences == len(x) == STATED_CORRECT[name][1]


@pytest.mark.slow
@pytest.mark.cocotb
@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_rtl_is_bit_exact_on_random_inputs(name, tmp_path):
    from hwgen_sim.runner import verify_bulk

    network = spec.load(DESIGNS / f"{name}.toml")
    t = network.input_type
    lo, hi = t.range
    rng = np.random.default_rng(0)
    count = SYNTHETIC[name]
    x = (rng.choice([-1, 1], size=(count, *t.shape)) if t.binary
         else rng.integers(lo, hi + 1, size=(count, *t.shape)))
    result = verify_bulk(network, x, tmp_path, gaps=0.1, backpressure=0.1, seed=2)
    assert result.ok, result.first_mismatch
    assert result.inferences == count


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.parametrize("board_name", ["icebreaker", "ulx3s-85f"])
def test_digits_bnn_builds_and_meets_timing(board_name, tmp_path):
    """The README's main job: the shipped design with the protocol top, placed and routed
    (once, one seed at the oscillator: the automatic clock has its own tests)."""
    from hwgen.toolchain.synth import build

    network = spec.load(DESIGNS / "digits_bnn.toml")
    out = tmp_path / f"digits_bnn-{board_name}"
    report = build(network, board_name, out, clock_mhz="osc", seeds=(1,))
    assert (out / report["bitstream"]).stat().st_size > 1000
    assert report["fmax_mhz"] >= report["clock_mhz"]
    logic = report["lcs"] or report["lut4"]
    assert 0 < logic["used"] <= logic["available"]


@pytest.mark.slow
@pytest.mark.synth
def test_sfc_w1a1_builds_from_its_qonnx_file_for_the_ulx3s(tmp_path):
    """Issue 18's end: the shipped QONNX file to a ULX3S-85F bitstream at the oscillator (one
    seed), through Yosys 0.70's re-integration assertion where that Yosys stops on it."""
    from hwgen.importers.qonnx import import_onnx
    from hwgen.toolchain.synth import YOSYS_RENAME_ASSERT, build

    network = import_onnx(DESIGNS / "sfc_w1a1.onnx").network
    out = tmp_path / "sfc_w1a1-ulx3s-85f"
    report = build(network, "ulx3s-85f", out, clock_mhz="osc", seeds=(1,))
    assert (out / report["bitstream"]).stat().st_size > 1000
    assert report["fmax_mhz"] >= report["clock_mhz"]
    assert report["bram"]["used"] == 27 and report["cycles_per_inference"] == 12544
    if "yosys_retry" in report:  # the first Yosys' report is kept beside the bitstream
        assert YOSYS_RENAME_ASSERT in (out / "top.first.rpt").read_text()
