"""popcount, sum_tree and the dot products are exact (Amaranth simulator), at every width that
matters; canonical signed digits and the shared sub-expressions keep every value."""

from __future__ import annotations

import random
import sys

import pytest
from amaranth import Module, Signal, signed
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.rtl.arith import popcount, sum_tree


def _popcount_rtl(width: int, vectors: list[int]) -> list[int]:
    """Counts from ``popcount`` of a ``width``-bit signal, one per vector."""
    bits = Signal(width)
    count = popcount(bits)
    out = Signal(len(count))
    m = Module()
    m.d.comb += out.eq(count)
    results = []

    async def testbench(ctx):
        for vector in vectors:
            ctx.set(bits, vector)
            results.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    return results


def _vectors(width: int, count: int, seed: int) -> list[int]:
    rng = random.Random(seed * 1009 + width)
    ones = (1 << width) - 1
    vectors = [0, ones, 1, 1 << (width - 1), ones ^ 1]
    # Dense and sparse vectors as well as uniform ones, so high and low counts both occur.
    for _ in range(count):
        a, b = rng.getrandbits(width), rng.getrandbits(width)
        vectors += [a, a & b, a | b]
    return vectors


@pytest.mark.parametrize("width", range(1, 9))
def test_popcount_exhaustive(width):
    vectors = list(range(1 << width))
    assert _popcount_rtl(width, vectors) == [v.bit_count() for v in vectors]


@pytest.mark.parametrize("width", [9, 10, 13, 15, 16, 17, 23, 31, 32, 33, 64, 255, 256, 1000])
def test_popcount_random(width):
    vectors = _vectors(width, 40, seed=1)
    assert _popcount_rtl(width, vectors) == [v.bit_count() for v in vectors]


@pytest.mark.parametrize("width", [1, 2, 7, 8, 9, 63, 64, 65, 127, 1000, 1023, 1024])
def test_popcount_width(width):
    # The count is exactly wide enough for ``width`` (all ones), never wider.
    assert len(popcount(Signal(width))) == width.bit_length()


def test_popcount_xnor_expression():
    # The MVU's use: popcount of an XNOR expression rather than of a signal.
    width = 37
    x, w = Signal(width), Signal(width)
    count = popcount(~(x ^ w))
    out = Signal(len(count))
    m = Module()
    m.d.comb += out.eq(count)
    rng = random.Random(5)
    pairs = [(0, 0), ((1 << width) - 1, 0)] + [(rng.getrandbits(width), rng.getrandbits(width))
                                               for _ in range(100)]
    seen = []

    async def testbench(ctx):
        for a, b in pairs:
            ctx.set(x, a)
            ctx.set(w, b)
            seen.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == [width - (a ^ b).bit_count() for a, b in pairs]


def test_popcount_1024_elaborates_under_recursion_limit():
    # Built level by level: converting to RTLIL must not need a deep Python stack.
    from amaranth.back import rtlil

    bits = Signal(1024)
    out = Signal(11)
    m = Module()
    m.d.comb += out.eq(popcount(bits))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        text = rtlil.convert(m, ports=[bits, out])
    finally:
        sys.setrecursionlimit(limit)
    assert "cell" in text


def test_popcount_empty():
    assert len(popcount(Signal(0))) == 1


def _sum_rtl(terms_shapes, vectors):
    terms = [Signal(shape) for shape in terms_shapes]
    total = sum_tree(terms)
    out = Signal(total.shape())
    m = Module()
    m.d.comb += out.eq(total)
    results = []

    async def testbench(ctx):
        for vector in vectors:
            for term, value in zip(terms, vector, strict=True):
                ctx.set(term, value)
            results.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    return results


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 33])
def test_sum_tree_unsigned(count):
    rng = random.Random(count)
    shapes = [rng.randint(1, 6) for _ in range(count)]
    vectors = [[(1 << s) - 1 for s in shapes], [0] * count]
    vectors += [[rng.getrandbits(s) for s in shapes] for _ in range(30)]
    assert _sum_rtl(shapes, vectors) == [sum(v) for v in vectors]


@pytest.mark.parametrize("count", [1, 2, 7, 16])
def test_sum_tree_signed(count):
    rng = random.Random(100 + count)
    shapes = [signed(rng.randint(2, 6)) for _ in range(count)]
    lo = [-(1 << (s.width - 1)) for s in shapes]
    hi = [(1 << (s.width - 1)) - 1 for s in shapes]
    vectors = [lo, hi] + [[rng.randint(a, b) for a, b in zip(lo, hi, strict=True)]
                          for _ in range(30)]
    assert _sum_rtl(shapes, vectors) == [sum(v) for v in vectors]


