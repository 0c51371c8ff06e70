"""The ``hwgen`` command: import, check, generate, sim, build, flow, flash, run, boards."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import golden
from .executor import default_jobs
from .outdir import OutputDir, OutputError, check_output_file, write_file
from .plan import format_table, plan
from .spec import Network, SpecError, load_npz

__all__ = ["main"]


#: ``hwgen sim``/``flow`` check larger input sets with ``--bulk`` unless told otherwise.
BULK_ABOVE = 500


#: The most values a spec's test split may hold (inputs and labels): the shipped MNIST
#: splits hold 7.85 M.
MAX_DATASET_VALUES = 1 << 28


class UsageError(Exception):
    """Bad command-line input (a file that is not there, an argument out of range)."""


#: ``--random N``: at most this many input values in all (2**25: 256 MiB as int64).
MAX_RANDOM_VALUES = 2 ** 25
#: ``--seed``: 0 … 2**32 − 1.
MAX_SEED = 2 ** 32 - 1
#: ``hwgen run --timeout``: at least 1 ms, at most a day.
TIMEOUT_RANGE = (1e-3, 86400.0)
#: ``--clock-mhz``: above 0, at most 1,000 MHz (no iCE40 or ECP5 PLL goes near it).
MAX_CLOCK_MHZ = 1000.0
#: ``--baud``: 1 … 12,000,000 (the fastest USB-UART bridges on the supported boards).
MAX_BAUD = 12_000_000


def _load(path: str) -> Network:
    """A SPEC argument: a TOML spec or a QONNX/ONNX model."""
    from . import load as load_any

    return load_any(path)


def _load_array(path: str, option: str) -> np.ndarray:
    """The array in the .npy file ``path``, or :class:`UsageError` naming ``option``: a
    missing file, a folder, an .npz archive, an object array, a file shorter than its header
    says (checked before anything is allocated), a 0-d array."""
    where = f"{option} {path}"
    if path == "":
        raise UsageError(f"{option} '': expected a .npy file name")
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{where}: is a folder; expected a .npy file")
    if p.exists() and not p.is_file():  # a pipe would block, a device never ends
        raise UsageError(f"{where}: is not a regular file; expected a .npy file")
    try:
        with open(p, "rb") as f:
            magic = f.read(6)
            if magic[:2] == b"PK":
                raise UsageError(f"{where}: is an .npz archive; expected a .npy file (save "
                                 f"it with np.save)")
            if magic != b"\x93NUMPY":
                raise UsageError(f"{where}: not a .npy file (no NumPy header)")
            f.seek(0)
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                           np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            header_end = f.tell()
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise UsageError(f"{where}: file not found") from None
    except UsageError:
        raise
    except OSError as exc:
        raise UsageError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - NumPy's header parser raises many types
        raise UsageError(f"{where}: not a readable .npy file (broken header: "
                         f"{type(exc).__name__})") from None
    if dtype.hasobject:
        raise UsageError(f"{where}: holds Python objects (dtype {dtype}); expected a numeric "
                         f"array")
    needed = math.prod(shape) * dtype.itemsize
    if needed > size - header_end:
        raise UsageError(f"{where}: its header declares shape {shape} {dtype} "
                         f"({needed:,} bytes), the file holds {size - header_end:,}")
    if not shape:
        raise UsageError(f"{where}: holds a single value (a 0-d array); expected an array "
                         f"with one row per input")
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - as above
        raise UsageError(f"{where}: not a readable .npy file ({type(exc).__name__}: "
                         f"{exc})") from None
    return arr


def check_labels(labels: np.ndarray, count: int, classes: int | None, where: str
                 ) -> np.ndarray:
    """Labels as a 1-D int64 array: one integer class number (0 … classes − 1) per input, in
    a 1-D or N × 1 array; :class:`UsageError` naming ``where`` otherwise."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise UsageError(f"{where}: labels have shape {labels.shape}; expected one label per "
                         f"input (N or N × 1)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"{where}: labels must be integer class numbers, got dtype "
                         f"{labels.dtype}")
    if len(labels) != count:
        raise UsageError(f"{where}: {len(labels)} labels for {count} inputs")
    if classes is not None and len(labels):
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        if len(bad):
            raise UsageError(f"{where}: labels must be class numbers 0..{classes - 1}, found "
                             f"{labels[bad[0]]} at {bad[0]}")
    return labels.astype(np.int64)


def _classes(network: Network) -> int | None:
    """How many classes the network's argmax chooses from (None without argmax)."""
    from .spec import Argmax

    if not isinstance(network.layers[-1], Argmax):
        return None
    return network.layer_io()[-1][1].size


def sim_inputs(network: Network, args) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The inputs (and labels) ``hwgen sim`` and ``hwgen run`` use: --inputs, else the spec's
    test split, else random inputs; cut to --count. Everything is checked here, before any
    work: :class:`UsageError` names the option and file."""
    labels = None
    if args.labels is not None and args.inputs is None:
        raise UsageError("--labels needs --inputs (the labels of the spec's test split come "
                         "with it)")
    if args.inputs is not None and args.random:
        raise UsageError("--random makes its own inputs; give --inputs or --random, not both")
    if args.inputs is not None:
        x = _load_array(args.inputs, "--inputs")
        if args.labels is not None:
            labels = _load_array(args.labels, "--labels")
        where = args.inputs
        label_where = f"--labels {args.labels}"
        input_where = f"--inputs {args.inputs}"
    elif network.dataset is not None and not args.random:
        data = load_npz(network.dataset, network.source, "dataset.test",
                        max_elements=MAX_DATASET_VALUES, what="test split")
        if "x" not in data or "y" not in data:
            raise SpecError(network.source, "dataset.test",
                            f"test split {str(network.dataset)!r} holds arrays "
                            f"{sorted(data)}; expected x (inputs) and y (labels)")
        x, labels = data["x"], data["y"]
        where = label_where = input_where = str(network.dataset)
        if x.ndim == 0:
            raise UsageError(f"{where}: x holds a single value; expected one row per input")
    else:
        count = args.random or 16
        size = network.input_type.size
        if count * size > MAX_RANDOM_VALUES:
            raise UsageError(f"--random {count}: at most {MAX_RANDOM_VALUES // size:,} random "
                             f"inputs of {size:,} values each ({MAX_RANDOM_VALUES:,} values in "
                             f"all)")
        x = _random_inputs(network, count, args.seed)
        where = input_where = f"{count} random inputs (seed {args.seed})"
    if labels is not None:
        labels = check_labels(labels, len(x), _classes(network), label_where)
    if args.count is not None:
        x = x[:args.count]
        labels = labels[:args.count] if labels is not None else None
    return _checked_inputs(network, x, input_where), labels, where


def _random_inputs(network: Network, count: int, seed: int) -> np.ndarray:
    """``count`` random input values for ``network`` (±1 for a binary input), from ``seed``."""
    lo, hi = network.input_type.range
    rng = np.random.default_rng(seed)
    shape = (count, *network.input_type.shape)
    if network.input_type.binary:
        return rng.choice([-1, 1], size=shape)
    return rng.integers(lo, hi + 1, size=shape)


def _checked_inputs(network: Network, x: np.ndarray, where: str) -> np.ndarray:
    """Input values ``x`` shaped as ``network``'s input (a flat row per input is
    reshaped) and checked (:func:`hwgen.golden.check_inputs`); :class:`UsageError` naming
    ``where`` for values it cannot take or for no inputs."""
    if len(x) and x.size == len(x) * network.input_type.size:
        x = x.reshape(len(x), *network.input_type.shape)
    try:
        x = golden.check_inputs(network, x)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if not len(x):
        raise UsageError(f"{where}: no inputs")
    return x


def cmd_boards(args) -> int:
    """``hwgen boards``: the supported boards, their FPGA, resources, clock and UART, with the
    link's default rate (``baud``) and the fastest its USB-UART carries (``max_baud``)."""
    from .toolchain.boards import BOARDS

    rows = []
    for b in BOARDS.values():
        pins = b.uart_pins()
        rows.append({"name": b.name, "family": b.family, "device": b.device,
                     "package": b.package,
                     **{k: b.resources.get(k) for k in ("lcs", "lut4", "ffs", "bram", "spram",
                                                        "dsp")},
                     "clock_mhz": b.clock_mhz, "baud": b.baud, "max_baud": b.max_baud,
                     "uart": {"resource": list(b.uart), **pins, "host": b.uart_host},
                     "description": b.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'board':20s} {'FPGA':19s} {'logic':>11s} {'BRAM':>4s} {'SPRAM':>5s} {'DSP':>3s} "
          f"{'clock':>7s} {'baud':>9s}  UART")
    for r in rows:
        logic = f"{r['lcs']:,} LC" if r["lcs"] else f"{r['lut4']:,} LUT4"
        uart = r["uart"]
        print(f"{r['name']:20s} {r['device'] + '-' + r['package']:19s} {logic:>11s} "
              f"{r['bram']:4d} {r['spram']:5d} {r['dsp']:3d} {r['clock_mhz']:3g} MHz "
              f"{r['baud']:9,d}  "
              f"rx {uart['rx']}, tx {uart['tx']}: {uart['host']}")
    return 0


