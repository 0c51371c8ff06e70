"""hwgen.spec: TOML + NPZ loading, saving, and every validation error by its message."""

from __future__ import annotations

import dataclasses
import io
import re
import tokenize
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hwgen.plan import plan
from hwgen.spec import (
    Argmax,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    Flatten,
    Input,
    MaxPool,
    Network,
    Requantize,
    SpecError,
    load,
    load_npz,
    save,
)
from tests.fuzz.invariant import assert_clean_error, run_main
from tests.helpers import chain, residual_block

NAME_RULE = "expected a lower-case identifier ([a-z][a-z0-9_]*)"


def baseline() -> Network:
    """A small network using every spec feature: binary, 8-bit and 16-bit weights, 1- and 2-bit
    thresholds, bias, folding, input lanes, argmax and a dataset."""
    rng = np.random.default_rng(0)
    return Network("tiny", Input((16,), 8, lanes=4), [
        Dense("fc1", rng.choice([-1, 1], size=(8, 16)), 1,
              thresholds=rng.integers(-20, 20, size=(8, 1)), pe=2, simd=4),
        Dense("fc2", rng.integers(-128, 128, size=(6, 8)), 8,
              thresholds=np.sort(rng.integers(-50, 50, size=(6, 3)), axis=1)),
        Dense("fc3", rng.integers(-300, 300, size=(4, 6)), 16, bias=np.arange(4) - 2),
        Argmax(),
    ], dataset=Path("tiny.test.npz"))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A valid tiny.toml + tiny.npz written by :func:`save`."""
    toml = tmp_path / "tiny.toml"
    save(baseline(), toml)
    return toml, tmp_path / "tiny.npz"


def edit_toml(toml: Path, old: str, new: str) -> None:
    text = toml.read_text()
    assert text.count(old) == 1, f"{old!r} not unique in the baseline"
    toml.write_text(text.replace(old, new))


def edit_npz(npz: Path, **changes) -> None:
    """Replace arrays (``fc1__weights=`` for ``fc1.weights``); ``None`` removes one."""
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(npz, **arrays)


def npz_array(npz: Path, key: str) -> np.ndarray:
    with np.load(npz) as f:
        return f[key].copy()


def load_error(toml: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(toml)
    return info.value


def assert_networks_equal(a: Network, b: Network) -> None:
    assert a.name == b.name
    assert a.types == b.types
    assert (a.input.shape, a.input.bits, bool(a.input.signed), a.input.lanes) == \
        (b.input.shape, b.input.bits, bool(b.input.signed), b.input.lanes)
    assert [type(x) for x in a.layers] == [type(x) for x in b.layers]
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.name == lb.name
        if isinstance(la, Dense):
            assert (la.weight_bits, la.pe, la.simd) == (lb.weight_bits, lb.pe, lb.simd)
            for key in ("weights", "thresholds", "bias"):
                va, vb = getattr(la, key), getattr(lb, key)
                assert (va is None) == (vb is None), key
                if va is not None:
                    assert va.dtype == vb.dtype == np.int64
                    np.testing.assert_array_equal(va, vb)


# --- loading and saving ----------------------------------------------------------------------

def test_save_load_roundtrip(files):
    toml, npz = files
    net = load(toml)
    assert_networks_equal(net, baseline())
    assert net.source == str(toml) and net.arrays_source == str(npz)
    assert net.dataset == toml.parent / "tiny.test.npz"
    w3, b3 = net.layers[2].weights, net.layers[2].bias
    lo = int((np.minimum(0, 3 * w3).sum(axis=1) + b3).min())  # fc2's output is 0..3
    hi = int((np.maximum(0, 3 * w3).sum(axis=1) + b3).max())
    s_bits = next(n for n in range(2, 40) if -(1 << (n - 1)) <= lo and hi < 1 << (n - 1))
    assert [t.describe() for t in net.types] == ["u8", "bin", "u2", f"s{s_bits}", "u2"]
    fc2 = net.layers[1]
    assert fc2.out_bits == 2 and net.layers[0].out_bits == 1 and net.layers[2].out_bits is None


def test_save_is_stable(files, tmp_path):
    toml, npz = files
    again = tmp_path / "again" / "tiny.toml"
    again.parent.mkdir()
    save(load(toml), again)
    assert again.read_text() == toml.read_text()
    with np.load(npz) as a, np.load(again.with_suffix(".npz")) as b:
        assert sorted(a.files) == sorted(b.files) == sorted([
            "fc1.weights", "fc1.thresholds", "fc2.weights", "fc2.thresholds", "fc3.weights",
            "fc3.bias"])
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_save_header_and_signed_input(tmp_path):
    net = Network("s", Input((4,), 4, signed=True), [Dense("fc", np.ones((2, 4), int), 4)])
    save(net, tmp_path / "s.toml", header="line one\nline two")
    text = (tmp_path / "s.toml").read_text()
    assert text.startswith("# line one\n# line two\n")
    loaded = load(tmp_path / "s.toml")
    assert loaded.input_type.signed and loaded.input_type.describe() == "s4"
    assert_networks_equal(loaded, net)


HAND_TOML = """\
# written by hand, not by save()
name = "hand"
weights = "arrays.npz"

[input]
shape = [6]
bits = 1

[[layers]]
name = "l1"
kind = "dense"
out_features = 4
weight_bits = 1
out_bits = 1          # output = "thresholds" is the default
simd = 3

[[layers]]
name = "l2"
kind = "dense"
out_features = 3
weight_bits = 2
output = "none"
bias = true
pe = 3

