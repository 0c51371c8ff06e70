"""Random networks and layers for tests (values chosen to exercise every threshold)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from hwgen import golden
from hwgen.layers import KINDS
from hwgen.layers.channel_shuffle import ChannelShuffle
from hwgen.layers.channel_split import ChannelSplit
from hwgen.layers.concat import Concat
from hwgen.numeric import TensorType, value_range
from hwgen.rtl.memory import BlockRam
from hwgen.spec import (
    Add,
    Argmax,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    GlobalSumPool,
    Input,
    Network,
    Requantize,
    save,
)


def random_weights(rng: np.random.Generator, out: int, inp: int, bits: int) -> np.ndarray:
    if bits == 1:
        return rng.choice([-1, 1], size=(out, inp))
    lo, hi = value_range(bits, True)
    w = rng.integers(lo, hi + 1, size=(out, inp))
    w[0, 0], w[-1, -1] = lo, hi  # the extremes always appear
    return w


def random_inputs(rng: np.random.Generator, t: TensorType, count: int,
                  extremes: bool = True) -> np.ndarray:
    lo, hi = t.range
    if t.binary:
        x = rng.choice([-1, 1], size=(count, *t.shape))
    else:
        x = rng.integers(lo, hi + 1, size=(count, *t.shape))
    if extremes and count >= 2:
        x[0], x[1] = lo, hi
    return x


WeightLayer = Dense | Conv2d | DepthwiseConv2d


def fitted_thresholds(rng: np.random.Generator, layer: WeightLayer, x: np.ndarray,
                      out_bits: int) -> np.ndarray:
    """Ascending thresholds spread over the accumulators ``x`` produces, so outputs vary."""
    acc = golden.accumulate(layer, x)
    acc = acc.reshape(-1, acc.shape[-1])
    count = (1 << out_bits) - 1
    qs = np.linspace(0.05, 0.95, count)
    t = np.quantile(acc, qs, axis=0).T.round().astype(np.int64)
    t += rng.integers(-1, 2, size=t.shape)
    return np.sort(t, axis=1)


def fitted_requantize(rng: np.random.Generator, layer: WeightLayer, x: np.ndarray,
                      bits: int, signed: bool) -> Requantize:
    """Per-channel multipliers and shifts that map the accumulators ``x`` produces a little
    beyond the output range (so both clamps are hit); shifts differ between channels, one
    channel has shift 0 and one a negative multiplier."""
    acc = golden.accumulate(layer, x)
    acc = acc.reshape(-1, acc.shape[-1])
    lo, hi = value_range(bits, signed)
    spread = np.maximum(np.abs(acc).max(axis=0), 1)
    shift = rng.integers(6, 15, size=acc.shape[-1])
    multiplier = np.maximum(1, np.rint(1.3 * hi / spread * 2.0 ** shift)).astype(np.int64)
    if len(shift) > 1:
        shift[1], multiplier[1] = 0, 1
    if len(shift) > 2:
        multiplier[2] = -multiplier[2]
    return Requantize(multiplier, shift, bits, signed)


def _output(rng: np.random.Generator, probe: WeightLayer, x: np.ndarray,
            out_bits: int | str | None) -> dict:
    """Output quantization fields: ``None`` raw, an int for that many bits of thresholds,
    ``"u4"``/``"s8"``-style for a requantize to 4 bits unsigned / 8 bits signed."""
    if out_bits is None:
        return {}
    if isinstance(out_bits, str):
        return {"requantize": fitted_requantize(rng, probe, x, int(out_bits[1:]),
                                                out_bits[0] == "s")}
    return {"thresholds": fitted_thresholds(rng, probe, x, out_bits)}


def dense(rng: np.random.Generator, name: str, x_type: TensorType, x: np.ndarray, out: int,
          weight_bits: int, out_bits: int | str | None, *, pe: int, simd: int,
          bias: bool = False, weight_memory: str = "rom", mac: str = "auto") -> Dense:
    """A dense layer with random weights; thresholds (or requantize, see :func:`_output`)
    fitted to the inputs ``x`` it will see."""
    w = random_weights(rng, out, x_type.size, weight_bits)
    b = rng.integers(-50, 51, size=out) if bias else None
    probe = Dense(name, w, weight_bits, bias=b)
    return Dense(name, w, weight_bits, bias=b, pe=pe, simd=simd, weight_memory=weight_memory,
                 mac=mac, **_output(rng, probe, x, out_bits))


def conv(rng: np.random.Generator, name: str, x_type: TensorType, x: np.ndarray, out: int,
         kernel: int, weight_bits: int, out_bits: int | str | None, *, stride: int = 1,
         padding: str = "valid", pad_value: int | None = None, pe: int, simd: int,
         bias: bool = False, weight_memory: str = "rom", mac: str = "auto") -> Conv2d:
    """A conv2d layer with random weights; output quantization as in :func:`dense`."""
    c = x_type.shape[-1]
    w = random_weights(rng, out, kernel * kernel * c, weight_bits).reshape(out, kernel, kernel, c)
    b = rng.integers(-50, 51, size=out) if bias else None
    if pad_value is None:
        pad_value = -1 if x_type.binary else 0
    common = dict(stride=stride, padding=padding, pad_value=pad_value, bias=b)
    probe = Conv2d(name, w, weight_bits, **common)
    return Conv2d(name, w, weight_bits, pe=pe, simd=simd, weight_memory=weight_memory, mac=mac,
                  **common, **_output(rng, probe, x, out_bits))


def depthwise(rng: np.random.Generator, name: str, x_type: TensorType, x: np.ndarray,
              kernel: int, weight_bits: int, out_bits: int | str | None, *, stride: int = 1,
              padding: str = "valid", pad_value: int | None = None, pe: int,
              bias: bool = False, weight_memory: str = "rom",
              mac: str = "auto") -> DepthwiseConv2d:
    """A depthwise_conv2d layer with random filters (every filter holds the most negative and
    the most positive weight); output quantization as in :func:`dense`."""
    c = x_type.shape[-1]
    w = random_weights(rng, c, kernel * kernel, weight_bits)
    if weight_bits > 1 and kernel > 1:
        lo, hi = value_range(weight_bits, True)
        w[:, 0], w[:, -1] = lo, hi
    w = w.reshape(c, kernel, kernel)
    b = rng.integers(-50, 51, size=c) if bias else None
    if pad_value is None:
        pad_value = -1 if x_type.binary else 0
    common = dict(stride=stride, padding=padding, pad_value=pad_value, bias=b)
    probe = DepthwiseConv2d(name, w, weight_bits, **common)
    return DepthwiseConv2d(name, w, weight_bits, pe=pe, weight_memory=weight_memory, mac=mac,
                           **common, **_output(rng, probe, x, out_bits))


#: Test builders of the kinds with weights (random weights, fitted output quantization).
_WEIGHTED = {"dense": dense, "conv2d": conv, "depthwise_conv2d": depthwise}
#: Default layer names of :func:`chain`, by kind: ``<prefix><index>``.
_PREFIX = {"dense": "fc", "conv2d": "conv", "depthwise_conv2d": "dw", "maxpool": "pool",
           "global_sum_pool": "gsp"}


def _layer(rng: np.random.Generator, index: int, x_type: TensorType, values: np.ndarray,
           spec: dict):
    kind = spec.pop("kind", "dense")
    name = spec.pop("name", f"{_PREFIX.get(kind, kind)}{index}")
    if kind in _WEIGHTED:
        return _WEIGHTED[kind](rng, name, x_type, values, **spec)
    return KINDS[kind](name, **spec)


def chain(rng: np.random.Generator, input_: Input, specs: list[dict], count: int = 8,
          argmax: bool = False, name: str = "net") -> tuple[Network, np.ndarray]:
    """A network of layers described by ``specs`` (``kind`` = "dense" (default), "conv2d",
    "depthwise_conv2d", "maxpool", "global_sum_pool" or "flatten", the rest kwargs of
    :func:`dense`, :func:`conv`, :func:`depthwise` or the layer class), and random inputs for
    it."""
    x_type = TensorType(input_.shape, input_.bits, input_.signed)
    x = random_inputs(rng, x_type, count)
    layers: list = []
    values = x
    for i, spec in enumerate(specs):
        layer = _layer(rng, i, x_type, values, spec)
        layers.append(layer)
        net = Network(name, input_, list(layers))
        x_type = net.output_type
        values = golden.run(net, x)[layer.name]
    if argmax:
        layers.append(Argmax("argmax"))
    return Network(name, input_, layers), x


def residual_block(long_fast: bool) -> tuple[Network, np.ndarray]:
    """A residual block on a binary 5×7×6 image. ``long_fast=False``: two slow 3×3 convs on
    the long branch, the identity as shortcut (its FIFO must absorb the long branch);
    ``True``: one fast 3×3 conv against a slow 1×1 conv shortcut (the other way round)."""
    channels = 6
    rng = np.random.default_rng(7 if long_fast else 8)
    inp = Input((5, 7, channels), 1, lanes=2)
    x_type = TensorType((5, 7, channels), 1)
    x = random_inputs(rng, x_type, 5)
    if long_fast:
        c1 = conv(rng, "c1", x_type, x, channels, 3, 1, 1, padding="same", pe=6, simd=6)
        short = replace(conv(rng, "sc", x_type, x, channels, 1, 1, 1, pe=1, simd=1),
                        inputs=("input",))
        layers = [c1, short]
        branches = ("c1", "sc")
    else:
        c1 = conv(rng, "c1", x_type, x, channels, 3, 1, 1, padding="same", pe=1, simd=2)
        c1_out = golden.run(Network("p", inp, [c1]), x)["c1"]
        c2 = conv(rng, "c2", x_type, c1_out, channels, 3, 1, 1, padding="same", pe=1, simd=2)
        layers = [c1, c2]
        branches = ("c2", "input")
    probe = Network("p", inp, layers + [Add("sum", branches)])
    sums = golden.run(probe, x)["sum"].reshape(-1, channels)
    t = np.quantile(sums, 0.5, axis=0).round().astype(np.int64)[:, None]
    layers.append(Add("sum", branches, thresholds=t))
    layers.append(GlobalSumPool("gsp"))
    net = Network("p", inp, layers)
    pooled = golden.run(net, x)["gsp"]
    layers.append(dense(rng, "fc", net.output_type, pooled, 3, 16, None, pe=1, simd=2,
                        bias=True))
    layers.append(Argmax("argmax"))
    return Network("res", inp, layers), x


def _branch(rng: np.random.Generator, x_type: TensorType, x: np.ndarray,
            steps: list[tuple[str, dict]]) -> tuple[list, TensorType, np.ndarray]:
    """Layers applied one after the other to ``x`` (of ``x_type``), each fitted to the values
    it sees: ``("pw", kwargs)`` a 1×1 conv2d, ``("dw", kwargs)`` a 3×3 "same" depthwise_conv2d
    (kwargs: name, stride, pe, simd). Returns the layers (chained by default inputs), the
    output type and values."""
    layers = []
    for kind, kw in steps:
        kw = dict(kw)
        name = kw.pop("name")
        if kind == "pw":
            layer = conv(rng, name, x_type, x, x_type.shape[-1], 1, 2, 2, **kw)
        else:
            layer = depthwise(rng, name, x_type, x, 3, 2, 2, padding="same", **kw)
        net = Network("probe", Input(x_type.shape, x_type.bits, x_type.signed), [layer])
        x_type, x = net.output_type, golden.run(net, x)[name]
        layers.append(layer)
    return layers, x_type, x


def shufflenet_unit(stride: int, count: int = 3) -> tuple[Network, np.ndarray]:
    """A ShuffleNetV2 unit on 2-bit activations, 2-bit weights and thresholds, and random
    inputs. ``stride=1``: channel split; 1×1 conv → 3×3 depthwise → 1×1 conv on the second
    half; concat with the first half; channel shuffle (groups 2) — on a 6×6×8 input.
    ``stride=2``: the input read by two branches, a 3×3 stride-2 depthwise → 1×1 conv and a
    1×1 conv → 3×3 stride-2 depthwise → 1×1 conv; concat; shuffle — on a 7×7×4 input."""
    rng = np.random.default_rng(40 + stride)
    shape = (6, 6, 8) if stride == 1 else (7, 7, 4)
    inp = Input(shape, 2, lanes=2)
    x_type = TensorType(shape, 2)
    x = random_inputs(rng, x_type, count)
    if stride == 1:
        half = TensorType((*shape[:-1], shape[-1] // 2), 2)
        branch, _, _ = _branch(rng, half, x[..., shape[-1] // 2:], [
            ("pw", dict(name="pw1", pe=2, simd=2)), ("dw", dict(name="dw", pe=2)),
            ("pw", dict(name="pw2", pe=4, simd=2))])
        branch[0] = replace(branch[0], inputs=("split.1",))
        layers = [ChannelSplit("split"), *branch, Concat("cat", ("split.0", "pw2"))]
    else:
        left, _, _ = _branch(rng, x_type, x, [
            ("dw", dict(name="dwl", stride=2, pe=2)), ("pw", dict(name="pwl", pe=2, simd=4))])
        right, _, _ = _branch(rng, x_type, x, [
            ("pw", dict(name="pwr1", pe=2, simd=2)), ("dw", dict(name="dwr", stride=2, pe=2)),
            ("pw", dict(name="pwr2", pe=2, simd=2))])
        right[0] = replace(right[0], inputs=("input",))
        layers = [*left, *right, Concat("cat", ("pwl", "pwr2"))]
    layers.append(ChannelShuffle("shuffle", 2))
    return Network(f"shufflenet_s{stride}", inp, layers), x


def error_line(capsys) -> str:
    """The one ``hwgen: error: ...`` line a failed command printed (no traceback)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("hwgen: error: ")
    return err


class RegisteredReads:
    """A platform to elaborate units with (``Fragment.get(unit, RegisteredReads())``) on which
    block RAM is read through registers as on ECP5 (:mod:`hwgen.rtl.memory`), with banks of
    at most 4 words, so every folded weight memory deeper than that is split."""

    hwgen_block_ram = BlockRam("tiny", ((4, 64), (2, 128)))


def save_mini_spec(folder: Path) -> Path:
    """A three-layer binary MLP with argmax, saved as ``folder``/mini.toml + NPZ, with a
    labelled test split."""
    rng = np.random.default_rng(7)
    net, x = chain(rng, Input((16,), 8, lanes=4), [
        dict(out=8, weight_bits=1, out_bits=1, pe=2, simd=4),
        dict(out=4, weight_bits=16, out_bits=None, pe=1, simd=8, bias=True)],
        count=6, argmax=True, name="mini")
    path = folder / "mini.toml"
    np.savez(folder / "mini.test.npz", x=x, y=np.arange(len(x)) % 4)
    net.dataset = folder / "mini.test.npz"
    save(net, path)
    return path
