"""Model builders: topology, width multipliers, folding, given weights, synthetic ranges."""

import numpy as np
import pytest

from hwgen import golden
from hwgen.builders import POOL, bnn_cnn, requantized_cnn, shufflenet_v2
from hwgen.spec import Conv2d, Dense, MaxPool


def test_the_issue_example_pools_after_every_conv_and_widens_the_first_layer():
    net = bnn_cnn(input=(32, 32, 3), channels=[64, 64, 128], first_width=2,
                  classifier_bits=16)
    kinds = [(layer.kind, getattr(layer, "out_features", None)) for layer in net.layers]
    assert kinds == [("conv2d", 128), ("maxpool", None), ("conv2d", 64), ("maxpool", None),
                     ("conv2d", 128), ("maxpool", None), ("flatten", None), ("dense", 10),
                     ("argmax", None)]
    assert net.types[-2].shape == (10,) and net.layers[-2].weight_bits == 16
    assert net.types[1].shape == (32, 32, 128)  # same padding keeps the size
    assert net.layers[0].pad_value == 0 and net.layers[2].pad_value == -1


def test_explicit_pools_valid_padding_hidden_dense_and_width():
    net = bnn_cnn((12, 12, 1), [8, 8, POOL, 16], dense=[32], classes=4, padding="valid",
                  width=0.5, input_bits=4, argmax=False)
    convs = [layer for layer in net.layers if isinstance(layer, Conv2d)]
    assert [c.out_features for c in convs] == [8, 4, 8]
    assert sum(isinstance(layer, MaxPool) for layer in net.layers) == 1
    fc = [layer for layer in net.layers if isinstance(layer, Dense)]
    assert [d.out_features for d in fc] == [16, 4]
    assert net.output_type.shape == (4,)
    assert net.input.bits == 4


def test_folding_and_given_weights_are_used():
    w = np.ones((4, 3, 3, 1), int)
    t = np.zeros((4, 1), int)
    net = bnn_cnn((6, 6, 1), [4], classes=2, folding={"conv1": (2, 1)},
                  weights={"conv1": {"weights": w, "thresholds": t}})
    conv = net.layers[0]
    assert (conv.pe, conv.simd) == (2, 1)
    assert np.array_equal(conv.weights, w) and np.array_equal(conv.thresholds, t)


def test_synthetic_activations_vary_and_seed_is_reproducible():
    a = bnn_cnn((8, 8, 3), [8, 8], classes=3, seed=4)
    b = bnn_cnn((8, 8, 3), [8, 8], classes=3, seed=4)
    assert all(np.array_equal(x.weights, y.weights) for x, y in zip(a.layers, b.layers,
                                                                     strict=True)
               if hasattr(x, "weights"))
    x = np.random.default_rng(0).integers(0, 256, size=(16, 8, 8, 3))
    out = golden.run(a, x)
    for name in ("conv1", "conv2"):
        assert 0.2 < (out[name] > 0).mean() < 0.8


def test_requantized_cnn_spans_its_activations():
    net = requantized_cnn((12, 12, 3), [8, POOL, 8, 4], [16, 1, 4], name="rq")
    assert [layer.kind for layer in net.layers] == ["conv2d", "maxpool", "conv2d", "conv2d"]
    assert [layer.weight_bits for layer in net.layers if layer.kind == "conv2d"] == [16, 1, 4]
    assert net.output_type.shape == (6, 6, 4) and net.output_type.bits == 8
    x = np.random.default_rng(1).integers(0, 256, size=(4, 12, 12, 3))
    outputs = golden.run(net, x)
    for name in ("conv1", "conv2", "conv3"):  # neither all clamped at 0 nor at 255
        y = outputs[name]
        assert 0.05 < np.mean(y > 0) and np.mean(y == 255) < 0.5 and len(np.unique(y)) > 20


def test_requantized_cnn_needs_one_width_per_convolution():
    with pytest.raises(ValueError, match="2 convolutions, 3 weight widths"):
        requantized_cnn((8, 8, 1), [4, POOL, 4], [8, 8, 8])


