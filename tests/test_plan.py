"""hwgen.plan: default folding, cycle model, converters, JSON keys and the check table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwgen.plan import MVU_DEPTH, default_simd, format_table, plan
from hwgen.spec import Argmax, Dense, Input, Network, load

DESIGNS = Path(__file__).resolve().parents[1] / "designs"


def ones(out: int, inp: int) -> np.ndarray:
    return np.ones((out, inp), dtype=np.int64)


def net_of(inp: Input, *layers) -> Network:
    return Network("p", inp, list(layers))


# --- folding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n, simd", [(1, 1), (7, 7), (12, 12), (16, 16), (17, 1), (30, 15),
                                     (36, 12), (48, 16), (64, 16), (100, 10), (97, 1),
                                     (784, 16), (26, 13)])
def test_default_simd_known(n, simd):
    assert default_simd(n) == simd


def test_default_simd_is_largest_divisor_up_to_16():
    for n in range(1, 300):
        s = default_simd(n)
        assert s == max(d for d in range(1, 17) if n % d == 0), n


def test_default_folding_pe1_and_default_simd():
    net = net_of(Input((30,), 1), Dense("a", ones(6, 30), 1), Dense("b", ones(5, 6), 2),
                 Dense("c", ones(3, 5), 16))
    p = plan(net)
    assert [(lp.pe, lp.simd) for lp in p.layers] == [(1, 15), (1, 6), (1, 5)]
    assert [lp.cycles for lp in p.layers] == [6 * 2, 5 * 1, 3 * 1]
    assert p.input_lanes == 15  # the first layer's SIMD


@pytest.mark.parametrize("out, inp, pe, simd", [(8, 16, 1, 1), (8, 16, 8, 16), (8, 16, 2, 4),
                                                (128, 64, 8, 4), (10, 128, 2, 4),
                                                (6, 30, 3, 5), (1, 1, 1, 1)])
def test_dense_cycles_are_nf_times_sf(out, inp, pe, simd):
    p = plan(net_of(Input((inp,), 1), Dense("fc", ones(out, inp), 1, pe=pe, simd=simd)))
    lp = p.layers[0]
    assert (lp.pe, lp.simd, lp.in_lanes, lp.out_lanes) == (pe, simd, simd, pe)
    assert lp.cycles == (out // pe) * (inp // simd)


def test_explicit_folding_kept():
    p = plan(net_of(Input((64,), 8), Dense("fc", ones(10, 64), 1, pe=5, simd=2)))
    assert (p.layers[0].pe, p.layers[0].simd) == (5, 2)
    assert p.input_lanes == 2


# --- cycles per inference and bottleneck ------------------------------------------------------

def test_cycles_per_inference_is_slowest_layer():
    net = net_of(Input((64,), 8, lanes=4),
                 Dense("fc1", ones(32, 64), 1, pe=8, simd=4),    # 4 · 16 = 64
                 Dense("fc2", ones(16, 32), 1, pe=1, simd=8),    # 16 · 4 = 64
                 Dense("fc3", ones(10, 16), 8, pe=1, simd=1),    # 10 · 16 = 160
                 Argmax())
    p = plan(net)
    assert [lp.cycles for lp in p.layers] == [64, 64, 160, 10]
    assert p.cycles_per_inference == 160
    assert p.bottleneck == "fc3"


def test_cycles_per_inference_counts_input_stream():
    # 64 elements one per beat feed a fast layer: the stream is the bottleneck.
    p = plan(net_of(Input((64,), 8, lanes=1), Dense("fc", ones(4, 64), 1, pe=4, simd=16)))
    assert p.input_cycles == 64
    assert p.layers[0].cycles == 4
    assert p.cycles_per_inference == 64
    assert p.bottleneck == "stream width"


def test_cycles_per_inference_counts_converters():
    # fc1 gives 16 lanes, fc2 eats 1 lane: the converter needs 16 cycles, more than any layer.
    net = net_of(Input((16,), 1, lanes=16),
                 Dense("fc1", ones(16, 16), 1, pe=16, simd=16),  # 1 cycle
                 Dense("fc2", ones(1, 16), 1, pe=1, simd=1))     # 16 cycles
    p = plan(net)
    assert [c.cycles for c in p.converters] == [16]
    assert p.cycles_per_inference == 16
    net = net_of(Input((32,), 1, lanes=1),
                 Dense("fc1", ones(2, 32), 1, pe=1, simd=32))  # 1 → 32 lanes: 32 cycles
    p = plan(net)
    assert p.input_cycles == 32 and p.layers[0].cycles == 2
    assert [(c.in_lanes, c.out_lanes, c.cycles) for c in p.converters] == [(1, 32, 32)]
    assert p.cycles_per_inference == 32


# --- converters ------------------------------------------------------------------------------

def test_converters_only_where_lanes_differ():
    net = net_of(Input((64,), 8, lanes=4),
                 Dense("fc1", ones(128, 64), 1, pe=8, simd=4),   # input 4 = simd 4: none
                 Dense("fc2", ones(128, 128), 1, pe=8, simd=8),  # pe 8 = simd 8: none
                 Dense("fc3", ones(10, 128), 16, pe=2, simd=4),  # pe 8 ≠ simd 4: converter
                 Argmax())                                       # takes fc3's 2 lanes
    p = plan(net)
    assert [(c.before, c.elements, c.in_lanes, c.out_lanes) for c in p.converters] == \
        [("fc3", 128, 8, 4)]
    assert p.converters[0].cycles == 128 // 4
    am = p.layers[-1]
    assert (am.in_lanes, am.out_lanes, am.cycles) == (2, 1, 5)
    assert (am.pe, am.simd, am.weight_bits, am.macs, am.weight_memory_bits) == \
        (None, None, None, 0, 0)


def test_converter_before_first_layer_when_input_lanes_differ():
    p = plan(net_of(Input((12,), 8, lanes=3), Dense("fc", ones(2, 12), 1, simd=4)))
    assert p.input_lanes == 3
    assert [(c.before, c.in_lanes, c.out_lanes) for c in p.converters] == [("fc", 3, 4)]


def test_input_lanes_default():
    assert plan(net_of(Input((48,), 8), Dense("fc", ones(2, 48), 1))).input_lanes == 16
    assert plan(net_of(Input((48,), 8), Dense("fc", ones(2, 48), 1, simd=3))).input_lanes == 3
    assert plan(net_of(Input((5,), 8), Argmax())).input_lanes == 1
    p = plan(net_of(Input((6,), 8, lanes=3), Argmax()))
    assert p.input_lanes == 3 and p.layers[0].in_lanes == 3 and p.layers[0].cycles == 2
    assert p.converters == []


# --- latency ---------------------------------------------------------------------------------

def test_latency_single_dense_then_argmax():
    # input beat at 0; four output groups of SF = 1 at 0 + j + 1 + depth (depth 8: read,
    # read data registered, dot product in two halves, accumulate, quantize, output
    # registered, FIFO); argmax (one lane) four later: its input register, the stage compared
    # a cycle ahead, its compare and its output register
    p = plan(net_of(Input((16,), 1, lanes=16), Dense("fc", ones(4, 16), 8, simd=16),
                    Argmax()))
    assert MVU_DEPTH == 8
    assert p.latency == 4 + 8 + 4


def test_latency_through_converter():
    # input beats 0..3 (2 lanes); A: 1 group, SF 4 → 3 + 4 + 8 = 15;
    # 4 → 1 converter: beats at 16, 17, 18, 19; B: SF 4, 2 groups → 19 + 8 + 8 = 35.
    p = plan(net_of(Input((8,), 1, lanes=2), Dense("a", ones(4, 8), 1, pe=4, simd=2),
                    Dense("b", ones(2, 4), 4, simd=1)))
    assert [(c.in_lanes, c.out_lanes) for c in p.converters] == [(4, 1)]
    assert p.converters[0].out_times([15]) == [16, 17, 18, 19]
    assert p.latency == 35
    assert p.cycles_per_inference == 8


def test_converter_out_times_widening():
    p = plan(net_of(Input((8,), 1, lanes=1), Dense("a", ones(2, 8), 1, simd=4)))
    conv = p.converters[0]
    # an output beat of 4 lanes waits for the input beat holding its last element
    assert conv.out_times(list(range(8))) == [4, 8]
    assert conv.out_times([0, 0, 0, 0, 0, 0, 0, 0]) == [1, 2]


# --- MACs, memory, JSON, table ---------------------------------------------------------------

def mixed_net() -> Network:
    return net_of(Input((64,), 8, lanes=4),
                  Dense("fc1", ones(128, 64), 1, thresholds=np.zeros((128, 1), int),
                        pe=16, simd=4),
                  Dense("fc2", ones(32, 128), 4, thresholds=np.zeros((32, 3), int)),
                  Dense("fc3", -ones(10, 32), 16, bias=np.zeros(10, int), pe=2),
                  Argmax())


def test_macs_and_weight_memory():
    p = plan(mixed_net())
    assert [lp.macs for lp in p.layers] == [128 * 64, 32 * 128, 10 * 32, 0]
    assert p.macs == 8192 + 4096 + 320
    bits = [128 * 64 * 1, 32 * 128 * 4, 10 * 32 * 16, 0]
    assert [lp.weight_memory_bits for lp in p.layers] == bits
    assert p.weight_memory_bits == sum(bits)
    j = p.to_json()
    assert [layer["weight_kb"] for layer in j["layers"]] == [1.0, 2.0, 0.625, 0.0]
    assert j["totals"]["weight_kb"] == 3.625
    assert j["totals"]["macs"] == 12608


def test_weight_kb_rounds_to_three_places():
    p = plan(net_of(Input((3,), 1), Dense("fc", ones(1, 3), 1)))
    assert p.to_json()["layers"][0]["weight_kb"] == round(3 / 8 / 1024, 3) == 0.0
    p = plan(net_of(Input((100,), 1), Dense("fc", ones(7, 100), 3)))
    assert p.to_json()["totals"]["weight_kb"] == round(2100 / 8192, 3) == 0.256


LAYER_KEYS = {"name", "kind", "in_shape", "out_shape", "weight_bits", "in_bits", "in_signed",
              "out_bits", "out_signed", "macs", "weight_kb", "pe", "simd", "in_lanes",
              "out_lanes", "cycles", "memory", "scheme", "mac", "dsps", "dsp_pack", "output_steps"}


def test_to_json_keys_are_stable():
    j = plan(mixed_net()).to_json()
    assert set(j) == {"network", "input", "layers", "totals"}
    assert set(j["input"]) == {"shape", "bits", "signed", "lanes"}
    assert all(set(layer) == LAYER_KEYS for layer in j["layers"])
    assert set(j["totals"]) == {"macs", "weight_kb", "cycles_per_inference", "latency_cycles",
                                "bottleneck", "memory", "dsps"}
    assert json.loads(json.dumps(j)) == j  # plain JSON types only


def test_to_json_values():
    net = mixed_net()
    p = plan(net)
    j = p.to_json()
    assert j["network"] == "p"
    assert j["input"] == {"shape": [64], "bits": 8, "signed": False, "lanes": 4}
    fc2 = j["layers"][1]
    assert fc2 == {"name": "fc2", "kind": "dense", "in_shape": [128], "out_shape": [32],
                   "weight_bits": 4, "scheme": "W4A1", "mac": "addsub", "dsps": 0,
                   "dsp_pack": 1, "output_steps": 2, "in_bits": 1, "in_signed": False,
                   "out_bits": 2,
                   "out_signed": False, "macs": 4096, "weight_kb": 2.0, "pe": 1, "simd": 16,
                   "in_lanes": 16, "out_lanes": 1, "cycles": 32 * 8,
                   "memory": {"weights_kb": {"actual": 2.0, "16": 8.0, "8": 4.0, "1": 0.5},
                              "out_activations_kb": {"actual": 0.008, "16": 0.062,
                                                     "8": 0.031, "1": 0.004}}}
    am = j["layers"][3]
    assert (am["kind"], am["weight_bits"], am["pe"], am["simd"], am["cycles"]) == \
        ("argmax", None, None, None, 5)
    assert (j["layers"][2]["out_bits"], j["layers"][2]["out_signed"]) == (8, True)  # -96..0
    assert j["totals"]["cycles_per_inference"] == p.cycles_per_inference == 256
    assert j["totals"]["bottleneck"] == "fc2"
    assert j["totals"]["latency_cycles"] == p.latency


def test_format_table_lists_layers_and_totals():
    p = plan(mixed_net())
    text = format_table(p)
    lines = text.splitlines()
    assert lines[0] == "network p: input 64 u8, 4 lane(s) per beat"
    header = lines[1].split()
    assert header[:4] == ["layer", "kind", "in", "out"]
    for name in ("fc1", "fc2", "fc3", "argmax"):
        assert any(line.split()[0] == name for line in lines), name
    total = next(line for line in lines if line.startswith("total"))
    assert total.split() == ["total", "64", "1", "u8", "12,608", "3.62", "256"]
    assert "cycles per inference 256 (bottleneck: fc2)" in lines
    assert lines[-1].startswith("peak working set")
    fc1 = next(line for line in lines if line.startswith("fc1")).split()
    assert fc1 == ["fc1", "dense", "64", "128", "W1A8", "addsub", "u8", "bin", "8,192", "1.00",
                   "16", "4", "128"]
    assert all(len(line) <= 110 for line in lines)


def test_format_table_shows_scheme_and_mapping_per_layer():
    """W<w>A<a> per layer, and how its products are mapped (DSP count and packing)."""
    rng = np.random.default_rng(0)
    net = Network("m", Input((16,), 6), [
        Dense("a", rng.integers(-128, 128, (8, 16)), 8, pe=2, simd=4, mac="dsp",
              thresholds=np.sort(rng.integers(-99, 99, (8, 3)), axis=1)),
        Dense("b", rng.integers(-8, 8, (4, 8)), 4, pe=4, simd=2, mac="dsp"),
        Dense("c", rng.integers(-32, 32, (2, 4)), 6, pe=1, simd=4),
    ])
    p = plan(net)
    table = format_table(p).split("cycles per inference")[0]
    rows = {line.split()[0]: line.split() for line in table.splitlines()
            if line.split() and line.split()[0] in "abc"}
    assert rows["a"][4:6] == ["W8A6", "dsp×8"]
    assert rows["b"][4:8] == ["W4A2", "dsp×4", "(2/dsp)", "u2"]
    assert rows["c"][4:6] == ["W6A8", "lut"]
    assert p.dsps == 12


def test_auto_mapping_uses_the_dsp_budget_where_it_saves_most():
    rng = np.random.default_rng(1)
    net = Network("m", Input((16,), 8), [
        Dense("wide", rng.integers(-128, 128, (4, 16)), 8, pe=2, simd=4,
              thresholds=np.sort(rng.integers(-99, 99, (4, 3)), axis=1)),
        Dense("narrow", rng.integers(-2, 2, (4, 4)), 2, pe=4, simd=2),  # 4 per DSP
    ])
    assert [lp.mac for lp in plan(net).layers] == ["lut", "lut"]
    assert [lp.mac for lp in plan(net, dsp_budget=8).layers] == ["dsp", "lut"]
    assert [lp.mac for lp in plan(net, dsp_budget=10).layers] == ["dsp", "dsp"]
    assert [lp.mac for lp in plan(net, dsp_budget=7).layers] == ["lut", "dsp"]


def test_shipped_design_plan():
    p = plan(load(DESIGNS / "digits_bnn.toml"))
    assert [lp.cycles for lp in p.layers] == [16 * 16, 16 * 16, 5 * 32, 5]
    assert [(c.before, c.in_lanes, c.out_lanes) for c in p.converters] == [("fc3", 8, 4)]
    assert p.cycles_per_inference == 256
    assert p.macs == 64 * 128 + 128 * 128 + 128 * 10
    text = format_table(p)
    for name in ("fc1", "fc2", "fc3", "argmax", "total"):
        assert name in text


def test_conv2d_cycles_are_pixels_times_fold():
    from hwgen.spec import Conv2d

    w = np.ones((8, 3, 3, 4), int)
    net = Network("n", Input((5, 7, 4), 1), [Conv2d("c", w, 1, padding="same", pad_value=1,
                                                    pe=2, simd=2)])
    lp = plan(net).layers[0]
    assert lp.cycles == 5 * 7 * (8 // 2) * (3 * 3 * 4 // 2)
    assert lp.macs == 5 * 7 * 8 * 3 * 3 * 4
    assert (lp.in_lanes, lp.out_lanes) == (2, 2)
    assert plan(net).latency is None  # sliding windows: latency is measured, not modelled


def test_conv2d_reading_a_big_image_is_bound_by_its_input_beats():
    from hwgen.spec import Conv2d

    w = np.ones((2, 1, 1, 4), int)  # 1×1, stride 2: a quarter of the pixels, 1 step each
    net = Network("n", Input((5, 5, 4), 1), [Conv2d("c", w, 1, stride=2, pad_value=1, pe=2,
                                                    simd=4)])
    assert plan(net).layers[0].cycles == 5 * 5  # every input beat still takes a cycle


def test_maxpool_cycles_count_window_beats_when_windows_overlap():
    from hwgen.spec import MaxPool

    net = Network("n", Input((7, 7, 4), 1, lanes=2), [MaxPool("p", 3, 2)])
    lp = plan(net).layers[0]
    assert lp.cycles == max(7 * 7 * 2, 3 * 3 * 9 * 2)


def test_memory_report_counts_weights_activations_and_peak_working_set():
    from hwgen.spec import Conv2d, Flatten

    conv = Conv2d("c", np.ones((16, 3, 3, 4), int), 1, thresholds=np.zeros((16, 1), int))
    fc = Dense("fc", np.ones((10, 6 * 6 * 16), int), 16)
    net = Network("n", Input((8, 8, 4), 8), [conv, Flatten("f"), fc])
    p = plan(net)
    mem = p.layers[0].memory_kb()
    assert mem["weights_kb"] == {"actual": round(16 * 36 / 8192, 3),
                                 "16": round(16 * 36 * 16 / 8192, 3),
                                 "8": round(16 * 36 / 1024, 3), "1": round(16 * 36 / 8192, 3)}
    # conv output 6×6×16 binary
    assert mem["out_activations_kb"]["actual"] == round(6 * 6 * 16 / 8192, 3)
    assert mem["out_activations_kb"]["8"] == round(6 * 6 * 16 / 1024, 3)
    weights = 16 * 36 + 10 * 576 * 16
    # largest pair: conv (8×8×4 u8 in, 576 bits out) vs fc (576 bits in, 10 scores out)
    fc_out_bits = p.layers[2].out_type.bits
    pair = max(8 * 8 * 4 * 8 + 576, 576 + 10 * fc_out_bits)
    assert p.peak_working_set_bits() == weights + pair
    assert p.peak_working_set_bits(8) == (16 * 36 + 5760) * 8 + max(256 + 576, 576 + 10) * 8
    totals = p.to_json()["totals"]["memory"]
    assert totals["peak_working_set_kb"]["actual"] == round((weights + pair) / 8192, 3)
    text = format_table(p)
    assert "peak working set" in text and "@16" in text


# --- depthwise_conv2d ------------------------------------------------------------------------

def _dw(weights, weight_bits=8, **kw):
    from hwgen.spec import DepthwiseConv2d

    return DepthwiseConv2d("dw", weights, weight_bits, **kw)


@pytest.mark.parametrize("h, w, c, k, stride, padding, pe", [
    (5, 7, 4, 3, 1, "same", 1),    # pixels · C · k·k
    (5, 7, 4, 3, 1, "same", 4),    # pe = C: pixels · k·k
    (7, 7, 6, 3, 2, "valid", 3),   # strided: 3 · 3 pixels
    (5, 5, 4, 1, 2, "valid", 2),   # 1×1 stride 2: bound by the input beats
    (6, 6, 2, 2, 2, "valid", 1),   # 2×2 stride 2: windows and input beats equal
])
def test_depthwise_cycles_are_pixels_times_channel_groups_times_kernel(h, w, c, k, stride,
                                                                       padding, pe):
    net = Network("n", Input((h, w, c), 8),
                  [_dw(np.ones((c, k, k), int), stride=stride, padding=padding, pe=pe)])
    lp = plan(net).layers[0]
    ho, wo, _ = net.output_type.shape
    assert lp.cycles == max(ho * wo * (c // pe) * k * k, h * w * c // pe)
    assert (lp.pe, lp.simd, lp.in_lanes, lp.out_lanes) == (pe, 1, pe, pe)
    assert lp.macs == ho * wo * c * k * k
    assert lp.weight_memory_bits == c * k * k * 8
    assert lp.kind == "depthwise_conv2d" and lp.scheme == "W8A8" and lp.mac == "lut"
    assert plan(net).latency is None


def test_depthwise_default_pe_is_one_and_sets_the_input_lanes():
    net = Network("n", Input((5, 5, 6), 8), [_dw(np.ones((6, 3, 3), int))])
    p = plan(net)
    assert (p.layers[0].pe, p.input_lanes) == (1, 1)
    assert p.layers[0].cycles == 3 * 3 * 6 * 9


def test_depthwise_mac_kinds_and_dsps():
    """Channels share no input, so every product has its own DSP (no packing): pe of them,
    plus the requantizer's multipliers."""
    from hwgen.spec import Requantize

    filters = np.full((4, 3, 3), -2)
    cases = [
        (Input((5, 5, 4), 1), _dw(np.ones((4, 3, 3), int), 1, pad_value=1), "xnor", 0),
        (Input((5, 5, 4), 8), _dw(np.ones((4, 3, 3), int), 1), "addsub", 0),
        (Input((5, 5, 4), 1), _dw(filters, 2, pad_value=1), "addsub", 0),
        (Input((5, 5, 4), 8), _dw(filters, 2, pe=4, mac="dsp"), "dsp", 4),   # 11-bit products
        (Input((5, 5, 4), 8), _dw(filters, 8, pe=2, mac="dsp"), "dsp", 2),
        (Input((5, 5, 4), 8), _dw(filters, 8, pe=2, mac="dsp",
                                  requantize=Requantize(np.full(4, 4097), np.full(4, 14), 8)),
         "dsp", 2 + 2),
        # a 3-bit factor fits the 9 steps of a group: shift-and-add in logic, no DSP
        (Input((5, 5, 4), 8), _dw(filters, 8, pe=2, mac="dsp",
                                  requantize=Requantize(np.full(4, 3), np.full(4, 2), 8)),
         "dsp", 2),
    ]
    for inp, layer, mac, dsps in cases:
        lp = plan(Network("n", inp, [layer])).layers[0]
        assert (lp.mac, lp.dsps, lp.dsp_pack) == (mac, dsps, 1), (inp, layer.weight_bits)