def cmd_check(args) -> int:
    network = _load(args.spec)
    if args.board is None and args.plot is not None:
        raise UsageError("--plot needs --board (the device the shares are of)")
    if args.board is None:
        p = plan(network)
        print(json.dumps(p.to_json(), indent=2) if args.json else format_table(p))
        return 0
    from .resources import RESOURCE_NAMES, estimate, estimate_logic, format_resources
    from .rtl.board import check_network
    from .toolchain.boards import BoardError, board
    from .toolchain.synth import board_plan, check_dsp

    info = board(args.board)
    plot = None
    if args.plot is not None:
        from .plots import written_by_hwgen

        if not args.plot.lower().endswith(".png"):
            raise UsageError(f"--plot {args.plot}: expected a .png file name")
        plot = check_output_file(args.plot, "--plot", written_by_hwgen)
    if _leaves_folding(network):
        network = _fold(network, args.board, None, None, 0.9, quiet=args.json,
                        keep=True).network
        if not args.json:
            print()
    p = board_plan(network, info)
    check_dsp(network, info, p)
    try:
        check_network(network)
    except ValueError as exc:  # no board top to estimate: the table, and why not more
        if args.json:
            print(json.dumps({**p.to_json(), "resources": None,
                              "resources_note": str(exc)}, indent=2))
        else:
            print(format_table(p))
            print(f"\nresources on {info.name}: not estimated: {exc}")
        return 0
    use = estimate(network, info, p)
    logic, error = estimate_logic(network, p, use)
    if args.json:
        print(json.dumps({**p.to_json(), "resources": {
            **use.to_json(), "logic_model": logic, "logic_model_error_percent": error}},
            indent=2))
    else:
        print(format_table(p))
        print()
        print(format_resources(use, info.name, info.device, logic,
                               info.resources.get("lcs") or info.resources.get("lut4"),
                               error))
    if plot is not None:
        _plot_check(network, p, use, info, plot)
    if use.over():
        raise BoardError(f"{network.name} does not fit {info.name} ({info.device}): "
                         + ", ".join(f"needs {use.total[k]} {RESOURCE_NAMES[k]}, the device "
                                     f"has {use.available[k]}" for k in use.over()))
    return 0


def cmd_fold(args) -> int:
    """``hwgen fold``: the folding that fits a board (docs/fold.md); writes the folded spec
    with ``-o``."""
    network = _load(args.spec)
    toml_out = _spec_output(args.output, "-o", FOLD_MARK)[0] if args.output else None
    result = _fold(network, args.board, args.fps, args.clock_mhz, args.headroom,
                   quiet=args.json)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    if toml_out is not None:
        how = f"{args.fps:g} inferences/s" if args.fps else "the most inferences/s"
        _write_spec(result.network, toml_out, header=(
            f"{FOLD_MARK[2:]} from {args.spec} for {args.board} ({how}, headroom "
            f"{args.headroom:g}); hwgen fold replaces this file and its NPZ."),
            say=(lambda text: print(text, file=sys.stderr)) if args.json else print)
    return 0


#: The first line of every spec ``hwgen allocate`` writes.
ALLOCATE_MARK = "# Written by hwgen allocate"


#: ``hwgen allocate`` on a spec without ``--calibration``: this many of its test split's
#: inputs, else this many random inputs (seed 0), and the random inputs' count.
SPEC_CALIBRATION = 200
SPEC_RANDOM_CALIBRATION = 4


def cmd_allocate(args) -> int:
    """``hwgen allocate``: per-layer widths of a float model (or of an hwgen spec's weights)
    against budgets (docs/allocation.md); writes the spec."""
    from .allocation.allocate import allocate, format_allocation, front, restrict_candidates
    from .allocation.float_model import FloatModel
    from .allocation.spec_model import SpecModel
    from .plots import plot_allocation_front, written_by_hwgen

    suffix = Path(args.model).suffix.lower()
    if suffix not in (".onnx", ".toml"):
        raise UsageError(f"MODEL {args.model}: expected a float .onnx model or an hwgen "
                         f".toml spec")
    given = args.output or str(Path(args.model).with_name(
        f"{Path(args.model).stem}_allocated.toml"))
    toml_out = _spec_output(given, "-o", ALLOCATE_MARK)[0]
    pareto = None
    if args.pareto is not None:
        suffix = Path(args.pareto).suffix.lower()
        if suffix not in (".json", ".png"):
            raise UsageError(f"--pareto {args.pareto}: expected a .json or .png file name")
        pareto = check_output_file(args.pareto, "--pareto", written_by_hwgen if
                                   suffix == ".png" else _written_front)
    if args.board is not None:
        from .toolchain.boards import board

        board(args.board)  # an unknown board: one line before any work
    elif args.fps is not None:
        raise UsageError("--fps needs --board (the folding is the board's)")
    network = None
    quantized = Path(args.model).suffix.lower() == ".onnx" and _quantized_onnx(args.model)
    if Path(args.model).suffix.lower() == ".toml" or quantized:
        # a spec, or a QONNX model trained with its quantizers: its integer network, exact
        network = _load(args.model)
        for given, option in ((args.activation_kb, "--activation-kb"),
                              (args.activation_bits, "--activation-bits"),
                              (args.act_calibration, "--act-calibration")):
            if given is not None:
                raise UsageError(f"{option}: a spec's (or a quantized model's) activations "
                                 f"keep their widths and steps (hwgen allocate chooses its "
                                 f"weights' widths only)")
        if args.labels is not None and args.calibration is None:
            raise UsageError(f"--labels {args.labels}: needs --calibration (the inputs they "
                             f"label; without it, the test split's own labels are used)")
        x, split_labels = _spec_calibration(network, args.calibration,
                                            args.model if quantized else None)
    elif args.calibration is None:
        raise UsageError("--calibration X.npy is needed for a float model (its inputs, "
                         "N × the model's input shape)")
    else:
        x = _load_array(args.calibration, "--calibration")
    labels = None if network is None else split_labels
    if args.labels is not None:
        if network is not None and _classes(network) is None:
            raise UsageError(f"--labels {args.labels}: {args.model} ends in "
                             f"{network.layers[-1].kind}, not an argmax: it has no classes")
        labels = check_labels(_load_array(args.labels, "--labels"), len(x),
                              None if network is None else _classes(network),
                              f"--labels {args.labels}")
    if network is None:
        model = FloatModel(args.model, x, labels,
                           act_calibration=args.act_calibration or "minmax", log=_progress)
        if labels is not None:  # the float model's scores say how many classes it has
            check_labels(labels, len(x), model.classes, f"--labels {args.labels}")
    else:
        model = SpecModel(args.model, network, x, labels, log=_progress)
    restrict_candidates(model, args.weight_bits, args.activation_bits)
    result = allocate(model, method=args.method, weight_kb=args.weight_kb,
                      activation_kb=args.activation_kb, board=args.board, fps=args.fps,
                      clock_mhz=args.clock_mhz, log=_progress)
    print()
    print(format_allocation(result, None if labels is None or network is not None else
                            float(np.mean(model.float_classes == labels))))
    if result.fold is not None:
        from .fold import format_fold

        print()
        print(format_fold(result.fold, args.clock_mhz))
    if pareto is not None:
        print("the front: the uniform widths, and the allocation at weight budgets from the "
              "narrowest widths' to the reference's", flush=True)
        rows = front(model, result.sensitivity, methods=(args.method,),
                     activation_kb=args.activation_kb)
        if pareto.suffix.lower() == ".json":
            write_file(pareto, json.dumps({"written_by": ALLOCATE_MARK[2:],
                                           "model": args.model, "calibration_inputs": len(x),
                                           "rows": rows}, indent=2) + "\n")
            print(f"wrote {pareto}")
        elif plot_allocation_front(rows, pareto, f"{model.path.stem}: allocated "
                                   f"({args.method}) against uniform widths"):
            print(f"wrote {pareto}")
        else:
            print("no plot written: pip install 'hwgen[plot]'")
    _write_spec(result.network, toml_out, header=(
        f"{ALLOCATE_MARK[2:]} from {args.model} ({args.method}"
        + (f", for {args.board}" if args.board else "") + "); hwgen allocate replaces this "
        "file and its NPZ."))
    return 0


def _quantized_onnx(path: str) -> bool:
    """Whether the ONNX model at ``path`` holds quantizers (QONNX, trained with them)."""
    from .importers.ptq import is_float_model
    from .importers.qonnx import load_model

    return not is_float_model(load_model(Path(path), path))


