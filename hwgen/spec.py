"""Networks: the :class:`Input`, the :class:`Network` of layers, and their TOML + NPZ form.

A :class:`Network` is an :class:`Input` and a graph of layers (the kinds of
:mod:`hwgen.layers`, re-exported here: ``hwgen.spec.Dense`` …). Constructing one validates it
completely (every field's type and range, shapes chain, weights in range, foldings divide) and
infers every tensor's :class:`~hwgen.numeric.TensorType`; a problem raises :class:`SpecError`
naming the file and field. The input and layer dataclasses are plain frozen values: the
network checks them, by the same code for a Python user and the TOML loader (which only maps
TOML tables to them), and keeps checked copies (NumPy scalars as Python ones, arrays as int64).
:func:`save` writes what :func:`load` reads back as an equal network. docs/spec.md documents the
TOML schema, the limits and the numeric contract.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import tomllib
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import (
    MAX_ELEMENTS,
    MAX_INPUT_DIMS,
    MAX_NAME,
    MAX_TOML_BYTES,
    SpecError,
    Where,
    check_bits,
    check_bool,
    check_inputs,
    check_name,
    check_positive,
    printable,
    reason,
    show,
)
from .layers import (
    INPUT,
    KINDS,
    Add,
    Argmax,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    Flatten,
    GlobalSumPool,
    Layer,
    MaxPool,
    Requantize,
    same_padding,
)
from .layers.tables import toml_value
from .layers.weighted import (
    DSP_MIN_PRODUCT_BITS,
    DSP_OPERAND_BITS,
    MAC_KINDS,
    REQUANTIZE_PRODUCT_BITS,
    WEIGHT_MEMORIES,
    dsp_operand_problem,
    dsp_packing,
    dsp_product_problem,
    layer_dsp_pack,
    packed_operand_bits,
)
from .numeric import TensorType

__all__ = [
    "SpecError",
    "Input",
    "Requantize",
    "Dense",
    "Conv2d",
    "DepthwiseConv2d",
    "MaxPool",
    "GlobalSumPool",
    "Add",
    "Flatten",
    "Argmax",
    "Layer",
    "same_padding",
    "Network",
    "INPUT",
    "WEIGHT_MEMORIES",
    "MAC_KINDS",
    "DSP_OPERAND_BITS",
    "DSP_MIN_PRODUCT_BITS",
    "dsp_operand_problem",
    "dsp_product_problem",
    "dsp_packing",
    "packed_operand_bits",
    "layer_dsp_pack",
    "REQUANTIZE_PRODUCT_BITS",
    "load",
    "load_npz",
    "save",
    "MAX_ELEMENTS",
    "MAX_NAME",
]


@dataclass(frozen=True, eq=False)
class Input:
    """The network input: ``shape`` elements of ``bits`` bits, streamed ``lanes`` per beat.

    ``bits == 1`` is a binary (±1) input; otherwise values are unsigned unless ``signed``.
    ``lanes`` (elements per beat) must divide the last dimension; ``None`` lets the network
    choose (the first layer's SIMD).
    """

    shape: tuple[int, ...]
    bits: int
    signed: bool = False
    lanes: int | None = None

    def check(self, where: Where) -> tuple[Input, TensorType]:
        """Every field checked: a checked copy (NumPy integers and bools as Python ones) and
        the input's tensor type."""
        if not isinstance(self.shape, tuple) or not self.shape:
            raise where.spec_error("shape", f"expected a list of positive integers, got "
                                   f"{show(self.shape)}")
        if len(self.shape) > MAX_INPUT_DIMS:
            raise where.spec_error("shape", f"{len(self.shape)} dimensions, expected 1 to "
                                   f"{MAX_INPUT_DIMS}: (N,), (H, W) or (H, W, C)")
        shape = tuple(check_positive(dim, "shape", where) for dim in self.shape)
        if math.prod(shape) > MAX_ELEMENTS:
            raise where.spec_error("shape", f"{shape} has {math.prod(shape):,} elements, more "
                                   f"than the {MAX_ELEMENTS:,} a tensor may hold")
        bits = check_bits(self.bits, "bits", where)
        signed = check_bool(self.signed, "signed", where)
        lanes = self.lanes
        if lanes is not None:
            lanes = check_positive(lanes, "lanes", where)
            if shape[-1] % lanes:
                raise where.spec_error("lanes", f"{lanes} does not divide the last "
                                       f"dimension {shape[-1]} of the input")
        return Input(shape, bits, signed, lanes), TensorType(shape, bits, signed)


def _check_tensor(t: TensorType, where: Where) -> None:
    """A layer's output fits the limits every tensor keeps: at most :data:`MAX_ELEMENTS`
    elements, values within 64-bit signed integers (the golden model computes in int64)."""
    if t.size > MAX_ELEMENTS:
        raise SpecError(where.spec, where.prefix, f"the output {t.shape} has {t.size:,} "
                        f"elements, more than the {MAX_ELEMENTS:,} a tensor may hold")
    lo, hi = t.range
    if lo < -(1 << 63) or hi >= 1 << 63:
        raise SpecError(where.spec, where.prefix, f"the output's values reach {lo}..{hi}, "
                        f"beyond 64-bit signed integers; quantize an earlier output "
                        f"(thresholds or requantize)")


_COUNTS = {2: "two", 3: "three"}


def output_names(layer: Layer) -> tuple[str, ...]:
    """The tensors a layer writes: its name, or ``<name>.0``, ``<name>.1``… for a layer with
    several outputs."""
    if layer.outputs == 1:
        return (layer.name,)
    return tuple(f"{layer.name}.{k}" for k in range(layer.outputs))


@dataclass(eq=False)
class Network:
    """A validated network: input, layers, and every tensor's type.

    ``types[0]`` is the input's type and ``types[i + 1]`` layer i's (first) output's;
    :meth:`type_of` gives any tensor's. ``source`` and ``arrays_source`` name where the
    description and the integer arrays came from, for error messages; ``dataset`` optionally
    names an NPZ with a test split (``x`` values and ``y`` labels).
    """

    name: str
    input: Input
    layers: list[Layer]
    dataset: Path | None = None
    source: str = "<python>"
    arrays_source: str = "<python>"
    types: list[TensorType] = field(init=False)
    #: Each layer's input tensor names (``"input"``, a layer name or ``<layer>.<k>``), in
    #: port order.
    sources: list[tuple[str, ...]] = field(init=False)
    #: Every tensor's type by name.
    tensor_types: dict[str, TensorType] = field(init=False)

    def __post_init__(self) -> None:
        self.source, self.arrays_source = str(self.source), str(self.arrays_source)
        check_name(self.name, "name", source=self.source)
        if not isinstance(self.input, Input):
            raise SpecError(self.source, "input", f"expected a hwgen.spec.Input, got "
                            f"{type(self.input).__name__}")
        self.input, input_type = self.input.check(Where(self.source, self.arrays_source,
                                                        "input"))
        if not isinstance(self.layers, list | tuple):
            raise SpecError(self.source, "layers", f"expected a list of layers, got "
                            f"{type(self.layers).__name__}")
        self.layers = list(self.layers)
        if not self.layers:
            raise SpecError(self.source, "layers", "a network needs at least one layer")
        classes = tuple(KINDS.values())
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, classes):
                hint = (" (a TOML table; in Python build the layer, e.g. hwgen.spec.Dense(...))"
                        if isinstance(layer, dict) else "")
                raise SpecError(self.source, f"layers[{index}]", f"expected a layer ("
                                f"{', '.join(c.__name__ for c in classes)}), got "
                                f"{type(layer).__name__}{hint}")
        if self.dataset is not None:
            if not isinstance(self.dataset, str | os.PathLike):
                raise SpecError(self.source, "dataset", f"expected a file name, got "
                                f"{show(self.dataset)}")
            self.dataset = Path(self.dataset)
            if not self.dataset.name:
                raise SpecError(self.source, "dataset", f"expected a file name, got "
                                f"{show(str(self.dataset))}")
        self.sources = self._resolve_sources()
        by_name = {INPUT: input_type}
        types = [input_type]
        for index, layer in enumerate(self.layers):
            where = self._where(index)
            if layer.last_only and index != len(self.layers) - 1:
                raise where.spec_error("kind", f"{layer.kind} must be the last layer")
            checked, outs = layer.check([by_name[src] for src in self.sources[index]], where)
            for t in outs:
                _check_tensor(t, where)
            self.layers[index] = checked
            types.append(outs[0])
            by_name.update(zip(output_names(checked), outs, strict=True))
        self.types = types
        self.tensor_types = by_name
        self._check_array_total()

    def _where(self, index: int) -> Where:
        return Where(self.source, self.arrays_source, f"layers[{index}]")

    def _check_array_total(self) -> None:
        """All the layers' arrays hold at most :data:`MAX_ELEMENTS` elements (what a weights
        file may hold), so that every network :func:`save` writes loads back."""
        total = 0
        for layer in self.layers:
            for key, array in layer.arrays():
                total += array.size
                if total > MAX_ELEMENTS:
                    raise SpecError(self.arrays_source, key, f"the network's arrays hold more "
                                    f"than the {MAX_ELEMENTS:,} elements a weights file may "
                                    f"hold")

    def _resolve_sources(self) -> list[tuple[str, ...]]:
        """Each layer's input tensor names: its ``inputs``, or the previous layer's output
        (the network input for the first). Refuses bad names, forward references, cycles and
        tensors no layer reads."""
        names: dict[str, int] = {}
        producer: dict[str, int] = {}
        for index, layer in enumerate(self.layers):
            where = self._where(index)
            check_name(layer.name, "name", where)
            if layer.name == INPUT:
                raise where.spec_error("name", f"{INPUT!r} names the network input; choose "
                                       f"another layer name")
            if layer.name in names:
                raise where.spec_error("name", f"duplicate layer name {layer.name!r}")
            names[layer.name] = index
            producer.update({t: index for t in output_names(layer)})
        stems: dict[str, str] = {}  # tensor names as port names: <layer>.<k> → <layer>_<k>
        for tensor in producer:
            stem = tensor.replace(".", "_")
            if stem in stems:
                index = producer[tensor] if "." not in tensor else producer[stems[stem]]
                raise self._where(index).spec_error(
                    "name", f"{self.layers[index].name!r} clashes with the output "
                    f"{(tensor if '.' in tensor else stems[stem])!r} (both name the port "
                    f"tap_{stem})")
            stems[stem] = tensor
        sources = []
        for index, layer in enumerate(self.layers):
            where = self._where(index)
            given = check_inputs(layer.inputs, where)
            if given != layer.inputs:  # a list given: stored as a tuple
                self.layers[index] = layer = dataclasses.replace(layer, inputs=given)
            wanted = layer.arity
            if not given:
                if wanted != 1:
                    count = "two or more" if wanted is None else _COUNTS.get(wanted, str(wanted))
                    raise where.spec_error("inputs", f"{layer.kind} needs {count} input "
                                           f"tensors")
                previous = output_names(self.layers[index - 1]) if index else (INPUT,)
                if len(previous) > 1:
                    raise where.spec_error("inputs", f"the layer before has "
                                           f"{len(previous)} outputs; name one of "
                                           f"{', '.join(map(repr, previous))}")
                given = previous
            if wanted is None and len(given) < 2:
                raise where.spec_error("inputs", f"expected two or more tensor names, got "
                                       f"{show(list(given))}")
            if wanted is not None and len(given) != wanted:
                raise where.spec_error("inputs", f"expected {wanted} tensor name(s), got "
                                       f"{show(list(given))}")
            for src in given:
                if src != INPUT and src not in producer:
                    hint = ""
                    if src in names:
                        outs = output_names(self.layers[names[src]])
                        hint = f"; {src!r} has {len(outs)} outputs: " \
                               f"{', '.join(map(repr, outs))}"
                    raise where.spec_error("inputs", f"unknown tensor {show(src)} (expected "
                                           f"{INPUT!r} or a layer name{hint})")
                if src != INPUT and producer[src] >= index:
                    cycle = self._cycle_through(index, producer)
                    if cycle:
                        raise where.spec_error("inputs", "the graph has a cycle: "
                                               + " → ".join(cycle))
                    raise where.spec_error("inputs", f"{show(src)} is defined later (layers"
                                           f"[{producer[src]}]); list layers in dataflow "
                                           f"order")
            sources.append(given)
        read = {src for srcs in sources for src in srcs}
        for index, layer in enumerate(self.layers):
            unread = [t for t in output_names(layer) if t not in read]
            if index == len(self.layers) - 1:
                if layer.outputs > 1:
                    raise self._where(index).spec_error(
                        "kind", f"{layer.kind} has {layer.outputs} outputs and cannot be the "
                        f"last layer (only one tensor leaves the network)")
            elif unread:
                what = f"the output of {layer.name!r}" if layer.outputs == 1 \
                    else f"the output {unread[0]!r} of {layer.name!r}"
                raise self._where(index).spec_error(
                    "name", f"{what} is read by no layer (only the last layer's output leaves "
                    f"the network)")
        if INPUT not in read:
            raise SpecError(self.source, "input", "no layer reads the network input")
        return sources

    def _cycle_through(self, start: int, producer: dict[str, int]) -> list[str]:
        """A cycle of layer names through layer ``start``, or [] when there is none."""
        def inputs_of(i: int) -> list[int]:
            layer = self.layers[i]
            given = tuple(layer.inputs) or ((self.layers[i - 1].name,) if i else ())
            return [producer[g] for g in given if g in producer]

        path: list[int] = []

        def walk(i: int) -> bool:
            if i in path:
                path.append(i)
                return i == start
            path.append(i)
            if any(walk(j) for j in inputs_of(i)):
                return True
            path.pop()
            return False

        if not walk(start):
            return []
        return [self.layers[i].name for i in reversed(path)]

    @property
    def input_type(self) -> TensorType:
        return self.types[0]

    @property
    def output_type(self) -> TensorType:
        return self.types[-1]

    def type_of(self, tensor: str) -> TensorType:
        """The type of a tensor: ``"input"``, a layer's output or ``<layer>.<k>``."""
        return self.tensor_types[tensor]

    def input_types(self, index: int) -> list[TensorType]:
        """The types of layer ``index``'s inputs, in port order."""
        return [self.tensor_types[src] for src in self.sources[index]]

    def layer_io(self) -> list[tuple[Layer, TensorType, TensorType]]:
        """Each layer with its (first) input and its (first) output tensor types."""
        return [(layer, self.type_of(self.sources[i][0]), self.types[i + 1])
                for i, layer in enumerate(self.layers)]

    @property
    def is_chain(self) -> bool:
        """Every layer reads the previous one (no branches, no add)."""
        return all(src == ((self.layers[i - 1].name,) if i else (INPUT,))
                   for i, src in enumerate(self.sources))


