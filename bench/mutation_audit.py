"""The planted-bug audit of issue 15, re-runnable: small bugs planted one at a time in a copy of a
commit, each followed by the default-run tests that should catch it.

Each mutant (:data:`MUTANTS`) is data: an id, what it plants, the file, the exact old text
(which must occur exactly once in that file, or the audit refuses to start: a mutant that
matches nothing would silently test nothing), the new text, and the default-run test files or
node ids that should kill it. Some also carry a *probe*, a few lines of Python printing
something the mutant changes, run before and after planting it to show the mutant is live
(not equivalent to the original), and a note naming the test that would be needed if it
survives.

How it runs:

1. ``git archive <commit>`` (default HEAD) into a temporary folder: the repository's own
   files are never touched. In the copy, ``hwgen_sim`` is a symlink to ``sim`` and every
   pytest runs with ``PYTHONPATH=<copy>`` (inherited by the cocotb and Verilator children), so
   ``import hwgen`` and ``import hwgen_sim`` find the copy, not the editable install's
   finder (which maps them to the repository's working tree); this is checked from outside
   the copy before anything else. ``PYTHONDONTWRITEBYTECODE=1`` keeps a mutant's bytecode from
   outliving it.
2. Every mutant's old text is checked (present exactly once), and the kill tests are
   collected with the default markers (pyproject's ``addopts`` has ``-m 'not slow'``); a
   selection that collects nothing is refused.
3. Baseline: all the kill tests once, unmutated. They must pass, or the audit says which
   fail and stops.
4. Each mutant in turn: the file is mutated, ``python -m pytest -x -q -p no:cacheprovider
   --hypothesis-seed=0 <kill tests>`` runs in the copy (stopping at the first failure), the
   file is restored and checked byte for byte. A mutant is killed when that run fails; it
   survives when the run passes or is still running after ``--time-limit`` seconds (its
   process group is then killed). ``seconds`` is the wall time of that pytest run: the time
   to the kill for a killed mutant.

Usage::

    python bench/mutation_audit.py [--commit REV] [--only ID ...] [--time-limit 300]
        [--kill-budget 120] [--out bench/results/mutation_audit.json] [--keep] [--list]

The JSON holds the commit, the settings, the baseline, per mutant its id, description, file,
old and new text, kill tests, killed or not, the first failing test and its message, the
seconds and the probe's output before and after; and the totals. A markdown table goes to
stdout. With ``--only`` the JSON is written only where ``--out`` says (the default file keeps
the full audit). Exit status: 0 when every mutant is killed, 1 when any survives, 2 when the
baseline fails. Run it with the project's Python (the venv with hwgen installed); the
machine is shared, so mutants run one after another and each kill selection is kept to the
few test files that exercise its site.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "mutation_audit.json"
#: pytest as the baseline runs it; each mutant adds -x (stop at the first failure).
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-seed=0"]


@dataclass(frozen=True)
class Mutant:
    """One planted bug: ``old`` (exactly once in ``file``) becomes ``new``."""

    id: str
    plants: str
    file: str
    old: str
    new: str
    #: Default-run test files or node ids that should kill it, run in this order.
    tests: tuple[str, ...]
    #: Python printing something the mutant changes (run before and after planting it).
    probe: str | None = None
    #: The test that would kill it, if the selection above does not.
    needs: str = ""


_PROBE_CRC = "from hwgen import protocol; print(hex(protocol.crc16(b'123456789')))"
_PROBE_THRESHOLDS = ("import numpy as np; from hwgen.golden import quantize_thresholds; "
                     "print(quantize_thresholds(np.array([[3, 2, 4]]), "
                     "np.array([[3], [3], [3]])).tolist())")
_PROBE_ARGMAX = ("import numpy as np; from hwgen import golden; from hwgen.spec import Argmax; "
                 "print(golden.run_layer(Argmax(), np.array([[1, 5, 5], [7, 7, 7]])).tolist())")
_PROBE_REQUANTIZE = ("import numpy as np; from hwgen import golden; "
                     "print(golden.requantize(np.array([-6, -2, 6, 2]), np.ones(4, int), "
                     "np.full(4, 2), -99, 99).tolist())")
_PROBE_REQUANTIZE_RTL = (
    "import numpy as np\n"
    "from hwgen.numeric import TensorType\n"
    "from hwgen.rtl.datapath import Datapath\n"
    "from hwgen.spec import Dense, Requantize\n"
    "rq = Requantize(np.array([3, 5]), np.array([2, 4]), 6, True)\n"
    "layer = Dense('fc', np.array([[1, -2], [3, 4]]), 4, requantize=rq)\n"
    "print(Datapath(layer.weight_matrix(), TensorType((2,), 4, True))"
    ".requantize_constants(rq))")
_PROBE_MAXPOOL = ("import numpy as np; from hwgen import golden; from hwgen.spec import MaxPool; "
                  "x = np.array([[[[1], [-1]], [[-1], [-1]]]]); "
                  "print(golden.run_layer(MaxPool('p', 2), x).ravel().tolist())")
_PROBE_GSP = ("import numpy as np; from hwgen import golden; "
              "from hwgen.spec import GlobalSumPool; "
              "x = np.array([[[[1, -1], [1, -1], [1, 1]], [[-1, -1], [1, -1], [1, 1]]]]); "
              "print(golden.run_layer(GlobalSumPool('g'), x).tolist())")
_PROBE_PLAN = (
    "import numpy as np\n"
    "from hwgen.plan import plan\n"
    "from hwgen.spec import Dense, Input, Network\n"
    "w = np.ones((4, 64), dtype=np.int64)\n"
    "for lanes, pe, simd in ((1, 4, 16), (16, 2, 16)):\n"
    "    p = plan(Network('p', Input((64,), 8, lanes=lanes), [Dense('fc', w, 1, pe=pe, "
    "simd=simd)]))\n"
    "    print([lp.cycles for lp in p.layers], [c.cycles for c in p.converters], "
    "p.cycles_per_inference)")
_PROBE_SAME = ("from hwgen.spec import same_padding; "
               "print([same_padding(*a) for a in ((4, 2, 1), (6, 3, 2), (5, 3, 2), (5, 3, 1))])")

#: The audit's mutants, in the order of issue 15's list. Golden and RTL sides get one each.
MUTANTS: tuple[Mutant, ...] = (
    Mutant("thresholds-golden", "thresholds: acc ≥ T becomes acc > T (golden)",
           "hwgen/layers/weighted.py",
           "count = (acc[..., None] >= thresholds)",
           "count = (acc[..., None] > thresholds)",
           ("tests/test_golden.py",), probe=_PROBE_THRESHOLDS),
    Mutant("thresholds-rtl-parallel", "thresholds: q ≥ T becomes q > T (RTL, parallel stage)",
           "hwgen/rtl/output_stage.py",
           "hits = [q[p] >= t_data[p][",
           "hits = [q[p] > t_data[p][",
           ("tests/rtl/test_folded.py",)),
    Mutant("thresholds-rtl-serial", "thresholds: q ≥ T becomes q > T (RTL, serial search)",
           "hwgen/rtl/output_stage.py",
           "reached = Value.cast(q) >= threshold",
           "reached = Value.cast(q) > threshold",
           ("tests/rtl/test_folded.py",)),
    Mutant("argmax-ties-golden", "argmax: ties go to the highest index (golden)",
           "hwgen/layers/argmax.py",
           "return [np.argmax(x, axis=-1).astype(np.int64)[..., None]]",
           "return [(x.shape[-1] - 1 - np.argmax(x[..., ::-1], axis=-1)).astype(np.int64)"
           "[..., None]]",
           ("tests/test_golden.py",), probe=_PROBE_ARGMAX),
    Mutant("argmax-ties-rtl-lanes", "argmax: ties within a beat go to the higher lane (RTL)",
           "hwgen/rtl/layers/argmax.py",
           "take_b = vb > va",
           "take_b = vb >= va",
           ("tests/rtl/layers/test_argmax.py",
            "tests/rtl/test_network.py::test_tied_scores_go_to_the_lowest_class_in_rtl")),
    Mutant("argmax-ties-rtl-beats", "argmax: ties across beats go to the later beat (RTL)",
           "hwgen/rtl/layers/argmax.py",
           "beats_best.eq(Mux(better, t_value > f_value, t_value > best_value))",
           "beats_best.eq(Mux(better, t_value >= f_value, t_value >= best_value))",
           ("tests/rtl/layers/test_argmax.py",
            "tests/rtl/test_network.py::test_tied_scores_go_to_the_lowest_class_in_rtl")),
    Mutant("argmax-bubble-rtl", "argmax: an empty pipeline stage can become the best (RTL)",
           "hwgen/rtl/layers/argmax.py",
           "better = f_valid & (f_first | beats_best)",
           "better = f_first | beats_best",
           ("tests/rtl/layers/test_argmax.py",)),
    Mutant("requantize-rounding-golden", "requantize: no rounding term, truncation (golden)",
           "hwgen/layers/weighted.py",
           "rounding = np.left_shift(np.int64(1), s) >> 1",
           "rounding = np.int64(0)",
           ("tests/test_golden.py",), probe=_PROBE_REQUANTIZE),
    Mutant("requantize-rounding-rtl", "requantize: the RTL's rounding constant dropped",
           "hwgen/rtl/datapath.py",
           "constants.append(off * scaled + ((1 << shift) >> 1))",
           "constants.append(off * scaled)",
           ("tests/rtl/test_folded.py",), probe=_PROBE_REQUANTIZE_RTL),
    Mutant("maxpool-and-rtl", "maxpool: OR becomes AND on binary elements (RTL reducer)",
           "hwgen/rtl/pool.py",
           "m.d.comb += merged[lane].eq(Mux(first | (x > b), x, b))",
           "m.d.comb += merged[lane].eq(Mux(first, x, x & b) if self.in_shape.width == 1 "
           "else Mux(first | (x > b), x, b))",
           ("tests/rtl/test_pool.py",)),
    Mutant("maxpool-and-golden", "maxpool: maximum becomes minimum, AND on binary (golden)",
           "hwgen/layers/maxpool.py",
           "np.iinfo(np.int64).min, dtype=np.int64)\n"
           "        for ky in range(size):\n"
           "            for kx in range(size):\n"
           "                out = np.maximum(",
           "np.iinfo(np.int64).max, dtype=np.int64)\n"
           "        for ky in range(size):\n"
           "            for kx in range(size):\n"
           "                out = np.minimum(",
           ("tests/test_golden.py",), probe=_PROBE_MAXPOOL),
    Mutant("window-pad-word", "window padding: the pad word fills the last lane only (RTL)",
           "hwgen/rtl/window.py",
           "pad_word |= (self.pad_code & ((1 << ebits) - 1)) << (lane * ebits)",
           "pad_word = (self.pad_code & ((1 << ebits) - 1)) << (lane * ebits)",
           ("tests/rtl/test_window.py",)),
    Mutant("window-pad-side", "window padding: the bottom pad row read from memory (RTL, "
           "iy ≥ height becomes iy > height)",
           "hwgen/rtl/window.py",
           "iy >= g.height,",
           "iy > g.height,",
           ("tests/rtl/test_window.py",)),
    Mutant("cycle-formula-dense", "cycle formula: a dense layer's NF·SF without the PE fold",
           "hwgen/layers/dense.py",
           "fold = (self.out_features // pe) * (self.in_features // simd)",
           "fold = self.out_features * (self.in_features // simd)",
           ("tests/test_plan.py", "tests/rtl/test_folded.py::test_cycles_follow_folding"),
           probe=_PROBE_PLAN),
    # (Dropping the input stream from cycles per inference instead is an equivalent mutant:
    # the first layer or the converter in front of it always takes at least as long.)
    Mutant("cycle-formula-converter", "cycle formula: a lane converter's cycles counted at the "
           "wider side (elements / max(lanes) instead of / min(lanes))",
           "hwgen/plan.py",
           "return self.elements // min(self.in_lanes, self.out_lanes)",
           "return self.elements // max(self.in_lanes, self.out_lanes)",
           ("tests/test_plan.py",), probe=_PROBE_PLAN),
    Mutant("crc-host", "CRC: the host's CRC-16 init 0xFFFF becomes 0 (CRC-16/XMODEM)",
           "hwgen/protocol.py",
           "def crc16(data: bytes, crc: int = 0xFFFF) -> int:",
           "def crc16(data: bytes, crc: int = 0x0000) -> int:",
           ("tests/test_protocol.py", "tests/rtl/test_board.py"), probe=_PROBE_CRC),
    Mutant("crc-rtl", "CRC: the board's CRC step polynomial 0x1021 becomes 0x8005 (RTL)",
           "hwgen/rtl/framing.py",
           "Mux(feedback, 0x1021, 0)",
           "Mux(feedback, 0x8005, 0)",
           ("tests/rtl/test_board.py",)),
    Mutant("popcount-top-bit", "popcount: the result's top bit forced to 0 (RTL)",
           "hwgen/rtl/arith.py",
           "assert maximum == n\n    return value\n",
           "assert maximum == n\n    return Cat(value[:-1], Const(0, 1))\n",
           ("tests/rtl/test_arith.py",)),
    Mutant("global-sum-pool-golden", "global sum pool: binary −1 counted as 0 (golden)",
           "hwgen/layers/global_sum_pool.py",
           "return [np.asarray(x, dtype=np.int64).sum(axis=(1, 2))]",
           "return [np.maximum(np.asarray(x, dtype=np.int64), 0).sum(axis=(1, 2))]",
           ("tests/test_golden.py",), probe=_PROBE_GSP),
    Mutant("global-sum-pool-rtl", "global sum pool: binary bit 0 summed as 0, not −1 (RTL)",
           "hwgen/rtl/pool.py",
           "return Mux(element, 1, -1)  # binary ±1",
           "return Mux(element, 1, 0)  # binary ±1",
           ("tests/rtl/test_pool.py",)),
    Mutant("saturation-unsigned", "saturation width: the unsigned clamp skips the first bit "
           "above the range (RTL requantize)",
           "hwgen/rtl/output_stage.py",
           "above = value[bits:-1].any() if len(value) > bits + 1 else Const(0, 1)",
           "above = value[bits + 1:-1].any() if len(value) > bits + 2 else Const(0, 1)",
           ("tests/rtl/test_folded.py",)),
    Mutant("saturation-signed", "saturation width: the signed clamp tests one bit too few "
           "(RTL requantize)",
           "hwgen/rtl/output_stage.py",
           "upper = value[bits - 1:]",
           "upper = value[bits:]",
           ("tests/rtl/test_folded.py",)),
    Mutant("same-padding-side", "same padding: the odd pixel before instead of after "
           "(spec.same_padding, shared by golden and RTL)",
           "hwgen/layers/window.py",
           "return total // 2, total - total // 2",
           "return total - total // 2, total // 2",
           ("tests/test_spec.py", "tests/test_golden.py"), probe=_PROBE_SAME,
           needs="a known-answer test of same padding from outside hwgen: TensorFlow's SAME "
                 "(ONNX SAME_UPPER) puts the odd pixel after, e.g. (size 4, kernel 2, stride 1) "
                 "→ (0, 1), (6, 3, 2) → (0, 1), (5, 3, 2) → (1, 1); golden and RTL both take "
                 "their pads from same_padding, so no golden-vs-RTL test can see it"),
)


# --- running things in the copy ---------------------------------------------------------------

def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy)] + [p for p in
                                                       env.get("PYTHONPATH", "").split(os.pathsep)
                                                       if p])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@dataclass
class Run:
    code: int | None  # None: killed after the time limit
    seconds: float
    output: str


def _run(args: list[str], copy: Path, limit: float, cwd: Path | None = None) -> Run:
    """``python <args>`` in ``cwd`` (default the copy) in its own process group; the whole
    group is killed after ``limit`` seconds."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd or copy, env=_env(copy),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
    return Run(code, time.monotonic() - start, out)


