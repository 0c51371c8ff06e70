# amaranth: UnusedElaboratable=no
"""hwgen.resources against Yosys itself: single memories of shapes on both sides of each
placement decision, and whole board tops (digits_bnn in the default run, every reference
design in the slow set), counted by Yosys' own memory mapping."""

import json
from pathlib import Path

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.back import rtlil
from amaranth.lib.memory import Memory

import hwgen
from hwgen.resources import (
    MemoryUse,
    Placement,
    board_top,
    estimate,
    estimate_logic,
    format_resources,
    map_memory,
)
from hwgen.rtl.memory import COLLISION_FREE
from hwgen.toolchain.boards import board
from hwgen.toolchain.synth import COLLISION_FREE_SCRIPT, board_plan
from hwgen.toolchain.tools import run_tool, tool_env

DESIGNS = Path(__file__).resolve().parents[1] / "designs"
#: Yosys cells → placements, per family.
CELLS = {"ice40": {"SB_RAM40_4K": "bram", "SB_SPRAM256KA": "spram", "SB_MAC16": "dsp"},
         "ecp5": {"DP16KD": "bram", "PDPW16KD": "bram", "TRELLIS_DPR16X4": "lutram",
                  "MULT18X18D": "dsp"}}


class OneMemory(Elaboratable):
    """One memory of ``width`` × ``depth``: a ROM (random contents) or a RAM with one write
    port, read synchronously or not (``sync_read``)."""

    def __init__(self, mem: MemoryUse):
        self.mem = mem
        self.addr = Signal(range(mem.depth))
        self.data = Signal(mem.width)
        self.w_data = Signal(mem.width)
        self.w_en = Signal()

    def elaborate(self, platform):
        m = Module()
        mem = self.mem
        init = [(k * 2654435761) % (1 << mem.width) for k in range(mem.depth)] if mem.rom \
            else []
        m.submodules.mem = store = Memory(shape=mem.width, depth=mem.depth, init=init,
                                          attrs=COLLISION_FREE if not mem.rom and mem.sync_read
                                          else None)
        read = store.read_port(domain="sync" if mem.sync_read else "comb")
        m.d.comb += [read.addr.eq(self.addr), self.data.eq(read.data)]
        if not mem.rom:
            write = store.write_port()
            m.d.comb += [write.addr.eq(self.addr + 1), write.data.eq(self.w_data),
                         write.en.eq(self.w_en)]
        return m