[[layers]]
name = "top"
kind = "argmax"
"""


def test_python_network_equals_hand_written_toml(tmp_path):
    rng = np.random.default_rng(3)
    w1 = rng.choice([-1, 1], size=(4, 6)).astype(np.int8)
    t1 = np.array([[0], [2], [-2], [6]], dtype=np.int16)
    w2 = rng.integers(-2, 2, size=(3, 4)).astype(np.int32)
    b2 = np.array([5, -5, 0], dtype=np.int16)
    np.savez(tmp_path / "arrays.npz", **{"l1.weights": w1, "l1.thresholds": t1,
                                        "l2.weights": w2, "l2.bias": b2})
    (tmp_path / "hand.toml").write_text(HAND_TOML)
    loaded = load(tmp_path / "hand.toml")
    built = Network("hand", Input((6,), 1), [
        Dense("l1", w1, 1, thresholds=t1, simd=3),
        Dense("l2", w2, 2, bias=b2, pe=3),
        Argmax("top"),
    ])
    assert_networks_equal(loaded, built)
    assert loaded.dataset is None


def test_defaults_name_and_weights_from_stem(tmp_path, files):
    toml, npz = files
    text = toml.read_text().replace('name = "tiny"\nweights = "tiny.npz"\n', "")
    other = tmp_path / "sub" / "mynet.toml"
    other.parent.mkdir()
    other.write_text(text)
    (other.parent / "mynet.npz").write_bytes(npz.read_bytes())
    net = load(other)
    assert net.name == "mynet"
    assert net.arrays_source == str(other.parent / "mynet.npz")


def test_argmax_only_network_needs_no_npz(tmp_path):
    toml = tmp_path / "am.toml"
    toml.write_text('[input]\nshape = [5]\nbits = 4\n\n[[layers]]\nname = "a"\n'
                    'kind = "argmax"\n')
    net = load(toml)
    assert net.output_type.describe() == "u3"  # indices 0..4


def test_shipped_design_loads():
    toml = Path(__file__).resolve().parents[1] / "designs" / "digits_bnn.toml"
    net = load(toml)
    assert [layer.name for layer in net.layers] == ["fc1", "fc2", "fc3", "argmax"]
    assert net.input_type.shape == (64,) and net.input.lanes == 4


# --- every bad input, by its message ---------------------------------------------------------

def test_malformed_toml(files):
    toml, _ = files
    edit_toml(toml, "\nbits = 8\n", "\nbits = = 8\n")
    err = load_error(toml)
    assert str(err).startswith(f"{toml}: invalid TOML: ")
    assert err.source == str(toml)


def test_missing_toml_file(tmp_path):
    path = tmp_path / "nope.toml"
    err = load_error(path)
    assert str(err) == f"{path}: file not found"


def test_unknown_top_level_field(files):
    toml, _ = files
    edit_toml(toml, 'name = "tiny"\n', 'name = "tiny"\ncolour = "red"\n')
    assert str(load_error(toml)) == (
        f"{toml}: colour: unknown field (expected one of: dataset, input, layers, name, "
        "weights)")


def test_unknown_input_field(files):
    toml, _ = files
    edit_toml(toml, "lanes = 4\n", "lanes = 4\nwidth = 3\n")
    assert str(load_error(toml)) == (
        f"{toml}: input.width: unknown field (expected one of: bits, lanes, shape, signed)")


def test_unknown_dense_field(files):
    toml, _ = files
    edit_toml(toml, "out_bits = 2\n", "out_bits = 2\nstride = 1\n")
    assert str(load_error(toml)) == (
        f"{toml}: layers[1].stride: unknown field (expected one of: bias, kind, mac, name, "
        "out_bits, out_features, out_signed, output, pe, simd, weight_bits, weight_memory)")


def test_weight_memory_must_be_known(files):
    toml, _ = files
    edit_toml(toml, "out_bits = 2\n", "out_bits = 2\nweight_memory = \"flash\"\n")
    assert str(load_error(toml)) == (
        f"{toml}: layers[1].weight_memory: expected one of 'rom', 'spram', got 'flash'")


def test_weight_memory_round_trips(files, tmp_path):
    toml, _ = files
    edit_toml(toml, "out_bits = 2\n", "out_bits = 2\nweight_memory = \"spram\"\n")
    net = load(toml)
    assert [getattr(layer, "weight_memory", None) for layer in net.layers][1] == "spram"
    save(net, tmp_path / "again.toml")
    assert load(tmp_path / "again.toml").layers[1].weight_memory == "spram"


def test_unknown_layer_kind(files):
    toml, _ = files
    edit_toml(toml, 'kind = "argmax"', 'kind = "conv3d"')
    assert str(load_error(toml)) == (
        f"{toml}: layers[3].kind: unknown layer kind 'conv3d' (expected one of: add, "
        "argmax, channel_shuffle, channel_split, concat, conv2d, dense, depthwise_conv2d, "
        "flatten, global_sum_pool, maxpool)")


def test_missing_input_table(files):
    toml, _ = files
    edit_toml(toml, "[input]\nshape = [16]\nbits = 8\nlanes = 4\n", "")
    assert str(load_error(toml)) == f"{toml}: input: missing"


def test_missing_input_bits(files):
    toml, _ = files
    edit_toml(toml, "\nbits = 8\n", "\n")
    assert str(load_error(toml)) == f"{toml}: input.bits: missing"


def test_missing_required_layer_field(files):
    toml, _ = files
    edit_toml(toml, "out_features = 6\n", "")
    assert str(load_error(toml)) == f"{toml}: layers[1].out_features: missing"


def test_wrong_field_type(files):
    toml, _ = files
    edit_toml(toml, "weight_bits = 8\n", 'weight_bits = "8"\n')
    assert str(load_error(toml)) == f"{toml}: layers[1].weight_bits: expected int, got '8'"


def test_boolean_is_not_an_int(files):
    toml, _ = files
    edit_toml(toml, "\nbits = 8\n", "\nbits = true\n")
    assert str(load_error(toml)) == f"{toml}: input.bits: expected int, got True"


def test_input_signed_must_be_bool(files):
    toml, _ = files
    edit_toml(toml, "lanes = 4\n", 'lanes = 4\nsigned = "yes"\n')
    assert str(load_error(toml)) == f"{toml}: input.signed: expected true or false, got 'yes'"


def test_input_bits_out_of_range(files):
    toml, _ = files
    edit_toml(toml, "\nbits = 8\n", "\nbits = 17\n")
    assert str(load_error(toml)) == f"{toml}: input.bits: expected an integer 1..16, got 17"


def test_output_kind_unknown(files):
    toml, _ = files
    edit_toml(toml, 'output = "none"', 'output = "relu"')
    assert str(load_error(toml)) == (
        f"{toml}: layers[2].output: expected \"thresholds\", \"requantize\" or \"none\", got "
        f"'relu'")


def test_weight_bits_out_of_range(files):
    toml, _ = files
    edit_toml(toml, "weight_bits = 16\n", "weight_bits = 17\n")
    assert str(load_error(toml)) == (
        f"{toml}: layers[2].weight_bits: expected an integer 1..16, got 17")


def test_out_features_differs_from_weight_rows(files):
    toml, npz = files
    edit_toml(toml, "out_features = 8\n", "out_features = 7\n")
    assert str(load_error(toml)) == (
        f"{npz}: fc1.weights: shape (8, 16), expected 7 rows (out_features)")


def test_shapes_do_not_chain(files):
    toml, npz = files
    edit_npz(npz, fc2__weights=np.ones((6, 9), np.int8))
    err = load_error(toml)
    assert str(err) == (f"{npz}: fc2.weights: shape (6, 9) does not chain: the layer's input "
                        "has 8 elements, expected (6, 8)")
    assert (err.source, err.field) == (str(npz), "fc2.weights")


def test_dense_needs_1d_input(files):
    toml, _ = files
    edit_toml(toml, "shape = [16]\n", "shape = [4, 4]\n")
    edit_toml(toml, "lanes = 4\n", "")
    assert str(load_error(toml)) == (
        f"{toml}: layers[0].kind: dense needs a 1-D input, got shape (4, 4) (add a flatten "
        f"layer)")


def test_missing_npz_file(files):
    toml, npz = files
    npz.unlink()
    assert str(load_error(toml)) == f"{toml}: weights: weights file {str(npz)!r} not found"


def test_named_npz_file_missing(files):
    toml, _ = files
    edit_toml(toml, 'weights = "tiny.npz"', 'weights = "other.npz"')
    other = toml.parent / "other.npz"
    assert str(load_error(toml)) == f"{toml}: weights: weights file {str(other)!r} not found"


def test_unreadable_npz(files):
    toml, npz = files
    npz.write_bytes(b"this is not a zip file")
    assert str(load_error(toml)).startswith(f"{npz}: not a readable NPZ file (")


def test_npz_missing_array(files):
    toml, npz = files
    edit_npz(npz, fc2__thresholds=None)
    assert str(load_error(toml)) == f"{npz}: fc2.thresholds: missing from the weights file"


def test_npz_missing_bias(files):
    toml, npz = files
    edit_npz(npz, fc3__bias=None)
    assert str(load_error(toml)) == f"{npz}: fc3.bias: missing from the weights file"


def test_wrong_bias_shape(files):
    toml, npz = files
    edit_npz(npz, fc3__bias=np.zeros(5, np.int32))
    assert str(load_error(toml)) == f"{npz}: fc3.bias: shape (5,), expected (4,)"


def test_wrong_weights_ndim(files):
    toml, npz = files
    edit_npz(npz, fc1__weights=np.ones(16, np.int8))
    assert str(load_error(toml)) == (
        f"{npz}: fc1.weights: expected a 2-D (out_features, 16) integer array, got (16,)")


def test_wrong_threshold_shape_for_out_bits(files):
    toml, npz = files
    edit_npz(npz, fc2__thresholds=np.zeros((6, 4), np.int64))
    assert str(load_error(toml)) == (
        f"{npz}: fc2.thresholds: shape (6, 4), expected (6, 3) for out_bits = 2")


def test_out_bits_out_of_range(files):
    toml, _ = files
    edit_toml(toml, "out_bits = 2\n", "out_bits = 9\n")
    assert str(load_error(toml)) == f"{toml}: layers[1].out_bits: expected an integer 1..8, got 9"


def test_float_weights(files):
    toml, npz = files
    edit_npz(npz, fc2__weights=npz_array(npz, "fc2.weights").astype(np.float64))
    assert str(load_error(toml)) == (
        f"{npz}: fc2.weights: dtype float64, expected an integer dtype")


def test_float_thresholds(files):
    toml, npz = files
    edit_npz(npz, fc1__thresholds=np.zeros((8, 1), np.float32))
    assert str(load_error(toml)) == (
        f"{npz}: fc1.thresholds: dtype float32, expected an integer dtype")


def test_binary_weight_zero(files):
    toml, npz = files
    w = npz_array(npz, "fc1.weights")
    w[3, 5] = 0
    edit_npz(npz, fc1__weights=w)
    assert str(load_error(toml)) == (
        f"{npz}: fc1.weights: 1-bit weights must be -1 or +1, found 0 at (3, 5)")


def test_16bit_weight_out_of_range(files):
    toml, npz = files
    w = npz_array(npz, "fc3.weights").astype(np.int32)
    w[1, 2] = 40000
    edit_npz(npz, fc3__weights=w)
    assert str(load_error(toml)) == (
        f"{npz}: fc3.weights: 16-bit weights must lie in -32768..32767, found 40000 at (1, 2)")


@pytest.mark.parametrize("value", [128, -129])
def test_8bit_weight_out_of_range(files, value):
    toml, npz = files
    w = npz_array(npz, "fc2.weights").astype(np.int16)
    w[5, 7] = value
    edit_npz(npz, fc2__weights=w)
    assert str(load_error(toml)) == (
        f"{npz}: fc2.weights: 8-bit weights must lie in -128..127, found {value} at (5, 7)")


def test_8bit_weight_extremes_accepted(files):
    toml, npz = files
    w = npz_array(npz, "fc2.weights").astype(np.int16)
    w[0, 0], w[0, 1] = -128, 127
    edit_npz(npz, fc2__weights=w)
    assert load(toml).layers[1].weights[0, :2].tolist() == [-128, 127]


@pytest.mark.parametrize("row, before, after", [([5, 3, 7], 5, 3), ([-4, -4, -5], -4, -5)])
def test_unsorted_thresholds(files, row, before, after):
    toml, npz = files
    t = npz_array(npz, "fc2.thresholds")
    t[2] = row
    edit_npz(npz, fc2__thresholds=t)
    assert str(load_error(toml)) == (f"{npz}: fc2.thresholds: thresholds must ascend along "
                                     f"each row; row 2 has {before} before {after}")


def test_equal_thresholds_accepted(files):
    toml, npz = files
    edit_npz(npz, fc2__thresholds=np.full((6, 3), 4))
    assert load(toml).layers[1].out_bits == 2


def test_pe_does_not_divide(files):
    toml, _ = files
    edit_toml(toml, "pe = 2\n", "pe = 3\n")
    assert str(load_error(toml)) == f"{toml}: layers[0].pe: 3 does not divide out_features 8"


def test_simd_does_not_divide(files):
    toml, _ = files
    edit_toml(toml, "simd = 4\n", "simd = 5\n")
    assert str(load_error(toml)) == f"{toml}: layers[0].simd: 5 does not divide in_features 16"


def test_pe_not_positive(files):
    toml, _ = files
    edit_toml(toml, "pe = 2\n", "pe = 0\n")
    assert str(load_error(toml)) == (f"{toml}: layers[0].pe: expected a positive integer or "
                                     f'"auto", got 0')


def test_pe_and_simd_auto_load_save_and_plan_with_the_defaults(files, tmp_path):
    toml, _ = files
    edit_toml(toml, "pe = 2\n", 'pe = "auto"\n')
    edit_toml(toml, "simd = 4\n", 'simd = "auto"\n')
    net = load(toml)
    assert (net.layers[0].pe, net.layers[0].simd) == ("auto", "auto")
    assert net.layers[0].leaves_folding() and not net.layers[1].leaves_folding()
    lp = plan(net).layers[0]  # without a board: PE 1 and the default SIMD
    assert (lp.pe, lp.simd) == (1, 16)
    save(net, tmp_path / "again.toml")
    assert 'pe = "auto"' in (tmp_path / "again.toml").read_text()
    assert_networks_equal(load(tmp_path / "again.toml"), net)


def test_pe_neither_number_nor_auto(files):
    toml, _ = files
    edit_toml(toml, "pe = 2\n", 'pe = "fast"\n')
    assert str(load_error(toml)) == (f"{toml}: layers[0].pe: expected a positive integer or "
                                     f"\"auto\", got 'fast'")


def test_lanes_do_not_divide(files):
    toml, _ = files
    edit_toml(toml, "lanes = 4\n", "lanes = 3\n")
    assert str(load_error(toml)) == (
        f"{toml}: input.lanes: 3 does not divide the last dimension 16 of the input")


def test_duplicate_layer_names(files):
    toml, _ = files
    edit_toml(toml, 'name = "argmax"', 'name = "fc2"')
    assert str(load_error(toml)) == f"{toml}: layers[3].name: duplicate layer name 'fc2'"


def test_duplicate_dense_layer_names(files):
    toml, _ = files
    edit_toml(toml, 'name = "fc2"', 'name = "fc1"')
    assert str(load_error(toml)) == f"{toml}: layers[1].name: duplicate layer name 'fc1'"


def test_layer_after_argmax(files):
    toml, _ = files
    toml.write_text(toml.read_text().replace(
        "\n[dataset]", '\n[[layers]]\nname = "again"\nkind = "argmax"\n\n[dataset]'))
    assert str(load_error(toml)) == f"{toml}: layers[3].kind: argmax must be the last layer"


def test_unused_npz_array(files):
    toml, npz = files
    edit_npz(npz, fc9__weights=np.ones((2, 2), np.int8))
    assert str(load_error(toml)) == f"{npz}: fc9.weights: array not used by any layer"


def test_bias_array_without_bias_flag(files):
    toml, npz = files
    edit_toml(toml, "bias = true\n", "")
    assert str(load_error(toml)) == f"{npz}: fc3.bias: array not used by any layer"


def test_bad_network_name(files):
    toml, _ = files
    edit_toml(toml, 'name = "tiny"', 'name = "Tiny-Net"')
    assert str(load_error(toml)) == f"{toml}: name: {NAME_RULE}, got 'Tiny-Net'"


def test_bad_layer_name(files):
    toml, npz = files
    edit_toml(toml, 'name = "argmax"', 'name = "2nd"')
    assert str(load_error(toml)) == f"{toml}: layers[3].name: {NAME_RULE}, got '2nd'"


def test_bad_dense_layer_name(files):
    toml, npz = files
    edit_toml(toml, 'name = "fc3"', 'name = "FC3"')
    with np.load(npz) as f:
        arrays = {k.replace("fc3.", "FC3."): f[k] for k in f.files}
    np.savez(npz, **arrays)
    assert str(load_error(toml)) == f"{toml}: layers[2].name: {NAME_RULE}, got 'FC3'"


def test_out_bits_without_thresholds(files):
    toml, _ = files
    edit_toml(toml, 'output = "none"\n', 'output = "none"\nout_bits = 2\n')
    assert str(load_error(toml)) == (
        f"{toml}: layers[2].out_bits: only meaningful with output = \"thresholds\"")


def test_thresholds_need_out_bits(files):
    toml, _ = files
    edit_toml(toml, "out_bits = 2\n", "")
    assert str(load_error(toml)) == f"{toml}: layers[1].out_bits: missing"


@pytest.mark.parametrize("value", [1 << 31, -(1 << 31)])
def test_bias_too_large(files, value):
    toml, npz = files
    b = np.zeros(4, np.int64)
    b[2] = value
    edit_npz(npz, fc3__bias=b)
    assert str(load_error(toml)) == f"{npz}: fc3.bias: bias values must fit in 32 bits"


def test_bias_largest_accepted(files):
    toml, npz = files
    edit_npz(npz, fc3__bias=np.array([(1 << 31) - 1, -(1 << 31) + 1, 0, 0]))
    net = load(toml)
    assert net.layers[2].bias[0] == (1 << 31) - 1
    assert net.output_type.describe() == "u2"


def test_layers_must_be_tables(files):
    toml, _ = files
    text = toml.read_text()
    head = text[:text.index("[[layers]]")]
    toml.write_text(head.replace('name = "tiny"', 'name = "tiny"\nlayers = [1]'))
    assert str(load_error(toml)) == f"{toml}: layers[0]: expected a table ([[layers]])"


def test_unknown_dataset_field(files):
    toml, _ = files
    edit_toml(toml, 'test = "tiny.test.npz"', 'train = "x.npz"')
    assert str(load_error(toml)) == (
        f"{toml}: dataset.train: unknown field (expected one of: test)")


# --- the Python API raises the same errors ---------------------------------------------------

def python_error(**changes) -> SpecError:
    """Build the baseline with ``layer__field`` replaced; return the SpecError raised."""
    base = baseline()
    layers = []
    for layer in base.layers:
        if isinstance(layer, Dense):
            kw = dict(name=layer.name, weights=layer.weights.copy(),
                      weight_bits=layer.weight_bits, thresholds=layer.thresholds,
                      bias=layer.bias, pe=layer.pe, simd=layer.simd)
            for key, value in changes.items():
                lname, field = key.split("__")
                if lname == layer.name:
                    kw[field] = value(kw[field]) if callable(value) else value
            layers.append(Dense(**kw))
        else:
            layers.append(layer)
    with pytest.raises(SpecError) as info:
        Network("tiny", base.input, layers)
    assert info.value.source == "<python>"
    return info.value


def with_item(index: tuple[int, int], value: int):
    def change(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[index] = value
        return a
    return change


@pytest.mark.parametrize("changes, message", [
    (dict(fc1__weights=with_item((3, 5), 0)),
     "fc1.weights: 1-bit weights must be -1 or +1, found 0 at (3, 5)"),
    (dict(fc3__weights=with_item((1, 2), 40000)),
     "fc3.weights: 16-bit weights must lie in -32768..32767, found 40000 at (1, 2)"),
    (dict(fc2__weights=lambda w: w.astype(np.float64)),
     "fc2.weights: dtype float64, expected an integer dtype"),
    (dict(fc2__weights=np.ones((6, 9), int)),
     "fc2.weights: shape (6, 9) does not chain: the layer's input has 8 elements, "
     "expected (6, 8)"),
    (dict(fc2__thresholds=np.zeros((6, 4), int)),
     "fc2.thresholds: 4 thresholds per channel, expected 2**n - 1 for an n-bit output "
     "(1, 3, 7, ... 255)"),
    (dict(fc2__thresholds=np.array([[5, 3, 7]] * 6)),
     "fc2.thresholds: thresholds must ascend along each row; row 0 has 5 before 3"),
    (dict(fc1__pe=3), "layers[0].pe: 3 does not divide out_features 8"),
    (dict(fc1__simd=5), "layers[0].simd: 5 does not divide in_features 16"),
    (dict(fc3__bias=np.array([0, 0, 1 << 31, 0])),
     "fc3.bias: bias values must fit in 32 bits"),
    (dict(fc3__bias=np.zeros(5, int)), "fc3.bias: shape (5,), expected (4,)"),
    (dict(fc3__bias=[0, 0, 0, 0]), "fc3.bias: expected a NumPy integer array, got list"),
    (dict(fc2__weight_bits=0), "layers[1].weight_bits: expected an integer 1..16, got 0"),
    (dict(fc2__thresholds=np.zeros((5, 3), int)),
     "fc2.thresholds: expected an (6, 2**out_bits - 1) integer array, got shape (5, 3)"),
    (dict(fc1__weights=[[1, -1]]),
     "fc1.weights: expected a 2-D (out_features, 16) integer array, got list"),
])
def test_python_api_errors(changes, message):
    assert str(python_error(**changes)) == f"<python>: {message}"


@pytest.mark.parametrize("mutate_npz, changes", [
    (dict(key="fc1.weights", index=(3, 5), value=0), dict(fc1__weights=with_item((3, 5), 0))),
    (dict(key="fc3.weights", index=(1, 2), value=40000),
     dict(fc3__weights=with_item((1, 2), 40000))),
    (dict(key="fc2.thresholds", index=(2, 0), value=99),
     dict(fc2__thresholds=with_item((2, 0), 99))),
])
def test_python_and_toml_errors_agree(files, mutate_npz, changes):
    toml, npz = files
    a = npz_array(npz, mutate_npz["key"]).astype(np.int32)
    a[mutate_npz["index"]] = mutate_npz["value"]
    edit_npz(npz, **{mutate_npz["key"].replace(".", "__"): a})
    from_toml, from_python = load_error(toml), python_error(**changes)
    assert (from_toml.field, from_toml.message) == (from_python.field, from_python.message)
    assert from_toml.source == str(npz)


@pytest.mark.parametrize("build, message", [
    (lambda: Network("tiny", Input((16,), 8), []),
     "<python>: layers: a network needs at least one layer"),
    (lambda: Network("Bad", Input((4,), 8), [Argmax()]), f"<python>: name: {NAME_RULE}, got 'Bad'"),
    (lambda: Network("n", Input((4,), 0), [Argmax()]),
     "<python>: input.bits: expected an integer 1..16, got 0"),
    (lambda: Network("n", Input((4, 0), 8), [Argmax()]),
     "<python>: input.shape: expected a positive integer, got 0"),
    (lambda: Network("n", Input([4], 8), [Argmax()]),
     "<python>: input.shape: expected a list of positive integers, got [4]"),
    (lambda: Network("n", Input((4,), 8, lanes=3), [Argmax()]),
     "<python>: input.lanes: 3 does not divide the last dimension 4 of the input"),
    (lambda: Network("n", Input((4,), 8), [Argmax("a"), Argmax("b")]),
     "<python>: layers[0].kind: argmax must be the last layer"),
    (lambda: Network("n", Input((4,), 8), [Argmax("x y")]),
     f"<python>: layers[0].name: {NAME_RULE}, got 'x y'"),
    (lambda: Network("n", Input((2, 2), 8), [Argmax()]),
     "<python>: layers[0].kind: argmax needs a 1-D input, got shape (2, 2)"),
    (lambda: Network("n", Input((4,), 1), [Dense("d", np.ones((2, 4), int), 1),
                                           Dense("d", np.ones((2, 2), int), 1)]),
     "<python>: layers[1].name: duplicate layer name 'd'"),
])
def test_python_api_network_errors(build, message):
    with pytest.raises(SpecError, match=f"^{re.escape(message)}$"):
        build()


def test_spec_error_fields():
    err = SpecError("a.toml", "layers[0].pe", "bad")
    assert (err.source, err.field, err.message) == ("a.toml", "layers[0].pe", "bad")
    assert str(err) == "a.toml: layers[0].pe: bad"
    assert str(SpecError("a.toml", "", "file not found")) == "a.toml: file not found"


def test_uint64_weights_do_not_wrap():
    w = np.ones((2, 4), dtype=np.uint64)
    w[0, 0] = np.iinfo(np.uint64).max
    with pytest.raises(SpecError, match="value 18446744073709551615 does not fit in 64-bit "
                                        "signed integers"):
        Network("n", Input((4,), 1), [Dense("fc", w, 1)])


def test_int64_min_bias_is_a_spec_error():
    b = np.array([np.iinfo(np.int64).min, 0])
    with pytest.raises(SpecError, match="bias values must fit in 32 bits"):
        Network("n", Input((4,), 1), [Dense("fc", np.ones((2, 4), int), 1, bias=b)])


# --- conv2d, maxpool, flatten -------------------------------------------------------------

def _conv(**kw):
    from hwgen.spec import Conv2d

    args = dict(name="c", weights=np.ones((4, 3, 3, 2), int), weight_bits=1, pad_value=-1)
    args.update(kw)
    return Conv2d(**args)


def test_conv2d_same_and_valid_shapes():
    net = Network("n", Input((5, 7, 2), 1), [_conv(padding="same"), _conv(
        name="d", stride=2, weights=np.ones((4, 3, 3, 4), int))])
    assert [t.shape for t in net.types] == [(5, 7, 2), (5, 7, 4), (2, 3, 4)]


def test_conv2d_kernel_larger_than_padded_input():
    with pytest.raises(SpecError, match=re.escape(
            "<python>: layers[0].kind: kernel 5×5 is larger than the padded input 3×7")):
        Network("n", Input((3, 7, 2), 1), [_conv(weights=np.ones((4, 5, 5, 2), int))])


def test_conv2d_rows_past_the_last_window_are_dropped_like_tensorflow():
    """floor((H + pads − k) / s) + 1 outputs, as TensorFlow's and PyTorch's convolutions give
    (issue 16: kernel 1, stride 2, "same" on 6×6 is 3×3, not a refusal)."""
    net = Network("n", Input((5, 6, 2), 1), [_conv(stride=2)])
    assert net.types[-1].shape == (2, 2, 4)  # valid: (5 − 3) // 2 + 1, (6 − 3) // 2 + 1
    net = Network("n", Input((6, 6, 2), 1), [
        _conv(weights=np.ones((4, 1, 1, 2), int), stride=2, padding="same")])
    assert net.types[-1].shape == (3, 3, 4)


def test_conv2d_binary_pad_value_must_be_plus_or_minus_one():
    with pytest.raises(SpecError, match=re.escape(
            "<python>: layers[0].pad_value: expected -1 or +1 (binary input), got 0")):
        Network("n", Input((5, 5, 2), 1), [_conv(pad_value=0, padding="same")])


def test_conv2d_integer_pad_value_in_input_range():
    with pytest.raises(SpecError, match=re.escape(
            "<python>: layers[0].pad_value: expected an integer in 0..255, got -1")):
        Network("n", Input((5, 5, 2), 8), [_conv(padding="same")])


def test_conv2d_simd_divides_channels():
    with pytest.raises(SpecError, match=re.escape(
            "<python>: layers[0].simd: 4 does not divide in_channels 2")):
        Network("n", Input((5, 5, 2), 1), [_conv(simd=4)])


def test_conv2d_weights_must_match_input_channels():
    with pytest.raises(SpecError, match=re.escape(
            "<python>: c.weights: expected an (out_channels, k, k, 2) integer array, got "
            "(4, 3, 3, 3)")):
        Network("n", Input((5, 5, 2), 1), [_conv(weights=np.ones((4, 3, 3, 3), int))])


def test_conv2d_padding_name():
    with pytest.raises(SpecError, match="layers\\[0\\].padding: expected \"valid\", \"same\" or "
                       "\\[top, left, bottom, right\\]"):
        Network("n", Input((5, 5, 2), 1), [_conv(padding="full")])


@pytest.mark.parametrize("pads, shape", [((1, 1, 1, 1), (3, 3, 4)), ((0, 2, 1, 0), (3, 3, 4)),
                                         ([2, 0, 0, 2], (3, 3, 4))])
def test_conv2d_explicit_pads(tmp_path, pads, shape):
    """PyTorch's and ONNX's explicit pads (top, left, bottom, right), each below the kernel:
    the windows the golden model reads, the shape, and the TOML round trip."""
    from hwgen import golden

    net = Network("n", Input((6, 5, 2), 1), [_conv(stride=2, padding=pads)])
    assert net.types[-1].shape == shape and net.layers[0].padding == tuple(pads)
    x = np.random.default_rng(0).choice([-1, 1], size=(1, 6, 5, 2))
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-1)
    want = np.array([[[xp[0, 2 * r:2 * r + 3, 2 * c:2 * c + 3].sum() for _ in range(4)]
                      for c in range(shape[1])] for r in range(shape[0])])
    acc = golden.accumulate(net.layers[0], x)
    np.testing.assert_array_equal(acc[0], want)
    save(net, tmp_path / "p.toml")
    assert f"padding = {list(pads)}".replace(" ", "") in (tmp_path / "p.toml").read_text() \
        .replace(" ", "")
    assert load(tmp_path / "p.toml").layers[0].padding == tuple(pads)


@pytest.mark.parametrize("pads", [(1, 1, 1), (0, 3, 0, 0), (-1, 0, 0, 0), (0.5, 0, 0, 0)])
def test_conv2d_explicit_pads_refused(pads):
    with pytest.raises(SpecError, match=re.escape(
            "layers[0].padding: expected [top, left, bottom, right], each 0..2 (below the "
            "kernel size), got")):
        Network("n", Input((6, 5, 2), 1), [_conv(padding=pads)])


def test_maxpool_window_larger_than_input():
    from hwgen.spec import MaxPool

    with pytest.raises(SpecError, match=re.escape(
            "<python>: layers[0].size: window 3×3 is larger than the input 2×5")):
        Network("n", Input((2, 5, 2), 1), [MaxPool("p", 3)])


def test_conv_network_roundtrips_through_toml(tmp_path):
    from hwgen.spec import Flatten, MaxPool

    rng = np.random.default_rng(1)
    net = Network("n", Input((6, 6, 2), 1), [
        _conv(weights=rng.choice([-1, 1], size=(4, 3, 3, 2)), padding="same",
              thresholds=np.zeros((4, 1), int), pe=2),
        MaxPool("p", 3, 2), Flatten(),
        Dense("d", rng.integers(-9, 9, size=(3, 16)), 8)])
    save(net, tmp_path / "n.toml")
    back = load(tmp_path / "n.toml")
    assert [type(a) for a in back.layers] == [type(a) for a in net.layers]
    assert back.types == net.types
    assert np.array_equal(back.layers[0].weights, net.layers[0].weights)
    assert (back.layers[1].size, back.layers[1].stride) == (3, 2)


def test_global_sum_pool_types_and_toml(tmp_path):
    from hwgen.spec import GlobalSumPool

    net = Network("n", Input((3, 5, 4), 1), [GlobalSumPool("g")])
    assert net.output_type.shape == (4,)
    assert (net.output_type.bits, net.output_type.signed) == (5, True)  # −15..15
    net = Network("n", Input((3, 5, 4), 8), [GlobalSumPool("g")])
    assert net.output_type.range[1] >= 15 * 255 and not net.output_type.signed
    path = tmp_path / "g.toml"
    save(net, path)
    assert load(path).layers[0].kind == "global_sum_pool"
    with pytest.raises(SpecError, match="global_sum_pool needs an \\(H, W, C\\) input"):
        Network("n", Input((12,), 1), [GlobalSumPool("g")])


# --- depthwise_conv2d ----------------------------------------------------------------------

def _depthwise(**kw):
    from hwgen.spec import DepthwiseConv2d

    args = dict(name="dw", weights=np.ones((4, 3, 3), int), weight_bits=8)
    args.update(kw)
    return DepthwiseConv2d(**args)


def _depthwise_error(inp: Input, **kw) -> str:
    with pytest.raises(SpecError) as info:
        Network("n", inp, [_depthwise(**kw)])
    return str(info.value)


def test_depthwise_shapes_types_and_sizes():
    net = Network("n", Input((5, 7, 4), 8), [
        _depthwise(padding="same", weights=np.full((4, 3, 3), -128), bias=np.arange(4)),
        _depthwise(name="dw2", stride=2, weights=np.ones((4, 3, 3), int), weight_bits=2)])
    assert [t.shape for t in net.types] == [(5, 7, 4), (5, 7, 4), (2, 3, 4)]
    dw = net.layers[0]
    assert (dw.kernel, dw.channels, dw.out_features, dw.in_features) == (3, 4, 4, 9)
    assert dw.matrix.shape == (4, 9)
    # raw output: 9 · 255 · −128 + 3 = −293,757 needs 20 bits signed
    assert (net.types[1].bits, net.types[1].signed) == (20, True)
    lo, hi = dw.acc_bounds(net.types[0])
    assert lo.tolist() == [-293760 + c for c in range(4)] and hi.tolist() == [0, 1, 2, 3]


def test_depthwise_outputs_thresholds_and_requantize():
    from hwgen.spec import Requantize

    rq = Requantize(np.array([3, 1, -2, 5]), np.array([4, 0, 2, 1]), 8, True)
    net = Network("n", Input((4, 4, 4), 4, True), [
        _depthwise(name="a", thresholds=np.zeros((4, 3), int), padding="same", pe=2),
        _depthwise(name="b", requantize=rq, pe=4, weight_bits=3)])
    assert [(t.bits, t.signed) for t in net.types[1:]] == [(2, False), (8, True)]


@pytest.mark.parametrize("inp, kw, message", [
    (Input((5, 5, 4), 8), dict(weights=np.ones((4, 3, 3, 4), int)),
     "dw.weights: expected a (4, k, k) integer array (one k×k filter per input channel), got "
     "(4, 3, 3, 4)"),
    (Input((5, 5, 4), 8), dict(weights=np.ones((3, 3, 3), int)),
     "dw.weights: expected a (4, k, k) integer array (one k×k filter per input channel), got "
     "(3, 3, 3)"),
    (Input((5, 5, 4), 8), dict(weights=np.ones((4, 3, 2), int)),
     "dw.weights: expected a (4, k, k) integer array (one k×k filter per input channel), got "
     "(4, 3, 2)"),
    (Input((5, 5, 4), 8), dict(weights=[[[1]]]),
     "dw.weights: expected a (4, k, k) integer array (one k×k filter per input channel), got "
     "list"),
    (Input((25,), 8), {}, "layers[0].kind: depthwise_conv2d needs an (H, W, C) input, got "
     "shape (25,)"),
    (Input((5, 5, 4), 8), dict(pe=3), "layers[0].pe: 3 does not divide channels 4"),
    (Input((5, 5, 4), 8), dict(pe=0),
     "layers[0].pe: expected a positive integer or \"auto\", got 0"),
    (Input((5, 5, 4), 8), dict(weight_bits=0),
     "layers[0].weight_bits: expected an integer 1..16, got 0"),
    (Input((5, 5, 4), 8), dict(weight_bits=17),
     "layers[0].weight_bits: expected an integer 1..16, got 17"),
    (Input((5, 5, 4), 8), dict(weights=np.full((4, 3, 3), 8), weight_bits=4),
     "dw.weights: 4-bit weights must lie in -8..7, found 8 at (0, 0, 0)"),
    (Input((5, 5, 4), 8), dict(weights=np.zeros((4, 3, 3), int), weight_bits=1),
     "dw.weights: 1-bit weights must be -1 or +1, found 0 at (0, 0, 0)"),
    (Input((5, 5, 4), 8), dict(padding="same", pad_value=256),
     "layers[0].pad_value: expected an integer in 0..255, got 256"),
    (Input((5, 5, 4), 1), dict(padding="same", weight_bits=1),
     "layers[0].pad_value: expected -1 or +1 (binary input), got 0"),
    (Input((2, 5, 4), 8), {}, "layers[0].kind: kernel 3×3 is larger than the padded input "
     "2×5"),
    (Input((5, 5, 4), 8), dict(padding="full"),
     "layers[0].padding: expected \"valid\", \"same\" or [top, left, bottom, right], got "
     "'full'"),
    (Input((5, 5, 4), 1), dict(weights=np.ones((4, 3, 3), int), weight_bits=1, mac="lut"),
     "layers[0].mac: 'lut': the layer has no multiplications (binary weights take an "
     "add/subtract or XNOR path); leave mac = \"auto\""),
    (Input((5, 5, 4), 16), dict(mac="dsp"),
     'layers[0].mac: "dsp": u16 inputs × 8-bit weights need 17×8-bit signed operands, beyond '
     "the DSP's 16×16"),
    (Input((5, 5, 4), 4), dict(mac="dsp", weight_bits=4),
     'layers[0].mac: "dsp": u4 inputs × 4-bit weights make 9-bit products, and Yosys keeps '
     'products narrower than 11 bits in logic on iCE40; use "lut"'),
    (Input((5, 5, 4), 8), dict(thresholds=np.zeros((3, 1), int)),
     "dw.thresholds: expected an (4, 2**out_bits - 1) integer array, got shape (3, 1)"),
    (Input((5, 5, 4), 8), dict(bias=np.zeros(3, int)), "dw.bias: shape (3,), expected (4,)"),
    (Input((5, 5, 4), 8), dict(weight_memory="flash"),
     "layers[0].weight_memory: expected one of 'rom', 'spram', got 'flash'"),
])
def test_depthwise_refusals(inp, kw, message):
    assert _depthwise_error(inp, **kw) == f"<python>: {message}"


def test_depthwise_requantize_must_not_overflow():
    from hwgen.spec import Requantize

    rq = Requantize(np.full(4, (1 << 31) - 1), np.zeros(4, int), 8)
    message = _depthwise_error(Input((5, 5, 4), 8), requantize=rq,
                               weights=np.full((4, 3, 3), -128))
    reach = 9 * 255 * 128 * ((1 << 31) - 1)  # the k·k window of one channel, not k·k·C
    assert message == (f"<python>: dw.multiplier: requantize overflows at channel 0: "
                       f"acc·multiplier reaches ±{reach} (acc in -293760..0, multiplier "
                       f"2147483647), beyond 48-bit signed; use a smaller multiplier and shift")


def _separable(rng) -> Network:
    """u8 image → depthwise 3×3 (requantized to s8, no ReLU) → pointwise 1×1 conv2d → raw."""
    from hwgen.spec import Conv2d, Requantize

    return Network("sep", Input((6, 6, 4), 8, lanes=2), [
        _depthwise(weights=rng.integers(-128, 128, size=(4, 3, 3)), padding="same", pe=2,
                   bias=rng.integers(-9, 9, size=4), mac="dsp",
                   requantize=Requantize(rng.integers(1, 99, size=4), np.full(4, 9), 8, True)),
        _depthwise(name="dw1", weights=rng.choice([-1, 1], size=(4, 1, 1)), weight_bits=1,
                   thresholds=np.sort(rng.integers(-9, 9, size=(4, 3)), axis=1),
                   weight_memory="spram"),
        Conv2d("pw", rng.integers(-8, 8, size=(5, 1, 1, 4)), 4, pe=5, simd=4)])


def test_depthwise_network_round_trips_through_toml(tmp_path):
    net = _separable(np.random.default_rng(2))
    save(net, tmp_path / "sep.toml")
    text = (tmp_path / "sep.toml").read_text()
    block = text.split("[[layers]]")[1]
    assert 'kind = "depthwise_conv2d"' in block and "out_features" not in block \
        and "simd" not in block
    back = load(tmp_path / "sep.toml")
    assert [type(a) for a in back.layers] == [type(a) for a in net.layers]
    assert back.types == net.types
    for a, b in zip(net.layers[:2], back.layers[:2], strict=True):
        assert (a.kernel, a.stride, a.padding, a.pad_value, a.weight_bits, a.pe, a.mac,
                a.weight_memory) == (b.kernel, b.stride, b.padding, b.pad_value, b.weight_bits,
                                     b.pe, b.mac, b.weight_memory)
        np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(back.layers[0].bias, net.layers[0].bias)
    np.testing.assert_array_equal(back.layers[0].requantize.multiplier,
                                  net.layers[0].requantize.multiplier)
    np.testing.assert_array_equal(back.layers[1].thresholds, net.layers[1].thresholds)


@pytest.fixture
def separable_files(tmp_path: Path) -> tuple[Path, Path]:
    toml = tmp_path / "sep.toml"
    save(_separable(np.random.default_rng(2)), toml)
    return toml, tmp_path / "sep.npz"


def test_depthwise_toml_refuses_simd_and_out_features(separable_files):
    toml, _ = separable_files
    edit_toml(toml, 'name = "dw1"', 'name = "dw1"\nsimd = 2')
    assert str(load_error(toml)) == (
        f"{toml}: layers[1].simd: unknown field (expected one of: bias, kernel, kind, mac, "
        f"name, out_bits, out_signed, output, pad_value, padding, pe, stride, weight_bits, "
        f"weight_memory)")


def test_depthwise_toml_weights_must_match_kernel(separable_files):
    toml, npz = separable_files
    edit_npz(npz, dw__weights=np.ones((4, 5, 5), np.int8))
    assert str(load_error(toml)) == (
        f"{npz}: dw.weights: shape (4, 5, 5), expected (channels, 3, 3) for kernel = 3")


def test_depthwise_toml_thresholds_one_row_per_channel(separable_files):
    toml, npz = separable_files
    edit_npz(npz, dw1__thresholds=np.zeros((5, 3), int))
    assert str(load_error(toml)) == (
        f"{npz}: dw1.thresholds: shape (5, 3), expected (4, 3) for out_bits = 2")


def test_depthwise_toml_filters_must_match_input_channels(separable_files):
    toml, npz = separable_files
    edit_npz(npz, dw__weights=np.ones((3, 3, 3), np.int8), dw__bias=np.zeros(3, int),
             dw__multiplier=np.ones(3, int), dw__shift=np.ones(3, int))
    assert str(load_error(toml)) == (
        f"{npz}: dw.weights: expected a (4, k, k) integer array (one k×k filter per input "
        f"channel), got (3, 3, 3)")


# --- graphs: inputs and add ---------------------------------------------------------------

def _residual(**add_kw):
    from hwgen.spec import Add, Conv2d

    conv = Conv2d("c1", np.ones((2, 3, 3, 2), int), 1, padding="same", pad_value=-1,
                  thresholds=np.zeros((2, 1), int))
    conv2 = Conv2d("c2", np.ones((2, 3, 3, 2), int), 1, padding="same", pad_value=-1,
                   thresholds=np.zeros((2, 1), int))
    add = Add("sum", **{"inputs": ("c2", "input"), **add_kw})
    return [conv, conv2, add]


def test_residual_graph_types_sources_and_toml_round_trip(tmp_path):
    net = Network("n", Input((5, 7, 2), 1), _residual())
    assert net.sources == [("input",), ("c1",), ("c2", "input")]
    assert not net.is_chain
    assert net.output_type.shape == (5, 7, 2) and net.output_type.signed  # −2..2
    path = tmp_path / "r.toml"
    save(net, path)
    again = load(path)
    assert again.sources == net.sources and again.layers[2].kind == "add"
    t = np.array([[0], [1]])
    net = Network("n", Input((5, 7, 2), 1), _residual(thresholds=t))
    assert net.output_type.binary
    save(net, path)
    assert np.array_equal(load(path).layers[2].thresholds, t)


def test_add_of_mismatched_shapes_is_refused():
    from hwgen.spec import Add, Conv2d

    conv = Conv2d("c1", np.ones((3, 3, 3, 2), int), 1, thresholds=np.zeros((3, 1), int))
    with pytest.raises(SpecError, match=re.escape(
            "<python>: layers[1].inputs: add needs two tensors of one shape, got c1 (3, 5, 3) "
            "and input (5, 7, 2)")):
        Network("n", Input((5, 7, 2), 1), [conv, Add("sum", ("c1", "input"))])


def test_a_cycle_in_the_graph_is_refused():
    from dataclasses import replace

    layers = _residual()
    layers[0] = replace(layers[0], inputs=("c2",))
    layers[2] = replace(layers[2], inputs=("c2", "c1"))
    with pytest.raises(SpecError, match=re.escape(
            "<python>: layers[0].inputs: the graph has a cycle: c1 → c2 → c1")):
        Network("n", Input((5, 7, 2), 1), layers)


def test_a_forward_reference_without_cycle_is_refused():
    from dataclasses import replace

    layers = _residual()
    layers[0] = replace(layers[0], inputs=("input",))
    layers[1] = replace(layers[1], inputs=("sum",))
    layers[2] = replace(layers[2], inputs=("c1", "input"))
    with pytest.raises(SpecError, match="'sum' is defined later"):
        Network("n", Input((5, 7, 2), 1), layers)


def test_a_tensor_with_no_consumer_is_refused():
    from dataclasses import replace

    layers = _residual()
    layers[2] = replace(layers[2], inputs=("c1", "input"))
    with pytest.raises(SpecError, match=re.escape(
            "<python>: layers[1].name: the output of 'c2' is read by no layer")):
        Network("n", Input((5, 7, 2), 1), layers)


def test_unknown_input_tensor_and_add_arity():
    from hwgen.spec import Add

    with pytest.raises(SpecError, match="unknown tensor 'nope'"):
        Network("n", Input((4,), 1), [Add("a", ("nope", "input"))])
    with pytest.raises(SpecError, match="add needs two input tensors"):
        Network("n", Input((4,), 1), [Add("a")])


# --- requantize (scale + shift) outputs and mac mapping ----------------------------------------


def requantized(signed: bool = False, multiplier=None, shift=None, bits: int = 4) -> Network:
    """fc1 (u8 × W8) requantized to ``bits`` bits, then a W4 classifier."""
    rng = np.random.default_rng(1)
    m = np.array([3, -5, 7, 1]) if multiplier is None else multiplier
    s = np.array([10, 12, 0, 4]) if shift is None else shift
    return Network("rq", Input((6,), 8), [
        Dense("fc1", rng.integers(-128, 128, size=(4, 6)), 8, bias=np.array([1, 2, 3, 4]),
              requantize=Requantize(m, s, bits, signed), mac="lut"),
        Dense("fc2", rng.integers(-8, 8, size=(3, 4)), 4),
    ])


@pytest.mark.parametrize("signed", [False, True])
def test_requantize_output_type_and_roundtrip(tmp_path, signed):
    net = requantized(signed)
    assert net.types[1].bits == 4 and net.types[1].signed == signed
    save(net, tmp_path / "rq.toml")
    text = (tmp_path / "rq.toml").read_text()
    assert 'output = "requantize"' in text and 'mac = "lut"' in text
    assert_networks_equal(load(tmp_path / "rq.toml"), net)


def rq_files(tmp_path: Path) -> tuple[Path, Path]:
    toml = tmp_path / "rq.toml"
    save(requantized(), toml)
    return toml, tmp_path / "rq.npz"


@pytest.mark.parametrize("old,new,message", [
    ("out_bits = 4", "out_bits = 1", "layers[0].out_bits: expected an integer 2..16 for a "
     "requantized output (1-bit outputs use thresholds), got 1"),
    ("out_bits = 4", "out_bits = 17", "layers[0].out_bits: expected an integer 2..16 for a "
     "requantized output (1-bit outputs use thresholds), got 17"),
    ("out_signed = false", 'out_signed = "no"', "layers[0].out_signed: expected true or "
     "false, got 'no'"),
    ('mac = "lut"', 'mac = "fast"', "layers[0].mac: expected one of 'auto', 'lut', 'dsp', "
     "got 'fast'"),
])
def test_requantize_bad_fields(tmp_path, old, new, message):
    toml, _ = rq_files(tmp_path)
    edit_toml(toml, old, new)
    assert str(load_error(toml)) == f"{toml}: {message}"


def test_out_signed_needs_requantize(tmp_path):
    toml, _ = rq_files(tmp_path)
    edit_toml(toml, 'output = "none"', 'output = "none"\nout_signed = true')
    assert str(load_error(toml)) == (f"{toml}: layers[1].out_signed: only meaningful with "
                                     f"output = \"requantize\"")


@pytest.mark.parametrize("key,value,message", [
    ("fc1.multiplier", np.array([1, 2, 3]), "shape (3,), expected (4,): one per output channel"),
    ("fc1.shift", np.array([1, 2, 48, 3]), "must lie in 0..47, found 48 at channel 2"),
    ("fc1.shift", np.array([1, -1, 4, 3]), "must lie in 0..47, found -1 at channel 1"),
    ("fc1.multiplier", np.array([1, 2, 1 << 31, 3]),
     "must lie in -2147483647..2147483647, found 2147483648 at channel 2"),
    ("fc1.multiplier", np.array([1.0, 2, 3, 4]), "dtype float64, expected an integer dtype"),
    ("fc1.shift", None, "missing from the weights file"),
])
def test_requantize_bad_arrays(tmp_path, key, value, message):
    toml, npz = rq_files(tmp_path)
    edit_npz(npz, **{key.replace(".", "__"): value})
    assert str(load_error(toml)) == f"{npz}: {key}: {message}"


def test_requantize_overflow_is_refused(tmp_path):
    """acc of fc1 reaches 6·128·255 + 4 = 195,844; × 2**31−1 is beyond 48-bit signed."""
    toml, npz = rq_files(tmp_path)
    edit_npz(npz, fc1__multiplier=np.array([3, (1 << 31) - 1, 7, 1]))
    message = str(load_error(toml))
    assert message.startswith(f"{npz}: fc1.multiplier: requantize overflows at channel 1: ")
    assert "beyond 48-bit signed; use a smaller multiplier and shift" in message


def test_requantize_and_thresholds_are_exclusive():
    net = requantized()
    layer = net.layers[0]
    with pytest.raises(SpecError, match="layers\\[0\\].requantize: a layer has thresholds or "
                       "requantize, not both"):
        Network("x", net.input, [Dense("fc1", layer.weights, 8, thresholds=np.zeros((4, 1)),
                                       requantize=layer.requantize)])


@pytest.mark.parametrize("weight_bits,input_bits,what", [(1, 8, "binary weights"),
                                                         (4, 1, "binary inputs")])
def test_mac_on_a_layer_without_products(weight_bits, input_bits, what):
    w = np.ones((2, 4), dtype=np.int64)
    with pytest.raises(SpecError) as info:
        Network("x", Input((4,), input_bits), [Dense("fc", w, weight_bits, mac="dsp")])
    assert str(info.value) == (f"<python>: layers[0].mac: 'dsp': the layer has no "
                               f"multiplications ({what} take an add/subtract or XNOR path); "
                               f"leave mac = \"auto\"")


@pytest.mark.parametrize("pe, message", [
    (2, "u2 inputs × 2-bit weights make 10-bit packed products (2 per multiplier)"),
    (1, "u2 inputs × 2-bit weights make 5-bit products"),
])
def test_dsp_refused_where_yosys_keeps_the_products_in_logic(pe, message):
    w = np.ones((4, 4), dtype=np.int64)
    with pytest.raises(SpecError) as info:
        Network("x", Input((4,), 2), [Dense("fc", w, 2, pe=pe, mac="dsp")])
    assert str(info.value) == (f'<python>: layers[0].mac: "dsp": {message}, and Yosys keeps '
                               f'products narrower than 11 bits in logic on iCE40; use "lut"')
    # four weights per multiplier make 18-bit products: accepted
    Network("x", Input((4,), 2), [Dense("fc", w, 2, pe=4, mac="dsp")])


# --- issue 14: every bad spec, NPZ or argument is one SpecError naming file and field ----------

def every_kind_files(tmp_path: Path) -> tuple[Path, Path]:
    """A saved network with one layer of every kind that has integer fields: conv2d,
    depthwise_conv2d, maxpool, flatten, dense, argmax."""
    rng = np.random.default_rng(14)
    net, _ = chain(rng, Input((6, 6, 2), 4, lanes=2), [
        dict(kind="conv2d", name="conv", out=4, kernel=3, weight_bits=2, out_bits=2,
             padding="same", pe=2, simd=2),
        dict(kind="depthwise_conv2d", name="dw", kernel=3, weight_bits=3, out_bits="u4", pe=2),
        dict(kind="maxpool", name="pool", size=2, stride=2),
        dict(kind="flatten", name="flat"),
        dict(name="fc", out=3, weight_bits=8, out_bits=None, pe=3, simd=4)],
        count=4, argmax=True, name="every")
    toml = tmp_path / "every.toml"
    save(net, toml)
    return toml, tmp_path / "every.npz"


def set_field(toml: Path, layer: int | str, key: str, value: str) -> None:
    """Set ``key = value`` (TOML text) in layer ``layer`` (an index) or the ``[input]`` table
    (``"input"``) or at the top (``""``) of a saved spec, replacing the field if present."""
    text = toml.read_text()
    head, *layers = text.split("\n[[layers]]\n")
    if layer == "":
        blocks, i = [head.split("\n[input]\n")[0]], 0
        rest = head.split("\n[input]\n")[1]
    elif layer == "input":
        top, rest = head.split("\n[input]\n")
        blocks, i = [rest], 0
    else:
        blocks, i = layers, int(layer)
    lines = [line for line in blocks[i].split("\n") if not line.startswith(f"{key} = ")]
    lines.insert(1 if layer != "" else 0, f"{key} = {value}")
    blocks[i] = "\n".join(lines)
    if layer == "":
        head = blocks[0] + "\n[input]\n" + rest
    elif layer == "input":
        head = top + "\n[input]\n" + blocks[0]
    else:
        layers = blocks
    toml.write_text("\n[[layers]]\n".join([head, *layers]))


def check_error(path: Path) -> str:
    """``hwgen check PATH`` refuses with exit 2 and one error line, no traceback."""
    line = assert_clean_error(run_main(["check", str(path)]))
    assert line.startswith("hwgen: error: "), line
    return line[len("hwgen: error: "):]


def test_every_kind_files_load(tmp_path):
    toml, _ = every_kind_files(tmp_path)
    net = load(toml)
    assert [layer.kind for layer in net.layers] == ["conv2d", "depthwise_conv2d", "maxpool",
                                                    "flatten", "dense", "argmax"]
    assert run_main(["check", str(toml)]).code == 0


def test_toml_nested_500_deep(tmp_path):
    toml = tmp_path / "deep.toml"
    toml.write_text("name = " + "[" * 500 + "]" * 500 + "\n")
    message = f"{toml}: invalid TOML: arrays or tables nested too deeply"
    assert str(load_error(toml)) == message
    assert check_error(toml) == message


def test_toml_larger_than_a_spec_is_refused_unread(tmp_path):
    toml = tmp_path / "big.toml"
    toml.write_text("# " + "x" * (1 << 20) + "\n")
    assert str(load_error(toml)) == (f"{toml}: larger than 1,048,576 bytes; a network spec is "
                                     f"a few kilobytes (the arrays go in the NPZ)")


def test_toml_path_that_is_a_directory(tmp_path):
    assert str(load_error(tmp_path)) == f"{tmp_path}: is a directory, not a TOML file"


def test_zero_byte_npz(files):
    toml, npz = files
    npz.write_bytes(b"")
    message = f"{npz}: empty file, expected an NPZ archive of integer arrays (numpy.savez)"
    assert str(load_error(toml)) == message
    assert check_error(toml) == message


def test_npy_saved_under_the_npz_name(files):
    toml, npz = files
    with open(npz, "wb") as f:
        np.save(f, np.ones((8, 16), np.int8))
    message = (f"{npz}: a single .npy array, expected an NPZ archive of named arrays "
               f"(numpy.savez)")
    assert str(load_error(toml)) == message
    assert check_error(toml) == message


def npz_with_member(npz: Path, key: str, member: bytes) -> None:
    """Replace one member of the NPZ by raw .npy bytes."""
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files if k != key}
    with zipfile.ZipFile(npz, "w") as z:
        for k, v in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, v)
            z.writestr(f"{k}.npy", buf.getvalue())
        z.writestr(f"{key}.npy", member)


def npy_bytes(header: bytes, data: bytes = b"") -> bytes:
    """A version 1.0 .npy file with this header text (padded as numpy pads it)."""
    header = header + b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def test_npz_member_with_a_broken_header(files):
    toml, npz = files
    member = npy_bytes(b"{'descr': '<i8', 'fortran_order': False, 'shape': (8, 16, }")
    with pytest.raises(tokenize.TokenError):  # what numpy itself raises for this header
        np.lib.format.read_array(io.BytesIO(member))
    npz_with_member(npz, "fc1.weights", member)
    message = str(load_error(toml))
    assert message.startswith(f"{npz}: fc1.weights: not a readable .npy array (TokenError: ")
    assert check_error(toml) == message


def test_npz_member_declaring_a_huge_shape_is_refused_before_reading(files):
    toml, npz = files
    # the header alone: reading the data would fail differently (and allocate 74.5 GiB first)
    npz_with_member(npz, "fc1.weights", npy_bytes(
        b"{'descr': '<i8', 'fortran_order': False, 'shape': (100000, 100000), }"))
    message = (f"{npz}: fc1.weights: shape (100000, 100000) (10,000,000,000 elements): the "
               f"weights file may hold at most 16,777,216 elements in all")
    assert str(load_error(toml)) == message
    assert check_error(toml) == message


def test_npz_size_limit_counts_every_array(files):
    toml, npz = files
    edit_npz(npz, big__a=np.zeros(1 << 23, np.int8), big__b=np.zeros((1 << 23) + 1, np.int8))
    message = str(load_error(toml))
    assert message.startswith(f"{npz}: big.")
    assert message.endswith("the weights file may hold at most 16,777,216 elements in all")


def test_npz_object_array_is_named(files):
    toml, npz = files
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([1, None], dtype=object), allow_pickle=True)
    npz_with_member(npz, "fc2.weights", buf.getvalue())
    message = f"{npz}: fc2.weights: dtype object, expected an integer dtype"
    assert str(load_error(toml)) == message
    assert check_error(toml) == message


def test_npz_member_that_is_not_an_array(files):
    toml, npz = files
    with zipfile.ZipFile(npz, "a") as z:
        z.writestr("notes.txt", "hello")
    assert str(load_error(toml)) == (f"{npz}: notes.txt: not a .npy array (an NPZ archive "
                                     f"holds only .npy members, as numpy.savez writes them)")


def test_npz_truncated(files):
    toml, npz = files
    npz.write_bytes(npz.read_bytes()[:300])
    message = str(load_error(toml))
    assert message.startswith(f"{npz}: ") and "not a readable" in message
    assert check_error(toml) == message


def test_npz_path_that_is_a_directory(files):
    toml, npz = files
    npz.unlink()
    npz.mkdir()
    message = f"{toml}: weights: weights file {str(npz)!r} is a directory, not an NPZ file"
    assert str(load_error(toml)) == message
    assert check_error(toml) == message


def test_npz_path_that_is_a_device(files):
    toml, npz = files
    edit_toml(toml, 'weights = "tiny.npz"', 'weights = "/dev/zero"')
    assert str(load_error(toml)) == (f"{toml}: weights: weights file '/dev/zero' is not a "
                                     f"regular file")


@pytest.mark.parametrize("layer, key, kind", [
    (0, "kernel", "conv2d"), (1, "kernel", "depthwise_conv2d"), (0, "stride", "conv2d"),
    (1, "stride", "depthwise_conv2d"), (2, "stride", "maxpool"), (2, "size", "maxpool"),
    (0, "out_features", "conv2d"), (4, "out_features", "dense"), (0, "pe", "conv2d"),
    (1, "pe", "depthwise_conv2d"), (4, "pe", "dense"), (0, "simd", "conv2d"),
    (4, "simd", "dense"), ("input", "lanes", "input"),
])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_integer_geometry_fields_must_be_positive(tmp_path, layer, key, kind, value):
    toml, _ = every_kind_files(tmp_path)
    set_field(toml, layer, key, value)
    where = "input" if layer == "input" else f"layers[{layer}]"
    folding = ' or "auto"' if key in ("pe", "simd") else ""
    message = f"{toml}: {where}.{key}: expected a positive integer{folding}, got {value}"
    assert str(load_error(toml)) == message
    assert check_error(toml) == message


@pytest.mark.parametrize("layer, key, value, message", [
    ("input", "bits", "0", "input.bits: expected an integer 1..16, got 0"),
    ("input", "bits", "-1", "input.bits: expected an integer 1..16, got -1"),
    (4, "weight_bits", "0", "layers[4].weight_bits: expected an integer 1..16, got 0"),
    (0, "out_bits", "0", "layers[0].out_bits: expected an integer 1..8, got 0"),
    (1, "out_bits", "-1", "layers[1].out_bits: expected an integer 2..16 for a requantized "
                          "output (1-bit outputs use thresholds), got -1"),
    (0, "kernel", "2.0", "layers[0].kernel: expected int, got 2.0"),
    (0, "stride", "true", "layers[0].stride: expected a positive integer, got True"),
    (2, "stride", "1.5", "layers[2].stride: expected a positive integer, got 1.5"),
    (0, "pad_value", '"zero"', "layers[0].pad_value: expected an integer in 0..15, got 'zero'"),
])
def test_bits_and_other_integer_fields(tmp_path, layer, key, value, message):
    toml, _ = every_kind_files(tmp_path)
    set_field(toml, layer, key, value)
    assert str(load_error(toml)) == f"{toml}: {message}"


def test_conv2d_kernel_zero_in_toml_is_a_field_error(tmp_path):
    """Not 4×4 → 5×5 (check) nor a ZeroDivisionError (generate): the field is named."""
    toml, npz = every_kind_files(tmp_path)
    set_field(toml, 0, "kernel", "0")
    edit_npz(npz, conv__weights=np.zeros((4, 0, 0, 2), np.int8))
    assert str(load_error(toml)) == (f"{toml}: layers[0].kernel: expected a positive integer, "
                                     f"got 0")


def test_conv2d_kernel_zero_in_python_is_refused():
    for layer in (Conv2d("c", np.zeros((4, 0, 0, 2), int), 2),
                  DepthwiseConv2d("c", np.zeros((2, 0, 0), int), 2)):
        with pytest.raises(SpecError) as info:
            Network("n", Input((4, 4, 2), 8), [layer])
        assert str(info.value) == ("<python>: c.weights: shape " + str(layer.weights.shape)
                                   + ": a 0×0 kernel, expected k ≥ 1")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_out_features_not_positive_names_the_field(files, value):
    toml, _ = files
    edit_toml(toml, "out_features = 6", f"out_features = {value}")
    assert str(load_error(toml)) == (f"{toml}: layers[1].out_features: expected a positive "
                                     f"integer, got {value}")


LONG_NAME_RULE = ("characters, at most 64 (the name becomes Verilog identifiers and file "
                  "names)")


def test_network_name_of_5000_characters(files, tmp_path):
    toml, _ = files
    edit_toml(toml, 'name = "tiny"', f'name = "{"n" * 5000}"')
    message = (f"{toml}: name: 5000 {LONG_NAME_RULE}: '{'n' * 59}… (str, 5,000 "
               f"characters)")
    assert str(load_error(toml)) == message
    assert check_error(toml) == message
    out = tmp_path / "out"
    line = assert_clean_error(run_main(["generate", str(toml), "-o", str(out)]))
    assert line == f"hwgen: error: {message}"
    assert not out.exists()


def test_names_of_64_characters_are_accepted_65_refused(files):
    toml, _ = files
    edit_toml(toml, 'name = "tiny"', f'name = "{"n" * 64}"')
    edit_toml(toml, 'name = "argmax"', f'name = "{"a" * 64}"')
    net = load(toml)
    assert net.name == "n" * 64 and net.layers[3].name == "a" * 64
    edit_toml(toml, 'name = "fc3"', f'name = "{"g" * 65}"')
    assert str(load_error(toml)) == (f"{toml}: layers[2].name: 65 {LONG_NAME_RULE}: "
                                     f"'{'g' * 59}… (str, 65 characters)")


def test_name_with_a_trailing_newline_is_refused(files):
    toml, _ = files
    edit_toml(toml, 'name = "tiny"', 'name = "tiny\\n"')
    message = f"{toml}: name: {NAME_RULE}, got 'tiny\\n'"
    assert str(load_error(toml)) == message
    assert "\n" not in message


@pytest.mark.parametrize("path", [None, 123, 1.5, ["a.toml"]])
def test_load_needs_a_path(path):
    with pytest.raises(SpecError) as info:
        load(path)
    assert str(info.value) == (f"<python>: path: expected a TOML file name (str or "
                               f"os.PathLike), got {path!r}")


def test_save_needs_a_network_and_a_path(tmp_path):
    with pytest.raises(SpecError, match=r"^<python>: network: expected a hwgen.spec.Network, "
                                        r"got dict$"):
        save({}, tmp_path / "x.toml")
    with pytest.raises(SpecError, match=r"^<python>: path: expected a TOML file name \(str or "
                                        r"os.PathLike\), got None$"):
        save(baseline(), None)


def test_save_refuses_an_npz_name_for_the_toml(tmp_path):
    with pytest.raises(SpecError) as info:
        save(baseline(), tmp_path / "tiny.npz")
    assert str(info.value) == (f"{tmp_path / 'tiny.npz'}: a .npz name for the TOML: the "
                               f"weights file <stem>.npz would overwrite it; use a .toml name")
    assert not (tmp_path / "tiny.npz").exists()


def api_error(build) -> str:
    with pytest.raises(SpecError) as info:
        build()
    return str(info.value)


W4 = np.ones((2, 4), int)


@pytest.mark.parametrize("build, message", [
    (lambda: Network("n", Input((4,), 8), [{"kind": "dense", "name": "fc"}]),
     "layers[0]: expected a layer (Dense, Conv2d, DepthwiseConv2d, MaxPool, GlobalSumPool, "
     "Flatten, Add, ChannelSplit, Concat, ChannelShuffle, Argmax), got dict (a TOML table; "
     "in Python build the layer, e.g. hwgen.spec.Dense(...))"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2, inputs=None)]),
     "layers[0].inputs: expected a list of tensor names, got None"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2, inputs="input")]),
     "layers[0].inputs: expected a list of tensor names, got 'input'"),
    (lambda: Network("n", Input((4,), 8, signed="yes"), [Argmax()]),
     "input.signed: expected true or false, got 'yes'"),
    (lambda: Network("n", Input((4,), 8, signed=1), [Argmax()]),
     "input.signed: expected true or false, got 1"),
    (lambda: Network("n", Input((4,), 8.0), [Argmax()]),
     "input.bits: expected an integer 1..16, got 8.0"),
    (lambda: Network("n", Input((4,), True), [Argmax()]),
     "input.bits: expected an integer 1..16, got True"),
    (lambda: Network("n", Input((4,), 8, lanes=2.0), [Argmax()]),
     "input.lanes: expected a positive integer, got 2.0"),
    (lambda: Network("n", Input((4, 4, 4, 4), 8), [Flatten(), Argmax()]),
     "input.shape: 4 dimensions, expected 1 to 3: (N,), (H, W) or (H, W, C)"),
    (lambda: Network("n", Input((1 << 12, 1 << 12, 2), 8), [Flatten(), Argmax()]),
     "input.shape: (4096, 4096, 2) has 33,554,432 elements, more than the 16,777,216 a "
     "tensor may hold"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2, pe=2.0)]),
     "layers[0].pe: expected a positive integer or \"auto\", got 2.0"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2, simd=True)]),
     "layers[0].simd: expected a positive integer or \"auto\", got True"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2.0)]),
     "layers[0].weight_bits: expected an integer 1..16, got 2.0"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2, mac=None)]),
     "layers[0].mac: expected one of 'auto', 'lut', 'dsp', got None"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2, weight_memory=["rom"])]),
     "layers[0].weight_memory: expected one of 'rom', 'spram', got ['rom']"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2, requantize=Requantize(
        np.ones(2, int), np.zeros(2, int), 4, signed="no"))]),
     "layers[0].out_signed: expected true or false, got 'no'"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2, requantize=Requantize(
        np.ones(2, int), np.zeros(2, int), 4.0))]),
     "layers[0].out_bits: expected an integer 2..16 for a requantized output (1-bit outputs "
     "use thresholds), got 4.0"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2, requantize="u4")]),
     "layers[0].requantize: expected a hwgen.spec.Requantize, got str"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", W4, 2, bias=np.zeros(2))]),
     "d.bias: dtype float64, expected an integer dtype"),
    (lambda: Network("n", Input((4,), 8), [Dense("d", np.ones((2, 4, 1), int), 2)]),
     "d.weights: expected a 2-D (out_features, 4) integer array, got (2, 4, 1)"),
    (lambda: Network("n", Input((4, 4, 2), 8), [Conv2d("c", np.ones((2, 1, 1, 2), int), 2,
                                                       stride=1.0)]),
     "layers[0].stride: expected a positive integer, got 1.0"),
    (lambda: Network("n", Input((4, 4, 2), 8), [Conv2d("c", np.ones((2, 1, 1, 2), int), 2,
                                                       padding=None)]),
     "layers[0].padding: expected \"valid\", \"same\" or [top, left, bottom, right], got "
     "None"),
    (lambda: Network("n", Input((4, 4, 2), 8), [MaxPool("p", 2.0)]),
     "layers[0].size: expected a positive integer, got 2.0"),
    (lambda: Network("n", Input((4, 4, 2), 8), [MaxPool("p", 2, stride=0)]),
     "layers[0].stride: expected a positive integer, got 0"),
    (lambda: Network("n", Input((4,), 8), [Argmax(name=None)]),
     f"layers[0].name: {NAME_RULE}, got None"),
    (lambda: Network("n", Input((4,), 8), None), "layers: expected a list of layers, got "
                                                  "NoneType"),
    (lambda: Network("n", {"shape": [4], "bits": 8}, [Argmax()]),
     "input: expected a hwgen.spec.Input, got dict"),
    (lambda: Network("n", Input((4,), 8), [Argmax()], dataset=5),
     "dataset: expected a file name, got 5"),
    (lambda: Network(5, Input((4,), 8), [Argmax()]), f"name: {NAME_RULE}, got 5"),
])
def test_python_api_argument_errors(build, message):
    assert api_error(build) == f"<python>: {message}"


def test_conv2d_string_pad_value_is_refused_even_where_unused():
    """It used to be accepted (unused with valid padding) and saved as TOML load refused."""
    conv = Conv2d("c", np.ones((2, 1, 1, 2), int), 2, padding="valid", pad_value="zero")
    assert api_error(lambda: Network("n", Input((4, 4, 2), 8), [conv])) == (
        "<python>: layers[0].pad_value: expected an integer in 0..255, got 'zero'")


def test_numpy_scalars_are_taken_as_python_values():
    """NumPy integers and bools where ints and bools belong are accepted and stored as Python
    values (so that --json and save write them as such)."""
    w = np.ones((2, 2, 2, 2), int)
    net = Network("n", Input((np.int64(4), np.int32(4), 2), np.int64(8), np.bool_(True),
                             lanes=np.int16(2)),
                  [Conv2d("c", w, np.int8(2), stride=np.int64(2), pad_value=np.int64(0),
                          pe=np.int64(2), simd=np.int64(1)),
                   MaxPool("p", np.int64(2), np.int64(1)), Flatten(),
                   Dense("d", np.ones((2, 2), int), 2, requantize=Requantize(
                       np.ones(2, int), np.zeros(2, int), np.int64(4), np.bool_(False)))])
    values = [net.input.shape[0], net.input.bits, net.input.signed, net.input.lanes,
              net.layers[0].weight_bits, net.layers[0].stride, net.layers[0].pad_value,
              net.layers[0].pe, net.layers[0].simd, net.layers[1].size, net.layers[1].stride,
              net.layers[3].requantize.bits, net.layers[3].requantize.signed]
    assert [type(v) for v in values] == [int] * 2 + [bool] + [int] * 9 + [bool]


def test_layer_inputs_given_as_a_list_are_stored_as_a_tuple():
    net = Network("n", Input((4,), 8), [Dense("d", W4, 2, inputs=["input"])])
    assert net.layers[0].inputs == ("input",)


def test_accumulators_beyond_64_bits_are_refused():
    """Each raw output grows the next layer's input; the golden model computes in int64."""
    layers = [Dense(f"d{i}", np.full((1, 1), -32768), 16) for i in range(5)]
    message = api_error(lambda: Network("n", Input((1,), 16), layers))
    assert message.startswith("<python>: layers[3]: accumulators reach ±")
    assert message.endswith("inputs × 16-bit weights), beyond 64-bit signed integers; "
                            "quantize the input (thresholds or requantize on the layer before)")


