"""The shipped reference design (designs/digits_bnn) built for every supported board.

Runs ``hwgen.toolchain.synth.build`` (as ``hwgen build designs/digits_bnn.toml --board B
--clock-mhz osc --seeds 1``) for each board of ``hwgen.toolchain.boards.BOARDS`` and records
each report.json's headline figures — logic (iCE40 LCs or ECP5 LUT4s), flip-flops, block RAMs,
fmax, the clock, cycles and inferences per second, build time — or the failure's message.
Writes JSON and prints the Markdown table that docs/boards.md carries. It measures fit and
fmax, not the clock: each board builds once (one nextpnr seed) at its oscillator, the ECPIX-5
at 50 MHz from the PLL (its 100 MHz is above digits_bnn's fmax), rather than the default
``--clock-mhz auto`` with three seeds, which rebuilds; ``--clock-mhz`` and ``--seeds`` choose
otherwise.

Usage::

    python bench/board_builds.py [--out bench/results/board_builds.json] [--only B ...]
        [--spec designs/digits_bnn.toml] [--keep DIR] [--clock-mhz auto|osc|MHZ] [--seeds N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwgen.spec import load  # noqa: E402
from hwgen.toolchain.boards import BOARDS, BoardError  # noqa: E402
from hwgen.toolchain.synth import build  # noqa: E402
from hwgen.toolchain.tools import ToolError  # noqa: E402

#: The clock of each board's build unless --clock-mhz says otherwise (default: "osc").
CLOCK = {"ecpix5-45f": 50.0, "ecpix5-85f": 50.0}

KEYS = ("lcs", "lut4", "ffs", "bram", "spram", "dsp", "fmax_mhz", "clock_mhz",
        "cycles_per_inference", "inferences_per_second_at_fmax", "build_seconds")


def build_all(spec: Path, names: list[str], keep: Path | None, *,
              clock_mhz: float | str | None = None, seeds: int = 1) -> list[dict]:
    network = load(spec)
    rows = []
    for name in names:
        started = time.monotonic()
        out = (keep or Path(tempfile.mkdtemp())) / f"{network.name}-{name}"
        print(f"building {spec.name} for {name} ...", file=sys.stderr, flush=True)
        try:
            report = build(network, name, out, seeds=tuple(range(1, seeds + 1)),
                           clock_mhz=clock_mhz or CLOCK.get(name, "osc"))
            row = {"board": name, "device": report["device"], "ok": True,
                   **{k: report.get(k) for k in KEYS}}
        except (ToolError, BoardError) as exc:
            row = {"board": name, "ok": False, "error": str(exc).splitlines()[0],
                   "build_seconds": round(time.monotonic() - started, 1)}
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| board | FPGA | logic | FF | BRAM | fmax (MHz) | clock (MHz) | inferences/s at fmax "
             "| build (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["ok"]:
            lines.append(f"| `{r['board']}` | | failed: {r['error']} | | | | | | "
                         f"{r['build_seconds']} |")
            continue
        logic = (f"{r['lcs']['used']:,} / {r['lcs']['available']:,} LC" if r["lcs"]
                 else f"{r['lut4']['used']:,} / {r['lut4']['available']:,} LUT4")
        lines.append(f"| `{r['board']}` | {r['device']} | {logic} | {r['ffs']['used']:,} | "
                     f"{r['bram']['used']} / {r['bram']['available']} | {r['fmax_mhz']} | "
                     f"{r['clock_mhz']} | {r['inferences_per_second_at_fmax']:,.0f} | "
                     f"{r['build_seconds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "designs" / "digits_bnn.toml")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "board_builds.json")
    parser.add_argument("--only", nargs="+", choices=sorted(BOARDS), metavar="BOARD")
    parser.add_argument("--keep", type=Path, help="keep the build folders under DIR")
    parser.add_argument("--clock-mhz", type=lambda t: t if t in ("auto", "osc") else float(t),
                        help="auto, osc or MHz for every board (default: osc, the ECPIX-5 50)")
    parser.add_argument("--seeds", type=int, default=1, help="nextpnr seeds 1 … N (default 1)")
    args = parser.parse_args(argv)
    rows = build_all(args.spec, args.only or list(BOARDS), args.keep,
                     clock_mhz=args.clock_mhz, seeds=args.seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"spec": str(args.spec.relative_to(ROOT))
                                    if args.spec.is_relative_to(ROOT) else str(args.spec),
                                    "command": "python bench/board_builds.py",
                                    "builds": rows}, indent=2) + "\n")
    print(markdown(rows))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
