"""``hwgen sweep``: many builds of one spec — boards × foldings × nextpnr seeds — run on
:mod:`hwgen.executor` (a process pool, or Ray), collected in one table (JSON and CSV) with
a Pareto plot of inferences per second against logic.

Each point builds at the board's oscillator with its one seed, as ``hwgen build --clock-mhz
osc --seed S`` does (fit and fmax are measured, not a clock), into ``<out>/points/<label>``.
A folding is ``hand`` (the spec as written), ``max`` (``hwgen fold --max``) or a frame rate
(``hwgen fold --fps F``), built as ``hwgen build --fold`` builds it (folded again smaller
when it does not fit; ``refolds`` counts the times). A point that does not fit or fails is
a row with its message.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Point", "run_point", "pareto", "write_table", "COLUMNS"]

#: The table's columns, in order.
COLUMNS = ("label", "board", "fold", "seed", "built", "logic", "logic_available", "ffs",
           "bram", "spram", "dsp", "fmax_mhz", "cycles_per_inference",
           "inferences_per_second_at_fmax", "pareto", "refolds", "seconds", "error")


@dataclass(frozen=True)
class Point:
    """One build of the sweep: the spec (a path, so that a worker loads it), board, folding
    (``"hand"``, ``"max"`` or inferences per second) and nextpnr seed, built in ``out``."""

    spec: str
    board: str
    fold: str | float
    seed: int
    out: str

    @property
    def label(self) -> str:
        fold = self.fold if isinstance(self.fold, str) else f"{self.fold:g}fps"
        return f"{self.board}-{fold}-seed{self.seed}"


def run_point(point: Point) -> dict:
    """Fold (unless ``hand``) and build one point; its table row."""
    from . import load
    from .fold import build_fold
    from .toolchain.boards import BoardError
    from .toolchain.synth import build
    from .toolchain.tools import ToolError

    fold = point.fold if isinstance(point.fold, str) else f"{point.fold:g} fps"
    row: dict = {"label": point.label, "board": point.board, "fold": fold,
                 "seed": point.seed}
    started = time.monotonic()
    out = Path(point.out) / point.label
    try:
        network = load(point.spec)
        if point.fold == "hand":
            report = build(network, point.board, out, clock_mhz="osc", seeds=(point.seed,),
                           jobs=1)
        else:  # as hwgen build --fold builds it: folded again when it does not fit
            fps = None if point.fold == "max" else float(point.fold)
            _, report = build_fold(network, point.board, out, fps=fps, clock_mhz="osc",
                                   seeds=(point.seed,), jobs=1)
            row["refolds"] = len(report["refolds"])
    except (BoardError, ToolError, ValueError) as exc:
        lines = str(exc).splitlines() or [repr(exc)]
        row.update(built=False, error=next((x for x in lines if "ERROR" in x), lines[0]),
                   seconds=round(time.monotonic() - started, 1))
        return row
    key = "lut4" if report.get("lut4") else "lcs"
    row.update(built=True, logic=report[key]["used"], logic_available=report[key]["available"],
               ffs=(report.get("ffs") or {}).get("used"),
               bram=(report.get("bram") or {}).get("used"),
               spram=(report.get("spram") or {}).get("used"),
               dsp=(report.get("dsp") or {}).get("used"), fmax_mhz=report["fmax_mhz"],
               cycles_per_inference=report["cycles_per_inference"],
               inferences_per_second_at_fmax=report["inferences_per_second_at_fmax"],
               seconds=round(time.monotonic() - started, 1))
    return row


def pareto(rows: list[dict]) -> None:
    """Mark each built row ``pareto`` when no other built row of its board has at least its
    inferences/s with less logic, or more inferences/s with as little."""
    built = [r for r in rows if r.get("built")]
    for r in rows:
        r["pareto"] = bool(r.get("built")) and not any(
            o["board"] == r["board"] and o is not r
            and o["inferences_per_second_at_fmax"] >= r["inferences_per_second_at_fmax"]
            and o["logic"] <= r["logic"]
            and (o["inferences_per_second_at_fmax"] > r["inferences_per_second_at_fmax"]
                 or o["logic"] < r["logic"])
            for o in built)


def write_table(rows: list[dict], folder: Path, meta: dict) -> tuple[Path, Path]:
    """``sweep.json`` (``meta`` and the rows) and ``sweep.csv`` (:data:`COLUMNS`) in
    ``folder``."""
    json_path, csv_path = folder / "sweep.json", folder / "sweep.csv"
    json_path.write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return json_path, csv_path
