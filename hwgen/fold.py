"""The folding chosen for a board (``hwgen fold``): per layer PE, SIMD, mac mapping and weight
memory, so that the pipeline is as fast as the board allows (``--max``) or as small as a frame
rate allows (``--fps``), every resource within the device.

Every layer kind lists its ways of being built (:meth:`~hwgen.layers.base.Layer.fold_options`).
Each way is priced as ``hwgen check --board`` prices a whole design: its unit is elaborated
and its memories placed as Yosys places them, its DSPs counted (:func:`hwgen.resources.
unit_use`, exact), its logic and flip-flops taken from the fitted logic model
(:func:`hwgen.resources.predict_row`). Each connection between two stages whose lanes differ
costs a width converter, priced by the same model, and takes cycles of its own.

For a target initiation interval T (cycles per inference), an integer program picks one way
per layer and one (producer lanes, consumer lanes) pair per connection such that every stage
and converter takes at most T cycles, block RAMs, SPRAMs and DSPs fit the device and logic
and flip-flops fit ``headroom`` × the device, and the largest share of any of these caps
used is least (SciPy's ``milp``, HiGHS). ``--max`` bisects the smallest T that is feasible over the
stages' cycle counts; ``--fps F`` takes T = clock / F. Per layer only the ways with at most T
cycles and at most :data:`PARALLELISM_WINDOW` × the least parallelism that reaches T are
priced (more parallel ways cost more of everything but block RAM, whose count the window
still spans). The chosen network is then planned and estimated whole, and must fit; a
branch FIFO, which the program does not price, is the one thing that can differ
(docs/fold.md).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import SpecError, Where
from .layers.base import INPUT, Layer, LayerPlan
from .plan import NetworkPlan
from .resources import (
    BOARD_CORE,
    converter_features,
    estimate,
    estimate_logic,
    load_logic_model,
    logic_features,
    predict_row,
    unit_use,
)
from .spec import Network, output_names
from .toolchain.boards import BoardError

__all__ = ["FoldError", "Fold", "Way", "fold", "build_fold", "format_fold",
           "binds", "RESOURCES", "REFOLDS", "TOO_LARGE_SCALE",
           "PARALLELISM_WINDOW", "DEFAULT_HEADROOM", "ROUTABLE", "routable_logic", "refold_scale"]

#: The resources the fold keeps within the device, in the order it reports them.
RESOURCES = ("logic", "ffs", "bram", "spram", "dsp")
#: The resources' names in the fold's messages.
RESOURCE_WORDS = {"logic": "logic", "ffs": "flip-flops", "bram": "block RAMs",
                  "spram": "SPRAMs", "dsp": "DSPs"}
#: Per layer and target, the ways priced: those with at most this many times the least
#: parallelism (products per cycle) that meets the target.
PARALLELISM_WINDOW = 4
#: The default share of the device's logic and flip-flops the fold may fill (the rest is
#: the logic model's error and room for placement).
DEFAULT_HEADROOM = 0.9
#: The share of a device's logic cells a fold may fill so that nextpnr routes it in
#: reasonable time, per family; the fold's headroom is taken of it. ECP5-85F folds at 39–45 %
#: of the LUT4 cells routed (digits_bnn, cnv_w1a1); at 80–81 % (sfc_w1a1, tfc_w1a1) YoWASP
#: nextpnr's router1 had routed 13 % of the arcs after 44 min, and router2 still had 26 k
#: wires over capacity after 20 min (docs/results.md). iCE40 folds route at 96.5 % of the
#: UP5K (face32_bnn).
ROUTABLE = {"ice40": 1.0, "ecp5": 0.5}


class FoldError(BoardError):
    """No folding fits the board (or meets the frame rate); the message says what binds."""


@dataclass(frozen=True)
class Way:
    """One way to build one layer: the fields it sets, the checked layer, its plan, and what
    it takes (:data:`RESOURCES`)."""

    fields: tuple[tuple[str, object], ...]
    layer: Layer
    lp: LayerPlan
    use: dict[str, float]



@dataclass
class Fold:
    """The folded network, its plan and estimate, and how the choice was made."""

    network: Network
    plan: NetworkPlan
    board: str
    target_cycles: int
    use: dict[str, float]
    available: dict[str, float]
    rows: dict[str, dict[str, float]]
    #: The resources that stopped a faster fold, and the cycles it would have had.
    binding: list[str] | None = None
    faster_cycles: int | None = None
    solves: int = 0
    priced: int = 0

    @property
    def bottleneck(self) -> str:
        return self.plan.bottleneck

    def to_json(self) -> dict:
        return {
            "board": self.board, "network": self.network.name,
            "cycles_per_inference": self.plan.cycles_per_inference,
            "bottleneck": self.bottleneck, "binding": self.binding,
            "faster_cycles": self.faster_cycles,
            "use": {k: round(v, 1) for k, v in self.use.items()},
            "available": self.available,
            "layers": [{"name": lp.name, "pe": lp.pe, "simd": lp.simd,
                        "mac": None if lp.mac is None else str(lp.mac),
                        "weight_memory": getattr(layer, "weight_memory", None),
                        "cycles": lp.cycles,
                        "use": {k: round(v, 1) for k, v in self.rows.get(lp.name, {}).items()}}
                       for layer, lp in zip(self.network.layers, self.plan.layers,
                                            strict=True)],
            "solves": self.solves, "ways_priced": self.priced,
        }


class _Pricer:
    """Ways of each layer of ``network`` on board ``info``, priced once each."""

    def __init__(self, network: Network, info, model: dict | None, keep: bool = False):
        self.network, self.info, self.model = network, info, model
        self.family = info.family
        self.logic_key = "lut4" if info.family == "ecp5" else "lcs"
        self.cache: dict = {}
        self.priced = 0
        dsps, spram = bool(info.resources.get("dsp")), bool(info.resources.get("spram"))
        self.options = [layer.fold_options(network.input_types(i), dsps=dsps, spram=spram,
                                           keep=keep)
                        for i, layer in enumerate(network.layers)]
        self.checked: dict = {}

    def layer(self, index: int, fields: dict) -> Layer | None:
        """The layer with ``fields``, checked; ``None`` if the kind refuses them."""
        key = (index, tuple(sorted(fields.items())))
        if key not in self.checked:
            layer = self.network.layers[index]
            if fields:
                try:
                    layer, _ = dataclasses.replace(layer, **fields).check(
                        self.network.input_types(index), Where("<fold>", "<fold>", layer.name))
                except SpecError:
                    layer = None
            self.checked[key] = layer
        return self.checked[key]

    def plans(self, index: int, upstreams: list[int]):
        """Every valid way of layer ``index`` as (fields, checked layer, plan): one per
        upstream lanes value of ``upstreams`` for a layer whose lanes follow its input's."""
        for fields in self.options[index]:
            checked = self.layer(index, fields)
            if checked is None:
                continue
            for up in upstreams if not fields else [1]:
                yield fields, checked, self.plan_of(index, checked, up)

    def plan_of(self, index: int, layer: Layer, upstream: int) -> LayerPlan:
        inputs = self.network.input_types(index)
        lanes = layer.lanes_wanted(inputs, upstream)
        return layer.cost(inputs, self.network.types[index + 1], lanes, False)

    def price(self, index: int, fields: dict, layer: Layer, lp: LayerPlan) -> Way:
        key = (index, tuple(sorted(fields.items())), lp.in_lanes)
        if key not in self.cache:
            row = unit_use(layer, lp, self.info)
            features = dict(layer.logic_features(lp))
            for k in ("logic_rom_bits", "logic_ram_bits", "lutram"):
                if row[k]:
                    features[k] = features.get(k, 0.0) + row[k]
            logic = predict_row(features, self.family, self.model)
            use = {"logic": logic.get(self.logic_key, 0.0), "ffs": logic.get("ffs", 0.0),
                   "bram": float(row["bram"]), "spram": float(row["spram"]),
                   "dsp": float(row["dsp"])}
            self.cache[key] = Way(tuple(sorted(fields.items())), layer, lp, use)
            self.priced += 1
        return self.cache[key]

    def converter(self, elements: int, bits: int, a: int, b: int) -> dict[str, float]:
        """A width converter from ``a`` to ``b`` lanes of ``bits``-bit elements."""
        logic = predict_row(converter_features(a, b, bits), self.family, self.model)
        return {"logic": logic.get(self.logic_key, 0.0), "ffs": logic.get("ffs", 0.0)}


