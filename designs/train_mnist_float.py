"""Train a float MLP on MNIST and export it as a float ONNX model: the model ``hwgen
allocate`` quantizes (docs/allocation.md).

Pure NumPy, reproducible from ``--seed``; about a minute on two cores::

    python designs/train_mnist_float.py --mnist ../shared/data/mnist.npz [--epochs 6]

writes ``mnist_float.onnx`` and ``mnist_float.json`` (the command and accuracy), and
``mnist_float.calibration.npy`` / ``mnist_float.calibration_labels.npy``: the last 200
training images as the model takes them (float16 pixels / 255) and their labels, for
``hwgen allocate --calibration`` (the model: MatMul + Add + Relu three times, then a Gemm
classifier; input 1 × 784 pixels scaled to [0, 1]) and prints its test accuracy. Its test
split is mnist_cnn.test.npz's (uint8 images: divide by 255). ``--mnist`` takes any NPZ in
mnist.npz's layout (x_train, y_train, x_test, y_test); nothing is downloaded.

Topology: 784 → 256 → 128 → 64 → 10, ReLU between, softmax cross-entropy, Adam with a
cosine learning rate, He initialization.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

WIDTHS = (784, 256, 128, 64, 10)


def train(x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int, batch: int = 128,
          rate: float = 2e-3) -> list[tuple[np.ndarray, np.ndarray]]:
    """The trained (weight (in, out), bias) pairs, float32."""
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal((a, b)) * np.sqrt(2 / a), np.zeros(b))
              for a, b in zip(WIDTHS[:-1], WIDTHS[1:], strict=True)]
    flat = [p for pair in params for p in pair]
    m = [np.zeros_like(p) for p in flat]
    v = [np.zeros_like(p) for p in flat]
    steps = epochs * (len(x) // batch)
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x) - batch + 1, batch):
            idx = order[start:start + batch]
            acts = [x[idx]]
            for i, (w, b) in enumerate(params):
                z = acts[-1] @ w + b
                acts.append(np.maximum(z, 0) if i < len(params) - 1 else z)
            scores = acts[-1] - acts[-1].max(axis=1, keepdims=True)
            p = np.exp(scores)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(batch), y[idx]] -= 1
            grad = p / batch
            grads = []
            for i in range(len(params) - 1, -1, -1):
                w, _ = params[i]
                grads = [acts[i].T @ grad, grad.sum(axis=0)] + grads
                if i:
                    grad = (grad @ w.T) * (acts[i] > 0)
            t += 1
            lr = rate * 0.5 * (1 + np.cos(np.pi * t / steps))
            for k, g in enumerate(grads):
                m[k] = 0.9 * m[k] + 0.1 * g
                v[k] = 0.999 * v[k] + 0.001 * g * g
                flat[k] -= lr * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v[k] / (1 - 0.999 ** t))
                                                           + 1e-8)
            params = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(params))]
    return [(w.astype(np.float32), b.astype(np.float32)) for w, b in params]


def predict(params, x: np.ndarray) -> np.ndarray:
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = np.maximum(x, 0)
    return np.argmax(x, axis=1)


def export(params, path: Path) -> None:
    """The float ONNX model: MatMul + Add + Relu per hidden layer, a Gemm classifier."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, x = [], [], "x"
    for i, (w, b) in enumerate(params[:-1], start=1):
        inits += [numpy_helper.from_array(w, f"fc{i}_w"), numpy_helper.from_array(b, f"fc{i}_b")]
        nodes += [helper.make_node("MatMul", [x, f"fc{i}_w"], [f"fc{i}_mm"], name=f"fc{i}"),
                  helper.make_node("Add", [f"fc{i}_mm", f"fc{i}_b"], [f"fc{i}_z"]),
                  helper.make_node("Relu", [f"fc{i}_z"], [f"fc{i}_a"], name=f"relu{i}")]
        x = f"fc{i}_a"
    w, b = params[-1]
    inits += [numpy_helper.from_array(np.ascontiguousarray(w.T), "classifier_w"),
              numpy_helper.from_array(b, "classifier_b")]
    nodes.append(helper.make_node("Gemm", [x, "classifier_w", "classifier_b"], ["scores"],
                                  transB=1, name="classifier"))
    graph = helper.make_graph(
        nodes, "mnist_float",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTHS[0]])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, WIDTHS[-1]])], inits)
    model = helper.make_model(graph, producer_name="hwgen designs/train_mnist_float.py",
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", required=True, help="NPZ with x_train, y_train, x_test, "
                        "y_test")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "mnist_float.onnx"))
    args = parser.parse_args(argv)
    with np.load(args.mnist) as data:
        x_train = data["x_train"].reshape(-1, 784).astype(np.float64) / 255
        y_train = data["y_train"].astype(np.int64)
        x_test = data["x_test"].reshape(-1, 784).astype(np.float64) / 255
        y_test = data["y_test"].astype(np.int64)
    params = train(x_train, y_train, epochs=args.epochs, seed=args.seed)
    accuracy = float(np.mean(predict(params, x_test.astype(np.float32)) == y_test))
    export(params, Path(args.out))
    calibration = Path(args.out).with_suffix(".calibration.npy")
    np.save(calibration, x_train[-200:].astype(np.float16))
    np.save(calibration.with_name(calibration.name.replace(".calibration.npy",
                                                           ".calibration_labels.npy")),
            y_train[-200:].astype(np.uint8))
    Path(args.out).with_suffix(".json").write_text(json.dumps({
        "command": "python designs/train_mnist_float.py " + " ".join(argv or sys.argv[1:]),
        "seed": args.seed, "epochs": args.epochs, "float_test_accuracy": round(accuracy, 4),
        "test_images": len(y_test)}, indent=2) + "\n")
    print(f"wrote {args.out}: float test accuracy {accuracy:.4f} ({len(y_test)} images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
