"""Reading and writing a layer's TOML table: required fields, arrays taken from the NPZ,
values written back. NumPy only."""

from __future__ import annotations

import numpy as np

from ..errors import SpecError, Where, check_positive, show

__all__ = ["require", "require_positive", "take_array", "toml_value"]


def require(table: dict, key: str, kind: type | tuple, where: Where):
    """``table[key]``, which must be there and be a ``kind``."""
    name = f"{where.prefix}.{key}" if where.prefix else key
    if key not in table:
        raise SpecError(where.spec, name, "missing")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(
            k.__name__ for k in kind)
        raise SpecError(where.spec, name, f"expected {expected}, got {show(value)}")
    return value


def require_positive(table: dict, key: str, where: Where) -> int:
    """A required positive integer field of a layer table."""
    return check_positive(require(table, key, int, where), key, where)


def take_array(arrays: dict, where: Where, name: str, suffix: str) -> np.ndarray:
    """``<name>.<suffix>`` taken out of ``arrays`` (so that unused arrays can be reported)."""
    key = f"{name}.{suffix}"
    if key not in arrays:
        raise where.array_error(key, "missing from the weights file")
    return arrays.pop(key)


def toml_value(value: object) -> str:
    """``value`` (bool, int, str or a list of them) as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):  # a basic string: TOML escapes quote, backslash and controls
        return '"' + "".join(_TOML_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20
                                                     or ord(c) == 0x7F else c)
                             for c in value) + '"'
    return str(int(value))


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
