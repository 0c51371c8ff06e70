"""Mixed-precision networks in cocotb: the RTL, and Yosys' iCE40 gate-level netlist of it
(``simulate(..., netlist="ice40")``), bit-exact against the golden model with gaps and
backpressure."""

import json

import numpy as np
import pytest

from hwgen.plan import plan
from hwgen.spec import Input
from hwgen_sim.runner import simulate
from tests.helpers import chain

pytestmark = pytest.mark.cocotb


def _mixed(count: int = 6):
    """u4 input; W4 on DSPs (2 products per multiplier) requantized to u4; W8 × u4 in LUTs,
    raw; argmax."""
    rng = np.random.default_rng(3)
    return chain(rng, Input((8,), 4, lanes=2), [
        dict(out=4, weight_bits=4, out_bits="u4", pe=4, simd=2, mac="dsp"),
        dict(out=3, weight_bits=8, out_bits=None, pe=1, simd=4, mac="lut")],
        count=count, argmax=True, name="mixed")


def test_ice40_netlist_with_sb_mac16_is_bit_exact(tmp_path):
    """What the UP5K runs: LUTs, carry chains and SB_MAC16 blocks from Yosys' cell models."""
    net, x = _mixed()
    result = simulate(net, x, tmp_path, seed=2, gaps=0.3, backpressure=0.3, netlist="ice40")
    assert result.mismatches == []
    assert result.cycles_per_inference == result.model_cycles_per_inference
    assert result.ok
    cells = json.loads((tmp_path / "netlist_stat.json").read_text())["modules"]
    counts = next(iter(cells.values()))["num_cells_by_type"]
    assert counts["SB_MAC16"] == 8  # 4 packed product multipliers + 4 requantize multipliers


def test_mixed_precision_chain_rtl(tmp_path):
    """s6 input; W2 × s6 in LUTs → s5 requantize; W16 × s5 on DSPs → u8; W3 × u8 raw;
    argmax."""
    rng = np.random.default_rng(9)
    net, x = chain(rng, Input((12,), 6, signed=True, lanes=3), [
        dict(out=6, weight_bits=2, out_bits="s5", pe=3, simd=3, mac="lut", bias=True),
        dict(out=4, weight_bits=16, out_bits="u8", pe=2, simd=2, mac="dsp"),
        dict(out=5, weight_bits=3, out_bits=None, pe=5, simd=4)], count=8, argmax=True)
    result = simulate(net, x, tmp_path, seed=4, gaps=0.3, backpressure=0.4)
    assert result.mismatches == []
    assert result.cycles_per_inference == result.model_cycles_per_inference
    assert result.latency_cycles == result.model_latency_cycles
    assert result.ok


def test_unknown_netlist_is_refused(tmp_path):
    net, x = _mixed(2)
    with pytest.raises(ValueError, match="netlist: expected None or 'ice40', got 'ecp5'"):
        simulate(net, x, tmp_path, netlist="ecp5")


def test_every_weight_width_in_one_chain_rtl(tmp_path):
    """W16 × u2 (LUT) → u2 thresholds; W2 × u2 (DSP, packed 4 per multiplier) → s8
    requantize; W8 × s8 (LUT) → binary; W4 × binary (add/sub) → u2; W1 × u2 (add/sub) → raw;
    argmax. All-max and all-min inputs come first."""
    rng = np.random.default_rng(12)
    net, x = chain(rng, Input((8,), 2, lanes=4), [
        dict(out=8, weight_bits=16, out_bits=2, pe=2, simd=4, mac="lut"),
        dict(out=8, weight_bits=2, out_bits="s8", pe=4, simd=4, mac="dsp"),
        dict(out=6, weight_bits=8, out_bits=1, pe=3, simd=2, mac="lut"),
        dict(out=4, weight_bits=4, out_bits=2, pe=2, simd=3),
        dict(out=3, weight_bits=1, out_bits=None, pe=3, simd=4)], count=8, argmax=True)
    assert [lp.scheme for lp in plan(net).layers[:5]] == \
        ["W16A2", "W2A2", "W8A8", "W4A1", "W1A2"]
    result = simulate(net, x, tmp_path, seed=6, gaps=0.3, backpressure=0.4)
    assert result.mismatches == []
    assert result.cycles_per_inference == result.model_cycles_per_inference
    assert result.latency_cycles == result.model_latency_cycles
    assert result.ok