def _spec_calibration(network: Network, given: str | None,
                      quantized_model: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """``hwgen allocate``'s calibration inputs for a spec, and their labels where they come
    with them: ``--calibration``'s integer codes (for ``quantized_model``, a QONNX file, its
    float inputs, through its input quantizer; no labels), else the first
    :data:`SPEC_CALIBRATION` of its test split (with its labels, when it holds a ``y``),
    else :data:`SPEC_RANDOM_CALIBRATION` random inputs (seed 0; no labels);
    :class:`UsageError` for inputs the spec cannot take."""
    from .spec import load_npz

    y = None
    if given is not None and quantized_model is not None:
        from .importers.qonnx import calibration_inputs, import_onnx, input_codes, load_model

        floats = calibration_inputs(load_model(Path(quantized_model), quantized_model),
                                    _load_array(given, "--calibration"),
                                    f"--calibration {given}")
        x, where = input_codes(import_onnx(quantized_model), floats), f"--calibration {given}"
    elif given is not None:
        x, where = _load_array(given, "--calibration"), f"--calibration {given}"
    elif network.dataset is not None:
        split = load_npz(network.dataset, network.source, "test split",
                         max_elements=MAX_DATASET_VALUES, what="test split")
        x = split.get("x")
        if x is None:
            raise SpecError(str(network.dataset), "x", "the test split holds no inputs (x)")
        x, where = x[:SPEC_CALIBRATION], f"the test split {network.dataset}"
        if split.get("y") is not None and _classes(network) is not None:
            y = check_labels(split["y"][:SPEC_CALIBRATION], len(x), _classes(network),
                             f"the test split {network.dataset} (y)")
        print(f"calibration: the first {len(x)} inputs of {network.dataset}"
              + (" and their labels" if y is not None else ""))
    else:
        x, where = _random_inputs(network, SPEC_RANDOM_CALIBRATION, 0), "random inputs"
        print(f"calibration: {len(x)} random inputs (seed 0): {network.source} names no test "
              f"split; --calibration X.npy gives yours")
    return _checked_inputs(network, x, where), y


def _written_front(path: Path) -> bool:
    """Whether ``path`` is a front ``hwgen allocate --pareto`` wrote (JSON naming it)."""
    try:
        return json.loads(path.read_text()).get("written_by") == ALLOCATE_MARK[2:]
    except (OSError, ValueError, AttributeError):
        return False


def cmd_sweep(args) -> int:
    """``hwgen sweep``: boards × foldings × seeds built on the executor (docs/sweep.md)."""
    from .executor import run_all
    from .plots import plot_pareto
    from .sweep import Point, pareto, run_point, write_table
    from .toolchain.boards import board

    network = _load(args.spec)
    boards = args.board
    for name in boards:
        board(name)  # an unknown board: one line before any work
    out = _output_dir(args, network, kind="sweep", default=f"build/{network.name}-sweep")
    started = time.monotonic()
    with out.staged() as tmp:
        points = [Point(os.path.abspath(args.spec), b, f, seed, str(tmp / "points"))
                  for b in boards for f in args.fold for seed in args.seeds]
        where = f"Ray ({args.ray})" if args.ray else f"{args.jobs or default_jobs()} workers"
        print(f"sweep of {network.name}: {len(points)} builds on {where}", flush=True)
        rows = run_all(run_point, points, jobs=args.jobs, ray=args.ray)
        pareto(rows)
        meta = {"spec": args.spec, "network": network.name, "boards": boards,
                "folds": [f if isinstance(f, str) else f"{f:g} fps" for f in args.fold],
                "seeds": args.seeds,
                "executor": {"ray": args.ray} if args.ray else {"jobs": args.jobs
                                                                 or default_jobs()},
                "seconds": round(time.monotonic() - started, 1)}
        files = [*write_table(rows, tmp, meta)]
        plotted = plot_pareto(rows, tmp / "pareto.png", f"{network.name}: hwgen sweep")
        out.commit()
    for row in rows:
        if row.get("built"):
            print(f"  {row['label']:40s} {row['logic']:>7,} logic  {row['fmax_mhz']:>7} MHz  "
                  f"{row['cycles_per_inference']:>9,} cycles  "
                  f"{row['inferences_per_second_at_fmax']:>12,.1f} inferences/s"
                  + ("  pareto" if row["pareto"] else ""))
        else:
            print(f"  {row['label']:40s} not built: {row['error']}")
    names = [f.name for f in files] + (["pareto.png"] if plotted else [])
    print(f"wrote {', '.join(str(out.shown / n) for n in names)} in "
          f"{meta['seconds']:,.0f} s" + ("" if plotted else
                                          " (no pareto.png: pip install 'hwgen[plot]')"))
    return 0 if any(r.get("built") for r in rows) else 1


def _fold(network: Network, board_name: str, fps: float | None, clock_mhz: float | None,
          headroom: float, quiet: bool = False, keep: bool = False):
    """:func:`hwgen.fold.fold` with its search's progress and its table printed."""
    from .fold import fold, format_fold
    from .toolchain.boards import board

    board(board_name)  # an unknown board: its one error line before any work
    say = (lambda line: None) if quiet else _progress
    say(f"folding {network.name} for {board_name}"
        + (" (its \"auto\" fields)" if keep else "")
        + ": pricing each layer's ways and solving for the fastest that fits ..."
        if fps is None else
        f"folding {network.name} for {board_name}: the least resources for {fps:g} "
        "inferences/s ...")
    result = fold(network, board_name, fps=fps, clock_mhz=clock_mhz, headroom=headroom,
                  keep=keep, log=say)
    if not quiet:
        print(format_fold(result, clock_mhz))
    return result


def _plot_check(network: Network, p, use, info, path: Path) -> None:
    """``check --plot``: per-layer cycles and shares of the device, as a PNG."""
    from .plots import plot_check
    from .resources import layer_shares

    key = "lut4" if info.family == "ecp5" else "lcs"
    available = {"logic": info.resources[key], "ffs": info.resources.get("ffs", 0),
                 **{k: info.resources.get(k, 0) for k in ("bram", "spram", "dsp")}}
    unit = "LUT4s" if key == "lut4" else "LCs"
    if plot_check(p, layer_shares(network, p, use), available, path,
                  f"{network.name} on {info.name}", f"{unit} (model)"):
        print(f"wrote {path}")
    else:
        print("no plot written: pip install 'hwgen[plot]'")


#: The first line of every spec ``hwgen import`` writes: a spec that starts with it may be
#: replaced by another import.
IMPORT_MARK = "# Written by hwgen import"


#: The first line of every spec ``hwgen fold`` writes.
FOLD_MARK = "# Written by hwgen fold"


def _written_by(path: Path, mark: str) -> bool:
    """Whether ``path`` is a spec whose first line is ``mark`` (a hwgen command wrote it)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().startswith(mark)
    except (OSError, UnicodeDecodeError):
        return False


def _spec_output(given: str, option: str, mark: str) -> tuple[Path, Path]:
    """The TOML and NPZ a command writing a spec (``-o``) may replace: new files, or files
    whose spec starts with ``mark``; checked before any work."""
    toml_out = Path(given)
    if toml_out.suffix.lower() != ".toml":
        raise UsageError(f"{option} {given}: expected a .toml file name (the NPZ goes beside "
                         f"it)")
    npz_out = toml_out.with_suffix(".npz")
    writer = mark.removeprefix("# Written by ")
    check_output_file(str(toml_out), option, lambda path: _written_by(path, mark), writer)
    # the NPZ beside the spec is hwgen's if the spec is: the command wrote both
    check_output_file(str(npz_out), f"{option} (its NPZ)",
                      lambda path: _written_by(toml_out, mark) and toml_out.exists(), writer)
    return toml_out, npz_out


def _write_spec(network: Network, toml_out: Path, header: str,
                say: Callable[[str], None] = print) -> None:
    """Write ``network`` as ``toml_out`` and its NPZ, both at once (staged beside them, then
    renamed): never half a spec. A test split not beside ``toml_out`` is dropped, with a
    note; ``say`` hears the note and what was written (stderr when stdout is JSON)."""
    from .spec import save

    dataset = network.dataset
    if dataset is not None and dataset.parent.resolve() != toml_out.parent.resolve():
        network = dataclasses.replace(network, dataset=None)
        say(f"note: the test split {dataset} is not beside {toml_out}; the spec names none")
    with tempfile.TemporaryDirectory(prefix=".hwgen-partial-", dir=toml_out.parent) as tmp:
        staged = Path(tmp) / toml_out.name
        save(network, staged, header=header)
        os.replace(staged.with_suffix(".npz"), toml_out.with_suffix(".npz"))
        os.replace(staged, toml_out)
    say(f"wrote {toml_out} and {toml_out.with_suffix('.npz')}")


def cmd_import(args) -> int:
    """``hwgen import``: a QONNX/ONNX model → spec TOML + NPZ (docs/import.md)."""
    from .importers.qonnx import FloatOptions, InputFormat, import_onnx, input_codes, verify

    if Path(args.model).suffix.lower() != ".onnx":
        raise UsageError(f"MODEL {args.model}: expected an .onnx file")
    fmt = None
    if args.input_bits is not None:
        fmt = InputFormat(args.input_bits, args.input_signed, args.input_scale)
    elif args.input_signed or args.input_scale != 1.0:
        raise UsageError("--input-signed and --input-scale need --input-bits")
    toml_out, _ = _spec_output(args.output or str(Path(args.model).with_suffix(".toml")),
                               "-o", IMPORT_MARK)
    options = calibration = labels = None
    if (args.bits is None) != (args.calibration is None):
        raise UsageError("--bits and --calibration go together (post-training quantization of "
                         "a float model)")
    if args.bits is None and (args.act_bits or args.classifier_bits or args.labels
                              or args.act_calibration):
        raise UsageError("--act-bits, --classifier-bits, --act-calibration and --labels need "
                         "--bits and --calibration")
    if args.bits is not None:
        calibration = _load_array(args.calibration, "--calibration")
        if args.labels is not None:
            labels = check_labels(_load_array(args.labels, "--labels"), len(calibration), None,
                                  f"--labels {args.labels}")
        options = FloatOptions(calibration, weight_bits=args.bits,
                               act_bits=args.act_bits or args.bits,
                               classifier_bits=args.classifier_bits or 8,
                               act_calibration=args.act_calibration or "minmax")
    imported = import_onnx(args.model, input_format=fmt, float_options=options)
    network = imported.network
    if labels is not None:
        from .importers.ptq import float_predictions
        from .importers.qonnx import load_model

        float_model = load_model(Path(args.model), args.model)
        x = calibration.reshape(len(calibration), *float_model.get_tensor_shape(
            float_model.graph.input[0].name)[1:])
        float_acc = float(np.mean(float_predictions(float_model, x) == labels))
        int_acc = float(np.mean(golden.predict(network, input_codes(imported, x)) == labels))
        print(f"accuracy on the {len(labels)} calibration inputs: float model {float_acc:.4f}, "
              f"integer network {int_acc:.4f}")
    print(f"input: {network.input_type.describe()} from {imported.input_from}; the model's "
          f"input is {imported.input_scale:g} × the value")
    for note in imported.notes:
        print(f"note: {note}")
    print(format_table(plan(network)))
    if args.verify:
        x = _verify_inputs(network, args)
        result = verify(imported, x)
        layers = ", ".join(f"{k} {v}" for k, v in result.mismatches.items() if v) or "none"
        print(f"QONNX executor vs hwgen golden model on {result.inputs} inputs: classes equal "
              f"on {result.classes_equal}; inputs with a different integer output, by layer: "
              f"{layers}")
        if not result.exact:
            print("import not exact on these inputs (docs/import.md, \"Exactness\"); no spec "
                  "written", file=sys.stderr)
            return 1
    _write_spec(network, toml_out, header=f"{IMPORT_MARK[2:]} from {args.model}; hwgen "
                f"import replaces this file and its NPZ.")
    return 0


def _verify_inputs(network: Network, args) -> np.ndarray:
    """``hwgen import --verify N``'s inputs: the first N of --inputs, else of the model's test
    split, else N random ones (--seed)."""
    if args.inputs is not None:
        x = _load_array(args.inputs, "--inputs")
    elif network.dataset is not None:
        x = load_npz(network.dataset, network.source, "test split",
                     max_elements=MAX_DATASET_VALUES, what="test split").get("x")
        if x is None:
            raise SpecError(str(network.dataset), "x", "the test split holds no inputs (x)")
    else:
        x = _random_inputs(network, args.verify, args.seed)
    x = x[:args.verify]
    if len(x) and x.size == len(x) * network.input_type.size:
        x = x.reshape(len(x), *network.input_type.shape)
    try:
        return golden.check_inputs(network, x)
    except ValueError as exc:
        raise UsageError(f"--verify inputs: {exc}") from None


def _output_dir(args, network: Network, *, kind: str, default: str,
                failed: bool = False) -> OutputDir:
    """The ``-o`` folder of a command, checked against hwgen's output-folder rule
    (:mod:`hwgen.outdir`) before any work."""
    from .toolchain.synth import spec_files

    given = args.output
    label = f"-o {shlex.quote(given)}" if given is not None else f"{default} (the default -o)"
    return OutputDir(default if given is None else given, kind=kind, command=args.command,
                     spec=args.spec, force=args.force, label=label,
                     protect=spec_files(network), failed=failed)


def _write_design(network: Network, taps: bool, folder: Path) -> list[Path]:
    """``hwgen generate``'s work: the network's Verilog and plan.json in ``folder``."""
    from amaranth.back import verilog

    from .rtl.network import NetworkTop

    top = NetworkTop(network, taps=taps)
    files = [folder / f"{network.name}.v", folder / "plan.json"]
    files[0].write_text(verilog.convert(top, name=network.name, emit_src=False))
    files[1].write_text(json.dumps(top.plan.to_json(), indent=2) + "\n")
    return files


def cmd_generate(args) -> int:
    network = _load(args.spec)
    out = _output_dir(args, network, kind="generate", default=f"build/{network.name}")
    with out.staged() as tmp:
        try:
            names = [p.name for p in _write_design(network, args.taps, tmp)]
        except OSError as exc:
            raise UsageError(f"cannot write {network.name}'s files in {out.path} "
                             f"({exc.strerror or exc})") from None
        out.commit()
    print(f"wrote {' and '.join(str(out.shown / n) for n in names)}")
    return 0


@dataclass
class SimJob:
    """What ``hwgen sim`` (and ``flow``'s simulation) will run, checked before any work."""

    x: np.ndarray
    labels: np.ndarray | None
    where: str
    work: OutputDir | None


def prepare_sim(network: Network, args) -> SimJob:
    """Every ``sim`` option checked (inputs, labels, --netlist and --bulk, the work folder);
    :class:`UsageError` or :class:`~hwgen.outdir.OutputError` before anything runs."""
    from .toolchain.synth import spec_files

    x, labels, where = sim_inputs(network, args)
    if getattr(args, "netlist", None) and (args.bulk or len(x) > BULK_ABOVE):
        raise UsageError(f"--netlist checks every beat of at most {BULK_ABOVE} inputs "
                         f"(no --bulk); add --count N")
    if args.bulk and args.simulator != "verilator":
        raise UsageError("--bulk runs on verilator only")
    if (getattr(args, "jobs", None) or getattr(args, "ray", None)) and not args.bulk \
            and len(x) <= BULK_ABOVE:
        raise UsageError(f"--jobs and --ray split a bulk check (--bulk, or more than "
                         f"{BULK_ABOVE} inputs)")
    work = None
    if args.work_dir is not None:
        work = OutputDir(args.work_dir, kind="sim", command=args.command, spec=args.spec,
                         force=args.force, label=f"--work-dir {shlex.quote(args.work_dir)}",
                         protect=spec_files(network))
    return SimJob(x, labels, where, work)


def run_sim(network: Network, args, job: SimJob, log=print):
    """Simulate ``job``: in its work folder (put in place afterwards, also when the
    simulation fails, for its logs), else in a new temporary folder."""
    from hwgen_sim.runner import SimError

    if job.work is None:
        return _simulate(network, args, job, Path(tempfile.mkdtemp(prefix="hwgen-sim-")), log)
    with job.work.staged() as tmp:
        try:
            result = _simulate(network, args, job, tmp, log, final=job.work.path)
        except SimError as exc:
            job.work.commit()
            raise SimError(str(exc).replace(str(tmp), str(job.work.path))) from None
        job.work.commit()
    return result


def _bulk_shards(inputs: int, args) -> int:
    """Shards of a bulk check: ``--jobs`` when given, else one per local CPU (with ``--ray``:
    as many as the inputs allow), at least :data:`hwgen_sim.runner.BULK_SHARD_MIN` inputs
    each."""
    from hwgen_sim.runner import BULK_SHARD_MIN, bulk_shards

    from .executor import default_jobs

    jobs, ray = getattr(args, "jobs", None), getattr(args, "ray", None)
    if jobs is not None:
        return min(jobs, inputs)
    return bulk_shards(inputs, inputs // BULK_SHARD_MIN if ray else default_jobs())


def _simulate(network: Network, args, job: SimJob, work: Path, log, final: Path | None = None):
    from hwgen_sim.runner import simulate

    x, labels, where = job.x, job.labels, job.where
    log(f"simulating {len(x)} inference(s) from {where} with {args.simulator} "
        f"(gaps {args.gaps}, backpressure {args.backpressure}, seed {args.seed})")
    bulk = None
    if getattr(args, "netlist", None):
        log(f"the design simulated is Yosys' {args.netlist} gate-level netlist")
    if args.bulk is None and len(x) > BULK_ABOVE and args.simulator == "verilator":
        args.bulk = 8
        log(f"more than {BULK_ABOVE} inputs: checking them all in bulk (--bulk)")
    if args.bulk:
        from hwgen_sim.runner import verify_bulk

        shards = _bulk_shards(len(x), args)
        if shards > 1:
            log(f"bulk: {len(x)} inferences in {shards} shards, each built and simulated "
                + (f"as a Ray task ({args.ray})" if getattr(args, "ray", None) else
                   "by a worker process"))
        bulk = verify_bulk(network, x, work / "bulk", gaps=args.gaps,
                           backpressure=args.backpressure, seed=args.seed, shards=shards,
                           jobs=getattr(args, "jobs", None), ray=getattr(args, "ray", None))
        rate = len(x) / bulk.seconds * 60
        if bulk.ok:
            log(f"bulk: every output and score of {len(x)} inferences matched the golden "
                f"model ({bulk.cycles:,} cycles, {bulk.seconds:.1f} s including the build, "
                f"{rate:,.0f} inferences/min)")
        else:
            bad = bulk.first_mismatch
            log("bulk: FAIL: " + ("the design stopped making progress" if bad is None else
                                  f"MISMATCH layer {bad['layer']}, inference {bad['frame']}, "
                                  f"element {bad['index']}: expected {bad['expected']}, got "
                                  f"{bad['got']}") + f" ({bulk.errors} bad beats)")
        x_all = x
        x = x[:args.bulk]
        log(f"every-beat bench on the first {len(x)} inference(s)")
    result = simulate(network, x, work, simulator=args.simulator, seed=args.seed,
                      gaps=args.gaps, backpressure=args.backpressure, waves=args.waves,
                      netlist=getattr(args, "netlist", None))
    if bulk is not None:
        result.bulk = bulk
        result.predictions = golden.predict(network, x_all)
    bad = result.first_mismatch
    if bad:
        log(f"MISMATCH layer {bad['layer']}, inference {bad['frame']}, element {bad['index']}: "
            f"expected {bad['expected']}, got {bad['got']}")
    elif result.timed_out:
        log("FAIL: the design stopped making progress (no output within the cycle budget)")
    else:
        log(f"bit-exact: every beat of every layer matched the golden model "
            f"({len(x)} inferences)")
    model_latency = result.model_latency_cycles
    if model_latency is None:
        model_latency = "not modelled (sliding windows or branches)"
    log(f"cycles per inference: measured {result.cycles_per_inference}, "
        f"model {result.model_cycles_per_inference}; latency: measured "
        f"{result.latency_cycles}, model {model_latency}"
        + ("" if result.cycles_match else "  <-- DISAGREE"))
    accuracy = None
    if labels is not None and result.ok:
        accuracy = float(np.mean(result.predictions[:len(labels)] == labels))
        log(f"accuracy: {accuracy:.4f} on {len(labels)} labelled inputs "
            f"(RTL = golden model on every inference)")
    log(f"work directory: {final or result.work_dir} ({result.seconds:.1f} s)")
    return result, accuracy


def cmd_sim(args) -> int:
    network = _load(args.spec)
    job = prepare_sim(network, args)
    result, _ = run_sim(network, args, job)
    return 0 if result.ok else 1


def _seeds(args) -> tuple[int, ...]:
    """The nextpnr seeds of ``build``/``flow``: ``--seed S`` alone places once with S,
    ``--seeds N`` with 1 … N, neither with the default three."""
    from .toolchain.synth import DEFAULT_SEEDS

    seed = getattr(args, "pnr_seed", None)
    if seed is not None and args.seeds is not None:
        raise UsageError(f"--seed {seed} places once with seed {seed}, --seeds {args.seeds} "
                         f"with seeds 1 to {args.seeds}; give one of them")
    if seed is not None:
        return (seed,)
    return DEFAULT_SEEDS if args.seeds is None else tuple(range(1, args.seeds + 1))


def _progress(line: str) -> None:
    print(line, flush=True)


def cmd_build(args) -> int:
    from .toolchain.synth import build, check_build

    network = _load(args.spec)
    seeds = _seeds(args)
    out = _output_dir(args, network, kind="build",
                      default=f"build/{network.name}-{args.board}", failed=True)
    if args.fold is None and not _leaves_folding(network):
        check_build(network, args.board, clock_mhz=args.clock_mhz, baud=args.baud,
                    seeds=seeds)
        report = build(network, args.board, out, clock_mhz=args.clock_mhz, baud=args.baud,
                       seeds=seeds, log=_progress)
    else:  # folded, and folded again smaller if the placed design does not fit
        from .fold import build_fold

        _fold_board_first(args.board)
        _, report = build_fold(
            network, args.board, out, fps=None if args.fold in (None, "max") else args.fold,
            fps_clock_mhz=args.clock_mhz if isinstance(args.clock_mhz, float) else None,
            headroom=args.headroom, keep=args.fold is None, log=_progress,
            clock_mhz=args.clock_mhz, baud=args.baud, seeds=seeds)
    _print_report(report, out.shown)
    return 0


def _fold_board_first(board_name: str) -> None:
    from .toolchain.boards import board

    board(board_name)  # an unknown board: its one error line before any work


def cmd_flash(args) -> int:
    """``hwgen flash``: load a bitstream (or the one ``hwgen build`` made for SPEC) onto a board
    with openFPGALoader or iceprog (docs/boards.md, "Flashing")."""
    import time

    from .toolchain import flash

    source = Path(args.source)
    if source.suffix.lower() == ".toml":
        network = _load(args.source)
        build_dir = Path(args.output or f"build/{network.name}-{args.board}")
        flash.flashing(args.board)  # an unknown board before a missing build
        try:
            bitstream = flash.bitstream_from_build(build_dir, args.board, args.source)
        except flash.FlashError as exc:
            raise UsageError(str(exc)) from None
    elif args.output is not None:
        raise UsageError(f"-o/--output names a build folder for a spec; {source} is a "
                         f"bitstream")
    else:
        bitstream = source
    try:
        job = flash.plan(bitstream, args.board, persist=args.persist, tool=args.tool,
                         offset=args.offset, dry_run=args.dry_run)
    except flash.FlashError as exc:
        raise UsageError(str(exc)) from None
    for note in job.notes:
        print(note, file=sys.stderr if args.dry_run else sys.stdout)
    if args.dry_run:
        print(job.command_line)
        return 0
    print(f"loading {bitstream} into {args.board}'s {job.target} with {job.tool}:")
    print(f"  {job.command_line}", flush=True)
    start = time.monotonic()
    output = flash.run(job, timeout=args.timeout)
    if args.verbose:
        print(output, end="" if output.endswith("\n") else "\n")
    print(f"done in {time.monotonic() - start:.1f} s")
    return 0


def _print_report(report: dict, out: Path) -> None:
    """The build report's headline figures, one per line, "used / available" for resources;
    fmax over the seeds, the critical path by component, the clock and how it was chosen,
    inferences/s at the clock and at fmax."""
    from .toolchain.timing import describe_path, describe_seeds

    labels = {"lcs": "logic cells", "lut4": "LUT4s", "ffs": "flip-flops", "bram": "block RAMs",
              "spram": "SPRAMs", "dsp": "DSPs"}
    print(f"  {'board':30s} {report['board']} ({report['device']})")
    for key, label in labels.items():
        value = report.get(key)
        if value is not None and value['available']:
            print(f"  {label:30s} {value['used']} / {value['available']}")
    seeds = report.get("fmax_seeds")
    fmax = f"{report['fmax_mhz']} MHz"
    if seeds and len(seeds["seeds"]) > 1:
        fmax += f" (seed {report['nextpnr_seed']}, shipped); {describe_seeds(seeds)}"
    elif report.get("nextpnr_seed") is not None:
        fmax += f" (seed {report['nextpnr_seed']})"
    print(f"  {'fmax':30s} {fmax}")
    if report.get("critical_path"):
        print(f"  {'critical path':30s} {describe_path(report['critical_path'])}")
    pll = report.get("pll")
    source = ("the oscillator (no PLL)" if not pll or not pll["primitive"] else
              f"the {pll['primitive']} (asked {pll['requested_mhz']}, oscillator "
              f"{pll['oscillator_mhz']})")
    mode = report.get("clock_mode")
    how = {"auto": "auto", "fixed": "--clock-mhz", "oscillator": "--clock-mhz osc"}.get(mode)
    print(f"  {'clock':30s} {report['clock_mhz']} MHz from {source}"
          + (f"; {how}" if how else ""))
    auto = report.get("auto_clock")
    if auto:
        first = auto["first_pass"]
        steps = "; ".join(
            f"asked {r['requested_mhz']} → {r['clock_mhz']} MHz"
            + (f": fmax {r['fmax_mhz']} MHz ({'met' if r['met'] else 'missed'})"
               if "fmax_mhz" in r else " (the oscillator: the first pass ships)")
            for r in auto["rebuilds"])
        print(f"  {'clock auto':30s} first pass at {first['clock_mhz']} MHz: fmax "
              f"{describe_seeds(first['fmax_seeds'])}; margin {auto['margin']:.0%}"
              + (f", oscillator tolerance {auto['oscillator_tolerance']:.0%}"
                 if auto["oscillator_tolerance"] else "") + f"; {steps}")
    print(f"  {'cycles per inference':30s} {report['cycles_per_inference']}")
    if report.get("inferences_per_second_at_clock") is not None:
        print(f"  {'inferences/s at the clock':30s} "
              f"{report['inferences_per_second_at_clock']:,.0f} (at {report['clock_mhz']} MHz)")
    if report.get("inferences_per_second_at_fmax") is not None:
        print(f"  {'inferences/s at fmax':30s} {report['inferences_per_second_at_fmax']:,.0f}")
    if report.get("build_seconds") is not None:
        print(f"  {'build time':30s} {report['build_seconds']} s")
    print(f"report: {out / 'report.json'}")


def _bounded(what: str, lo: float, hi: float, *, integer: bool = False, low_open=False):
    """An argparse type: a number (an integer if ``integer``) in [lo, hi] (above ``lo`` if
    ``low_open``), else "expected <what> …, got '…'"."""
    def shown(v: float) -> str:
        return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"
    span = (f"above {shown(lo)} and at most {shown(hi)}" if low_open else
            f"from {shown(lo)} to {shown(hi)}")
    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = None
        if value is None or not (lo < value if low_open else lo <= value) or not value <= hi:
            raise argparse.ArgumentTypeError(f"expected {what} {span}, got {text!r}")
        return value
    return parse


#: ``--act-calibration``'s choices: :data:`hwgen.quant.CALIBRATIONS` (named here so that the
#: CLI starts without importing it).
ACT_CALIBRATIONS = ("minmax", "percentile", "mse")


def _act_calibration_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--act-calibration", choices=ACT_CALIBRATIONS, default=None,
                   help="how a Relu output's step is chosen on the calibration inputs: the "
                   "largest value (minmax, the default), the 99.99th percentile, or the step "
                   "of least squared rounding and saturation error (mse)")


def _bits_list(text: str) -> tuple[int, ...]:
    """``--weight-bits`` / ``--activation-bits``: comma-separated widths from 1 to 16."""
    parse = _bounded("widths", 1, 16, integer=True)
    try:
        return tuple(sorted({parse(part.strip()) for part in text.split(",")}))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths from 1 to 16, "
                                         f"got {text!r}") from None


def _clock(text: str) -> float | str:
    """``--clock-mhz``: ``auto``, ``osc`` or a frequency in MHz above 0 and at most
    :data:`MAX_CLOCK_MHZ`."""
    if text in ("auto", "osc"):
        return text
    try:
        return _bounded("a frequency in MHz", 0, MAX_CLOCK_MHZ, low_open=True)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto, osc or a frequency in MHz above 0 "
                                         f"and at most {MAX_CLOCK_MHZ:,.0f}, got "
                                         f"{text!r}") from None


