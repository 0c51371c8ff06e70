"""Spec/NPZ mutation fuzzer (issue 14): mutated TOML specs and NPZ files through ``hwgen check``.

Seeds are the shipped designs (designs/*.toml + .npz) and small generated specs (every layer
kind, thresholds, requantize, raw outputs, a residual graph). Each case copies one seed into
its own folder and mutates it: TOML fields deleted, duplicated, retyped or set to huge,
negative, zero, float, bool, string, nested, unicode or very long values, unknown keys, layers
deleted, duplicated or reordered, broken syntax and deep nesting; NPZ members missing or
extra, of the wrong dtype, shape or ndim, object arrays, out-of-range values, truncated or
corrupted bytes, .npy headers declaring huge shapes or broken, an empty file, a directory, a
.npy under the .npz name, a link to a device. Every case asserts the invariant of
:mod:`tests.fuzz.invariant`: ``hwgen check`` exits 0, or 2 with one error line naming the
file, never a traceback; the case's files are untouched and nothing appears outside its
folder. Some of the mutants that load are also run through ``hwgen.golden.run`` on two
inputs, which must not raise and must give outputs within the network's output type, and a
few small ones through ``hwgen generate``, which must succeed.

A second fuzzer does the same to the Python API: one argument of ``Network``, its ``Input`` or
a layer replaced by a value of another type or a nearby one (NumPy scalars, floats, bools,
strings, arrays of another dtype, shape or ndim, dicts). ``Network(...)`` must raise
``SpecError`` or build a network that ``save`` writes and ``load`` reads back equal.

The default run takes a fast seeded slice; ``-m slow`` runs thousands of cases and prints the
counts (cases, clean errors, accepted, tracebacks).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import os
import random
import shutil
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from hwgen import golden
from hwgen.spec import Input, Network, Requantize, SpecError, load, save
from tests.fuzz.invariant import assert_clean_error, assert_untouched, run_main, tree
from tests.helpers import chain, random_inputs, residual_block
from tests.test_spec import network_state

DESIGNS = Path(__file__).resolve().parents[2] / "designs"
SHIPPED = ("digits_bnn", "mnist_mixed", "mnist_cnn", "face32_bnn", "cnv_w1a1")

#: Cases of the default run's slice and of the slow run.
FAST_CASES = 400
SLOW_CASES = 6000
#: Cases of the Python API fuzzer (constructor arguments) in the default and the slow run.
FAST_API_CASES = 300
SLOW_API_CASES = 4000


# --- seeds -----------------------------------------------------------------------------------

@dataclass
class Seed:
    """A valid spec: its TOML text and document, and its NPZ's arrays."""

    name: str
    text: str
    doc: dict
    arrays: dict[str, np.ndarray]


def _generated_networks() -> list[Network]:
    """Small networks of every layer kind and output quantization."""
    rng = np.random.default_rng(14)
    nets = []
    net, _ = chain(rng, Input((16,), 8, lanes=4), [
        dict(out=8, weight_bits=1, out_bits=1, pe=2, simd=4),
        dict(out=6, weight_bits=4, out_bits="s6", pe=3, simd=8, bias=True),
        dict(out=4, weight_bits=8, out_bits=2, pe=2, simd=6, mac="lut"),
        dict(out=3, weight_bits=16, out_bits=None, pe=1, simd=4, bias=True)],
        count=6, argmax=True, name="mlp")
    nets.append(net)
    net, _ = chain(rng, Input((6, 6, 2), 4, lanes=2), [
        dict(kind="conv2d", out=4, kernel=3, weight_bits=2, out_bits=2, padding="same",
             pe=2, simd=2),
        dict(kind="maxpool", size=2),
        dict(kind="depthwise_conv2d", kernel=3, weight_bits=3, out_bits="u4", pe=2,
             padding="same", pad_value=1, bias=True),
        dict(kind="conv2d", out=4, kernel=1, weight_bits=4, out_bits=1, pe=4, simd=4),
        dict(kind="flatten"),
        dict(out=3, weight_bits=8, out_bits=None, pe=1, simd=4)],
        count=6, argmax=True, name="cnn")
    nets.append(net)
    net, _ = chain(rng, Input((5, 5, 3), 1), [
        dict(kind="conv2d", out=4, kernel=2, weight_bits=1, out_bits=1, stride=1, pe=1,
             simd=3),
        dict(kind="global_sum_pool"),
        dict(out=2, weight_bits=16, out_bits=None, pe=2, simd=4)], count=4, name="gsp")
    nets.append(net)
    nets.append(residual_block(False)[0])
    return nets


