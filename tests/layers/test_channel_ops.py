"""channel_split, concat and channel_shuffle: golden values against explicit loops and
hand-worked examples, every spec error by its exact message (Python API and TOML), the TOML
round trip, and the cost model (lanes, cycles, converters, FIFOs, the shuffle's latency checked
against the RTL in simulation)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from hwgen import golden
from hwgen.layers.channel_shuffle import ChannelShuffle
from hwgen.layers.channel_split import ChannelSplit
from hwgen.layers.concat import Concat
from hwgen.numeric import TensorType
from hwgen.plan import plan
from hwgen.spec import Conv2d, Flatten, Input, MaxPool, Network, SpecError, load, save
from tests.helpers import random_inputs, shufflenet_unit
from tests.test_spec import network_state

# --- golden: channel_split -------------------------------------------------------------------


@pytest.mark.parametrize("shape, bits", [((2, 3, 6), 2), ((8,), 4), ((3, 4), 1)])
def test_channel_split_halves(shape, bits):
    net = Network("n", Input(shape, bits), [
        ChannelSplit("split"), Concat("cat", ("split.1", "split.0"))])
    x = random_inputs(np.random.default_rng(1), net.input_type, 4)
    out = golden.run(net, x)
    c = shape[-1]
    first = np.zeros((4, *shape[:-1], c // 2), dtype=np.int64)
    second = np.zeros_like(first)
    for index in np.ndindex(*x.shape[:-1]):
        for k in range(c // 2):
            first[(*index, k)] = x[(*index, k)]
            second[(*index, k)] = x[(*index, c // 2 + k)]
    np.testing.assert_array_equal(out["split.0"], first)
    np.testing.assert_array_equal(out["split.1"], second)
    half = TensorType((*shape[:-1], c // 2), bits, False)
    assert net.type_of("split.0") == net.type_of("split.1") == half
    assert net.types[1] == half  # a layer's first output


def test_channel_split_literal_example():
    net = Network("n", Input((1, 6), 3), [
        ChannelSplit("split"), Concat("cat", ("split.1", "split.0"))])
    out = golden.run(net, np.array([[[0, 1, 2, 3, 4, 5]]]))
    assert out["split.0"].tolist() == [[[0, 1, 2]]]
    assert out["split.1"].tolist() == [[[3, 4, 5]]]
    assert out["cat"].tolist() == [[[3, 4, 5, 0, 1, 2]]]


# --- golden: concat --------------------------------------------------------------------------

def identity_conv(name: str, source: str, thresholds: list[int]) -> Conv2d:
    """A 1×1 conv2d on a 2-channel tensor with identity weights: its output is each channel's
    value against ``thresholds`` (the same for both channels)."""
    weights = np.zeros((2, 1, 1, 2), dtype=np.int64)
    weights[0, 0, 0, 0] = weights[1, 0, 0, 1] = 1
    return Conv2d(name, weights, 2, thresholds=np.array([thresholds, thresholds]),
                  inputs=(source,))


def mixed_network(cat_inputs: tuple[str, ...]) -> Network:
    """A u2 (2, 3, 4) input split into halves; ``sign`` = ±1 (binary) by split.1 ≥ 2,
    ``dbl`` = 2·split.0 (u3, seven thresholds 1,1,2,2,3,3,4); a concat of ``cat_inputs``."""
    layers = [ChannelSplit("split")]
    if "sign" in cat_inputs:
        layers.append(identity_conv("sign", "split.1", [2]))
    if "dbl" in cat_inputs:
        layers.append(identity_conv("dbl", "split.0", [1, 1, 2, 2, 3, 3, 4]))
    layers.append(Concat("cat", cat_inputs))
    return Network("mix", Input((2, 3, 4), 2), layers)


def hand_values(tensor: str, x: np.ndarray) -> np.ndarray:
    """The values of ``mixed_network``'s tensors, element by element."""
    out = np.zeros((*x.shape[:-1], 2), dtype=np.int64)
    for index in np.ndindex(*x.shape[:-1]):
        for k in range(2):
            low, high = x[(*index, k)], x[(*index, 2 + k)]
            out[(*index, k)] = {"split.0": low, "split.1": high, "dbl": 2 * low,
                                "sign": 1 if high >= 2 else -1}[tensor]
    return out