def _add_clock_options(p) -> None:
    from .toolchain.synth import MAX_SEEDS

    p.add_argument("--clock-mhz", type=_clock, metavar="MHZ|auto|osc",
                   help="auto (default): build at the oscillator, then from the PLL at the "
                   "highest frequency under the measured fmax with a margin (rebuilt and "
                   "checked); MHZ: from the PLL at the highest frequency it makes not above "
                   "MHZ; osc: the board's oscillator, no PLL")
    p.add_argument("--seeds", type=_bounded("a number of nextpnr seeds", 1, MAX_SEEDS,
                                            integer=True), metavar="N",
                   help="place and route with nextpnr seeds 1 to N, in parallel up to the CPU "
                   "count, and ship the best (default 3; fmax moves by a few percent from "
                   "seed to seed)")
    p.add_argument("--baud", type=_BAUD, default=None, metavar="N",
                   help="UART bit rate of the board top (default: the board's link rate; see "
                   "hwgen boards)")


def _folded_for_build(network: Network, args) -> tuple[Network, dict]:
    """The network ``build``/``flow`` build: folded for the board with ``--fold``, or only
    its ``"auto"`` fields when the spec has some (the fold's table printed, its choice
    recorded in report.json under ``fold``); else as written."""
    if args.fold is None and not _leaves_folding(network):
        return network, {}
    fps = None if args.fold in (None, "max") else args.fold
    clock = args.clock_mhz if isinstance(args.clock_mhz, float) else None
    result = _fold(network, args.board, fps, clock, args.headroom, keep=args.fold is None)
    print()
    return result.network, {"fold": result.to_json()}