def test_sum_tree_empty():
    assert _sum_rtl([], [[]]) == [0]


# --- multi-bit dot products: in LUTs and on (packed) DSP multipliers -----------------------------


def _operand_range(bits: int, is_signed: bool) -> range:
    return range(-(1 << (bits - 1)), 1 << (bits - 1)) if is_signed else range(1 << bits)


def _dot_rtl(build, shapes, vectors):
    """Evaluate ``build(m, signals)`` (a list of outputs) for each vector of operand values."""
    from amaranth import unsigned

    sigs = [Signal(signed(b) if s else unsigned(b)) for b, s in shapes]
    m = Module()
    outs = build(m, sigs)
    wires = [Signal(o.shape()) for o in outs]
    m.d.comb += [w.eq(o) for w, o in zip(wires, outs, strict=True)]
    results = []

    async def testbench(ctx):
        for vector in vectors:
            for sig, value in zip(sigs, vector, strict=True):
                ctx.set(sig, value)
            results.append([ctx.get(w) for w in wires])

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    return results


@pytest.mark.parametrize("xbits,xsigned,wbits", [(2, False, 2), (2, True, 2), (1, False, 3),
                                                 (3, True, 5), (4, False, 4), (8, True, 3),
                                                 (5, False, 16)])
def test_dot_lut_is_exact(xbits, xsigned, wbits):
    """Exhaustive over one lane's operands (or random for wide ones), three lanes."""
    from hwgen.rtl.arith import dot_lut

    rng = random.Random(xbits * 100 + wbits)
    xr, wr = _operand_range(xbits, xsigned), _operand_range(wbits, True)
    lanes = 3
    shapes = [(xbits, xsigned)] * lanes + [(wbits, True)] * lanes
    vectors = [[min(xr)] * lanes + [min(wr)] * lanes, [max(xr)] * lanes + [min(wr)] * lanes,
               [max(xr)] * lanes + [max(wr)] * lanes, [min(xr)] * lanes + [max(wr)] * lanes]
    vectors += [[rng.choice(xr) for _ in range(lanes)] + [rng.choice(wr) for _ in range(lanes)]
                for _ in range(300)]
    got = _dot_rtl(lambda m, s: [dot_lut(m, list(zip(s[:lanes], s[lanes:], strict=True)),
                                         "d")], shapes, vectors)
    assert [g[0] for g in got] == [sum(a * b for a, b in zip(v[:lanes], v[lanes:],
                                                             strict=True)) for v in vectors]


@pytest.mark.parametrize("xbits,xsigned,wbits,pack", [(4, False, 4, 2), (2, False, 2, 4),
                                                      (4, True, 2, 2), (3, True, 3, 2)])
def test_dot_dsp_unpacks_every_channel(xbits, xsigned, wbits, pack):
    """Packed products at every weight extreme (the borrow of a negative lower product) and at
    random values."""
    from hwgen.plan import packed_operand_bits
    from hwgen.rtl.arith import dot_dsp

    field, lanes = xbits + wbits, 2
    stored = packed_operand_bits(xbits, wbits, pack)
    xr, wr = _operand_range(xbits, xsigned), _operand_range(wbits, True)
    rng = random.Random(pack * 10 + xbits)
    cases = [([min(xr), max(xr)], [[min(wr)] * pack, [max(wr)] * pack]),
             ([max(xr), max(xr)], [[min(wr)] * pack, [min(wr)] * pack]),
             ([min(xr), min(xr)], [[min(wr)] * pack, [max(wr)] * pack])]
    cases += [([rng.choice(xr) for _ in range(lanes)],
               [[rng.choice(wr) for _ in range(pack)] for _ in range(lanes)])
              for _ in range(200)]
    shapes = [(xbits, xsigned)] * lanes + [(stored, True)] * lanes
    vectors = [xs + [sum(w << (t * field) for t, w in enumerate(ws)) for ws in wss]
               for xs, wss in cases]
    got = _dot_rtl(lambda m, s: dot_dsp(m, s[:lanes], [s[lanes:]], pack, field, "p"),
                   shapes, vectors)
    expected = [[sum(xs[k] * wss[k][t] for k in range(lanes)) for t in range(pack)]
                for xs, wss in cases]
    assert got == expected


# --- constant-weight dot products: canonical signed digits, shared sub-expressions --------------


@given(st.integers(-(1 << 40), 1 << 40))
@settings(max_examples=500, deadline=None)
def test_csd_digits_are_canonical(value):
    from hwgen.rtl.arith import csd_digits

    digits = csd_digits(value)
    assert sum(d << p for p, d in digits) == value
    assert all(d in (-1, 1) for _, d in digits)
    positions = [p for p, _ in digits]
    assert all(b - a >= 2 for a, b in zip(positions, positions[1:], strict=False))
    # Never more non-zero digits than binary (CSD has the fewest of any signed-digit form).
    assert len(digits) <= abs(value).bit_count()


