"""What a design takes of a board before synthesis: block RAMs, SPRAMs and DSPs exactly.

The memories are not described a second time here: the board top a build would synthesize
is elaborated (Amaranth only, under a second) and every memory in it is read off the
netlist with its width, depth, ports and contents (:func:`memories`). Each is then placed as
Yosys 0.70's ``memory_libmap`` places it (:func:`map_memory`), by its cost model:

- each library entry (SB_RAM40_4K on iCE40; TRELLIS_DPR16X4 distributed RAM, DP16KD and
  PDPW16KD on ECP5) at its cheapest data width: its cost per unit (64, 4, 128) times the
  units, plus half a point per bit of read mux and per write enable over the address blocks,
  plus two for the read port;
- soft logic: 1 per bit of a RAM, 1/16 per bit of a ROM;
- the cheapest wins, logic on a tie, costs truncated to integers as the pass compares them.

DSPs are those of the layers the plan puts on DSPs (``mac = "dsp"``/``"auto"``), their wide
requantize products split for the family's multiplier (16×16 on iCE40, 18×18 on ECP5);
SPRAMs are the SB_SPRAM256KA instances in the netlist. Each memory is charged to the layer
whose unit holds it (the network's FIFOs and width converters to the layer they feed) or to
the board core (the UART protocol). ``bench/memory_model.py`` checks every count against
Yosys on the reference designs, both families.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .layers.weighted import layer_dsps
from .plan import NetworkPlan, converter_capacity
from .spec import Network

__all__ = ["MemoryUse", "Placement", "ResourceUse", "RamKind", "memories", "map_memory",
           "board_top", "estimate", "estimate_logic", "logic_features", "memory_features",
           "predict_cells", "predict_row", "predict_total", "unit_use", "layer_shares",
           "converter_features", "owner_of", "links_row", "format_resources", "BOARD_CORE",
           "RAM_KINDS", "RESOURCE_NAMES"]

#: The part of a build that is not a layer: the board top's protocol core and UART.
BOARD_CORE = "board core"

@dataclass(frozen=True)
class RamKind:
    """One of Yosys' memory library entries as ``memory_libmap`` prices it: ``units``, the
    (words, data bits, write-enable granularity in bits) of each data width it offers,
    narrowest first; ``cost`` per unit; ``rom``, whether it may hold a ROM; ``sync``,
    whether its read port is synchronous (an asynchronous one serves a synchronous read
    through a register); ``kind``, the resource it uses."""

    name: str
    units: tuple[tuple[int, int, int], ...]
    cost: int
    rom: bool
    sync: bool
    kind: str


#: The memory libraries ``synth_ice40`` and ``synth_ecp5`` give ``memory_libmap``, in their
#: order (share/ice40/brams.txt; share/lattice/lutrams_trellis.txt, brams_16kd.txt).
RAM_KINDS = {
    "ice40": (RamKind("SB_RAM40_4K", ((2048, 2, 2), (1024, 4, 4), (512, 8, 8), (256, 16, 1)),
                      64, True, True, "bram"),),
    "ecp5": (RamKind("TRELLIS_DPR16X4", ((16, 4, 4),), 4, False, False, "lutram"),
             RamKind("DP16KD", ((16384, 1, 1), (8192, 2, 2), (4096, 4, 4), (2048, 9, 9),
                                (1024, 18, 9)), 128, True, True, "bram"),
             RamKind("PDPW16KD", ((2048, 9, 9), (1024, 18, 9), (512, 36, 9)), 128, True, True,
                     "bram")),
}
#: Yosys' costs of one memory bit in soft logic (``memory_libmap`` defaults).
LOGIC_COST_RAM = 1.0
LOGIC_COST_ROM = 1.0 / 16
#: memory_libmap's weights of the read-data mux and the write-enable demux over address
#: blocks, and of each emulated port feature (one point: a read port of its own).
FACTOR_MUX, FACTOR_DEMUX, FACTOR_EMU = 0.5, 0.5, 2
#: Signed operand bits of a family's DSP multiplier (SB_MAC16 16×16, MULT18X18D 18×18).
DSP_OPERAND_BITS = {"ice40": 16, "ecp5": 18}
#: Netlist instances counted as they are, by primitive → resource key.
PRIMITIVES = {"SB_SPRAM256KA": "spram"}


@dataclass(frozen=True)
class MemoryUse:
    """One memory of the elaborated design: where it is (hierarchy, dot-separated), ``width``
    × ``depth`` bits (of a ROM, the bit columns its contents do not hold constant: Yosys
    removes the others), whether it is a ROM (no write port), and whether every read port is
    synchronous (a block RAM can serve it)."""

    where: str
    width: int
    depth: int
    rom: bool
    sync_read: bool

    @property
    def bits(self) -> int:
        return self.width * self.depth


@dataclass(frozen=True)
class Placement:
    """Where a memory goes: ``"bram"`` (``count`` blocks), ``"lutram"`` (``count``
    TRELLIS_DPR16X4) or ``"logic"`` (``count`` = its bits, in flip-flops or LUTs)."""

    kind: str
    count: int


def _price(mem: MemoryUse, ram: RamKind) -> tuple[float, int]:
    """memory_libmap's cost of ``mem`` on ``ram`` at its cheapest data width, and the units
    it takes there (one write port with one enable, one read port, no wide ports)."""
    best = None
    for words, bits, byte in ram.units:
        byte = 1 if mem.rom else byte
        padded = math.ceil(mem.width / byte) * byte
        blocks = math.ceil(mem.depth / words)  # address blocks
        units = math.ceil(blocks * padded / bits)
        mux = (blocks - 1) * mem.width
        demux = blocks if not mem.rom and blocks != 1 else 0
        cost = ram.cost * units + FACTOR_MUX * mux + FACTOR_DEMUX * demux + FACTOR_EMU * 1
        if best is None or cost < int(best[0]):
            best = (cost, units)
    return best


def map_memory(mem: MemoryUse, family: str) -> Placement:
    """The placement Yosys' ``memory_libmap`` chooses for ``mem`` on ``family``: soft logic
    unless a library entry is cheaper, the first of equals in library order (its
    comparisons truncate costs to integers, as here)."""
    best = int(mem.bits * (LOGIC_COST_ROM if mem.rom else LOGIC_COST_RAM))
    chosen = Placement("logic", mem.bits)
    for ram in RAM_KINDS[family]:
        if (mem.rom and not ram.rom) or (not mem.sync_read and ram.sync):
            continue
        cost, units = _price(mem, ram)
        if cost < best:
            best, chosen = int(cost), Placement(ram.kind, units)
    return chosen


def board_top(network: Network, info, net_plan: NetworkPlan):
    """The board top ``hwgen build`` synthesizes for ``network`` on board ``info`` as
    ``net_plan`` plans it, at the oscillator and the board's link rate (what this module
    counts does not depend on the clock)."""
    from .rtl.board import BoardTop

    return BoardTop(network, clk_hz=info.clk_hz, uart=info.uart, baud=info.baud,
                    clock_hz=None, family=info.family, net_plan=net_plan)


def memories(network: Network, info, net_plan: NetworkPlan) -> tuple[list[MemoryUse], Counter]:
    """Every memory of the board top ``hwgen build`` would synthesize for ``network`` on board
    ``info`` as ``net_plan`` plans it, and the counted primitives (:data:`PRIMITIVES`) by
    hierarchy: ``{(where, resource key): count}``."""
    return _memories_of(board_top(network, info, net_plan), info.platform())


def _memories_of(top, platform, *, fill_roms: bool = False) -> tuple[list[MemoryUse], Counter]:
    """:func:`memories` of any elaboratable ``top``, hierarchy from ``top`` down. Its ROMs
    are built empty (:func:`hwgen.rtl.memory.roms_for_pricing`) unless ``fill_roms``: the
    same answer, without filling them word by word."""
    import warnings
    from contextlib import nullcontext

    from amaranth.hdl import Fragment, Instance, Shape
    from amaranth.hdl._mem import MemoryInstance

    from .rtl.memory import roms_for_pricing, varying_bits

    found: list[MemoryUse] = []
    primitives: Counter = Counter()

    def walk(fragment, path: tuple[str, ...]) -> None:
        if isinstance(fragment, MemoryInstance):
            data = fragment._data
            width = Shape.cast(data.shape).width
            rom = not fragment._write_ports
            if rom:  # Yosys drops the bit columns a ROM holds constant
                width = recorded[id(data)][1] if id(data) in recorded else varying_bits(
                    data.init._raw, width, int(data.depth))
            if width:
                found.append(MemoryUse(
                    where=".".join(path), width=int(width), depth=int(data.depth), rom=rom,
                    sync_read=all(p._domain != "comb" for p in fragment._read_ports)))
        elif isinstance(fragment, Instance) and fragment.type in PRIMITIVES:
            primitives[(".".join(path), PRIMITIVES[fragment.type])] += 1
        for sub, name, _ in fragment.subfragments:
            walk(sub, (*path, str(name)))

    with warnings.catch_warnings(), (nullcontext({}) if fill_roms else roms_for_pricing()) \
            as recorded:
        warnings.simplefilter("ignore")
        walk(Fragment.get(top, platform), ())
    return found, primitives


def _charge(row: Counter, mem: MemoryUse, placed: Placement) -> None:
    """Count ``mem``, placed as ``placed``, in ``row``: block RAMs, LUT RAM cells, or bits in
    logic (also as ``logic_rom_bits``/``logic_ram_bits``, the logic model's features)."""
    key = {"bram": "bram", "lutram": "lutram", "logic": "logic_bits"}[placed.kind]
    row[key] += placed.count
    if placed.kind == "logic":
        row["logic_rom_bits" if mem.rom else "logic_ram_bits"] += placed.count


def unit_use(layer, lp, info) -> Counter:
    """What :func:`estimate` charges to one layer's row, for its unit alone built as ``lp``
    on board ``info``: block RAMs, SPRAMs, DSPs, LUT RAM cells and memory bits in logic (the
    FIFOs and converters in front of it not included). What ``hwgen fold`` prices each way
    of building a layer with."""
    from .rtl.network import component

    found, primitives = _memories_of(component(layer, lp), info.platform())
    row: Counter = Counter()
    for mem in found:
        _charge(row, mem, map_memory(mem, info.family))
    for (_, key), count in primitives.items():
        row[key] += count
    if lp.dsps:
        row["dsp"] += layer_dsps(layer, lp.in_type, lp.pe, lp.simd, DSP_OPERAND_BITS[info.family])
    return row


@dataclass
class ResourceUse:
    """Block RAMs, SPRAMs, DSPs, ECP5 distributed RAM cells and memory bits left in logic:
    ``rows`` per layer (in network order) and the board core, ``total``, and the device's
    ``available`` (block RAM, SPRAM, DSP)."""

    family: str
    rows: dict[str, Counter] = field(default_factory=dict)
    memories: list[tuple[str, MemoryUse, Placement]] = field(default_factory=list)
    available: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> Counter:
        total: Counter = Counter()
        for row in self.rows.values():
            total.update(row)
        return total

    def over(self) -> list[str]:
        """The resources the design needs more of than the device has."""
        return [key for key in ("bram", "spram", "dsp")
                if self.total[key] > self.available.get(key, 0)]

    def to_json(self) -> dict:
        keys = ("bram", "spram", "dsp", "lutram", "logic_bits")
        return {
            "family": self.family,
            "rows": {name: {k: row[k] for k in keys} for name, row in self.rows.items()},
            "total": {k: self.total[k] for k in keys},
            "available": dict(self.available),
            "memories": [{"where": where, "width": m.width, "depth": m.depth, "rom": m.rom,
                          "sync_read": m.sync_read, "placed": p.kind, "count": p.count}
                         for where, m, p in self.memories],
        }


def owner_of(where: str, layers: list[str], links: bool = False) -> str:
    """The row a memory or cell at hierarchy ``where`` belongs to: the network unit it is in, or
    the layer a network-level FIFO/converter named ``<layer>_…`` feeds (with ``links``, that
    layer's :func:`links_row`); else the board core."""
    parts = where.split(".")
    if "network" not in parts:
        return BOARD_CORE
    unit = parts[parts.index("network") + 1] if parts.index("network") + 1 < len(parts) else ""
    if unit in layers:
        return unit
    for name in sorted(layers, key=len, reverse=True):
        if unit.startswith(f"{name}_"):
            link = unit[len(name) + 1:].startswith(("fifo", "converter"))
            return links_row(name) if links and link else name
    return BOARD_CORE


def links_row(layer: str) -> str:
    """The logic model's row for the width converters and FIFOs in front of ``layer`` (their
    cells are measured apart from the layer's own)."""
    return f"{layer} links"


def estimate_logic(network: Network, net_plan: NetworkPlan, use: ResourceUse
                   ) -> tuple[dict[str, float], list[float] | None]:
    """The fitted model's logic cells and flip-flops of the whole build (``{}`` without a
    model: :func:`predict_total`), and its measured error range (percent) on the reference
    designs."""
    model = load_logic_model()
    features = logic_features(network, net_plan)
    for name, row in memory_features(use).items():
        for key, value in row.items():
            features.setdefault(name, {})[key] = features.get(name, {}).get(key, 0.0) + value
    logic = predict_total(features, use.family, model)
    key = "lut4" if use.family == "ecp5" else "lcs"
    error = (model or {}).get("families", {}).get(use.family, {}).get(
        "held_out_error_percent", {}).get(key)
    return logic, error


def layer_shares(network: Network, net_plan: NetworkPlan, use: ResourceUse,
                 model: dict | None = None) -> dict[str, dict[str, float]]:
    """Per layer (its converters and FIFOs included) and the board core: ``logic`` (LCs or
    LUT4s) and ``ffs`` by the fitted model, ``bram``, ``spram`` and ``dsp`` exactly."""
    features = logic_features(network, net_plan)
    for name, row in memory_features(use).items():
        for key, value in row.items():
            features.setdefault(name, {})[key] = features.get(name, {}).get(key, 0.0) + value
    key = "lut4" if use.family == "ecp5" else "lcs"
    names = [lp.name for lp in net_plan.layers] + [BOARD_CORE]
    shares = {name: {"logic": 0.0, "ffs": 0.0,
                     **{k: float(use.rows[name][k]) for k in ("bram", "spram", "dsp")}}
              for name in names}
    for row, values in features.items():
        owner = next((n for n in names if row in (n, links_row(n))), BOARD_CORE)
        logic = predict_row(values, use.family, model)
        shares[owner]["logic"] += logic.get(key, 0.0)
        shares[owner]["ffs"] += logic.get("ffs", 0.0)
    return shares


def estimate(network: Network, info, net_plan: NetworkPlan) -> ResourceUse:
    """The block RAMs, SPRAMs and DSPs (and where the memories go) of ``network`` built for
    board ``info`` as ``net_plan`` plans it."""
    names = [lp.name for lp in net_plan.layers]
    use = ResourceUse(info.family, rows={name: Counter() for name in [*names, BOARD_CORE]},
                      available={k: int(info.resources.get(k, 0))
                                 for k in ("bram", "spram", "dsp")})
    found, primitives = memories(network, info, net_plan)
    for mem in found:
        placed = map_memory(mem, info.family)
        owner = owner_of(mem.where, names)
        use.memories.append((owner, mem, placed))
        _charge(use.rows[owner], mem, placed)
    for (where, key), count in primitives.items():
        use.rows[owner_of(where, names)][key] += count
    for layer, lp in zip(network.layers, net_plan.layers, strict=True):
        if lp.dsps:  # the plan's 16-bit count, split for this family's multipliers
            use.rows[lp.name]["dsp"] += layer_dsps(layer, lp.in_type, lp.pe, lp.simd,
                                                   DSP_OPERAND_BITS[info.family])
    return use


#: The fitted logic model (``bench/calibrate.py`` writes it): per family, per resource
#: (``lcs`` or ``lut4``, ``ffs``), a coefficient per feature name.
LOGIC_MODEL = Path(__file__).parent / "data" / "logic_model.json"


def logic_features(network: Network, net_plan: NetworkPlan) -> dict[str, dict[str, float]]:
    """The features of each layer's logic (:meth:`~hwgen.layers.base.Layer.logic_features`,
    plus the width converters and branch FIFOs in front of it) and of the board core (its
    protocol, and the capture of one score per class), by :class:`ResourceUse` row."""
    rows: dict[str, dict[str, float]] = {}
    by_name = {lp.name: lp for lp in net_plan.layers}
    for layer, lp in zip(network.layers, net_plan.layers, strict=True):
        rows[lp.name] = dict(layer.logic_features(lp))
    for conv in net_plan.converters:
        lp = by_name[conv.before]
        bits = (lp.in_types or (lp.in_type,))[conv.port].bits
        row = rows.setdefault(links_row(conv.before), {})
        for key, value in converter_features(conv.in_lanes, conv.out_lanes, bits).items():
            row[key] = row.get(key, 0.0) + value
    for (before, port), depth in net_plan.fifos.items():  # logic, whatever memory holds them
        lp = by_name[before]
        bits = (lp.in_types or (lp.in_type,))[port].bits * lp.in_lanes
        row = rows.setdefault(links_row(before), {})
        row["fifo"] = row.get("fifo", 0.0) + 1.0
        row["fifo_bits"] = row.get("fifo_bits", 0.0) + depth * bits
    scores = net_plan.layers[-2].out_type if len(net_plan.layers) > 1 else net_plan.input_type
    rows[BOARD_CORE] = {"core": 1.0, "core_scores": float(scores.size * scores.bits)}
    return rows


def converter_features(in_lanes: int, out_lanes: int, bits: int) -> dict[str, float]:
    """The logic features of a width converter (:class:`hwgen.rtl.stream.WidthConverter`)
    from ``in_lanes`` to ``out_lanes`` elements of ``bits`` bits: one unit, its buffer's
    bits, and the bits of its input multiplexers. Buffer element j takes input lane j − ℓ at
    every fill level ℓ that puts one there; the fill level only takes multiples of
    gcd(in, out) (Yosys finds the low bits of the count constant), so a converter whose
    output is a multiple of its input has one source per element, and one that narrows
    many lanes to few has many."""
    cap = converter_capacity(in_lanes, out_lanes)
    levels = range(0, cap - in_lanes + 1, math.gcd(in_lanes, out_lanes))
    extra = sum(max(sum(lvl <= j < lvl + in_lanes for lvl in levels) - 1, 0)
                for j in range(cap))
    return {"converter": 1.0, "converter_bits": float(cap * bits),
            "converter_mux_bits": float(extra * bits)}


def memory_features(use: ResourceUse) -> dict[str, dict[str, float]]:
    """Per logic-model row (layers, their :func:`links_row`, board core), the logic its
    memories take outside block RAM: ROM and RAM bits left to soft logic, and distributed
    RAM cells (with their write and read logic)."""
    names = [name for name in use.rows if name != BOARD_CORE]
    rows: dict[str, dict[str, float]] = {}
    for _, mem, placed in use.memories:
        if placed.kind == "logic":
            key = "logic_rom_bits" if mem.rom else "logic_ram_bits"
        elif placed.kind == "lutram":
            key = "lutram"
        else:
            continue
        row = rows.setdefault(owner_of(mem.where, names, links=True), {})
        row[key] = row.get(key, 0.0) + placed.count
    return rows


def load_logic_model(path: Path = LOGIC_MODEL) -> dict | None:
    """The fitted logic model, or ``None`` when none has been fitted."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def predict_cells(features: dict[str, dict[str, float]], family: str,
                  model: dict | None = None) -> dict[str, dict[str, float]]:
    """Per row, the model's Yosys cells: LUT4s, carries (and on ECP5 the wide-function
    muxes), flip-flops; ``{}`` without a fitted model."""
    model = load_logic_model() if model is None else model
    if model is None or family not in model["families"]:
        return {}
    cells = model["families"][family]["cells"]
    return {name: {kind: sum(c.get(f, 0.0) * v for f, v in row.items())
                   for kind, c in cells.items()}
            for name, row in features.items()}


def predict_row(row: dict[str, float], family: str, model: dict | None = None
                ) -> dict[str, float]:
    """One row's share of :func:`predict_total` (the model is linear, so rows add up):
    logic cells after packing (``lcs`` or ``lut4``) and flip-flops; ``{}`` without a
    model."""
    model = load_logic_model() if model is None else model
    cells = predict_cells({"row": row}, family, model).get("row")
    if cells is None:
        return {}
    cells["lutram"] = cells.get("lutram", 0.0) + row.get("lutram", 0.0)
    packing = model["families"][family]["packing"]
    return {key: sum(c * cells.get(kind, 0.0) for kind, c in coefficients.items())
            for key, coefficients in packing.items()}


def predict_total(features: dict[str, dict[str, float]], family: str,
                  model: dict | None = None) -> dict[str, float]:
    """The whole build's logic cells after nextpnr's packing (``lcs`` on iCE40, ``lut4`` on
    ECP5) and flip-flops: the rows' predicted cells summed, the ECP5's distributed RAM
    cells added (exact, from the memory placement), through the fitted packing."""
    model = load_logic_model() if model is None else model
    totals: dict[str, float] = {}
    for row in features.values():
        for key, value in predict_row(row, family, model).items():
            totals[key] = totals.get(key, 0.0) + value
    return totals


def format_resources(use: ResourceUse, board_name: str, device: str,
                     logic: dict[str, float] | None = None, logic_available: int = 0,
                     error: list[float] | None = None) -> str:
    """The resource report of ``hwgen check --board``: per layer and the board core, block
    RAMs, SPRAMs, DSPs (and the ECP5's distributed RAM cells) and the memory bits left to
    logic; totals against the device. With ``logic`` (:func:`estimate_logic`'s totals), one
    line with the logic model's LCs or LUT4s against ``logic_available`` and its measured
    ``error`` range (percent) on the reference designs."""
    ecp5 = use.family == "ecp5"
    head = ["layer", "block RAM", "SPRAM", "DSP"] + (["LUT RAM"] if ecp5 else []) \
        + ["memory bits in logic"]
    keys = ["bram", "spram", "dsp"] + (["lutram"] if ecp5 else []) + ["logic_bits"]
    rows = [[name] + [f"{row[k]:,}" for k in keys] for name, row in use.rows.items()]
    total = use.total
    avail = use.available
    rows.append(["total"] + [f"{total[k]:,} / {avail[k]:,}" if k in avail else f"{total[k]:,}"
                             for k in keys])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(wd) if i == 0 else c.rjust(wd)
                         for i, (c, wd) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "  ".join("-" * wd for wd in widths)
    over = use.over()
    verdict = ("fits: block RAMs, SPRAMs and DSPs within the device" if not over else
               "does not fit: " + ", ".join(f"{total[k]:,} {RESOURCE_NAMES[k]} of {avail[k]:,}"
                                            for k in over))
    lines = [f"resources on {board_name} ({device}), before synthesis "
             "(block RAMs, SPRAMs and DSPs as Yosys maps them; docs/boards.md)",
             fmt(head), rule, *[fmt(r) for r in rows[:-1]], rule, fmt(rows[-1]), verdict]
    if logic:
        unit, key = ("LUT4s", "lut4") if ecp5 else ("LCs", "lcs")
        spread = (f"; on the reference designs it was off by {error[0]:+.0f} % to "
                  f"{error[1]:+.0f} %" if error else "")
        lines.append(f"logic: about {logic[key]:,.0f} {unit} and {logic['ffs']:,.0f} "
                     f"flip-flops of {logic_available:,} by the fitted model (an estimate"
                     f"{spread}; bench/calibrate.py)")
    return "\n".join(lines)


#: How the report names each resource.
RESOURCE_NAMES = {"bram": "block RAMs", "spram": "SPRAMs", "dsp": "DSPs"}
