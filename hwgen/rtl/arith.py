"""Adder trees and popcount, built level by level (never a deep Python expression)."""

from __future__ import annotations

from amaranth import Value

__all__ = ["sum_tree", "popcount"]


def sum_tree(terms: list[Value]) -> Value:
    """Sum of ``terms`` as a balanced tree of two-input adders (exact: widths grow per level).

    Adjacent terms are paired, so the tree's structure follows lane order; an empty list sums
    to 0.
    """
    level = [Value.cast(t) for t in terms]
    if not level:
        return Value.cast(0)
    while len(level) > 1:
        pairs = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            pairs.append(level[-1])
        level = pairs
    return level[0]


def popcount(bits: Value) -> Value:
    """Number of set bits of ``bits`` (unsigned, exact width)."""
    bits = Value.cast(bits)
    return sum_tree([bits[i] for i in range(len(bits))])