def test_csd_digits_examples():
    from hwgen.rtl.arith import csd_digits

    assert csd_digits(0) == []
    assert csd_digits(7) == [(0, -1), (3, 1)]
    assert csd_digits(-128) == [(7, -1)]
    assert csd_digits(127) == [(0, -1), (7, 1)]
    assert csd_digits(-3) == [(0, 1), (2, -1)]


_terms = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 6), st.sampled_from([-1, 1])),
                  max_size=8)


@given(st.lists(_terms, max_size=6), st.lists(st.integers(-50, 50), min_size=6, max_size=6))
@settings(max_examples=300, deadline=None)
def test_common_pairs_keep_every_row_and_leave_no_pair_twice(rows, values):
    from hwgen.rtl.arith import _common_pairs

    # One term per (variable, shift) in a row, as CSD digits give.
    rows = [list({(v, p): (v, p, s) for v, p, s in row}.values()) for row in rows]
    shared, rewritten = _common_pairs(rows, len(values))
    var = dict(enumerate(values))
    for t, a, b, d, s in shared:
        assert t not in var and a in var and b in var
        var[t] = var[a] + s * (var[b] << d)
    value = lambda row: sum(s * (var[v] << p) for v, p, s in row)  # noqa: E731
    assert [value(row) for row in rewritten] == [value(row) for row in rows]
    keys = [{(va, vb, pb - pa, sa * sb) for va, pa, sa in row for vb, pb, sb in row
             if (pa, va) < (pb, vb)} for row in rewritten]
    assert all(sum(key in other for other in keys) < 2 for row in keys for key in row)


def _dot_const_rtl(weights: list[list[int]], xbits: int, xsigned: bool,
                   vectors: list[list[int]]) -> list[list[int]]:
    from hwgen.rtl.arith import dot_const

    lanes = len(weights[0])
    return _dot_rtl(lambda m, s: dot_const(m, s, weights, "c"), [(xbits, xsigned)] * lanes,
                    vectors)


DOT_CONST_CASES = [
    # id, weights (rows), input bits, input signed
    ("w8-extremes-signed", [[-128] * 5, [127] * 5, [-128, 127, -128, 127, 0], [0] * 5,
                            [-1, 1, -1, 1, -1]], 8, True),
    ("w8-extremes-unsigned", [[-128] * 5, [127] * 5, [127, -128, 0, 1, -1], [0] * 5], 8, False),
    ("repeated-rows", [[37, -91, 5, 0, 113, -2]] * 4 + [[-37, 91, -5, 0, -113, 2]], 6, True),
    ("w16", [[-32768, 32767, 12345, -4321], [21845, -21846, 1, -1], [0, 0, 0, 0]], 8, False),
    ("w16-signed-x", [[-32768, 32767, -32768, 32767], [255, -256, 4097, -8191]], 5, True),
    ("one-column", [[3], [-3], [0], [96]], 1, False),
]


@pytest.mark.parametrize("case", DOT_CONST_CASES, ids=[c[0] for c in DOT_CONST_CASES])
def test_dot_const_is_exact(case):
    """Every row against Python integers: the extreme input vectors and random
    ones, so every adder's full range is seen."""
    _, weights, xbits, xsigned = case
    xr = _operand_range(xbits, xsigned)
    lanes = len(weights[0])
    rng = random.Random(len(weights) * 10 + xbits)
    vectors = [[min(xr)] * lanes, [max(xr)] * lanes,
               [min(xr) if k % 2 else max(xr) for k in range(lanes)],
               [max(xr) if k % 2 else min(xr) for k in range(lanes)]]
    vectors += [[rng.choice(xr) for _ in range(lanes)] for _ in range(200)]
    got = _dot_const_rtl(weights, xbits, xsigned, vectors)
    assert got == [[sum(w * x for w, x in zip(row, v, strict=True)) for row in weights]
                   for v in vectors]


def test_dot_const_random_matrices():
    """Random 8-bit matrices with signed and unsigned inputs (several weights repeat, so
    sub-expressions are shared across rows)."""
    rng = random.Random(11)
    for xsigned in (True, False):
        weights = [[rng.randint(-128, 127) for _ in range(8)] for _ in range(12)]
        weights[3] = list(weights[7])
        xr = _operand_range(8, xsigned)
        vectors = [[rng.choice(xr) for _ in range(8)] for _ in range(150)]
        got = _dot_const_rtl(weights, 8, xsigned, vectors)
        assert got == [[sum(w * x for w, x in zip(row, v, strict=True)) for row in weights]
                       for v in vectors]