def _leaves_folding(network: Network) -> bool:
    return any(layer.leaves_folding() for layer in network.layers)


def _fold_value(text: str) -> str | float:
    """``--fold``'s value: ``max`` or a frame rate."""
    if text == "max":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected max or inferences per second above 0, "
                                         f"got {text!r}")
    return value


def _sweep_folds(text: str) -> list[str | float]:
    """``--fold`` of a sweep: hand, max or frame rates, comma-separated."""
    folds: list[str | float] = []
    for item in text.split(","):
        folds.append(item if item == "hand" else _fold_value(item))
    return folds


def _sweep_seeds(text: str) -> list[int]:
    """``--seeds`` of a sweep: nextpnr seeds, comma-separated."""
    return [_PNR_SEED(item) for item in text.split(",")]


def _add_fold_options(p, build: bool) -> None:
    if build:
        p.add_argument("--fold", type=_fold_value, metavar="max|FPS",
                       help="fold the network for the board first (hwgen fold): max, the "
                       "fastest that fits; FPS, the least resources for that many "
                       "inferences/s at --clock-mhz (default the oscillator)")
    p.add_argument("--headroom", type=_bounded("a fraction", 0, 1, low_open=True),
                   default=0.9, metavar="H", help="fill at most H of the device's logic and "
                   "flip-flops (default 0.9; the logic model's error and room to place)")