def _read_seed(name: str, toml: Path) -> Seed:
    text = toml.read_text()
    doc = tomllib.loads(text)
    npz = toml.parent / doc.get("weights", toml.stem + ".npz")
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    return Seed(name, text, doc, arrays)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[Seed]:
    found = [_read_seed(name, DESIGNS / f"{name}.toml") for name in SHIPPED]
    folder = tmp_path_factory.mktemp("seeds")
    for net in _generated_networks():
        save(net, folder / f"{net.name}.toml")
        found.append(_read_seed(net.name, folder / f"{net.name}.toml"))
    return found


# --- TOML writing (the mutated document back to text) ----------------------------------------

def _key(k: str) -> str:
    if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k):
        return k
    return _string(k)


def _string(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        elif 0xD800 <= ord(c) <= 0xDFFF:
            out.append("?")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, Raw):
        return v.text
    raise TypeError(type(v))


@dataclass
class Raw:
    """TOML text written as is (deep nesting the writer would recurse into)."""

    text: str


def dump(doc: dict) -> str:
    lines = []
    tables = []
    for k, v in doc.items():
        if isinstance(v, dict):
            tables.append((k, v, False))
        elif isinstance(v, list) and v and all(isinstance(t, dict) for t in v):
            tables.append((k, v, True))
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v, array in tables:
        for t in (v if array else [v]):
            lines.append("")
            lines.append(f"[[{_key(k)}]]" if array else f"[{_key(k)}]")
            lines += [f"{_key(kk)} = {_value(vv)}" for kk, vv in t.items()]
    return "\n".join(lines) + "\n"


# --- mutations -------------------------------------------------------------------------------

LAYER_FIELDS = ("name", "kind", "out_features", "weight_bits", "output", "out_bits", "out_signed",
                "bias", "pe", "simd", "weight_memory", "mac", "kernel", "stride", "padding",
                "pad_value", "size", "inputs")
KINDS = ("dense", "conv2d", "depthwise_conv2d", "maxpool", "flatten", "global_sum_pool", "add",
         "argmax")
SPECIFIC = {
    "kind": KINDS, "output": ("thresholds", "requantize", "none", "Thresholds"),
    "padding": ("valid", "same", "full"), "mac": ("auto", "lut", "dsp", "DSP"),
    "weight_memory": ("rom", "spram", "ram"), "name": ("input", "argmax", "fc1", "conv1",
                                                        "a" * 64, "a" * 65, "Fc1", "x y",
                                                        "fc1\n", "9a", "_a", "é"),
    "weights": ("other.npz", "", ".", "..", "/etc/passwd", "/dev/zero", "missing/x.npz",
                "w\u0000.npz", "a" * 300 + ".npz"),
    "shape": ([], [0], [-1], [1], [64], [8, 8], [8, 8, 1], [1, 1, 1, 1], [2 ** 20, 2 ** 20],
              [10 ** 30], [64.0], ["64"], [[64]], [True]),
    "inputs": ([], ["input"], ["input", "input"], ["nope"], ["fc1", "fc2"], [1], "input",
               ["argmax"], ["input"] * 3),
}
GENERIC = (0, -1, 1, 2, 3, 4, 7, 8, 9, 16, 17, 255, 256, 2 ** 31, 2 ** 63 - 1, -2 ** 63,
           10 ** 30, 0.0, 0.5, 1.0, 3.0, float("inf"), float("nan"), True, False, "", "x",
           "1", "a" * 5000, "é", "😀", "two\nlines", "\u0000", "\u202e", [], [1], [1, 2],
           [[1]], ["a"], {}, {"a": 1})


def _deep(depth: int, rnd: random.Random) -> Raw:
    if rnd.random() < 0.5:
        return Raw("[" * depth + "1" + "]" * depth)
    return Raw("{a = " * depth + "1" + "}" * depth)


def _tables(doc: dict) -> list[dict]:
    """The tables of a document a field mutation can change: top level, input, layers."""
    found = [doc]
    for v in doc.values():
        if isinstance(v, dict):
            found.append(v)
        elif isinstance(v, list):
            found += [t for t in v if isinstance(t, dict)]
    return found


def _pick_value(key: str, rnd: random.Random):
    if key in SPECIFIC and rnd.random() < 0.5:
        return copy.deepcopy(rnd.choice(SPECIFIC[key]))
    if rnd.random() < 0.04:
        return _deep(rnd.choice((5, 50, 200, 500, 2000)), rnd)
    return copy.deepcopy(rnd.choice(GENERIC))