@pytest.mark.parametrize("cat_inputs, described", [
    (("sign", "split.0"), "s3"),            # bin (−1, 1) + u2 (0..3): −1..3
    (("split.0", "sign"), "s3"),
    (("split.0", "dbl", "sign"), "s4"),     # u2 + u3 (0..7) + bin: −1..7
    (("split.1", "dbl"), "u3"),             # 0..7
    (("split.1", "split.0"), "u2"),
])
def test_concat_values_and_inferred_type(cat_inputs, described):
    net = mixed_network(cat_inputs)
    x = random_inputs(np.random.default_rng(2), net.input_type, 6)
    got = golden.run(net, x)["cat"]
    expected = np.zeros((6, 2, 3, 2 * len(cat_inputs)), dtype=np.int64)
    parts = [hand_values(t, x) for t in cat_inputs]
    for index in np.ndindex(*x.shape[:-1]):
        channel = 0
        for part in parts:
            for k in range(part.shape[-1]):
                expected[(*index, channel)] = part[(*index, k)]
                channel += 1
    np.testing.assert_array_equal(got, expected)
    t = net.type_of("cat")
    assert t.shape == (2, 3, 2 * len(cat_inputs)) and t.describe() == described
    assert net.output_type == t
    lo, hi = t.range
    assert lo <= got.min() and got.max() <= hi
    if "sign" in cat_inputs:  # the binary part arrives as ±1, never as its 0/1 code
        sign = got[..., 2 * cat_inputs.index("sign"):][..., :2]
        assert set(np.unique(sign)) == {-1, 1}


def test_concat_of_three_binary_tensors_is_binary():
    net = Network("n", Input((2, 2, 4), 1), [
        ChannelSplit("split"), Concat("cat", ("split.1", "input", "split.0"))])
    x = random_inputs(np.random.default_rng(3), net.input_type, 5)
    got = golden.run(net, x)["cat"]
    assert net.type_of("cat") == TensorType((2, 2, 8), 1, False)
    for n, i, j in np.ndindex(5, 2, 2):
        row = x[n, i, j].tolist()
        assert got[n, i, j].tolist() == row[2:] + row + row[:2]


def test_concat_literal_example():
    net = Network("n", Input((4,), 2), [
        ChannelSplit("split"), Concat("cat", ("split.1", "input", "split.0"))])
    out = golden.run(net, np.array([[0, 1, 2, 3]]))
    assert out["cat"].tolist() == [[2, 3, 0, 1, 2, 3, 0, 1]]
    assert net.type_of("cat") == TensorType((8,), 2, False)


# --- golden: channel_shuffle -----------------------------------------------------------------