def cmd_flow(args) -> int:
    from .toolchain.synth import build, check_build
    from .toolchain.tools import ToolError

    network = _load(args.spec)
    seeds = _seeds(args)
    out = _output_dir(args, network, kind="build",
                      default=f"build/{network.name}-{args.board}", failed=True)
    network, extra = _folded_for_build(network, args)
    check_build(network, args.board, clock_mhz=args.clock_mhz, baud=args.baud, seeds=seeds)
    job = prepare_sim(network, args)
    if job.work is not None:
        for folder in (out.path, out.failed.path):
            w = job.work.path
            if w == folder or folder in w.parents or w in folder.parents:
                raise UsageError(f"--work-dir {args.work_dir} and {out.label} overlap; give "
                                 f"the simulation a folder of its own")
    print(format_table(plan(network)))
    print()
    result, accuracy = run_sim(network, args, job)
    if not result.ok:
        print("flow stopped: simulation did not match", file=sys.stderr)
        return 1
    simulation = {"inferences": result.frames, "bit_exact": True, "accuracy": accuracy,
                  "cycles_per_inference": result.cycles_per_inference,
                  "latency_cycles": result.latency_cycles}
    limit = None
    if extra:  # folded: stop after synthesis beyond the routable logic, as build --fold does
        from .fold import routable_logic
        from .toolchain.boards import board

        limit = routable_logic(board(args.board))
    try:
        report = build(network, args.board, out, clock_mhz=args.clock_mhz, baud=args.baud,
                       seeds=seeds, log=_progress, logic_limit=limit,
                       report_extra={**extra, "simulation": simulation})
    except ToolError as exc:
        from .fold import refold_scale, refolded_headroom

        overflow = refold_scale(str(exc), extra["fold"]["available"]["logic"]) if extra \
            else None
        if overflow is None:
            raise
        lower = refolded_headroom(args.headroom, overflow[0])
        raise ToolError(f"{exc}\nthe folded design was too large for the board or the tools; "
                        f"fold it smaller with --headroom {lower:.2f} (hwgen build --fold "
                        f"folds again by itself)") from None
    print()
    print(f"flow summary for {network.name} on {args.board}:")
    print(f"  simulated {result.frames} inferences bit-exact"
          + (f", accuracy {accuracy:.4f} (golden model: the same)" if accuracy is not None
             else ""))
    _print_report(report, out.shown)
    return 0