def test_depthwise_auto_mapping_takes_dsps_from_the_budget():
    net = Network("n", Input((5, 5, 4), 8), [_dw(np.full((4, 3, 3), 3), 8, pe=4)])
    assert plan(net).layers[0].mac == "lut"
    assert (plan(net, dsp_budget=4).layers[0].mac, plan(net, dsp_budget=4).dsps) == ("dsp", 4)
    assert plan(net, dsp_budget=3).layers[0].mac == "lut"  # all four or none
    # u4 × W4 makes 9-bit products, which Yosys keeps in logic on iCE40: never on DSPs
    narrow = Network("n", Input((5, 5, 4), 4), [_dw(np.full((4, 3, 3), 3), 4, pe=4)])
    assert plan(narrow, dsp_budget=8).layers[0].mac == "lut"


def test_separable_block_plan_and_table():
    """depthwise 3×3 → pointwise 1×1 conv2d: lanes follow each layer's pe/simd, the table row
    names the kind, scheme and folding."""
    from hwgen.spec import Conv2d

    net = Network("n", Input((6, 6, 4), 8, lanes=2), [
        _dw(np.ones((4, 3, 3), int), 8, padding="same", pe=2),
        Conv2d("pw", np.ones((8, 1, 1, 4), int), 4, pe=4, simd=4)])
    p = plan(net)
    assert [(c.before, c.in_lanes, c.out_lanes) for c in p.converters] == [("pw", 2, 4)]
    assert [lp.cycles for lp in p.layers] == [36 * 2 * 9, 36 * 2 * 1]
    assert p.cycles_per_inference == 648 and p.bottleneck == "dw"
    row = next(line for line in format_table(p).splitlines() if line.startswith("dw "))
    assert row.split() == ["dw", "depthwise_conv2d", "6×6×4", "6×6×4", "W8A8", "lut", "u8",
                           "u12", "1,296", "0.04", "2", "1", "648"]  # 0..9·255
