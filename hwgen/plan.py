"""Folding, the cycle model and the per-layer table of ``hwgen check``.

Cycle counts here are exact predictions of the RTL: a layer's ``cycles`` is the number of clock
cycles it needs per inference when its input is always valid and its output always ready; the
network's cycles per inference (its initiation interval) is the largest of its stages'; its
``latency`` is the number of cycles from the first input beat to the output beat of a single
inference in an empty pipeline. docs/cost-model.md gives the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layers import INPUT, Layer, LayerPlan, Mac, WeightedLayer, kind_of
from .layers.base import COMPARE_BITS, MVU_DEPTH, folded_depth
from .layers.base import kb as _kb
from .layers.weighted import (
    default_simd,
    dsp_operand_problem,
    dsp_packing,
    dsp_product_problem,
    layer_dsp_pack,
    layer_dsps,
    lut_mac_cost,
    mac_kind,
    output_steps,
    packed_operand_bits,
    requantize_factors,
)
from .layers.window import WindowGeometry
from .numeric import TensorType
from .spec import Network, output_names

__all__ = ["LayerPlan", "NetworkPlan", "WindowGeometry", "plan", "default_simd",
           "MVU_DEPTH", "folded_depth", "requantize_factors", "output_steps", "format_table",
           "format_memory", "stage_capacity", "Mac", "checked_plan", "converter_capacity",
           "dsp_packing", "packed_operand_bits", "layer_dsp_pack", "mac_kind", "lut_mac_cost"]


def converter_capacity(in_lanes: int, out_lanes: int) -> int:
    """Elements a width converter from ``in_lanes`` to ``out_lanes`` elements per beat holds:
    enough that neither side waits on the other at its full rate
    (:class:`hwgen.rtl.stream.WidthConverter`)."""
    return in_lanes + out_lanes - 1 + max(in_lanes, out_lanes)


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
        return converter_capacity(self.in_lanes, self.out_lanes)

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
            times = kind_of(lp.kind).out_times(lp, times)
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
        pairs = [sum(t.size * width(t) for t in lp.in_types)
                 + lp.outputs * lp.out_type.size * width(lp.out_type)
                 for lp in self.layers if not kind_of(lp.kind).is_view]
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


def _auto_dsp_layers(network: Network, budget: int) -> set[str]:
    """The ``mac = "auto"`` layers to put on DSPs with ``budget`` DSP multipliers: after the
    layers that ask for DSPs, greedily the layers that save the most LUTs per DSP."""
    candidates, used = [], 0
    for layer, x, _ in network.layer_io():
        if not isinstance(layer, WeightedLayer) or mac_kind(layer, x, True) != Mac.DSP:
            continue
        pe, simd = layer.folding(x)
        if dsp_product_problem(layer, x, pe):
            continue  # Yosys would keep its narrow products in logic
        if dsp_operand_problem(x, layer.weight_bits):
            continue
        dsps = layer_dsps(layer, x, pe, simd)
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
    x0 = network.input_type
    input_lanes = network.input.lanes or network.layers[0].lanes_wanted([x0], 1)
    if x0.shape[-1] % input_lanes:
        input_lanes = 1
    lanes_of = {INPUT: input_lanes}
    layers, converters = [], []
    for index, (layer, sources) in enumerate(zip(network.layers, network.sources, strict=True)):
        inputs = network.input_types(index)
        wanted = layer.lanes_wanted(inputs, lanes_of[sources[0]])
        for port, (src, x) in enumerate(zip(sources, inputs, strict=True)):
            if lanes_of[src] != wanted:
                converters.append(ConverterPlan(layer.name, x.size, lanes_of[src], wanted,
                                                port))
        lp = layer.cost(inputs, network.types[index + 1], wanted, layer.name in on_dsp)
        layers.append(lp)
        lanes_of.update({t: lp.out_lanes for t in output_names(layer)})
    fifos = _branch_fifos(network, layers, converters)
    return NetworkPlan(network.name, x0, input_lanes, layers, converters,
                       list(network.sources), fifos)


def checked_plan(network: Network, net_plan: NetworkPlan | None) -> NetworkPlan:
    """``net_plan`` if it is ``network``'s plan (``TypeError``/``ValueError`` otherwise), or
    the network's plan without DSPs when ``None``."""
    if net_plan is None:
        return plan(network)
    if not isinstance(net_plan, NetworkPlan):
        raise TypeError(f"net_plan must be a hwgen.plan.NetworkPlan, not {net_plan!r}")
    if net_plan.name != network.name or [lp.name for lp in net_plan.layers] != [
            layer.name for layer in network.layers]:
        raise ValueError(f"net_plan is the plan of {net_plan.name!r}, not of the network "
                         f"{network.name!r}")
    return net_plan


def stage_capacity(lp: LayerPlan, layer: Layer) -> int:
    """An upper bound of the elements of its input tensor a stage holds (its line buffers,
    input vectors and whole tensors (:meth:`~hwgen.layers.base.Layer.held`), output FIFO
    contents converted back to input elements, a few beats of slack): how far it can run
    ahead of its output."""
    ratio = max(1, -(-lp.in_type.size // max(1, lp.out_type.size)))
    return 4 * lp.in_lanes + 8 * lp.out_lanes * ratio + layer.held(lp)


def _branch_fifos(network: Network, layers: list[LayerPlan],
                  converters: list[ConverterPlan]) -> dict[tuple[str, int], int]:
    """FIFO depths in front of every input of every layer with several inputs.

    The inputs of such a layer come from one fork (a tensor read twice, or the outputs of
    one channel split). Port p's FIFO must hold everything the fork can send down port p while
    the other branches fill up before their first output: the sum of the other branches'
    stage capacities, each converted into elements of port p's tensor, in beats, plus slack.
    With that, no branch can stall the fork for good (docs/cost-model.md)."""
    producer = {t: i for i, layer in enumerate(network.layers) for t in output_names(layer)}

    def ancestors(tensor: str) -> set[str]:
        seen, todo = set(), [tensor]
        while todo:
            t = todo.pop()
            if t == INPUT:
                continue
            name = network.layers[producer[t]].name
            if name in seen:
                continue
            seen.add(name)
            todo.extend(network.sources[producer[t]])
        return seen

    index = {layer.name: i for i, layer in enumerate(network.layers)}
    conv_capacity = {(c.before, c.port): c.capacity for c in converters}
    fifos = {}
    for i, layer in enumerate(network.layers):
        sources = network.sources[i]
        if len(sources) < 2:
            continue
        branch = [ancestors(src) for src in sources]
        for port, src in enumerate(sources):
            others = [q for q in range(len(sources)) if q != port]
            other = set().union(*(branch[q] for q in others)) - branch[port]
            elements = network.type_of(src).size
            held = 0.0
            for name in other:
                j = index[name]
                lp = layers[j]
                stage = stage_capacity(lp, network.layers[j]) + sum(
                    conv_capacity.get((name, q), 0) for q in range(len(network.sources[j])))
                held += stage * elements / lp.in_type.size
            held += sum(conv_capacity.get((layer.name, q), 0) for q in others)
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
