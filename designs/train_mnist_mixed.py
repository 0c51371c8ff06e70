"""Train the mixed-precision CNN ``mnist_mixed`` on MNIST and export it through hwgen.quant.

Pure NumPy, reproducible from ``--seed``; a few minutes on two cores::

    python designs/train_mnist_mixed.py --mnist ../shared/data/mnist.npz [--epochs 3]

writes ``mnist_mixed.toml`` + ``mnist_mixed.npz`` and ``mnist_mixed.test.npz`` (the 10,000-image
test split) and prints the float and integer accuracies. ``--mnist`` takes any NPZ in
mnist.npz's layout (see train_mnist_cnn.py); nothing is downloaded.

Topology: every layer has its own weight bits (W) and output activation bits (A); ``hwgen
check`` shows them as ``W<w>A<a>``::

    input 28×28×1 u8 (pixels)
    conv1 3×3, 8 channels, valid     W8, BatchNorm + ReLU → u6 by scale + shift (requantize)
    pool1 2×2 max                                                        → 13×13×8 u6
    conv2 3×3, 16 channels, valid    W4, BatchNorm + ReLU → u4 by thresholds
    pool2 2×2 max (the 11th row and column are dropped)                  → 5×5×16 u4
    flatten → fc1 400 → 32           W4, BatchNorm + ReLU → u6 by scale + shift
    classifier 32 → 10               W8 and bias → argmax

Training is plain float (ReLU, BatchNorm on batch statistics, softmax cross-entropy, Adam
with a cosine learning rate); the integer network is made after training (post-training
quantization): per-channel weight steps (``quant.quantize_weights``), activation steps by
min/max calibration on 10,000 training images (``quant.calibrate``), BatchNorm folded into
scale + shift (``quant.fold_requantize``) or into 15 thresholds (``quant.fold_batchnorm`` with
``quant.uniform_levels``), the classifier on one common scale so the argmax is kept.
docs/quantization.md walks through the same steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from train_digits_bnn import bn_backward, bn_train  # noqa: E402
from train_mnist_cnn import load_mnist, pool2, train, unpool2  # noqa: E402

from hwgen import golden, quant, spec  # noqa: E402
from hwgen.numeric import TensorType  # noqa: E402

NAME = "mnist_mixed"
EPS = 1e-4
#: The pixel step: the float model sees x/255, the hardware the u8 pixel.
PIXEL_STEP = 1 / 255
#: Requantize multipliers: 12-bit signed with one shift per layer keeps their error far below
#: an output step for these ≤ 6-bit outputs and their products narrow (docs/quantization.md).
MULTIPLIER_BITS = 12


@dataclass(frozen=True)
class Block:
    """One convolution or dense layer of the float model and its integer form."""

    name: str
    kernel: int          # 0 for a dense layer
    out: int             # output channels / features
    weight_bits: int
    out_bits: int        # unsigned output bits (after BatchNorm + ReLU); 0: the classifier
    output: str          # "requantize", "thresholds" or "raw"
    pool: bool = False   # a 2×2 maxpool follows
    pe: int = 1
    simd: int = 1
    mac: str = "auto"


#: Folding for the iCE40 UP5K (5,280 LCs, 30 block RAMs, 8 DSPs): one or two PEs per layer
#: (every PE has its own output stage) and SIMD 4 in conv2 and fc1 (SIMD 8 needs 5,509 LCs);
#: conv2 is the bottleneck at 121 pixels · 16 channels · 72/4 steps = 34,848 cycles.
BLOCKS = (
    Block("conv1", 3, 8, 8, 6, "requantize", pool=True, pe=2, simd=1),
    Block("conv2", 3, 16, 4, 4, "thresholds", pool=True, pe=1, simd=4, mac="lut"),
    Block("fc1", 0, 32, 4, 6, "requantize", pe=1, simd=4),
    Block("classifier", 0, 10, 8, 0, "raw", pe=1, simd=2),
)


def im2col(x: np.ndarray, k: int) -> np.ndarray:
    """Valid k×k stride-1 windows of (N, H, W, C) as (N, H−k+1, W−k+1, k·k·C), (ky, kx, c)
    order (the layout of hwgen's conv2d weights, flattened)."""
    n, h, w, c = x.shape
    ho, wo = h - k + 1, w - k + 1
    out = np.empty((n, ho, wo, k, k, c), dtype=x.dtype)
    for ky in range(k):
        for kx in range(k):
            out[:, :, :, ky, kx, :] = x[:, ky:ky + ho, kx:kx + wo, :]
    return out.reshape(n, ho, wo, k * k * c)


def col2im(d: np.ndarray, shape: tuple[int, ...], k: int) -> np.ndarray:
    """The adjoint of :func:`im2col`."""
    n, h, w, c = shape
    ho, wo = h - k + 1, w - k + 1
    d = d.reshape(n, ho, wo, k, k, c)
    out = np.zeros(shape, dtype=d.dtype)
    for ky in range(k):
        for kx in range(k):
            out[:, ky:ky + ho, kx:kx + wo, :] += d[:, :, :, ky, kx, :]
    return out


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    p, fan_in, shape = {}, 1, (28, 28, 1)
    for b in BLOCKS:
        if b.kernel:
            fan_in = b.kernel * b.kernel * shape[2]
            shape = (shape[0] - b.kernel + 1, shape[1] - b.kernel + 1, b.out)
            if b.pool:
                shape = (shape[0] // 2, shape[1] // 2, b.out)
        else:
            fan_in = int(np.prod(shape))
            shape = (b.out,)
        p["w" + b.name] = rng.normal(0, np.sqrt(2 / fan_in), (b.out, fan_in)).astype(np.float32)
        if b.output == "raw":
            p["c" + b.name] = np.zeros(b.out, np.float32)
        else:
            p["g" + b.name] = np.ones(b.out, np.float32)
            p["b" + b.name] = np.zeros(b.out, np.float32)
    return p


def forward(p: dict, x: np.ndarray, *, stats: dict | None = None, probe: dict | None = None):
    """Float forward pass on (N, 28, 28, 1) images in [0, 1]: scores and the backward cache.
    Batch statistics without ``stats``; with, inference BatchNorm. ``probe`` (a dict) gets
    each block's input and its post-ReLU output for calibration."""
    cache, h = [], x
    batch_stats = {}
    for b in BLOCKS:
        c = {"in_shape": h.shape}
        if probe is not None:
            probe["in" + b.name] = h
        if b.kernel:
            cols = im2col(h, b.kernel)
        else:
            cols = h.reshape(len(h), -1)
        c["cols"] = cols
        a = cols @ p["w" + b.name].T
        if b.output == "raw":
            cache.append(c)
            return a + p["c" + b.name], cache, batch_stats
        flat = a.reshape(-1, b.out)
        if stats is None:
            z, c["bn"], mu, var = bn_train(flat, p["g" + b.name], p["b" + b.name])
            batch_stats["mean" + b.name], batch_stats["var" + b.name] = mu, var
        else:
            z = quant.batchnorm(flat, p["g" + b.name], p["b" + b.name],
                                stats["mean" + b.name], stats["var" + b.name], EPS)
        z = z.reshape(a.shape)
        c["z"] = z
        h = np.maximum(z, 0)
        if probe is not None:
            probe["out" + b.name] = h
        c["h_shape"] = h.shape
        if b.pool:
            h, c["mask"] = pool2(h)
        cache.append(c)
    raise AssertionError("BLOCKS must end in the raw classifier")


def backward(p: dict, cache: list, ds: np.ndarray) -> dict:
    """Gradients of the loss from ``ds`` = d loss / d scores."""
    g = {}
    d = ds
    for b, c in zip(reversed(BLOCKS), reversed(cache), strict=True):
        if b.output == "raw":
            g["c" + b.name] = d.sum(0)
            da = d
        else:
            if b.pool:
                d = unpool2(d, c["mask"], c["h_shape"])
            dz = (d * (c["z"] > 0)).reshape(-1, b.out)
            da, g["g" + b.name], g["b" + b.name] = bn_backward(dz, c["bn"])
        cols = c["cols"].reshape(-1, c["cols"].shape[-1])
        g["w" + b.name] = da.T @ cols
        dcols = (da @ p["w" + b.name]).reshape(c["cols"].shape)
        if b.kernel:
            d = col2im(dcols, c["in_shape"], b.kernel)
        else:
            d = dcols.reshape(c["in_shape"])
    return g


def export(p: dict, stats: dict, probe: dict, dataset: Path) -> spec.Network:
    """The trained float model as an integer network: per-channel weight steps, activation
    steps calibrated (min/max) on the float activations in ``probe``."""
    layers: list = []
    x_type = TensorType((28, 28, 1), 8, False)
    x_step = PIXEL_STEP
    for b in BLOCKS:
        w = p["w" + b.name].astype(np.float64)
        if b.output == "raw":  # one common scale: the argmax of the scores is kept
            wq, bias, _ = quant.quantize_classifier(w, p["c" + b.name] / x_step,
                                                    bits=b.weight_bits)
            layers.append(spec.Dense(b.name, wq, b.weight_bits, bias=bias, pe=b.pe,
                                     simd=b.simd))
            break
        wq, w_step = quant.quantize_weights(w, b.weight_bits)
        out_step = quant.calibrate(probe["out" + b.name], b.out_bits, signed=False)
        bn = dict(gamma=p["g" + b.name], beta=p["b" + b.name], mean=stats["mean" + b.name],
                  var=stats["var" + b.name], eps=EPS)
        probe_layer = spec.Dense(b.name, wq, b.weight_bits)
        acc_range = probe_layer.acc_bounds(TensorType((wq.shape[1],), x_type.bits))
        fields: dict = {}
        if b.output == "requantize":
            fields["requantize"], fields["bias"] = quant.fold_requantize(
                x_step * w_step, out_step, bits=b.out_bits, acc_range=acc_range,
                multiplier_bits=MULTIPLIER_BITS, common_shift=True, **bn)
        else:
            fields["thresholds"], flip = quant.fold_batchnorm(
                **bn, acc_range=acc_range, scale=x_step * w_step,
                levels=quant.uniform_levels(b.out_bits, out_step))
            wq, _ = quant.flip_rows(wq, flip)
        if b.kernel:
            c_in = x_type.shape[2]
            layer = spec.Conv2d(b.name, wq.reshape(b.out, b.kernel, b.kernel, c_in),
                                b.weight_bits, pe=b.pe, simd=b.simd, mac=b.mac, **fields)
            layers.append(layer)
            h, w_, _ = x_type.shape
            shape = (h - b.kernel + 1, w_ - b.kernel + 1, b.out)
            if b.pool:
                layers.append(spec.MaxPool(f"pool{b.name[-1]}", 2))
                shape = (shape[0] // 2, shape[1] // 2, b.out)
            x_type = TensorType(shape, b.out_bits, False)
        else:
            if len(x_type.shape) == 3:
                layers.append(spec.Flatten("flatten"))
            layers.append(spec.Dense(b.name, wq, b.weight_bits, pe=b.pe, simd=b.simd, mac=b.mac,
                                     **fields))
            x_type = TensorType((b.out,), b.out_bits, False)
        x_step = out_step
    layers.append(spec.Argmax("argmax"))
    return spec.Network(NAME, spec.Input((28, 28, 1), 8, lanes=1), layers, dataset=dataset)


def float_predict(p: dict, stats: dict, x: np.ndarray) -> np.ndarray:
    return np.concatenate([
        np.argmax(forward(p, x[i:i + 1000].astype(np.float32) / 255, stats=stats)[0], axis=1)
        for i in range(0, len(x), 1000)])


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
    train(p, lambda params, x: forward(params, x)[:2], backward, xf_tr, y_tr, rng,
          epochs=args.epochs, batch=args.batch, lr=args.lr)

    # Population statistics, then calibration, on 10,000 training images (inference mode).
    sample = xf_tr[:10000]
    _, _, batch_stats = forward(p, sample)
    stats = {k: v.astype(np.float64) for k, v in batch_stats.items()}
    probe: dict = {}
    forward(p, sample, stats=stats, probe=probe)
    float_pred = float_predict(p, stats, x_te)
    float_acc = float(np.mean(float_pred == y_te))

    args.out.mkdir(parents=True, exist_ok=True)
    test_path = args.out / f"{NAME}.test.npz"
    np.savez_compressed(test_path, x=x_te, y=y_te)
    net = export(p, stats, probe, Path(test_path.name))
    int_pred = golden.predict(net, x_te)
    int_acc = float(np.mean(int_pred == y_te))
    agree = float(np.mean(int_pred == float_pred))
    header = (f"Mixed-precision CNN trained on MNIST by designs/train_mnist_mixed.py "
              f"(seed {args.seed}, {args.epochs} epochs, {len(x_tr)} training images; "
              f"post-training quantization, min/max calibration on 10,000 training images).\n"
              f"Test accuracy (10,000 images): float {float_acc:.4f}, integer golden model "
              f"{int_acc:.4f}.")
    spec.save(net, args.out / f"{NAME}.toml", header=header)
    print(f"float accuracy {float_acc:.4f}, integer accuracy {int_acc:.4f} "
          f"(agreement {agree:.4f}) on {len(y_te)} test images; "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
