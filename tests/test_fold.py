# amaranth: UnusedElaboratable=no
"""hwgen.fold: the chosen folding against an exhaustive search over every way of building
every layer, its priced resources against ``hwgen check``'s estimate of the whole folded
design, the folded network in RTL simulation, and its refusals."""

import itertools
import math

import numpy as np
import pytest

import hwgen
from hwgen import golden
from hwgen.fold import DEFAULT_HEADROOM, RESOURCES, FoldError, _input_lanes, _Pricer, fold
from hwgen.plan import plan
from hwgen.resources import BOARD_CORE, estimate, estimate_logic, load_logic_model
from hwgen.spec import Input
from hwgen.toolchain.boards import board
from hwgen.toolchain.synth import board_plan
from tests.helpers import chain


def tiny(seed: int = 3):
    """Binary 16 → 8 → classifier of 4, argmax: 20 × 12 ways, few enough to try them all."""
    rng = np.random.default_rng(seed)
    return chain(rng, Input((16,), 1), [
        dict(out=8, weight_bits=1, out_bits=1, pe=1, simd=1),
        dict(out=4, weight_bits=8, out_bits=None, pe=1, simd=1)],
        count=16, argmax=True, name="tiny")


def exhaustive(network, board_name: str, headroom: float) -> tuple[int, float]:
    """The least cycles per inference over every combination of every layer's ways (all
    priced, no window), each combination's converters and input lanes worked out here from
    the plan rules, and its least largest share of a cap (headroom × the device for logic
    and flip-flops, the device for the rest) at that many cycles."""
    info = board(board_name)
    model = load_logic_model()
    pricer = _Pricer(network, info, model)
    per_layer = []  # a layer without fields (its lanes follow its input's) is priced below
    for index in range(len(network.layers)):
        ways = []
        for fields in pricer.options[index]:
            layer = pricer.layer(index, fields)
            if layer is not None:
                ways.append((fields, layer))
        per_layer.append(ways)
    key = "lut4" if info.family == "ecp5" else "lcs"
    avail = {"logic": info.resources[key], "ffs": info.resources["ffs"],
             "bram": info.resources["bram"], "spram": info.resources.get("spram", 0),
             "dsp": info.resources.get("dsp", 0)}
    caps = {k: v * headroom if k in ("logic", "ffs") else v for k, v in avail.items()}
    base = estimate(network, info, board_plan(network, info))
    from hwgen.resources import logic_features, predict_row
    core = predict_row(logic_features(network, plan(network))[BOARD_CORE], info.family, model)
    fixed = {"logic": core[key], "ffs": core["ffs"],
             **{k: base.rows[BOARD_CORE][k] for k in ("bram", "spram", "dsp")}}
    best = (math.inf, math.inf)
    for chosen in itertools.product(*per_layer):
        combo, upstream = [], network.input.lanes or 1
        for index, (fields, layer) in enumerate(chosen):
            lp = pricer.plan_of(index, layer, upstream)
            combo.append(pricer.price(index, fields, layer, lp))
            upstream = lp.out_lanes
        total = dict(fixed)
        cycles = [w.lp.cycles for w in combo]
        lanes = _input_lanes(network, combo[0])
        cycles.append(network.input_type.size // lanes)
        for i, way in enumerate(combo):
            for k in RESOURCES:
                total[k] += way.use[k]
            upstream = lanes if i == 0 else combo[i - 1].lp.out_lanes
            if upstream != way.lp.in_lanes:
                elements = network.types[i].size
                cycles.append(elements // min(upstream, way.lp.in_lanes))
                for k, v in pricer.converter(elements, network.types[i].bits, upstream,
                                             way.lp.in_lanes).items():
                    total[k] += v
        if any(total[k] > caps[k] for k in RESOURCES):
            continue
        fraction = max(total[k] / caps[k] for k in RESOURCES if caps[k])
        best = min(best, (max(cycles), fraction))
    return best


@pytest.mark.parametrize("headroom", [DEFAULT_HEADROOM, 0.36])
def test_the_fold_is_the_exhaustive_optimum(headroom):
    network, _ = tiny()
    result = fold(network, "icebreaker", headroom=headroom)
    cycles, fraction = exhaustive(network, "icebreaker", headroom)
    assert result.plan.cycles_per_inference == cycles
    caps = {k: v * (headroom if k in ("logic", "ffs") else 1)
            for k, v in result.available.items()}
    used = max(result.use[k] / caps[k] for k in RESOURCES if caps[k])
    assert used == pytest.approx(fraction, rel=1e-6)


def test_a_tight_board_binds_and_says_which_resource():
    network, _ = tiny()
    loose = fold(network, "icebreaker")
    tight = fold(network, "icebreaker", headroom=0.36)
    assert tight.plan.cycles_per_inference > loose.plan.cycles_per_inference
    assert tight.binding == ["logic"]
    assert tight.use["logic"] <= 0.36 * tight.available["logic"]


def test_the_priced_ways_add_up_to_checks_estimate_of_the_folded_design():
    network, _ = tiny()
    result = fold(network, "ulx3s-85f")
    info = board("ulx3s-85f")
    net_plan = board_plan(result.network, info)
    use = estimate(result.network, info, net_plan)
    for k in ("bram", "spram", "dsp"):
        assert sum(row[k] for row in result.rows.values()) + use.rows[BOARD_CORE][k] == \
            use.total[k] == result.use[k]
    logic, _ = estimate_logic(result.network, net_plan, use)
    assert result.use["logic"] == pytest.approx(logic["lut4"])


def test_folding_changes_no_value():
    network, x = tiny()
    result = fold(network, "icebreaker")
    assert [lp.pe for lp in result.plan.layers[:2]] != [1, 1]  # it did fold
    for name, values in golden.run(network, x).items():
        np.testing.assert_array_equal(golden.run(result.network, x)[name], values)


def test_a_frame_rate_takes_the_least_resources_that_meet_it():
    network, _ = tiny()
    fastest = fold(network, "icebreaker")
    clock = board("icebreaker").clk_hz
    slow = fold(network, "icebreaker", fps=clock / 64)
    assert slow.plan.cycles_per_inference <= 64
    assert slow.use["logic"] < fastest.use["logic"]
    with pytest.raises(FoldError, match="cannot run .* inferences/s .* its slowest layer"):
        fold(network, "icebreaker", fps=2 * clock)


def test_nothing_fits_names_the_binding_resource():
    network, _ = tiny()  # the board core alone takes more than 5 % of the UP5K's LCs
    with pytest.raises(FoldError, match=r"^tiny does not fit icebreaker \(iCE40UP5K\) at any "
                       r"folding \(even at 128 cycles per inference, the slowest folding: "
                       r"logic and flip-flops bind\)$"):
        fold(network, "icebreaker", headroom=0.05)
    clock = board("icebreaker").clk_hz
    with pytest.raises(FoldError, match=r"^tiny does not fit icebreaker \(iCE40UP5K\) at "
                       r"6000 inferences/s \(at 2,000 cycles per inference: logic and "
                       r"flip-flops bind\)$"):
        fold(network, "icebreaker", fps=clock / 2000, headroom=0.05)


def test_a_network_without_argmax_is_refused():
    rng = np.random.default_rng(1)
    network, _ = chain(rng, Input((16,), 1), [dict(out=4, weight_bits=1, out_bits=1, pe=1,
                                                    simd=1)],
                       count=2, name="open")
    with pytest.raises(FoldError, match="cannot fold open for icebreaker"):
        fold(network, "icebreaker")


@pytest.mark.cocotb
def test_a_folded_network_is_bit_exact_in_rtl(tmp_path):
    from hwgen_sim.runner import simulate

    rng = np.random.default_rng(5)
    network, x = chain(rng, Input((6, 6, 2), 2), [
        dict(kind="conv2d", out=8, kernel=3, weight_bits=2, out_bits=1, pe=1, simd=1,
             mac="lut"),
        dict(kind="maxpool", size=2), dict(kind="flatten"),
        dict(out=4, weight_bits=8, out_bits=None, pe=1, simd=1)],
        count=6, argmax=True, name="convfold")
    result = fold(network, "ulx3s-85f")
    assert result.plan.cycles_per_inference < plan(network).cycles_per_inference
    sim = simulate(result.network, x, tmp_path)
    assert sim.ok, sim.first_mismatch
    assert sim.cycles_per_inference == result.plan.cycles_per_inference


@pytest.mark.slow
@pytest.mark.parametrize("design", ["digits_bnn.toml", "tfc_w1a1.onnx"])
def test_reference_designs_fold_faster_than_by_hand(design):
    network = hwgen.load(hwgen.__path__[0] + f"/../designs/{design}")
    result = fold(network, "ulx3s-85f")
    assert result.plan.cycles_per_inference < plan(network).cycles_per_inference


def test_keep_folds_only_the_auto_fields():
    import dataclasses

    network, _ = tiny()
    first, second, last = network.layers
    spec = dataclasses.replace(network, layers=[
        dataclasses.replace(first, pe="auto", simd="auto"),
        dataclasses.replace(second, pe=2, simd=2), last])
    result = fold(spec, "icebreaker", keep=True)
    fc0, fc1 = result.plan.layers[:2]
    assert (fc1.pe, fc1.simd) == (2, 2)  # as written
    assert fc0.cycles <= fc1.cycles  # the free layer keeps pace with the fixed one
    assert result.plan.cycles_per_inference == fc1.cycles
    assert result.network.layers[0].pe != "auto" and not result.network.layers[0].leaves_folding()


def test_refold_scale_reads_the_cells_needed_from_the_tools():
    from hwgen.fold import TOO_LARGE_SCALE, refold_scale, refolded_headroom

    synthesized = ("sfc_w1a1 needs at least 76180 logic cells after synthesis; the build "
                   "allows 41820 of the 83,640 LUT4 cells of ulx3s-85f (LFE5U-85F)")
    assert refold_scale(synthesized, 83640) == (41820 / 76180, 76180)
    placed = "ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5470 ICESTORM_LCs"
    assert refold_scale(placed, 5280) == (5280 / 5470, 5470)
    assert refold_scale("ERROR: Unable to place cell 'x', no BELs remaining", 5280) == (
        TOO_LARGE_SCALE, None)
    assert refold_scale("yosys: thrown Wasm exception", 83640) == (TOO_LARGE_SCALE, None)
    assert refold_scale("ERROR: Max frequency 20 MHz below 25 MHz", 5280) is None
    assert refolded_headroom(0.9, 5280 / 5470) == round(0.9 * 0.97 * 5280 / 5470, 3)
    assert refolded_headroom(0.9, 1.0) == 0.855  # at least 5 % smaller


@pytest.mark.synth
def test_a_fold_that_does_not_fit_when_placed_is_folded_again(tmp_path, monkeypatch):
    from hwgen.fold import build_fold
    from hwgen.toolchain.tools import tool_env, tool_path

    # a user's nextpnr (NEXTPNR_ICE40=...) that, the first time, runs out of LCs as the real
    # one does on an under-estimated fold; then the real nextpnr
    real = tool_path("NEXTPNR_ICE40", tool_env(["NEXTPNR_ICE40"]))
    wrapper = tmp_path / "nextpnr-once"
    wrapper.write_text(f"""#!/bin/sh
if [ ! -e {tmp_path}/failed-once ]; then
    touch {tmp_path}/failed-once
    echo "ERROR: Failed to expand region (0, 0) |_> (25, 31) of 6000 ICESTORM_LCs"
    exit 1
fi
exec {real} "$@"
""")
    wrapper.chmod(0o755)
    monkeypatch.setenv("NEXTPNR_ICE40", str(wrapper))
    network, _ = tiny()
    said = []
    result, report = build_fold(network, "icebreaker", tmp_path / "out", clock_mhz="osc",
                                seeds=(1,), log=said.append)
    first = report["refolds"]
    assert len(first) == 1 and first[0]["logic_needed"] == 6000
    assert first[0]["headroom"] == DEFAULT_HEADROOM
    headroom = round(DEFAULT_HEADROOM * 0.97 * 5280 / 6000, 3)
    assert report["fold"]["headroom"] == headroom
    assert result.use["logic"] <= headroom * 5280
    assert report["cycles_per_inference"] == result.plan.cycles_per_inference
    assert any("folding again with headroom" in line for line in said)