def _ways(pricer: _Pricer, target: int, upstream_lanes: dict[str, set[int]]
          ) -> list[list[Way]]:
    """Per layer, in network order, the priced ways with at most ``target`` cycles (within
    :data:`PARALLELISM_WINDOW` of the least parallelism that reaches it); for a layer whose
    lanes follow its input, one way per lanes its producer may send. Fills
    ``upstream_lanes`` with each tensor's possible lanes."""
    net = pricer.network
    out: list[list[Way]] = []
    for index, layer in enumerate(net.layers):
        sources = net.sources[index]
        ups = sorted(upstream_lanes[sources[0]])
        found, seen = [], set()
        for fields, checked, lp in pricer.plans(index, ups):
            key = (tuple(sorted(fields.items())), lp.in_lanes)
            if key in seen or lp.cycles > target:
                continue
            seen.add(key)
            found.append((fields, checked, lp))
        if found:
            least = min(_parallelism(lp) for _, _, lp in found)
            found = [f for f in found if _parallelism(f[2]) <= PARALLELISM_WINDOW * least]
        ways = [pricer.price(index, fields, checked, lp) for fields, checked, lp in found]
        out.append(ways)
        for tensor in output_names(layer):
            upstream_lanes[tensor] = {w.lp.out_lanes for w in ways}
    return out