def mutate_doc(doc: dict, arrays: dict, rnd: random.Random) -> str:
    """One mutation of the TOML document, in place; returns what it did."""
    layers = doc.get("layers") if isinstance(doc.get("layers"), list) else []
    op = rnd.choice(("set", "set", "set", "set", "delete", "unknown", "layer", "layer",
                     "kind", "table"))
    if op == "layer" and layers:
        how = rnd.choice(("delete", "duplicate", "swap", "rename", "move"))
        i = rnd.randrange(len(layers))
        if how == "delete":
            del layers[i]
        elif how == "duplicate":
            layers.insert(i, copy.deepcopy(layers[i]))
        elif how == "swap" and len(layers) > 1:
            j = rnd.randrange(len(layers))
            layers[i], layers[j] = layers[j], layers[i]
        elif how == "rename" and isinstance(layers[i], dict):
            layers[i]["name"] = rnd.choice([t.get("name") for t in layers
                                            if isinstance(t, dict)] + ["input", "new"])
        else:
            layers.append(layers.pop(i))
        return f"layer {how} {i}"
    if op == "kind" and layers:
        t = rnd.choice(layers)
        if isinstance(t, dict):
            t["kind"] = rnd.choice(KINDS)
            return f"kind {t['kind']}"
    if op == "table":
        key = rnd.choice(("input", "layers", "dataset", "name", "weights"))
        how = rnd.choice(("delete", "retype"))
        if how == "delete":
            doc.pop(key, None)
        else:
            doc[key] = _pick_value(key, rnd)
        return f"table {how} {key}"
    table = rnd.choice(_tables(doc))
    if op == "delete" and table:
        key = rnd.choice(sorted(table))
        del table[key]
        return f"delete {key}"
    if op == "unknown":
        key = rnd.choice(("extra", "Name", "out_feature", "kernel_size", "é", "a" * 300,
                          "input", "layers", "weights", "dataset"))
        table[key] = _pick_value(key, rnd)
        return f"add {key}"
    keys = sorted(table) + ["pe", "simd", "stride", "pad_value", "out_bits", "lanes", "signed"]
    key = rnd.choice(keys)
    table[key] = _pick_value(key, rnd)
    return f"set {key}"


def _divisor_or_so(n: int, rnd: random.Random) -> int:
    """A divisor of ``n`` mostly, sometimes a number near one."""
    divisors = [d for d in range(1, min(n, 64) + 1) if n % d == 0] or [1]
    d = rnd.choice(divisors)
    return d if rnd.random() < 0.8 else d + rnd.choice((-1, 1))


def mutate_plausibly(doc: dict, rnd: random.Random) -> str:
    """A change a user might make that often still describes a valid network: another
    folding, padding, stride, name, input width or signedness, mac mapping or memory."""
    layers = [t for t in doc.get("layers", []) if isinstance(t, dict)] \
        if isinstance(doc.get("layers"), list) else []
    inp = doc.get("input") if isinstance(doc.get("input"), dict) else {}
    shape = inp.get("shape") if isinstance(inp.get("shape"), list) else [16]
    last = shape[-1] if shape and isinstance(shape[-1], int) and shape[-1] > 0 else 16
    op = rnd.choice(("fold", "fold", "lanes", "input", "padding", "stride", "name", "mac",
                     "memory", "out_signed", "bias"))
    if op == "lanes" or not layers:
        inp["lanes"] = _divisor_or_so(last, rnd)
        return "plausible lanes"
    t = rnd.choice(layers)
    if op == "fold":
        key = rnd.choice(("pe", "simd"))
        base = t.get("out_features", last) if key == "pe" else last
        t[key] = _divisor_or_so(base if isinstance(base, int) and base > 0 else 16, rnd)
        return f"plausible {key}"
    if op == "input":
        key = rnd.choice(("bits", "signed"))
        inp[key] = rnd.choice((1, 2, 4, 8, 12, 16)) if key == "bits" else rnd.random() < 0.5
        return f"plausible input.{key}"
    if op == "padding":
        t["padding"] = rnd.choice(("same", "valid"))
        t["pad_value"] = rnd.choice((-1, 0, 1, 3))
    elif op == "stride":
        t["stride"] = rnd.choice((1, 1, 2, 3))
    elif op == "name":
        t["name"] = rnd.choice(("renamed", "z" * 64, "a_1"))
    elif op == "mac":
        t["mac"] = rnd.choice(("auto", "lut", "dsp"))
    elif op == "memory":
        t["weight_memory"] = rnd.choice(("rom", "spram"))
    elif op == "out_signed":
        t["out_signed"] = rnd.random() < 0.5
    else:
        t["bias"] = rnd.random() < 0.5
    return f"plausible {op}"


