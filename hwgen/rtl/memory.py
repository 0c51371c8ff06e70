"""How the units read block RAM on the family they are built for.

An ECP5 DP16KD gives its read data 5.6 ns after the clock (nextpnr's timing model, speed
grade 6; Yosys infers no output register), more than half of a 100 MHz cycle, so on ECP5
every block-RAM read goes into a fabric register before any logic or LUT mux sees it. The
units keep their latency by addressing those memories one cycle earlier (the addresses are
known then: a group index, a counter's next value). On iCE40 an SB_RAM40_4K is fast enough
and a flip-flop that follows it costs a logic cell each (the UP5K designs are nearly full),
so the reads there stay as they are.

Which family a unit is built for comes from the platform it is elaborated with
(:func:`block_ram`); a platform object with a ``hwgen_block_ram`` attribute names the
:class:`BlockRam` directly (tests simulate the ECP5 read paths that way).

Every ROM is made by :func:`rom`. Pricing a unit (:mod:`hwgen.resources`) needs a ROM's
shape and how many of its bit columns vary, not its words, and filling an Amaranth memory
costs about 16 µs a word: inside :func:`roms_for_pricing` a ROM is built empty and its
varying columns recorded.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["BlockRam", "DP16KD", "block_ram", "bank_depth", "COLLISION_FREE", "COLLISION_FREE_ATTR",
           "rom", "roms_for_pricing", "varying_bits"]

#: While :func:`roms_for_pricing` runs: each ROM built, by the ``id`` of its MemoryData, with
#: that MemoryData (held, so that no other object takes its ``id``) and its varying bit
#: columns.
_PRICED_ROMS: ContextVar[dict[int, tuple[object, int]] | None] = ContextVar(
    "hwgen_priced_roms", default=None)


def varying_bits(words: Sequence[int], width: int, depth: int) -> int:
    """How many of the ``width`` bit columns of a ROM of ``depth`` words holding ``words``
    (the rest 0) are not constant: what Yosys keeps of it."""
    mask = (1 << width) - 1
    first = (words[0] & mask) if len(words) else 0
    varying = functools.reduce(operator.or_, ((int(w) & mask) ^ first for w in words), 0)
    if len(words) < depth:
        varying |= first  # the words after ``words`` are 0
    return bin(varying).count("1")


def rom(width: int, depth: int, words: Sequence[int]):
    """An Amaranth memory of ``depth`` words of ``width`` bits holding ``words`` (the rest
    0), to be read only; inside :func:`roms_for_pricing`, empty, with its
    :func:`varying_bits` recorded."""
    from amaranth import unsigned
    from amaranth.lib.memory import Memory

    priced = _PRICED_ROMS.get()
    if priced is None:
        return Memory(shape=unsigned(width), depth=depth, init=words)
    memory = Memory(shape=unsigned(width), depth=depth, init=[])
    priced[id(memory.data)] = (memory.data, varying_bits(words, width, depth))
    return memory


@contextmanager
def roms_for_pricing() -> Iterator[dict[int, tuple[object, int]]]:
    """While it runs, :func:`rom` builds empty ROMs; yields, by the ``id`` of each one's
    MemoryData, that MemoryData and its varying bit columns."""
    priced: dict[int, tuple[object, int]] = {}
    token = _PRICED_ROMS.set(priced)
    try:
        yield priced
    finally:
        _PRICED_ROMS.reset(token)

#: Attributes of a memory with one write and one read port whose read is never used in a
#: cycle that writes the address it reads (a double buffer read in the other half, a ring of
#: rows read only where they are complete). Synthesis tells Yosys that such a read may give
#: anything then (:data:`hwgen.toolchain.synth.COLLISION_FREE_SCRIPT`), so Yosys adds no
#: logic emulating a read of the old word (a compare of the addresses, a copy of the write
#: data and a mux after the read, on every block RAM of the memory).
COLLISION_FREE_ATTR = "hwgen_collision_free"
COLLISION_FREE = {COLLISION_FREE_ATTR: 1}


@dataclass(frozen=True)
class BlockRam:
    """A family's block RAM whose read data go into a fabric register before any logic.

    Attributes
    ----------
    name : str
        The primitive.
    configs : tuple of (depth, width)
        Its aspect ratios, widest first.
    """

    name: str
    configs: tuple[tuple[int, int], ...]


#: The ECP5's 18-Kbit block RAM.
DP16KD = BlockRam("DP16KD", ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2),
                             (16384, 1)))


def block_ram(platform) -> BlockRam | None:
    """The block RAM whose reads the units register for ``platform``: :data:`DP16KD` on
    ECP5, ``None`` (reads used as they come) elsewhere and without a platform."""
    chosen = getattr(platform, "hwgen_block_ram", None)
    if chosen is not None:
        return chosen
    from amaranth.vendor import LatticeECP5Platform

    return DP16KD if isinstance(platform, LatticeECP5Platform) else None


def bank_depth(ram: BlockRam, width: int, depth: int) -> int:
    """Words per bank of a ``width`` × ``depth`` memory split by address so that no bank is
    deeper than one block RAM: the aspect ratio that needs the fewest block RAMs, the
    deeper one on a tie (fewer banks to mux; Yosys maps a bank as deep as an aspect ratio on
    that ratio, without a mux). ``depth`` itself when one bank holds it."""
    if width < 1 or depth < 1:
        raise ValueError(f"a memory of {width} × {depth} words")
    best = min(ram.configs, key=lambda c: (math.ceil(width / c[1]) * math.ceil(depth / c[0]),
                                           -c[0]))
    return min(best[0], depth)