def _parallelism(lp: LayerPlan) -> int:
    return (lp.pe or 1) * (lp.simd or 1) if lp.pe else lp.in_lanes


def _input_lanes(network: Network, first: Way) -> int:
    """The network input's lanes when its first layer is built as ``first`` (as
    :func:`hwgen.plan.plan` sets them)."""
    x0 = network.input_type
    lanes = network.input.lanes or first.layer.lanes_wanted([x0], 1)
    return 1 if x0.shape[-1] % lanes else lanes


def _solve(pricer: _Pricer, ways: list[list[Way]], target: int, caps: dict[str, float],
           fixed: dict[str, float]) -> list[Way] | None:
    """The integer program for one target: one way per layer and one lanes pair per
    connection, every stage and converter within ``target`` cycles, ``fixed`` plus the
    chosen ways' use within ``caps``, the largest share of a cap least. ``None``
    when infeasible."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    net = pricer.network
    if any(not w for w in ways):
        return None
    columns: list[dict[str, float]] = []  # each variable's resource use
    x_index: list[list[int]] = []
    for layer_ways in ways:
        x_index.append(list(range(len(columns), len(columns) + len(layer_ways))))
        columns += [dict(w.use) for w in layer_ways]
    forbidden: set[int] = set()
    producer: dict[str, int | None] = {INPUT: None}
    for index, layer in enumerate(net.layers):
        producer.update({tensor: index for tensor in output_names(layer)})
    eq_rows: list[dict[int, float]] = [{j: 1.0 for j in idx} for idx in x_index]
    for q, sources in enumerate(net.sources):
        in_of = {j: ways[q][k].lp.in_lanes for k, j in enumerate(x_index[q])}
        for port, src in enumerate(sources):
            p, t = producer[src], net.type_of(src)
            if p is None:  # the network input: its lanes follow the first layer's way
                out_of = {j: _input_lanes(net, ways[0][k]) for k, j in enumerate(x_index[0])}
            else:
                out_of = {j: ways[p][k].lp.out_lanes for k, j in enumerate(x_index[p])}
            if p is None and q == 0 and port == 0:  # both lanes are the first way's
                for j, a in out_of.items():
                    b = in_of[j]
                    if t.size // a > target or (a != b and t.size // min(a, b) > target):
                        forbidden.add(j)
                    elif a != b:
                        for key, v in pricer.converter(t.size, t.bits, a, b).items():
                            columns[j][key] = columns[j].get(key, 0.0) + v
                continue
            follows = port == 0 and not ways[q][0].fields  # its lanes are its input's
            pairs: dict[tuple[int, int], int] = {}
            for a in sorted(set(out_of.values())):
                for b in sorted(set(in_of.values())):
                    if follows and net.layers[q].lanes_wanted(net.input_types(q), a) != b:
                        continue
                    if a != b and t.size // min(a, b) > target:
                        continue
                    pairs[(a, b)] = len(columns)
                    columns.append(pricer.converter(t.size, t.bits, a, b) if a != b else {})
            for side, lanes_of in ((0, out_of), (1, in_of)):
                for lanes in set(lanes_of.values()):
                    row = {c: 1.0 for pair, c in pairs.items() if pair[side] == lanes}
                    row.update({j: -1.0 for j, v in lanes_of.items() if v == lanes})
                    eq_rows.append(row)
    n = len(columns) + 1  # and z, the largest share of a cap
    z = n - 1
    eq_rhs = [1.0] * len(x_index) + [0.0] * (len(eq_rows) - len(x_index))
    a_eq = np.zeros((len(eq_rows), n))
    for i, row in enumerate(eq_rows):
        for j, v in row.items():
            a_eq[i, j] = v
    constraints = [LinearConstraint(a_eq, eq_rhs, eq_rhs)]
    a_cap, hi = [], []
    cost = np.zeros(n)
    cost[z] = 1.0
    for key in RESOURCES:
        cap, base = caps.get(key, 0.0), fixed.get(key, 0.0)
        coef = np.array([c.get(key, 0.0) for c in columns] + [0.0])
        if base > cap:
            return None
        if not coef.any():
            continue
        a_cap.append(coef)
        hi.append(cap - base)
        if cap > 0:
            a_cap.append(np.r_[coef[:z] / cap, -1.0])
            hi.append(-base / cap)
            cost[:z] += 1e-3 * coef[:z] / cap  # ties: the least sum of fractions
    if a_cap:
        constraints.append(LinearConstraint(np.array(a_cap), -np.inf, np.array(hi)))
    upper = np.r_[np.ones(n - 1), np.inf]
    upper[list(forbidden)] = 0.0
    integrality = np.r_[np.ones(n - 1), 0.0]
    result = milp(cost, constraints=constraints, integrality=integrality,
                  bounds=Bounds(np.zeros(n), upper), options={"time_limit": 120.0})
    if result.x is None or not result.success:
        return None
    return [layer_ways[int(np.argmax(result.x[idx]))]
            for layer_ways, idx in zip(ways, x_index, strict=True)]


def _cycle_grid(pricer: _Pricer) -> tuple[list[int], int]:
    """Every stage's cycle count over all its ways (the targets worth trying, ascending) and
    the least target any folding can reach (the slowest layer at its fastest)."""
    net = pricer.network
    lanes: dict[str, set[int]] = {INPUT: {net.input.lanes or 1}}
    grid: set[int] = set()
    floor = 0
    for index, layer in enumerate(net.layers):
        cycles, outs = [], set()
        for _, _, lp in pricer.plans(index, sorted(lanes[net.sources[index][0]])):
            cycles.append(lp.cycles)
            outs.add(lp.out_lanes)
        if not cycles:
            raise FoldError(f"{layer.name}: none of its ways of being built is valid")
        grid.update(cycles)
        floor = max(floor, min(cycles))
        lanes.update({t: outs for t in output_names(layer)})
    return sorted(c for c in grid if c >= floor), floor


def fold(network: Network, board_name: str, *, fps: float | None = None,
         clock_mhz: float | None = None, headroom: float = DEFAULT_HEADROOM,
         keep: bool = False, log=None) -> Fold:
    """``network`` folded for board ``board_name``: the fastest that fits (``fps`` ``None``),
    or the least resources that run ``fps`` inferences per second at ``clock_mhz`` (default
    the board's oscillator); logic within ``headroom`` × the routable logic
    (:func:`routable_logic`), flip-flops within ``headroom`` × the device. With
    ``keep``, only what the spec leaves to hwgen (``pe``/``simd``/``mac`` = ``"auto"``)
    is chosen. :class:`FoldError` when nothing fits, naming the binding resource."""
    from .rtl.board import check_network
    from .toolchain.boards import board
    from .toolchain.synth import board_plan

    info = board(board_name)
    model = load_logic_model()
    if model is None or info.family not in model.get("families", {}):
        raise FoldError(f"no fitted logic model for {info.family} (hwgen/data/"
                        f"logic_model.json; bench/calibrate.py writes it)")
    try:
        check_network(network)
    except ValueError as exc:
        raise FoldError(f"cannot fold {network.name} for {info.name}: {exc}") from None
    say = log or (lambda text: None)
    pricer = _Pricer(network, info, model, keep)
    logic_key = pricer.logic_key
    available = {"logic": float(info.resources[logic_key]),
                 "ffs": float(info.resources.get("ffs", info.resources[logic_key])),
                 "bram": float(info.resources.get("bram", 0)),
                 "spram": float(info.resources.get("spram", 0)),
                 "dsp": float(info.resources.get("dsp", 0))}
    caps = {k: v * headroom if k in ("logic", "ffs") else v for k, v in available.items()}
    caps["logic"] = routable_logic(info) * headroom
    base_plan = board_plan(network, info)
    base_use = estimate(network, info, base_plan)
    core = base_use.rows[BOARD_CORE]
    core_logic = predict_row(logic_features(network, base_plan)[BOARD_CORE], info.family,
                             model)
    fixed = {"logic": core_logic.get(logic_key, 0.0), "ffs": core_logic.get("ffs", 0.0),
             "bram": float(core["bram"]), "spram": float(core["spram"]),
             "dsp": float(core["dsp"])}
    grid, floor = _cycle_grid(pricer)
    clock_hz = (clock_mhz * 1e6) if clock_mhz else info.clk_hz
    solves = 0

    def attempt(target: int, limits: dict[str, float] = caps) -> list[Way] | None:
        nonlocal solves
        lanes: dict[str, set[int]] = {INPUT: {network.input.lanes or 1}}
        ways = _ways(pricer, target, lanes)
        solves += 1
        chosen = _solve(pricer, ways, target, limits, fixed)
        say(f"  target {target:,} cycles: {'fits' if chosen else 'does not fit'} "
            f"({sum(map(len, ways))} ways, {pricer.priced} priced so far)")
        return chosen

    if fps is not None:
        target = int(clock_hz // fps)
        if target < floor:
            raise FoldError(f"{network.name} cannot run {fps:g} inferences/s at "
                            f"{clock_hz / 1e6:g} MHz on any folding: that needs at most "
                            f"{target:,} cycles per inference; its slowest layer at its "
                            f"fastest takes {floor:,}")
        candidates = [target]
    else:
        candidates = grid
    lo, hi, best = 0, len(candidates) - 1, None
    if fps is None:  # bisection: the least target that fits
        while lo <= hi:
            mid = (lo + hi) // 2
            chosen = attempt(candidates[mid])
            if chosen is None:
                lo = mid + 1
            else:
                best, hi = (candidates[mid], chosen), mid - 1
    else:
        chosen = attempt(candidates[0])
        best = (candidates[0], chosen) if chosen else None
    if best is None:
        worst = candidates[-1]
        raise FoldError(f"{network.name} does not fit {info.name} ({info.device}) "
                        + (f"at {fps:g} inferences/s " if fps else "at any folding ")
                        + _binding_text(attempt, worst, caps, slowest=fps is None))
    target, chosen = best
    folded = dataclasses.replace(network, layers=[w.layer for w in chosen])
    net_plan = board_plan(folded, info)
    use = estimate(folded, info, net_plan)
    logic, _ = estimate_logic(folded, net_plan, use)
    total = {"logic": logic.get(logic_key, 0.0), "ffs": logic.get("ffs", 0.0),
             **{k: float(use.total[k]) for k in ("bram", "spram", "dsp")}}
    over = [k for k in RESOURCES if total[k] > caps[k] + 1e-6]
    if over:
        raise FoldError(f"the fold chosen for {network.name} at {target:,} cycles takes "
                        + ", ".join(f"{total[k]:,.0f} {k}" for k in over)
                        + f" on the whole design, over {info.name}'s limit; its branch FIFOs "
                        "are not priced per way (docs/fold.md)")
    rows = {w.lp.name: dict(w.use) for w in chosen}
    result = Fold(folded, net_plan, info.name, target, total, available, rows,
                  solves=solves, priced=pricer.priced)
    faster = [c for c in grid if c < net_plan.cycles_per_inference]
    if fps is None and faster:
        result.faster_cycles = faster[-1]
        result.binding = _binding(attempt, faster[-1], caps)
    result.solves, result.priced = solves, pricer.priced
    return result


#: How many times a fold whose placed design did not fit is folded again, smaller.
REFOLDS = 2
#: nextpnr's words for a design with more logic cells than the device (the count, where it
#: gives one).
_NO_ROOM = re.compile(r"Failed to expand region|no BELs remaining|Unable to place cell")
_NEEDED = re.compile(r"of (\d+) ICESTORM_LCs")
#: The build's own check after synthesis (``logic_limit``): cells needed, cells allowed.
_SYNTH_NEEDED = re.compile(r"needs at least (\d+) logic cells after synthesis; the build "
                           r"allows (\d+)")
#: YoWASP Yosys (32-bit WebAssembly, at most 4 GiB of memory) stopping on a design too large
#: for it: the fold is folded again smaller, by :data:`TOO_LARGE_SCALE`.
_TOO_LARGE = re.compile(r"thrown Wasm exception|out of bounds memory access|std::bad_alloc")
TOO_LARGE_SCALE = 0.7


def routable_logic(info) -> int:
    """The logic cells of board ``info``'s device a fold may fill: :data:`ROUTABLE` of them."""
    key = "lut4" if info.family == "ecp5" else "lcs"
    return int(info.resources[key] * ROUTABLE[info.family])


def refold_scale(message: str, available: int) -> tuple[float, int | None] | None:
    """From a failed build's message: how much smaller to fold (the cells there was room for
    over the cells needed, ``available`` being the device's when nextpnr ran out of them) and
    the cells needed (``None`` when not said: :data:`TOO_LARGE_SCALE`); ``None`` when the
    failure is another."""
    synthesized = _SYNTH_NEEDED.search(message)
    if synthesized:
        needed, room = int(synthesized.group(1)), int(synthesized.group(2))
        return room / needed, needed
    if _NO_ROOM.search(message) is None and _TOO_LARGE.search(message) is None:
        return None
    placed = _NEEDED.search(message)
    if placed is None:
        return TOO_LARGE_SCALE, None
    return available / int(placed.group(1)), int(placed.group(1))


def refolded_headroom(headroom: float, scale: float) -> float:
    """The headroom to fold again with after a build :func:`refold_scale` scaled by
    ``scale``: 3 % under it, and at least 5 % smaller."""
    return round(headroom * min(0.97 * scale, 0.95), 3)


def build_fold(network: Network, board_name: str, out, *, fps: float | None = None,
               fps_clock_mhz: float | None = None, headroom: float = DEFAULT_HEADROOM,
               keep: bool = False, log=None, report_extra: dict | None = None,
               **build_args) -> tuple[Fold, dict]:
    """Fold ``network`` for the board (:func:`fold`; ``fps`` at ``fps_clock_mhz``) and build
    it into ``out`` (:func:`hwgen.toolchain.synth.build` with ``build_args``, stopping after
    synthesis beyond the routable logic). When the synthesized or placed design does not
    fit (the logic model under-estimated it), fold again smaller (:func:`refold_scale`), at
    most :data:`REFOLDS` times. The report holds the fold (``fold``) and the attempts that
    did not fit (``refolds``)."""
    from .toolchain.boards import board
    from .toolchain.synth import build
    from .toolchain.tools import ToolError

    say = log or (lambda text: None)
    info = board(board_name)
    available = info.resources["lut4" if info.family == "ecp5" else "lcs"]
    refolds: list[dict] = []
    while True:
        result = fold(network, board_name, fps=fps, clock_mhz=fps_clock_mhz,
                      headroom=headroom, keep=keep, log=log)
        say(format_fold(result, fps_clock_mhz))
        extra = {**(report_extra or {}), "fold": {**result.to_json(), "headroom": headroom},
                 "refolds": refolds}
        try:
            return result, build(result.network, board_name, out, report_extra=extra,
                                 log=log, logic_limit=routable_logic(info), **build_args)
        except ToolError as exc:
            overflow = refold_scale(str(exc), available)
            if overflow is None or len(refolds) == REFOLDS:
                raise
            scale, needed = overflow
            refolds.append({"headroom": headroom, "cycles": result.plan.cycles_per_inference,
                            "predicted_logic": round(result.use["logic"]),
                            "logic_needed": needed})
            headroom = refolded_headroom(headroom, scale)
            why = (f"it needs {needed:,} logic cells" if needed is not None else
                   "the tools ran out of room or memory on it")
            say(f"the fold did not fit when built ({why}); folding again with headroom "
                f"{headroom:g}")


def _binding(attempt, target: int, caps: dict[str, float]) -> list[str]:
    """The fewest resources whose caps, lifted together, let ``target`` fit (``[]`` when
    lifting every cap does not: no folding reaches it)."""
    lifted: list[str] = []
    for key in RESOURCES:
        lifted.append(key)
        if attempt(target, {**caps, **{k: math.inf for k in lifted}}) is not None:
            break
    else:
        return []
    for key in list(lifted):
        trial = [k for k in lifted if k != key]
        if trial and attempt(target, {**caps, **{k: math.inf for k in trial}}) is not None:
            lifted = trial
    return lifted


def binds(keys: list[str]) -> str:
    """``["logic", "ffs"]`` → "logic and flip-flops bind"."""
    if not keys:
        return "no resource binds"
    names = [RESOURCE_WORDS[k] for k in keys]
    text = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    return text + (" binds" if keys == ["logic"] else " bind")


def _binding_text(attempt, target: int, caps: dict[str, float], slowest: bool) -> str:
    at = (f"even at {target:,} cycles per inference, the slowest folding" if slowest else
          f"at {target:,} cycles per inference")
    return f"({at}: {binds(_binding(attempt, target, caps))})"


def format_fold(result: Fold, clock_mhz: float | None = None) -> str:
    """The table ``hwgen fold`` prints: per layer its folding, cycles (the bottleneck
    marked) and predicted resources; totals against the device; why not faster."""
    from .toolchain.boards import board

    info = board(result.board)
    clock_hz = clock_mhz * 1e6 if clock_mhz else info.clk_hz
    unit = "LUT4" if info.family == "ecp5" else "LCs"
    head = ["layer", "kind", "PE", "SIMD", "mac", "weights", "cycles", unit, "FFs",
            "BRAM", "SPRAM", "DSP"]
    rows = []
    bottleneck = result.bottleneck
    for layer, lp in zip(result.network.layers, result.plan.layers, strict=True):
        use = result.rows.get(lp.name, {})
        rows.append([lp.name, lp.kind, str(lp.pe or "-"), str(lp.simd or "-"),
                     "-" if lp.mac is None else str(lp.mac),
                     getattr(layer, "weight_memory", "-") if lp.pe else "-",
                     f"{lp.cycles:,}" + (" *" if lp.name == bottleneck else ""),
                     f"{use.get('logic', 0):,.0f}", f"{use.get('ffs', 0):,.0f}",
                     f"{use.get('bram', 0):,.0f}", f"{use.get('spram', 0):,.0f}",
                     f"{use.get('dsp', 0):,.0f}"])
    u, a = result.use, result.available
    rows.append(["total (whole design)", "", "", "", "", "",
                 f"{result.plan.cycles_per_inference:,}",
                 f"{u['logic']:,.0f} / {a['logic']:,.0f}", f"{u['ffs']:,.0f} / {a['ffs']:,.0f}",
                 f"{u['bram']:,.0f} / {a['bram']:,.0f}",
                 f"{u['spram']:,.0f} / {a['spram']:,.0f}", f"{u['dsp']:,.0f} / {a['dsp']:,.0f}"])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    cycles = result.plan.cycles_per_inference
    lines = [f"{result.network.name} folded for {info.name} ({info.device})",
             fmt(head), rule, *[fmt(r) for r in rows[:-1]], rule, fmt(rows[-1]),
             f"bottleneck: {bottleneck} (*), {cycles:,} cycles per inference = "
             f"{clock_hz / cycles:,.0f} inferences/s at {clock_hz / 1e6:g} MHz"]
    if result.faster_cycles is not None:
        why = binds(result.binding or [])
        lines.append(f"the next faster fold ({result.faster_cycles:,} cycles) does not fit: "
                     f"{why}")
    lines.append(f"per-layer {unit} and FFs are the logic model's (bench/calibrate.py); block "
                 "RAMs, SPRAMs and DSPs are exact; converters between layers are in the total")
    return "\n".join(lines)