def mutate_text(text: str, rnd: random.Random) -> str | bytes:
    """One mutation of the TOML text (syntax, encoding, size)."""
    lines = text.splitlines()
    op = rnd.choice(("truncate", "drop_line", "dup_line", "garbage", "encoding", "bom", "empty",
                     "deep", "long", "swap_lines"))
    if op == "truncate":
        return text[:rnd.randrange(len(text) + 1)]
    if op == "drop_line" and lines:
        del lines[rnd.randrange(len(lines))]
    elif op == "dup_line" and lines:
        i = rnd.randrange(len(lines))
        lines.insert(i, lines[i])
    elif op == "swap_lines" and len(lines) > 1:
        i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "garbage":
        pos = rnd.randrange(len(text) + 1)
        junk = "".join(rnd.choice('[]{}="\'\\\n#=,.x0-é\u0000\t') for _ in range(rnd.randint(1, 4)))
        return text[:pos] + junk + text[pos:]
    elif op == "encoding":
        data = text.encode()
        pos = rnd.randrange(len(data) + 1)
        return data[:pos] + rnd.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00")) + data[pos:]
    elif op == "bom":
        return "\ufeff" + text
    elif op == "empty":
        return ""
    elif op == "deep":
        depth = rnd.choice((100, 500, 999, 5000))
        return f"deep = {_deep(depth, rnd).text}\n" + text
    elif op == "long":
        return f'name = "{"a" * rnd.choice((70, 5000, 2_000_000))}"\n' + \
            "\n".join(line for line in lines if not line.startswith("name"))
    return "\n".join(lines) + "\n"


def mutate_arrays(arrays: dict, rnd: random.Random, nrng: np.random.Generator) -> str:
    """One mutation of the NPZ's arrays, in place."""
    op = rnd.choice(("delete", "extra", "dtype", "dtype", "shape", "shape", "values", "values",
                     "object"))
    if not arrays:
        op = "extra"
    key = rnd.choice(sorted(arrays)) if arrays else "x.weights"
    a = arrays.get(key)
    if op == "delete":
        del arrays[key]
    elif op == "extra":
        layer = key.split(".")[0]
        new = rnd.choice((f"{layer}.bias", f"{layer}.thresholds", f"{layer}.multiplier",
                          "nope.weights", "weights", "a/b", "é.weights", f"{layer}.weights.npy",
                          ""))
        arrays[new] = nrng.integers(-3, 4, size=rnd.choice(((4,), (2, 3), ())))
        key = new
    elif op == "dtype":
        dtype = rnd.choice((np.float64, np.float32, np.bool_, np.uint64, np.int8, np.uint8,
                            np.complex64, "U3", "S2", "datetime64[s]", np.float16))
        try:
            arrays[key] = a.astype(dtype)
        except (TypeError, ValueError):
            arrays[key] = a.astype(np.float64)
        if dtype is np.uint64 and a.size:
            b = arrays[key].copy()
            b.flat[0] = np.iinfo(np.uint64).max
            arrays[key] = b
    elif op == "shape":
        how = rnd.choice(("T", "flat", "axis", "scalar", "zero", "row", "col", "kernel0"))
        if how == "T":
            arrays[key] = a.T.copy()
        elif how == "flat":
            arrays[key] = a.reshape(-1)
        elif how == "axis":
            arrays[key] = a[None]
        elif how == "scalar":
            arrays[key] = np.array(a.flat[0] if a.size else 0)
        elif how == "zero":
            arrays[key] = np.zeros((0,) + a.shape[1:], a.dtype)
        elif how == "row" and a.ndim:
            arrays[key] = np.concatenate([a, a[:1]], axis=0)
        elif how == "col" and a.ndim > 1:
            arrays[key] = np.concatenate([a, a[:, :1]], axis=1)
        elif how == "kernel0" and a.ndim >= 3:
            arrays[key] = np.zeros((a.shape[0], 0, 0) + a.shape[3:], a.dtype)
        return f"shape {how} {key}"
    elif op == "values" and a is not None and a.size:
        b = a.astype(np.int64)
        how = rnd.choice(("extreme", "zero", "random", "reverse", "huge"))
        i = rnd.randrange(b.size)
        if how == "extreme":
            b.flat[i] = rnd.choice((2 ** 15, -2 ** 15 - 1, 2 ** 31, -2 ** 31, 2 ** 62,
                                    -2 ** 63, 2 ** 63 - 1, 48, 47, -1, 128, -129, 256))
        elif how == "zero":
            b[...] = 0
        elif how == "random":
            b = nrng.integers(-(2 ** 20), 2 ** 20, size=b.shape)
        elif how == "reverse" and b.ndim == 2:
            b = b[:, ::-1].copy()
        else:
            b = b * rnd.choice((2, 1000, 2 ** 20, -1))
        arrays[key] = b
        return f"values {how} {key}"
    elif op == "object" and a is not None:
        arrays[key] = np.array([1, None, "x"], dtype=object)
    return f"{op} {key}"


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=True)
    return buf.getvalue()


