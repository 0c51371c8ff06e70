# amaranth: UnusedElaboratable=no
"""MatrixVectorUnit in Amaranth's simulator: every datapath mode and output kind, bit-exact
against the golden model under gaps and backpressure, with exact cycle counts."""

import random
import re

import numpy as np
import pytest
from amaranth import Value
from amaranth.sim import Simulator

from hwgen import golden
from hwgen.layers import kind_of
from hwgen.layers.weighted import layer_dsp_pack
from hwgen.numeric import TensorType
from hwgen.plan import MVU_DEPTH, plan
from hwgen.rtl.folded import FoldedUnit
from hwgen.rtl.layers.dense import MatrixVectorUnit, component
from hwgen.rtl.testbench import run_stream
from hwgen.spec import Input, Network
from hwgen_sim.runner import stream_beats
from tests.helpers import RegisteredReads, chain


def _unit_as(net: Network, mac: str, *, pe: int, simd: int) -> MatrixVectorUnit:
    """The network's one dense layer as a unit with its products on DSPs (``mac = "dsp"``,
    packed as the plan packs them) or in logic, whatever the spec's ``mac`` says."""
    layer, x = net.layers[0], net.types[0]
    return MatrixVectorUnit(layer.weight_matrix(), x, net.types[1], pe=pe, simd=simd,
                            mac="dsp" if mac == "dsp" else "lut",
                            dsp_pack=layer_dsp_pack(layer, x, pe) if mac == "dsp" else 1,
                            output_steps=plan(net).layers[0].output_steps)


def run_unit(network: Network, x: np.ndarray, *, gaps=0.0, backpressure=0.0, seed=0,
             platform=None):
    layer = network.layers[0]
    in_type, out_type = network.types[0], network.types[1]
    unit = component(layer, plan(network).layers[0])  # the network's own pe and simd
    beats = stream_beats(x, in_type, layer.simd)
    expected = stream_beats(golden.run(network, x)[layer.name], out_type, layer.pe)
    got = run_stream(unit, beats, len(expected), gaps=gaps, backpressure=backpressure,
                     seed=seed, platform=platform)
    return unit, got, expected


