"""What limits a build's clock: nextpnr's critical path, named by the components it runs
through (layer and part), from the ``--report`` JSON nextpnr writes.

nextpnr names a placed cell after the signal it drives, with the hierarchy of the elaborated
design in front (``logic.core.network.fc3.fifo.storage[1]_SB_DFFE_Q_4_DFFLC``): the part
before the last dot is the component (``core.network.fc3.fifo``, the board top's ``logic.``
dropped). A path is a list of steps (clock-to-q, routing, logic, setup), each with its delay.

A build places and routes with several seeds (placement, and so fmax, moves by a few percent
from seed to seed): :func:`seed_summary` and :func:`best_seed` are the figures and the choice.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["critical_path", "component_of", "describe_path", "fmax_of", "seed_summary",
           "best_seed", "describe_seeds"]

#: Hierarchy prefixes of the board top that name no component of their own.
_TOP_PREFIXES = ("logic.",)
#: What nextpnr puts in front of a cell it adds for a net: a global buffer (``$gbuf_`` and the
#: net's name) on iCE40.
_PNR_PREFIXES = ("$gbuf_",)


def component_of(cell: str) -> str:
    """The component a placed cell belongs to: its hierarchical name without the last part
    (the signal and the cell-type suffix nextpnr and Yosys add), without the board top's
    wrapper and nextpnr's prefix for a global buffer it inserted on a net (the net's
    component); ``"top"`` for cells of the top module itself."""
    for prefix in _PNR_PREFIXES:
        if cell.startswith(prefix):
            cell = cell[len(prefix):]
    for prefix in _TOP_PREFIXES:
        if cell.startswith(prefix):
            cell = cell[len(prefix):]
    head, dot, _ = cell.rpartition(".")
    return head if dot else "top"


def _clock_of(end: str) -> str:
    """The clock net of a path end as nextpnr names it (``posedge cd_sync.clk`` →
    ``cd_sync.clk``; ``<async>`` stays)."""
    return end.split(" ", 1)[1] if end.startswith(("posedge ", "negedge ")) else end


def critical_path(report: dict, clock: str | None = None) -> dict | None:
    """The longest path of a clock's domain in a nextpnr report (``--report`` JSON), as:
    ``delay_ns`` (the sum of its steps), ``from``/``to`` (the components of its first and last
    cell), ``through`` (every component on it, in order, once each), ``logic_levels`` (its
    logic steps: LUTs and carry cells), ``logic_ns`` and ``routing_ns``. The clock is the one
    with the lowest fmax in the report (``cd_sync.clk`` from an oscillator, ``clk`` from the
    PLL), or with ``clock`` any whose name contains it; a path from and to that clock (what
    limits fmax) is taken before a path from or to an I/O pin. ``None`` when the report has no
    path of that domain."""
    if clock is None:
        fmax = report.get("fmax", {})
        slowest = min(fmax, key=lambda name: fmax[name].get("achieved", 0.0), default=None)
    def of_clock(end: str) -> bool:
        return end == slowest if clock is None else clock in end

    best, best_delay, best_internal = None, -1.0, False
    for path in report.get("critical_paths", []):
        ends = [of_clock(_clock_of(path.get(end, ""))) for end in ("from", "to")]
        if not any(ends):
            continue
        # a register-to-register path of the clock (what limits fmax) before any I/O path
        internal = all(ends)
        delay = sum(step.get("delay", 0.0) for step in path.get("path", []))
        if (internal, delay) > (best_internal, best_delay):
            best, best_delay, best_internal = path, delay, internal
    if best is None or not best.get("path"):
        return None
    steps = best["path"]
    through: list[str] = []
    for step in steps:
        for end in ("from", "to"):
            cell = step.get(end, {}).get("cell")
            if cell is not None and component_of(cell) not in through:
                through.append(component_of(cell))
    kinds: dict[str, float] = {}
    for step in steps:
        kinds[step.get("type", "")] = kinds.get(step.get("type", ""), 0.0) + step.get("delay",
                                                                                        0.0)
    return {
        "delay_ns": round(best_delay, 2),
        "from": component_of(steps[0]["from"]["cell"]),
        "to": component_of(steps[-1]["to"]["cell"]),
        "through": through,
        "logic_levels": sum(1 for step in steps if step.get("type") == "logic"),
        "logic_ns": round(kinds.get("logic", 0.0), 2),
        "routing_ns": round(kinds.get("routing", 0.0), 2),
    }


def describe_path(path: dict) -> str:
    """One line for a person: ``12.3 ns, 11 logic levels: network.fc3.fifo → core.capture →
    network.argmax``."""
    return (f"{path['delay_ns']} ns, {path['logic_levels']} logic levels: "
            + " → ".join(path["through"]))


def fmax_of(report: dict) -> float | None:
    """nextpnr's achieved frequency in MHz from its ``--report`` JSON, rounded to 0.01 MHz: the
    lowest over its clocks; ``None`` when it reports none."""
    fmax = [clock["achieved"] for clock in report.get("fmax", {}).values()]
    return round(min(fmax), 2) if fmax else None


def seed_summary(seeds: Sequence[int], mhz: Sequence[float | None]) -> dict:
    """report.json's ``fmax_seeds``: the ``seeds`` and each one's fmax (``mhz``, ``None`` for a
    seed that failed or reported none, in the same order), and ``min``, ``median`` and ``max``
    over those with a value (``None`` when none has one). The median of an even count is the
    mean of the middle two."""
    if len(seeds) != len(mhz):
        raise ValueError(f"{len(seeds)} seeds but {len(mhz)} fmax values")
    values = [v for v in mhz if v is not None]
    return {"seeds": list(seeds), "mhz": list(mhz),
            "min": min(values) if values else None,
            "median": round(statistics.median(values), 2) if values else None,
            "max": max(values) if values else None}


def best_seed(seeds: Sequence[int], mhz: Sequence[float | None]) -> int | None:
    """The seed whose placement ships: the highest fmax, the first of equals; ``None`` when
    no seed has an fmax."""
    ranked = [(v, -i) for i, v in enumerate(mhz) if v is not None]
    return seeds[-max(ranked)[1]] if ranked else None


def describe_seeds(summary: dict) -> str:
    """One line for a person: ``21.69 / 21.70 / 21.93 MHz (min / median / max of seeds 1, 2,
    3)``, naming failed seeds."""
    seeds = summary["seeds"]
    failed = [s for s, v in zip(seeds, summary["mhz"], strict=True) if v is None]
    if summary["min"] is None:
        return f"none (seeds {', '.join(map(str, seeds))} reported no fmax)"
    text = (f"{summary['min']} / {summary['median']} / {summary['max']} MHz (min / median / max "
            f"of seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
    if failed:
        text += f"; seed{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))} failed"
    return text + ")"
