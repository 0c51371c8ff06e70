"""QONNX import: small graphs built with onnx.helper, each checked against QONNX's own executor
(every layer's integer outputs, the scores and the classes), one in RTL; the layout, rounding
and refusal cases."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.custom_op.general.quant import quant as qonnx_quant

import hwgen
from hwgen.importers.qonnx import InputFormat, import_onnx, verify
from hwgen.spec import SpecError

QONNX = "qonnx.custom_op.general"


class Graph:
    """A QONNX graph under construction: nodes, constants, one input ``x``."""

    def __init__(self, shape: tuple[int, ...], dims=None):
        self.shape, self.dims = shape, dims
        self.nodes, self.inits, self.k = [], [], 0

    def name(self, stem: str) -> str:
        self.k += 1
        return f"{stem}{self.k}"

    def const(self, value, dtype=np.float32) -> str:
        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, *inputs: str, domain: str = "", outputs: int = 1,
             name: str | None = None, **attrs):
        name = name or self.name(op.lower())
        outs = [f"{name}_out{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=name, domain=domain,
                                           **attrs))
        return outs[0] if outputs == 1 else outs

    def quant(self, x: str, scale, bits: int, signed: bool = True, narrow: bool = False,
              mode: str = "ROUND", zero=0.0, name: str | None = None) -> str:
        return self.node("Quant", x, self.const(scale), self.const(zero), self.const(bits),
                         domain=QONNX, signed=int(signed), narrow=int(narrow),
                         rounding_mode=mode, name=name)

    def bipolar(self, x: str, scale=1.0, name: str | None = None) -> str:
        return self.node("BipolarQuant", x, self.const(scale), domain=QONNX, name=name)

    def binary_matmul(self, x: str, rng, n_in: int, n_out: int, scale=1.0,
                      name: str | None = None) -> str:
        w = self.bipolar(self.const(rng.standard_normal((n_in, n_out))), scale)
        return self.node("MatMul", x, w, name=name)

    def batchnorm(self, x: str, rng, n: int, negative: bool = True) -> str:
        gamma = rng.uniform(0.2, 2.0, n) * (np.where(rng.random(n) < 0.3, -1, 1) if negative
                                             else 1)
        return self.node("BatchNormalization", x, self.const(gamma),
                         self.const(rng.standard_normal(n) * 3),
                         self.const(rng.standard_normal(n) * 4),
                         self.const(rng.uniform(0.5, 20, n)))

    def save(self, path, out: str, out_shape, opset: int = 13, out_type=TensorProto.FLOAT,
             qonnx_opset: int = 1):
        dims = self.dims or [1, *self.shape]
        graph = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
            [helper.make_tensor_value_info(out, out_type, out_shape)], initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                        helper.make_opsetid(QONNX,
                                                                            qonnx_opset)])
        onnx.save(model, path)
        return path


def fc_thresholds(imported):
    return imported.network.layers[0].thresholds


def random_inputs(network, rng, count: int) -> np.ndarray:
    t = network.input_type
    if t.binary:
        return rng.choice([-1, 1], size=(count, *t.shape))
    lo, hi = t.range
    return rng.integers(lo, hi + 1, size=(count, *t.shape))


def binary_mlp(path, seed: int = 0, sizes=(23, 13, 7, 5)):
    """u8 input → binary layers with BatchNorm (some negative scales) → scores through a
    scalar scale and bias (Brevitas' TensorNorm)."""
    rng = np.random.default_rng(seed)
    g = Graph((sizes[0],))
    x = g.quant("x", 1 / 255, 8, signed=False, name="inq")
    for k, (a, b) in enumerate(zip(sizes[:-2], sizes[1:-1], strict=True)):
        x = g.binary_matmul(x, rng, a, b, name=f"fc{k}")
        x = g.bipolar(g.batchnorm(x, rng, b), name=f"act{k}")
    x = g.binary_matmul(x, rng, sizes[-2], sizes[-1], name="classifier")
    x = g.node("Add", g.node("Mul", x, g.const(0.37)), g.const(-1.5))
    return g.save(path, x, [1, sizes[-1]])


def multibit_mlp(path, seed: int = 1):
    """4-bit weights with per-channel scales through a Gemm with a bias, Relu and a 3-bit
    unsigned quantizer; 3-bit weights, per-channel Mul/Add and a signed narrow 2-bit
    quantizer (3 levels: a threshold is padded); binary weights into a MultiThreshold with
    out_scale and out_bias; a 16-bit classifier; ArgMax."""
    rng = np.random.default_rng(seed)
    g = Graph((19,))
    x = g.quant("x", 0.05, 6, signed=True, name="inq")
    w = rng.standard_normal((11, 19))  # Gemm transB: (out, in)
    w = g.quant(g.const(w), rng.uniform(0.05, 0.3, (11, 1)), 4)
    x = g.node("Gemm", x, w, g.const(rng.standard_normal(11)), transB=1, alpha=0.8,
               name="gemm")
    x = g.quant(g.node("Relu", x), 0.37, 3, signed=False, name="act_relu")
    w = g.quant(g.const(rng.standard_normal((11, 9))), 0.25, 3)
    x = g.node("MatMul", x, w, name="mm3")
    x = g.node("Add", g.node("Mul", x, g.const(rng.uniform(-1, 1, (1, 9)))),
               g.const(rng.standard_normal((1, 9))))
    x = g.quant(x, 0.6, 2, signed=True, narrow=True, name="act_ternary")
    x = g.node("MatMul", x, g.bipolar(g.const(rng.standard_normal((9, 8))), 0.5), name="mmb")
    t = np.sort(rng.uniform(-3, 3, (8, 3)), axis=1)
    x = g.node("MultiThreshold", x, g.const(t), domain=QONNX, out_scale=2.0, out_bias=-4.0,
               name="mt")
    w = g.quant(g.const(rng.standard_normal((8, 6))), 2.0 ** -10, 16)
    x = g.node("ArgMax", g.node("MatMul", x, w, name="classifier"), axis=1, keepdims=1)
    return g.save(path, x, [1, 1], out_type=TensorProto.INT64)


def conv_net(path, seed: int = 0, size=(13, 11)):
    """u8 image (3 × 13 × 11): a "same" binary conv, 2×2 maxpool, a depthwise conv into a
    1-bit unsigned quantizer ({0, 0.5}: its 0 is the value −1, so the next conv may pad), a
    4-bit narrow conv with Relu into a 2-bit quantizer, global average pool, an 8-bit
    classifier."""
    rng = np.random.default_rng(seed)
    g = Graph((3, *size))
    x = g.quant("x", 1 / 255, 8, signed=False, name="inq")
    x = g.node("Conv", x, g.bipolar(g.const(rng.standard_normal((6, 3, 3, 3)))),
               name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = g.bipolar(g.batchnorm(x, rng, 6), name="a1")
    x = g.node("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2], name="pool1")
    x = g.node("Conv", x, g.bipolar(g.const(rng.standard_normal((6, 1, 3, 3)))), name="dw",
               kernel_shape=[3, 3], group=6)
    x = g.quant(g.batchnorm(x, rng, 6), 0.5, 1, signed=False, name="a2")
    w = g.quant(g.const(rng.standard_normal((5, 6, 3, 3))), 0.2, 4, narrow=True)
    x = g.node("Conv", x, w, g.const(rng.standard_normal(5)), name="conv3",
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = g.quant(g.node("Relu", g.batchnorm(x, rng, 5, negative=False)), 0.3, 2,
                signed=False, name="a3")
    x = g.node("Flatten", g.node("GlobalAveragePool", x, name="gap"), axis=1)
    w = g.quant(g.const(rng.standard_normal((5, 4))), 0.01, 8)
    return g.save(path, g.node("MatMul", x, w, name="classifier"), [1, 4])


def test_binary_mlp_matches_qonnx_executor(tmp_path):
    imported = import_onnx(binary_mlp(tmp_path / "m.onnx"))
    kinds = [layer.kind for layer in imported.network.layers]
    assert kinds == ["dense", "dense", "dense", "argmax"]
    assert imported.input_scale == pytest.approx(1 / 255)
    x = random_inputs(imported.network, np.random.default_rng(2), 300)
    result = verify(imported, x)
    assert result.inputs == 300 and result.exact, result
    assert set(result.mismatches) == {"fc0", "fc1", "scores"}


def test_multibit_mlp_matches_qonnx_executor(tmp_path):
    imported = import_onnx(multibit_mlp(tmp_path / "m.onnx"))
    net = imported.network
    # mm3's 3-bit weights take −4, and a channel with a negative scale negates its row
    assert [(layer.name, layer.weight_bits) for layer in net.layers[:-1]] == [
        ("gemm", 4), ("mm3", 4), ("mmb", 1), ("classifier", 16)]
    assert "mm3: 4-bit weights: a negated row holds 2**2" in imported.notes
    assert [net.type_of(layer.name).bits for layer in net.layers[:3]] == [3, 2, 2]
    assert imported.class_output is not None  # the graph's own ArgMax
    result = verify(imported, random_inputs(net, np.random.default_rng(3), 300))
    assert result.exact, result


def test_round_half_to_even_at_every_tie(tmp_path):
    """7 binary inputs × ±0.5 weights: every pre-activation is a half-integer, so every
    input meets a rounding tie; all 128 inputs agree with the executor, and the thresholds
    are those QONNX's own quant function gives over every accumulator value."""
    rng = np.random.default_rng(4)
    g = Graph((7,))
    x = g.bipolar("x", name="inb")
    x = g.binary_matmul(x, rng, 7, 4, scale=0.5, name="fc")
    x = g.quant(x, 1.0, 3, signed=False, name="act")
    x = g.binary_matmul(x, rng, 4, 3, name="classifier")
    imported = import_onnx(g.save(tmp_path / "m.onnx", x, [1, 3]))
    acc = np.arange(-7, 8)  # the accumulator's range; z = acc / 2 in every channel
    codes = qonnx_quant(acc * 0.5, np.float32(1), np.float32(0), np.float32(3), signed=False,
                        narrow=False, rounding_mode="ROUND")
    expected = [int(acc[np.argmax(codes >= k)]) if (codes >= k).any() else 8
                for k in range(1, 8)]
    # round(0.5) = 0, round(1.5) = 2, round(2.5) = 2, round(3) = 3; half up: [1, 3, 5]
    assert expected[:3] == [2, 3, 6]
    assert fc_thresholds(imported).tolist() == [expected] * 4
    everything = np.array([[1 if (i >> b) & 1 else -1 for b in range(7)] for i in range(128)])
    assert verify(imported, everything).exact


def test_flatten_permutes_channels_first_to_channels_last(tmp_path):
    """A (1, 3, 5, 7) image flattened into a dense layer: hwgen's input is (5, 7, 3) and the
    weights' columns follow; without the permutation the executor disagrees."""
    rng = np.random.default_rng(5)
    g = Graph((3, 5, 7))
    x = g.quant("x", 1 / 15, 4, signed=False, name="inq")
    x = g.node("Flatten", x, axis=1)
    x = g.bipolar(g.batchnorm(g.binary_matmul(x, rng, 105, 6, name="fc"), rng, 6), name="a")
    x = g.binary_matmul(x, rng, 6, 4, name="classifier")
    imported = import_onnx(g.save(tmp_path / "m.onnx", x, [1, 4]))
    net = imported.network
    assert net.input_type.shape == (5, 7, 3)
    assert [layer.kind for layer in net.layers] == ["flatten", "dense", "dense", "argmax"]
    x = random_inputs(net, rng, 200)
    assert verify(imported, x).exact
    fc = net.layers[1]
    unpermuted = dataclasses.replace(
        fc, weights=fc.weights.reshape(6, 5, 7, 3).transpose(0, 3, 1, 2).reshape(6, -1))
    wrong = dataclasses.replace(net, layers=[net.layers[0], unpermuted, *net.layers[2:]])
    assert not verify(dataclasses.replace(imported, network=wrong), x).exact


def test_conv_network_matches_qonnx_executor(tmp_path):
    """Conv (group 1 and group C, "same" and no padding, a bias), MaxPool and
    GlobalAveragePool: every layer's integers equal the executor's, channels last."""
    imported = import_onnx(conv_net(tmp_path / "m.onnx"))
    net = imported.network
    assert [(layer.kind, layer.name) for layer in net.layers] == [
        ("conv2d", "conv1"), ("maxpool", "pool1"), ("depthwise_conv2d", "dw"),
        ("conv2d", "conv3"), ("global_sum_pool", "gap"), ("dense", "classifier"),
        ("argmax", "argmax")]
    conv1, _, dw, conv3 = net.layers[:4]
    assert conv1.padding == "same" and dw.padding == "valid" and conv3.pad_value == -1
    assert net.type_of("pool1").shape == (6, 5, 6)
    result = verify(imported, random_inputs(net, np.random.default_rng(1), 100))
    assert result.exact and set(result.mismatches) == {"conv1", "pool1", "dw", "conv3", "gap",
                                                       "scores"}


def pool_net(path, trunc_version: int = 1, seed: int = 21):
    """AveragePool twice (2×2 stride 2 into QONNX's Trunc, as Brevitas' TruncAvgPool2d
    exports; 3×3 stride 1 into a signed Quant), a conv whose bias keeps its sum off 0 into a
    Sign, a classifier. ``trunc_version``: the QONNX opset of the model (Trunc 1 or 2)."""
    rng = np.random.default_rng(seed)
    g = Graph((2, 11, 9))
    x = g.quant("x", 1 / 3, 2, signed=False)
    w = g.quant(g.const(rng.standard_normal((3, 2, 3, 3))), 0.25, 4, narrow=True)
    x = g.node("Conv", x, w, kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv0")
    x = g.quant(g.node("Relu", g.batchnorm(x, rng, 3, negative=False)), 0.3, 4, signed=False)
    x = g.node("AveragePool", x, kernel_shape=[2, 2], strides=[2, 2], name="avg0")
    if trunc_version == 1:  # the mean's sum on 6 bits, its top 4 kept: floor(sum / 4)
        x = g.node("Trunc", x, g.const(0.3 / 4), g.const(0.0), g.const(6.0), g.const(4.0),
                   domain=QONNX, rounding_mode="FLOOR", name="trunc0")
    else:  # the mean's sum on a 0.3/4 grid, a 0.6 output scale, clamped to 3 signed bits
        x = g.node("Trunc", x, g.const(0.3 / 4), g.const(0.0), g.const(6.0), g.const(0.6),
                   g.const(3.0), domain=QONNX, rounding_mode="ROUND", signed=1, narrow=0,
                   name="trunc0")
    x = g.node("AveragePool", x, kernel_shape=[3, 3], strides=[1, 1], name="avg1")
    # no sum of avg1 falls on a tie of act1 (float32 and exact rounding would differ there)
    x = g.quant(g.node("Add", x, g.const(-0.4137)), 0.21, 3, signed=True, name="act1")
    w = g.quant(g.const(rng.standard_normal((4, 3, 2, 2))), 0.5, 3, narrow=True)
    x = g.node("Conv", x, w, g.const(np.full(4, 0.05)), kernel_shape=[2, 2], name="conv2")
    x = g.node("Flatten", g.node("Sign", x, name="sign2"), axis=1)
    return g.save(path, g.binary_matmul(x, rng, 4 * 2 * 1, 3, name="classifier"), [1, 3],
                  qonnx_opset=trunc_version)


@pytest.mark.parametrize("trunc_version", [1, 2])
def test_average_pool_trunc_and_sign_match_qonnx_executor(tmp_path, trunc_version):
    imported = import_onnx(pool_net(tmp_path / "m.onnx", trunc_version))
    net = imported.network
    assert [(layer.kind, layer.name) for layer in net.layers] == [
        ("conv2d", "conv0"), ("depthwise_conv2d", "avg0"), ("depthwise_conv2d", "avg1"),
        ("conv2d", "conv2"), ("flatten", "conv2_flatten"), ("dense", "classifier"),
        ("argmax", "argmax")]
    avg0, avg1 = net.layers[1], net.layers[2]
    assert avg0.kind == avg1.kind == "depthwise_conv2d"
    assert np.all(avg0.weights == 1) and avg0.stride == 2 and avg1.weights.shape == (3, 3, 3)
    assert net.type_of("avg0").shape == (5, 4, 3) and net.type_of("avg1").shape == (3, 2, 3)
    result = verify(imported, random_inputs(net, np.random.default_rng(22), 300))
    assert result.exact and {"avg0", "avg1", "conv2"} <= set(result.mismatches)


def pool_first_net(path, seed: int = 31):
    """PyTorch's conv → MaxPool → BatchNorm → Relu → quantizer order, with negative weight
    scales before the pool (rows negated) and a rising BatchNorm after it; a binary conv →
    MaxPool → BipolarQuant; a classifier."""
    rng = np.random.default_rng(seed)
    g = Graph((3, 10, 10))
    x = g.quant("x", 1 / 15, 4, signed=False)
    w = g.quant(g.const(rng.standard_normal((4, 3, 3, 3))), 0.3, 3, narrow=True)
    x = g.node("Conv", x, w, kernel_shape=[3, 3], name="conv0")
    x = g.node("Mul", x, g.const([[[[1.0]], [[-0.5]], [[2.0]], [[-1.0]]]]))
    x = g.node("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2], name="pool0")
    x = g.quant(g.node("Relu", g.batchnorm(x, rng, 4, negative=False)), 0.4, 3,
                signed=False, name="act0")
    x = g.node("Conv", x, g.bipolar(g.const(rng.standard_normal((5, 4, 2, 2)))),
               kernel_shape=[2, 2], name="conv1")
    x = g.node("MaxPool", x, kernel_shape=[3, 3], strides=[1, 1], name="pool1")
    x = g.node("Flatten", g.bipolar(g.node("Add", x, g.const(0.5)), name="act1"), axis=1)
    return g.save(path, g.binary_matmul(x, rng, 5 * 1 * 1, 3, name="classifier"), [1, 3])


def test_max_pool_before_the_quantizer(tmp_path):
    imported = import_onnx(pool_first_net(tmp_path / "m.onnx"))
    net = imported.network
    assert [(layer.kind, layer.name) for layer in net.layers[:4]] == [
        ("conv2d", "conv0"), ("maxpool", "pool0"), ("conv2d", "conv1"), ("maxpool", "pool1")]
    assert net.type_of("pool0").shape == (4, 4, 4) and net.type_of("pool1").shape == (1, 1, 5)
    result = verify(imported, random_inputs(net, np.random.default_rng(32), 300))
    assert result.exact and {"pool0", "pool1", "scores"} <= set(result.mismatches)


def strided_net(path, seed: int = 12):
    """PyTorch's usual stride-2 convolutions: pads 1 on an even image (the bottom and right
    pad rows are never read), asymmetric pads, and ONNX's SAME_LOWER."""
    rng = np.random.default_rng(seed)
    g = Graph((2, 8, 6))
    x = g.quant("x", 1 / 7, 3, signed=False)
    for k, attrs in enumerate([dict(strides=[2, 2], pads=[1, 1, 1, 1]),
                               dict(pads=[0, 2, 1, 0]), dict(auto_pad="SAME_LOWER")]):
        x = g.node("Conv", x, g.quant(g.const(rng.standard_normal((3, 2 if k == 0 else 3, 3,
                                                                   3))), 0.5, 3, narrow=True),
                   kernel_shape=[3, 3], name=f"conv{k}", **attrs)
        x = g.quant(g.node("Relu", g.batchnorm(x, rng, 3, negative=False)), 0.5, 2,
                    signed=False)
    x = g.node("Flatten", g.node("GlobalAveragePool", x), axis=1)
    return g.save(path, g.binary_matmul(x, rng, 3, 3, name="classifier"), [1, 3])


def test_explicit_pads_and_same_lower(tmp_path):
    imported = import_onnx(strided_net(tmp_path / "m.onnx"))
    convs = imported.network.layers[:3]
    assert [c.padding for c in convs] == [(1, 1, 1, 1), (0, 2, 1, 0), (1, 1, 1, 1)]
    assert imported.network.type_of("conv0").shape == (4, 3, 3)
    assert verify(imported, random_inputs(imported.network, np.random.default_rng(13),
                                          150)).exact


def test_residual_add_of_two_quantized_activations(tmp_path):
    """x → conv → bipolar (a); a → conv → bipolar (b); Add(a, b) → 2-bit quantizer: hwgen's
    add layer with thresholds."""
    rng = np.random.default_rng(11)
    g = Graph((4, 5, 5))
    a = g.node("Conv", g.quant("x", 0.25, 3, signed=True),
               g.bipolar(g.const(rng.standard_normal((4, 4, 3, 3)))), kernel_shape=[3, 3],
               pads=[1, 1, 1, 1], name="conv_a")
    a = g.bipolar(g.batchnorm(a, rng, 4), name="act_a")
    b = g.node("Conv", a, g.bipolar(g.const(rng.standard_normal((4, 4, 1, 1)))),
               kernel_shape=[1, 1], name="conv_b")
    b = g.bipolar(g.batchnorm(b, rng, 4), name="act_b")
    s = g.quant(g.node("Add", a, b, name="res"), 1.0, 2, signed=True, name="act_s")
    x = g.node("Flatten", s, axis=1)
    x = g.binary_matmul(x, rng, 100, 3, name="classifier")
    imported = import_onnx(g.save(tmp_path / "m.onnx", x, [1, 3]))
    kinds = [(layer.kind, layer.name) for layer in imported.network.layers]
    assert ("add", "res") in kinds
    assert verify(imported, random_inputs(imported.network, rng, 100)).exact


def shuffle_unit(path, seed: int = 14):
    """ShuffleNetV2's unit as PyTorch exports it: Split into two halves, one branch through a
    1×1 conv and a depthwise conv, Concat, and the channel shuffle as Reshape (N, 2, C/2, H,
    W) → Transpose (0, 2, 1, 3, 4) → Reshape (N, C, H, W)."""
    rng = np.random.default_rng(seed)
    g = Graph((8, 5, 5))
    x = g.node("Conv", g.quant("x", 0.1, 4, signed=True),
               g.bipolar(g.const(rng.standard_normal((8, 8, 1, 1)))), kernel_shape=[1, 1],
               name="stem")
    x = g.bipolar(g.batchnorm(x, rng, 8))
    left, right = g.node("Split", x, g.const([4, 4], np.int64), axis=1, outputs=2,
                         name="split")
    r = g.node("Conv", right, g.bipolar(g.const(rng.standard_normal((4, 4, 1, 1)))),
               kernel_shape=[1, 1], name="pw")
    # ONNX pads with 0: a 1-bit unsigned quantizer's {0, 1} is hwgen's ±1, its 0 the −1
    r = g.quant(g.batchnorm(r, rng, 4), 1.0, 1, signed=False)
    r = g.node("Conv", r, g.bipolar(g.const(rng.standard_normal((4, 1, 3, 3)))),
               kernel_shape=[3, 3], group=4, pads=[1, 1, 1, 1], name="dw")
    r = g.bipolar(g.batchnorm(r, rng, 4))
    x = g.node("Concat", left, r, axis=1, name="concat")
    x = g.node("Reshape", x, g.const([1, 2, 4, 5, 5], np.int64))
    x = g.node("Transpose", x, perm=[0, 2, 1, 3, 4])
    x = g.node("Reshape", x, g.const([1, 8, 5, 5], np.int64), name="shuffle")
    x = g.node("Flatten", x, axis=1)
    return g.save(path, g.binary_matmul(x, rng, 200, 3, name="classifier"), [1, 3])


def test_shufflenet_unit_split_concat_and_shuffle(tmp_path):
    imported = import_onnx(shuffle_unit(tmp_path / "m.onnx"))
    kinds = [layer.kind for layer in imported.network.layers]
    assert kinds[:2] == ["conv2d", "channel_split"]
    assert "concat" in kinds and "channel_shuffle" in kinds
    result = verify(imported, random_inputs(imported.network, np.random.default_rng(15), 120))
    assert result.exact and {"split.0", "split.1", "concat", "shuffle"} <= set(result.mismatches)


@pytest.mark.parametrize("end", ["argmax", "topk"])
def test_argmax_or_topk_ends_the_graph(tmp_path, end):
    rng = np.random.default_rng(6)
    g = Graph((10,))
    x = g.bipolar(g.batchnorm(g.binary_matmul(g.bipolar("x"), rng, 10, 8), rng, 8))
    x = g.binary_matmul(x, rng, 8, 4)
    if end == "argmax":
        out = g.node("ArgMax", x, axis=-1, keepdims=1)
    else:
        out = g.node("TopK", x, g.const([1], np.int64), axis=-1, outputs=2)[1]
    imported = import_onnx(g.save(tmp_path / "m.onnx", out, [1, 1], out_type=TensorProto.INT64))
    assert imported.class_output == out and not imported.notes
    assert verify(imported, random_inputs(imported.network, rng, 100)).exact


def test_input_format_from_options(tmp_path):
    """A float input (no quantizer) needs the format from the user; a model that has one
    refuses a second."""
    rng = np.random.default_rng(7)
    g = Graph((9,))
    x = g.bipolar(g.batchnorm(g.binary_matmul("x", rng, 9, 5), rng, 5))
    path = g.save(tmp_path / "m.onnx", g.binary_matmul(x, rng, 5, 3), [1, 3])
    with pytest.raises(SpecError, match="no Quant or BipolarQuant on the model input"):
        import_onnx(path)
    imported = import_onnx(path, input_format=InputFormat(5, True, 0.25))
    assert imported.network.input_type.describe() == "s5"
    assert verify(imported, random_inputs(imported.network, rng, 100)).exact
    with pytest.raises(SpecError, match="a second quantizer"):
        import_onnx(binary_mlp(tmp_path / "q.onnx"), input_format=InputFormat(8))


def test_hwgen_load_reads_onnx_and_the_test_split_beside_it(tmp_path):
    path = binary_mlp(tmp_path / "mlp.onnx")
    assert hwgen.load(path).dataset is None
    np.savez(tmp_path / "mlp.test.npz", x=np.zeros((2, 23), np.uint8), y=np.zeros(2))
    net = hwgen.load(str(path))
    assert net.name == "mlp" and net.dataset == tmp_path / "mlp.test.npz"


def _refusal(tmp_path, case: str):
    rng = np.random.default_rng(8)
    g = Graph((6,))
    x = g.bipolar("x")
    opset, dims = 13, None
    if case == "zero point":
        x = g.quant(g.binary_matmul(x, rng, 6, 4), 1.0, 2, zero=1.0)
    elif case == "unsupported op":
        x = g.bipolar(g.node("Tanh", g.binary_matmul(x, rng, 6, 4)))
    elif case == "float weights":
        x = g.bipolar(g.node("MatMul", x, g.const(rng.standard_normal((6, 4)))))
    elif case == "scale per class":
        x = g.node("Mul", g.binary_matmul(x, rng, 6, 4), g.const([1.0, 2.0, 1.0, 1.0]))
    elif case == "quantized twice":
        x = g.quant(g.bipolar(g.binary_matmul(x, rng, 6, 4)), 1.0, 2)
    elif case == "transA":
        x = g.node("Gemm", x, g.bipolar(g.const(rng.standard_normal((6, 4)))), transA=1)
    elif case in ("group", "dilation", "pads", "binary zero pad", "falling after a pool"):
        g = Graph((4, 5, 5))
        x = g.quant("x", 1.0, 2, signed=False) if case != "binary zero pad" else g.bipolar("x")
        attrs = dict(kernel_shape=[3, 3])
        weights = (4, 4, 3, 3)
        if case == "group":
            attrs["group"], weights = 2, (4, 2, 3, 3)
        elif case == "dilation":
            attrs["dilations"] = [2, 2]
        elif case in ("pads", "binary zero pad"):
            attrs["pads"] = [0, 3, 1, 1] if case == "pads" else [1, 1, 1, 1]
        x = g.node("Conv", x, g.bipolar(g.const(rng.standard_normal(weights))), **attrs)
        if case == "falling after a pool":
            x = g.node("Mul", g.node("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2],
                                     name="pool"), g.const([[[[1.0]], [[-2.0]], [[1.0]],
                                                             [[1.0]]]]))
        x = g.bipolar(x)
        return g.save(tmp_path / "m.onnx", x, [1, 4, 3, 3])
    elif case == "trunc of an activation":
        x = g.node("Trunc", g.quant(g.binary_matmul(x, rng, 6, 4), 1.0, 4), g.const(1.0),
                   g.const(0.0), g.const(4.0), g.const(2.0), domain=QONNX)
    elif case == "sign of zero":
        x = g.node("Sign", g.binary_matmul(x, rng, 6, 4))
    elif case == "average pool pads":
        g = Graph((2, 4, 4))
        x = g.node("AveragePool", g.quant("x", 1.0, 2, signed=False), kernel_shape=[2, 2],
                   pads=[1, 1, 0, 0])
        return g.save(tmp_path / "m.onnx", g.quant(x, 0.5, 2), [1, 2, 4, 4])
    elif case == "opset":
        x, opset = g.binary_matmul(x, rng, 6, 4), 7
    elif case == "dynamic":
        x, dims = g.binary_matmul(x, rng, 6, 4), ["N", 6]
    g.dims = dims
    return g.save(tmp_path / "m.onnx", x, [1, 4], opset=opset)


@pytest.mark.parametrize("case, message", [
    ("zero point", r"node 'quant\d+' \(Quant\): non-zero zero point"),
    ("unsupported op", r"node 'tanh\d+' \(Tanh\): unsupported op; hwgen imports Quant, "),
    ("float weights", r"\(MatMul\): float weights without a Quant/BipolarQuant node"),
    ("scale per class", r"a different scale per class"),
    ("quantized twice", r"\(Quant\): a quantizer on a tensor that is not a layer's "
                        r"accumulation"),
    ("transA", r"\(Gemm\): transA = 1"),
    ("trunc of an activation", r"\(Trunc\): Trunc of a tensor that is not a layer's "
                               r"accumulation"),
    ("sign of zero", r"\(Sign\): channel 0 can be 0 before the Sign"),
    ("average pool pads", r"\(AveragePool\): padding, ceil_mode or dilation"),
    ("opset", r"opset_import: ONNX opset 7; hwgen reads opsets 9\.\.21"),
    ("dynamic", r"is not static"),
    ("group", r"\(Conv\): group 2 with 4 input and 4 output channels; hwgen reads group 1"),
    ("dilation", r"\(Conv\): dilation"),
    ("pads", r"\(Conv\): pads \[0, 3, 1, 1\]: each must be below the kernel size 3"),
    ("binary zero pad", r"\(Conv\): zero padding of an input whose 0 is the value 0, not one "
                        r"of its integers -1\.\.1 \(±1\)"),
    ("falling after a pool", r"\(BipolarQuant\): channel 1 falls \(a negative scale\) "
                             r"between the MaxPool 'pool' and this quantizer"),
])
def test_refusals_name_the_node_and_the_reason(tmp_path, case, message):
    path = _refusal(tmp_path, case)
    with pytest.raises(SpecError, match=message) as info:
        import_onnx(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x01garbage" * 10, "not an ONNX model"),
    (b"", "not an ONNX model"),
])
def test_not_an_onnx_file(tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=message):
        import_onnx(path)
    with pytest.raises(SpecError, match="file not found"):
        import_onnx(tmp_path / "missing.onnx")


@pytest.mark.cocotb
@pytest.mark.parametrize("model", [pytest.param("multibit", marks=pytest.mark.slow), "conv",
                                   pytest.param("flatten", marks=pytest.mark.slow),
                                   pytest.param("strided", marks=pytest.mark.slow),
                                   pytest.param("shuffle", marks=pytest.mark.slow),
                                   pytest.param("pool", marks=pytest.mark.slow)])
def test_imported_network_is_bit_exact_in_rtl(tmp_path, model):
    """QONNX executor = golden (verify) = RTL (cocotb, gaps and backpressure, cycles as
    modelled) on the same inputs."""
    from hwgen_sim.runner import simulate

    if model == "multibit":
        imported = import_onnx(multibit_mlp(tmp_path / "m.onnx"))
    elif model == "conv":
        imported = import_onnx(conv_net(tmp_path / "m.onnx", size=(7, 6)))
    elif model == "strided":
        imported = import_onnx(strided_net(tmp_path / "m.onnx"))
    elif model == "shuffle":
        imported = import_onnx(shuffle_unit(tmp_path / "m.onnx"))
    elif model == "pool":
        imported = import_onnx(pool_net(tmp_path / "m.onnx", trunc_version=2))
    else:
        rng = np.random.default_rng(9)
        g = Graph((2, 3, 5))
        x = g.node("Flatten", g.quant("x", 1 / 3, 2, signed=False), axis=1)
        x = g.bipolar(g.batchnorm(g.binary_matmul(x, rng, 30, 6, name="fc"), rng, 6))
        imported = import_onnx(g.save(tmp_path / "m.onnx", g.binary_matmul(x, rng, 6, 3),
                                      [1, 3]))
    x = random_inputs(imported.network, np.random.default_rng(10), 12)
    assert verify(imported, x).exact
    result = simulate(imported.network, x, tmp_path / "sim", seed=3, gaps=0.3,
                      backpressure=0.4)
    assert result.mismatches == [] and result.ok
    assert result.cycles_per_inference == result.model_cycles_per_inference


@pytest.mark.parametrize("seed", range(6))
def test_float_guided_thresholds_equal_the_exact_search(seed):
    """The import's thresholds come from a float64 guess checked exactly; they must be the
    exact bisection's, also where float rounding misleads the guess (ties at half a step,
    scales of a third, large accumulations)."""
    from fractions import Fraction

    from hwgen.importers import qonnx

    _code, _first_reaching = qonnx._code, qonnx._first_reaching
    _float_thresholds, _is_first_reaching = qonnx._float_thresholds, qonnx._is_first_reaching

    rng = np.random.default_rng(seed)
    a = Fraction(int(rng.integers(1, 50)), int(rng.choice([3, 7, 1024, 3 * 2 ** 20])))
    b = Fraction(int(rng.integers(-10_000, 10_000)), int(rng.choice([2, 3, 1 << 12])))
    post = [("relu",)] if seed % 2 else [("affine", [Fraction(3, 2)], [Fraction(-1, 3)]),
                                         ("clip", -5.0, 1e6)]
    bits = int(rng.integers(2, 9))
    quantizer = ("quant", Fraction(int(rng.integers(1, 9)), 3), 0, (1 << bits) - 1, "ROUND")
    levels, lo, hi = (1 << bits) - 1, -(1 << 22), 1 << 22

    def code(acc: int) -> int:
        return _code(a * acc + b, 0, post, quantizer)

    guesses = _float_thresholds(a, b, 0, post, quantizer, levels, lo, hi)
    start, wrong = lo, 0
    for k in range(1, levels + 1):
        t = int(guesses[k - 1])
        if not _is_first_reaching(code, k, t, start, hi):
            wrong += 1
            t = _first_reaching(code, k, start, hi)
        assert t == _first_reaching(code, k, start, hi)
        start = min(t, hi + 1)
    assert wrong <= levels // 8  # mostly right: the import's speed comes from them