def write_npz(path: Path, arrays: dict, rnd: random.Random, corrupt: bool) -> str:
    """Write the arrays as an NPZ; with ``corrupt``, break the file itself in one way (its
    bytes, a member's .npy header, its kind). Returns what it did."""
    op = rnd.choice(("truncate", "flip", "empty", "dir", "npy", "garbage", "header_huge",
                     "header_broken", "header_version", "member_not_npy", "link_device",
                     "compressed")) if corrupt else "plain"
    members = {f"{k}.npy": _npy(v) for k, v in arrays.items()}
    if op == "header_huge" and members:
        name = rnd.choice(sorted(members))
        a = arrays[name[:-4]]
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.int64)),
                  "fortran_order": False,
                  "shape": rnd.choice(((100000, 100000), (2 ** 40,), (2 ** 24 + 1,),
                                       (3, 2 ** 62), (-5,), (2 ** 63, 2)))}
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, header)
        members[name] = buf.getvalue() + bytes(8 * min(a.size, 1000))
    elif op == "header_broken" and members:
        name = rnd.choice(sorted(members))
        data = bytearray(members[name])
        how = rnd.choice(("quote", "paren", "brace", "random", "length", "magic", "descr",
                          "nested"))
        text = bytes(data[10:10 + data[8] + 256 * data[9]])
        if how == "quote":
            text = text.replace(b"'", b"", 1)
        elif how == "paren":
            text = text.replace(b")", b"", 1)
        elif how == "brace":
            text = text.replace(b"{", b"(", 1)
        elif how == "random":
            text = bytes(rnd.randrange(256) for _ in range(len(text)))
        elif how == "descr":
            text = text.replace(b"'descr': '", b"'descr': 'zz", 1)
        elif how == "nested":
            text = (b"{'descr': '<i8', 'fortran_order': False, 'shape': " + b"(" * 200
                    + b")" * 200 + b"}").ljust(len(text), b" ")
        data[10:10 + data[8] + 256 * data[9]] = text
        if how == "length":
            data[8], data[9] = 0xFF, 0xFF
        elif how == "magic":
            data[0] = 0
        members[name] = bytes(data)
        op = f"header_broken {how}"
    elif op == "header_version" and members:
        name = rnd.choice(sorted(members))
        data = bytearray(members[name])
        data[6:8] = bytes(rnd.choice(((3, 0), (9, 9), (0, 0), (2, 0))))
        members[name] = bytes(data)
    elif op == "member_not_npy":
        members[rnd.choice(("readme.txt", "dir/", "x.weights"))] = b"hello"
    if path.is_dir():
        shutil.rmtree(path)
    if op == "dir":
        path.mkdir()
        return op
    if op == "link_device":
        path.symlink_to(rnd.choice(("/dev/zero", "/dev/null", path.name)))  # or a loop
        return op
    if op == "npy":
        first = next(iter(arrays.values()), np.zeros(3))
        path.write_bytes(_npy(first))
        return op
    method = zipfile.ZIP_DEFLATED if op == "compressed" else zipfile.ZIP_STORED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    data = buf.getvalue()
    if op == "truncate":
        data = data[:rnd.randrange(len(data) + 1)]
    elif op == "flip" and data:
        b = bytearray(data)
        for _ in range(rnd.randint(1, 8)):
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        data = bytes(b)
    elif op == "empty":
        data = b""
    elif op == "garbage":
        data = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 300)))
    path.write_bytes(data)
    return op


# --- one case --------------------------------------------------------------------------------

@dataclass
class Counts:
    cases: int = 0
    clean_errors: int = 0
    accepted: int = 0
    golden_runs: int = 0
    generated: int = 0
    small_accepted: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self, what: str) -> str:
        generated = f", {self.generated} through hwgen generate" if self.generated else ""
        return (f"{what}: {self.cases} cases, {self.clean_errors} clean errors, {self.accepted} "
                f"accepted ({self.golden_runs} run through the golden model{generated}), "
                f"{len(self.failures)} tracebacks or other failures")


