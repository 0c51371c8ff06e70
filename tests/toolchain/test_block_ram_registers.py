# amaranth: UnusedElaboratable=no
"""The ECP5 pass that moves a block-RAM read's register into the block RAM: on netlists Yosys
makes of small memories (``synth``), which registers it takes, which it leaves, and what
nextpnr then times."""

import json
from pathlib import Path

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal, unsigned
from amaranth.back import verilog
from amaranth.lib.memory import Memory

from hwgen.toolchain.block_ram_registers import (
    MAX_FANOUT,
    absorb_output_registers,
    absorb_output_registers_in,
)
from hwgen.toolchain.tools import run_tool, tool_env

pytestmark = pytest.mark.synth


class RomRead(Elaboratable):
    """A ROM of ``depth`` × ``width`` read at ``addr``; its data go into a register written
    while ``en`` is high (``reset_less`` or not), and with ``tap`` also straight to an output."""

    def __init__(self, width: int, depth: int, *, reset_less: bool = True, tap: bool = False,
                 enable: bool = True, fanout: int = 1):
        self.width, self.depth = width, depth
        self.reset_less, self.tap, self.enable = reset_less, tap, enable
        self.addr = Signal(range(depth))
        self.en = Signal()
        self.q = Signal(width)
        self.raw = Signal(width)
        # with ``fanout`` > 1, the register also goes to fanout − 1 XORs with other inputs
        self.keys = [Signal(width, name=f"key{k}") for k in range(fanout - 1)]
        self.mixed = [Signal(width, name=f"mixed{k}") for k in range(fanout - 1)]

    def elaborate(self, platform):
        m = Module()
        rng = np.random.default_rng(self.width * self.depth)
        words = [int(w) for w in rng.integers(0, 1 << self.width, self.depth, dtype=np.uint64)]
        m.submodules.rom = rom = Memory(shape=unsigned(self.width), depth=self.depth, init=words)
        port = rom.read_port()
        held = Signal(self.width, reset_less=self.reset_less)
        m.d.comb += [port.addr.eq(self.addr), self.q.eq(held)]
        if self.enable:
            with m.If(self.en):
                m.d.sync += held.eq(port.data)
        else:
            m.d.sync += held.eq(port.data)
        if self.tap:
            m.d.comb += self.raw.eq(port.data)
        m.d.comb += [mixed.eq(held ^ key) for mixed, key in zip(self.mixed, self.keys,
                                                                  strict=True)]
        return m


def synthesize(design: RomRead, work: Path) -> Path:
    """``design`` through ``synth_ecp5`` into ``work/top.json``."""
    ports = ([design.addr, design.en, design.q] + ([design.raw] if design.tap else [])
             + design.keys + design.mixed)
    (work / "top.v").write_text(verilog.convert(design, name="top", ports=ports))
    run_tool("YOSYS", ["-q", "-p", "read_verilog top.v; synth_ecp5 -top top -json top.json"],
             cwd=work, log=work / "yosys.log", env=tool_env(["YOSYS"]))
    return work / "top.json"


def top_module(path: Path) -> dict:
    return json.loads(path.read_text())["modules"]["top"]


def brams(module: dict) -> list[dict]:
    return [c for c in module["cells"].values() if c["type"] == "DP16KD"]


def read_delays(work: Path) -> list[float]:
    """nextpnr (ECP5 25F, 100 MHz) on ``work/top.json``: the clock-to-output delays of the
    block RAM's read data on its critical paths."""
    run_tool("NEXTPNR_ECP5", ["--25k", "--package", "CABGA381", "--json", "top.json",
                              "--report", "report.json", "--freq", "100"],
             cwd=work, log=work / "nextpnr.log", env=tool_env(["NEXTPNR_ECP5"]))
    report = json.loads((work / "report.json").read_text())
    delays = [step["delay"] for path in report["critical_paths"] for step in path["path"]
              if step["type"] == "clk-to-q" and step["from"]["port"].startswith("DO")]
    assert delays, "no path from the block RAM's read data"
    return delays


def test_a_reset_less_register_with_an_enable_goes_into_the_block_ram(tmp_path):
    path = synthesize(RomRead(16, 512), tmp_path)
    before = top_module(path)
    ffs_before = sum(c["type"] == "TRELLIS_FF" for c in before["cells"].values())
    assert absorb_output_registers_in(path) == 1
    after = top_module(path)
    (bram,) = brams(after)
    ports = [x for x in "AB" if bram["parameters"][f"REGMODE_{x}"] == "OUTREG"]
    assert len(ports) == 1
    x = ports[0]
    # The output register takes the flip-flops' enable and drives what they drove.
    en_bits = after["netnames"]["en"]["bits"]
    assert bram["connections"][f"OCE{x}"] == en_bits
    q_bits = set(after["netnames"]["q"]["bits"])
    driven = {b for pin, (b,) in bram["connections"].items() if pin.startswith(f"DO{x}")}
    assert q_bits <= driven
    ffs_after = sum(c["type"] == "TRELLIS_FF" for c in after["cells"].values())
    assert ffs_before - ffs_after == 16
    # Nothing left to move: a second pass changes nothing.
    assert absorb_output_registers(after) == 0

    assert max(read_delays(tmp_path)) < 2.0  # 5.6 ns without the output register


def test_a_36_bit_read_turns_on_both_halves(tmp_path):
    """512 × 36 maps to the pseudo-dual-port mode: both output registers and both OCE pins."""
    path = synthesize(RomRead(36, 512, enable=False), tmp_path)
    (bram,) = brams(top_module(path))
    assert int(bram["parameters"]["DATA_WIDTH_B"], 2) == 36
    assert absorb_output_registers_in(path) == 1
    (bram,) = brams(top_module(path))
    assert bram["parameters"]["REGMODE_A"] == bram["parameters"]["REGMODE_B"] == "OUTREG"
    conn = bram["connections"]
    assert conn["OCEA"] == conn["OCEB"] == ["1"] and conn["CLKA"] == conn["CLKB"] != ["0"]
    assert max(read_delays(tmp_path)) < 2.0


@pytest.mark.parametrize("design", [
    RomRead(16, 512, reset_less=False),  # a register with a reset stays in the fabric
    RomRead(16, 512, tap=True),          # read data used by logic too
    RomRead(16, 512, fanout=MAX_FANOUT + 1),  # the register feeds many: it stays among them
], ids=["reset", "tapped", "fanout"])
def test_registers_the_block_ram_cannot_take_stay(tmp_path, design):
    path = synthesize(design, tmp_path)
    text = path.read_text()
    assert absorb_output_registers_in(path) == 0
    assert path.read_text() == text  # not rewritten
    (bram,) = brams(top_module(path))
    assert bram["parameters"]["REGMODE_A"] == bram["parameters"]["REGMODE_B"] == "NOREG"
    assert min(read_delays(tmp_path)) > 5.0  # the read data straight from the array


def test_a_netlist_without_a_top_module_is_refused(tmp_path):
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"modules": {"m": {"attributes": {}, "cells": {}}}}))
    with pytest.raises(ValueError, match="no top module"):
        absorb_output_registers_in(path)