# --- registered halfway (stage): exactly one register on every path ----------------------------


def _staged_rtl(build, shapes, vectors):
    """Outputs of ``build(m, signals, stage)`` with a :func:`~hwgen.rtl.arith.registered`
    stage, read each cycle just after the next vector is applied: equal to the previous
    vector's results only if every path has exactly one register (a path with none would see
    the new vector, one with two the vector before)."""
    from amaranth import unsigned

    from hwgen.rtl.arith import registered

    sigs = [Signal(signed(b) if s else unsigned(b)) for b, s in shapes]
    m = Module()
    outs = build(m, sigs, registered(m, "stage"))
    wires = [Signal(o.shape()) for o in outs]
    m.d.comb += [w.eq(o) for w, o in zip(wires, outs, strict=True)]
    results = []

    async def testbench(ctx):
        for i, vector in enumerate([*vectors, vectors[0]]):
            for sig, value in zip(sigs, vector, strict=True):
                ctx.set(sig, value)
            if i:
                results.append([ctx.get(w) for w in wires])
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return results


@pytest.mark.parametrize("width", [1, 2, 3, 7, 8, 15, 16, 64, 100])
def test_popcount_staged(width):
    vectors = [[v] for v in _vectors(width, 20, seed=2)]
    got = _staged_rtl(lambda m, s, stage: [popcount(s[0], stage)], [(width, False)], vectors)
    assert got == [[v[0].bit_count()] for v in vectors]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
def test_sum_and_adder_trees_staged(count):
    from hwgen.rtl.arith import adder_tree

    rng = random.Random(count)
    vectors = [[rng.randrange(-32, 32) for _ in range(count)] for _ in range(60)]
    got = _staged_rtl(lambda m, s, stage: [sum_tree(s, stage), adder_tree(m, s, "a", stage)],
                      [(6, True)] * count, vectors)
    assert got == [[sum(v), sum(v)] for v in vectors]


@pytest.mark.parametrize("xbits,xsigned,wbits,lanes", [(2, False, 2, 3), (3, True, 5, 1),
                                                       (6, False, 4, 4), (8, True, 3, 9),
                                                       (5, False, 16, 2)])
def test_dot_lut_staged(xbits, xsigned, wbits, lanes):
    from hwgen.rtl.arith import dot_lut

    rng = random.Random(xbits * 7 + lanes)
    xr, wr = _operand_range(xbits, xsigned), _operand_range(wbits, True)
    vectors = [[rng.choice(xr) for _ in range(lanes)] + [rng.choice(wr) for _ in range(lanes)]
               for _ in range(80)]
    vectors[0] = [min(xr)] * lanes + [min(wr)] * lanes
    got = _staged_rtl(lambda m, s, stage: [dot_lut(m, list(zip(s[:lanes], s[lanes:],
                                                                strict=True)), "d", stage)],
                      [(xbits, xsigned)] * lanes + [(wbits, True)] * lanes, vectors)
    assert [g[0] for g in got] == [sum(a * b for a, b in zip(v[:lanes], v[lanes:],
                                                             strict=True)) for v in vectors]


def test_dot_dsp_and_dot_const_staged():
    from hwgen.plan import packed_operand_bits
    from hwgen.rtl.arith import dot_const, dot_dsp

    rng = random.Random(5)
    field, pack, lanes = 8, 2, 3
    stored = packed_operand_bits(4, 4, pack)
    cases = [([rng.randrange(16) for _ in range(lanes)],
              [[rng.randrange(-8, 8) for _ in range(pack)] for _ in range(lanes)])
             for _ in range(60)]
    vectors = [xs + [sum(w << (t * field) for t, w in enumerate(ws)) for ws in wss]
               for xs, wss in cases]
    got = _staged_rtl(lambda m, s, stage: dot_dsp(m, s[:lanes], [s[lanes:]], pack, field, "p",
                                                  stage),
                      [(4, False)] * lanes + [(stored, True)] * lanes, vectors)
    assert got == [[sum(xs[k] * wss[k][t] for k in range(lanes)) for t in range(pack)]
                   for xs, wss in cases]

    weights = [[rng.randint(-128, 127) for _ in range(6)] for _ in range(5)]
    weights[2] = list(weights[4])
    weights[1] = [0] * 6
    vectors = [[rng.randrange(-128, 128) for _ in range(6)] for _ in range(60)]
    got = _staged_rtl(lambda m, s, stage: dot_const(m, s, weights, "c", stage),
                      [(8, True)] * 6, vectors)
    assert got == [[sum(w * x for w, x in zip(row, v, strict=True)) for row in weights]
                   for v in vectors]