def cmd_run(args) -> int:
    """``hwgen run``: stream inputs to a board over its UART (docs/boards.md, "Running on the
    board"). Link failures print one line and exit 1; golden-model mismatches exit 1."""

    from . import runtime
    from .spec import Argmax
    from .toolchain.boards import board as find_board

    network = _load(args.spec)
    known = find_board(args.board) if args.board is not None else None
    baud = args.baud if args.baud is not None else (known.baud if known is not None else
                                                    runtime.DEFAULT_BAUD)
    if not isinstance(network.layers[-1], Argmax):
        raise UsageError(f"network {network.name!r} does not end in argmax; a board cannot "
                         f"run it")
    x, labels, where = sim_inputs(network, args)  # labels: 1-D integers, one per input
    json_out = (None if args.json is None else
                check_output_file(args.json, "--json", _is_run_result))
    frame = runtime.infer_frame_bytes(network)
    if args.dry_run:
        seconds = len(x) * frame * 10 / baud
        print(f"would send {len(x)} INFER frame(s) of {frame} bytes from {where} to "
              f"{args.port} at {baud} baud (at least {seconds:.2f} s on the line), after "
              f"INFO and, if the board asks for them, the SPRAM weights")
        return 0
    each = args.verbose or len(x) <= 20
    report = runtime.RunReport()
    bar = None

    def show(i: int, r, seconds: float, mismatch: bool) -> None:
        if each:
            label = f"  label {labels[i]}" if labels is not None else ""
            scores = f"  scores {list(r.scores)}" if len(r.scores) <= 16 else ""
            print(f"#{i}  class {r.predicted}{label}{scores}  {seconds * 1e3:.2f} ms  "
                  f"{r.cycles_last} cycles" + ("  MISMATCH" if mismatch else ""))
        elif bar is not None:
            bar.update(i + 1)

    try:
        with runtime.Board(args.port, baud=baud, timeout=args.timeout,
                           network=network) as b:
            info = b.check_network()
            print(f"{args.port}: {network.name} (network 0x{info.network_id:08x}), "
                  f"{info.clock_hz / 1e6:g} MHz, {info.baud} baud")
            if known is not None and not _board_makes(known, info.clock_hz):
                print(f"note: the board reports a {info.clock_hz / 1e6:g} MHz clock, which "
                      f"neither {known.name}'s {known.clock_mhz:g} MHz oscillator nor its PLL "
                      f"makes")
            if not info.weights_loaded:
                print(f"loading {info.weight_bytes:,} bytes of SPRAM weights")
                bar = runtime.ProgressBar(info.weight_bytes)
                b.load_weights(progress=bar.update)
                bar.close()
            bar = None if each else runtime.ProgressBar(len(x))
            runtime.run_inferences(b, x, check=args.check, on_result=show, report=report)
    except runtime.LinkError as exc:
        if bar is not None:
            bar.close()
        done = len(report.results)
        after = f" (after {done} inference(s))" if done else ""
        print(f"hwgen: error: {exc}{after}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()

    summary = report.summary(labels, info.clock_hz)
    ms = summary["latency_ms"]
    print(f"{summary['count']} inference(s) from {where}")
    if summary["accuracy"] is not None:
        print(f"accuracy: {summary['accuracy']:.4f} ({summary['correct']}/{len(labels)})")
    print(f"host latency per inference: mean {ms['mean']:.2f} ms, p50 {ms['p50']:.2f} ms, "
          f"max {ms['max']:.2f} ms")
    link, own = summary["link"], summary["network_inferences_per_second"]
    print(f"throughput: {summary['inferences_per_second']:,.1f} inferences/s over the link"
          + (f" (the line carries {link['line_inferences_per_second']:,.1f}/s at "
             f"{link['baud']:,} baud)" if link is not None else ""))
    if own is not None:
        print(f"the network alone: {own:,.1f} inferences/s at {info.clock_hz / 1e6:g} MHz")
    cycles = summary["cycles_last_mean"]
    print(f"board cycles from the last input byte to the class: mean {cycles:,.1f} "
          f"({cycles / info.clock_hz * 1e6:,.1f} µs at {info.clock_hz / 1e6:g} MHz)")
    if args.check:
        if report.mismatches:
            print(f"check: MISMATCH in {len(report.mismatches)} of {summary['count']} "
                  f"inference(s); the first:")
            for bad in report.mismatches[:5]:
                print(f"  #{bad.index}: board class {bad.result.predicted} scores "
                      f"{list(bad.result.scores)}; golden class {bad.golden_class} scores "
                      f"{list(bad.golden_scores)}")
        else:
            print(f"check: every class and score matched the golden model "
                  f"({summary['count']} inferences)")
    if args.json:
        del summary["correct"]
        doc = {
            "network": network.name, "network_id": info.network_id, "port": args.port,
            "board": args.board, "baud": baud, "inputs": where, **summary,
            "results": [{"predicted": r.predicted, "scores": list(r.scores),
                         "cycles_first": r.cycles_first, "cycles_last": r.cycles_last,
                         "latency_ms": seconds * 1e3}
                        | ({"label": int(labels[i])} if labels is not None else {})
                        for i, (r, seconds) in enumerate(zip(report.results, report.seconds,
                                                             strict=True))],
        }
        write_file(json_out, json.dumps(doc, indent=2) + "\n")
        print(f"results: {json_out}")
    return 1 if report.mismatches else 0


def _board_makes(known, clock_hz: int) -> bool:
    """Whether ``known`` (a board) runs at ``clock_hz`` (as INFO reports it, rounded to the
    hertz): its oscillator, or a clock its PLL makes from it (``--clock-mhz auto`` or MHZ)."""
    from .rtl.clock import clock_config

    try:
        config = clock_config(known.family, known.clk_hz, clock_hz + 1)
    except ValueError:
        return False
    made = known.clk_hz if config is None else config.out_hz
    return abs(made - clock_hz) <= 1


def _is_run_result(path: Path) -> bool:
    """Whether ``path`` holds a ``hwgen run --json`` summary (which a new one may replace)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and {"network", "port", "count", "results"} <= set(doc)


FORCE_HELP = ("also replace hwgen's output of another command or spec (never a folder holding "
              "files hwgen did not write)")


def _add_sim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", metavar="X.npy", help="input values (N × input shape); default: "
                   "the spec's [dataset] test split, else random inputs")
    p.add_argument("--labels", metavar="Y.npy", help="labels for --inputs (prints accuracy)")
    p.add_argument("--count", type=_positive, metavar="N", help="simulate only the first N")
    p.add_argument("--random", type=_positive, metavar="N",
                   help="simulate N random inputs instead of the test split")
    p.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")
    p.add_argument("--seed", type=_SEED, default=0,
                   help=f"seed of gaps, backpressure, inputs (0 to {MAX_SEED})")
    p.add_argument("--gaps", type=_rate, default=0.25,
                   help="probability of an idle input cycle (default 0.25)")
    p.add_argument("--backpressure", type=_rate, default=0.25,
                   help="probability of output not ready in a cycle (default 0.25)")
    p.add_argument("--waves", action="store_true", help="record waveforms in the work dir")
    p.add_argument("--bulk", type=_positive, metavar="N", nargs="?", const=8,
                   help="for large test splits: check every inference's output and scores "
                   "inside the simulated design (Verilator, no Python per clock edge) and run "
                   "the every-layer, every-beat bench and the cycle check on the first N "
                   "inputs only (default 8); on by default above 500 inputs")
    p.add_argument("--jobs", type=_WORKERS, metavar="N",
                   help="--bulk: split the inputs over N local worker processes, each with a "
                   "Verilator build of its own (default: the CPUs, at most one per "
                   "2,000 inputs)")
    p.add_argument("--ray", metavar="local|auto|ADDRESS", help="--bulk: run the shards as "
                   "Ray tasks (local, auto or a cluster address; --jobs shards, by default "
                   "one per 2,000 inputs); needs pip install 'hwgen[scale]'")
    p.add_argument("--work-dir", metavar="DIR", help="keep sources, logs and results here "
                   "(a new or empty folder, or hwgen's earlier --work-dir of this spec)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


_SEED = _bounded("a seed", 0, MAX_SEED, integer=True)
_WORKERS = _bounded("a number of workers", 1, 1024, integer=True)
#: ``hwgen build --seed``: nextpnr's seed, a positive 32-bit signed integer.
MAX_PNR_SEED = 2**31 - 1  # = hwgen.toolchain.synth.MAX_PNR_SEED (not imported at start-up)
_PNR_SEED = _bounded("a nextpnr seed", 1, MAX_PNR_SEED, integer=True)
_BAUD = _bounded("a bit rate", 1, MAX_BAUD, integer=True)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    from .toolchain.boards import BOARDS

    ap = argparse.ArgumentParser(
        prog="hwgen", description="Quantized neural networks to bit-exact iCE40/ECP5 hardware.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("boards", help="list the supported boards",
                       description="The boards hwgen builds for: FPGA, logic cells or LUT4s, "
                       "block RAMs, SPRAMs, DSPs, the oscillator, the link's default baud rate "
                       "and where the UART is.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_boards)

    p = sub.add_parser("check", help="validate a spec and print its per-layer table",
                       description="Validate SPEC and print each layer's shapes, bit widths, "
                       "MACs, weight memory, folding and cycles.")
    p.add_argument("spec", metavar="SPEC", help="network TOML file (its NPZ beside it)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--board", metavar="BOARD", help="map mac = \"auto\" layers as a build for "
                   "BOARD would (its DSPs), refuse what it would refuse, and print the block "
                   "RAMs, SPRAMs and DSPs each layer takes there, as Yosys will map them, "
                   "against the device (exit 2 when they do not fit)")
    p.add_argument("--plot", metavar="FILE.png", help="with --board: draw each layer's cycles "
                   "(the bottleneck marked) and its share of the device's logic, flip-flops, "
                   "block RAMs, SPRAMs and DSPs (needs matplotlib: hwgen[plot])")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("fold", help="choose the folding that fits a board",
                       description="Choose each layer's PE, SIMD, mac mapping and weight "
                       "memory for BOARD: the most inferences per second that fit (default), "
                       "or the least resources for --fps. Each way of building each layer is "
                       "priced (block RAMs, SPRAMs and DSPs exactly, logic by the fitted "
                       "model, width converters between layers included) and an integer "
                       "program picks one per layer (docs/fold.md). Prints one table: "
                       "folding, cycles, the bottleneck, resources against the device and "
                       "the resource that stops a faster fold; exit 2 when nothing fits.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--board", required=True, metavar="BOARD")
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--max", action="store_true", help="the fastest folding that fits "
                      "(the default)")
    goal.add_argument("--fps", type=_bounded("inferences per second", 0, 1e12, low_open=True),
                      metavar="F", help="the least resources for F inferences per second")
    p.add_argument("--clock-mhz", type=_bounded("a frequency in MHz", 0, 1000, low_open=True),
                   metavar="C", help="the clock --fps counts at and the table reports "
                   "(default the board's oscillator)")
    _add_fold_options(p, build=False)
    p.add_argument("-o", "--output", metavar="FOLDED.toml", help="write the folded spec "
                   "(and its NPZ beside it; replaces only files hwgen fold wrote)")
    p.add_argument("--json", action="store_true", help="print the choice as JSON instead of "
                   "the table")
    p.set_defaults(func=cmd_fold)

    p = sub.add_parser("sweep", help="many builds of one spec, one table, a Pareto plot",
                       description="Build SPEC for every board × folding × nextpnr seed "
                       "(each at the board's oscillator, one seed), on a local process pool "
                       "or a Ray cluster, and write sweep.json, sweep.csv and pareto.png "
                       "(inferences/s at fmax against logic; needs matplotlib) in the "
                       "output folder (docs/sweep.md).")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--board", required=True, action="append", metavar="BOARD",
                   help="a board (repeat for several)")
    p.add_argument("--fold", type=_sweep_folds, default=["hand", "max"], metavar="LIST",
                   help="comma-separated foldings: hand (as written), max, or inferences/s "
                   "(default hand,max)")
    p.add_argument("--seeds", type=_sweep_seeds, default=[1], metavar="LIST",
                   help="comma-separated nextpnr seeds (default 1)")
    p.add_argument("--jobs", type=_WORKERS, metavar="N",
                   help="local worker processes (default: the CPUs)")
    p.add_argument("--ray", metavar="local|auto|ADDRESS", help="run the builds as Ray tasks: "
                   "local (a new cluster on this machine), auto (the cluster this machine "
                   "belongs to) or a cluster address; needs pip install 'hwgen[scale]'")
    p.add_argument("-o", "--output", metavar="DIR", help="default build/<network>-sweep")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("import", help="read a QONNX/ONNX model into a spec",
                       description="Read a trained QONNX/ONNX model (Brevitas, FINN, hls4ml "
                       "exports) into an hwgen spec, exact in integers (docs/import.md), print "
                       "its table, optionally check it against QONNX's executor, and write "
                       "SPEC.toml + SPEC.npz. Every command that takes a SPEC also takes the "
                       ".onnx file directly.")
    p.add_argument("model", metavar="MODEL", help="the .onnx file")
    p.add_argument("-o", "--output", metavar="SPEC.toml", help="default MODEL with .toml; the "
                   "NPZ goes beside it (replaces only files an import wrote)")
    p.add_argument("--input-bits", type=_bounded("bits", 1, 8, integer=True), metavar="N",
                   help="the input's integer bits, for a model whose input has no quantizer")
    p.add_argument("--input-signed", action="store_true", help="with --input-bits: signed")
    p.add_argument("--input-scale", type=_bounded("a scale", 0, 1e30, low_open=True),
                   default=1.0, metavar="S", help="with --input-bits: the model's input is "
                   "S × the integer (default 1)")
    p.add_argument("--verify", type=_positive, metavar="N", help="run N inputs through QONNX's "
                   "executor and hwgen's golden model and require equal classes and integer "
                   "outputs (inputs: --inputs, else the model's test split, else random)")
    p.add_argument("--inputs", metavar="X.npy", help="input values for --verify")
    p.add_argument("--seed", type=_SEED, default=0, help="seed of --verify's random inputs")
    bits = _bounded("bits", 1, 16, integer=True)
    p.add_argument("--bits", type=bits, metavar="W", help="a float model (no Quant nodes): "
                   "quantize it after training, weights to W bits per channel (with "
                   "--calibration; docs/import.md)")
    p.add_argument("--act-bits", type=_bounded("bits", 1, 8, integer=True), metavar="A",
                   help="with --bits: the Relu outputs' bits (default W, at most 8)")
    p.add_argument("--classifier-bits", type=bits, metavar="C",
                   help="with --bits: the last layer's weight bits (default 8)")
    p.add_argument("--calibration", metavar="X.npy", help="with --bits: float inputs of the "
                   "model (N × its input shape) to calibrate the activations on")
    p.add_argument("--labels", metavar="Y.npy", help="labels of --calibration: print the float "
                   "and the integer accuracy")
    _act_calibration_argument(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("allocate", help="choose per-layer widths of a float model",
                       description="Choose each layer's weight and activation widths of a "
                       "float ONNX model against weight and activation memory budgets (and a "
                       "board), from the calibration loss each width adds "
                       "(docs/allocation.md); print the choice, fold it for the board and "
                       "write SPEC.toml + SPEC.npz. Given an hwgen spec or a QONNX model "
                       "trained with its quantizers, choose narrower widths of its weights, "
                       "measured against its own outputs.")
    p.add_argument("model", metavar="MODEL", help="a float .onnx model (no quantizer), a "
                   "QONNX .onnx model, or an hwgen .toml spec")
    p.add_argument("--calibration", metavar="X.npy", help="inputs of the model (N × its "
                   "input shape; floats for an .onnx model, integer codes for a spec): the "
                   "sensitivities are measured on them. Needed for a float model; a spec or "
                   f"a QONNX model defaults to the first {SPEC_CALIBRATION} inputs of its "
                   f"test split (with its labels), else {SPEC_RANDOM_CALIBRATION} random "
                   "inputs")
    p.add_argument("--labels", metavar="Y.npy", help="labels of --calibration (default: the "
                   "float model's, or the spec's, own classes)")
    p.add_argument("--board", help="fold the choice for this board; its block RAM and SPRAM "
                   "are the weight budget unless --weight-kb says otherwise")
    p.add_argument("--fps", type=_bounded("a frame rate", 0, 1e12, low_open=True),
                   metavar="F", help="with --board: fold for F inferences/s (default: the "
                   "most)")
    p.add_argument("--clock-mhz", type=_bounded("a clock", 0, 1000, low_open=True),
                   metavar="C", help="with --fps: the clock (default: the oscillator)")
    p.add_argument("--weight-kb", type=_bounded("a budget", 0, 1e9, low_open=True),
                   metavar="W", help="weight memory budget in KiB")
    p.add_argument("--activation-kb", type=_bounded("a budget", 0, 1e9, low_open=True),
                   metavar="A", help="budget in KiB of the largest working set (a layer's "
                   "input and output activations)")
    p.add_argument("--weight-bits", type=_bits_list, metavar="B,B,...", help="the weight "
                   "widths to choose from (default 1,2,3,4,5,6,8,16; e.g. 1,16 for Lattice's "
                   "16-bit/1-bit mixes)")
    p.add_argument("--activation-bits", type=_bits_list, metavar="B,B,...", help="the "
                   "activation widths to choose from (default 2,3,4,5,6,8)")
    _act_calibration_argument(p)
    p.add_argument("--method", choices=["ilp", "qbr", "search"], default="ilp",
                   help="ilp: least total sensitivity (integer program); qbr: the QBR rule; "
                   "search: the highest QE-Score by an evolutionary search, no sensitivity "
                   "measured (default ilp)")
    p.add_argument("--pareto", metavar="FILE", help="also the accuracy-against-weight-memory "
                   "front over 8 budgets and the uniform widths, as .json or .png")
    p.add_argument("-o", "--output", metavar="SPEC.toml", help="default MODEL_allocated.toml "
                   "(replaces only files hwgen allocate wrote)")
    p.set_defaults(func=cmd_allocate)

    p = sub.add_parser("generate", help="write the network's Verilog",
                       description="Elaborate SPEC into Verilog (module named after the "
                       "network) and write it with plan.json.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", metavar="DIR", help="default build/<network> (a new or "
                   "empty folder, or hwgen's earlier output of this spec: docs/boards.md, "
                   "\"Output folders\")")
    p.add_argument("--taps", action="store_true",
                   help="add tap_<layer>_fire/_payload ports on every layer's output")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("sim", help="prove the RTL bit-exact against the golden model",
                       description="Simulate SPEC's RTL in cocotb and compare every layer's "
                       "every output with the golden model under random input gaps and "
                       "output backpressure; compare cycles with the cost model. Exits 1 on "
                       "any mismatch and prints the first.")
    p.add_argument("spec", metavar="SPEC")
    _add_sim_options(p)
    p.add_argument("--netlist", choices=["ice40"], help="simulate Yosys' iCE40 UP5K gate-level "
                   "netlist (LUTs, carries, block RAMs, SB_MAC16 DSPs from Yosys' cell models; "
                   "mac = \"auto\" layers on its 8 DSPs) instead of the RTL")
    p.set_defaults(func=cmd_sim)

    boards = ", ".join(sorted(BOARDS))
    p = sub.add_parser("build", help="synthesize a bitstream and report.json",
                       description="Synthesize SPEC for a board with Yosys and nextpnr.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--board", required=True, metavar="BOARD", help=f"one of: {boards}")
    p.add_argument("-o", "--output", metavar="DIR", help="default build/<network>-<board>")
    _add_clock_options(p)
    _add_fold_options(p, build=True)
    p.add_argument("--seed", type=_PNR_SEED, metavar="S", dest="pnr_seed",
                   help=f"place once, with nextpnr seed S (1 to {MAX_PNR_SEED}), instead of "
                   f"--seeds: reproduces a report's nextpnr_seed")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=cmd_build)

    from .toolchain.flash import DEFAULT_TIMEOUT, parse_offset

    p = sub.add_parser("flash", help="load a bitstream onto a board",
                       description="Load a bitstream into a board's SRAM (gone at power-off) "
                       "or, with --persist, its SPI flash, with openFPGALoader (installed "
                       "with hwgen) or iceprog (when installed). Given a spec, flash the "
                       "bitstream hwgen build left in the build folder; it does not build. "
                       "No board, no libusb or no permission on the USB device: one line "
                       "and exit 1.")
    p.add_argument("source", metavar="SPEC_OR_BITSTREAM",
                   help="a .bin (iCE40) or .bit (ECP5) bitstream, or a network TOML file")
    p.add_argument("--board", required=True, metavar="BOARD", help=f"one of: {boards}")
    p.add_argument("--persist", action="store_true",
                   help="write the SPI flash (kept at power-off) instead of loading SRAM")
    p.add_argument("--tool", choices=["auto", "openfpgaloader", "iceprog"], default="auto",
                   help="default: openFPGALoader, or iceprog for an iCE40 board when ICEPROG "
                   "names one")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="build folder of a spec (default build/<network>-<board>)")
    p.add_argument("--offset", type=parse_offset, default=0, metavar="BYTES",
                   help="flash address to write at, with --persist (e.g. 0x100000 or 1M)")
    p.add_argument("--timeout", type=_bounded("a number of seconds", 1, TIMEOUT_RANGE[1],
                                               integer=True),
                   default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"stop the tool after S seconds (default {DEFAULT_TIMEOUT})")
    p.add_argument("-v", "--verbose", action="store_true", help="print the tool's output")
    p.add_argument("--dry-run", action="store_true",
                   help="print the command (shell-quoted) and run nothing")
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("flow", help="check, generate, sim and build in one go",
                       description="check → generate → sim (the spec's test split) → build; "
                       "prints a summary. Stops at the first failing step.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--board", required=True, metavar="BOARD", help=f"one of: {boards}")
    p.add_argument("-o", "--output", metavar="DIR", help="default build/<network>-<board>")
    _add_sim_options(p)
    _add_clock_options(p)
    _add_fold_options(p, build=True)
    p.set_defaults(func=cmd_flow)

    p = sub.add_parser("run", help="run inferences on a board over its UART",
                       description="Stream inputs to a board programmed by hwgen build (the "
                       "framed UART protocol, docs/protocol.md): check that the board runs "
                       "SPEC, load SPRAM weights if it asks for them, print each prediction "
                       "(or a progress bar above 20 inputs), then accuracy, latency, "
                       "inferences/s over the link beside the network's own rate, and board "
                       "cycles. Exits 1 when the link fails or --check "
                       "finds a mismatch.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--port", required=True, metavar="PORT",
                   help="serial device, e.g. /dev/ttyUSB1 (iCEBreaker: the second FTDI "
                   "interface) or COM4")
    p.add_argument("--board", metavar="BOARD", help=f"one of: {boards}; optional: gives the "
                   "default --baud and checks the clock the board reports")
    p.add_argument("--baud", type=_BAUD, default=None, metavar="N",
                   help="the board's UART rate (default: --board's link rate, else 115200)")
    p.add_argument("--inputs", metavar="X.npy", help="input values (N × input shape); "
                   "default: the spec's [dataset] test split, else random inputs")
    p.add_argument("--labels", metavar="Y.npy", help="labels for --inputs (prints accuracy)")
    p.add_argument("--count", type=_positive, metavar="N", help="run only the first N")
    p.add_argument("--random", type=_positive, metavar="N",
                   help="run N random inputs instead of the test split")
    p.add_argument("--seed", type=_SEED, default=0,
                   help=f"seed of --random inputs (0 to {MAX_SEED})")
    p.add_argument("--check", action="store_true", help="compare every class and score with "
                   "the golden model; exit 1 on any mismatch")
    p.add_argument("--timeout", type=_bounded("a number of seconds", *TIMEOUT_RANGE),
                   metavar="S", help="seconds to wait for each response, 0.001 to 86400 "
                   "(default: from the frame size, baud rate and network)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every inference, however many")
    p.add_argument("--json", metavar="OUT", help="write the summary and every result here")
    p.add_argument("--dry-run", action="store_true",
                   help="load the spec and inputs, say what would be sent, open no port")
    p.set_defaults(func=cmd_run)
    return ap




def main(argv: list[str] | None = None) -> int:
    """``hwgen ARGV``: the exit code. Bad input is one ``hwgen: error:`` line and exit 2, a
    failing tool or simulation exit 1; anything else is a bug in hwgen, reported as an
    internal error with exit 3 (``HWGEN_TRACEBACK=1`` shows its traceback)."""
    from hwgen_sim.runner import SimError

    from .toolchain.boards import BoardError
    from .toolchain.tools import ToolError

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, UsageError, BoardError, OutputError) as exc:
        print(f"hwgen: error: {exc}", file=sys.stderr)
        return 2
    except (ToolError, SimError) as exc:
        print(f"hwgen: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (hwgen boards | head): stop quietly
        sys.stderr.close()
        return 141
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("HWGEN_TRACEBACK") == "1":
            raise
        message = " ".join(str(exc).split())
        print(f"hwgen: error: internal error: {type(exc).__name__}: {message} (please report "
              f"this; HWGEN_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
