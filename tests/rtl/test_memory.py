# amaranth: UnusedElaboratable=no
"""Block-RAM read styles: the banks a weight memory is split into on ECP5, which platforms
register reads, and that the memories marked collision-free never read the address they
write in the same cycle."""

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.hdl import Fragment
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwgen.rtl.memory import (
    COLLISION_FREE,
    COLLISION_FREE_ATTR,
    DP16KD,
    BlockRam,
    bank_depth,
    block_ram,
)
from hwgen.rtl.testbench import run_stream
from hwgen.toolchain.boards import board
from tests.helpers import chain
from tests.rtl.test_network import CONV_NETWORKS, bit_exact_and_cycle_exact


@pytest.mark.parametrize("width,depth,expected", [
    # cnv_w1a1's conv5: 512×36 needs 2·9 = 18 DP16KDs, 1K×18 4·5 = 20, 8K×2 32
    (64, 4608, 512),
    # conv6: 512×36, 1K×18 and 2K×9 all need 36; the deepest wins the tie
    (32, 18432, 2048),
    # cnv_w1a1's fc2: 2K×9 … 16K×1 all need 16; two banks of 16K×1
    (8, 32768, 16384),
    # 4K×4 holds it in one block RAM: one bank
    (4, 4096, 4096),
    # narrow and deep: 16K×1 per bit, two banks
    (1, 20000, 16384),
    # shallow: one bank of its own depth
    (100, 300, 300),
])
def test_bank_depth_follows_the_fewest_dp16kds(width, depth, expected):
    assert bank_depth(DP16KD, width, depth) == expected


def test_bank_depth_refuses_an_empty_memory():
    with pytest.raises(ValueError, match="0 × 8"):
        bank_depth(DP16KD, 0, 8)


def test_only_ecp5_registers_reads():
    assert block_ram(board("ulx3s-85f").platform()) is DP16KD
    assert block_ram(board("icebreaker").platform()) is None and block_ram(None) is None
    tiny = BlockRam("tiny", ((4, 8),))
    assert block_ram(type("P", (), {"hwgen_block_ram": tiny})()) is tiny


def collision_free_memories(fragment) -> list[Memory]:
    """The memories marked :data:`COLLISION_FREE` in an elaborated design."""
    found, todo = [], [fragment]
    while todo:
        frag = todo.pop()
        found += [o for o in (getattr(frag, "origins", None) or ())
                  if isinstance(o, Memory) and o.attrs.get(COLLISION_FREE_ATTR)]
        todo += [sub for sub, *_ in frag.subfragments]
    return found


def no_collisions(counted: list[int]):
    """A check for :func:`run_stream`: every cycle, no collision-free memory both writes and
    reads (read enable high) one address; the memories found are added to ``counted``."""
    def check(fragment):
        memories = collision_free_memories(fragment)
        counted.append(len(memories))

        async def watch(ctx):
            signals = []
            for memory in memories:
                (w,), (r,) = memory.write_ports, memory.read_ports  # one of each
                signals += [w.en, w.addr, r.en, r.addr]
            async for _, _, *values in ctx.tick().sample(*signals):
                for k in range(0, len(values), 4):
                    w_en, w_addr, r_en, r_addr = values[k:k + 4]
                    assert not (w_en and r_en and w_addr == r_addr), \
                        f"memory {k // 4} reads address {r_addr} as it writes it"
        return [watch]
    return check


# cnn's 1×1 convolution is pointwise: no line buffer of its own
@pytest.mark.parametrize("name,memories", [("cnn", 5), ("late", 5), ("leftover", 4)])
def test_the_collision_free_memories_never_read_what_they_write(name, memories):
    """Window line buffers (padded reads included) and input double buffers of conv, pool and
    depthwise layers under input gaps and output backpressure, frames back to back."""
    inp, layers, argmax = CONV_NETWORKS[name]
    net, x = chain(np.random.default_rng(17), inp, [dict(d) for d in layers], count=4,
                   argmax=argmax)
    counted = []
    bit_exact_and_cycle_exact(net, x, stalls=[(0.5, 0.0), (0.0, 0.6), (0.5, 0.5)],
                              checks=[no_collisions(counted)])
    assert counted == [memories] * 4


class Colliding(wiring.Component):
    """A collision-free-marked memory written and read at one address every cycle."""

    i_stream: In(stream.Signature(4))
    o_stream: Out(stream.Signature(4))

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=4, depth=4, init=[], attrs=COLLISION_FREE)
        w, r = mem.write_port(), mem.read_port()
        valid = Signal()
        m.d.comb += [w.data.eq(self.i_stream.payload), w.en.eq(self.i_stream.valid),
                     self.i_stream.ready.eq(1), self.o_stream.payload.eq(r.data),
                     self.o_stream.valid.eq(valid)]
        m.d.sync += valid.eq(self.i_stream.valid)
        return m


def test_the_collision_check_sees_a_collision():
    with pytest.raises(AssertionError, match="reads address 0 as it writes it"):
        run_stream(Colliding(), [1, 2, 3], 3, checks=[no_collisions([])])


def test_a_rom_for_pricing_is_empty_and_records_its_varying_columns():
    from hwgen.rtl.memory import rom, roms_for_pricing, varying_bits

    words = [0b1010, 0b1000, 0b1110]
    assert varying_bits(words, 4, 3) == 2  # bits 2 and 1 change, bit 3 is always 1
    assert varying_bits(words, 4, 4) == 3  # a fourth word of 0: bit 3 changes too
    assert varying_bits([-1, 7], 4, 2) == 1  # two's complement, masked to the width
    filled = rom(4, 4, words)
    assert list(filled.data.init) == words + [0]
    with roms_for_pricing() as priced:
        empty = rom(4, 4, words)
    assert list(empty.data.init) == [0] * 4 and priced == {id(empty.data): (empty.data, 3)}
    again = rom(4, 4, words)
    assert list(again.data.init) == words + [0]  # outside: filled again
    for memory in (filled, empty, again):  # used: no UnusedElaboratable warning later
        Fragment.get(memory, None)
