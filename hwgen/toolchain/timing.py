"""What limits a build's clock: nextpnr's critical path, named by the components it runs
through (layer and part), from the ``--report`` JSON nextpnr writes.

nextpnr names a placed cell after the signal it drives, with the hierarchy of the elaborated
design in front (``logic.core.network.fc3.fifo.storage[1]_SB_DFFE_Q_4_DFFLC``): the part
before the last dot is the component (``core.network.fc3.fifo``, the board top's ``logic.``
dropped). A path is a list of steps (clock-to-q, routing, logic, setup), each with its delay.
"""

from __future__ import annotations

__all__ = ["critical_path", "component_of", "describe_path"]

#: Hierarchy prefixes of the board top that name no component of their own.
_TOP_PREFIXES = ("logic.",)


def component_of(cell: str) -> str:
    """The component a placed cell belongs to: its hierarchical name without the last part
    (the signal and the cell-type suffix nextpnr and Yosys add), without the board top's
    wrapper; ``"top"`` for cells of the top module itself."""
    for prefix in _TOP_PREFIXES:
        if cell.startswith(prefix):
            cell = cell[len(prefix):]
    head, dot, _ = cell.rpartition(".")
    return head if dot else "top"


def critical_path(report: dict, clock: str = "cd_sync") -> dict | None:
    """The longest path of ``clock``'s domain in a nextpnr report (``--report`` JSON), as:
    ``delay_ns`` (the sum of its steps), ``from``/``to`` (the components of its first and last
    cell), ``through`` (every component on it, in order, once each), ``logic_levels`` (its
    logic steps: LUTs and carry cells), ``logic_ns`` and ``routing_ns``. ``None`` when the
    report has no path of that domain."""
    best, best_delay = None, -1.0
    for path in report.get("critical_paths", []):
        if clock not in path.get("from", "") and clock not in path.get("to", ""):
            continue
        delay = sum(step.get("delay", 0.0) for step in path.get("path", []))
        if delay > best_delay:
            best, best_delay = path, delay
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