def run_case(seed: Seed, index: int, root: Path, counts: Counts, golden_every: int,
             generate_every: int = 0) -> None:
    rnd = random.Random(f"{seed.name}/{index}")
    nrng = np.random.default_rng(index)
    case = root / f"case{index}"
    case.mkdir()
    doc, arrays = copy.deepcopy(seed.doc), dict(seed.arrays)
    ops = []
    text: str | bytes | None = None
    corrupt = False
    for _ in range(rnd.choice((1, 1, 1, 2, 3))):
        what = rnd.choice(("doc", "doc", "doc", "plausible", "plausible", "plausible", "text",
                           "arrays", "arrays", "arrays", "npz"))
        if what == "doc":
            ops.append(mutate_doc(doc, arrays, rnd))
        elif what == "plausible":
            ops.append(mutate_plausibly(doc, rnd))
        elif what == "npz":
            corrupt = True
        elif what == "text":
            text = mutate_text(text if isinstance(text, str) else
                               (seed.text if not ops else dump(doc)), rnd)
            ops.append("text")
        else:
            try:
                ops.append(mutate_arrays(arrays, rnd, nrng))
            except (TypeError, ValueError, OverflowError):  # an array an earlier step broke
                ops.append("arrays unchanged")
    toml = case / "spec.toml"
    weights = doc.get("weights")
    if not isinstance(weights, str):
        weights = "spec.npz"
    if "weights" in seed.doc and doc.get("weights") == seed.doc["weights"]:
        doc["weights"] = weights = "spec.npz"
    if text is None:
        text = dump(doc)
    if isinstance(text, str):
        text = text.replace(f'"{seed.doc.get("weights")}"', '"spec.npz"')
    toml.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    try:
        npz = case / weights
        in_case = npz.resolve().is_relative_to(case.resolve()) and npz.parent == case
    except (OSError, ValueError):
        in_case = False
    if in_case and npz.name not in ("", ".", "..", toml.name):
        try:
            ops.append(write_npz(npz, arrays, rnd, corrupt))
        except OSError as exc:  # a name the file system refuses: no NPZ
            ops.append(f"no npz ({exc.strerror})")
    before = tree(root)
    argv = ["check", str(toml)] + (["--json"] if index % 3 == 0 else [])
    outcome = run_main(argv)
    counts.cases += 1
    label = f"{seed.name} case {index} ({'; '.join(ops)})"
    try:
        if outcome.code == 0 and outcome.escaped is None and "Traceback" not in outcome.err:
            assert not outcome.err, f"exit 0 with messages: {outcome.err[:500]}"
            counts.accepted += 1
            if index % golden_every == 0:
                _run_golden(toml, nrng)
                counts.golden_runs += 1
            if generate_every and _small(toml) and counts.small_accepted % generate_every == 0:
                out = run_main(["generate", str(toml), "-o", str(case / "out")])
                assert out.code == 0 and out.escaped is None, \
                    f"check accepted the spec, generate did not: {out.describe()}"
                counts.generated += 1
            counts.small_accepted += _small(toml)
        else:
            line = assert_clean_error(outcome)
            assert line.startswith("hwgen: error: "), line
            named = (str(case) in line or str(toml) in line
                     or (isinstance(doc.get("weights"), str) and doc["weights"][:20] in line))
            assert named, f"the error does not name the file: {line}"
            counts.clean_errors += 1
        assert_untouched(before, root, allowed_new=(f"{case.name}/out",))
    except AssertionError as exc:
        counts.failures.append(f"{label}: {str(exc)[:1500]}")
    finally:
        if case.is_symlink() or case.is_file():
            case.unlink()
        else:
            shutil.rmtree(case, ignore_errors=True)


def _small(toml: Path) -> bool:
    """A network small enough to generate in a fraction of a second."""
    net = load(toml)
    return net.input_type.size <= 256 and sum(
        getattr(layer, "weights", np.zeros(0)).size for layer in net.layers) <= 4096


def _run_golden(toml: Path, nrng: np.random.Generator) -> None:
    """A network that loads runs on two inputs; outputs lie within the output type."""
    net = load(toml)
    if net.input_type.size > 4096 or sum(
            getattr(layer, "weights", np.zeros(0)).size for layer in net.layers) > 200_000:
        return
    x = random_inputs(nrng, net.input_type, 2)
    out = golden.run(net, x)
    for layer, t in zip(net.layers, net.types[1:], strict=True):
        y = out[layer.name]
        lo, hi = t.range
        assert y.shape == (2, *t.shape), (layer.name, y.shape, t.shape)
        assert lo <= int(y.min()) and int(y.max()) <= hi, (layer.name, t.describe())


def run_fuzz(seeds: list[Seed], root: Path, cases: int, start: int = 0,
             golden_every: int = 5, generate_every: int = 0) -> Counts:
    counts = Counts()
    designs_before = tree(DESIGNS)
    cwd = os.getcwd()
    os.chdir(root)  # anything written relative to the working folder lands under root
    try:
        for index in range(start, start + cases):
            run_case(seeds[index % len(seeds)], index, root, counts, golden_every,
                     generate_every)
    finally:
        os.chdir(cwd)
    assert_untouched(designs_before, DESIGNS)
    return counts


