"""Post-training quantization of float ONNX models: the inserted quantizers, exactness against
QONNX's executor of the quantized model, and the accuracy it keeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwgen import golden
from hwgen.importers.ptq import float_predictions
from hwgen.importers.qonnx import FloatOptions, import_onnx, input_codes, load_model, verify
from hwgen.spec import SpecError
from tests.importers.test_qonnx import Graph


def float_mlp(path, seed: int = 0, classifier: str = "gemm"):
    """20 → 16 (MatMul + Add, Relu) → 8 (Gemm with bias, Relu) → 4 scores (Gemm with bias,
    or MatMul + Add)."""
    rng = np.random.default_rng(seed)
    g = Graph((20,))
    x = g.node("MatMul", "x", g.const(rng.standard_normal((20, 16))), name="fc1")
    x = g.node("Relu", g.node("Add", x, g.const(rng.standard_normal(16))))
    x = g.node("Relu", g.node("Gemm", x, g.const(rng.standard_normal((8, 16))),
                              g.const(rng.standard_normal(8)), transB=1, name="fc2"))
    w, b = g.const(rng.standard_normal((8, 4))), g.const(rng.standard_normal(4))
    if classifier == "gemm":
        x = g.node("Gemm", x, w, b, name="classifier")
    else:
        x = g.node("Add", g.node("MatMul", x, w, name="classifier"), b)
    return g.save(path, x, [1, 4])


@pytest.mark.parametrize("bits, classifier", [
    (4, "gemm"), pytest.param(1, "matmul_add", marks=pytest.mark.slow),
    pytest.param(8, "gemm", marks=pytest.mark.slow),
    pytest.param(4, "matmul_add", marks=pytest.mark.slow)])
def test_quantized_float_model_is_exact_and_keeps_its_classes(tmp_path, bits, classifier):
    path = float_mlp(tmp_path / "f.onnx", classifier=classifier)
    rng = np.random.default_rng(1)
    calibration = rng.random((200, 20)).astype(np.float32)
    imported = import_onnx(path, float_options=FloatOptions(calibration, weight_bits=bits,
                                                            act_bits=max(bits, 2)))
    net = imported.network
    assert [(layer.name, layer.weight_bits) for layer in net.layers[:3]] == [
        ("fc1", bits), ("fc2", bits), ("classifier", 8)]
    assert net.layers[2].bias is not None  # the float bias, on the scores' grid
    assert any(n.startswith("post-training quantization") for n in imported.notes)
    codes = input_codes(imported, calibration)
    assert verify(imported, codes[:100]).exact
    agree = np.mean(float_predictions(load_model(Path(path), "f"), calibration)
                    == golden.predict(net, codes))
    if bits > 1:  # binarizing an untrained random network keeps little of it
        assert agree >= {4: 0.75, 8: 0.95}[bits]


def test_float_model_needs_bits_and_a_quantized_one_refuses_them(tmp_path):
    path = float_mlp(tmp_path / "f.onnx")
    with pytest.raises(SpecError, match="a float model .* give --bits and --calibration"):
        import_onnx(path)
    from tests.importers.test_qonnx import binary_mlp

    with pytest.raises(SpecError, match="already quantized"):
        import_onnx(binary_mlp(tmp_path / "q.onnx"),
                    float_options=FloatOptions(np.zeros((2, 23), np.float32)))
    with pytest.raises(SpecError, match=r"calibration inputs of shape \(3, 7\)"):
        import_onnx(path, float_options=FloatOptions(np.zeros((3, 7), np.float32)))


@pytest.mark.parametrize("method", [pytest.param("percentile", marks=pytest.mark.slow), "mse"])
def test_activation_calibration_method_is_exact_and_chooses_the_step(tmp_path, method):
    """Each method's import stays exact against QONNX's executor of the quantized model; the
    Relu quantizers carry the step hwgen.quant.calibrate chose for that method on the Relu
    outputs, which the float model's executor gives independently."""
    from hwgen.importers.ptq import quantize_float_model, relu_activations

    path = float_mlp(tmp_path / "f.onnx")
    calibration = np.random.default_rng(1).random((200, 20)).astype(np.float32)
    imported = import_onnx(path, float_options=FloatOptions(
        calibration, weight_bits=4, act_bits=3, act_calibration=method))
    assert any(f"({method} over 200 calibration inputs)" in n for n in imported.notes)
    assert verify(imported, input_codes(imported, calibration)[:50]).exact
    model = load_model(Path(path), "f")
    relus = relu_activations(model, calibration)
    quantized, _ = quantize_float_model(load_model(Path(path), "f"), calibration, source="f",
                                        weight_bits=4, act_bits=3, classifier_bits=8,
                                        input_bits=8, act_calibration=method)
    relu_quants = [n for n in quantized.graph.node if n.name.endswith("_quant")
                   and n.input[0].endswith("_float")]
    assert len(relu_quants) == 2
    for node in relu_quants:
        relu_out = node.output[0]
        step = float(quantized.get_initializer(node.input[1]))
        x = relus[relu_out].astype(np.float64).reshape(-1)
        peak = x.max()
        assert step < peak / 7  # below min/max's
        if method == "percentile":  # NumPy's percentile, on its own
            assert step == pytest.approx(np.percentile(x, 99.99) / 7, rel=1e-6)
        else:  # within the search's spacing of the best step on a fine grid
            def error(s: float, x=x) -> float:
                return float(np.sum((x - s * np.clip(np.rint(x / s), 0, 7)) ** 2))
            best = min(error(s) for s in np.linspace(peak / 7 / 50, peak / 7, 2000))
            assert error(step) <= best * 1.05
