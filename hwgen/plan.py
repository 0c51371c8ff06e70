"""Folding, the cycle model and the per-layer table of ``hwgen check``.

Cycle counts here are exact predictions of the RTL: a layer's ``cycles`` is the number of clock
cycles it needs per inference when its input is always valid and its output always ready; the
network's cycles per inference (its initiation interval) is the largest of its stages'; its
``latency`` is the number of cycles from the first input beat to the output beat of a single
inference in an empty pipeline. docs/cost-model.md gives the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch

import numpy as np

from .numeric import TensorType, width_for
from .spec import (
    DSP_OPERAND_BITS,
    INPUT,
    Add,
    Argmax,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    Flatten,
    GlobalSumPool,
    Layer,
    MaxPool,
    Network,
    dsp_operand_problem,
    dsp_packing,
    dsp_product_problem,
    layer_dsp_pack,
    packed_operand_bits,
)

__all__ = ["LayerPlan", "NetworkPlan", "WindowGeometry", "plan", "window_geometry", "default_simd",
           "MVU_DEPTH", "folded_depth", "requantize_factors", "output_steps", "format_table",
           "format_memory", "stage_capacity",
           "dsp_packing", "packed_operand_bits", "layer_dsp_pack", "mac_kind", "lut_mac_cost"]

#: Cycles from a matrix-vector unit issuing its last step of an output group to that group
#: appearing at its output (weight/buffer read, dot product, accumulate, quantize, FIFO).
MVU_DEPTH = 5

#: Bit widths the memory report compares every layer's own widths with.
COMPARE_BITS = (16, 8, 1)


def _kb(bits: int) -> float:
    return round(bits / 8 / 1024, 3)


#: The layer kinds with weights (a dot product per output channel and position).
WeightLayer = Dense | Conv2d | DepthwiseConv2d


def mac_kind(layer: WeightLayer, x: TensorType, dsp: bool | None = None) -> str:
    """How a layer with weights computes its dot products: ``"xnor"`` (binary × binary),
    ``"addsub"`` (one side binary: adds and subtracts, no multiplier), ``"lut"`` or ``"dsp"``
    (multi-bit products in logic or on DSP blocks). ``dsp`` decides ``mac = "auto"``
    (``None``: logic)."""
    if layer.weight_bits == 1 and x.binary:
        return "xnor"
    if layer.weight_bits == 1 or x.binary:
        return "addsub"
    if layer.mac == "auto":
        return "dsp" if dsp else "lut"
    return layer.mac


def lut_mac_cost(x_bits: int, weight_bits: int) -> int:
    """Estimated LUT4s of one multi-bit product in logic, its share of the adder tree included
    (:func:`hwgen.rtl.arith.dot_lut`): a table for operands of 4 bits together, else a mask LUT
    and an adder bit per partial-product bit. docs/results.md has the measured counts."""
    if x_bits + weight_bits <= 4:
        return 2 * (x_bits + weight_bits)
    return 2 * x_bits * weight_bits


def requantize_factors(layer: WeightLayer, x: TensorType) -> np.ndarray:
    """Per output channel, the factor a folded unit multiplies its accumulator term ``q`` by
    (:class:`hwgen.rtl.mvu.Datapath`): the multiplier scaled to the largest shift, times 2
    for binary inputs (whose ``q`` counts matches, ``acc = 2q + offset``)."""
    rq = layer.requantize
    beta = 2 if x.binary else 1
    return beta * (rq.multiplier.astype(object) << (int(rq.shift.max()) - rq.shift))


def _signed_bits(values) -> int:
    """Two's-complement bits that hold every integer of ``values``."""
    bits, is_signed = width_for(int(min(values)), int(max(values)))
    return bits + (0 if is_signed else 1)


def output_steps(layer: WeightLayer, x: TensorType, sf: int) -> int:
    """Cycles per output group of a folded unit's serial output stage, or 0 for the parallel
    one. A group's sums wait SF cycles for the next group's, so when the work fits in SF
    cycles one small circuit per lane does it step by step: a requantize multiplication
    shift-and-add over the factor's bits, or multi-bit thresholds (n ≥ 2 bits, 2**n − 1
    thresholds) by binary search, n compares. The serial stage adds ``steps − 1`` cycles of
    latency and no cycles per inference."""
    if layer.requantize is not None:
        steps = _signed_bits(requantize_factors(layer, x).tolist())
    elif layer.thresholds is not None and layer.thresholds.shape[1] > 1:
        steps = layer.out_bits
    else:
        return 0
    return steps if steps <= sf else 0


