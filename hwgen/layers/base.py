"""What every layer kind has: the :class:`Layer` base its dataclass derives from (the faces the
rest of hwgen calls), and :class:`LayerPlan`, the record its cost model fills in.

A kind's module (``hwgen/layers/<kind>.py``) holds one frozen dataclass deriving from
:class:`Layer` and overrides what differs from the defaults here. NumPy only.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np

from ..errors import Where
from ..numeric import TensorType

__all__ = ["INPUT", "Layer", "LayerPlan", "Mac", "MVU_DEPTH", "folded_depth", "COMPARE_BITS",
           "weightless", "kb"]

#: The name by which layers refer to the network input in ``inputs``.
INPUT = "input"

#: Cycles from a matrix-vector unit issuing its last step of an output group to that group
#: appearing at its output (weight/buffer read, read data registered, dot product in two
#: halves, accumulate, quantize, output lanes registered, FIFO).
MVU_DEPTH = 8

#: Bit widths the memory report compares every layer's own widths with.
COMPARE_BITS = (16, 8, 1)


def kb(bits: int) -> float:
    """``bits`` in KB (1024 bytes), rounded to three places."""
    return round(bits / 8 / 1024, 3)


def folded_depth(output_steps: int) -> int:
    """Cycles from a folded unit's last step of an output group to the group at its output:
    :data:`MVU_DEPTH`, plus ``steps − 1`` with a serial output stage."""
    return MVU_DEPTH + max(output_steps - 1, 0)


class Mac(enum.StrEnum):
    """How a layer with weights computes its dot products: ``XNOR`` (binary × binary),
    ``ADDSUB`` (one side binary: adds and subtracts), ``LUT`` or ``DSP`` (multi-bit products
    in logic or on DSP blocks)."""

    XNOR = "xnor"
    ADDSUB = "addsub"
    LUT = "lut"
    DSP = "dsp"


@dataclass(frozen=True)
class LayerPlan:
    """One layer as it will be built: types, folding, lanes and costs. The one hand-off from
    the cost model to the RTL, the simulator and the reports."""

    name: str
    kind: str
    in_type: TensorType
    out_type: TensorType
    weight_bits: int | None
    pe: int | None
    simd: int | None
    in_lanes: int
    out_lanes: int
    cycles: int
    macs: int
    weight_memory_bits: int
    #: How the dot products are computed; ``None`` for weightless layers.
    mac: Mac | None = None
    #: DSP multipliers used (``mac == Mac.DSP``), and products per multiplier.
    dsps: int = 0
    dsp_pack: int = 1
    #: Cycles per output group of a serial output stage, 0 if parallel.
    output_steps: int = 0
    #: Every input's type, in port order (``in_type`` is the first).
    in_types: tuple[TensorType, ...] = ()
    #: Output tensors (all of ``out_type``): 1, or 2 for a channel split.
    outputs: int = 1

    @property
    def depth(self) -> int:
        """Pipeline depth of a folded unit (:func:`folded_depth`)."""
        return folded_depth(self.output_steps)

    @property
    def weight_count(self) -> int:
        return self.weight_memory_bits // self.weight_bits if self.weight_bits else 0

    def memory_kb(self) -> dict:
        """Weights and output activations in KB (1024 bytes): at the layer's own bit widths
        and, for comparison, at 16, 8 and 1 bit per value."""
        weights, acts = self.weight_count, self.out_type.size * self.outputs
        return {
            "weights_kb": {"actual": kb(self.weight_memory_bits),
                           **{str(b): kb(weights * b) for b in COMPARE_BITS}},
            "out_activations_kb": {"actual": kb(acts * self.out_type.bits),
                                   **{str(b): kb(acts * b) for b in COMPARE_BITS}},
        }

    @property
    def scheme(self) -> str:
        """``W<weight bits>A<input bits>``, ``-`` for a layer without weights."""
        return "-" if self.weight_bits is None else f"W{self.weight_bits}A{self.in_type.bits}"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "in_shape": list(self.in_type.shape),
            "out_shape": list(self.out_type.shape),
            "weight_bits": self.weight_bits,
            "scheme": self.scheme,
            "mac": None if self.mac is None else str(self.mac),
            "dsps": self.dsps,
            "dsp_pack": self.dsp_pack,
            "in_bits": self.in_type.bits,
            "in_signed": self.in_type.signed,
            "out_bits": self.out_type.bits,
            "out_signed": self.out_type.signed,
            "macs": self.macs,
            "weight_kb": round(self.weight_memory_bits / 8 / 1024, 3),
            "memory": self.memory_kb(),
            "pe": self.pe,
            "simd": self.simd,
            "in_lanes": self.in_lanes,
            "out_lanes": self.out_lanes,
            "cycles": self.cycles,
            "output_steps": self.output_steps,
        }


class Layer:
    """The base of every layer kind's dataclass: the faces spec, golden and plan call.

    Subclasses are frozen dataclasses (``eq=False``) declaring all their fields, ``name`` first
    and ``inputs`` among them, and set :attr:`kind`. :meth:`check` validates a layer against
    its input types and returns a checked copy (the layer itself is never changed) and its
    output types.
    """

    #: The kind's TOML name (``kind = "..."``), also its module's name.
    kind: ClassVar[str]
    #: Input tensors it reads: a count, or ``None`` for two or more (listed in ``inputs``).
    arity: ClassVar[int | None] = 1
    #: Output tensors it writes; with more than one they are named ``<name>.0``, ``<name>.1``…
    outputs: ClassVar[int] = 1
    #: The TOML keys of its table besides ``name``, ``kind`` and ``inputs``.
    toml_keys: ClassVar[frozenset[str]] = frozenset()
    #: Whether it must be the network's last layer.
    last_only: ClassVar[bool] = False
    #: Whether its TOML table may name arrays of the weights NPZ.
    uses_arrays: ClassVar[bool] = False
    #: Whether its output is a new view of its input (no activation memory of its own).
    is_view: ClassVar[bool] = False

    name: str
    inputs: tuple[str, ...]

    # -- spec -----------------------------------------------------------------------------
    def check(self, inputs: Sequence[TensorType], where: Where) -> tuple[Self, list[TensorType]]:
        """The layer checked against its input types (``where`` names it in errors): a
        normalized copy (int64 arrays, Python ints) and its output types."""
        raise NotImplementedError

    @classmethod
    def from_toml(cls, table: dict, arrays: dict[str, np.ndarray], where: Where) -> Self:
        """The layer a TOML table describes (its keys already checked against
        :attr:`toml_keys`), taking the arrays it names out of ``arrays``."""
        return cls(name=table["name"])

    def to_toml(self) -> tuple[list[str], dict[str, np.ndarray]]:
        """The TOML lines of its table (besides name, kind and inputs) and its NPZ arrays."""
        return [], {}

    def arrays(self) -> list[tuple[str, np.ndarray]]:
        """Its integer arrays by NPZ key."""
        return list(self.to_toml()[1].items())

    # -- golden ---------------------------------------------------------------------------
    def golden(self, *xs: np.ndarray) -> list[np.ndarray]:
        """Output values (one array per output) for batches of input values."""
        raise NotImplementedError

    # -- cost -----------------------------------------------------------------------------
    def lanes_wanted(self, inputs: Sequence[TensorType], upstream: int) -> int:
        """Elements per beat it reads, given its first input arrives ``upstream`` per beat."""
        return upstream

    def logic_features(self, lp: LayerPlan) -> dict[str, float]:
        """What its logic (LUTs, flip-flops) grows with, as built per ``lp``: named counts
        that :mod:`hwgen.resources` weighs with coefficients fitted to synthesized layers
        (``bench/calibrate.py``). The default: a stream stage of its kind, one unit plus its
        input bits per beat."""
        bits = sum(t.bits for t in (lp.in_types or (lp.in_type,))) * lp.in_lanes
        return {self.kind: 1.0, f"{self.kind}_bits": float(bits)}

    def fold_options(self, inputs: Sequence[TensorType], *, dsps: bool, spram: bool,
                     keep: bool = False) -> list[dict]:
        """The ways ``hwgen fold`` may build it, as field values to replace (unchecked: the
        fold checks each); ``dsps``/``spram``: whether the board has DSPs / SPRAMs; ``keep``:
        vary only what the spec leaves to hwgen. A layer without weights has one way: as it
        is (its lanes follow its input's)."""
        return [{}]

    def leaves_folding(self) -> bool:
        """Whether the spec leaves part of its folding to hwgen (``"auto"``)."""
        return False

    def cost(self, inputs: Sequence[TensorType], out: TensorType, lanes: int,
             dsp: bool) -> LayerPlan:
        """Its plan: ``lanes`` elements per input beat; ``dsp`` puts ``mac = "auto"`` products
        on DSPs. The default is a weightless stage of one beat per cycle."""
        return weightless(self, inputs, out, lanes, cycles=inputs[0].size // lanes)

    @staticmethod
    def out_times(lp: LayerPlan, in_times: list[int]) -> list[int] | None:
        """Output beat times of one frame whose input beats arrive at ``in_times`` (output
        always ready); ``None`` where the kind has no timing model."""
        return None

    def held(self, lp: LayerPlan) -> int:
        """Elements of its input it holds beyond the few beats every stage holds (line
        buffers, input vectors, whole tensors): with them, how far it can run ahead of its
        output (the branch FIFOs are sized from it)."""
        return 0


def weightless(layer: Layer, inputs: Sequence[TensorType], out: TensorType, lanes: int, *,
               cycles: int, out_lanes: int | None = None) -> LayerPlan:
    """The plan of a layer without weights: it keeps its input's lanes unless told."""
    return LayerPlan(
        name=layer.name, kind=layer.kind, in_type=inputs[0], out_type=out, weight_bits=None,
        pe=None, simd=None, in_lanes=lanes, out_lanes=out_lanes or lanes, cycles=cycles,
        macs=0, weight_memory_bits=0, in_types=tuple(inputs), outputs=layer.outputs)

