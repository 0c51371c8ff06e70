"""Train Brevitas BNNs (the FINN MLPs TFC/SFC-w1a1, a small CNV) on MNIST and export them as QONNX.

Brevitas + PyTorch (``pip install -e ".[train]"``), CPU only, reproducible from ``--seed``::

    python designs/train_brevitas.py --mnist ../shared/data/mnist.npz [--model all] [--out designs]

writes ``<model>.onnx`` (the cleaned QONNX export) and ``<model>.json`` (command, seed, epochs,
accuracies, versions) for each model and prints the test accuracy of the torch model and of the
QONNX file run by QONNX's executor (``qonnx.core.onnx_exec.execute_onnx``) on the 10,000 test
images. ``--mnist`` takes any NPZ with ``x_train``/``y_train``/``x_test``/``y_test`` (28×28 u8
images and labels), the layout of ``mnist.npz``; nothing is downloaded.

Topology (brevitas_examples/bnn_pynq/models/FC.py in spirit)::

    input (1, 784) float32 = pixels / 255
    QuantIdentity 8-bit unsigned, constant scale 1/255   → Quant (integer codes = u8 pixels)
    hidden × 3: QuantLinear binary weights (scale 1, no bias) → BatchNorm1d
                → QuantIdentity binary (bipolar, scale 1) → BipolarQuant
    classifier: QuantLinear binary weights (scale 1, no bias) → TensorNorm → 10 class scores

    tfc_w1a1: 784-64-64-64-10        sfc_w1a1: 784-256-256-256-10

cnv_mnist_w1a1, a small convolutional BNN on the same quantizers (input (1, 1, 28, 28))::

    QuantIdentity 8-bit unsigned, scale 1/255                          → Quant
    QuantConv2d 1→16, 3×3, no padding, binary weights → BatchNorm2d → binary act → MaxPool 2
    QuantConv2d 16→32, 3×3, no padding, binary weights → BatchNorm2d → binary act → MaxPool 2
    flatten (32·5·5 = 800) → QuantLinear 800→128 → BatchNorm1d → binary act
    QuantLinear 128→10 → TensorNorm → 10 class scores

(28 → 26 → 13 → 11 → 5: no padding, since a ±1 tensor has no exact zero to pad with; each
MaxPool pools the ±1 activations and drops an odd last row and column.)

Deviation from FINN, on purpose: FINN's FC feeds ``2·x − 1`` to a 1-bit signed input
quantizer; here the input quantizer is 8-bit unsigned with the constant scale 1/255 (maximum
1.0), so the integer codes its QONNX ``Quant`` node produces are exactly the u8 pixels that
hwgen's boards receive. The classifier ends in FINN's TensorNorm, one scalar affine for all
classes (exported as Mul and Add by scalars): a per-class affine such as BatchNorm1d would give
every class its own scale, and the argmax of the integer scores on the board would no longer
be the model's. No argmax in the graph.

Training: straight-through estimators as Brevitas does them, latent weights clipped to
[−1, 1] after every step (as FINN's trainer), softmax cross-entropy, Adam with a cosine
learning rate from 0.02 (FINN's rate) to 0, batches of 100 in an order fixed by ``--seed``,
dropout after the input and every hidden activation (0.2 as in FC.py for SFC; none for TFC,
which is too narrow to gain from it in a short run; none for the CNV by default, whose
``--dropout`` acts after its 128-wide activation only); ``torch.set_num_threads(--threads)``.

Export: ``brevitas.export.export_qonnx`` with a (1, 784) input ((1, 1, 28, 28) for the CNV),
then ``qonnx.util.cleanup.cleanup_model`` (shapes inferred, constants folded, Quant and
BipolarQuant nodes kept, readable tensor names), the exporter's stack-trace metadata
dropped. QONNX's check: the exported file run by ``execute_onnx`` on all 10,000 test images
(1,000 a run, the batch dimension rewritten by QONNX's ChangeBatchSize), its predictions
compared with the torch model's.

Measured (seed 0, ``python designs/train_brevitas.py --mnist ../shared/data/mnist.npz``, one
thread, 16 min for the two MLPs; Brevitas' published figures, with 1-bit inputs: TFC 93.17 %,
SFC 97.81 %)::

    tfc_w1a1   30 epochs   2 min   torch 95.55 %   QONNX executor 95.55 %   0 of 10,000 differ
    sfc_w1a1  100 epochs  14 min   torch 97.98 %   QONNX executor 97.98 %   0 of 10,000 differ

and (``python designs/train_brevitas.py --mnist ../shared/data/mnist.npz --model
cnv_mnist_w1a1``, one thread, 9 min, about 25 s an epoch while a synthesis job shared the cores)::

    cnv_mnist_w1a1  20 epochs  9 min   torch 98.60 %   QONNX executor 98.60 %   0 of 10,000 differ

(The thread count changes the order of float sums, hence the weights: ``--threads 2`` trains
slightly different models. ``--epochs`` trains longer.)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

with warnings.catch_warnings():  # Brevitas warns about optional kernels it does not need here
    warnings.simplefilter("ignore")
    import brevitas
    import torch
    from brevitas.core.bit_width import BitWidthImplType
    from brevitas.core.quant import QuantType
    from brevitas.core.restrict_val import FloatToIntImplType, RestrictValueType
    from brevitas.core.scaling import ScalingImplType
    from brevitas.core.zero_point import ZeroZeroPoint
    from brevitas.export import export_qonnx
    from brevitas.inject import ExtendedInjector
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
    from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model
    from torch import nn

HERE = Path(__file__).resolve().parent
NUM_CLASSES = 10


@dataclass(frozen=True)
class Recipe:
    """A reference model: ``kind`` "fc" (an MLP with ``hidden`` layer widths) or "cnv" (the
    convolutional BNN :class:`CNV`, ``hidden`` unused), its default epochs and dropout."""

    hidden: tuple[int, ...]
    epochs: int
    dropout: float
    kind: str = "fc"


#: ``--epochs`` and ``--dropout`` override the defaults. TFC has too few neurons to need
#: dropout in a short run (it lowers its accuracy); SFC overfits without it.
MODELS = {"tfc_w1a1": Recipe((64, 64, 64), epochs=30, dropout=0.0),
          "sfc_w1a1": Recipe((256, 256, 256), epochs=100, dropout=0.2),
          "cnv_mnist_w1a1": Recipe((), epochs=20, dropout=0.0, kind="cnv")}


class DataError(Exception):
    """Bad ``--mnist`` input; reported as one line on stderr, exit status 2."""


class _ConstQuant(ExtendedInjector):
    """Per-tensor, constant bit width and constant floating-point scale, zero point 0."""

    bit_width_impl_type = BitWidthImplType.CONST
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    zero_point_impl = ZeroZeroPoint
    float_to_int_impl_type = FloatToIntImplType.ROUND
    scaling_per_output_channel = False


class BinaryWeightQuant(_ConstQuant, WeightQuantSolver):
    """Bipolar ±1 weights with scale 1 (exported as BipolarQuant)."""

    quant_type = QuantType.BINARY
    bit_width = 1
    narrow_range = True
    signed = True
    scaling_const = 1.0


class BinaryActQuant(_ConstQuant, ActQuantSolver):
    """Bipolar ±1 activations with scale 1 (exported as BipolarQuant)."""

    quant_type = QuantType.BINARY
    bit_width = 1
    narrow_range = True
    signed = True
    min_val = -1.0
    max_val = 1.0


class PixelQuant(_ConstQuant, ActQuantSolver):
    """8-bit unsigned input codes 0..255 with scale 1/255: ``x = pixels / 255`` in, the
    integer codes are the pixels (exported as Quant, signed 0, narrow 0)."""

    quant_type = QuantType.INT
    bit_width = 8
    narrow_range = False
    signed = False
    min_val = 0.0
    max_val = 1.0


class TensorNorm(nn.Module):
    """FINN's TensorNorm: one learned affine ``weight``, ``bias`` for the whole tensor, after
    normalising with the mean and variance of all its elements (the batch's in training, running
    estimates in eval). In eval it computes ``x·a + b`` with two scalars, which the export
    folds into one Mul and one Add: one scale for every class, so the argmax of the scores
    stays the argmax of the integer dot products when ``a > 0``."""

    def __init__(self, eps: float = 1e-4, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_var", torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean, var = x.mean(), x.var(unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.reshape(1), self.momentum)
                self.running_var.lerp_(x.var(unbiased=True).reshape(1), self.momentum)
            return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        scale = self.weight / torch.sqrt(self.running_var + self.eps)
        return x * scale + (self.bias - self.running_mean * scale)


class FC(nn.Module):
    """A FINN-style binarized MLP: (N, 784) floats in [0, 1] → (N, 10) class scores."""

    def __init__(self, hidden: tuple[int, ...], in_features: int = 784,
                 num_classes: int = NUM_CLASSES, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [QuantIdentity(act_quant=PixelQuant), nn.Dropout(dropout)]
        for width in hidden:
            layers += [QuantLinear(in_features, width, bias=False, weight_quant=BinaryWeightQuant),
                       nn.BatchNorm1d(width),
                       QuantIdentity(act_quant=BinaryActQuant),
                       nn.Dropout(dropout)]
            in_features = width
        layers += [QuantLinear(in_features, num_classes, bias=False,
                               weight_quant=BinaryWeightQuant),
                   TensorNorm()]
        self.features = nn.ModuleList(layers)
        for m in self.modules():
            if isinstance(m, QuantLinear):
                nn.init.uniform_(m.weight, -1, 1)

    def clip_weights(self, lo: float = -1.0, hi: float = 1.0) -> None:
        """Clip the latent (float) weights in place, as FINN's trainer does after each step."""
        with torch.no_grad():
            for m in self.features:
                if isinstance(m, QuantLinear | QuantConv2d):
                    m.weight.clamp_(lo, hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.features:
            x = m(x)
        return x


class CNV(FC):
    """A small convolutional BNN: (N, 1, 28, 28) floats in [0, 1] → (N, 10) class scores.
    Convolutions without padding (a ±1 tensor has no exact zero to pad with); each MaxPool
    comes after the binary activation, so it pools ±1 values (floor: 26 → 13, 11 → 5)."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.0) -> None:
        nn.Module.__init__(self)
        layers: list[nn.Module] = [QuantIdentity(act_quant=PixelQuant)]
        in_ch = 1
        for ch in (16, 32):
            layers += [QuantConv2d(in_ch, ch, 3, padding=0, bias=False,
                                   weight_quant=BinaryWeightQuant),
                       nn.BatchNorm2d(ch),
                       QuantIdentity(act_quant=BinaryActQuant),
                       nn.MaxPool2d(2)]
            in_ch = ch
        layers += [nn.Flatten(),
                   QuantLinear(32 * 5 * 5, 128, bias=False, weight_quant=BinaryWeightQuant),
                   nn.BatchNorm1d(128),
                   QuantIdentity(act_quant=BinaryActQuant),
                   nn.Dropout(dropout),
                   QuantLinear(128, num_classes, bias=False, weight_quant=BinaryWeightQuant),
                   TensorNorm()]
        self.features = nn.ModuleList(layers)
        for m in self.modules():
            if isinstance(m, QuantLinear | QuantConv2d):
                nn.init.uniform_(m.weight, -1, 1)


def load_mnist(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from an NPZ in mnist.npz's layout: images (N, 28, 28)
    u8, labels int64 in 0..9. Raises :class:`DataError` with one clear line otherwise."""
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read an NPZ ({exc})") from None
    keys = ("x_train", "y_train", "x_test", "y_test")
    if not hasattr(data, "files"):
        raise DataError(f"{path}: not an NPZ archive (expected arrays {', '.join(keys)})")
    missing = [k for k in keys if k not in data.files]
    if missing:
        raise DataError(f"{path}: missing arrays {', '.join(missing)} (expected {', '.join(keys)})")
    arrays = [data[k] for k in keys]
    for (xk, yk), (x, y) in zip((keys[:2], keys[2:]), (arrays[:2], arrays[2:]), strict=True):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{path}: {xk}: expected (N, 28, 28) uint8 images, got "
                            f"{x.shape} {x.dtype}")
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or \
                (len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES)):
            raise DataError(f"{path}: {yk}: expected {len(x)} integer labels in 0..9, got "
                            f"{y.shape} {y.dtype}")
    x_tr, y_tr, x_te, y_te = arrays
    return x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64)


