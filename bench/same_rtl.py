"""Does a restructuring change the hardware? The Verilog of every shipped design, at two
revisions, compared line by line.

For each design in designs/ the network top (with and without taps) and the board logic (UART,
protocol core and network, at 12 MHz), planned with the UP5K's DSP budget, are elaborated by
the working tree and by ``--base`` (a ``git archive`` of that
revision in a temporary folder, imported through ``PYTHONPATH``: the repository's files are
never touched). Lines that only carry Amaranth's ``src`` attributes (the Python file and line a
signal came from) are dropped before comparing. Identical Verilog means identical outputs,
cycles, latency and, through deterministic Yosys/nextpnr runs, identical LCs and fmax.

    python bench/same_rtl.py --base 69139c2 [--json bench/results/same_rtl.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESIGNS = ["digits_bnn", "mnist_cnn", "mnist_mixed", "cnv_w1a1", "face32_bnn"]

ELABORATE = """
import sys
from pathlib import Path
from amaranth.back import verilog
from hwgen import spec
from hwgen.rtl.network import NetworkTop
out, designs = Path(sys.argv[1]), sys.argv[2:]
from hwgen.plan import plan
from hwgen.rtl.board import BoardLogic
import inspect
for d in designs:
    net = spec.load(Path({root!r}) / "designs" / f"{{d}}.toml")
    for taps in (False, True):
        top = NetworkTop(net, taps=taps, dsp_budget=8)
        (out / f"{{d}}-taps{{int(taps)}}.v").write_text(verilog.convert(top, name=d))
    # the board logic (UART, protocol, network) as the UP5K build plans it, either API
    if "net_plan" in inspect.signature(BoardLogic).parameters:
        board = BoardLogic(net, clk_hz=12_000_000, net_plan=plan(net, 8))
    else:
        board = BoardLogic(net, clk_hz=12_000_000, dsp_budget=8)
    (out / f"{{d}}-board.v").write_text(verilog.convert(board, name=d))
"""


def elaborate(pythonpath: Path | None, out: Path) -> None:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    subprocess.run([sys.executable, "-c", ELABORATE.format(root=str(ROOT)), str(out), *DESIGNS],
                   check=True, env=env)


def logic_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if "(* src =" not in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare with")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/same_rtl.json")
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_src, new_v, base_v = tmp / "base", tmp / "new", tmp / "old"
        for folder in (base_src, new_v, base_v):
            folder.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base],
                                 check=True, capture_output=True).stdout
        (tmp / "base.tar").write_bytes(archive)
        with tarfile.open(tmp / "base.tar") as tar:
            tar.extractall(base_src, filter="data")
        elaborate(None, new_v)
        elaborate(base_src, base_v)
        rows = []
        for path in sorted(new_v.iterdir()):
            new, old = logic_lines(path), logic_lines(base_v / path.name)
            rows.append({"design": path.stem, "lines": len(new), "identical": new == old,
                         "differing_lines": sum(a != b for a, b in zip(new, old, strict=False))
                         + abs(len(new) - len(old))})
    result = {"command": f"python bench/same_rtl.py --base {args.base}", "head": head,
              "base": args.base, "designs": rows,
              "all_identical": all(r["identical"] for r in rows)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['design']:24} {r['lines']:>8} lines  "
              f"{'identical' if r['identical'] else str(r['differing_lines']) + ' differ'}")


if __name__ == "__main__":
    main()