def folded_depth(output_steps: int) -> int:
    """Cycles from a folded unit's last step of an output group to the group at its output:
    :data:`MVU_DEPTH`, plus ``steps − 1`` with a serial output stage (:func:`output_steps`)."""
    return MVU_DEPTH + max(output_steps - 1, 0)


def _layer_dsps(layer: WeightLayer, x: TensorType, pe: int, simd: int) -> int:
    """DSP multipliers of a layer mapped to DSPs: the packed products, and its parallel
    requantize multipliers split into 16×16 pieces (an estimate: Yosys decides the split)."""
    count = pe // layer_dsp_pack(layer, x, pe) * simd
    if layer.requantize is not None and not output_steps(layer, x, layer.in_features // simd):
        lo, hi = layer.acc_bounds(x)
        qbits = width_for(int(lo.min()), int(hi.max()))[0] + 1
        fbits = _signed_bits(requantize_factors(layer, x).tolist())
        count += pe * -(-qbits // DSP_OPERAND_BITS) * -(-fbits // DSP_OPERAND_BITS)
    return count


#: Largest SIMD chosen by default.
DEFAULT_MAX_SIMD = 16


def default_simd(in_features: int) -> int:
    """The largest divisor of ``in_features`` not above 16."""
    return max(d for d in range(1, min(in_features, DEFAULT_MAX_SIMD) + 1)
               if in_features % d == 0)


@dataclass(frozen=True)
class WindowGeometry:
    """Where the windows of a ``kernel``×``kernel``, ``stride`` scan over a padded
    ``height``×``width``×``channels`` image fall, with ``lanes`` channels per beat."""

    height: int
    width: int
    channels: int
    lanes: int
    kernel: int
    stride: int
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right

    def __post_init__(self):
        if self.channels % self.lanes:
            raise ValueError(f"lanes {self.lanes} do not divide channels {self.channels}")
        top, left, bottom, right = self.pads
        if self.kernel > self.height + top + bottom or self.kernel > self.width + left + right:
            raise ValueError("kernel larger than the padded image")

    @property
    def chunks(self) -> int:
        """Beats per pixel."""
        return self.channels // self.lanes

    @property
    def out_height(self) -> int:
        top, _, bottom, _ = self.pads
        return (self.height + top + bottom - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        _, left, _, right = self.pads
        return (self.width + left + right - self.kernel) // self.stride + 1

    @property
    def in_beats(self) -> int:
        return self.height * self.width * self.chunks

    @property
    def out_beats(self) -> int:
        """Beats per frame: every output pixel's k·k·chunks window beats."""
        return self.out_height * self.out_width * self.kernel ** 2 * self.chunks

    @property
    def cycles(self) -> int:
        """Cycles per frame with input always valid and output always ready: the generator
        takes one input beat and emits one window beat per cycle, each side on its own."""
        return max(self.in_beats, self.out_beats)

    @property
    def rows(self) -> int:
        """Image rows the line buffer holds: the window's rows plus the next ``stride`` rows,
        and across a frame boundary the current frame's last rows plus the next frame's first
        window, so neither side waits for the other in steady state."""
        top = self.pads[0]
        last_top = max(0, (self.out_height - 1) * self.stride - top)
        boundary = (self.height - last_top) + min(self.height, self.kernel - top)
        return max(self.kernel + self.stride, boundary)

    @property
    def buffer_words(self) -> int:
        return self.rows * self.width * self.chunks


def window_geometry(layer: Conv2d | DepthwiseConv2d | MaxPool, x: TensorType,
                    lanes: int) -> WindowGeometry:
    """The windows a conv2d, depthwise_conv2d or maxpool layer reads from its input ``x``,
    ``lanes`` per beat."""
    h, w, c = x.shape
    if isinstance(layer, Conv2d | DepthwiseConv2d):
        return WindowGeometry(h, w, c, lanes, layer.kernel, layer.stride, layer.pads(h, w))
    stride = layer.stride if layer.stride is not None else layer.size
    return WindowGeometry(h, w, c, lanes, layer.size, stride)


@dataclass(frozen=True)
class LayerPlan:
    """One layer as it will be built: types, folding, lanes and costs."""

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
    #: How the dot products are computed (:func:`mac_kind`); ``None`` for weightless layers.
    mac: str | None = None
    #: DSP multipliers used (``mac == "dsp"``), and products per multiplier.
    dsps: int = 0
    dsp_pack: int = 1
    #: Cycles per output group of a serial output stage (:func:`output_steps`), 0 if parallel.
    output_steps: int = 0

    @property
    def depth(self) -> int:
        """Pipeline depth of a folded unit (:func:`folded_depth`)."""
        return folded_depth(self.output_steps)

    def out_times(self, in_times: list[int]) -> list[int] | None:
        """Output beat times of one frame whose input beats arrive at ``in_times`` (output
        always ready); ``None`` where the kind has no RTL timing model yet.

        A dense layer starts once its whole input vector is in; each of its NF output beats
        takes SF cycles, plus the pipeline depth (:attr:`depth`). Argmax answers one cycle after
        its last input beat; a global sum pool's output beat c one cycle after the last
        position's beat of chunk c. Flatten is wires.
        """
        last = in_times[-1]
        if self.kind == "flatten":
            return in_times
        if self.kind in ("conv2d", "depthwise_conv2d", "maxpool"):
            return None
        if self.kind == "global_sum_pool":
            chunks = self.in_type.shape[-1] // self.in_lanes
            return [t + 1 for t in in_times[-chunks:]]
        if self.kind == "dense":
            beats = self.out_type.size // self.out_lanes
            sf = self.cycles // beats
            return [last + (j + 1) * sf + self.depth for j in range(beats)]
        return [last + 1]

    @property
    def weight_count(self) -> int:
        return self.weight_memory_bits // self.weight_bits if self.weight_bits else 0

    def memory_kb(self) -> dict:
        """Weights and output activations in KB (1024 bytes): at the layer's own bit widths
        and, for comparison, at 16, 8 and 1 bit per value."""
        weights, acts = self.weight_count, self.out_type.size
        return {
            "weights_kb": {"actual": _kb(self.weight_memory_bits),
                           **{str(b): _kb(weights * b) for b in COMPARE_BITS}},
            "out_activations_kb": {"actual": _kb(acts * self.out_type.bits),
                                   **{str(b): _kb(acts * b) for b in COMPARE_BITS}},
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
            "mac": self.mac,
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


@dataclass(frozen=True)
class ConverterPlan:
    """A stream width converter the network inserts between two stages with different lanes."""

    before: str
    elements: int
    in_lanes: int
    out_lanes: int
    port: int = 0

    @property
    def capacity(self) -> int:
        """Elements it can hold (the RTL converter's buffer)."""
        a, b = self.in_lanes, self.out_lanes
        return a + b - 1 + max(a, b)

    @property
    def cycles(self) -> int:
        return self.elements // min(self.in_lanes, self.out_lanes)

    def out_times(self, in_times: list[int]) -> list[int]:
        """Output beat times of one frame whose input beats arrive at ``in_times``.

        An output beat leaves one cycle after the input beat holding its last element has
        arrived, and at most one output beat leaves per cycle.
        """
        times, last = [], -1
        for k in range(self.elements // self.out_lanes):
            holder = ((k + 1) * self.out_lanes - 1) // self.in_lanes
            last = max(in_times[holder] + 1, last + 1)
            times.append(last)
        return times


@dataclass(frozen=True)
class NetworkPlan:
    """The whole network as it will be built."""

    name: str
    input_type: TensorType
    input_lanes: int
    layers: list[LayerPlan]
    converters: list[ConverterPlan]
    #: Each layer's input tensor names (see :attr:`hwgen.spec.Network.sources`).
    sources: list[tuple[str, ...]]
    #: FIFO depth (beats) in front of input port ``port`` of layer ``before``, by
    #: ``(before, port)``: the branch-balancing FIFOs of add layers.
    fifos: dict[tuple[str, int], int]

    @property
    def is_chain(self) -> bool:
        return all(src == ((self.layers[i - 1].name,) if i else (INPUT,))
                   for i, src in enumerate(self.sources))

    @property
    def input_cycles(self) -> int:
        return self.input_type.size // self.input_lanes

    @property
    def cycles_per_inference(self) -> int:
        """Initiation interval: cycles between inferences when streaming back to back."""
        return max([self.input_cycles] + [lp.cycles for lp in self.layers]
                   + [c.cycles for c in self.converters])

    @property
    def latency(self) -> int | None:
        """Cycles from the first input beat to the last output beat of one inference, in an
        empty pipeline with no gaps or backpressure (beat times traced stage by stage);
        ``None`` for graphs (branches and adds) and stages with no timing model."""
        if not self.is_chain:
            return None
        converters = {c.before: c for c in self.converters}
        times = list(range(self.input_cycles))
        for lp in self.layers:
            if lp.name in converters:
                times = converters[lp.name].out_times(times)
            times = lp.out_times(times)
            if times is None:
                return None
        return times[-1]

    @property
    def latency_bound(self) -> int:
        """An upper bound of :attr:`latency` that always exists: every stage working on the
        frame one after the other (its cycles plus pipeline depth)."""
        if self.latency is not None:
            return self.latency
        return (self.input_cycles + sum(c.cycles + 1 for c in self.converters)
                + sum(lp.cycles + lp.depth for lp in self.layers))

    @property
    def bottleneck(self) -> str:
        worst = max(self.layers, key=lambda lp: lp.cycles)
        return worst.name if worst.cycles == self.cycles_per_inference else "stream width"

    @property
    def macs(self) -> int:
        return sum(lp.macs for lp in self.layers)

    @property
    def dsps(self) -> int:
        return sum(lp.dsps for lp in self.layers)

    @property
    def weight_memory_bits(self) -> int:
        return sum(lp.weight_memory_bits for lp in self.layers)

    def peak_working_set_bits(self, bits: int | None = None) -> int:
        """All weights plus the largest input + output activation pair of one layer, at the
        layers' own widths (``bits`` None) or with every value ``bits`` wide."""
        def width(t: TensorType) -> int:
            return t.bits if bits is None else bits
        weights = sum(lp.weight_count * ((lp.weight_bits or 0) if bits is None else bits)
                      for lp in self.layers)
        pairs = [lp.in_type.size * width(lp.in_type) + lp.out_type.size * width(lp.out_type)
                 for lp in self.layers if lp.kind != "flatten"]  # a flatten is a new view
        return weights + max(pairs)

    def memory_kb(self) -> dict:
        """Network totals of the memory report (see docs/cost-model.md, "Memory report")."""
        def per_width(value) -> dict:
            return {"actual": _kb(value(None)), **{str(b): _kb(value(b)) for b in COMPARE_BITS}}
        return {
            "weights_kb": per_width(lambda b: sum(
                lp.weight_count * ((lp.weight_bits or 0) if b is None else b)
                for lp in self.layers)),
            "peak_working_set_kb": per_width(self.peak_working_set_bits),
        }

    def to_json(self) -> dict:
        return {
            "network": self.name,
            "input": {"shape": list(self.input_type.shape), "bits": self.input_type.bits,
                      "signed": self.input_type.signed, "lanes": self.input_lanes},
            "layers": [lp.to_json() for lp in self.layers],
            "totals": {
                "macs": self.macs,
                "weight_kb": round(self.weight_memory_bits / 8 / 1024, 3),
                "memory": self.memory_kb(),
                "dsps": self.dsps,
                "cycles_per_inference": self.cycles_per_inference,
                "latency_cycles": self.latency,
                "bottleneck": self.bottleneck,
            },
        }


@singledispatch
def _layer_plan(layer: object, x: TensorType, y: TensorType, in_lanes: int) -> LayerPlan:
    raise TypeError(f"no cost model for {type(layer).__name__}")


def _mac_fields(layer: WeightLayer, x: TensorType, pe: int, simd: int,
                dsp: bool | None) -> dict:
    """The ``mac``, ``dsps``, ``dsp_pack`` and ``output_steps`` of a layer with weights
    (SF = in_features / SIMD steps per output group)."""
    mac = mac_kind(layer, x, dsp)
    steps = output_steps(layer, x, layer.in_features // simd)
    if mac != "dsp":
        return dict(mac=mac, output_steps=steps)
    return dict(mac=mac, dsps=_layer_dsps(layer, x, pe, simd),
                dsp_pack=layer_dsp_pack(layer, x, pe), output_steps=steps)


@_layer_plan.register
def _(layer: Dense, x: TensorType, y: TensorType, in_lanes: int,
      dsp: bool | None = None) -> LayerPlan:
    pe = layer.pe or 1
    simd = layer.simd or default_simd(layer.in_features)
    fold = (layer.out_features // pe) * (layer.in_features // simd)
    return LayerPlan(
        name=layer.name, kind=layer.kind, in_type=x, out_type=y, weight_bits=layer.weight_bits,
        pe=pe, simd=simd, in_lanes=simd, out_lanes=pe, cycles=fold,
        macs=layer.out_features * layer.in_features,
        weight_memory_bits=layer.weights.size * layer.weight_bits,
        **_mac_fields(layer, x, pe, simd, dsp))


@_layer_plan.register
def _(layer: Conv2d, x: TensorType, y: TensorType, in_lanes: int,
      dsp: bool | None = None) -> LayerPlan:
    pe = layer.pe or 1
    simd = layer.simd or default_simd(x.shape[-1])
    pixels = y.size // layer.out_features
    fold = (layer.out_features // pe) * (layer.in_features // simd)
    window = window_geometry(layer, x, simd)
    return LayerPlan(
        name=layer.name, kind=layer.kind, in_type=x, out_type=y, weight_bits=layer.weight_bits,
        pe=pe, simd=simd, in_lanes=simd, out_lanes=pe,
        cycles=max(pixels * fold, window.in_beats),
        macs=pixels * layer.out_features * layer.in_features,
        weight_memory_bits=layer.weights.size * layer.weight_bits,
        **_mac_fields(layer, x, pe, simd, dsp))


@_layer_plan.register
def _(layer: DepthwiseConv2d, x: TensorType, y: TensorType, in_lanes: int,
      dsp: bool | None = None) -> LayerPlan:
    pe = layer.pe or 1
    pixels = y.size // layer.channels
    fold = (layer.channels // pe) * layer.in_features  # NF · k·k, one kernel position a cycle
    window = window_geometry(layer, x, pe)
    return LayerPlan(
        name=layer.name, kind=layer.kind, in_type=x, out_type=y, weight_bits=layer.weight_bits,
        pe=pe, simd=1, in_lanes=pe, out_lanes=pe,
        cycles=max(pixels * fold, window.in_beats),
        macs=pixels * layer.channels * layer.in_features,
        weight_memory_bits=layer.weights.size * layer.weight_bits,
        **_mac_fields(layer, x, pe, 1, dsp))


def _weightless(layer: Layer, x: TensorType, y: TensorType, in_lanes: int, *, cycles: int,
                out_lanes: int | None = None) -> LayerPlan:
    """The plan of a layer without weights: it keeps its input's lanes unless told."""
    return LayerPlan(
        name=layer.name, kind=layer.kind, in_type=x, out_type=y, weight_bits=None,
        pe=None, simd=None, in_lanes=in_lanes, out_lanes=out_lanes or in_lanes, cycles=cycles,
        macs=0, weight_memory_bits=0)


@_layer_plan.register
def _(layer: MaxPool, x: TensorType, y: TensorType, in_lanes: int) -> LayerPlan:
    return _weightless(layer, x, y, in_lanes,
                       cycles=window_geometry(layer, x, in_lanes).cycles)


@_layer_plan.register
def _(layer: GlobalSumPool | Flatten | Add, x: TensorType, y: TensorType,
      in_lanes: int) -> LayerPlan:
    return _weightless(layer, x, y, in_lanes, cycles=x.size // in_lanes)


@_layer_plan.register
def _(layer: Argmax, x: TensorType, y: TensorType, in_lanes: int) -> LayerPlan:
    return _weightless(layer, x, y, in_lanes, cycles=x.size // in_lanes, out_lanes=1)


def _lanes_wanted(layer: Layer, x: TensorType, upstream_lanes: int) -> int:
    if isinstance(layer, Dense):
        return layer.simd or default_simd(layer.in_features)
    if isinstance(layer, Conv2d):
        return layer.simd or default_simd(x.shape[-1])
    if isinstance(layer, DepthwiseConv2d):
        return layer.pe or 1
    if isinstance(layer, MaxPool | GlobalSumPool) and x.shape[-1] % upstream_lanes:
        return 1
    return upstream_lanes


def _auto_dsp_layers(network: Network, budget: int) -> set[str]:
    """The ``mac = "auto"`` layers to put on DSPs with ``budget`` DSP multipliers: after the
    layers that ask for DSPs, greedily the layers that save the most LUTs per DSP."""
    candidates, used = [], 0
    for layer, x, _ in network.layer_io():
        if not isinstance(layer, WeightLayer) or mac_kind(layer, x, True) != "dsp":
            continue
        pe = layer.pe or 1
        if dsp_product_problem(layer, x, pe):
            continue  # Yosys would keep its narrow products in logic
        if isinstance(layer, DepthwiseConv2d):
            simd = 1
        else:
            simd = layer.simd or default_simd(layer.in_features if isinstance(layer, Dense)
                                              else x.shape[-1])
        if dsp_operand_problem(x, layer.weight_bits):
            continue
        dsps = _layer_dsps(layer, x, pe, simd)
        if layer.mac == "dsp":
            used += dsps
        else:
            saved = lut_mac_cost(x.bits, layer.weight_bits) * pe * simd
            candidates.append((saved / dsps, dsps, layer.name))
    chosen = set()
    for _, dsps, name in sorted(candidates, reverse=True):
        if used + dsps <= budget:
            chosen.add(name)
            used += dsps
    return chosen


def plan(network: Network, dsp_budget: int | None = None) -> NetworkPlan:
    """Resolve default foldings and compute every stage's cycles and costs.

    ``dsp_budget`` is the device's DSP multiplier count: with it, ``mac = "auto"`` layers go
    on DSPs where they fit, most LUTs saved per DSP first (:func:`_auto_dsp_layers`); without,
    they stay in logic."""
    on_dsp = _auto_dsp_layers(network, dsp_budget) if dsp_budget else set()
    first, x0 = network.layers[0], network.input_type
    input_lanes = network.input.lanes or _lanes_wanted(first, x0, 1)
    if x0.shape[-1] % input_lanes:
        input_lanes = 1
    lanes_of = {INPUT: input_lanes}
    layers, converters = [], []
    for (layer, x, y), sources in zip(network.layer_io(), network.sources, strict=True):
        wanted = _lanes_wanted(layer, x, lanes_of[sources[0]])
        for port, src in enumerate(sources):
            if lanes_of[src] != wanted:
                converters.append(ConverterPlan(layer.name, x.size, lanes_of[src], wanted,
                                                port))
        if isinstance(layer, WeightLayer):
            lp = _layer_plan(layer, x, y, wanted, layer.name in on_dsp)
        else:
            lp = _layer_plan(layer, x, y, wanted)
        layers.append(lp)
        lanes_of[layer.name] = lp.out_lanes
    fifos = _branch_fifos(network, layers, converters)
    return NetworkPlan(network.name, x0, input_lanes, layers, converters,
                       list(network.sources), fifos)


def stage_capacity(lp: LayerPlan, layer: Layer) -> int:
    """An upper bound of the elements of its input tensor a stage holds (line buffers, input
    vectors, output FIFO contents converted back to input elements, a few beats of slack):
    how far it can run ahead of its output."""
    ratio = max(1, -(-lp.in_type.size // max(1, lp.out_type.size)))
    held = 4 * lp.in_lanes + 8 * lp.out_lanes * ratio
    if isinstance(layer, Conv2d | DepthwiseConv2d | MaxPool):
        held += window_geometry(layer, lp.in_type, lp.in_lanes).buffer_words * lp.in_lanes
    if isinstance(layer, Conv2d):
        held += 2 * layer.in_features + (lp.depth + 4) * (lp.pe or 1) * ratio
    if isinstance(layer, DepthwiseConv2d):  # two buffered windows of k·k·C elements
        held += 2 * layer.in_features * layer.channels + (lp.depth + 4) * (lp.pe or 1) * ratio
    if isinstance(layer, Dense):
        held += 2 * layer.in_features + (lp.depth + 4) * (lp.pe or 1) * ratio
    if isinstance(layer, GlobalSumPool | Argmax):
        held += lp.in_type.size
    return held


def _branch_fifos(network: Network, layers: list[LayerPlan],
                  converters: list[ConverterPlan]) -> dict[tuple[str, int], int]:
    """FIFO depths in front of both inputs of every add layer.

    The two inputs of an add come from one fork (a tensor read twice). Port p's FIFO must hold
    everything the fork can send down port p while the other branch fills up before its
    first output: the sum of the other branch's stage capacities, each converted into
    elements of port p's tensor, in beats, plus slack. With that, neither branch can stall
    the fork for good (docs/cost-model.md)."""
    index = {layer.name: i for i, layer in enumerate(network.layers)}

    def ancestors(tensor: str) -> set[str]:
        seen, todo = set(), [tensor]
        while todo:
            t = todo.pop()
            if t in seen or t == INPUT:
                continue
            seen.add(t)
            todo.extend(network.sources[index[t]])
        return seen

    conv_capacity = {(c.before, c.port): c.capacity for c in converters}
    fifos = {}
    for i, layer in enumerate(network.layers):
        if not isinstance(layer, Add):
            continue
        branch = [ancestors(src) for src in network.sources[i]]
        for port, src in enumerate(network.sources[i]):
            other = branch[1 - port] - branch[port]
            elements = network.type_of(src).size
            held = 0.0
            for name in other:
                j = index[name]
                lp = layers[j]
                stage = stage_capacity(lp, network.layers[j]) + sum(
                    conv_capacity.get((name, q), 0) for q in range(2))
                held += stage * elements / lp.in_type.size
            held += conv_capacity.get((layer.name, 1 - port), 0)
            lanes = layers[i].in_lanes
            fifos[(layer.name, port)] = int(-(-held // lanes)) + 4
    return fifos


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)


def format_table(p: NetworkPlan) -> str:
    """The per-layer table that ``hwgen check`` prints."""
    head = ["layer", "kind", "in", "out", "scheme", "mac", "in bits", "out bits", "MACs",
            "weights KB", "PE", "SIMD", "cycles"]
    rows = []
    for lp in p.layers:
        mac = lp.mac or "-"
        if lp.mac == "dsp":
            mac = f"dsp×{lp.dsps}" + (f" ({lp.dsp_pack}/dsp)" if lp.dsp_pack > 1 else "")
        rows.append([lp.name, lp.kind, _shape(lp.in_type.shape), _shape(lp.out_type.shape),
                     lp.scheme, mac, lp.in_type.describe(), lp.out_type.describe(),
                     f"{lp.macs:,}", f"{lp.weight_memory_bits / 8192:.2f}", str(lp.pe or "-"),
                     str(lp.simd or "-"), f"{lp.cycles:,}"])
    rows.append(["total", "", _shape(p.input_type.shape), _shape(p.layers[-1].out_type.shape),
                 "", f"dsp×{p.dsps}" if p.dsps else "", p.input_type.describe(), "",
                 f"{p.macs:,}", f"{p.weight_memory_bits / 8192:.2f}", "", "",
                 f"{p.cycles_per_inference:,}"])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    right = {8, 9, 10, 11, 12}

    def fmt(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [f"network {p.name}: input {_shape(p.input_type.shape)} "
             f"{p.input_type.describe()}, {p.input_lanes} lane(s) per beat", fmt(head), rule]
    lines += [fmt(r) for r in rows[:-1]] + [rule, fmt(rows[-1])]
    lines.append(f"cycles per inference {p.cycles_per_inference:,} "
                 f"(bottleneck: {p.bottleneck})")
    return "\n".join(lines + [""] + format_memory(p).splitlines())


def format_memory(p: NetworkPlan) -> str:
    """The memory report: weights and output activations per layer in KB, at the layers' own
    widths and at 16/8/1 bit, and the network's peak working set."""
    head = ["layer", "MACs/ops", "W KB", "@16", "@8", "@1", "out act KB", "@16", "@8", "@1"]
    rows = []
    for lp in p.layers:
        mem = lp.memory_kb()
        w, a = mem["weights_kb"], mem["out_activations_kb"]
        rows.append([lp.name, f"{lp.macs:,}"] + [f"{w[k]:.2f}" for k in w]
                    + [f"{a[k]:.2f}" for k in a])
    total = p.memory_kb()
    w, peak = total["weights_kb"], total["peak_working_set_kb"]
    rows.append(["total", f"{p.macs:,}"] + [f"{w[k]:.2f}" for k in w] + [""] * 4)
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(wd) if i == 0 else c.rjust(wd)
                         for i, (c, wd) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "  ".join("-" * wd for wd in widths)
    lines = ["memory (KB = 1024 bytes; actual widths, then every value at 16/8/1 bit)",
             fmt(head), rule] + [fmt(r) for r in rows[:-1]] + [rule, fmt(rows[-1])]
    lines.append(f"peak working set (weights + largest layer in + out): {peak['actual']:.2f} "
                 f"KB (" + ", ".join(f"@{b} {peak[str(b)]:.2f}" for b in COMPARE_BITS) + ")")
    return "\n".join(lines)