def test_dataset_name_with_a_newline_round_trips(tmp_path):
    net = baseline()
    net.dataset = Path("odd\nname.npz")
    save(net, tmp_path / "t.toml")
    assert load(tmp_path / "t.toml").dataset == tmp_path / "odd\nname.npz"


def test_spec_error_is_always_one_line():
    assert str(SpecError("a\nb.toml", "x\ty", "bad\nvalue")) == "a\\nb.toml: x\\ty: bad\\nvalue"


# --- round trip: whatever the API accepts, save writes and load reads back equal -------------

def network_state(net: Network) -> dict:
    """Everything that defines a network (not where it came from), arrays as lists."""
    def plain(value):
        if isinstance(value, np.ndarray):
            return ("array", value.dtype.kind, value.shape, value.tolist())
        if isinstance(value, Requantize):
            return ("requantize", plain(value.multiplier), plain(value.shift), value.bits,
                    value.signed)
        return value

    return {"name": net.name, "types": net.types, "sources": net.sources,
            "input": dataclasses.astuple(net.input),
            "dataset": None if net.dataset is None else net.dataset.name,
            "layers": [(type(layer).__name__,
                        {f.name: plain(getattr(layer, f.name))
                         for f in dataclasses.fields(layer)}) for layer in net.layers]}