def shuffle_by_loop(x: np.ndarray, groups: int) -> np.ndarray:
    """out[..., j] = in[..., (j mod g)·(C/g) + j div g]."""
    c = x.shape[-1]
    out = np.zeros_like(x)
    for index in np.ndindex(*x.shape[:-1]):
        for j in range(c):
            out[(*index, j)] = x[(*index, (j % groups) * (c // groups) + j // groups)]
    return out


@pytest.mark.parametrize("shape, groups", [
    ((2, 3, 12), 2), ((2, 3, 12), 3), ((2, 3, 12), 4), ((12,), 3), ((3, 8), 4),
    ((2, 2, 6), 1), ((2, 2, 6), 6)])
def test_channel_shuffle_matches_the_formula(shape, groups):
    net = Network("n", Input(shape, 4, signed=True), [ChannelShuffle("sh", groups)])
    x = random_inputs(np.random.default_rng(groups), net.input_type, 3)
    got = golden.run(net, x)["sh"]
    np.testing.assert_array_equal(got, shuffle_by_loop(x, groups))
    if groups in (1, shape[-1]):  # one group, or one channel per group: the identity
        np.testing.assert_array_equal(got, x)
    assert net.output_type == net.input_type


@pytest.mark.parametrize("groups, expected", [
    (2, [0, 3, 1, 4, 2, 5]),
    (3, [0, 2, 4, 1, 3, 5]),
])
def test_channel_shuffle_literal_example(groups, expected):
    net = Network("n", Input((6,), 3), [ChannelShuffle("sh", groups)])
    assert golden.run(net, np.array([[0, 1, 2, 3, 4, 5]]))["sh"].tolist() == [expected]


def test_channel_shuffle_of_a_binary_image():
    # per position: (a, b, c, d) with groups 2 → (a, c, b, d)
    net = Network("n", Input((1, 2, 4), 1), [ChannelShuffle("sh", 2)])
    x = np.array([[[[1, 1, -1, -1], [-1, 1, -1, 1]]]])
    assert golden.run(net, x)["sh"].tolist() == [[[[1, -1, 1, -1], [-1, -1, 1, 1]]]]


# --- spec errors: Python API and TOML --------------------------------------------------------

CLASSES = {"channel_split": ChannelSplit, "concat": Concat, "channel_shuffle": ChannelShuffle,
           "maxpool": MaxPool}


def python_network(inp: dict, layers: list[dict]) -> Network:
    built = []
    for table in layers:
        fields = {k: v for k, v in table.items() if k != "kind"}
        if "inputs" in fields:
            fields["inputs"] = tuple(fields["inputs"])
        built.append(CLASSES[table["kind"]](**fields))
    return Network("n", Input(tuple(inp["shape"]), inp["bits"]), built)


def write_toml(path: Path, inp: dict, layers: list[dict]) -> Path:
    lines = ['name = "n"', "", "[input]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in inp.items()]
    for table in layers:
        lines += ["", "[[layers]]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


SPLIT = {"name": "split", "kind": "channel_split"}
U2_4 = {"shape": [2, 2, 4], "bits": 2}

#: (input, layers, field, message, TOML message if it differs)
ERRORS = {
    "odd_split": (
        {"shape": [2, 2, 5], "bits": 2},
        [SPLIT, {"name": "cat", "kind": "concat", "inputs": ["split.0", "split.1"]}],
        "layers[0].kind", "channel_split needs an even channel count, got 5 (input shape "
        "(2, 2, 5))", None),
    "odd_split_1d": (
        {"shape": [7], "bits": 1},
        [SPLIT, {"name": "cat", "kind": "concat", "inputs": ["split.0", "split.1"]}],
        "layers[0].kind", "channel_split needs an even channel count, got 7 (input shape "
        "(7,))", None),
    "concat_shapes": (
        {"shape": [4, 4, 4], "bits": 2},
        [SPLIT, {"name": "p", "kind": "maxpool", "size": 2, "inputs": ["split.0"]},
         {"name": "cat", "kind": "concat", "inputs": ["p", "split.1"]}],
        "layers[2].inputs", "concat needs tensors of one shape but the channels, got p "
        "(2, 2, 2) and split.1 (4, 4, 2)", None),
    "concat_one_input": (
        U2_4, [{"name": "cat", "kind": "concat", "inputs": ["input"]}],
        "layers[0].inputs", "expected two or more tensor names, got ['input']", None),
    "concat_no_inputs": (
        U2_4, [{"name": "cat", "kind": "concat"}],
        "layers[0].inputs", "concat needs two or more input tensors", None),
    "groups_not_dividing": (
        U2_4, [SPLIT, {"name": "cat", "kind": "concat", "inputs": ["split.1", "split.0"]},
               {"name": "sh", "kind": "channel_shuffle", "groups": 3}],
        "layers[2].groups", "3 does not divide the 4 channels of the input", None),
    "groups_zero": (
        U2_4, [SPLIT, {"name": "cat", "kind": "concat", "inputs": ["split.1", "split.0"]},
               {"name": "sh", "kind": "channel_shuffle", "groups": 0}],
        "layers[2].groups", "expected a positive integer, got 0", None),
    "groups_string": (
        U2_4, [SPLIT, {"name": "cat", "kind": "concat", "inputs": ["split.1", "split.0"]},
               {"name": "sh", "kind": "channel_shuffle", "groups": "2"}],
        "layers[2].groups", "expected a positive integer, got '2'", "expected int, got '2'"),
    "read_split_not_split_0": (
        U2_4, [SPLIT, {"name": "cat", "kind": "concat", "inputs": ["split", "split.1"]}],
        "layers[1].inputs", "unknown tensor 'split' (expected 'input' or a layer name; 'split' "
        "has 2 outputs: 'split.0', 'split.1')", None),
    "split_1_unread": (
        U2_4, [SPLIT, {"name": "sh", "kind": "channel_shuffle", "groups": 2,
                       "inputs": ["split.0"]}],
        "layers[0].name", "the output 'split.1' of 'split' is read by no layer (only the last "
        "layer's output leaves the network)", None),
    "split_last": (
        U2_4, [SPLIT],
        "layers[0].kind", "channel_split has 2 outputs and cannot be the last layer (only one "
        "tensor leaves the network)", None),
    "after_split_without_inputs": (
        U2_4, [SPLIT, {"name": "sh", "kind": "channel_shuffle", "groups": 2}],
        "layers[1].inputs", "the layer before has 2 outputs; name one of 'split.0', 'split.1'",
        None),
}


def error_cases():
    return [pytest.param(*case, id=name) for name, case in ERRORS.items()]


@pytest.mark.parametrize("inp, layers, field, message, toml_message", error_cases())
def test_spec_error_through_the_python_api(inp, layers, field, message, toml_message):
    with pytest.raises(SpecError, match="^" + re.escape(f"<python>: {field}: {message}") + "$"):
        python_network(inp, layers)


@pytest.mark.parametrize("inp, layers, field, message, toml_message", error_cases())
def test_spec_error_through_toml(tmp_path, inp, layers, field, message, toml_message):
    path = write_toml(tmp_path / "bad.toml", inp, layers)
    with pytest.raises(SpecError) as info:
        load(path)
    err = info.value
    assert str(err) == f"{path}: {field}: {toml_message or message}"
    assert (err.source, err.field) == (str(path), field)
    assert "\n" not in str(err)


@pytest.mark.parametrize("case, shape, index, table", [
    ("odd_split", [2, 2, 6], None, None),
    ("concat_shapes", None, 1, {"name": "p", "kind": "maxpool", "size": 1,
                                "inputs": ["split.0"]}),
    ("groups_zero", None, 2, {"name": "sh", "kind": "channel_shuffle", "groups": 2}),
    ("groups_string", None, 2, {"name": "sh", "kind": "channel_shuffle", "groups": 4}),
    ("split_1_unread", None, 1, {"name": "cat", "kind": "concat",
                                 "inputs": ["split.1", "split.0"]}),
])
def test_the_error_cases_build_once_fixed(tmp_path, case, shape, index, table):
    """Each case is a valid network but for the field its message names: with that fixed
    (the input's ``shape`` or layer ``index``), the Python API and the TOML loader build the
    same network."""
    inp, layers, *_ = ERRORS[case]
    if shape is not None:
        inp = {**inp, "shape": shape}
    if index is not None:
        layers = [*layers[:index], table, *layers[index + 1:]]
    net = python_network(inp, layers)
    loaded = load(write_toml(tmp_path / "ok.toml", inp, layers))
    assert network_state(loaded) == network_state(net)


def test_concat_of_two_dimensional_tensors():
    net = python_network({"shape": [4, 2], "bits": 2}, [
        SPLIT, {"name": "cat", "kind": "concat", "inputs": ["split.0", "split.1", "input"]}])
    assert net.type_of("cat") == TensorType((4, 4), 2, False)


@pytest.mark.parametrize("groups, message", [
    (True, "expected a positive integer, got True"),
    (-2, "expected a positive integer, got -2"),
    (8, "8 does not divide the 4 channels of the input"),
])
def test_more_bad_groups(groups, message):
    with pytest.raises(SpecError, match="^" + re.escape(
            f"<python>: layers[0].groups: {message}") + "$"):
        Network("n", Input((3, 4), 2), [ChannelShuffle("sh", groups)])


def test_shuffle_groups_numpy_integer_is_normalized():
    net = Network("n", Input((3, 4), 2), [ChannelShuffle("sh", np.int64(2))])
    assert type(net.layers[0].groups) is int and net.layers[0].groups == 2


def test_toml_groups_missing_and_float(tmp_path):
    base = [{"name": "sh", "kind": "channel_shuffle"}]
    path = write_toml(tmp_path / "a.toml", U2_4, base)
    with pytest.raises(SpecError, match="^" + re.escape(f"{path}: layers[0].groups: missing")):
        load(path)
    path = write_toml(tmp_path / "b.toml", U2_4, [{**base[0], "groups": 2.0}])
    with pytest.raises(SpecError, match="^" + re.escape(
            f"{path}: layers[0].groups: expected int, got 2.0") + "$"):
        load(path)
    path = write_toml(tmp_path / "c.toml", U2_4, [SPLIT, {
        "name": "cat", "kind": "concat", "inputs": ["split.0", "split.1"], "groups": 2}])
    with pytest.raises(SpecError, match="^" + re.escape(
            f"{path}: layers[1].groups: unknown field (expected one of: kind, name)") + "$"):
        load(path)


# --- TOML round trip -------------------------------------------------------------------------

def hand_network() -> tuple[Network, np.ndarray]:
    """All three kinds: a split, a shuffle of one half, a concat of three tensors (one of them
    the network input, read twice) and a shuffle of the concat."""
    net = Network("hand", Input((3, 4, 8), 2, lanes=4), [
        ChannelSplit("split"),
        ChannelShuffle("mix", 4, inputs=("split.1",)),
        Concat("cat", ("mix", "split.0", "input")),
        ChannelShuffle("out", 8),
    ])
    return net, random_inputs(np.random.default_rng(5), net.input_type, 4)


ROUND_TRIP = {
    "shufflenet_s1": lambda: shufflenet_unit(1),
    "shufflenet_s2": lambda: shufflenet_unit(2),
    "hand": hand_network,
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_toml_round_trip(tmp_path, name):
    net, x = ROUND_TRIP[name]()
    path = tmp_path / f"{name}.toml"
    save(net, path)
    back = load(path)
    assert network_state(back) == network_state(net)
    assert back.sources == net.sources and back.tensor_types == net.tensor_types
    for a, b in zip(net.layers, back.layers, strict=True):
        assert (type(a), a.name, a.inputs) == (type(b), b.name, b.inputs)
        if isinstance(a, ChannelShuffle):
            assert b.groups == a.groups
    x = np.concatenate([x, random_inputs(np.random.default_rng(9), net.input_type, 3)])
    want, got = golden.run(net, x), golden.run(back, x)
    assert want.keys() == got.keys()
    for tensor in want:
        np.testing.assert_array_equal(got[tensor], want[tensor], err_msg=tensor)
    again = tmp_path / "again" / path.name
    again.parent.mkdir()
    save(back, again)
    assert again.read_text() == path.read_text()


def test_saved_toml_of_the_three_kinds(tmp_path):
    net, _ = hand_network()
    save(net, tmp_path / "hand.toml")
    text = (tmp_path / "hand.toml").read_text()
    tables = text.split("[[layers]]")[1:]
    assert [t.strip().splitlines() for t in tables] == [
        ['name = "split"', 'kind = "channel_split"'],
        ['name = "mix"', 'kind = "channel_shuffle"', 'inputs = ["split.1"]', "groups = 4"],
        ['name = "cat"', 'kind = "concat"', 'inputs = ["mix", "split.0", "input"]'],
        ['name = "out"', 'kind = "channel_shuffle"', "groups = 8"],
    ]


def test_hand_written_toml_equals_the_python_network(tmp_path):
    path = tmp_path / "hand.toml"
    path.write_text("""
name = "hand"

[input]
shape = [3, 4, 8]
bits = 2
lanes = 4

[[layers]]
name = "split"
kind = "channel_split"

[[layers]]
name = "mix"
kind = "channel_shuffle"
groups = 4
inputs = ["split.1"]

[[layers]]
name = "cat"
kind = "concat"
inputs = ["mix", "split.0", "input"]

[[layers]]
name = "out"
kind = "channel_shuffle"
groups = 8
""")
    net, _ = hand_network()
    assert network_state(load(path)) == network_state(net)
    assert not (tmp_path / "hand.npz").exists()  # no layer has arrays: no weights file needed


# --- plan: lanes, cycles, converters, FIFOs --------------------------------------------------

def by_name(p) -> dict:
    return {lp.name: lp for lp in p.layers}


def converters(p) -> set[tuple]:
    return {(c.before, c.port, c.elements, c.in_lanes, c.out_lanes) for c in p.converters}


@pytest.mark.parametrize("shape, lanes, split_lanes", [
    ((2, 6), 6, 3),     # halves of 3: gcd(6, 3)
    ((2, 6), 2, 1),     # gcd(2, 3)
    ((2, 6), 3, 3),     # the input's lanes already divide the halves
    ((2, 6), None, 1),  # the input takes the first layer's lanes: gcd(1, 3)
    ((3, 12), 4, 2),    # gcd(4, 6)
    ((12,), 12, 6),
])
def test_split_lanes_divide_the_halves(shape, lanes, split_lanes):
    net = Network("n", Input(shape, 2, lanes=lanes), [
        ChannelSplit("split"), Concat("cat", ("split.0", "split.1"))])
    p = plan(net)
    split, cat = p.layers
    in_lanes = lanes or 1
    assert p.input_lanes == in_lanes
    assert (split.in_lanes, split.out_lanes, split.outputs) == (split_lanes, split_lanes, 2)
    assert (shape[-1] // 2) % split.in_lanes == 0
    assert split.cycles == math.prod(shape) // split_lanes  # beats of the input
    assert cat.in_lanes == cat.out_lanes == split_lanes
    assert cat.cycles == math.prod(shape) // split_lanes  # beats of the output
    expected = set() if in_lanes == split_lanes else {
        ("split", 0, math.prod(shape), in_lanes, split_lanes)}
    assert converters(p) == expected
    assert set(p.fifos) == {("cat", 0), ("cat", 1)}
    assert p.latency is None  # a graph


def converter_network() -> Network:
    """Two nested splits and a 4-input concat (converters on two of its ports), shuffled."""
    return Network("n", Input((2, 8), 2, lanes=8), [
        ChannelSplit("split"),
        ChannelSplit("split2", ("split.1",)),
        Concat("cat", ("input", "split.0", "split2.0", "split2.1")),
        ChannelShuffle("sh", 4),
    ])


def test_concat_lanes_divide_every_input_and_converters_fill_the_gaps():
    """input (2, 8) at 8 lanes → split (halves of 4: 4 lanes) → split2 of split.1 (halves of
    2: 2 lanes); concat(input [8 ch], split.0 [4], split2.0 [2], split2.1 [2]) at
    gcd(8, 8, 4, 2, 2) = 2 lanes: converters 8→4 before split, 4→2 before split2, and 8→2
    and 4→2 on concat ports 0 and 1; the shuffle keeps the concat's 2 lanes."""
    net = converter_network()
    p = plan(net)
    lp = by_name(p)
    assert (lp["split"].in_lanes, lp["split2"].in_lanes, lp["cat"].in_lanes) == (4, 2, 2)
    assert lp["cat"].out_lanes == 2
    assert lp["split"].cycles == 16 // 4
    assert lp["split2"].cycles == 8 // 2
    assert lp["cat"].cycles == 32 // 2
    assert (lp["sh"].in_lanes, lp["sh"].cycles) == (2, 32 // 2)
    assert lp["cat"].in_types == (TensorType((2, 8), 2, False), TensorType((2, 4), 2, False),
                                  TensorType((2, 2), 2, False), TensorType((2, 2), 2, False))
    assert converters(p) == {("split", 0, 16, 8, 4), ("split2", 0, 8, 4, 2),
                             ("cat", 0, 16, 8, 2), ("cat", 1, 8, 4, 2)}
    assert set(p.fifos) == {("cat", k) for k in range(4)}
    assert p.cycles_per_inference == 16
    assert golden.run(net, np.array([[[0, 1, 2, 3, 3, 2, 1, 0]] * 2]))["cat"].tolist() == [
        [[0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0]] * 2]


@pytest.mark.parametrize("shape, lanes, groups", [
    ((1, 2, 4), 2, 2), ((3, 12), 4, 3), ((2, 2, 6), 6, 2), ((9,), 3, 3)])
def test_shuffle_cycles_are_its_beats(shape, lanes, groups):
    net = Network("n", Input(shape, 2, lanes=lanes), [ChannelShuffle("sh", groups)])
    p = plan(net)
    (sh,) = p.layers
    assert (sh.in_lanes, sh.out_lanes) == (lanes, lanes)
    assert sh.cycles == math.prod(shape) // lanes
    assert p.cycles_per_inference == math.prod(shape) // lanes
    assert p.converters == []


@pytest.mark.parametrize("stride", [1, 2])
def test_shufflenet_unit_plan(stride):
    net, _ = shufflenet_unit(stride)
    p = plan(net)
    lp = by_name(p)
    if stride == 1:  # input (6, 6, 8) at 2 lanes; halves of 4
        assert (lp["split"].in_lanes, lp["split"].cycles) == (2, 6 * 6 * 8 // 2)
        # pw2 (pe 4) leaves 4 lanes; the concat reads gcd(2, 4, 4) = 2
        assert lp["pw2"].out_lanes == 4
        assert converters(p) == {("cat", 1, 6 * 6 * 4, 4, 2)}
        out_elements = 6 * 6 * 8
    else:  # input (7, 7, 4); both branches end in 4×4×4
        assert "split" not in lp
        # dwl leaves 2 lanes, pwl reads simd 4; both branches reach the concat at 2 lanes
        assert converters(p) == {("pwl", 0, 4 * 4 * 4, 2, 4)}
        out_elements = 4 * 4 * 8
    assert (lp["cat"].in_lanes, lp["cat"].cycles) == (2, out_elements // 2)
    assert (lp["shuffle"].in_lanes, lp["shuffle"].cycles) == (2, out_elements // 2)
    # FIFOs on both concat ports, the short branch's deep enough for the long one
    assert set(p.fifos) == {("cat", 0), ("cat", 1)}
    assert all(depth >= 4 for depth in p.fifos.values())
    if stride == 1:  # split.0 goes straight to the concat while pw1 → dw → pw2 fill
        assert p.fifos[("cat", 0)] > p.fifos[("cat", 1)]
    else:  # both ports wait on the other branch's stages
        assert min(p.fifos.values()) > 4


# --- the shuffle's timing model, in the plan and in the RTL ----------------------------------

#: shape, lanes, groups, latency worked by hand: one input beat a cycle from 0; a position's
#: C/L output beats leave one a cycle from the cycle after its last input beat.
LATENCIES = [
    # beats 0, 1 | 2, 3 in; position 0 leaves at 2, 3 and position 1 at 4, 5
    ((1, 2, 4), 2, 2, 5),
    # three positions of 3 beats: in at 0-2, 3-5, 6-8; out at 3-5, 6-8, 9-11
    ((1, 3, 6), 2, 3, 11),
    # one beat per position: in at 0, 1, 2; out at 1, 2, 3
    ((1, 3, 4), 4, 2, 3),
    # one position of four 1-lane beats: in at 0-3, out at 4-7
    ((4,), 1, 2, 7),
    # (2, 6) at 3 lanes: in at 0, 1 | 2, 3; out at 2, 3 | 4, 5
    ((2, 6), 3, 3, 5),
]


@pytest.mark.parametrize("shape, lanes, groups, latency", LATENCIES)
def test_shuffle_latency_model_and_rtl(shape, lanes, groups, latency):
    from hwgen.rtl.network import NetworkTop
    from hwgen.rtl.testbench import run_stream
    from hwgen_sim.runner import stream_beats

    net = Network("n", Input(shape, 2, lanes=lanes), [ChannelShuffle("sh", groups)])
    p = plan(net)
    assert p.is_chain and p.latency == latency
    x = random_inputs(np.random.default_rng(11), net.input_type, 2)
    top = NetworkTop(net)
    beats = stream_beats(x, p.input_type, p.input_lanes)
    per_frame = math.prod(shape) // lanes
    expected = stream_beats(shuffle_by_loop(x, groups), net.output_type, lanes)
    run = run_stream(top, beats, len(expected))
    assert run.outputs == expected
    assert run.out_times[per_frame - 1] - run.in_times[0] == latency
    # frame 1 streams straight after frame 0: they leave cycles_per_inference apart
    assert run.out_times[2 * per_frame - 1] - run.out_times[per_frame - 1] == per_frame


def converter_network_by_hand(x: np.ndarray) -> np.ndarray:
    want = np.zeros((len(x), 2, 16), dtype=np.int64)
    for n, i in np.ndindex(len(x), 2):
        row = x[n, i].tolist()
        cat = row + row[:4] + row[4:6] + row[6:]
        want[n, i] = [cat[(j % 4) * 4 + j // 4] for j in range(16)]
    return want


def mixed_network_by_hand(x: np.ndarray) -> np.ndarray:
    return np.concatenate([hand_values(t, x) for t in ("split.0", "dbl", "sign")], axis=-1)


@pytest.mark.parametrize("build, by_hand", [
    (converter_network, converter_network_by_hand),
    # a binary tensor (bits ±1) joined with u2 and u3 ones into s4 in the hardware
    (lambda: mixed_network(("split.0", "dbl", "sign")), mixed_network_by_hand),
], ids=["converters", "bin_u2_u3"])
def test_graphs_in_the_rtl_match_golden(build, by_hand):
    """Bit-exact in the RTL, without and with stalls, against values worked out by hand."""
    from hwgen.rtl.network import NetworkTop
    from hwgen.rtl.testbench import run_stream
    from hwgen_sim.runner import stream_beats

    net = build()
    p = plan(net)
    x = random_inputs(np.random.default_rng(12), net.input_type, 3)
    want = by_hand(x)
    np.testing.assert_array_equal(golden.run(net, x)[net.layers[-1].name], want)
    expected = stream_beats(want, net.output_type, p.layers[-1].out_lanes)
    top = NetworkTop(net)
    beats = stream_beats(x, p.input_type, p.input_lanes)
    for seed, (gaps, backpressure) in enumerate([(0.0, 0.0), (0.4, 0.4)]):
        run = run_stream(top, beats, len(expected), gaps=gaps, backpressure=backpressure,
                         seed=seed)
        assert run.outputs == expected


def test_a_layer_name_may_not_clash_with_a_split_output_port():
    """Output k of a channel split "a" is tapped as port tap_a_k: a layer named "a_0" would
    take the same port name, so the network refuses it, naming both."""
    layers = [ChannelSplit("a"), Flatten("a_0", inputs=("a.0",)), Flatten("f", inputs=("a.1",)),
              Concat("c", ("a_0", "f"))]
    with pytest.raises(SpecError, match=re.escape(
            "<python>: layers[1].name: 'a_0' clashes with the output 'a.0' (both name the port "
            "tap_a_0)")):
        Network("n", Input((2, 2, 4), 2), layers)
