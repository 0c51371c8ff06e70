"""The HAWQ report's Visual Wake Words ShuffleNetV2-0.5× (designs/vww_shufflenet.toml) beside
the report: per-stage MACs and bits, weight memory, peak activation memory, block RAM on the
ULX3S-85F, and (``--build``) ``hwgen build --board ulx3s-85f --fold max``.

Usage::

    python bench/vww_shufflenet.py [--out bench/results/vww_shufflenet.json]
        [--build] [--build-dir /tmp/vww_build]

Without ``--build`` the build entry of an existing JSON is kept. The build's placed
resources, fmax and inferences/s come from its report.json; a refused or failed build is
recorded with its exit code and its ``hwgen: error:`` line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hwgen  # noqa: E402
from hwgen.plan import plan  # noqa: E402
from hwgen.resources import estimate  # noqa: E402
from hwgen.toolchain.boards import board  # noqa: E402

DESIGN = ROOT / "designs" / "vww_shufflenet.toml"
BOARD = "ulx3s-85f"
#: The report's stages: hwgen's layer-name prefix, MACs (millions) and bits.
REPORT = {
    "conv3x3": ("conv1", 6.0, "W8A6"),
    "stage1": ("s1u", 4.6, "W8A8"),
    "stage2": ("s2u", 7.2, "W6/8 A8"),
    "stage3": ("s3u", 4.1, "W5/6/8 A8"),
    "conv1x1": ("conv5", 1.3, "W6A8"),
}
REPORT_PEAK_KB = 243
KIB = 8 * 1024
#: ``hwgen sim`` of the design, run by hand (not by this script: about 7 minutes).
SIM = {"command": "hwgen sim designs/vww_shufflenet.toml --random 2 --bulk 1 "
                  "--work-dir /tmp/vwwsim",
       "bulk": "every output and score of 2 inferences matched the golden model "
               "(4,203,059 cycles, 409.2 s including the Verilator build)",
       "every_beat_bench": "stopped while its Verilator build ran (not finished)"}


def stage_of(name: str) -> str:
    return next((s for s, (prefix, _, _) in REPORT.items() if name.startswith(prefix)),
                "head")


def figures(network) -> dict:
    """Per-stage MACs, schemes and weights, and the peak activation figures, from hwgen's
    plan (what ``hwgen check --json`` prints)."""
    p = plan(network).to_json()
    stages: dict[str, dict] = {}
    for layer in p["layers"]:
        row = stages.setdefault(stage_of(layer["name"]),
                                {"macs": 0, "schemes": set(), "weight_kib": 0.0, "layers": 0})
        row["macs"] += layer["macs"] or 0
        row["weight_kib"] += layer["weight_kb"] or 0.0
        row["layers"] += 1
        if layer["scheme"] not in (None, "-"):
            row["schemes"].add(layer["scheme"])
    rows = {}
    for stage, row in stages.items():
        prefix, mmacs, bits = REPORT.get(stage, (None, None, None))
        rows[stage] = {
            "layers": row["layers"], "hwgen_macs": row["macs"],
            "hwgen_mmacs": round(row["macs"] / 1e6, 3), "report_mmacs": mmacs,
            "mmacs_match": None if mmacs is None else round(row["macs"] / 1e6, 1) == mmacs,
            "report_bits": bits, "hwgen_schemes": sorted(row["schemes"]),
            "weight_kib": round(row["weight_kib"], 3)}
    # the largest input + output pair of any one layer, at actual widths and all at 8 bits
    types = {"input": network.input_type}
    pairs = []
    for index, (layer, out) in enumerate(zip(network.layers, network.types[1:], strict=True)):
        types[layer.name] = out
        ins = network.input_types(index)
        actual = sum(t.size * t.bits for t in ins) + out.size * out.bits
        at_8 = sum(t.size for t in ins) * 8 + out.size * 8
        pairs.append((layer.name, actual / KIB, at_8 / KIB))
    largest = max(pairs, key=lambda r: r[1])
    conv = next(r for r in pairs if r[0] == "conv1")
    memory = p["totals"]["memory"]
    peak = {
        "report_kib": REPORT_PEAK_KB,
        "report_definition": "the first convolution's 96×96×3 input and 96×96×24 output at "
                             "8 bits: (27,648 + 221,184) bytes = 243.0 KiB; the report does "
                             "not count the maxpool's larger pair (presumably fused into the conv)",
        "conv3x3_pair_kib": {"actual": conv[1], "8": conv[2]},
        "largest_pair": {"layer": largest[0], "actual_kib": largest[1], "8_kib": largest[2]},
        "hwgen_peak_working_set_kib": memory["peak_working_set_kb"],
        "hwgen_definition": "hwgen check: all weights plus the largest (input + output) "
                            "activation pair of any one layer (docs/cost-model.md); here the "
                            "pair is the maxpool's 96×96×24 input + 48×48×24 output",
    }
    return {"stages": rows, "totals": {"macs": p["totals"]["macs"],
                                       "weight_kib": p["totals"]["weight_kb"],
                                       "cycles_per_inference_unfolded":
                                           p["totals"]["cycles_per_inference"]},
            "peak_activation": peak}


def block_ram(network) -> dict:
    """hwgen's block RAM count on the ULX3S-85F: as shipped (PE 1, default SIMD) and at the
    narrowest folding (PE 1, SIMD 1: the narrowest, deepest weight memories), by what the
    memories hold."""
    info = board(BOARD)

    def count(net) -> dict:
        use = estimate(net, info, plan(net))
        kinds = {layer.name: layer.kind for layer in net.layers}
        parts: Counter = Counter()
        for where, mem, placed in use.memories:
            if placed.kind != "bram":
                continue
            kind = kinds.get(where.split(".")[0], "board core")
            part = ("weights" if mem.rom else "branch FIFOs" if kind == "concat"
                    else "line buffers and FIFOs")
            parts[f"{kind} {part}"] += placed.count
        return {"total": int(use.total["bram"]), "by_kind": dict(parts.most_common())}

    narrow = dataclasses.replace(network, layers=[
        dataclasses.replace(layer, pe=1, **({"simd": 1} if hasattr(layer, "simd") else {}))
        if hasattr(layer, "weights") else layer for layer in network.layers])
    return {"device": int(info.resources["bram"]), "as_shipped": count(network),
            "narrowest": count(narrow)}


def build(out: Path) -> dict:
    command = ["hwgen", "build", "designs/vww_shufflenet.toml", "--board", BOARD, "--fold",
               "max", "-o", str(out)]
    start = time.monotonic()
    hwgen_script = Path(sys.executable).parent / "hwgen"
    done = subprocess.run([str(hwgen_script), *command[1:]], cwd=ROOT, capture_output=True,
                          text=True)
    entry = {"command": " ".join(command), "returncode": done.returncode,
             "seconds": round(time.monotonic() - start)}
    errors = re.findall(r"^hwgen: error: .*$", done.stderr + done.stdout, re.M)
    if errors:
        entry["error"] = errors[-1]
    report = out / "report.json"
    if done.returncode == 0 and report.exists():
        r = json.loads(report.read_text())
        entry["report"] = {k: r.get(k) for k in (
            "lut4", "bram", "dsp", "predicted", "fmax_mhz", "clock_mhz",
            "cycles_per_inference", "inferences_per_s", "fold", "nextpnr_seed")}
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" /
                                             "vww_shufflenet.json"))
    parser.add_argument("--build", action="store_true",
                        help=f"also run hwgen build --board {BOARD} --fold max")
    parser.add_argument("--build-dir", default="/tmp/vww_build")
    args = parser.parse_args(argv)
    out = Path(args.out)
    network = hwgen.load(DESIGN)
    result = {"design": "designs/vww_shufflenet.toml",
              "check": "hwgen check designs/vww_shufflenet.toml --json",
              **figures(network), "block_ram": block_ram(network), "sim": SIM}
    if args.build:
        result["build"] = build(Path(args.build_dir))
    elif out.exists():
        result["build"] = json.loads(out.read_text()).get("build")
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
