"""The cocotb bench through ``hwgen_sim.runner``: bit-exact under stalls, cycles as modelled,
and a deliberately broken design is caught and located."""

import shutil

import numpy as np
import pytest

import hwgen_sim.runner as runner
from hwgen.spec import Dense, Input, Network
from hwgen_sim.runner import SimError, simulate
from tests.helpers import chain, residual_block, shufflenet_unit

pytestmark = pytest.mark.cocotb


def _mlp(seed: int = 3, count: int = 12):
    """Every layer kind of the binary MLP: 8-bit input × binary weights, binary × binary with
    a 2-bit multi-threshold output, a 16-bit-weight classifier with bias, argmax."""
    rng = np.random.default_rng(seed)
    return chain(rng, Input((24,), 8, lanes=4), [
        dict(out=16, weight_bits=1, out_bits=1, pe=4, simd=6),
        dict(out=10, weight_bits=1, out_bits=2, pe=5, simd=8),
        dict(out=6, weight_bits=16, out_bits=None, pe=3, simd=2, bias=True)],
        count=count, argmax=True)


def test_mlp_bit_exact_with_stalls_and_cycles_as_modelled(tmp_path):
    net, x = _mlp()
    result = simulate(net, x, tmp_path, seed=5, gaps=0.3, backpressure=0.4)
    assert result.mismatches == []
    assert not result.timed_out
    assert result.cycles_per_inference == result.model_cycles_per_inference
    assert result.latency_cycles == result.model_latency_cycles
    assert result.ok
    assert result.stress_cycles > len(x) * result.model_cycles_per_inference


def test_conv_network_bit_exact_in_cocotb(tmp_path):
    """conv2d (8-bit × binary, same padding, 5×7 image, 3 channels), maxpool, a stride-2
    binary conv, flatten, dense, classifier and argmax, every beat of every layer checked."""
    rng = np.random.default_rng(11)
    net, x = chain(rng, Input((5, 7, 3), 8, lanes=3), [
        dict(kind="conv2d", out=6, kernel=3, padding="same", weight_bits=1, out_bits=1, pe=3,
             simd=3),
        dict(kind="maxpool", size=2, stride=1),
        dict(kind="conv2d", out=5, kernel=3, stride=2, weight_bits=1, out_bits=1, pe=1,
             simd=2, padding="same", pad_value=1),
        dict(kind="flatten"),
        dict(out=8, weight_bits=1, out_bits=1, pe=4, simd=5),
        dict(out=3, weight_bits=16, out_bits=None, pe=3, simd=8, bias=True)],
        count=6, argmax=True)
    result = simulate(net, x, tmp_path, seed=7, gaps=0.3, backpressure=0.4)
    assert result.mismatches == []
    assert result.cycles_per_inference == result.model_cycles_per_inference
    assert result.model_latency_cycles is None and result.latency_cycles > 0
    assert result.ok


def test_separable_block_bit_exact_in_cocotb(tmp_path):
    """A MobileNet-style separable block in its quantization-friendly form: depthwise 3×3 on
    DSPs requantized to s8 with nothing in between, pointwise 1×1 conv2d, global sum pooling,
    the classifier and argmax; every beat of every layer, cycles per inference as modelled."""
    rng = np.random.default_rng(13)
    net, x = chain(rng, Input((6, 6, 4), 8, lanes=2), [
        dict(kind="depthwise_conv2d", kernel=3, padding="same", weight_bits=8, out_bits="s8",
             pe=2, bias=True, mac="dsp"),
        dict(kind="conv2d", out=8, kernel=1, weight_bits=4, out_bits=2, pe=4, simd=4),
        dict(kind="global_sum_pool"),
        dict(out=5, weight_bits=16, out_bits=None, pe=1, simd=8, bias=True)],
        count=6, argmax=True)
    result = simulate(net, x, tmp_path, seed=9, gaps=0.3, backpressure=0.4)
    assert result.mismatches == []
    assert result.cycles_per_inference == result.model_cycles_per_inference
    assert result.ok


@pytest.mark.parametrize("long_fast", [False, True])
def test_residual_network_bit_exact_in_cocotb(tmp_path, long_fast):
    """A residual block (fork, branch FIFOs, add with thresholds), global sum pooling, the
    classifier and argmax: every beat of every layer, cycles per inference as modelled."""
    net, x = residual_block(long_fast)
    result = simulate(net, x, tmp_path, seed=3, gaps=0.3, backpressure=0.4)
    assert result.mismatches == []
    assert result.cycles_per_inference == result.model_cycles_per_inference
    assert result.ok


@pytest.mark.parametrize("stride", [1, 2])
def test_shufflenet_unit_bit_exact_in_cocotb(tmp_path, stride):
    """A ShuffleNetV2 unit (channel split or a forked input, 1×1 and depthwise convs, concat,
    channel shuffle): every beat of every tensor, both split halves included, under gaps and
    backpressure; cycles per inference as modelled."""
    net, x = shufflenet_unit(stride)
    result = simulate(net, x, tmp_path, seed=4, gaps=0.3, backpressure=0.4)
    assert result.mismatches == []
    assert result.cycles_per_inference == result.model_cycles_per_inference
    assert result.ok