CASES = [
    # id, input (shape, bits, signed), weight bits, out bits, pe, simd, bias
    ("xnor-1bit", (24, 1, False), 1, 1, 4, 8, False),
    ("xnor-2bit-out", (30, 1, False), 1, 2, 3, 5, True),
    ("xnor-raw", (16, 1, False), 1, None, 2, 16, False),
    ("maskx-u8", (12, 8, False), 1, 1, 4, 4, False),
    ("maskx-s5-raw", (10, 5, True), 1, None, 5, 2, True),
    ("maskx-u3-3bit", (9, 3, False), 1, 3, 1, 3, False),
    ("maskw-w16-raw", (20, 1, False), 16, None, 5, 4, True),
    ("maskw-w4-2bit", (14, 1, False), 4, 2, 7, 7, False),
    ("mul-u8-w16", (6, 8, False), 16, None, 2, 3, True),
    ("mul-s4-w3", (15, 4, True), 3, 1, 1, 5, False),
    ("full-fold", (8, 1, False), 1, 1, 1, 1, False),
    ("no-fold", (8, 2, False), 2, None, 4, 8, False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bit_exact_under_stalls(case):
    _, (size, bits, signed), wbits, obits, pe, simd, bias = case
    rng = np.random.default_rng(hash(case[0]) % 2**32)
    out = pe * 3 if pe > 1 else 5
    net, x = chain(rng, Input((size,), bits, signed),
                   [dict(out=out, weight_bits=wbits, out_bits=obits, pe=pe, simd=simd,
                         bias=bias)], count=7)
    _, got, expected = run_unit(net, x, gaps=0.4, backpressure=0.4, seed=3)
    assert got.outputs == expected


@pytest.mark.parametrize("pe,simd", [(1, 1), (2, 4), (4, 16), (3, 2)])
def test_cycles_follow_folding(pe, simd):
    rng = np.random.default_rng(pe * 100 + simd)
    net, x = chain(rng, Input((16,), 1), [dict(out=12, weight_bits=1, out_bits=1, pe=pe,
                                               simd=simd)], count=5)
    unit, got, expected = run_unit(net, x)
    assert got.outputs == expected
    fold = unit.nf * unit.sf
    ends = got.out_times[unit.nf - 1::unit.nf]
    # Back to back: one vector per fold, once the first vector has arrived.
    assert [b - a for a, b in zip(ends[1:], ends[2:], strict=False)] == [fold] * (len(ends) - 2)
    # Latency: from the vector's last input beat to its last output beat.
    assert ends[0] - got.in_times[unit.sf - 1] == fold + MVU_DEPTH


def test_extremes_do_not_overflow():
    """Most negative 16-bit weights × largest 8-bit inputs, summed over 64 lanes."""
    w = np.full((4, 64), -32768)
    w[1] = 32767
    w[2, ::2] = 32767
    from hwgen.spec import Dense
    net = Network("x", Input((64,), 8), [Dense("fc", w, 16, bias=np.array([-7, 7, 0, 1]),
                                                pe=2, simd=8)])
    x = np.array([[255] * 64, [0] * 64, list(range(0, 256, 4))])
    _, got, expected = run_unit(net, x, gaps=0.2, backpressure=0.2)
    assert got.outputs == expected
    # -32768·255·64 - 7 = -534,773,767 ≥ -2**29: 30 bits signed, and no fewer.
    assert net.output_type == TensorType((4,), 30, True)


def test_constructor_rejects_bad_folding():
    rng = np.random.default_rng(0)
    net, _ = chain(rng, Input((8,), 1), [dict(out=4, weight_bits=1, out_bits=1, pe=1, simd=1)])
    layer = net.layers[0]
    with pytest.raises(ValueError, match="pe 3 does not divide out_features 4"):
        MatrixVectorUnit(layer.weight_matrix(), net.types[0], net.types[1], pe=3, simd=1)
    with pytest.raises(ValueError, match="simd 3 does not divide in_features 8"):
        MatrixVectorUnit(layer.weight_matrix(), net.types[0], net.types[1], pe=1, simd=3)


# --- mixed precision: every W × A corner, LUT and DSP mapping, requantized outputs --------------

GRID = [(w, a, signed, mac)
        for w in (1, 2, 4, 8, 16) for a in (1, 2, 4, 8)
        for signed in ((False,) if a == 1 else (False, True))
        for mac in (("lut", "dsp") if w > 1 and a > 1 else ("auto",))]


def _grid_id(case) -> str:
    w, a, signed, mac = case
    return f"W{w}A{a}{'s' if signed else 'u'}-{mac}"


def _extreme_inputs(in_type: TensorType, count: int, rng) -> np.ndarray:
    """All-max, all-min, alternating extremes, then random values."""
    lo, hi = in_type.range
    x = rng.integers(lo, hi + 1, size=(count, in_type.size)) if not in_type.binary \
        else rng.choice([-1, 1], size=(count, in_type.size))
    x[0], x[1] = hi, lo
    x[2, ::2], x[2, 1::2] = lo, hi
    return x


@pytest.mark.parametrize("case", GRID, ids=[_grid_id(c) for c in GRID])
def test_mixed_precision_corners(case):
    """Weights at their most negative and most positive × all-max and all-min inputs; raw
    output, so every accumulator bit is seen; gaps and backpressure."""
    from hwgen.spec import Dense
    wbits, abits, signed, mac = case
    rng = np.random.default_rng(wbits * 100 + abits * 10 + signed)
    size, out, pe, simd = 6, 4, 4 if mac == "dsp" else 2, 3
    wlo, whi = (-1, 1) if wbits == 1 else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
    w = rng.integers(wlo, whi + 1, size=(out, size)) if wbits > 1 \
        else rng.choice([-1, 1], size=(out, size))
    w[0], w[1] = wlo, whi
    # The spec refuses "dsp" where iCE40 synthesis would keep the products in logic (W8A2s:
    # 10-bit products); the DSP datapath is still what the unit below builds.
    net = Network("x", Input((size,), abits, signed),
                  [Dense("fc", w, wbits, pe=pe, simd=simd, mac="auto" if mac == "dsp" else mac)])
    x = _extreme_inputs(net.input_type, 5, rng)
    unit = _unit_as(net, mac, pe=pe, simd=simd)
    beats = stream_beats(x, net.types[0], simd)
    expected = stream_beats(golden.run(net, x)["fc"], net.types[1], pe)
    got = run_stream(unit, beats, len(expected), gaps=0.3, backpressure=0.3, seed=1)
    assert got.outputs == expected


@pytest.mark.parametrize("wbits,abits,pe,pack", [(4, 4, 4, 2), (2, 2, 4, 4), (2, 2, 6, 3),
                                                 (8, 8, 4, 1), (3, 2, 2, 2), (16, 8, 2, 1)])
def test_dsp_packing_factor(wbits, abits, pe, pack):
    from hwgen.plan import dsp_packing
    assert dsp_packing(TensorType((8,), abits), wbits, pe) == pack


REQUANT_CASES = [
    # id, input (bits, signed), weight bits, requantize output, mac, pe
    ("u8-w8-u4-lut", (8, False), 8, "u4", "lut", 2),
    ("u8-w8-s8-dsp", (8, False), 8, "s8", "dsp", 2),
    ("s4-w4-s6-dsp-packed", (4, True), 4, "s6", "dsp", 4),
    ("u2-w2-u2-lut", (2, False), 2, "u2", "lut", 3),
    ("bin-w1-u3", (1, False), 1, "u3", "auto", 2),
    ("u6-w1-s5", (6, False), 1, "s5", "auto", 2),
    ("bin-w8-u8", (1, False), 8, "u8", "auto", 2),
    ("u8-w16-s16-dsp", (8, False), 16, "s16", "dsp", 1),
]


@pytest.mark.parametrize("case", REQUANT_CASES, ids=[c[0] for c in REQUANT_CASES])
def test_requantize_bit_exact_under_stalls(case):
    _, (bits, signed), wbits, rq, mac, pe = case
    rng = np.random.default_rng(len(case[0]))
    net, x = chain(rng, Input((12,), bits, signed),
                   [dict(out=2 * pe if pe > 1 else 3, weight_bits=wbits, out_bits=rq, pe=pe,
                         simd=4, bias=True, mac=mac)], count=9)
    out = golden.run(net, x)[net.layers[0].name]
    lo, hi = net.output_type.range
    assert (out == lo).any() and (out == hi).any()  # both clamps are exercised
    assert ((out > lo) & (out < hi)).any()
    unit = _unit_as(net, mac, pe=pe, simd=4)
    beats = stream_beats(x, net.types[0], 4)
    expected = stream_beats(out, net.types[1], pe)
    got = run_stream(unit, beats, len(expected), gaps=0.4, backpressure=0.4, seed=2)
    assert got.outputs == expected


# --- serial output stages: requantize by shift-and-add, thresholds by binary search ----------

SERIAL_CASES = [
    # id, input (size, bits, signed), weight bits, output, pe, simd
    ("rq-u8-w8-u4", (96, 8, False), 8, "u4", 2, 2),
    ("rq-s4-w4-s6", (64, 4, True), 4, "s6", 1, 1),
    ("rq-bin-w1-u3-xnor", (128, 1, False), 1, "u3", 2, 2),
    ("rq-u6-w1-s5-maskx", (96, 6, False), 1, "s5", 3, 2),
    ("rq-bin-w8-u8-maskw", (64, 1, False), 8, "u8", 1, 1),
    ("th-u4-w4-4bit-steps-eq-sf", (16, 4, False), 4, 4, 2, 4),
    ("th-s8-w8-3bit", (40, 8, True), 8, 3, 1, 4),
    ("th-bin-w1-2bit", (32, 1, False), 1, 2, 4, 16),
]


@pytest.mark.parametrize("case", SERIAL_CASES, ids=[c[0] for c in SERIAL_CASES])
def test_serial_output_stage_bit_exact(case):
    """Layers whose output work fits in SF steps get the serial stage (negative multipliers,
    shifts that differ per channel, both clamps, every datapath mode); gaps and
    backpressure."""
    _, (size, bits, signed), wbits, output, pe, simd = case
    rng = np.random.default_rng(len(case[0]) * 7 + size)
    net, x = chain(rng, Input((size,), bits, signed),
                   [dict(out=3 * pe, weight_bits=wbits, out_bits=output, pe=pe, simd=simd,
                         bias=True)], count=9)
    layer = net.layers[0]
    unit, got, expected = run_unit(net, x, gaps=0.4, backpressure=0.4, seed=5)
    assert unit.output_steps == (output if isinstance(output, int) else unit.output_steps) > 0
    if layer.requantize is not None:
        out = golden.run(net, x)[layer.name]
        lo, hi = net.output_type.range
        assert (out == lo).any() and (out == hi).any()
    assert got.outputs == expected


def test_serial_output_stage_latency():
    """The serial stage adds steps − 1 cycles of latency and no cycles per vector."""
    rng = np.random.default_rng(11)
    net, x = chain(rng, Input((48,), 8), [dict(out=4, weight_bits=8, out_bits="s8", pe=1,
                                                simd=2, bias=True)], count=5)
    unit, got, expected = run_unit(net, x)
    assert got.outputs == expected
    assert unit.output_steps > 2 and unit.depth == MVU_DEPTH + unit.output_steps - 1
    fold = unit.nf * unit.sf
    ends = got.out_times[unit.nf - 1::unit.nf]
    assert [b - a for a, b in zip(ends[1:], ends[2:], strict=False)] == [fold] * (len(ends) - 2)
    assert ends[0] - got.in_times[unit.sf - 1] == fold + unit.depth


def test_serial_thresholds_at_their_extremes():
    """Repeated thresholds, thresholds beyond the reachable accumulator (clipped) and inputs
    that land exactly on thresholds: the binary search counts as the golden model does."""
    from hwgen.spec import Dense
    rng = np.random.default_rng(3)
    w = rng.integers(-8, 8, size=(4, 8))
    w[0] = -8
    x = _extreme_inputs(TensorType((8,), 4), 12, rng)
    acc = x @ w.T
    rows = []
    for o in range(4):
        t = np.sort(rng.choice(acc[:, o], size=15))
        rows.append(t)
    rows[1][:5] = -10**6           # never reached from below: always counted
    rows[2][-4:] = 10**6           # never reached
    rows[3][:] = acc[0, 3]         # one value, fifteen times
    net = Network("t", Input((8,), 4), [Dense("fc", w, 4, thresholds=np.array(rows),
                                               pe=2, simd=2)])
    unit, got, expected = run_unit(net, x, gaps=0.3, backpressure=0.3, seed=4)
    assert unit.output_steps == 4
    assert got.outputs == expected


# --- registered block-RAM reads (ECP5): same outputs, same cycles -----------------------------

REGISTERED_CASES = [(c[0], c[1], c[2], c[3], c[4], c[5], c[6]) for c in CASES] + [
    (c[0], c[1], c[2], c[3], c[4], c[5], True) for c in SERIAL_CASES]


@pytest.mark.parametrize("case", REGISTERED_CASES, ids=[c[0] for c in REGISTERED_CASES])
def test_registered_reads_same_outputs_and_cycles(case):
    """With every block-RAM read registered (banked weights read a cycle ahead, tables
    addressed a cycle early, the threshold search two slots ahead) a unit gives the golden
    outputs at exactly the cycles it gives them without, under gaps and backpressure."""
    _, (size, bits, signed), wbits, obits, pe, simd, bias = case
    rng = np.random.default_rng(sum(map(ord, case[0])))
    out = pe * 3 if pe > 1 else 5
    net, x = chain(rng, Input((size,), bits, signed),
                   [dict(out=out, weight_bits=wbits, out_bits=obits, pe=pe, simd=simd,
                         bias=bias)], count=6)
    unit, plain, expected = run_unit(net, x, gaps=0.3, backpressure=0.3, seed=6)
    _, registered, _ = run_unit(net, x, gaps=0.3, backpressure=0.3, seed=6,
                                platform=RegisteredReads())
    assert registered.outputs == expected
    assert (registered.in_times, registered.out_times) == (plain.in_times, plain.out_times)
    names = _memory_names(unit, RegisteredReads())
    # every weight memory is read a cycle ahead, in banks (one when it fits one block RAM)
    assert "weights_bank0" in names and "weights" not in names
    assert ("weights_bank1" in names) == (unit.nf * unit.sf > 4)


def _memory_names(unit, platform) -> set[str]:
    from amaranth.hdl import Fragment
    fragment = Fragment.get(unit, platform)
    return {name for _, name, _ in fragment.subfragments}


# --- fully unrolled: PE = out_features, SIMD = in_features (constant weights) -------------------

UNROLLED_CASES = [
    # id, input (size, bits, signed), weight bits, output (None raw, int thresholds, "u4"
    # requantize), outputs, mac
    ("mul-s8-w8-raw", (16, 8, True), 8, None, 6, "lut"),
    ("mul-u4-w4-thresholds", (10, 4, False), 4, 2, 5, "lut"),
    ("mul-s4-w4-requantize", (12, 4, True), 4, "u3", 8, "lut"),
    ("mul-u8-w16-raw", (5, 8, False), 16, None, 3, "lut"),
    ("mul-u4-w4-dsp", (6, 4, False), 4, None, 4, "dsp"),
    ("xnor-1bit", (24, 1, False), 1, 1, 7, "lut"),
    ("maskx-u3-requantize", (9, 3, False), 1, "s5", 4, "lut"),
]


def _unrolled(case, count: int):
    _, (size, bits, signed), wbits, out_bits, out, mac = case
    rng = np.random.default_rng(sum(map(ord, case[0])))
    net, x = chain(rng, Input((size,), bits, signed),
                   [dict(out=out, weight_bits=wbits, out_bits=out_bits, pe=out, simd=size,
                         bias=True)], count=count)
    layer = net.layers[0]
    unit = _unit_as(net, mac, pe=out, simd=size)
    assert unit.unrolled
    beats = stream_beats(x, net.types[0], size)
    expected = stream_beats(golden.run(net, x)[layer.name], net.types[1], out)
    return net, unit, beats, expected


@pytest.mark.parametrize("case", UNROLLED_CASES, ids=[c[0] for c in UNROLLED_CASES])
def test_unrolled_bit_exact_under_stalls(case):
    """Constant weights (no weight memory), one beat per vector: bit-exact against the golden
    model under random input gaps and output backpressure, and without either."""
    _, unit, beats, expected = _unrolled(case, count=40)
    for gaps, backpressure, seed in [(0.5, 0.5, 1), (0.0, 0.7, 2), (0.6, 0.0, 3), (0.0, 0.0, 4)]:
        got = run_stream(unit, beats, len(expected), gaps=gaps, backpressure=backpressure,
                         seed=seed)
        assert got.outputs == expected, (gaps, backpressure)


@pytest.mark.parametrize("case", UNROLLED_CASES[:3], ids=[c[0] for c in UNROLLED_CASES[:3]])
def test_unrolled_cycles_follow_the_model(case):
    """Back to back, one vector per cycle; every vector leaves when hwgen.plan says."""
    net, unit, beats, expected = _unrolled(case, count=12)
    got = run_stream(unit, beats, len(expected))
    assert got.outputs == expected
    assert got.in_times == list(range(len(beats)))
    layer_plan = plan(net).layers[0]
    assert layer_plan.cycles == 1
    timing = kind_of(layer_plan.kind).out_times
    assert got.out_times == [timing(layer_plan, [t])[-1] for t in got.in_times]


def test_unrolled_ready_ignores_output_ready():
    """``i_stream.ready`` depends on registered state only: in every cycle of random traffic
    both values of ``o_stream.ready`` give the same ``i_stream.ready``; the data stays exact."""
    _, unit, beats, expected = _unrolled(UNROLLED_CASES[2], count=30)
    rng = random.Random(5)
    outputs = []

    async def bench(ctx):
        sent = 0
        for _ in range(20 * len(expected)):
            ctx.set(unit.i_stream.valid, sent < len(beats) and rng.random() < 0.7)
            ctx.set(Value.cast(unit.i_stream.payload), beats[min(sent, len(beats) - 1)])
            ready = []
            for o_ready in (0, 1):
                ctx.set(unit.o_stream.ready, o_ready)
                ready.append(ctx.get(unit.i_stream.ready))
            assert ready[0] == ready[1]
            ctx.set(unit.o_stream.ready, rng.random() < 0.4)
            _, _, i_fire, o_fire, payload = await ctx.tick().sample(
                unit.i_stream.valid & unit.i_stream.ready,
                unit.o_stream.valid & unit.o_stream.ready, Value.cast(unit.o_stream.payload))
            sent += i_fire
            if o_fire:
                outputs.append(payload)

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert outputs == expected


def test_a_threshold_rom_wider_than_a_memory_word_is_split():
    """Issue 16: 23 lanes × 255 thresholds of 15 bits make an 87,975-bit word, more than one
    Amaranth value may hold (2^16 bits): the ROM is split by whole lanes and stays exact.
    (The Python simulator needs long integer literals for the 65,536-bit half.)"""
    import sys

    from amaranth.back import verilog

    from hwgen.rtl.output_stage import MAX_WORD_BITS
    from hwgen.spec import Dense

    rng = np.random.default_rng(0)
    w = rng.integers(-32, 32, size=(23, 5))
    t = np.sort(rng.integers(-700, 700, size=(23, 255)), axis=1)
    net = Network("n", Input((5,), 7, signed=True), [Dense("fc", w, 6, thresholds=t, pe=23,
                                                           simd=1)])
    x = rng.integers(-64, 64, size=(4, 5))
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        unit, got, expected = run_unit(net, x, gaps=0.3, backpressure=0.3)
    finally:
        sys.set_int_max_str_digits(limit)
    assert got.outputs == expected and len(set(expected)) == len(x)
    text = verilog.convert(unit, name="fc", emit_src=False)
    assert "thresholds_0" in text and "thresholds_1" in text and "thresholds_2" not in text
    assert 23 * 255 * 15 > MAX_WORD_BITS


def test_constructor_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    net, _ = chain(rng, Input((8,), 4), [dict(out=4, weight_bits=2, out_bits=1, pe=1, simd=1)])
    layer, x, y = net.layers[0], net.types[0], net.types[1]
    for kwargs, message in [
        (dict(pe=0, simd=1), "pe must be a positive integer, not 0"),
        (dict(pe=1, simd=-2), "simd must be a positive integer, not -2"),
        (dict(pe=1, simd=1, mac="auto"),
         "mac must be one of 'xnor', 'addsub', 'lut', 'dsp', not 'auto'"),
    ]:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            MatrixVectorUnit(layer.weight_matrix(), x, y, **kwargs)
    folding = dict(pe=2, lanes=2, w_lanes=2, nf=2, sf=4, vector_words=4, mac="lut",
                   shared_input=True)
    for changes, message in [
        (dict(nf=0), "nf must be a positive integer, not 0"),
        (dict(vector_words=3), "vector_words·lanes (3·2) is not the 8 input elements"),
        (dict(nf=1), "nf·pe (1·2) is not the 4 output channels"),
        (dict(dsp_pack=3), "dsp_pack 3 does not divide pe 2"),
        (dict(mac="DSP"), "mac must be one of 'xnor', 'addsub', 'lut', 'dsp', not 'DSP'"),
    ]:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            FoldedUnit(layer.weight_matrix(), x, y, **(folding | changes))