def to_input(x_u8: np.ndarray, kind: str = "fc") -> np.ndarray:
    """The model input for u8 images: (N, 784) float32 pixels / 255, or (N, 1, 28, 28) for
    ``kind`` "cnv"."""
    shape = (len(x_u8), -1) if kind == "fc" else (len(x_u8), 1, 28, 28)
    return (x_u8.reshape(shape).astype(np.float32) / np.float32(255)).astype(np.float32)


def train(model: FC, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch: int, lr: float,
          seed: int, x_test: torch.Tensor | None = None, y_test: torch.Tensor | None = None,
          ) -> None:
    """Train ``model`` in place on ``x`` (N, 784) / ``y`` (N,): cross-entropy, Adam with a
    cosine learning rate from ``lr`` to 0 over all steps, latent weights clipped to [−1, 1]
    after every step, batches in an order drawn from ``seed``. Prints one line per epoch (with
    the test accuracy when ``x_test``/``y_test`` are given)."""
    start = time.perf_counter()
    order_rng = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = len(x) // batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=order_rng)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            model.clip_weights()
            total += loss.item()
        line = f"epoch {epoch + 1}/{epochs}: loss {total / steps_per_epoch:.4f}"
        if x_test is not None and y_test is not None:
            line += f", test accuracy {accuracy(model, x_test, y_test):.4f}"
        print(f"{line} ({time.perf_counter() - start:.0f} s)", flush=True)