def random_network(rng: np.random.Generator) -> Network:
    """A random network the API accepts, from :func:`tests.helpers.chain`: an image chain
    (conv2d, depthwise_conv2d, maxpool, then flatten or global_sum_pool) or none, then dense
    layers, every output kind, folding, memory and mac, maybe argmax; or a residual block."""
    if rng.random() < 0.1:
        return residual_block(bool(rng.integers(2)))[0]

    def divisor(n: int) -> int:
        return int(rng.choice([d for d in range(1, n + 1) if n % d == 0]))

    def output() -> object:
        return [None, 1, 2, 3, f"u{rng.integers(2, 9)}", f"s{rng.integers(2, 9)}"][
            rng.integers(6)]

    bits = int(rng.choice([1, 2, 4, 8, 16]))
    signed = bits > 1 and bool(rng.integers(2))
    specs: list[dict] = []
    if rng.random() < 0.5:
        h, w = (int(v) for v in rng.integers(3, 7, size=2))
        c = int(rng.integers(1, 5))
        shape = (h, w, c)
        for _ in range(int(rng.integers(1, 3))):
            kind = rng.choice(["conv2d", "depthwise_conv2d", "maxpool"])
            padding = str(rng.choice(["same", "valid"]))
            k = int(rng.integers(1, 4)) if padding == "same" else 1
            if kind == "maxpool":
                specs.append(dict(kind="maxpool", size=2, stride=int(rng.integers(1, 3))))
                h, w = (h - 2) // specs[-1]["stride"] + 1, (w - 2) // specs[-1]["stride"] + 1
                if min(h, w) < 2:
                    break
                continue
            stride = int(rng.integers(1, 3)) if padding == "same" else 1
            common = dict(kernel=k, weight_bits=int(rng.choice([1, 2, 4, 8])),
                          out_bits=output(), padding=padding, stride=stride,
                          pad_value=int(rng.choice([-1, 1, 0, 99])), bias=bool(rng.integers(2)),
                          weight_memory=str(rng.choice(["rom", "spram"])))
            if kind == "conv2d":
                out = int(rng.integers(1, 7))
                specs.append(dict(kind="conv2d", out=out, pe=divisor(out), simd=divisor(c),
                                  **common))
                c = out
            else:
                specs.append(dict(kind="depthwise_conv2d", pe=divisor(c), **common))
            h, w = -(-h // stride), -(-w // stride)
        specs.append(dict(kind=str(rng.choice(["flatten", "global_sum_pool"]))))
        size = c if specs[-1]["kind"] == "global_sum_pool" else None
    else:
        shape = (int(rng.integers(1, 13)),)
        size = shape[0]
    for _ in range(int(rng.integers(1, 4))):
        out = int(rng.integers(1, 9))
        specs.append(dict(out=out, weight_bits=int(rng.choice([1, 2, 4, 8, 16])),
                          out_bits=output(), pe=divisor(out),
                          simd=divisor(size) if size else None, bias=bool(rng.integers(2)),
                          mac=str(rng.choice(["auto", "auto", "lut"]))))
        size = out
    lanes = None if rng.random() < 0.3 else divisor(shape[-1])
    net, _ = chain(rng, Input(shape, bits, signed, lanes=lanes), specs, count=6,
                   argmax=bool(rng.integers(2)), name=f"net{rng.integers(1000)}")
    return net


def test_save_load_round_trips_random_networks(tmp_path):
    rng = np.random.default_rng(1414)
    built = 0
    seen = set()
    while built < 60:
        try:
            net = random_network(rng)
        except SpecError:  # the random choices did not make a valid network: draw again
            continue
        built += 1
        seen |= {layer.kind for layer in net.layers}
        if rng.random() < 0.3:
            net.dataset = Path(f"data{built}.npz")
        toml = tmp_path / f"r{built}.toml"
        save(net, toml)
        assert network_state(load(toml)) == network_state(net), toml.read_text()
    assert seen == {"dense", "conv2d", "depthwise_conv2d", "maxpool", "flatten",
                    "global_sum_pool", "add", "argmax"}, seen


def test_network_state_tells_networks_apart():
    a, b = baseline(), baseline()
    assert network_state(a) == network_state(b)
    b.layers[0].weights[0, 0] *= -1
    assert network_state(a) != network_state(b)


@pytest.mark.parametrize("layer, message", [
    (Conv2d("c", np.ones((2, 4, 4, 2), int), 2, stride=10 ** 30),
     f"layers[0].stride: {10 ** 30} is larger than the padded input 4×4"),
    (DepthwiseConv2d("c", np.ones((2, 3, 3), int), 2, stride=7, padding="same"),
     "layers[0].stride: 7 is larger than the padded input 4×4"),
    (MaxPool("p", 4, 5), "layers[0].stride: 5 is larger than the input 4×4"),
])
def test_a_stride_beyond_the_input_is_refused(layer, message):
    """Such a stride gives one output position, as the input's extent would; generate died
    in an OverflowError on 10**30."""
    assert api_error(lambda: Network("n", Input((4, 4, 2), 8), [layer])) == \
        f"<python>: {message}"


def test_a_stride_as_large_as_the_input_is_accepted():
    net = Network("n", Input((4, 6, 2), 8), [MaxPool("p", 2, 6)])
    assert net.output_type.shape == (1, 1, 2)


@pytest.mark.parametrize("value", ['""', '"a\\u0000b"', "3"])
def test_dataset_test_must_be_a_file_name(files, value):
    toml, _ = files
    edit_toml(toml, 'test = "tiny.test.npz"', f"test = {value}")
    shown = {'""': "''", '"a\\u0000b"': "'a\\x00b'", "3": "3"}[value]
    expected = "expected str, got 3" if value == "3" else f"expected a file name, got {shown}"
    assert str(load_error(toml)) == f"{toml}: dataset.test: {expected}"


@pytest.mark.parametrize("layer, message", [
    (Dense("d", np.array(2), 2), "d.weights: expected a 2-D (out_features, 4) integer array, "
                                 "got ()"),
    (Dense("d", W4, 2, thresholds=[[0], [1]]),
     "d.thresholds: expected an (2, 2**out_bits - 1) integer array, got list"),
    (Dense("d", W4, 2, thresholds=np.zeros((2, 1), bool)),
     "d.thresholds: dtype bool, expected an integer dtype"),
    (Dense("d", W4, 2, requantize=Requantize([1, 1], np.zeros(2, int), 4)),
     "d.multiplier: expected a NumPy integer array, got list"),
    (Dense("d", np.array([[1, None, 1, 1]] * 2), 2),
     "d.weights: dtype object, expected an integer dtype"),
])
def test_python_api_array_errors(layer, message):
    assert api_error(lambda: Network("n", Input((4,), 8), [layer])) == f"<python>: {message}"


def test_load_npz_for_other_files(tmp_path):
    """The checked NPZ reader, for a dataset: its own field, name and limit."""
    path = tmp_path / "test.npz"
    np.savez(path, x=np.zeros((4, 3), np.uint8), y=np.arange(4))
    arrays = load_npz(path, "net.toml", "dataset.test", max_elements=16,
                      what="dataset file")
    assert sorted(arrays) == ["x", "y"] and arrays["x"].shape == (4, 3)
    with pytest.raises(SpecError) as info:
        load_npz(path, "net.toml", "dataset.test", max_elements=15, what="dataset file")
    assert str(info.value) == (f"{path}: y: shape (4,) (4 elements): the dataset file may "
                               f"hold at most 15 elements in all")
    with pytest.raises(SpecError) as info:
        load_npz(tmp_path / "none.npz", "net.toml", "dataset.test", what="dataset file")
    assert str(info.value) == (f"net.toml: dataset.test: dataset file "
                               f"{str(tmp_path / 'none.npz')!r} not found")


# "same" padding against the rule of TensorFlow ("SAME": pad_along = max((out − 1)·s + k − in,
# 0), pad_top = pad_along // 2, the odd pixel at the bottom/right) and ONNX (auto_pad
# SAME_UPPER: "the extra padding is added at the end"); out = ceil(in / s). The table is
# written by hand from that rule, not from hwgen's code.
SAME_UPPER = [
    # (size, kernel, stride) → (before, after)
    ((5, 3, 1), (1, 1)),
    ((4, 2, 1), (0, 1)),   # even kernel: the odd pixel after
    ((6, 4, 1), (1, 2)),
    ((6, 3, 2), (0, 1)),   # stride 2, even size: out 3, (3 − 1)·2 + 3 − 6 = 1
    ((5, 3, 2), (1, 1)),   # stride 2, odd size: out 3, 2·2 + 3 − 5 = 2
    ((7, 2, 2), (0, 1)),   # out 4: 3·2 + 2 − 7 = 1
    ((8, 3, 3), (0, 1)),   # out 3: 2·3 + 3 − 8 = 1
    ((5, 5, 2), (2, 2)),
    ((9, 4, 2), (1, 2)),   # out 5: 4·2 + 4 − 9 = 3
    ((1, 3, 1), (1, 1)),
]


@pytest.mark.parametrize("geometry, pads", SAME_UPPER)
def test_same_padding_is_tensorflow_same_and_onnx_same_upper(geometry, pads):
    from hwgen.spec import same_padding

    assert same_padding(*geometry) == pads


@pytest.mark.parametrize("geometry, pads", SAME_UPPER[1:7])
def test_same_conv_pads_the_odd_pixel_after(geometry, pads):
    """The whole layer: a "same" conv2d on a size × (size + 1) image computes what an
    explicitly padded convolution (the table's pads) computes."""
    from hwgen import golden
    from hwgen.spec import Conv2d, same_padding

    size, kernel, stride = geometry
    rng = np.random.default_rng(size * 100 + kernel * 10 + stride)
    width = size + 1
    x = rng.integers(0, 256, size=(2, size, width, 2))
    w = rng.integers(-8, 8, size=(3, kernel, kernel, 2))
    layer = Conv2d("c", w, 4, stride=stride, padding="same", pad_value=0)
    Network("n", Input((size, width, 2), 8), [layer])
    top, bottom = pads
    # width's pads, from the same rule by hand: ceil((size + 1) / stride) outputs
    out_w = -(-width // stride)
    along = max((out_w - 1) * stride + kernel - width, 0)
    left, right = along // 2, along - along // 2
    assert same_padding(width, kernel, stride) == (left, right)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out_h = -(-size // stride)
    want = np.zeros((2, out_h, out_w, 3), dtype=np.int64)
    for oy in range(out_h):
        for ox in range(out_w):
            patch = xp[:, oy * stride:oy * stride + kernel, ox * stride:ox * stride + kernel]
            want[:, oy, ox] = np.einsum("nyxc,oyxc->no", patch, w)
    assert (golden.accumulate(layer, x) == want).all()