def _small_cnn(count: int):
    rng = np.random.default_rng(5)
    return chain(rng, Input((7, 5, 2), 8, lanes=2), [
        dict(kind="conv2d", out=6, kernel=3, padding="same", weight_bits=1, out_bits=1, pe=3,
             simd=2),
        dict(kind="maxpool", size=2),
        dict(kind="flatten"),
        dict(out=5, weight_bits=16, out_bits=None, pe=1, simd=4, bias=True)],
        count=count, argmax=True)


def test_bulk_verification_checks_every_output_inside_the_design(tmp_path):
    net, x = _small_cnn(40)
    result = runner.verify_bulk(net, x, tmp_path, gaps=0.3, backpressure=0.3, seed=2)
    assert result.ok and result.errors == 0 and result.inferences == 40
    assert result.cycles > 40 * plan_cycles(net)


def test_bulk_verification_locates_a_wrong_weight(tmp_path, monkeypatch):
    net, x = _small_cnn(12)
    real_write = runner.write_verilog
    monkeypatch.setattr(runner, "write_verilog",
                        lambda network, path, net_plan: real_write(_mutated(network, "fc3"), path))
    result = runner.verify_bulk(net, x, tmp_path, seed=1)
    assert not result.ok
    assert result.first_mismatch["layer"] == "fc3"
    assert result.first_mismatch["expected"] != result.first_mismatch["got"]


def test_bulk_verification_in_shards_on_worker_processes(tmp_path):
    net, x = _small_cnn(30)
    result = runner.verify_bulk(net, x, tmp_path, gaps=0.3, backpressure=0.3, seed=2,
                                shards=2, jobs=2)
    assert result.ok and result.shards == 2 and result.inferences == 30
    assert result.cycles > 30 * plan_cycles(net)
    assert {p.name for p in tmp_path.glob("shard-*")} == {"shard-0", "shard-1"}


def test_bulk_shards_number_a_mismatch_by_its_inference_in_the_whole_set(tmp_path,
                                                                         monkeypatch):
    net, x = _small_cnn(12)
    real_write = runner.write_verilog

    def wrong_in_the_second_shard(network, path, net_plan):
        real_write(_mutated(network, "fc3") if "shard-1" in str(path) else network, path)

    monkeypatch.setattr(runner, "write_verilog", wrong_in_the_second_shard)
    # jobs=1: the shards run one after the other in this process (the patch applies)
    result = runner.verify_bulk(net, x, tmp_path, seed=1, shards=2, jobs=1)
    assert not result.ok and result.shards == 2
    bad = result.first_mismatch
    assert bad["layer"] == "fc3" and 6 <= bad["frame"] < 12
    assert bad["shard"] == str(tmp_path / "shard-1")


def test_bulk_shards_need_enough_inputs_each():
    assert runner.bulk_shards(10_000, 2) == 2
    assert runner.bulk_shards(10_000, 8) == 10_000 // runner.BULK_SHARD_MIN
    assert runner.bulk_shards(1_000, 4) == 1


def plan_cycles(net: Network) -> int:
    from hwgen.plan import plan

    return plan(net).cycles_per_inference


def _mutated(net: Network, layer_name: str) -> Network:
    """``net`` with the first weight of ``layer_name`` negated (binary) or moved by one."""
    layers = []
    for layer in net.layers:
        if layer.name == layer_name:
            w = layer.weights.copy()
            w[0, 0] = -w[0, 0] if layer.weight_bits == 1 else w[0, 0] + (1 if w[0, 0] < 0
                                                                           else -1)
            layer = Dense(layer.name, w, layer.weight_bits, thresholds=layer.thresholds,
                          bias=layer.bias, pe=layer.pe, simd=layer.simd)
        layers.append(layer)
    return Network(net.name, net.input, layers)


def test_a_wrong_weight_is_reported_with_layer_element_expected_and_got(tmp_path, monkeypatch):
    net, x = _mlp(count=8)
    real_write = runner.write_verilog
    monkeypatch.setattr(runner, "write_verilog",
                        lambda network, path, net_plan: real_write(_mutated(network, "fc1"), path))
    result = simulate(net, x, tmp_path, seed=1)
    assert not result.ok
    bad = result.first_mismatch
    assert bad["layer"] == "fc1"
    assert bad["index"] == 0  # the mutated row feeds output element 0
    assert bad["expected"] != bad["got"]


