"""Train the convolutional BNN ``mnist_cnn`` on MNIST and export it.

Pure NumPy, reproducible from ``--seed``; a few minutes on two cores::

    python designs/train_mnist_cnn.py --mnist ../shared/data/mnist.npz [--epochs 3] [--out designs]

writes ``mnist_cnn.toml`` + ``mnist_cnn.npz`` and ``mnist_cnn.test.npz`` (the 10,000-image test
split: ``x`` u8 images 28×28×1, ``y`` labels) and prints the float and integer accuracies.

``--mnist`` takes any NPZ with ``x_train``/``y_train``/``x_test``/``y_test`` (28×28 u8 images
and labels), the layout of ``mnist.npz``; nothing is downloaded.

Topology (what the FPGA computes)::

    input 28×28×1 u8
    conv1 3×3, 16 channels, valid, binary weights on 8-bit pixels, BatchNorm + sign → binary
    pool1 2×2 maxpool (OR)                                              → 13×13×16
    conv2 3×3, 32 channels, valid, XNOR-popcount, BatchNorm + sign      → 11×11×32
    pool2 2×2 maxpool (OR; the 11th row and column are dropped)        → 5×5×32
    flatten → fc1 800 → 128 binary, BatchNorm + sign
    classifier 128 → 10, 16-bit weights and bias → argmax

Training as in train_digits_bnn.py: sign weights and activations with straight-through
estimators, BatchNorm on batch statistics (per channel for convolutions), softmax
cross-entropy, Adam with a cosine learning rate; BatchNorm statistics recomputed over 10,000
training images at the end; export through hwgen.quant (thresholds, row flips, 16-bit
classifier).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from train_digits_bnn import Adam, bn_backward, bn_train, sign  # noqa: E402

from hwgen import golden, quant, spec  # noqa: E402
from hwgen.numeric import TensorType  # noqa: E402

NAME = "mnist_cnn"
EPS = 1e-4
MOMENTUM = 0.9
K = 3
C1, C2, HIDDEN = 16, 32, 128
#: Folding: conv1 at 676·9 = 6,084 cycles (SIMD must divide its one channel), conv2 at
#: 121·2·9 = 2,178, fc1 at 16·25 = 400, the classifier at 5·16 = 80.
FOLDING = {"conv1": (16, 1), "conv2": (16, 16), "fc1": (8, 32), "classifier": (2, 8)}


def load_mnist(path: str | Path) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) from an NPZ in mnist.npz's layout; images as
    (N, 28, 28, 1) u8. One clear error if the file or a key is missing."""
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read an NPZ ({exc})") from None
    keys = ("x_train", "y_train", "x_test", "y_test")
    missing = [k for k in keys if k not in data]
    if missing:
        raise SystemExit(f"{path}: missing arrays {', '.join(missing)} (expected {keys})")
    x_tr, y_tr, x_te, y_te = (data[k] for k in keys)
    for name, x in (("x_train", x_tr), ("x_test", x_te)):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise SystemExit(f"{path}: {name}: expected (N, 28, 28) uint8 images, got "
                             f"{x.shape} {x.dtype}")
    return x_tr[..., None], y_tr.astype(np.int64), x_te[..., None], y_te.astype(np.int64)


def im2col(x: np.ndarray) -> np.ndarray:
    """Valid 3×3 stride-1 windows of (N, H, W, C): (N, H−2, W−2, 9·C) in (ky, kx, c) order
    (golden.windows' order, kept in float)."""
    n, h, w, c = x.shape
    ho, wo = h - K + 1, w - K + 1
    out = np.empty((n, ho, wo, K, K, c), dtype=x.dtype)
    for ky in range(K):
        for kx in range(K):
            out[:, :, :, ky, kx, :] = x[:, ky:ky + ho, kx:kx + wo, :]
    return out.reshape(n, ho, wo, K * K * c)


