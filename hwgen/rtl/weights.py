"""The SPRAM weight store of the folded units, loaded after configuration (the UP5K's
SB_SPRAM256KA cannot be initialized by the bitstream), and its load ports. What it holds
(weight words, the SPRAM image) is :mod:`hwgen.weight_image`.
"""

from __future__ import annotations

from amaranth import Cat, ClockSignal, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..weight_image import SPRAM_WIDTH, spram_shape
from .stream import check_positive

__all__ = ["LOAD_PORTS", "SpramWeights"]

#: The ports through which a unit with SPRAM weights is loaded, 16 bits per cycle with
#: ``load_valid``; ``load_first`` marks the unit's first halfword (see :class:`SpramWeights`).
LOAD_PORTS = {"load_valid": In(1), "load_first": In(1), "load_data": In(SPRAM_WIDTH)}


class SpramWeights(wiring.Component):
    """A weight ROM's read port backed by SPRAM, written 16 bits at a time after configuration.

    Reads behave like a synchronous :class:`~amaranth.lib.memory.Memory` read port that is
    always enabled: ``r_data`` is the word at the ``r_addr`` of the previous cycle. Loading:
    each cycle with ``load_valid`` writes ``load_data`` into the next 16-bit column (lowest
    column first, then the next word); ``load_first`` marks the store's first halfword and
    restarts at word 0. Reads are meaningless while loading.

    On an iCE40 platform (or with ``primitive=True``) each column of each 16 K-word bank is an
    SB_SPRAM256KA instance; otherwise (simulation) the same behaviour comes from a Memory.

    Parameters
    ----------
    width : int
        Bits per word; a word spans ``ceil(width / 16)`` columns.
    depth : int
        Words stored.
    primitive : bool or None
        ``True``: SB_SPRAM256KA instances, ``False``: a Memory, ``None`` (default): instances
        exactly when elaborated for an iCE40 platform.

    Members
    -------
    r_addr : In(range(depth))
    r_data : Out(width)
    load_valid, load_first : In(1)
    load_data : In(16)
    """

    def __init__(self, width: int, depth: int, *, primitive: bool | None = None):
        check_positive("width", width)
        check_positive("depth", depth)
        if primitive is not None and not isinstance(primitive, bool):
            raise TypeError(f"primitive must be None, True or False, not {primitive!r}")
        self.width, self.depth, self.primitive = width, depth, primitive
        self.columns, self.banks = spram_shape(width, depth)
        super().__init__({"r_addr": In(range(depth)), "r_data": Out(width), **LOAD_PORTS})

    @property
    def halfwords(self) -> int:
        """Halfwords of the load image: columns × depth."""
        return self.columns * self.depth

    def elaborate(self, platform):
        m = Module()
        columns = self.columns
        col = Signal(range(columns))  # where the next halfword goes
        addr = Signal(range(self.depth))
        w_col = Mux(self.load_first, 0, col)
        w_addr = Mux(self.load_first, 0, addr)
        with m.If(self.load_valid):
            last_col = w_col == columns - 1
            m.d.sync += [col.eq(Mux(last_col, 0, w_col + 1)),
                         addr.eq(Mux(last_col, w_addr + 1, w_addr))]

        primitive = self.primitive
        if primitive is None:
            from amaranth.vendor import SiliconBluePlatform  # iCE40

            primitive = isinstance(platform, SiliconBluePlatform)
        wide = Signal(columns * SPRAM_WIDTH)
        m.d.comb += self.r_data.eq(wide[:self.width])
        if not primitive:
            m.submodules.mem = mem = Memory(shape=unsigned(columns * SPRAM_WIDTH),
                                            depth=self.depth, init=[])
            w = mem.write_port(granularity=SPRAM_WIDTH)
            r = mem.read_port()
            m.d.comb += [w.addr.eq(w_addr), r.addr.eq(self.r_addr), wide.eq(r.data),
                         w.data.eq(self.load_data.replicate(columns))]
            for c in range(columns):
                m.d.comb += w.en[c].eq(self.load_valid & (w_col == c))
            return m

        # SB_SPRAM256KA: one port, so the write address wins while loading.
        port_addr = Mux(self.load_valid, w_addr, self.r_addr)
        bank_bits = max(0, (self.depth - 1).bit_length() - 14)
        read_bank = Signal(max(bank_bits, 1))
        if bank_bits:
            m.d.sync += read_bank.eq(self.r_addr[14:])
        bank_data = []
        for b in range(self.banks):
            outs = []
            for c in range(columns):
                out = Signal(SPRAM_WIDTH, name=f"spram_b{b}_c{c}_out")
                selected = (w_addr[14:] == b) if bank_bits else 1
                m.submodules[f"spram_b{b}_c{c}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=port_addr[:14],
                    i_DATAIN=self.load_data,
                    i_MASKWREN=0b1111,
                    i_WREN=self.load_valid & (w_col == c) & selected,
                    i_CHIPSELECT=1,
                    i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0,
                    i_SLEEP=0,
                    i_POWEROFF=1,
                    o_DATAOUT=out,
                )
                outs.append(out)
            bank_data.append(Cat(*outs))
        if bank_bits:
            data = bank_data[0]
            for b in range(1, self.banks):
                data = Mux(read_bank == b, bank_data[b], data)
            m.d.comb += wide.eq(data)
        else:
            m.d.comb += wide.eq(bank_data[0])
        return m