def test_a_silent_tap_fails_the_every_beat_bench(tmp_path, monkeypatch):
    """A tap that never fires (its fire signal tied to the reset, low after it) must fail the
    bench, not pass for want of beats to compare."""
    import json

    net, x = _mlp(count=3)
    real_write_case = runner.write_case

    def silence_fc1(network, net_plan, stim, case, **kw):
        real_write_case(network, net_plan, stim, case, **kw)
        doc = json.loads(case.read_text())
        [tap] = [t for t in doc["taps"] if t["name"] == "fc1"]
        tap["fire"] = "rst"
        case.write_text(json.dumps(doc))

    monkeypatch.setattr(runner, "write_case", silence_fc1)
    result = simulate(net, x, tmp_path, seed=1)
    assert not result.ok
    assert result.first_mismatch == {"layer": "fc1", "frame": "all", "index": "beat count",
                                     "expected": len(x) * plan_stream_beats(net, "fc1"),
                                     "got": 0}


def test_bulk_verification_checks_every_stream_beat_count(tmp_path, monkeypatch):
    """The score stream must deliver exactly its beats: here the harness expects one frame
    more of scores than the design makes, and the run fails naming the stream."""
    net, x = _small_cnn(6)
    real_harness = runner._bulk_harness

    def one_frame_more(streams, *args, **kw):
        streams[0] = dict(streams[0], beats=streams[0]["beats"] + streams[0]["frame_beats"])
        return real_harness(streams, *args, **kw)

    monkeypatch.setattr(runner, "_bulk_harness", one_frame_more)
    result = runner.verify_bulk(net, x, tmp_path, seed=1)
    assert not result.ok
    scores = net.layers[-2].name
    frame_beats = plan_stream_beats(net, scores)
    assert result.first_mismatch == {"layer": scores, "frame": "all", "index": "beat count",
                                     "expected": 7 * frame_beats, "got": 6 * frame_beats}


def plan_stream_beats(net: Network, name: str) -> int:
    from hwgen.plan import plan

    [lp] = [lp for lp in plan(net).layers if lp.name == name]
    return lp.out_type.size // lp.out_lanes


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")
def test_icarus_agrees(tmp_path):
    net, x = _mlp(count=4)
    assert simulate(net, x, tmp_path, simulator="icarus", seed=2).ok


def test_unknown_simulator_is_refused(tmp_path):
    net, x = _mlp(count=2)
    with pytest.raises(SimError, match="unknown simulator 'xsim'"):
        simulate(net, x, tmp_path, simulator="xsim")


def test_reference_design_whole_test_split_matches_golden(tmp_path):
    """The shipped digits_bnn: every one of the 450 test images, every layer, bit-exact."""
    from pathlib import Path

    from hwgen import golden, spec

    net = spec.load(Path(__file__).parents[2] / "designs" / "digits_bnn.toml")
    with np.load(net.dataset) as data:
        x, y = data["x"], data["y"]
    result = simulate(net, x, tmp_path, seed=11)
    # ok: the argmax beat of every frame (and every beat of every layer) equalled the
    # golden model's, so the RTL's accuracy is the golden model's.
    assert result.ok, result.first_mismatch
    assert result.frames == len(x) == 450
    assert np.mean(golden.predict(net, x) == y) > 0.9


def _spram_cnn(count: int):
    from tests.rtl.test_weights import SPRAM_NETWORKS

    inp, layers, _ = SPRAM_NETWORKS["cnn"]
    return chain(np.random.default_rng(5), inp, [dict(d) for d in layers], count=count,
                 argmax=True)


def test_spram_weights_are_loaded_before_the_every_beat_bench(tmp_path):
    net, x = _spram_cnn(4)
    result = simulate(net, x, tmp_path, seed=4, gaps=0.3, backpressure=0.3)
    assert result.mismatches == [] and result.ok
    assert result.cycles_per_inference == result.model_cycles_per_inference


def test_spram_weights_are_loaded_by_the_bulk_harness(tmp_path):
    net, x = _spram_cnn(20)
    result = runner.verify_bulk(net, x, tmp_path, gaps=0.2, backpressure=0.2, seed=3)
    assert result.ok and result.errors == 0


def test_rows_no_later_layer_reads_still_drain(tmp_path):
    """A 2×2 maxpool on a 7-row conv output drops the conv's last row: the network's last
    class leaves before the conv has sent that row. The bench waits for every tap's beats
    (and every input beat) before it counts them, and the next phase starts on a frame
    boundary."""
    rng = np.random.default_rng(0)
    net, x = chain(rng, Input((7, 6, 3), 8, lanes=3), [
        dict(kind="conv2d", out=6, kernel=3, padding="same", weight_bits=1, out_bits=1, pe=1,
             simd=3),
        dict(kind="maxpool", size=2),
        dict(kind="flatten"),
        dict(out=4, weight_bits=8, out_bits=None, pe=1, simd=2)], count=12, argmax=True)
    result = simulate(net, x, tmp_path, seed=3, gaps=0.3, backpressure=0.4)
    assert result.mismatches == [] and result.ok
    assert result.cycles_per_inference == result.model_cycles_per_inference
