"""Adder trees and popcount, built level by level (never a deep Python expression), and
the dot products of the folded units, each with an optional pipeline register (``stage``)
cutting it about halfway."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value, signed

__all__ = ["sum_tree", "popcount", "dot_lut", "dot_dsp", "adder_tree", "csd_digits",
           "dot_const", "Stage", "registered"]

#: A pipeline register: returns its argument one cycle later. Where a function of this
#: module takes ``stage``, every path from its inputs to its result passes through exactly
#: one ``stage`` call (the result is one cycle late); ``None`` keeps it combinational.
Stage = Callable[[Value], Value]


def registered(m: Module, name: str) -> Stage:
    """A :data:`Stage` whose registers are ``m.d.sync`` signals ``<name>_<i>`` (with the
    value's shape)."""
    count = 0

    def stage(value: Value) -> Value:
        nonlocal count
        value = Value.cast(value)
        reg = Signal(value.shape(), name=f"{name}_{count}")
        count += 1
        m.d.sync += reg.eq(value)
        return reg

    return stage


def _tree_depth(terms: int) -> int:
    """Levels of two-input adders a balanced tree of ``terms`` terms has."""
    return max(terms - 1, 0).bit_length()


def _tree(terms: list[Value], add, stage: Stage | None, cut: int | None) -> Value:
    """A balanced tree of ``add(a, b, level, index)`` over ``terms`` (adjacent terms paired,
    so the structure follows lane order; an empty list sums to 0), registered by ``stage``
    after ``cut`` levels (default: the middle level)."""
    level = [Value.cast(t) for t in terms]
    if not level:
        return stage(Value.cast(0)) if stage else Value.cast(0)
    if cut is None:
        cut = (_tree_depth(len(level)) + 1) // 2
    depth = 0
    while True:
        if stage and depth == cut:
            level = [stage(v) for v in level]
        if len(level) == 1:
            return level[0]
        pairs = [add(level[i], level[i + 1], depth, i // 2)
                 for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            pairs.append(level[-1])
        level, depth = pairs, depth + 1


def sum_tree(terms: list[Value], stage: Stage | None = None) -> Value:
    """Sum of ``terms`` as a balanced tree of two-input adders (exact: widths grow per level).

    Adjacent terms are paired, so the tree's structure follows lane order; an empty list sums
    to 0. With ``stage``, the tree is registered at its middle level.
    """
    return _tree(terms, lambda a, b, depth, i: a + b, stage, None)


# Popcount structure (see docs/results.md, "XNOR-popcount"):
#
# * Leaves count 7 bits (or 3, 2, 1 for the remainder) in LUT logic, as full adders: 7 bits
#   give a 3-bit count 0..7 from 4 full adders. When the bits are an expression such as
#   ``~(x ^ w)``, the synthesizer folds it into the first adders' LUTs (a LUT4 sees two lanes).
# * Leaves are summed by a tree of two-operand adders, which FPGA tools map to carry chains
#   (iCE40 SB_CARRY, ECP5 CCU2C: one LC or LUT per bit). Each adder also takes one input bit as
#   its carry-in, written as ``(Cat(c, p) + Cat(1, q))[1:]`` = p + q + c, so two 7-leaves and
#   one bit make 0..15 in 4 bits, two of those and one bit 0..31, and so on: every operand is
#   full, and no carry chain has an unused top bit.
# * Each adder's result is sliced, so Yosys' ``alumacc`` cannot merge the tree back into one
#   ``$macc`` (which it maps to full adders in LUT logic, about 2.6 LCs per bit on iCE40).
# * Every intermediate value is used by exactly one consumer, so the expression stays a tree
#   (Amaranth copies a shared sub-expression for each use).

_LEAF = 7


def _full_add(x: Value, y: Value, z: Value) -> tuple[Value, Value]:
    return x ^ y ^ z, (x & y) | (z & (x ^ y))


def _count_leaf(xs: list[Value]) -> tuple[Value, int]:
    """Count of up to 7 bits in LUT logic: ``(value, maximum)``."""
    if len(xs) == 7:
        sa, ca = _full_add(*xs[0:3])
        sb, cb = _full_add(*xs[3:6])
        s0, cc = _full_add(sa, sb, xs[6])
        s1, s2 = _full_add(ca, cb, cc)
        return Cat(s0, s1, s2), 7
    if len(xs) == 3:
        return Cat(*_full_add(*xs)), 3
    if len(xs) == 2:
        return Cat(xs[0] ^ xs[1], xs[0] & xs[1]), 2
    if len(xs) == 1:
        return xs[0], 1
    raise ValueError(f"no leaf counts {len(xs)} bits")


def _add(p: Value, q: Value, carry: Value | None, maximum: int) -> Value:
    """``p + q (+ carry)``, sliced to the width of ``maximum``."""
    width = maximum.bit_length()
    if carry is None:
        return (p + q)[:width]
    return (Cat(carry, p) + Cat(Const(1, 1), q))[1:width + 1]


def popcount(bits: Value, stage: Stage | None = None) -> Value:
    """Number of set bits of ``bits`` (unsigned, exact width).

    The result is ``len(bits).bit_length()`` bits wide. Its structure (small full-adder leaves
    summed by carry-chain adders that each absorb one more bit) maps to fewer logic cells than
    a flat sum; see the comment above for how. Combinational, or with ``stage`` registered
    once the leaves and half of the adders (the smallest ones) are done.
    """
    bits = Value.cast(bits)
    n = len(bits)
    if n == 0:
        return stage(Const(0, 1)) if stage else Const(0, 1)
    lanes = [bits[i] for i in range(n)]

    # 7-bit leaves, each with one bit set aside as a carry-in for the adder tree; the rest goes
    # into smaller leaves until the carry-ins left number one fewer than the leaves.
    leaves: list[tuple[Value, int]] = []
    for _ in range((n + 1) // (_LEAF + 1)):
        leaves.append(_count_leaf([lanes.pop() for _ in range(_LEAF)]))
    while len(lanes) > len(leaves) - 1:
        spare = len(lanes) - (len(leaves) - 1)
        size = 3 if spare >= 4 else 2 if spare >= 2 else 1
        size = min(size, len(lanes))
        leaves.append(_count_leaf([lanes.pop() for _ in range(size)]))
    carries = lanes

    # Sum the two smallest counts (and one carry-in) until one is left.
    heap = [(maximum, order, value) for order, (value, maximum) in enumerate(leaves)]
    heapq.heapify(heap)
    order = len(heap)
    cut = (len(heap) - 1) // 2  # adders before the register
    while True:
        if stage and cut == 0:
            # Every leaf's bits are in exactly one heap entry or still a carry-in.
            heap = [(maximum, key, stage(value)) for maximum, key, value in heap]
            carries = [stage(c) for c in carries]
        cut -= 1
        if len(heap) == 1:
            break
        max_p, _, p = heapq.heappop(heap)
        max_q, _, q = heapq.heappop(heap)
        carry = carries.pop() if carries else None
        maximum = max_p + max_q + (carry is not None)
        heapq.heappush(heap, (maximum, order, _add(p, q, carry, maximum)))
        order += 1
    assert not carries
    maximum, _, value = heap[0]
    assert maximum == n
    return value


# LUT dot products (see docs/results.md, "Multi-bit MACs in LUTs"):
#
# * A product of a ≤ 4-input function (both operands together at most 4 bits) is a table: one
#   LUT4 per product bit.
# * Otherwise the narrower operand is split into bit planes: plane j of the dot product is
#   Σ_k (sel_k[j] ? mcd_k : 0), the sum over lanes of the other operand masked by bit j. Planes
#   are summed and shifted into place; a signed selector's top plane is subtracted.
# * Every adder output is a kept wire. Without that, Yosys' alumacc merges the whole tree into
#   one $macc, which it maps to LUT full adders instead of carry chains (measured: 4×4 bits,
#   8 lanes, 374 LUT4s for plain `*` and `+`, 309 with kept adders).

#: Largest total operand width of a product computed as a lookup table (hwgen.plan's
#: lut_mac_cost models the same structure).
_TABLE_BITS = 4


def adder_tree(m: Module, terms: list[Value], name: str, stage: Stage | None = None,
               cut: int | None = None) -> Value:
    """:func:`sum_tree` whose every adder drives a kept wire named ``<name>_s<level>_<i>``, so
    Yosys maps each to a carry chain instead of merging the tree into one ``$macc``. With
    ``stage``, registered after ``cut`` levels of adders (default: its middle level)."""
    def add(a, b, depth, i):
        total = a + b
        wire = Signal(total.shape(), name=f"{name}_s{depth}_{i}", attrs={"keep": 1})
        m.d.comb += wire.eq(total)
        return wire

    return _tree(terms, add, stage, cut)


def _table_product(x: Value, y: Value) -> Value:
    """``x·y`` as a lookup on the concatenated operand bits (one LUT per result bit)."""
    xs, ys = x.shape(), y.shape()
    values = []
    for code in range(1 << (len(x) + len(y))):
        a, b = code & ((1 << len(x)) - 1), code >> len(x)
        if xs.signed and a >> (len(x) - 1):
            a -= 1 << len(x)
        if ys.signed and b >> (len(y) - 1):
            b -= 1 << len(y)
        values.append(a * b)
    lo, hi = min(values), max(values)
    bits = max(abs(lo), hi).bit_length() + 1
    table = Array(Const(v, signed(bits)) for v in values)
    return table[Cat(x, y)]


def dot_lut(m: Module, pairs: list[tuple[Value, Value]], name: str,
            stage: Stage | None = None) -> Value:
    """``Σ x·y`` over ``pairs`` in logic only (no ``$mul`` cell, so Yosys never maps it to a
    DSP): exact, with the result's natural Amaranth width. Every pair must have the same
    operand shapes. See the comment above for the structure. With ``stage``, registered
    halfway: in the middle of the products' tree, or, for bit planes, where the plane trees
    and the tree summing the planes (with the subtraction of a signed top plane) meet or in
    the plane trees' middle, whichever is later."""
    if not pairs:
        return stage(Value.cast(0)) if stage else Value.cast(0)
    x0, y0 = (Value.cast(v) for v in pairs[0])
    if len(x0) + len(y0) <= _TABLE_BITS:
        return adder_tree(m, [_table_product(Value.cast(x), Value.cast(y))
                              for x, y in pairs], name, stage)
    planes: dict[int, list[Value]] = {}
    negative: dict[int, list[Value]] = {}
    for x, y in pairs:
        x, y = Value.cast(x), Value.cast(y)
        sel, mcd = (x, y) if len(x) <= len(y) else (y, x)
        top = len(sel) - 1
        for j in range(len(sel)):
            into = negative if sel.shape().signed and j == top else planes
            into.setdefault(j, []).append(Mux(sel[j], mcd, 0))
    inner = _tree_depth(len(pairs))
    outer = _tree_depth(len(planes)) + bool(negative)
    cut = min(inner, (inner + outer + 1) // 2)
    total = adder_tree(m, [adder_tree(m, terms, f"{name}_p{j}", stage, cut) << j
                           for j, terms in sorted(planes.items())], f"{name}_pos")
    if negative:
        (j, terms), = negative.items()
        total = total - (adder_tree(m, terms, f"{name}_n{j}", stage, cut) << j)
    return total



def dot_dsp(m: Module, xs: list[Value], operands: list[list[Value]], pack: int, field: int,
            name: str, stage: Stage | None = None) -> list[Value]:
    """Dot products on multipliers that Yosys maps to DSP blocks, ``pack`` output channels per
    multiplier: ``operands[g][k]`` is ``Σ_t w[g·pack + t, k]·2**(t·field)`` (signed) for
    input ``xs[k]``; returns, per channel ``g·pack + t``, ``Σ_k xs[k]·w[g·pack + t, k]``.

    Product field ``t`` read as signed, plus the sign bit of the field below it, is
    ``x·w_t`` exactly when every ``x·w_t`` fits ``field`` signed bits and is never
    ``−2**(field−1)`` (true for ``field`` = input bits + weight bits), so adding the borrow
    cannot wrap. Each product drives a kept wire (one ``$mul`` cell each); with ``stage`` the
    products are registered (a register the DSP block can hold)."""
    terms: list[list[Value]] = [[] for _ in range(len(operands) * pack)]
    for g, row in enumerate(operands):
        for k, (x, operand) in enumerate(zip(xs, row, strict=True)):
            product = x * operand
            wire = Signal(product.shape(), name=f"{name}{g}_{k}", attrs={"keep": 1})
            m.d.comb += wire.eq(product)
            if stage:
                wire = stage(wire)
            for t in range(pack):
                value = wire[t * field:] if t == pack - 1 else wire[t * field:(t + 1) * field]
                terms[g * pack + t].append(value.as_signed())
                if t:
                    terms[g * pack + t].append(wire[t * field - 1])
    return [adder_tree(m, lane, f"{name}_sum{c}") for c, lane in enumerate(terms)]


# Constant-weight dot products (docs/results.md, "hwgen next to NNgen and da4ml"):
#
# * In a fully unrolled unit (NF = SF = 1) every weight is used in one place only, so it is a
#   constant of the datapath, and a product is a sum of shifted copies of the input, one per
#   non-zero digit of the weight in canonical signed-digit form (CSD: digits −1, 0, +1, no two
#   adjacent non-zero; on average a third of the digits are non-zero, against half of the bits
#   in two's complement). No multiplier, no weight memory.
# * Rows share work: a two-term sub-expression x_a ± x_b·2^d that occurs in several rows (at
#   any shift and sign) is computed once, the most frequent first, until none occurs twice
#   (greedy pairwise common-subexpression elimination). Shared terms can be paired again, so
#   longer common sums grow out of pairs.
# * Each row is then a sum of shifted, signed terms: a balanced tree of kept adders for the
#   positive and one for the negative terms, and one subtraction. Each adder works at the
#   smaller shift of its operands, so no kept wire has constant low bits (``synth_ecp5``
#   rejects a carry cell with an output tied to a constant).


def csd_digits(value: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``value``: ``(position, digit)`` pairs, lowest position
    first, ``digit`` ±1, with ``value = Σ digit·2**position`` and no two positions adjacent
    (the fewest non-zero digits of any signed-digit form). ``0`` has none."""
    digits, position = [], 0
    while value:
        if value & 1:
            digit = 2 - (value & 3)  # +1 when value ≡ 1 (mod 4), −1 when value ≡ 3
            digits.append((position, digit))
            value -= digit
        value >>= 1
        position += 1
    return digits


def _common_pairs(rows: list[list[tuple[int, int, int]]], first: int):
    """Greedy pairwise common-subexpression elimination on rows of terms ``(variable, shift,
    sign)`` (a row's value is ``Σ sign·v·2**shift``). Returns the new variables as ``(t, a, b,
    d, s)`` meaning ``v_t = v_a + s·v_b·2**d``, numbered from ``first`` in the order they must
    be built, and the rows rewritten in them (same values). Deterministic: ties go to the
    pair seen first."""
    rows = [list(row) for row in rows]
    shared, t = [], first

    def pairs(row):
        # (key, i, j): terms i and j of the row, i the lower (shift, variable).
        for i, (va, pa, sa) in enumerate(row):
            for j, (vb, pb, sb) in enumerate(row):
                if (pa, va) < (pb, vb):
                    yield (va, vb, pb - pa, sa * sb), i, j

    while True:
        counts: Counter = Counter()
        for row in rows:
            counts.update({key for key, _, _ in pairs(row)})
        if not counts:
            return shared, rows
        key, count = counts.most_common(1)[0]
        if count < 2:
            return shared, rows
        shared.append((t, *key))
        for r, row in enumerate(rows):
            match = next(((i, j) for k, i, j in pairs(row) if k == key), None)
            if match is not None:
                i, j = match
                _, shift, sign = row[i]
                rows[r] = [term for n, term in enumerate(row) if n not in match]
                rows[r].append((t, shift, sign))
        t += 1


def _shifted_sum(m: Module, terms: list[tuple[Value, int]], name: str) -> tuple[Value, int]:
    """``Σ v·2**shift`` over ``terms`` (``(v, shift)``) as a balanced tree of kept adders
    named ``<name>_s<level>_<i>``, each adding at the smaller shift of its operands. Returns
    ``(value, shift)``, meaning ``value·2**shift``; ``(0, 0)`` for no terms."""
    level = sorted(terms, key=lambda term: term[1])
    depth = 0
    while len(level) > 1:
        sums = []
        for i in range(0, len(level) - 1, 2):
            (a, pa), (b, pb) = level[i], level[i + 1]
            low = min(pa, pb)
            total = (a << (pa - low)) + (b << (pb - low))
            wire = Signal(total.shape(), name=f"{name}_s{depth}_{i // 2}", attrs={"keep": 1})
            m.d.comb += wire.eq(total)
            sums.append((wire, low))
        if len(level) % 2:
            sums.append(level[-1])
        level, depth = sums, depth + 1
    return level[0] if level else (Value.cast(0), 0)


def dot_const(m: Module, xs: list[Value], weights: list[list[int]], name: str,
              stage: Stage | None = None) -> list[Value]:
    """Per row ``o`` of the constant integer matrix ``weights``, ``Σ_k xs[k]·weights[o][k]``,
    exact (signed), in adders only: no ``$mul`` cell, no weight memory. The structure (CSD
    digits, shared two-term sub-expressions, one adder tree per sign) is described in the
    comment above; every adder drives a kept wire named ``<name>_…``. Combinational, or with
    ``stage`` registered where the shared sub-expressions meet the rows' trees (each value a
    row reads, once)."""
    rows = [[(k, position, digit) for k, w in enumerate(row) for position, digit
             in csd_digits(int(w))] for row in weights]
    shared, rows = _common_pairs(rows, len(xs))
    var = {k: Value.cast(x) for k, x in enumerate(xs)}
    for t, a, b, d, s in shared:
        total = var[a] + (var[b] << d) if s > 0 else var[a] - (var[b] << d)
        wire = Signal(total.shape(), name=f"{name}_t{t}", attrs={"keep": 1})
        m.d.comb += wire.eq(total)
        var[t] = wire
    if stage:
        used = sorted({v for row in rows for v, _, _ in row})
        var = {v: stage(var[v]) for v in used}
    out = []
    for o, row in enumerate(rows):
        plus, p_shift = _shifted_sum(m, [(var[v], p) for v, p, sign in row if sign > 0],
                                     f"{name}_{o}p")
        minus, m_shift = _shifted_sum(m, [(var[v], p) for v, p, sign in row if sign < 0],
                                      f"{name}_{o}n")
        out.append((plus << p_shift) - (minus << m_shift))
    return out
