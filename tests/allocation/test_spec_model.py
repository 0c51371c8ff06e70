"""hwgen allocate on an hwgen spec: its weights re-quantized to fewer bits with each layer's
output stage rescaled. The oracle is exactness: weights that a narrower width holds without
loss (every weight a multiple of a power of two, or ±c per channel at one bit) must give
exactly the spec's outputs, whatever the output stage; and Lattice's human-detection network
at 900 KiB gets a mix within the budget."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from hwgen import golden, spec
from hwgen.allocation.allocate import KIB, AllocationError, allocate, restrict_candidates
from hwgen.allocation.solve import weight_memory_bits
from hwgen.allocation.spec_model import SpecModel, requantized_layer
from hwgen.cli import main
from hwgen.spec import Input
from tests.helpers import chain, error_line

DESIGNS = Path(__file__).resolve().parents[2] / "designs"


def _coarse(layer, step: int):
    """``layer`` with every weight (and bias) a multiple of ``step``, at most 7·step in
    magnitude: 4 bits hold them exactly with α = step."""
    w = np.clip(np.rint(layer.weights / step), -7, 7).astype(np.int64) * step
    w.reshape(len(w), -1)[:, 0] = 7 * step  # every channel's α = 7·step / 7
    changes = {"weights": w}
    if layer.bias is not None:
        changes["bias"] = (layer.bias // step) * step
    return dataclasses.replace(layer, **changes)


def _network(argmax: bool = True):
    """A conv (8-bit weights, requantize u4), a pool, a dense (8-bit, 2-bit thresholds) and
    a raw 8-bit classifier, every weight a multiple of 16."""
    rng = np.random.default_rng(3)
    net, x = chain(rng, Input((6, 6, 2), 8), [
        dict(kind="conv2d", out=4, kernel=3, weight_bits=8, out_bits="u4", pe=1, simd=1,
             bias=True),
        dict(kind="maxpool", size=2),
        dict(kind="flatten"),
        dict(out=6, weight_bits=8, out_bits=2, pe=1, simd=1),
        dict(out=3, weight_bits=8, out_bits=None, pe=1, simd=1, bias=True)],
        count=40, argmax=argmax)
    layers = [_coarse(layer, 16) if layer.kind in ("conv2d", "dense") else layer
              for layer in net.layers]
    return spec.Network(net.name, net.input, layers), x


def test_a_width_that_holds_the_weights_exactly_changes_no_output():
    network, x = _network()
    model = SpecModel("net.toml", network, x)
    assert [(s.key, s.candidates) for s in model.slots] == [
        (f"w:{n}", (1, 2, 3, 4, 5, 6, 8)) for n in ("conv0", "fc3", "fc4")]
    at_4 = model.imported({s.key: 4 for s in model.slots})
    values, reference = golden.run(at_4.network, x), golden.run(network, x)
    for name in ("conv0", "fc3"):  # requantize, thresholds: the same outputs
        assert np.array_equal(values[name], reference[name])
    assert at_4.score_scale == 16.0  # the raw scores are the spec's / 16, exactly
    assert np.array_equal(values["fc4"] * 16, reference["fc4"])
    assert all(layer.weight_bits == 4 for layer in at_4.network.layers
               if layer.kind in ("conv2d", "dense"))
    sensitivity = model.sensitivities()
    assert all(sensitivity[s.key][b] == 0.0 for s in model.slots for b in (4, 5, 6, 8))
    assert all(sensitivity[s.key][2] > 0 for s in model.slots)
    # so the narrowest lossless widths are what a tight budget gets, at no error
    budget = weight_memory_bits(model.slots, {s.key: 4 for s in model.slots}) / KIB
    result = allocate(model, weight_kb=budget, sensitivity=sensitivity)
    assert set(result.widths.values()) == {4}
    assert result.loss == 0.0 and result.accuracy == 1.0


def test_one_bit_keeps_a_channel_of_plus_minus_c_exactly():
    network, x = _network()
    conv = network.layers[0]
    c = np.arange(1, conv.out_features + 1)[:, None, None, None] * 8
    signs = np.where(np.random.default_rng(0).random(conv.weights.shape) < 0.5, -1, 1)
    conv = dataclasses.replace(conv, weights=signs * c, bias=None)
    new, scale = requantized_layer(conv, 1, network.input_type)
    assert scale == 1.0 and np.array_equal(new.weights, signs)
    net = spec.Network("n", network.input, [conv])
    assert np.array_equal(golden.run(spec.Network("n", network.input, [new]), x)["conv0"],
                          golden.run(net, x)["conv0"])


def test_a_raw_output_another_layer_reads_is_not_narrowed():
    rng = np.random.default_rng(4)
    network, x = chain(rng, Input((8,), 8), [
        dict(out=6, weight_bits=8, out_bits=None, pe=1, simd=1),
        dict(out=3, weight_bits=1, out_bits=1, pe=1, simd=1)], count=10)
    with pytest.raises(spec.SpecError, match="no layer's weights can be narrowed"):
        SpecModel("n.toml", network, x)


def test_restricting_the_widths_names_the_option():
    network, x = _network()
    model = SpecModel("net.toml", network, x)
    restrict_candidates(model, (1, 8))
    assert {s.candidates for s in model.slots} == {(1, 8)}
    with pytest.raises(AllocationError, match=r"--weight-bits 16: none of these widths"):
        restrict_candidates(model, (16,))


def _human_detect(mix: str):
    sys.path.insert(0, str(DESIGNS))
    try:
        import make_synthetic
    finally:
        sys.path.remove(str(DESIGNS))
    return make_synthetic.human_detect(mix=mix)


def test_allocate_on_lattices_human_detection_at_900_kib(tmp_path, capsys):
    """The all-16-bit network (1371 KiB) with Lattice's choices, 16 or 1 bit per layer:
    `hwgen allocate --weight-kb 900` writes a mix within the budget."""
    spec.save(_human_detect("CCCCCCC"), tmp_path / "hd.toml")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(
        0, 256, (1, 128, 128, 3), dtype=np.uint8))
    out = tmp_path / "hd_900.toml"
    assert main(["allocate", str(tmp_path / "hd.toml"), "--calibration",
                 str(tmp_path / "x.npy"), "--weight-kb", "900", "--weight-bits", "1,16",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "of 900.00" in printed and "output error" in printed
    chosen = spec.load(out)
    bits = [layer.weight_bits for layer in chosen.layers if layer.kind == "conv2d"]
    kib = sum(layer.weights.size * layer.weight_bits for layer in chosen.layers
              if layer.kind == "conv2d") / KIB
    assert set(bits) == {1, 16} and kib <= 900
    assert main(["check", str(out)]) == 0


def test_allocate_on_a_spec_refuses_what_it_cannot_do(tmp_path, capsys):
    network, x = _network(argmax=False)
    spec.save(network, tmp_path / "net.toml")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.zeros(len(x), dtype=np.int64))
    np.save(tmp_path / "bad.npy", x[:, :5])
    base = ["allocate", str(tmp_path / "net.toml"), "-o", str(tmp_path / "o.toml")]
    for extra, expected in [
            (["--activation-kb", "1"], "--activation-kb: a spec's (or a quantized model's) "
             "activations keep"),
            (["--act-calibration", "mse"], "--act-calibration: a spec's (or a quantized "
             "model's) activations keep"),
            (["--calibration", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")],
             "not an argmax: it has no classes"),
            (["--calibration", str(tmp_path / "bad.npy")], f"--calibration {tmp_path}"),
            (["--weight-bits", "16"], "--weight-bits 16: none of these widths")]:
        assert main(base + extra) == 2
        assert expected in error_line(capsys)
    assert not (tmp_path / "o.toml").exists()
    # without --calibration and a test split: random inputs, said
    assert main(base + ["--weight-kb", "0.05"]) == 0
    assert "4 random inputs (seed 0)" in capsys.readouterr().out
    assert (tmp_path / "o.toml").exists()


def test_a_fine_requantize_is_rescaled_exactly():
    """A 30-bit multiplier to a u16 output: at α = 16 (weights multiples of 16) every
    reachable accumulator gives the spec's output, by hwgen's requantize arithmetic."""
    from hwgen.layers.weighted import Requantize, requantize

    rng = np.random.default_rng(5)
    w = rng.integers(-7, 8, size=(3, 4)) * 16
    w[:, 0] = 112
    multiplier = np.array([507_270_299, 400_000_001, 300_000_007])
    shift = np.array([30, 29, 28])
    layer = spec.Dense("fc", w, 8, requantize=Requantize(multiplier, shift, 16))
    x = spec.TensorType((4,), 4, False)
    new, _ = requantized_layer(layer, 4, x)
    assert np.array_equal(new.weights * 16, w)
    lo, hi = layer.acc_bounds(x)
    for o in range(3):
        acc = np.arange(lo[o], hi[o] + 1, 16)
        before = requantize(acc[:, None], multiplier[o:o + 1], shift[o:o + 1], 0, 65535)
        after = requantize(acc[:, None] // 16, new.requantize.multiplier[o:o + 1],
                           new.requantize.shift[o:o + 1], 0, 65535)
        assert np.array_equal(before, after), o


def test_weights_that_already_fit_keep_their_values():
    network, x = _network()
    conv = network.layers[0]
    small = np.clip(conv.weights, -3, 3) // 16 + 1  # every weight in -1 … 1 (8-bit field)
    conv = dataclasses.replace(conv, weights=small)
    new, _ = requantized_layer(conv, 4, network.input_type)
    assert np.array_equal(new.weights, small)


def test_a_pinned_mac_the_new_width_refuses_is_left_to_hwgen():
    network, x = _network()
    layers = [dataclasses.replace(layer, mac="lut") if layer.name == "fc3" else layer
              for layer in network.layers]
    pinned = spec.Network(network.name, network.input, layers)
    # the spec's own check refuses "lut" on 1-bit weights (±1: no multiplications)
    fc3 = next(layer for layer in pinned.layers if layer.name == "fc3")
    narrowed = dataclasses.replace(fc3, weights=np.where(fc3.weights >= 0, 1, -1),
                                   weight_bits=1, thresholds=fc3.thresholds // 16)
    with pytest.raises(spec.SpecError, match="mac"):
        spec.Network(pinned.name, pinned.input, [narrowed if layer is fc3 else layer
                                                 for layer in pinned.layers])
    model = SpecModel("net.toml", pinned, x)
    assert model.slot("w:fc3").candidates == (1, 2, 3, 4, 5, 6, 8)  # 1 bit is not dropped
    at_1 = model.imported({**model.widths(), "w:fc3": 1}).network
    assert next(layer for layer in at_1.layers if layer.name == "fc3").mac == "auto"


def test_a_raw_network_output_keeps_its_width():
    """Its scale would reach the scores the spec gives: only an argmax may read a narrowed
    raw output."""
    network, x = _network(argmax=False)
    model = SpecModel("net.toml", network, x)
    assert model.slot("w:fc4").candidates == (8,)
    assert model.slot("w:fc3").candidates == (1, 2, 3, 4, 5, 6, 8)


def test_allocate_on_a_qonnx_model_narrows_its_imported_weights(tmp_path, capsys):
    """A model trained with its quantizers is imported exactly and its weights narrowed as a
    spec's; --calibration takes its float inputs, through its own input quantizer."""
    from hwgen.importers.qonnx import import_onnx, input_codes
    from tests.importers.test_qonnx import multibit_mlp

    path = multibit_mlp(tmp_path / "m.onnx")
    x = np.random.default_rng(2).uniform(-3, 3, (40, 19)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "m_allocated.toml"
    assert main(["allocate", str(path), "--calibration", str(tmp_path / "x.npy"),
                 "--weight-kb", "0.1", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy on the 40 calibration inputs, against the spec's own classes" in printed
    chosen = {layer.name: layer.weight_bits for layer in spec.load(out).layers
              if hasattr(layer, "weight_bits")}
    assert chosen["gemm"] <= 4 and chosen["mm3"] <= 4 and chosen["mmb"] == 1
    assert sum(layer.weights.size * layer.weight_bits for layer in spec.load(out).layers
               if hasattr(layer, "weights")) <= 0.1 * KIB
    # the inputs it measures on are the model's own codes of x: on them the chosen network
    # agrees with the model as often as the command printed
    imported = import_onnx(path)
    codes = input_codes(imported, x)
    agree = np.mean(golden.predict(spec.load(out), codes)
                    == golden.predict(imported.network, codes))
    assert f"integer network {agree:.4f}" in printed
    np.save(tmp_path / "bad.npy", x[:, :5])
    assert main(["allocate", str(path), "--calibration", str(tmp_path / "bad.npy"),
                 "-o", str(out)]) == 2
    assert f"--calibration {tmp_path / 'bad.npy'}" in error_line(capsys)
    assert main(["allocate", str(path), "--act-calibration", "mse", "-o", str(out)]) == 2
    assert "a quantized model's) activations keep" in error_line(capsys)


def test_a_spec_with_a_test_split_is_measured_against_its_labels(tmp_path, capsys):
    from tests.helpers import save_mini_spec

    path = save_mini_spec(tmp_path)
    assert main(["allocate", str(path), "--weight-kb", "0.03", "-o",
                 str(tmp_path / "o.toml")]) == 0
    out = capsys.readouterr().out
    assert "calibration: the first 6 inputs of" in out and "and their labels" in out
    assert "calibration inputs, against the labels:" in out
    assert main(["allocate", str(path), "--labels", str(tmp_path / "y.npy"), "-o",
                 str(tmp_path / "o.toml")]) == 2
    assert "needs --calibration" in error_line(capsys)
