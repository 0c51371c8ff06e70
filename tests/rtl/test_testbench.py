"""The stream test harness itself: a unit that sends too few or too many beats fails the run
instead of hanging or passing."""

import pytest
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.testbench import run_stream


class Repeater(wiring.Component):
    """Passes 8-bit beats through, sending each ``copies`` times (0: swallows every beat)."""

    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(8))

    def __init__(self, copies: int):
        self.copies = copies
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        held, full = Signal(8), Signal()
        left = Signal(range(max(self.copies, 1) + 1))
        m.d.comb += [self.i_stream.ready.eq(~full), self.o_stream.valid.eq(full),
                     self.o_stream.payload.eq(held)]
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += held.eq(self.i_stream.payload)
            if self.copies:
                m.d.sync += [full.eq(1), left.eq(self.copies)]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += left.eq(left - 1)
            with m.If(left == 1):
                m.d.sync += full.eq(0)
        return m


def test_a_faithful_unit_passes():
    run = run_stream(Repeater(1), [1, 2, 3], 3, gaps=0.3, backpressure=0.3)
    assert run.outputs == [1, 2, 3]


def test_too_few_beats_fail_within_the_stall_limit():
    with pytest.raises(AssertionError, match=r"no beat moved for 500 cycles: 3 of 3 input "
                                             r"beats taken, 0 of 3 output beats sent"):
        run_stream(Repeater(0), [1, 2, 3], 3, stall_limit=500)


def test_extra_beats_fail():
    with pytest.raises(AssertionError, match=r"1 beat\(s\) after the 5 expected: \[3\]"):
        run_stream(Repeater(2), [1, 2, 3], 5)