def _report(counts: Counts, what: str, capsys) -> None:
    with capsys.disabled():
        print(f"\n{counts.line(what)}")
    assert not counts.failures, "\n\n".join(counts.failures[:5])
    assert counts.clean_errors and counts.accepted  # the slice covered both outcomes


def test_spec_fuzz_fast_slice(seeds, tmp_path, capsys):
    counts = run_fuzz(seeds, tmp_path, FAST_CASES, generate_every=3)
    _report(counts, "spec fuzz (default slice)", capsys)
    assert counts.cases == FAST_CASES


@pytest.mark.slow
def test_spec_fuzz_long(seeds, tmp_path, capsys):
    counts = run_fuzz(seeds, tmp_path, SLOW_CASES, start=FAST_CASES, golden_every=3,
                      generate_every=2)
    _report(counts, "spec fuzz (long run)", capsys)


# --- the Python API: constructor arguments of every kind ------------------------------------

API_VALUES = (
    None, 0, -1, 1, 2, 3, 4, 16, 17, 2 ** 40, 10 ** 30, 1.0, 2.5, float("nan"), True, False,
    np.int64(2), np.int32(0), np.uint8(4), np.float64(2.0), np.bool_(True), complex(1, 1), "x",
    "", "rom", "spram", "dsp", "lut", "same", "valid", "input", "fc1", b"x", [], (), [1],
    ("input",), ["input", "input"], {}, {"kind": "dense", "name": "d"}, np.array(2),
    np.zeros((2, 2)), np.zeros((2, 2), np.float32), np.ones(3, bool), np.array(["a"]),
    np.array([1, None], object), np.zeros((0, 4), int), np.ones((2, 4, 1), int),
    np.full((2, 2), 2 ** 40), Path("x.npz"), Requantize(np.ones(2, int), np.zeros(2, int), 4),
)


def _related(value, rnd: random.Random):
    """A value near ``value``: the same array changed a little, a neighbouring number, the
    same number as another type, a string edited."""
    if isinstance(value, np.ndarray):
        how = rnd.choice(("float", "uint64", "T", "flat", "axis", "empty", "scale", "neg",
                          "row", "int8"))
        if how == "float":
            return value.astype(np.float64)
        if how == "uint64":
            return np.abs(value).astype(np.uint64)
        if how == "T":
            return value.T
        if how == "flat":
            return value.reshape(-1)
        if how == "axis":
            return value[None]
        if how == "empty":
            return value[:0]
        if how == "scale":
            return value * rnd.choice((2, 1000, 2 ** 20))
        if how == "neg":
            return -value
        if how == "row" and value.ndim:
            return np.concatenate([value, value[:1]])
        return value.astype(np.int8)
    if isinstance(value, bool):
        return rnd.choice((not value, int(value), np.bool_(value), str(value).lower()))
    if isinstance(value, int):
        return rnd.choice((value + 1, value - 1, 2 * value, 0, -value, float(value),
                           np.int64(value), str(value), value + 10 ** 6))
    if isinstance(value, str):
        return rnd.choice((value.upper(), value + "\n", value + " ", value * 20, value[:-1]))
    if isinstance(value, tuple):
        return rnd.choice((list(value), value + value, value[:-1], (None,) * len(value)))
    if isinstance(value, Requantize):
        field = rnd.choice(("multiplier", "shift", "bits", "signed"))
        return dataclasses.replace(value, **{field: _related(getattr(value, field), rnd)})
    return rnd.choice(API_VALUES)


def mutate_network(net: Network, rnd: random.Random) -> tuple[dict, str]:
    """The arguments of ``Network`` with one argument, or one field of the input or of a
    layer, replaced. Returns (keyword arguments, what changed)."""
    kw = dict(name=net.name, input=net.input, layers=list(net.layers), dataset=net.dataset)
    target = rnd.choice(("network", "input", "layer", "layer", "layer", "layer", "layers"))
    value_of = (lambda old: _related(old, rnd)) if rnd.random() < 0.6 \
        else (lambda old: rnd.choice(API_VALUES))
    if target == "network":
        key = rnd.choice(("name", "dataset"))
        kw[key] = value_of(kw[key])
        return kw, f"network.{key}"
    if target == "input":
        key = rnd.choice(("shape", "bits", "signed", "lanes"))
        kw["input"] = dataclasses.replace(net.input, **{key: value_of(getattr(net.input, key))})
        return kw, f"input.{key}"
    layers = kw["layers"]
    i = rnd.randrange(len(layers))
    if target == "layers":
        how = rnd.choice(("drop", "duplicate", "insert", "swap"))
        if how == "drop":
            del layers[i]
        elif how == "duplicate":
            layers.insert(i, layers[i])
        elif how == "insert":
            layers.insert(i, rnd.choice(API_VALUES))
        else:
            j = rnd.randrange(len(layers))
            layers[i], layers[j] = layers[j], layers[i]
        return kw, f"layers {how} {i}"
    layer = layers[i]
    key = rnd.choice([f.name for f in dataclasses.fields(layer)])
    layers[i] = dataclasses.replace(layer, **{key: value_of(getattr(layer, key))})
    return kw, f"layers[{i}].{key}"


