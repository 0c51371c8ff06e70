"""What every part of a network description is checked with: :class:`SpecError` (one line naming
the file and field), :class:`Where` (which file and layer is being checked), the field checks
shared by the input, the layer kinds and the loader, and the limits they enforce.

NumPy only; below :mod:`hwgen.layers` and :mod:`hwgen.spec`, which import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["SpecError", "Where", "MAX_NAME", "MAX_ELEMENTS", "MAX_TOML_BYTES", "MAX_INPUT_DIMS",
           "show", "reason", "printable", "is_int", "is_bool", "check_name", "check_bool",
           "check_choice", "check_inputs", "check_int_array", "check_positive", "check_bits"]


class SpecError(Exception):
    """A network description that cannot be built, located by source (file) and field."""

    def __init__(self, source: str, field: str, message: str):
        self.source, self.field, self.message = source, field, message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: {self.field}" if self.field else self.source
        return printable(f"{where}: {self.message}")  # one line, whatever the names hold


@dataclass(frozen=True)
class Where:
    """Names the spec and weights sources and the field prefix of the layer being checked."""

    spec: str
    arrays: str
    prefix: str

    def spec_error(self, key: str, message: str) -> SpecError:
        return SpecError(self.spec, f"{self.prefix}.{key}" if self.prefix else key, message)

    def array_error(self, key: str, message: str) -> SpecError:
        return SpecError(self.arrays, key, message)


NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
#: Longest network or layer name: names become Verilog identifiers (the top module, ports such
#: as ``tap_<layer>_fire``) and file and folder names (``build/<network>-<board>``).
MAX_NAME = 64
#: Most elements the weights file may hold, all its arrays together, and most elements of any
#: tensor of a network (its input and every layer's output). The NPZ's .npy headers are checked
#: against it before any array is read. The largest shipped design (cnv_w1a1) holds 1.5 million
#: weights; no Lattice FPGA hwgen targets stores more than a few million bits.
MAX_ELEMENTS = 1 << 24
#: Largest TOML file :func:`load` reads.
MAX_TOML_BYTES = 1 << 20
#: Most dimensions of the network input: (N,), (H, W) or (H, W, C).
MAX_INPUT_DIMS = 3


def show(value: object, limit: int = 60) -> str:
    """``repr(value)`` for a message, shortened when long (a field may hold a huge value)."""
    try:
        text = repr(value)
    except RecursionError:  # a deeply nested list
        text = f"<a deeply nested {type(value).__name__}>"
    if len(text) > limit:
        size = f", {len(value):,} items" if isinstance(value, list | tuple | dict) else ""
        size = f", {len(value):,} characters" if isinstance(value, str) else size
        text = f"{text[:limit]}… ({type(value).__name__}{size})"
    return text


def reason(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line for a message."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    if not isinstance(exc, OSError | ValueError) or not str(exc):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[:limit] + "…"


def printable(text: str) -> str:
    """``text`` with control characters escaped, so that a message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def is_int(value: object) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def check_name(value: object, key: str, where: Where | None = None,
                source: str = "") -> str:
    """A network or layer name: a lower-case identifier of at most :data:`MAX_NAME`
    characters (it becomes Verilog identifiers and file names)."""
    if isinstance(value, str) and NAME_PATTERN.fullmatch(value) and len(value) <= MAX_NAME:
        return value
    if isinstance(value, str) and NAME_PATTERN.fullmatch(value):
        message = f"{len(value)} characters, at most {MAX_NAME} (the name becomes Verilog " \
                  f"identifiers and file names): {show(value)}"
    else:
        message = f"expected a lower-case identifier ([a-z][a-z0-9_]*), got {show(value)}"
    if where is None:
        raise SpecError(source, key, message)
    raise where.spec_error(key, message)


def check_bool(value: object, key: str, where: Where) -> bool:
    if not is_bool(value):
        raise where.spec_error(key, f"expected true or false, got {show(value)}")
    return bool(value)


def check_choice(value: object, key: str, where: Where, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise where.spec_error(key, f"expected one of {', '.join(map(repr, choices))}, got "
                               f"{show(value)}")
    return value


def check_inputs(value: object, where: Where) -> tuple[str, ...]:
    """A layer's ``inputs``: a tuple or list of tensor names (maybe empty)."""
    if not isinstance(value, tuple | list) or not all(isinstance(v, str) for v in value):
        raise where.spec_error("inputs", f"expected a list of tensor names, got "
                               f"{show(value)}")
    return tuple(value)


def check_int_array(a: object, key: str, where: Where, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise where.array_error(key, f"expected a NumPy integer array, got {type(a).__name__}")
    if not np.issubdtype(a.dtype, np.integer):
        raise where.array_error(key, f"dtype {a.dtype}, expected an integer dtype")
    if np.issubdtype(a.dtype, np.unsignedinteger) and a.size \
            and int(a.max()) > np.iinfo(np.int64).max:
        raise where.array_error(key, f"value {int(a.max())} does not fit in 64-bit signed "
                                f"integers")
    if a.shape != shape:
        raise where.array_error(key, f"shape {a.shape}, expected {shape}")
    return a.astype(np.int64)


def check_positive(value: object, key: str, where: Where) -> int:
    """A positive integer (a NumPy integer is taken as the Python int of its value)."""
    if not is_int(value) or value < 1:
        raise where.spec_error(key, f"expected a positive integer, got {show(value)}")
    return int(value)


def check_bits(value: object, key: str, where: Where, lo: int = 1, hi: int = 16,
                note: str = "") -> int:
    if not is_int(value) or not lo <= value <= hi:
        raise where.spec_error(key, f"expected an integer {lo}..{hi}{note}, got {show(value)}")
    return int(value)