def yosys_cells(il: str, family: str, work: Path) -> dict[str, int]:
    """Yosys' placements of a design (RTLIL text) after ``synth_<family>``'s memory mapping."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "top.il").write_text(il)
    synth = "synth_ice40 -dsp" if family == "ice40" else "synth_ecp5"
    (work / "run.ys").write_text(f"read_rtlil top.il\n{COLLISION_FREE_SCRIPT}\n"
                                 f"{synth} -top top -run :map_ffram\n"
                                 "tee -q -o stat.json stat -json\n")
    run_tool("YOSYS", ["-q", "run.ys"], cwd=work, log=work / "yosys.log",
             env=tool_env(["YOSYS"]))
    cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    counts = {"bram": 0, "spram": 0, "dsp": 0, "lutram": 0}
    for cell, key in CELLS[family].items():
        counts[key] += int(cells.get(cell, 0))
    return counts


# (family, width, depth, rom, sync read): each decision's two sides as Yosys 0.70 takes them
MEMORIES = [
    ("ice40", 16, 4, False, True),     # 64 bits: logic (64) against one block (66)
    ("ice40", 16, 8, False, True),     # 128 bits: one block
    ("ice40", 64, 16, True, True),     # a ROM of 1,024 bits: logic (64) against 4 blocks
    ("ice40", 16, 200, True, True),    # a ROM of 3,200 bits: one block (66 < 200)
    ("ice40", 20, 300, False, True),   # two blocks deep, two wide: 4 units, a read mux
    ("ice40", 8, 2, False, False),     # an asynchronous read: logic, whatever its size
    ("ecp5", 8, 168, False, True),     # 11 distributed RAMs deep: the block RAM wins
    ("ecp5", 32, 32, False, True),     # 16 distributed RAM cells
    ("ecp5", 44, 2, False, False),     # a FIFO's asynchronous read: distributed RAM
    ("ecp5", 120, 16, True, True),     # a threshold ROM: logic (120) against 4 blocks
    ("ecp5", 64, 256, True, True),     # two 36-bit-wide block RAMs
    ("ecp5", 36, 512, False, True),    # one PDPW16KD
]


@pytest.mark.parametrize("family,width,depth,rom,sync_read", MEMORIES)
def test_a_memory_is_placed_as_yosys_places_it(tmp_path, family, width, depth, rom,
                                               sync_read):
    mem = MemoryUse("mem", width, depth, rom, sync_read)
    top = OneMemory(mem)
    il = rtlil.convert(top, name="top", ports=[top.addr, top.data, top.w_data, top.w_en])
    yosys = yosys_cells(il, family, tmp_path)
    placed = map_memory(mem, family)
    expected = (Placement("bram", yosys["bram"]) if yosys["bram"] else
                Placement("lutram", yosys["lutram"]) if yosys["lutram"] else
                Placement("logic", width * depth))
    assert placed == expected


@pytest.mark.parametrize("name", ["digits_bnn", pytest.param("mnist_mixed",
                                                             marks=pytest.mark.slow),
                                  pytest.param("cnv_w1a1", marks=pytest.mark.slow),
                                  pytest.param("face32_bnn", marks=pytest.mark.slow),
                                  pytest.param("mnist_cnn", marks=pytest.mark.slow)])
@pytest.mark.parametrize("board_name", ["icebreaker", "ulx3s-85f"])
def test_a_board_top_takes_what_yosys_maps(tmp_path, name, board_name):
    """Every block RAM, SPRAM, DSP and distributed RAM cell of the board top ``hwgen build``
    synthesizes, predicted before synthesis = counted by Yosys."""
    network = hwgen.load(DESIGNS / f"{name}.toml")
    info = board(board_name)
    net_plan = board_plan(network, info)
    use = estimate(network, info, net_plan)
    il = info.platform().prepare(board_top(network, info, net_plan), name="top").files["top.il"]
    yosys = yosys_cells(il, info.family, tmp_path)
    keys = ["bram", "spram", "dsp"] + (["lutram"] if info.family == "ecp5" else [])
    assert {k: use.total[k] for k in keys} == {k: yosys[k] for k in keys}


def test_the_report_charges_layers_and_says_whether_it_fits():
    network = hwgen.load(DESIGNS / "digits_bnn.toml")
    info = board("icebreaker")
    use = estimate(network, info, board_plan(network, info))
    assert list(use.rows) == ["fc1", "fc2", "fc3", "argmax", "board core"]
    assert use.rows["fc3"]["bram"] == 9 and use.over() == []
    text = format_resources(use, "icebreaker", info.device)
    assert "18 / 30" in text and text.endswith("fits: block RAMs, SPRAMs and DSPs within the "
                                               "device")
    logic, error = estimate_logic(network, board_plan(network, info), use)
    assert logic["lcs"] > 0 and logic["ffs"] > 0 and error is not None and error[0] <= error[1]
    line = format_resources(use, "icebreaker", info.device, logic, 5280, error).splitlines()[-1]
    assert line.startswith(f"logic: about {logic['lcs']:,.0f} LCs and ")
    cnv = hwgen.load(DESIGNS / "cnv_w1a1.toml")
    over = estimate(cnv, info, board_plan(cnv, info))
    assert over.over() == ["bram"]
    assert format_resources(over, "icebreaker", info.device).endswith(
        f"does not fit: {over.total['bram']:,} block RAMs of 30")


def test_layer_shares_add_up_to_the_estimate():
    from hwgen.resources import BOARD_CORE, layer_shares

    network = hwgen.load(DESIGNS / "digits_bnn.toml")
    info = board("ulx3s-85f")
    net_plan = board_plan(network, info)
    use = estimate(network, info, net_plan)
    shares = layer_shares(network, net_plan, use)
    assert list(shares) == [lp.name for lp in net_plan.layers] + [BOARD_CORE]
    logic, _ = estimate_logic(network, net_plan, use)
    assert sum(s["logic"] for s in shares.values()) == pytest.approx(logic["lut4"])
    assert sum(s["ffs"] for s in shares.values()) == pytest.approx(logic["ffs"])
    for key in ("bram", "spram", "dsp"):
        assert sum(s[key] for s in shares.values()) == use.total[key]


@pytest.mark.parametrize("design, board_name", [("mnist_mixed", "ulx3s-85f"),
                                                ("digits_bnn", "icebreaker")])
def test_roms_built_empty_for_pricing_price_as_filled(design, board_name):
    """Pricing builds every ROM empty and records its varying columns; the memories found
    are those of the same design with its ROMs filled word by word (multi-bit thresholds,
    banked weights on ECP5, logic ROMs)."""
    from hwgen.resources import _memories_of

    network = hwgen.load(DESIGNS / f"{design}.toml")
    info = board(board_name)
    top = board_top(network, info, board_plan(network, info))
    priced = _memories_of(top, info.platform())
    filled = _memories_of(board_top(network, info, board_plan(network, info)),
                          info.platform(), fill_roms=True)
    assert priced == filled
    assert sum(m.rom for m in priced[0]) >= 3


def test_a_rom_is_priced_by_the_columns_that_vary():
    """Hand-worked: words 1010, 1000, 1110 and a fourth of 0 vary in bits 3, 2 and 1; bit 0
    is always 0. Priced empty or filled, the ROM is 3 bits wide."""
    from amaranth import Module, Signal

    from hwgen.resources import _memories_of
    from hwgen.rtl.memory import rom

    class OneRom(Elaboratable):
        def __init__(self):
            self.addr, self.data = Signal(2), Signal(4)

        def elaborate(self, platform):
            m = Module()
            m.submodules.table = table = rom(4, 4, [0b1010, 0b1000, 0b1110])
            port = table.read_port()
            m.d.comb += [port.addr.eq(self.addr), self.data.eq(port.data)]
            return m

    for fill in (False, True):
        found, _ = _memories_of(OneRom(), None, fill_roms=fill)
        assert [(m.where, m.width, m.depth, m.rom) for m in found] == [("table", 3, 4, True)]