def run_api_case(nets: list[Network], index: int, folder: Path, counts: Counts,
                 golden_every: int) -> None:
    """One mutated construction: SpecError (one line), or a network that saves and loads
    back equal (or that save refuses with SpecError) and runs in the golden model."""
    rnd = random.Random(f"api/{index}")
    net = nets[index % len(nets)]
    kw, what = mutate_network(net, rnd)
    counts.cases += 1
    label = f"{net.name} API case {index} ({what})"
    try:
        try:
            built = Network(**kw)
        except SpecError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("<python>: "), str(exc)
            counts.clean_errors += 1
            return
        counts.accepted += 1
        toml = folder / f"api{index}.toml"
        try:
            save(built, toml)
        except SpecError:
            return
        assert network_state(load(toml)) == network_state(built), "load(save(net)) != net"
        if index % golden_every == 0 and built.input_type.size <= 4096:
            out = golden.run(built, random_inputs(np.random.default_rng(index),
                                                  built.input_type, 2))
            for layer, t in zip(built.layers, built.types[1:], strict=True):
                assert t.range[0] <= int(out[layer.name].min()) <= \
                    int(out[layer.name].max()) <= t.range[1], layer.name
            counts.golden_runs += 1
    except Exception as exc:  # noqa: BLE001 - any other exception is what we look for
        counts.failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:1500]}")


@pytest.fixture(scope="module")
def api_seeds() -> list[Network]:
    return _generated_networks() + [load(DESIGNS / f"{name}.toml") for name in SHIPPED[:3]]


def run_api_fuzz(nets: list[Network], folder: Path, cases: int, start: int = 0,
                 golden_every: int = 4) -> Counts:
    counts = Counts()
    for index in range(start, start + cases):
        run_api_case(nets, index, folder, counts, golden_every)
    return counts


def test_api_fuzz_fast_slice(api_seeds, tmp_path, capsys):
    counts = run_api_fuzz(api_seeds, tmp_path, FAST_API_CASES)
    _report(counts, "API fuzz (default slice)", capsys)


@pytest.mark.slow
def test_api_fuzz_long(api_seeds, tmp_path, capsys):
    counts = run_api_fuzz(api_seeds, tmp_path, SLOW_API_CASES, start=FAST_API_CASES)
    _report(counts, "API fuzz (long run)", capsys)


# --- the writer and the mutations themselves ---------------------------------------------------

def test_dump_round_trips_every_seed(seeds):
    for seed in seeds:
        assert tomllib.loads(dump(seed.doc)) == seed.doc


def test_a_mutant_can_fail_the_invariant(seeds, tmp_path, monkeypatch):
    """The fuzzer sees a traceback: a loader that raises an unexpected error is a failure."""
    def broken(*args):
        raise ZeroDivisionError("injected")

    monkeypatch.setattr("hwgen.spec._check_keys", broken)  # the first check load makes
    counts = Counts()
    root = tmp_path / "r"
    root.mkdir()
    run_case(seeds[0], 0, root, counts, golden_every=1000)
    assert counts.cases == 1 and len(counts.failures) == 1
    assert "injected" in counts.failures[0] or "ZeroDivisionError" in counts.failures[0]


def test_spec_error_is_what_load_raises_for_a_mutant(seeds, tmp_path):
    """The in-process API agrees with the command: a mutant refused by check raises
    SpecError from load."""
    toml = tmp_path / "spec.toml"
    doc = copy.deepcopy(seeds[0].doc)
    doc["layers"][0]["pe"] = 0
    doc["weights"] = "spec.npz"
    toml.write_text(dump(doc))
    np.savez(tmp_path / "spec.npz", **seeds[0].arrays)
    with pytest.raises(SpecError, match=r"layers\[0\]\.pe: expected a positive integer or "
                       r"\"auto\", got 0"):
        load(toml)
