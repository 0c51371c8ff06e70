"""Integer number formats shared by the spec, the golden model, the cost model and the RTL.

NumPy only (no Amaranth), so a cocotb bench can import it. The encodings here are the numeric
contract of docs/spec.md: a binary element (1 bit) stores value ``2*b - 1``; an unsigned n-bit
element stores ``0 .. 2**n - 1``; a signed n-bit element is two's complement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "TensorType",
    "value_range",
    "width_for",
    "encode",
    "decode",
    "dot_bounds",
    "pack_lanes",
    "unpack_lanes",
]


def value_range(bits: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest value of an element of ``bits`` bits (1 bit means binary, ±1)."""
    if bits == 1:
        return -1, 1
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def width_for(lo: int, hi: int) -> tuple[int, bool]:
    """Fewest bits (and signedness) of a two's complement or unsigned integer holding lo..hi.

    Never returns a width of 1, which the numeric contract reserves for binary tensors.
    """
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range {lo}..{hi}")
    if lo >= 0:
        return max(2, hi.bit_length()), False
    bits = 2
    while not (-(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1))):
        bits += 1
    return bits, True


@dataclass(frozen=True)
class TensorType:
    """Shape and element format of a tensor that streams between layers.

    ``bits == 1`` is binary (values ±1, stored as bit ``(v + 1) / 2``); otherwise ``signed``
    chooses two's complement or unsigned.
    """

    shape: tuple[int, ...]
    bits: int
    signed: bool = False

    def __post_init__(self) -> None:
        if self.bits == 1 and self.signed:
            object.__setattr__(self, "signed", False)

    @property
    def binary(self) -> bool:
        return self.bits == 1

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))  # exact: np.prod wraps around in int64

    @property
    def range(self) -> tuple[int, int]:
        return value_range(self.bits, self.signed)

    def describe(self) -> str:
        """Short human form: ``bin``, ``u8``, ``s12``."""
        if self.binary:
            return "bin"
        return f"{'s' if self.signed else 'u'}{self.bits}"


def encode(values: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Element values to their stored bit patterns (``uint64``)."""
    v = np.asarray(values, dtype=np.int64)
    if bits == 1:
        return ((v + 1) // 2).astype(np.uint64)
    return (v & ((1 << bits) - 1)).astype(np.uint64)


def decode(codes: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Stored bit patterns to element values (``int64``)."""
    c = np.asarray(codes).astype(np.int64) & ((1 << bits) - 1)
    if bits == 1:
        return 2 * c - 1
    if signed:
        return np.where(c >= 1 << (bits - 1), c - (1 << bits), c)
    return c


def dot_bounds(weights: np.ndarray, x_lo: int, x_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row smallest and largest ``Σ_i x[i]·w[o, i]`` over every input with lo ≤ x ≤ hi.

    The product is linear in each x[i], so each term's extremes sit at the ends of the input
    range; the sums of the per-term extremes are reached and cannot be exceeded.
    """
    w = np.asarray(weights, dtype=np.int64)
    a, b = w * int(x_lo), w * int(x_hi)
    return np.minimum(a, b).sum(axis=-1), np.maximum(a, b).sum(axis=-1)


def pack_lanes(codes: np.ndarray, bits: int) -> list[int]:
    """Rows of lane codes (beats × lanes) to one integer per beat, lane 0 in the lowest bits."""
    rows = np.asarray(codes, dtype=np.uint64)
    out = []
    for row in rows:
        word = 0
        for lane, code in enumerate(row.tolist()):
            word |= int(code) << (lane * bits)
        out.append(word)
    return out


def unpack_lanes(words: list[int], bits: int, lanes: int) -> np.ndarray:
    """Inverse of :func:`pack_lanes`: one integer per beat to rows of lane codes."""
    mask = (1 << bits) - 1
    return np.array(
        [[(int(w) >> (lane * bits)) & mask for lane in range(lanes)] for w in words],
        dtype=np.uint64,
    ).reshape(len(words), lanes)