def col2im(d: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The adjoint of :func:`im2col`: window gradients summed back onto the image."""
    n, h, w, c = shape
    ho, wo = h - K + 1, w - K + 1
    d = d.reshape(n, ho, wo, K, K, c)
    out = np.zeros(shape, dtype=d.dtype)
    for ky in range(K):
        for kx in range(K):
            out[:, ky:ky + ho, kx:kx + wo, :] += d[:, :, :, ky, kx, :]
    return out


def pool2(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2×2 stride-2 max (floor: an odd last row/column is dropped) and the one-hot mask of
    the first maximum in each window."""
    n, hh, ww, c = h.shape
    ho, wo = hh // 2, ww // 2
    v = h[:, :ho * 2, :wo * 2, :].reshape(n, ho, 2, wo, 2, c).transpose(0, 1, 3, 2, 4, 5)
    v = v.reshape(n, ho, wo, 4, c)
    first = v.argmax(axis=3)
    mask = np.zeros_like(v)
    np.put_along_axis(mask, first[:, :, :, None, :], 1.0, axis=3)
    return v.max(axis=3), mask


def unpool2(d: np.ndarray, mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    n, ho, wo, c = d.shape
    g = (mask * d[:, :, :, None, :]).reshape(n, ho, wo, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    out = np.zeros(shape, dtype=d.dtype)
    out[:, :ho * 2, :wo * 2, :] = g.reshape(n, ho * 2, wo * 2, c)
    return out


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    f32 = np.float32
    return {
        "w1": (rng.uniform(-1, 1, (C1, K * K)) * 0.1).astype(f32),
        "g1": np.ones(C1, f32), "b1": np.zeros(C1, f32),
        "w2": (rng.uniform(-1, 1, (C2, K * K * C1)) * 0.1).astype(f32),
        "g2": np.ones(C2, f32), "b2": np.zeros(C2, f32),
        "w3": (rng.uniform(-1, 1, (HIDDEN, 25 * C2)) * 0.1).astype(f32),
        "g3": np.ones(HIDDEN, f32), "b3": np.zeros(HIDDEN, f32),
        "w4": rng.normal(0, 1 / np.sqrt(HIDDEN), (10, HIDDEN)).astype(f32),
        "c4": np.zeros(10, f32),
    }


def _bn_sign(a: np.ndarray, g, b, *, train: bool, stats: dict | None, key: str):
    """BatchNorm over every axis but the last, then sign; returns (h, z, cache, mu, var)."""
    flat = a.reshape(-1, a.shape[-1])
    if train:
        z, cache, mu, var = bn_train(flat, g, b)
    else:
        mu, var, cache = stats["mean" + key], stats["var" + key], None
        z = quant.batchnorm(flat, g, b, mu, var, EPS)
    z = z.reshape(a.shape)
    return sign(z), z, cache, mu, var


def forward(p: dict, x: np.ndarray, *, train: bool, stats: dict | None = None):
    """Float forward pass; ``x`` is (N, 28, 28, 1) in [0, 1]. Returns scores and a cache."""
    c = {"x": x}
    c["cols1"] = im2col(x)
    c["a1"] = c["cols1"] @ sign(p["w1"]).T
    h1, c["z1"], c["bn1"], mu1, var1 = _bn_sign(c["a1"], p["g1"], p["b1"], train=train,
                                                 stats=stats, key="1")
    c["h1_shape"] = h1.shape
    p1, c["m1"] = pool2(h1)
    c["cols2"] = im2col(p1)
    c["p1_shape"] = p1.shape
    c["a2"] = c["cols2"] @ sign(p["w2"]).T
    h2, c["z2"], c["bn2"], mu2, var2 = _bn_sign(c["a2"], p["g2"], p["b2"], train=train,
                                                 stats=stats, key="2")
    c["h2_shape"] = h2.shape
    p2, c["m2"] = pool2(h2)
    c["f"] = p2.reshape(len(x), -1)
    c["a3"] = c["f"] @ sign(p["w3"]).T
    h3, c["z3"], c["bn3"], mu3, var3 = _bn_sign(c["a3"], p["g3"], p["b3"], train=train,
                                                 stats=stats, key="3")
    c["h3"] = h3
    c["batch_stats"] = {"mean1": mu1, "var1": var1, "mean2": mu2, "var2": var2,
                        "mean3": mu3, "var3": var3}
    return h3 @ p["w4"].T + p["c4"], c


def backward(p: dict, c: dict, ds: np.ndarray) -> dict:
    """Gradients of the loss given ``ds`` = d loss / d scores (straight-through signs)."""
    g = {"w4": ds.T @ c["h3"], "c4": ds.sum(0)}
    dh3 = ds @ p["w4"]
    da3, g["g3"], g["b3"] = bn_backward(dh3 * (np.abs(c["z3"]) <= 1), c["bn3"])
    g["w3"] = (da3.T @ c["f"]) * (np.abs(p["w3"]) <= 1)
    df = da3 @ sign(p["w3"])
    dh2 = unpool2(df.reshape(len(df), 5, 5, C2), c["m2"], c["h2_shape"])
    dz2 = (dh2 * (np.abs(c["z2"]) <= 1)).reshape(-1, C2)
    da2, g["g2"], g["b2"] = bn_backward(dz2, c["bn2"])
    cols2 = c["cols2"].reshape(-1, c["cols2"].shape[-1])
    g["w2"] = (da2.T @ cols2) * (np.abs(p["w2"]) <= 1)
    dp1 = col2im((da2 @ sign(p["w2"])).reshape(c["cols2"].shape), c["p1_shape"])
    dh1 = unpool2(dp1, c["m1"], c["h1_shape"])
    dz1 = (dh1 * (np.abs(c["z1"]) <= 1)).reshape(-1, C1)
    da1, g["g1"], g["b1"] = bn_backward(dz1, c["bn1"])
    cols1 = c["cols1"].reshape(-1, c["cols1"].shape[-1])
    g["w1"] = (da1.T @ cols1) * (np.abs(p["w1"]) <= 1)
    return g


def export(p: dict, stats: dict, dataset: Path) -> spec.Network:
    """The trained float model as an integer hwgen network."""
    layers: list = []
    net_input = spec.Input((28, 28, 1), 8, lanes=1)
    for key, name, in_bits, scale in (("1", "conv1", 8, 1 / 255), ("2", "conv2", 1, 1.0),
                                      ("3", "fc1", 1, 1.0)):
        w = quant.binarize(p["w" + key])
        bounds = spec.Dense(name, w, 1).acc_bounds(TensorType((w.shape[1],), in_bits))
        thresholds, flip = quant.fold_batchnorm(
            p["g" + key], p["b" + key], stats["mean" + key], stats["var" + key], EPS,
            acc_range=bounds, scale=scale)
        w, _ = quant.flip_rows(w, flip)
        pe, simd = FOLDING[name]
        if name.startswith("conv"):
            c_in = w.shape[1] // (K * K)
            layers.append(spec.Conv2d(name, w.reshape(-1, K, K, c_in), 1,
                                      thresholds=thresholds, pe=pe, simd=simd))
            layers.append(spec.MaxPool(f"pool{key}", 2))
        else:
            layers.append(spec.Flatten("flatten"))
            layers.append(spec.Dense(name, w, 1, thresholds=thresholds, pe=pe, simd=simd))
    w4, c4, _ = quant.quantize_classifier(p["w4"], p["c4"], bits=16)
    pe, simd = FOLDING["classifier"]
    layers.append(spec.Dense("classifier", w4, 16, bias=c4, pe=pe, simd=simd))
    layers.append(spec.Argmax("argmax"))
    return spec.Network(NAME, net_input, layers, dataset=dataset)


def train(p: dict, forward, backward, x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
          *, epochs: int, batch: int, lr: float, after_step=None) -> None:
    """Train ``p`` in place: softmax cross-entropy, Adam with a cosine learning rate from
    ``lr`` to 0, shuffled batches of ``batch``. ``forward(p, xb)`` returns (scores, cache),
    ``backward(p, cache, d loss/d scores)`` the gradients; ``after_step(p)`` runs after every
    update. Prints the mean loss per epoch."""
    start = time.perf_counter()
    opt = Adam(p, lr)
    steps, step = epochs * (len(x) // batch), 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        losses = []
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i:i + batch]
            scores, cache = forward(p, x[idx])
            s = scores - scores.max(1, keepdims=True)
            prob = np.exp(s)
            prob /= prob.sum(1, keepdims=True)
            yb = y[idx]
            losses.append(-np.log(prob[np.arange(len(yb)), yb] + 1e-12).mean())
            prob[np.arange(len(yb)), yb] -= 1
            grads = backward(p, cache, (prob / len(yb)).astype(np.float32))
            opt.step(p, grads, lr * 0.5 * (1 + np.cos(np.pi * step / steps)))
            if after_step is not None:
                after_step(p)
            step += 1
        print(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", required=True, help="NPZ in mnist.npz's layout")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    parser.add_argument("--batch", type=int, default=100, help="batch size (default 100)")
    parser.add_argument("--lr", type=float, default=0.003, help="peak Adam learning rate")
    parser.add_argument("--train-images", type=int, default=60000,
                        help="use the first N training images (default all)")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    x_tr, y_tr, x_te, y_te = load_mnist(args.mnist)
    x_tr, y_tr = x_tr[:args.train_images], y_tr[:args.train_images]
    xf_tr = x_tr.astype(np.float32) / 255

    rng = np.random.default_rng(args.seed)
    p = init_params(rng)

    def clip_latent(params: dict) -> None:  # latent binary weights stay in −1..1
        for k in ("w1", "w2", "w3"):
            np.clip(params[k], -1, 1, out=params[k])

    train(p, lambda params, x: forward(params, x, train=True), backward, xf_tr, y_tr, rng,
          epochs=args.epochs, batch=args.batch, lr=args.lr, after_step=clip_latent)

    # Population statistics over 10,000 training images, in inference mode layer by layer.
    sample = xf_tr[:10000]
    _, c = forward(p, sample, train=True)
    stats = {k: v.astype(np.float64) for k, v in c["batch_stats"].items()}
    float_pred = np.concatenate([
        np.argmax(forward(p, x_te[i:i + 1000].astype(np.float32) / 255, train=False,
                          stats=stats)[0], axis=1) for i in range(0, len(x_te), 1000)])
    float_acc = float(np.mean(float_pred == y_te))

    args.out.mkdir(parents=True, exist_ok=True)
    test_path = args.out / f"{NAME}.test.npz"
    np.savez_compressed(test_path, x=x_te, y=y_te)
    net = export(p, stats, Path(test_path.name))
    int_pred = golden.predict(net, x_te)
    int_acc = float(np.mean(int_pred == y_te))
    agree = float(np.mean(int_pred == float_pred))
    header = (f"Convolutional BNN trained on MNIST by designs/train_mnist_cnn.py "
              f"(seed {args.seed}, {args.epochs} epochs, {len(x_tr)} training images).\n"
              f"Test accuracy (10,000 images): float {float_acc:.4f}, integer golden model "
              f"{int_acc:.4f}.")
    spec.save(net, args.out / f"{NAME}.toml", header=header)
    print(f"float accuracy {float_acc:.4f}, integer accuracy {int_acc:.4f} "
          f"(agreement {agree:.4f}) on {len(y_te)} test images; "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
