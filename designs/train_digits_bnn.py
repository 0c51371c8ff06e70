"""Train the binarized MLP ``digits_bnn`` on scikit-learn's 8×8 digits and export it.

Pure NumPy (no torch), reproducible from ``--seed``; a few seconds on one core::

    python designs/train_digits_bnn.py [--seed 0] [--epochs 100] [--out designs]

writes ``digits_bnn.toml`` + ``digits_bnn.npz`` (the network) and ``digits_bnn.test.npz``
(the held-out split: ``x`` u8 pixels, ``y`` labels) and prints the float model's and the
exported integer golden model's test accuracy.

Data: ``sklearn.datasets.load_digits`` (1797 images, pixel values 0..16), 25 % held out
stratified with ``random_state=0`` whatever ``--seed`` is. Pixels go to the hardware as
8-bit unsigned ``15·v`` (0..240, exact); the float model sees ``15·v / 255``, so its first
pre-activation is ``acc / 255`` (up to float rounding) of the hardware's integer
accumulator.

Topology (what the FPGA computes, see docs of hwgen.spec.Dense)::

    input 64 × u8
    fc1  64 → 128, binary weights, BatchNorm + sign folded to a threshold → binary
    fc2 128 → 128, binary weights, BatchNorm + sign → binary
    fc3 128 → 10, 16-bit weights + integer bias → raw scores
    argmax

Training: latent float weights clipped to [−1, 1], forward with their signs (sign(0) = +1),
straight-through estimator for weights (gradient passed where |w| ≤ 1) and for the sign
activation (passed where |BN output| ≤ 1), BatchNorm on batch statistics, softmax
cross-entropy, Adam with a cosine learning rate. After training the BatchNorm statistics are
recomputed over the whole training split in inference mode, and the float model used for the
reported float accuracy is exactly that inference model (its fc3 in float).

Export (hwgen.quant): fc1/fc2 weights are the signs, BatchNorm + sign folds into one integer
threshold per neuron (rows with negative BatchNorm scale negated); fc3 is quantized to 16-bit
weights and integer bias with one per-layer scale.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwgen import golden, plan, quant, spec  # noqa: E402
from hwgen.numeric import TensorType  # noqa: E402

NAME = "digits_bnn"
PIXEL_SCALE = 15  # digits pixel 0..16 → u8 0..240
FLOAT_SCALE = 1 / 255  # float model input = u8 pixel / 255
HIDDEN = 128
EPS = 1e-4
MOMENTUM = 0.9
#: Folding: fc1 (128×64) and fc2 (128×128) at 256 cycles, fc3 (10×128) at 160; the input
#: streams 4 pixels per beat (fc1's SIMD).
FOLDING = {"fc1": (8, 4), "fc2": (8, 8), "fc3": (2, 4)}


def sign(x: np.ndarray) -> np.ndarray:
    """±1 with sign(0) = +1, the rule of hwgen.quant.binarize."""
    return np.where(x >= 0, 1.0, -1.0)


class Adam:
    def __init__(self, params: dict[str, np.ndarray], lr: float):
        self.lr, self.t = lr, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict, grads: dict, lr: float) -> None:
        self.t += 1
        b1, b2 = 0.9, 0.999
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            mhat = self.m[k] / (1 - b1 ** self.t)
            vhat = self.v[k] / (1 - b2 ** self.t)
            params[k] -= lr * mhat / (np.sqrt(vhat) + 1e-8)


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "w1": rng.uniform(-1, 1, (HIDDEN, 64)) * 0.1,
        "g1": np.ones(HIDDEN), "b1": np.zeros(HIDDEN),
        "w2": rng.uniform(-1, 1, (HIDDEN, HIDDEN)) * 0.1,
        "g2": np.ones(HIDDEN), "b2": np.zeros(HIDDEN),
        "w3": rng.normal(0, 1 / np.sqrt(HIDDEN), (10, HIDDEN)),
        "c3": np.zeros(10),
    }


def bn_train(a: np.ndarray, g: np.ndarray, b: np.ndarray):
    mu, var = a.mean(0), a.var(0)
    inv = 1 / np.sqrt(var + EPS)
    xhat = (a - mu) * inv
    return g * xhat + b, (xhat, inv, g), mu, var


def bn_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xhat, inv, g = cache
    n = dy.shape[0]
    dg, db = (dy * xhat).sum(0), dy.sum(0)
    dxhat = dy * g
    da = inv / n * (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0))
    return da, dg, db


def train_step(p: dict, x: np.ndarray, y: np.ndarray, stats: dict) -> tuple[float, dict]:
    wb1, wb2 = sign(p["w1"]), sign(p["w2"])
    a1 = x @ wb1.T
    z1, c1, mu1, var1 = bn_train(a1, p["g1"], p["b1"])
    h1 = sign(z1)
    a2 = h1 @ wb2.T
    z2, c2, mu2, var2 = bn_train(a2, p["g2"], p["b2"])
    h2 = sign(z2)
    s = h2 @ p["w3"].T + p["c3"]
    s = s - s.max(1, keepdims=True)
    prob = np.exp(s)
    prob /= prob.sum(1, keepdims=True)
    n = len(y)
    loss = -np.log(prob[np.arange(n), y] + 1e-12).mean()
    for key, mu, var in (("1", mu1, var1), ("2", mu2, var2)):
        stats["mean" + key] = MOMENTUM * stats["mean" + key] + (1 - MOMENTUM) * mu
        stats["var" + key] = MOMENTUM * stats["var" + key] + (1 - MOMENTUM) * var

    ds = prob
    ds[np.arange(n), y] -= 1
    ds /= n
    grads = {"w3": ds.T @ h2, "c3": ds.sum(0)}
    dh2 = ds @ p["w3"]
    dz2 = dh2 * (np.abs(z2) <= 1)
    da2, grads["g2"], grads["b2"] = bn_backward(dz2, c2)
    grads["w2"] = (da2.T @ h1) * (np.abs(p["w2"]) <= 1)
    dh1 = da2 @ wb2
    dz1 = dh1 * (np.abs(z1) <= 1)
    da1, grads["g1"], grads["b1"] = bn_backward(dz1, c1)
    grads["w1"] = (da1.T @ x) * (np.abs(p["w1"]) <= 1)
    return loss, grads


def recompute_stats(p: dict, x: np.ndarray) -> dict:
    """Population BatchNorm statistics over ``x`` with the final weights (inference mode)."""
    a1 = x @ sign(p["w1"]).T
    h1 = sign(quant.batchnorm(a1, p["g1"], p["b1"], a1.mean(0), a1.var(0), EPS))
    a2 = h1 @ sign(p["w2"]).T
    return {"mean1": a1.mean(0), "var1": a1.var(0), "mean2": a2.mean(0), "var2": a2.var(0)}


def float_predict(p: dict, stats: dict, x: np.ndarray) -> np.ndarray:
    """The float inference model (BatchNorm with population statistics, fc3 in float)."""
    a1 = x @ sign(p["w1"]).T
    h1 = sign(quant.batchnorm(a1, p["g1"], p["b1"], stats["mean1"], stats["var1"], EPS))
    a2 = h1 @ sign(p["w2"]).T
    h2 = sign(quant.batchnorm(a2, p["g2"], p["b2"], stats["mean2"], stats["var2"], EPS))
    return np.argmax(h2 @ p["w3"].T + p["c3"], axis=1)


def export(p: dict, stats: dict, dataset: Path) -> spec.Network:
    """The trained float model as an integer hwgen network."""
    layers = []
    in_type = TensorType((64,), 8, False)
    for key, name, scale in (("1", "fc1", FLOAT_SCALE), ("2", "fc2", 1.0)):
        w = quant.binarize(p["w" + key])
        bounds = spec.Dense(name, w, 1).acc_bounds(in_type)
        thresholds, flip = quant.fold_batchnorm(
            p["g" + key], p["b" + key], stats["mean" + key], stats["var" + key], EPS,
            acc_range=bounds, scale=scale)
        w, _ = quant.flip_rows(w, flip)
        pe, simd = FOLDING[name]
        layers.append(spec.Dense(name, w, 1, thresholds=thresholds, pe=pe, simd=simd))
        in_type = TensorType((HIDDEN,), 1, False)
    w3, c3, _ = quant.quantize_classifier(p["w3"], p["c3"], bits=16)
    pe, simd = FOLDING["fc3"]
    layers.append(spec.Dense("fc3", w3, 16, bias=c3, pe=pe, simd=simd))
    layers.append(spec.Argmax("argmax"))
    return spec.Network(NAME, spec.Input((64,), 8, lanes=FOLDING["fc1"][1]), layers,
                        dataset=dataset)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, default=0.01, help="peak Adam learning rate")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="output folder (default: beside this script)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    digits = load_digits()
    x_u8 = quant.quantize_unsigned(digits.data, 8, PIXEL_SCALE)
    x_tr, x_te, y_tr, y_te = train_test_split(x_u8, digits.target, test_size=0.25,
                                              stratify=digits.target, random_state=0)
    xf_tr, xf_te = x_tr * FLOAT_SCALE, x_te * FLOAT_SCALE

    rng = np.random.default_rng(args.seed)
    p = init_params(rng)
    stats = {"mean1": np.zeros(HIDDEN), "var1": np.ones(HIDDEN),
             "mean2": np.zeros(HIDDEN), "var2": np.ones(HIDDEN)}
    opt = Adam(p, args.lr)
    steps = args.epochs * -(-len(y_tr) // args.batch)
    step = 0
    for epoch in range(args.epochs):
        order = rng.permutation(len(y_tr))
        losses = []
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            if len(idx) < 2:
                continue
            loss, grads = train_step(p, xf_tr[idx], y_tr[idx], stats)
            lr = args.lr * 0.5 * (1 + np.cos(np.pi * step / steps))
            opt.step(p, grads, lr)
            p["w1"] = np.clip(p["w1"], -1, 1)
            p["w2"] = np.clip(p["w2"], -1, 1)
            losses.append(loss)
            step += 1
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}", flush=True)

    stats = recompute_stats(p, xf_tr)
    float_pred = float_predict(p, stats, xf_te)
    float_acc = (float_pred == y_te).mean()
    train_time = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    test_path = args.out / f"{NAME}.test.npz"
    np.savez(test_path, x=x_te.astype(np.uint8), y=y_te.astype(np.int64))
    net = export(p, stats, test_path)
    int_pred = golden.predict(net, x_te)
    correct = int((int_pred == y_te).sum())
    agree = int((int_pred == float_pred).sum())
    int_acc = correct / len(y_te)
    header = (
        f"digits_bnn: binarized MLP for scikit-learn's 8x8 digits (64 u8 pixels = 15 * value).\n"
        f"Made by: python designs/train_digits_bnn.py --seed {args.seed} "
        f"--epochs {args.epochs} --batch {args.batch} --lr {args.lr}\n"
        f"(pure NumPy, {train_time:.0f} s). Test split: 25% stratified, random_state=0, "
        f"{len(y_te)} images.\n"
        f"float model test accuracy: {float_acc:.4f}\n"
        f"integer golden test accuracy: {int_acc:.4f} ({correct}/{len(y_te)})"
    )
    spec.save(net, args.out / f"{NAME}.toml", header=header)
    print(f"float test accuracy   {float_acc:.4f}")
    print(f"integer test accuracy {int_acc:.4f} ({correct}/{len(y_te)})")
    print(f"float and integer predictions agree on {agree}/{len(y_te)} test images")
    print(f"time {train_time:.1f} s")
    print(plan.format_table(plan.plan(net)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