# ---------------------------------------------------------------------------------------------
# TOML + NPZ

_INPUT_KEYS = {"shape", "bits", "signed", "lanes"}
_TOP_KEYS = {"name", "weights", "input", "layers", "dataset"}


def _check_keys(table: dict, allowed: set[str], source: str, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            name = f"{prefix}.{key}" if prefix else key
            raise SpecError(source, name, f"unknown field (expected one of: "
                            f"{', '.join(sorted(allowed))})")


def _require(table: dict, key: str, kind: type | tuple, source: str, prefix: str):
    name = f"{prefix}.{key}" if prefix else key
    if key not in table:
        raise SpecError(source, name, "missing")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(
            k.__name__ for k in kind)
        raise SpecError(source, name, f"expected {expected}, got {show(value)}")
    return value


def load_npz(path: str | os.PathLike, source: str, field: str, *,
             max_elements: int = MAX_ELEMENTS, what: str = "weights file") -> dict[str, np.ndarray]:
    """The arrays of the NPZ at ``path``, by name, every .npy header read and checked before
    its data: a numeric dtype (no object arrays, never unpickled) and at most
    ``max_elements`` elements in all. ``source`` and ``field`` name where the path was given
    (a spec's ``weights`` or ``dataset.test``), ``what`` the file in messages. Any problem is a
    :class:`SpecError` naming ``source: field`` (a missing file, a folder, a device) or the NPZ
    and the array (an empty file, a .npy, a broken header, truncated data)."""
    path = Path(path)
    shown = repr(str(path))
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise SpecError(source, field, f"{what} {shown} not found") from None
    except (OSError, ValueError) as exc:
        raise SpecError(source, field, f"{what} {shown}: {reason(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError(source, field, f"{what} {shown} is a directory, not an NPZ file")
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(source, field, f"{what} {shown} is not a regular file")
    npz = str(path)
    if info.st_size == 0:
        raise SpecError(npz, "", "empty file, expected an NPZ archive of integer arrays "
                        "(numpy.savez)")
    try:
        with open(path, "rb") as f:
            if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
                raise SpecError(npz, "", "a single .npy array, expected an NPZ archive of "
                                "named arrays (numpy.savez)")
            f.seek(0)
            with zipfile.ZipFile(f) as archive, warnings.catch_warnings():
                # numpy warns when it reads a header written by Python 2: read it quietly
                warnings.simplefilter("ignore")
                return _read_members(archive, npz, max_elements, what)
    except SpecError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise SpecError(npz, "", f"not a readable NPZ file ({reason(exc)})") from None


_NPY_MAGIC = b"\x93NUMPY"


def _read_members(archive: zipfile.ZipFile, npz: str, max_elements: int,
                  what: str) -> dict[str, np.ndarray]:
    """Every member of an open NPZ archive as an array, keyed by its name without ``.npy``."""
    arrays: dict[str, np.ndarray] = {}
    total = 0
    for member in archive.infolist():
        name = member.filename
        if not name.endswith(".npy"):
            raise SpecError(npz, printable(name), "not a .npy array (an NPZ archive holds "
                            "only .npy members, as numpy.savez writes them)")
        key = printable(name[:-len(".npy")])
        if key in arrays:
            raise SpecError(npz, key, "appears twice in the archive")
        try:
            with archive.open(member) as f:
                shape, dtype = _npy_header(f)
        except Exception as exc:  # noqa: BLE001 - any failure to parse bytes: unreadable
            raise SpecError(npz, key, f"not a readable .npy array ({reason(exc)})") from None
        if dtype.hasobject or dtype.kind not in "biufc":
            kind = "object" if dtype.hasobject else str(dtype)
            raise SpecError(npz, key, f"dtype {kind}, expected an integer dtype")
        count = math.prod(shape)
        total += count
        if count > max_elements or total > max_elements:
            raise SpecError(npz, key, f"shape {shape} ({count:,} elements): the {what} "
                            f"may hold at most {max_elements:,} elements in all")
        try:
            with archive.open(member) as f:
                arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt data, bad CRC
            raise SpecError(npz, key, f"not a readable .npy array ({reason(exc)})") from None
    return arrays


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of the .npy file open at ``f`` (no data read)."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]}, expected 1.0 or 2.0")
    if not isinstance(shape, tuple) or any(not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"bad shape {show(shape)} in the header")
    return shape, dtype


def load(path: str | os.PathLike) -> Network:
    """Read a network from a TOML file and the NPZ of integer arrays it names."""
    if not isinstance(path, str | os.PathLike):
        raise SpecError("<python>", "path", f"expected a TOML file name (str or os.PathLike), "
                        f"got {show(path)}")
    path = Path(path)
    source = str(path)
    try:
        with open(path, "rb") as f:  # at most MAX_TOML_BYTES: the path may be /dev/zero
            data = f.read(MAX_TOML_BYTES + 1)
        text = data.decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise SpecError(source, "", "file not found") from None
    except IsADirectoryError:
        raise SpecError(source, "", "is a directory, not a TOML file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte, or not UTF-8
        raise SpecError(source, "", f"cannot read ({reason(exc)})") from None
    if len(data) > MAX_TOML_BYTES:
        raise SpecError(source, "", f"larger than {MAX_TOML_BYTES:,} bytes; a network spec "
                        f"is a few kilobytes (the arrays go in the NPZ)")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, "", f"invalid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(source, "", "invalid TOML: arrays or tables nested too deeply") from None
    _check_keys(doc, _TOP_KEYS, source, "")
    name = doc.get("name", path.stem)
    weights_name = doc.get("weights", f"{path.stem}.npz")
    if not isinstance(weights_name, str) or not weights_name or "\0" in weights_name:
        raise SpecError(source, "weights", f"expected a file name, got {show(weights_name)}")
    arrays_path = path.parent / weights_name
    arrays_source = str(arrays_path)

    table = _require(doc, "input", dict, source, "")
    _check_keys(table, _INPUT_KEYS, source, "input")
    shape = _require(table, "shape", list, source, "input")
    inp = Input(shape=tuple(shape), bits=_require(table, "bits", int, source, "input"),
                signed=table.get("signed", False), lanes=table.get("lanes"))

    tables = _require(doc, "layers", list, source, "")
    seen: set[str] = set()
    arrays = load_npz(arrays_path, source, "weights") if any(
        isinstance(t, dict) and t.get("kind") in KINDS and KINDS[t["kind"]].uses_arrays
        for t in tables) else {}
    layers: list[Layer] = []
    for index, layer_table in enumerate(tables):
        prefix = f"layers[{index}]"
        if not isinstance(layer_table, dict):
            raise SpecError(source, prefix, "expected a table ([[layers]])")
        kind = _require(layer_table, "kind", str, source, prefix)
        if kind not in KINDS:
            raise SpecError(source, f"{prefix}.kind", f"unknown layer kind {show(kind)} (expected "
                            f"one of: {', '.join(sorted(KINDS))})")
        layer_name = _require(layer_table, "name", str, source, prefix)
        where = Where(source, arrays_source, prefix)
        check_name(layer_name, "name", where)  # before its arrays are looked up by name
        if layer_name in seen:
            raise SpecError(source, f"{prefix}.name", f"duplicate layer name {layer_name!r}")
        seen.add(layer_name)
        table = {k: v for k, v in layer_table.items() if k != "inputs"}
        cls = KINDS[kind]
        _check_keys(table, {"name", "kind"} | cls.toml_keys, source, prefix)
        layer = cls.from_toml(table, arrays, where)
        if "inputs" in layer_table:  # checked with the layer's other fields by Network
            layer = dataclasses.replace(layer, inputs=layer_table["inputs"])
        layers.append(layer)
    if arrays:
        raise SpecError(arrays_source, sorted(arrays)[0], "array not used by any layer")

    dataset = None
    if "dataset" in doc:
        data_table = _require(doc, "dataset", dict, source, "")
        _check_keys(data_table, {"test"}, source, "dataset")
        test = _require(data_table, "test", str, source, "dataset")
        if not test or "\0" in test:
            raise SpecError(source, "dataset.test", f"expected a file name, got {show(test)}")
        dataset = path.parent / test
    return Network(name=name, input=inp, layers=layers, dataset=dataset, source=source,
                   arrays_source=arrays_source)


def save(network: Network, path: str | os.PathLike, *, header: str = "") -> None:
    """Write ``network`` as ``path`` (TOML) and the NPZ beside it (``<stem>.npz``); what it
    writes loads back (:func:`load`) as an equal network, or it raises :class:`SpecError`."""
    if not isinstance(network, Network):
        raise SpecError("<python>", "network", f"expected a hwgen.spec.Network, got "
                        f"{type(network).__name__}")
    if not isinstance(path, str | os.PathLike):
        raise SpecError("<python>", "path", f"expected a TOML file name (str or os.PathLike), "
                        f"got {show(path)}")
    path = Path(path)
    if path.suffix == ".npz":
        raise SpecError(str(path), "", "a .npz name for the TOML: the weights file "
                        "<stem>.npz would overwrite it; use a .toml name")
    for what, text in (("path", path.stem), ("dataset", network.dataset and
                                              network.dataset.name)):
        if text and not _encodable(text):
            raise SpecError(str(path), what, f"{show(text)} is not valid Unicode; TOML "
                            f"cannot hold it")
    arrays: dict[str, np.ndarray] = {}
    lines = [f"# {printable(line)}" for line in header.splitlines()]
    lines += [f"name = {toml_value(network.name)}",
              f"weights = {toml_value(path.stem + '.npz')}", ""]
    inp = network.input
    lines += ["[input]", f"shape = {toml_value(list(inp.shape))}", f"bits = {inp.bits}"]
    if inp.signed:
        lines.append("signed = true")
    if inp.lanes is not None:
        lines.append(f"lanes = {inp.lanes}")
    for layer in network.layers:
        lines += ["", "[[layers]]", f"name = {toml_value(layer.name)}",
                  f"kind = {toml_value(layer.kind)}"]
        if layer.inputs:
            lines.append(f"inputs = {toml_value(list(layer.inputs))}")
        table, layer_arrays = layer.to_toml()
        lines += table
        arrays.update(layer_arrays)
    if network.dataset is not None:
        lines += ["", "[dataset]", f"test = {toml_value(network.dataset.name)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    np.savez(path.with_suffix(".npz"), **arrays)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, as os.fsdecode makes of non-UTF-8 bytes
        return False
    return True