def _small_shufflenet(**kwargs):
    return shufflenet_v2((16, 16, 3), (8, 16, 32), (2, 2), last=24, classes=3, name="sn",
                         **kwargs)


def test_shufflenet_v2_units_shapes_and_bits_by_pattern():
    net = _small_shufflenet(weight_bits={"s2*_dw*": 8, "s2*": 4, "*": 6},
                            act_bits={"*_dw*": 6, "*": 4}, input_bits=5, first_stride=1)
    kinds = [layer.kind for layer in net.layers]
    unit1 = ["depthwise_conv2d", "conv2d", "conv2d", "depthwise_conv2d", "conv2d", "concat",
             "channel_shuffle"]
    unit2 = ["channel_split", "conv2d", "depthwise_conv2d", "conv2d", "concat",
             "channel_shuffle"]
    assert kinds == ["conv2d", "maxpool", *unit1, *unit2, *unit1, *unit2, "conv2d",
                     "global_sum_pool", "dense", "argmax"]
    shapes = {layer.name: t.shape for layer, t in zip(net.layers, net.types[1:], strict=True)}
    assert shapes["conv1"] == (16, 16, 8) and shapes["pool1"] == (8, 8, 8)
    assert shapes["s1u1_shuffle"] == (4, 4, 16) and shapes["s2u2_shuffle"] == (2, 2, 32)
    assert shapes["conv5"] == (2, 2, 24) and net.output_type.shape == (1,)
    bits = {layer.name: layer.weight_bits for layer in net.layers if hasattr(layer, "weights")}
    assert bits["s2u1_dwl"] == bits["s2u2_dw"] == 8 and bits["s2u2_pw1"] == 4
    assert bits["conv1"] == bits["s1u2_pw2"] == bits["conv5"] == 6 and bits["fc"] == 8
    types = dict(zip([layer.name for layer in net.layers], net.types[1:], strict=True))
    assert (types["s1u2_dw"].bits, types["s1u2_dw"].signed) == (6, True)  # no ReLU
    assert (types["s1u2_pw2"].bits, types["s1u2_pw2"].signed) == (4, False)  # ReLU
    assert net.layers[0].stride == 1 and net.input.bits == 5
    split = net.layers[9]
    assert split.name == "s1u2_split" and net.layers[10].inputs == ("s1u2_split.1",)
    assert net.layers[13].inputs == ("s1u2_split.0", "s1u2_pw2")


def test_shufflenet_v2_synthetic_activations_vary():
    net = _small_shufflenet(seed=3)
    x = np.random.default_rng(2).integers(0, 256, size=(8, 16, 16, 3))
    outputs = golden.run(net, x)
    for layer in net.layers:
        if layer.kind in ("conv2d", "depthwise_conv2d"):
            y = outputs[layer.name]
            lo, hi = (-128, 127) if layer.kind == "depthwise_conv2d" else (0, 255)
            assert len(np.unique(y)) > 10, layer.name
            assert np.mean(y == lo) < 0.7 and np.mean(y == hi) < 0.2, layer.name


def test_shufflenet_v2_refuses_mismatched_stages_and_unmatched_patterns():
    with pytest.raises(ValueError, match="2 stages need 3 channel counts, got 2"):
        shufflenet_v2((16, 16, 3), (8, 16), (2, 2))
    with pytest.raises(ValueError, match="no weight_bits pattern matches layer 'conv1'"):
        _small_shufflenet(weight_bits={"s*": 8})


def test_shufflenet_v2_depthwise_layers_take_every_way_the_fold_offers():
    """A depthwise layer has no SIMD: the fold's ways for it name none."""
    import dataclasses

    net = _small_shufflenet()
    index = next(i for i, layer in enumerate(net.layers) if layer.kind == "depthwise_conv2d")
    layer = net.layers[index]
    ways = layer.fold_options(net.input_types(index), dsps=True, spram=False)
    assert ways and all("simd" not in way for way in ways)
    assert {dataclasses.replace(layer, **way).pe for way in ways} == {1, 2, 4, 8}