_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", re.M)


def _failures(output: str) -> list[tuple[str, str]]:
    """(node id, message) of each FAILED/ERROR line of pytest's short summary."""
    return [(m.group(2), (m.group(3) or m.group(1)).strip()) for m in _FAILED.finditer(output)]


def _summary(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    return lines[-1].strip("= ") if lines else ""


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def make_copy(commit: str, into: Path) -> None:
    """The commit's tracked files in ``into`` (nothing in the repository changes), with the
    ``hwgen_sim`` symlink the editable install would otherwise provide."""
    tar_path = into.parent / (into.name + ".tar")
    with open(tar_path, "wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], stdout=f,
                       check=True)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    tar_path.unlink()
    (into / "hwgen_sim").symlink_to("sim", target_is_directory=True)


def check_imports(copy: Path) -> dict[str, str]:
    """``hwgen`` and ``hwgen_sim`` must import from the copy, seen from a folder outside it
    (what a cocotb child process sees)."""
    code = ("import hwgen, hwgen.rtl.folded, hwgen_sim, hwgen_sim.runner\n"
            "print(hwgen.__file__); print(hwgen.rtl.folded.__file__); print(hwgen_sim.__file__)")
    run = _run(["-c", code], copy, 120, cwd=Path(tempfile.gettempdir()))
    files = run.output.split()
    if run.code != 0 or len(files) != 3 or not all(
            Path(f).resolve().is_relative_to(copy.resolve()) for f in files):
        sys.exit(f"imports do not resolve to the copy {copy}:\n{run.output}")
    return {"hwgen": files[0], "hwgen.rtl.folded": files[1], "hwgen_sim": files[2]}


def check_sites(copy: Path, mutants: list[Mutant]) -> None:
    """Refuses the audit unless every mutant's old text occurs exactly once in its file."""
    bad = []
    for mu in mutants:
        path = copy / mu.file
        count = path.read_text().count(mu.old) if path.is_file() else -1
        if count != 1 or mu.old == mu.new:
            what = ("file missing" if count < 0 else "new text equals old" if count == 1
                    else f"old text found {count} times")
            bad.append(f"  {mu.id}: {mu.file}: {what}: {mu.old!r}")
    if bad:
        sys.exit("mutants refused (old text must occur exactly once):\n" + "\n".join(bad))


def _selects(selection: str, node: str) -> bool:
    """Whether the pytest argument ``selection`` (a file or node id) selects test ``node``."""
    return node == selection or node.startswith((selection + "::", selection + "["))


def _union(mutants: list[Mutant]) -> list[str]:
    """Every kill selection once, node ids dropped where their whole file is selected."""
    selections = list(dict.fromkeys(t for mu in mutants for t in mu.tests))
    return [t for t in selections if not any(f != t and _selects(f, t) for f in selections)]


def collect(copy: Path, mutants: list[Mutant]) -> dict[str, int]:
    """Tests each mutant's selection collects under the default markers; refuses empty ones."""
    selections = _union(mutants)
    run = _run(["-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *selections],
               copy, 600)
    ids = [ln.rstrip() for ln in run.output.splitlines() if "::" in ln and ln[:1] not in " \t"]
    if run.code != 0:
        sys.exit(f"collecting the kill tests failed:\n{run.output[-4000:]}")
    counts, empty = {}, []
    for mu in mutants:
        counts[mu.id] = sum(1 for i in ids if any(_selects(t, i) for t in mu.tests))
        empty += [f"  {mu.id}: {t}" for t in mu.tests if not any(_selects(t, i) for i in ids)]
    if empty:
        sys.exit("kill tests that collect nothing in the default run (slow, renamed or "
                 "missing):\n" + "\n".join(empty))
    return counts


def probe(copy: Path, mu: Mutant) -> str | None:
    if mu.probe is None:
        return None
    run = _run(["-c", mu.probe], copy, 120)
    return run.output.strip() if run.code == 0 else f"(probe failed: {_summary(run.output)})"


# --- the audit --------------------------------------------------------------------------------

def audit_mutant(copy: Path, mu: Mutant, limit: float) -> dict:
    path = copy / mu.file
    original = path.read_bytes()
    before = probe(copy, mu)
    text = original.decode()
    assert text.count(mu.old) == 1
    path.write_text(text.replace(mu.old, mu.new, 1))
    try:
        after = probe(copy, mu)
        run = _run([*PYTEST, "-x", *mu.tests], copy, limit)
    finally:
        path.write_bytes(original)
    if path.read_bytes() != original:
        sys.exit(f"{mu.file} was not restored after {mu.id}")
    failures = _failures(run.output)
    killed = run.code not in (0, None)
    first, message = failures[0] if failures else (None, None)
    if killed and first is None:  # e.g. an import error before any test ran
        first, message = f"(no test: pytest exit code {run.code})", _summary(run.output)
    return {
        "id": mu.id, "plants": mu.plants, "file": mu.file, "old": mu.old, "new": mu.new,
        "kill_tests": list(mu.tests), "killed": killed, "first_failing_test": first,
        "message": message, "seconds": round(run.seconds, 1), "timed_out": run.code is None,
        "exit_code": run.code, "pytest_summary": _summary(run.output),
        "probe_before": before, "probe_after": after,
        "probe_changed": None if before is None else before != after,
        "needs": mu.needs if not killed else "",
    }


def table(results: list[dict], budget: float) -> str:
    rows = ["| mutant | plants | file | killed | first failing test | seconds |",
            "|---|---|---|---|---|---|"]
    for r in results:
        killed = ("yes" if r["seconds"] <= budget else f"yes (over {budget:g} s)") \
            if r["killed"] else ("**no** (time limit)" if r["timed_out"] else "**no**")
        first = f"`{r['first_failing_test']}`" if r["first_failing_test"] else "—"
        rows.append(f"| {r['id']} | {r['plants']} | {r['file']} | {killed} | {first} | "
                    f"{r['seconds']:.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Re-run issue 15's planted-bug audit: each mutant planted in a copy of a "
                    "commit (git archive; the repository is not touched), its default-run kill "
                    "tests run with -x, then restored. Baseline first: the kill tests must "
                    "pass unmutated.",
        epilog="Mutants: " + ", ".join(mu.id for mu in MUTANTS))
    ap.add_argument("--commit", default="HEAD", help="commit to audit (default HEAD)")
    ap.add_argument("--only", action="append", metavar="ID",
                    help="run only this mutant (repeatable); the JSON is then written only "
                         "with --out")
    ap.add_argument("--time-limit", type=float, default=300.0, metavar="S",
                    help="seconds after which a mutant's test run is stopped and the mutant "
                         "counts as survived (default 300)")
    ap.add_argument("--kill-budget", type=float, default=120.0, metavar="S",
                    help="a kill slower than this is flagged in the table (issue 15: two "
                         "minutes; default 120)")
    ap.add_argument("--baseline-limit", type=float, default=1800.0, metavar="S",
                    help="time limit of the unmutated baseline run (default 1800)")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"JSON results (default {DEFAULT_OUT.relative_to(REPO)} for a full "
                         "run, none with --only)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = ap.parse_args(argv)

    if args.list:
        for mu in MUTANTS:
            print(f"{mu.id:28} {mu.file:22} {mu.plants}\n{'':28} kill: {' '.join(mu.tests)}")
        return 0
    known = {mu.id for mu in MUTANTS}
    if args.only and not set(args.only) <= known:
        ap.error(f"unknown mutant(s) {sorted(set(args.only) - known)}; --list shows them")
    mutants = [mu for mu in MUTANTS if not args.only or mu.id in args.only]
    out = args.out if args.out is not None else (None if args.only else DEFAULT_OUT)

    commit = _git("rev-parse", "--verify", f"{args.commit}^{{commit}}")
    subject = _git("log", "-1", "--format=%s", commit)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="hwgen-mutation-audit-"))
    copy = work / "src"
    try:
        make_copy(commit, copy)
        print(f"commit {commit[:12]} ({subject[:60]}) copied to {copy}", flush=True)
        imports = check_imports(copy)
        print(f"imports from the copy: {imports['hwgen']}, {imports['hwgen_sim']}", flush=True)
        check_sites(copy, mutants)
        counts = collect(copy, mutants)

        selections = _union(mutants)
        print(f"baseline: {len(selections)} selections, unmutated ...", flush=True)
        base = _run([*PYTEST, *selections], copy, args.baseline_limit)
        baseline = {"tests": selections, "exit_code": base.code,
                    "seconds": round(base.seconds, 1), "summary": _summary(base.output)}
        print(f"baseline: {baseline['summary']} ({base.seconds:.0f} s)", flush=True)
        if base.code != 0:
            failing = _failures(base.output)
            hit = sorted({mu.id for mu in mutants for node, _ in failing
                          if any(_selects(t, node) for t in mu.tests)})
            print(base.output[-6000:])
            print("baseline FAILED: the kill tests do not pass unmutated"
                  + (f" (time limit {args.baseline_limit:g} s)" if base.code is None else "")
                  + f"; failing: {[n for n, _ in failing]}; mutants affected: {hit}. "
                  "Audit stopped.")
            return 2

        results = []
        for i, mu in enumerate(mutants, 1):
            print(f"[{i}/{len(mutants)}] {mu.id}: {mu.plants} ...", end=" ", flush=True)
            r = audit_mutant(copy, mu, args.time_limit)
            r["kill_tests_collected"] = counts[mu.id]
            results.append(r)
            verdict = (f"killed in {r['seconds']:.1f} s by {r['first_failing_test']}"
                       if r["killed"] else f"SURVIVED ({r['pytest_summary']}, "
                                           f"{r['seconds']:.1f} s)")
            print(verdict, flush=True)
            if r["probe_changed"] is False:
                print(f"    warning: the probe shows no change ({r['probe_before']})")
    finally:
        if args.keep:
            print(f"copy kept in {copy}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    killed = [r for r in results if r["killed"]]
    totals = {
        "mutants": len(results), "killed": len(killed), "survived": len(results) - len(killed),
        "killed_within_budget": sum(1 for r in killed if r["seconds"] <= args.kill_budget),
        "survivors": [r["id"] for r in results if not r["killed"]],
        "mutant_test_seconds": round(sum(r["seconds"] for r in results), 1),
        "slowest_kill_seconds": max((r["seconds"] for r in killed), default=None),
        "audit_wall_seconds": round(time.monotonic() - started, 1),
    }
    print()
    print(table(results, args.kill_budget))
    print()
    print(f"killed {totals['killed']}/{totals['mutants']} ({totals['killed_within_budget']} "
          f"within {args.kill_budget:g} s); mutant test time {totals['mutant_test_seconds']} s; "
          f"audit wall time {totals['audit_wall_seconds']} s; baseline {baseline['seconds']} s")
    for r in results:
        if not r["killed"]:
            print(f"survived: {r['id']}: {r['needs'] or 'no kill test named'}"
                  + (f" (probe {r['probe_before']} → {r['probe_after']})"
                     if r["probe_before"] else ""))
    if out is not None:
        record = {
            "commit": commit, "commit_subject": subject,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "pytest": "python " + " ".join(PYTEST) + " -x <kill tests> (pyproject addopts: "
                      "-m 'not slow')",
            "time_limit_seconds": args.time_limit, "kill_budget_seconds": args.kill_budget,
            "cpus": os.cpu_count(), "imports": {k: str(Path(v).relative_to(copy))
                                                for k, v in imports.items()},
            "baseline": baseline, "mutants": results, "totals": totals,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {out}")
    return 0 if not totals["survived"] else 1


if __name__ == "__main__":
    sys.exit(main())