@torch.no_grad()
def predict(model: FC, x: torch.Tensor, batch: int = 1000) -> np.ndarray:
    """Class predictions of ``model`` in eval mode for (N, 784) inputs."""
    model.eval()
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]).numpy()


def accuracy(model: FC, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(np.mean(predict(model, x) == y.numpy()))


def strip_metadata(model: ModelWrapper) -> None:
    """Drop the exporter's per-tensor and per-node ``metadata_props`` in place: torch's dynamo
    exporter records stack traces there (absolute paths and line numbers of this machine's
    files), which carry no semantics and would make the files differ between checkouts."""
    graph = model.graph
    for item in (*graph.node, *graph.input, *graph.output, *graph.value_info,
                 *graph.initializer):
        del item.metadata_props[:]


def export(model: FC, path: Path) -> ModelWrapper:
    """Export ``model`` (eval mode) with ``export_qonnx`` for a (1, 784) input ((1, 1, 28, 28)
    for a :class:`CNV`), clean the graph
    with QONNX's ``cleanup_model``, drop the exporter's metadata (:func:`strip_metadata`) and
    save it at ``path``; returns the cleaned model."""
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shape = (1, 1, 28, 28) if isinstance(model, CNV) else (1, 784)
            export_qonnx(model, input_t=torch.zeros(shape), export_path=str(raw))
        clean = cleanup_model(ModelWrapper(str(raw)))
    strip_metadata(clean)
    clean.save(str(path))
    return clean


def qonnx_predict(path: Path, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Class predictions of the QONNX file at ``path`` run by QONNX's ``execute_onnx`` on
    (N, 784) float32 inputs, ``batch`` images per execution (the graph's batch dimension
    rewritten with ChangeBatchSize)."""
    preds = []
    models: dict[int, ModelWrapper] = {}
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        if len(chunk) not in models:
            m = ModelWrapper(str(path)).transform(ChangeBatchSize(len(chunk)))
            models[len(chunk)] = m.transform(InferShapes())
        m = models[len(chunk)]
        out = execute_onnx(m, {m.graph.input[0].name: chunk})[m.graph.output[0].name]
        preds.append(np.asarray(out).argmax(1))
    return np.concatenate(preds)


def run(name: str, args: argparse.Namespace, data: tuple[np.ndarray, ...], command: str) -> dict:
    """Train, export and evaluate one model; returns the record written to ``<name>.json``."""
    x_tr, y_tr, x_te, y_te = data
    recipe = MODELS[name]
    epochs = args.epochs if args.epochs is not None else recipe.epochs
    dropout = args.dropout if args.dropout is not None else recipe.dropout
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    start = time.perf_counter()
    if recipe.kind == "cnv":
        model: FC = CNV(dropout=dropout)
        topology = "C16-P-C32-P-128-10"
    else:
        model = FC(recipe.hidden, dropout=dropout)
        topology = f"784-{'-'.join(map(str, recipe.hidden))}-10"
    xt_tr, yt_tr = torch.from_numpy(to_input(x_tr, recipe.kind)), torch.from_numpy(y_tr)
    xt_te, yt_te = torch.from_numpy(to_input(x_te, recipe.kind)), torch.from_numpy(y_te)
    print(f"{name}: {topology}, {epochs} epochs, dropout {dropout}", flush=True)
    train(model, xt_tr, yt_tr, epochs=epochs, batch=args.batch, lr=args.lr, seed=args.seed,
          x_test=xt_te if args.verbose else None, y_test=yt_te if args.verbose else None)
    train_s = time.perf_counter() - start
    norm = model.features[-1]
    if norm.weight.item() <= 0:
        print(f"{name}: warning: TensorNorm weight {norm.weight.item():.4g} <= 0: the class "
              "scores are the dot products negated", flush=True)
    torch_pred = predict(model, xt_te)
    torch_acc = float(np.mean(torch_pred == y_te))

    onnx_path = args.out / f"{name}.onnx"
    export(model, onnx_path)
    qonnx_pred = qonnx_predict(onnx_path, to_input(x_te, recipe.kind))
    qonnx_acc = float(np.mean(qonnx_pred == y_te))
    disagree = int(np.sum(qonnx_pred != torch_pred))
    record = {
        "command": command, "seed": args.seed, "epochs": epochs, "dropout": dropout,
        "torch_test_accuracy": round(torch_acc, 4), "qonnx_test_accuracy": round(qonnx_acc, 4),
        "test_images": len(y_te), "brevitas": brevitas.__version__,
        "torch": torch.__version__,
    }
    (args.out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{name}: torch test accuracy {torch_acc:.4f}, QONNX executor {qonnx_acc:.4f} "
          f"({disagree} of {len(y_te)} predictions differ); {onnx_path} "
          f"{onnx_path.stat().st_size} bytes; training {train_s:.0f} s, total "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", required=True, help="NPZ in mnist.npz's layout")
    parser.add_argument("--model", choices=[*MODELS, "all"], default="all",
                        help="which model to train (default all)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs (default: " +
                        ", ".join(f"{k} {r.epochs}" for k, r in MODELS.items()) + ")")
    parser.add_argument("--dropout", type=float, default=None,
                        help="dropout probability (default: " +
                        ", ".join(f"{k} {r.dropout}" for k, r in MODELS.items()) + ")")
    parser.add_argument("--batch", type=int, default=100, help="batch size (default 100)")
    parser.add_argument("--lr", type=float, default=0.02, help="peak Adam learning rate")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1; 2 is slower when the cores are shared)")
    parser.add_argument("--verbose", action="store_true",
                        help="print the test accuracy after every epoch")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        parser.error("--dropout must be in [0, 1)")
    if args.batch < 1 or args.threads < 1:
        parser.error("--batch and --threads must be at least 1")
    try:
        data = load_mnist(args.mnist)
        if len(data[0]) < args.batch or len(data[2]) == 0:
            raise DataError(f"{args.mnist}: {len(data[0])} training and {len(data[2])} test "
                            f"images; need at least --batch {args.batch} and 1")
    except DataError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "designs/train_brevitas.py",
                          *(sys.argv[1:] if argv is None else argv)])
    for name in MODELS if args.model == "all" else [args.model]:
        run(name, args, data, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
