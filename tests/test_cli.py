"""The ``hwgen`` command: each subcommand's output, exit codes and one-line errors."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hwgen_sim.runner as runner
from hwgen import spec
from hwgen.cli import main
from hwgen.spec import Input
from tests.helpers import chain, error_line, save_mini_spec


@pytest.fixture
def mini_spec(tmp_path) -> Path:
    return save_mini_spec(tmp_path)




def test_check_prints_every_layer_and_totals(mini_spec, capsys):
    assert main(["check", str(mini_spec)]) == 0
    out = capsys.readouterr().out
    from hwgen.plan import plan

    p = plan(spec.load(mini_spec))
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():  # the layer table comes first, the memory report after it
        if line.strip():
            rows.setdefault(line.split()[0], line.split())
    for lp in p.layers:  # each layer's row: its kind, and its output type as the plan has it
        assert rows[lp.name][1] == lp.kind
        assert lp.out_type.describe() in rows[lp.name]
    assert rows["fc1"][rows["fc1"].index("W16A1") + 3].startswith("s")  # raw signed scores
    assert f"cycles per inference {p.cycles_per_inference} " in out


def test_check_json_has_the_documented_keys(mini_spec, capsys):
    assert main(["check", str(mini_spec), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"network", "input", "layers", "totals"}
    assert [layer["name"] for layer in doc["layers"]] == ["fc0", "fc1", "argmax"]
    assert doc["totals"]["cycles_per_inference"] == (8 // 2) * (16 // 4)  # fc0: NF·SF
    assert doc["totals"]["macs"] == 16 * 8 + 8 * 4


def test_bad_spec_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[input\n")
    assert main(["check", str(bad)]) == 2
    err = error_line(capsys)
    assert str(bad) in err and "invalid TOML" in err


def test_missing_spec_file(tmp_path, capsys):
    assert main(["check", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: file not found" in error_line(capsys)


def test_generate_writes_verilog_and_plan(mini_spec, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", str(mini_spec), "-o", str(out)]) == 0
    verilog = (out / "mini.v").read_text()
    assert "module mini(" in verilog and "i_stream__payload" in verilog
    assert json.loads((out / "plan.json").read_text())["network"] == "mini"


def test_generate_on_a_bad_spec_leaves_no_output(mini_spec, tmp_path, capsys):
    npz = mini_spec.with_suffix(".npz")
    arrays = dict(np.load(npz))
    arrays["fc0.weights"][0, 0] = 0
    np.savez(npz, **arrays)
    out = tmp_path / "gen"
    assert main(["generate", str(mini_spec), "-o", str(out)]) == 2
    err = error_line(capsys)
    assert "mini.npz: fc0.weights: 1-bit weights must be -1 or +1, found 0 at (0, 0)" in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_unknown_board(mini_spec, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["build", str(mini_spec), "--board", "de10-nano", "-o", str(out)]) == 2
    err = error_line(capsys)
    assert "unknown board 'de10-nano'" in err and "icebreaker" in err
    assert not out.exists()


def test_missing_tool_names_the_variable(mini_spec, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("YOSYS", "/nonexistent/yosys")
    out = tmp_path / "b"
    assert main(["build", str(mini_spec), "--board", "icebreaker", "-o", str(out)]) == 1
    err = error_line(capsys)
    assert "YOSYS='/nonexistent/yosys': no such program" in err
    assert not out.exists()


def test_sim_inputs_file_missing(mini_spec, tmp_path, capsys):
    assert main(["sim", str(mini_spec), "--inputs", str(tmp_path / "x.npy")]) == 2
    assert "--inputs" in error_line(capsys)


def test_sim_inputs_out_of_range(mini_spec, tmp_path, capsys):
    x = np.full((2, 16), 300)
    np.save(tmp_path / "x.npy", x)
    assert main(["sim", str(mini_spec), "--inputs", str(tmp_path / "x.npy")]) == 2
    err = error_line(capsys)
    assert "x.npy" in err and "300" in err


@pytest.mark.parametrize("command", ["check", "fold", "generate", "sim", "build", "flow"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: hwgen " + command in capsys.readouterr().out


@pytest.mark.cocotb
def test_sim_default_split_is_bit_exact(mini_spec, tmp_path, capsys):
    assert main(["sim", str(mini_spec), "--work-dir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "bit-exact" in out and "accuracy" in out


@pytest.mark.cocotb
def test_sim_bulk_checks_the_split_inside_the_simulator(mini_spec, tmp_path, capsys):
    assert main(["sim", str(mini_spec), "--bulk", "2", "--jobs", "2",
                 "--work-dir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "in 2 shards, each built and simulated by a worker process" in out
    assert "bulk: every output and score of" in out
    assert "every-beat bench on the first 2 inference(s)" in out and "accuracy" in out


def test_sim_jobs_split_only_a_bulk_check(mini_spec, tmp_path, capsys):
    assert main(["sim", str(mini_spec), "--count", "3", "--jobs", "2",
                 "--work-dir", str(tmp_path / "w")]) == 2
    assert "--jobs and --ray split a bulk check (--bulk, or more than 500 inputs)" in \
        capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_sim_bulk_needs_verilator(mini_spec, tmp_path, capsys):
    assert main(["sim", str(mini_spec), "--bulk", "--simulator", "icarus",
                 "--work-dir", str(tmp_path / "w")]) == 2
    assert "--bulk runs on verilator only" in capsys.readouterr().err


@pytest.mark.cocotb
def test_sim_mismatch_exits_1_and_names_the_first(mini_spec, tmp_path, capsys, monkeypatch):
    from tests.sim.test_runner import _mutated

    real_write = runner.write_verilog
    monkeypatch.setattr(runner, "write_verilog",
                        lambda network, path, net_plan: real_write(_mutated(network, "fc1"), path))
    assert main(["sim", str(mini_spec), "--random", "4", "--work-dir",
                 str(tmp_path / "w")]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH layer fc1, inference" in out and "expected" in out and "got" in out


def test_console_script_reports_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[input]\nshape = [4]\nbits = 8\n[[layers]]\n"
                   "name = 'c'\nkind = 'conv9'\n")
    script = Path(sys.executable).with_name("hwgen")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "hwgen.cli"]
    proc = subprocess.run([*cmd, "check", str(bad)], capture_output=True, text=True,
                          env=dict(os.environ))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"hwgen: error: {bad}: layers[0].kind: unknown layer kind "
                                   f"'conv9' (expected one of: add, argmax, channel_shuffle, "
                                   f"channel_split, concat, conv2d, dense, depthwise_conv2d, "
                                   f"flatten, global_sum_pool, maxpool)")


@pytest.fixture
def mixed_spec(tmp_path) -> Path:
    """u4 input; W4 products with mac = "auto", requantized to u4; a W8 classifier that asks
    for DSPs; argmax."""
    rng = np.random.default_rng(8)
    net, _ = chain(rng, Input((8,), 4, lanes=2), [
        dict(out=4, weight_bits=4, out_bits="u4", pe=2, simd=2),
        dict(out=3, weight_bits=8, out_bits=None, pe=1, simd=2, mac="dsp")],
        count=4, argmax=True, name="mixed")
    path = tmp_path / "mixed.toml"
    spec.save(net, path)
    return path


def test_check_board_shows_the_builds_dsp_mapping(mixed_spec, capsys):
    assert main(["check", str(mixed_spec), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert [lp["mac"] for lp in plain["layers"][:2]] == ["lut", "dsp"]
    assert main(["check", str(mixed_spec), "--json", "--board", "icebreaker"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert [lp["mac"] for lp in board["layers"][:2]] == ["dsp", "dsp"]
    assert [lp["scheme"] for lp in board["layers"][:2]] == ["W4A4", "W8A4"]


def test_check_board_refuses_dsp_without_dsps(mixed_spec, capsys):
    assert main(["check", str(mixed_spec), "--board", "ice40-hx8k-b-evn"]) == 2
    assert error_line(capsys) == (
        f"hwgen: error: {mixed_spec}: layers[1].mac: fc1 asks for \"dsp\", but ice40-hx8k-b-evn "
        f"(iCE40HX8K) has no DSP blocks; use \"lut\" or \"auto\"")


def test_check_board_reports_memories_and_refuses_what_does_not_fit(capsys):
    designs = Path(__file__).resolve().parents[1] / "designs"
    assert main(["check", str(designs / "digits_bnn.toml"), "--board", "icebreaker"]) == 0
    out = capsys.readouterr().out.splitlines()
    total = next(line for line in out if line.startswith("total") and "/ 30" in line)
    assert total.split()[1:4] == ["18", "/", "30"]
    assert "fits: block RAMs, SPRAMs and DSPs within the device" in out
    assert main(["check", str(designs / "digits_bnn.toml"), "--board", "icebreaker",
                 "--json"]) == 0
    resources = json.loads(capsys.readouterr().out)["resources"]
    assert resources["total"]["bram"] == 18 and resources["available"]["bram"] == 30
    assert {m["placed"] for m in resources["memories"]} == {"bram", "logic"}
    assert main(["check", str(designs / "cnv_w1a1.toml"), "--board", "icebreaker"]) == 2
    captured = capsys.readouterr()
    assert "does not fit: " in captured.out
    assert captured.err.strip().splitlines() == [
        "hwgen: error: cnv_w1a1 does not fit icebreaker (iCE40UP5K): needs 485 block RAMs, "
        "the device has 30"]


def test_sim_netlist_refuses_bulk(mixed_spec, tmp_path, capsys):
    assert main(["sim", str(mixed_spec), "--netlist", "ice40", "--bulk", "--random", "3",
                 "--work-dir", str(tmp_path / "w")]) == 2
    assert "--netlist checks every beat of at most 500 inputs (no --bulk)" in error_line(capsys)


def test_check_a_separable_block_from_toml(tmp_path, capsys):
    """depthwise_conv2d from TOML: its row in the table and JSON, and the board's DSP mapping
    of its "auto" products (pe multipliers, unpacked)."""
    rng = np.random.default_rng(9)
    net, _ = chain(rng, Input((6, 6, 4), 8, lanes=2), [
        dict(kind="depthwise_conv2d", kernel=3, padding="same", weight_bits=8, out_bits="s8",
             pe=2),
        dict(kind="conv2d", out=8, kernel=1, weight_bits=4, out_bits=2, pe=4, simd=4)],
        count=3, name="sep")
    path = tmp_path / "sep.toml"
    spec.save(net, path)
    assert main(["check", str(path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("dw0 "))
    assert row.split()[:7] == ["dw0", "depthwise_conv2d", "6×6×4", "6×6×4", "W8A8", "lut", "u8"]
    assert main(["check", str(path), "--json", "--board", "icebreaker"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["resources"] is None and "does not end in argmax" in \
        checked["resources_note"]
    dw = checked["layers"][0]
    assert (dw["kind"], dw["mac"], dw["dsp_pack"], dw["pe"], dw["simd"]) == \
        ("depthwise_conv2d", "dsp", 1, 2, 1)
    assert dw["cycles"] == 36 * 2 * 9 and dw["macs"] == 36 * 4 * 9


# --- issue 14: output folders never lose user data -------------------------------------------

def _no_work(monkeypatch):
    """Make every kind of work fail the test: a command must refuse before it starts."""
    import hwgen.cli as cli
    import hwgen.toolchain.synth as synth

    def forbidden(*args, **kwargs):
        raise AssertionError("the command started its work before refusing")

    for module, name in ((runner, "simulate"), (runner, "verify_bulk"), (synth, "_synthesize"),
                         (cli, "_write_design")):
        monkeypatch.setattr(module, name, forbidden)


@pytest.fixture
def users_folder(tmp_path) -> Path:
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("the user's notes\n")
    (folder / "sub" / "data.bin").write_bytes(b"\x00\x01\x02")
    return folder


def _assert_intact(folder: Path) -> None:
    assert (folder / "notes.txt").read_text() == "the user's notes\n"
    assert (folder / "sub" / "data.bin").read_bytes() == b"\x00\x01\x02"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "sub"]


@pytest.mark.parametrize("command", [
    ["generate"], ["build", "--board", "icebreaker"], ["flow", "--board", "icebreaker"]])
def test_a_users_folder_survives_every_command(mini_spec, users_folder, capsys, monkeypatch,
                                               command):
    _no_work(monkeypatch)
    argv = [command[0], str(mini_spec), *command[1:], "-o", str(users_folder)]
    assert main(argv) == 2
    assert error_line(capsys) == (f"hwgen: error: -o {users_folder}: the folder exists and "
                                  f"was not made by hwgen; choose another folder")
    assert main([*argv, "--force"]) == 2
    _assert_intact(users_folder)


def test_sim_work_dir_of_a_user_is_refused(mini_spec, users_folder, capsys, monkeypatch):
    _no_work(monkeypatch)
    assert main(["sim", str(mini_spec), "--work-dir", str(users_folder)]) == 2
    assert error_line(capsys) == (f"hwgen: error: --work-dir {users_folder}: the folder "
                                  f"exists and was not made by hwgen; choose another folder")
    _assert_intact(users_folder)


@pytest.mark.parametrize("where, why", [
    (".", "is the current folder"),
    ("{spec_dir}", "is the folder of {spec}"),
    ("{spec_parent}", "holds {spec}"),
])
def test_the_current_folder_and_the_specs_folders_are_refused(mini_spec, tmp_path, capsys,
                                                              monkeypatch, tmp_path_factory,
                                                              where, why):
    # "." is an empty folder (refused all the same); else the current folder is elsewhere
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd") if where == "." else "/")
    _no_work(monkeypatch)
    names = {"spec_dir": mini_spec.parent, "spec_parent": mini_spec.parent.parent,
             "spec": mini_spec}
    out = where.format(**names)
    before = sorted(p.name for p in tmp_path.iterdir())
    for command in (["generate"], ["build", "--board", "icebreaker"]):
        assert main([command[0], str(mini_spec), *command[1:], "-o", out, "--force"]) == 2
        assert error_line(capsys) == (f"hwgen: error: -o {out}: {why.format(**names)}; "
                                      f"choose another folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("out, why", [
    ("/proc/x", "cannot create /proc/x (No such file or directory)"),
    ("/proc/x/y", "cannot create /proc/x (No such file or directory)"),
    ("/dev/null/x", "/dev/null is not a folder"),
    ("file.txt", "exists and is not a folder; choose another folder"),
    ("file.txt/sub", "{tmp}/file.txt is not a folder"),
])
def test_output_paths_checked_before_any_work(mini_spec, tmp_path, capsys, monkeypatch, out,
                                              why):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("a user file\n")
    _no_work(monkeypatch)
    for command in (["generate"], ["build", "--board", "icebreaker"],
                    ["flow", "--board", "icebreaker"]):
        assert main([command[0], str(mini_spec), *command[1:], "-o", out]) == 2
        assert error_line(capsys) == f"hwgen: error: -o {out}: {why.format(tmp=tmp_path)}"
    assert main(["sim", str(mini_spec), "--work-dir", out]) == 2
    assert error_line(capsys) == f"hwgen: error: --work-dir {out}: {why.format(tmp=tmp_path)}"
    assert (tmp_path / "file.txt").read_text() == "a user file\n"


def test_generate_replaces_its_own_output_and_force_another_specs(mini_spec, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", str(mini_spec), "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~_umask()
    (out / "mini.v").write_text("stale")
    assert main(["generate", str(mini_spec), "-o", str(out)]) == 0  # its own: replaced
    assert "module mini(" in (out / "mini.v").read_text()
    assert sorted(p.name for p in out.iterdir()) == [".hwgen-output.json", "mini.v",
                                                     "plan.json"]
    other = tmp_path / "other.toml"
    other.write_text(mini_spec.read_text())
    capsys.readouterr()
    assert main(["generate", str(other), "-o", str(out)]) == 2
    assert error_line(capsys) == (f"hwgen: error: -o {out}: holds hwgen's generate output of "
                                  f"{mini_spec}; add --force to replace it, or choose another "
                                  f"folder")
    assert main(["generate", str(other), "-o", str(out), "--force"]) == 0
    assert json.loads((out / ".hwgen-output.json").read_text())["spec"] == str(other)
    (out / "notes.txt").write_text("the user's")
    assert main(["generate", str(other), "-o", str(out), "--force"]) == 2
    assert "also holds files hwgen did not write (notes.txt)" in error_line(capsys)
    assert (out / "notes.txt").read_text() == "the user's"


def test_generate_default_folder_is_replaced_without_force(mini_spec, tmp_path, capsys,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", str(mini_spec)]) == 0
    assert main(["generate", str(mini_spec)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "wrote build/mini/mini.v and build/mini/plan.json")
    (tmp_path / "build" / "mini" / "notes.txt").write_text("mine")
    assert main(["generate", str(mini_spec)]) == 2
    assert error_line(capsys).startswith("hwgen: error: build/mini (the default -o): hwgen's "
                                         "output folder also holds files")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _fake_simulate(fail: bool = False):
    """runner.simulate without a simulator: a log in the work folder, a passing result."""
    from hwgen import golden
    from hwgen.plan import plan

    def simulate(network, x, work_dir, **kwargs):
        work_dir = Path(work_dir)
        (work_dir / "sim.log").write_text("log\n")
        if fail:
            raise runner.SimError(f"icarus build failed; log {work_dir / 'sim.log'}")
        p = plan(network)
        return runner.SimResult(
            frames=len(x), predictions=golden.predict(network, x), mismatches=[],
            cycles_per_inference=p.cycles_per_inference, latency_cycles=p.latency,
            model_cycles_per_inference=p.cycles_per_inference, model_latency_cycles=p.latency,
            stress_cycles=1, timed_out=False, seconds=0.0, work_dir=work_dir)
    return simulate


def test_sim_work_dir_is_marked_and_kept_on_failure(mini_spec, tmp_path, capsys, monkeypatch):
    work = tmp_path / "w"
    monkeypatch.setattr(runner, "simulate", _fake_simulate())
    assert main(["sim", str(mini_spec), "--work-dir", str(work)]) == 0
    assert f"work directory: {work} " in capsys.readouterr().out
    assert json.loads((work / ".hwgen-output.json").read_text())["kind"] == "sim"
    monkeypatch.setattr(runner, "simulate", _fake_simulate(fail=True))
    assert main(["sim", str(mini_spec), "--work-dir", str(work)]) == 1  # its own: reused
    assert error_line(capsys) == f"hwgen: error: icarus build failed; log {work / 'sim.log'}"
    assert (work / "sim.log").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hwgen")]


def test_flow_work_dir_and_output_must_not_overlap(mini_spec, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    out = tmp_path / "out"
    assert main(["flow", str(mini_spec), "--board", "icebreaker", "-o", str(out),
                 "--work-dir", str(out / "sim")]) == 2
    assert error_line(capsys) == (f"hwgen: error: --work-dir {out / 'sim'} and -o {out} "
                                  f"overlap; give the simulation a folder of its own")


# --- issue 14: arguments checked before any work ---------------------------------------------

def _refused(argv: list[str]) -> str:
    """The one error line of a refused command (hwgen's or argparse's), exit 2."""
    from tests.fuzz.invariant import assert_clean_error, run_main

    return assert_clean_error(run_main([str(a) for a in argv]), codes=(2,))


@pytest.mark.parametrize("command", [["flow", "--board", "bogus"], ["flow", "--board", ""],
                                     ["check", "--board", ""], ["build", "--board", ""],
                                     ["run", "--port", "p", "--dry-run", "--board", ""]])
def test_unknown_or_empty_board_refused_before_simulating(mini_spec, monkeypatch, command):
    _no_work(monkeypatch)
    name = command[command.index("--board") + 1]
    line = _refused([command[0], mini_spec, *command[1:]])
    assert line.startswith(f"hwgen: error: unknown board {name!r}; expected one of: ")


@pytest.mark.parametrize("option, value, message", [
    ("--clock-mhz", "inf", "expected auto, osc or a frequency in MHz above 0 and at most "
                           "1,000, got 'inf'"),
    ("--clock-mhz", "nan", "expected auto, osc or a frequency in MHz above 0 and at most "
                           "1,000, got 'nan'"),
    ("--clock-mhz", "Auto", "expected auto, osc or a frequency in MHz above 0 and at most "
                            "1,000, got 'Auto'"),
    ("--seeds", "0", "expected a number of nextpnr seeds from 1 to 16, got '0'"),
    ("--seeds", "17", "expected a number of nextpnr seeds from 1 to 16, got '17'"),
    ("--baud", "0", "expected a bit rate from 1 to 12,000,000, got '0'"),
    ("--seed", "-1", "expected a seed from 0 to 4,294,967,295, got '-1'"),
])
def test_flow_numbers_refused_before_simulating(mini_spec, monkeypatch, option, value,
                                                message):
    _no_work(monkeypatch)
    line = _refused(["flow", mini_spec, "--board", "icebreaker", option, value])
    assert line == f"hwgen flow: error: argument {option}: {message}"


@pytest.mark.parametrize("value", ["0", "2147483648", "1.5"])
def test_build_seed_refused_before_synthesis(mini_spec, monkeypatch, value):
    _no_work(monkeypatch)
    assert _refused(["build", mini_spec, "--board", "icebreaker", "--seed", value]) == (
        f"hwgen build: error: argument --seed: expected a nextpnr seed from 1 to "
        f"2,147,483,647, got {value!r}")


def test_build_seed_and_seeds_exclude_each_other(mini_spec, monkeypatch):
    _no_work(monkeypatch)
    assert _refused(["build", mini_spec, "--board", "icebreaker", "--seed", "5",
                     "--seeds", "2"]) == (
        "hwgen: error: --seed 5 places once with seed 5, --seeds 2 with seeds 1 to 2; give one "
        "of them")


@pytest.mark.synth
def test_build_auto_clock_on_the_upduino(mini_spec, tmp_path, capsys):
    """The default build (``--clock-mhz auto``) on the smallest design, here with two seeds:
    a first pass at the UPduino's SB_HFOSC ÷ 4 (12 MHz), then an SB_PLL40_CORE fed by the
    SB_HFOSC at the highest clock under the first pass's slowest seed less 3 % and the
    oscillator's 10 %; the summary names the seeds, the path, the clock and the rate."""
    from hwgen.rtl.clock import ice40_pll

    out = tmp_path / "b"
    assert main(["build", str(mini_spec), "--board", "upduino-v3", "--seeds", "2",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    auto = report["auto_clock"]
    first = auto["first_pass"]
    assert report["clock_mode"] == "auto" and first["clock_mhz"] == 12.0
    assert first["fmax_seeds"]["seeds"] == report["fmax_seeds"]["seeds"] == [1, 2]
    (rebuild,) = auto["rebuilds"]
    assert rebuild["requested_mhz"] == pytest.approx(
        first["fmax_seeds"]["min"] * 0.97 / 1.1, abs=1e-4)
    assert report["clock_mhz"] == rebuild["clock_mhz"] == auto["clock_mhz"] == round(
        ice40_pll(12_000_000, rebuild["requested_mhz"] * 1e6).out_hz / 1e6, 4)
    assert rebuild["met"] and report["fmax_mhz"] == auto["fmax_mhz"] >= report["clock_mhz"]
    assert report["pll"]["primitive"] == "SB_PLL40"
    netlist = (out / "top.il").read_text()
    assert "cell \\SB_HFOSC" in netlist and "cell \\SB_PLL40_CORE" in netlist
    assert report["inferences_per_second_at_clock"] == round(
        report["clock_mhz"] * 1e6 / report["cycles_per_inference"], 1)
    # the first pass keeps its logs and reports, not a bitstream to flash by mistake
    assert (out / "auto-1" / "top.rpt").is_file() and not (out / "auto-1" / "top.bin").exists()
    assert (out / "auto-1" / "seed-2" / "report_pnr.json").is_file()
    assert (out / "top.bin").stat().st_size > 1000
    seeds = report["fmax_seeds"]
    lines = {line.split("  ")[1].strip(): line.split("  ", 2)[2].strip()
             for line in printed.splitlines() if line.startswith("  ") and "  " in line[2:]}
    assert lines["fmax"] == (f"{report['fmax_mhz']} MHz (seed {report['nextpnr_seed']}, "
                             f"shipped); {seeds['min']} / {seeds['median']} / {seeds['max']} "
                             f"MHz (min / median / max of seeds 1, 2)")
    assert lines["critical path"].endswith(" → ".join(report["critical_path"]["through"]))
    assert lines["clock"].startswith(f"{report['clock_mhz']} MHz from the SB_PLL40 (asked "
                                     f"{rebuild['requested_mhz']}, oscillator 12.0); auto")
    assert lines["clock auto"].startswith(
        f"first pass at 12.0 MHz: fmax {first['fmax_seeds']['min']} / ")
    assert "margin 3%, oscillator tolerance 10%" in lines["clock auto"]
    assert lines["inferences/s at the clock"] == (
        f"{report['inferences_per_second_at_clock']:,.0f} (at {report['clock_mhz']} MHz)")
    assert "clock auto: first pass at the 12 MHz oscillator" in printed


def test_build_runs_the_boards_baud_by_default(mini_spec, tmp_path, capsys, monkeypatch):
    """Without --baud the board top runs the board's link rate (report.json's ``uart``), with
    --baud the rate given (no tools run: the passes are stubbed)."""
    from tests.toolchain.test_synth import _stub_synthesize

    _stub_synthesize(monkeypatch, passes := [])
    out = tmp_path / "b"
    assert main(["build", str(mini_spec), "--board", "ulx3s-85f", "--seeds", "1",
                 "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["uart"]["baud"] == 1_000_000 and report["clock_mode"] == "auto"
    assert [baud for _, baud in passes] == [1_000_000, 1_000_000]
    assert main(["build", str(mini_spec), "--board", "ulx3s-85f", "--seeds", "1",
                 "--clock-mhz", "osc", "--baud", "115200", "-o", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["uart"]["baud"] == 115200
    capsys.readouterr()


@pytest.mark.parametrize("command", ["build", "flow"])
def test_a_baud_the_board_cannot_make_is_one_line(mini_spec, monkeypatch, command):
    _no_work(monkeypatch)
    assert _refused([command, mini_spec, "--board", "ulx3s-85f", "--baud", "3000000"]) == (
        "hwgen: error: ulx3s-85f: baud 3000000 from a 25000000 Hz clock is off by 4.2% "
        "(divisor 8 gives 3125000 baud); at most 2% is accepted; at 25 MHz the fastest rate "
        "that works is 1500000")
    assert _refused([command, mini_spec, "--board", "icebreaker", "--baud", "4000000"]) == (
        "hwgen: error: icebreaker: baud 4000000 is more than its USB-UART (FTDI FT2232H "
        "channel B (its second serial port)) carries reliably, 3000000; the default is 3000000")


@pytest.mark.parametrize("options, baud", [([], 115200), (["--board", "icebreaker"], 3_000_000),
                                           (["--board", "ulx3s-85f"], 1_000_000),
                                           (["--board", "icebreaker", "--baud", "9600"], 9600),
                                           (["--baud", "57600"], 57600)])
def test_run_baud_defaults_to_the_boards(mini_spec, capsys, options, baud):
    assert main(["run", str(mini_spec), "--port", "/nonexistent/tty", "--dry-run",
                 *options]) == 0
    assert f" to /nonexistent/tty at {baud} baud " in capsys.readouterr().out


def test_flow_clock_the_pll_cannot_make_refused_before_simulating(mini_spec, capsys,
                                                                   monkeypatch):
    _no_work(monkeypatch)
    assert main(["flow", str(mini_spec), "--board", "icebreaker", "--clock-mhz", "3"]) == 2
    assert "cannot build for icebreaker: SB_PLL40 cannot make 3 MHz" in error_line(capsys)


def test_sim_seed_random_and_zero_d_inputs(mini_spec, tmp_path, monkeypatch):
    _no_work(monkeypatch)
    assert _refused(["sim", mini_spec, "--seed", "-1"]) == (
        "hwgen sim: error: argument --seed: expected a seed from 0 to 4,294,967,295, got '-1'")
    assert _refused(["sim", mini_spec, "--random", "10000000000"]) == (
        "hwgen: error: --random 10000000000: at most 2,097,152 random inputs of 16 values "
        "each (33,554,432 values in all)")
    np.save(tmp_path / "x0.npy", np.array(7))
    assert _refused(["sim", mini_spec, "--inputs", tmp_path / "x0.npy", "--count", "1"]) == (
        f"hwgen: error: --inputs {tmp_path / 'x0.npy'}: holds a single value (a 0-d array); "
        f"expected an array with one row per input")


def test_sim_inputs_uint64_reported_as_itself(mini_spec, tmp_path, monkeypatch):
    _no_work(monkeypatch)
    path = tmp_path / "x.npy"
    np.save(path, np.full((2, 16), 2 ** 64 - 1, dtype=np.uint64))
    assert _refused(["sim", mini_spec, "--inputs", path]) == (
        f"hwgen: error: --inputs {path}: inputs must be in 0..255 (u8), found "
        f"18446744073709551615 at (0, 0)")


def _header_only(path: Path, shape: tuple[int, ...]) -> None:
    """A .npy header declaring ``shape`` int64, and no data (a 74.5 GiB array if believed)."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False,
                                                 "shape": shape})


def _save_npz(path: Path, **arrays) -> None:
    with open(path, "wb") as f:  # under this very name (np.savez would add .npz)
        np.savez(f, **arrays)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "is a folder; expected a .npy file"),
    (os.mkfifo, "is not a regular file; expected a .npy file"),
    (lambda p: _save_npz(p, x=np.zeros(3)),
     "is an .npz archive; expected a .npy file (save it with np.save)"),
    (lambda p: np.save(p, np.array([1, "a"], dtype=object), allow_pickle=True),
     "holds Python objects (dtype object); expected a numeric array"),
    (lambda p: p.write_bytes(b""), "not a .npy file (no NumPy header)"),
    (lambda p: _header_only(p, (100000, 100000)),
     "its header declares shape (100000, 100000) int64 (80,000,000,000 bytes), the file "
     "holds 0"),
])
@pytest.mark.parametrize("option", ["--inputs", "--labels"])
def test_array_files_of_the_wrong_kind(mini_spec, tmp_path, monkeypatch, make, message, option):
    _no_work(monkeypatch)
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((6, 16), dtype=np.int64))
    bad = tmp_path / "bad.npy"
    make(bad)
    argv = ["sim", mini_spec, "--inputs", bad if option == "--inputs" else good]
    if option == "--labels":
        argv += ["--labels", bad]
    assert _refused(argv) == f"hwgen: error: {option} {bad}: {message}"


@pytest.mark.parametrize("labels, message", [
    (np.array(["2", "0", "3", "1", "1", "0"]),
     "labels must be integer class numbers, got dtype <U1"),
    (np.zeros((6, 2), dtype=int), "labels have shape (6, 2); expected one label per input "
                                  "(N or N × 1)"),
    (np.zeros(5, dtype=int), "5 labels for 6 inputs"),
    (np.arange(6), "labels must be class numbers 0..3, found 4 at 4"),
    (np.arange(6, dtype=float), "labels must be integer class numbers, got dtype float64"),
])
@pytest.mark.parametrize("command", [["sim"], ["run", "--port", "p", "--dry-run"]])
def test_labels_checked_before_simulating(mini_spec, tmp_path, monkeypatch, labels, message,
                                          command):
    _no_work(monkeypatch)
    np.save(tmp_path / "x.npy", np.zeros((6, 16), dtype=np.int64))
    np.save(tmp_path / "y.npy", labels)
    line = _refused([command[0], mini_spec, *command[1:], "--inputs", tmp_path / "x.npy",
                     "--labels", tmp_path / "y.npy"])
    assert line == f"hwgen: error: --labels {tmp_path / 'y.npy'}: {message}"


def test_labels_n_by_1_are_accepted(mini_spec, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "simulate", _fake_simulate())
    x = np.load(mini_spec.with_name("mini.test.npz"))["x"]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", (np.arange(len(x)) % 4)[:, None].astype(np.uint8))
    assert main(["sim", str(mini_spec), "--inputs", str(tmp_path / "x.npy"), "--labels",
                 str(tmp_path / "y.npy")]) == 0
    assert "accuracy: " in capsys.readouterr().out


def test_labels_without_inputs_and_random_with_inputs(mini_spec, tmp_path, monkeypatch):
    _no_work(monkeypatch)
    np.save(tmp_path / "y.npy", np.zeros(6, dtype=int))
    np.save(tmp_path / "x.npy", np.zeros((6, 16), dtype=int))
    for command in (["sim"], ["run", "--port", "p", "--dry-run"]):
        assert _refused([command[0], mini_spec, *command[1:], "--labels",
                         tmp_path / "y.npy"]) == (
            "hwgen: error: --labels needs --inputs (the labels of the spec's test split come "
            "with it)")
        assert _refused([command[0], mini_spec, *command[1:], "--inputs", tmp_path / "x.npy",
                         "--random", "3"]) == (
            "hwgen: error: --random makes its own inputs; give --inputs or --random, not both")


@pytest.mark.parametrize("value", ["inf", "1e300", "1e-9", "0", "nan", "86401"])
def test_run_timeout_bounds(mini_spec, value):
    assert _refused(["run", mini_spec, "--port", "p", "--timeout", value]) == (
        f"hwgen run: error: argument --timeout: expected a number of seconds from 0.001 to "
        f"86,400, got {value!r}")


def test_run_json_checked_before_the_run(mini_spec, tmp_path, capsys, monkeypatch):
    from hwgen import runtime

    def no_board(*args, **kwargs):
        raise AssertionError("the port was opened before --json was checked")

    monkeypatch.setattr(runtime, "Board", no_board)
    (tmp_path / "results.txt").write_text("the user's")
    cases = {
        tmp_path / "missing" / "r.json": f"{tmp_path / 'missing'} is not an existing folder",
        tmp_path: "is a folder; name a file in it",
        tmp_path / "results.txt": "exists and was not written by hwgen; choose another file",
        "/proc/x/r.json": "/proc/x is not an existing folder",
    }
    for path, message in cases.items():
        assert main(["run", str(mini_spec), "--port", "p", "--json", str(path)]) == 2
        assert error_line(capsys) == f"hwgen: error: --json {path}: {message}"
    assert (tmp_path / "results.txt").read_text() == "the user's"


def test_internal_errors_are_one_line_exit_3(mini_spec, capsys, monkeypatch):
    import hwgen.cli as cli

    def broken(args):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(cli, "cmd_check", broken)
    monkeypatch.delenv("HWGEN_TRACEBACK", raising=False)
    assert main(["check", str(mini_spec)]) == 3
    assert error_line(capsys) == (
        "hwgen: error: internal error: RuntimeError: a bug over two lines (please report this; "
        "HWGEN_TRACEBACK=1 shows the traceback)")
    monkeypatch.setenv("HWGEN_TRACEBACK", "1")
    with pytest.raises(RuntimeError):
        main(["check", str(mini_spec)])


def _test_split_variants(path: Path, kind: str) -> None:
    """A spec's test split that is broken in one way."""
    import io
    import zipfile

    from numpy.lib import format as npy_format

    if kind == "npy under the npz name":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif kind == "huge header":
        header = io.BytesIO()
        npy_format.write_array_header_1_0(
            header, {"descr": "<i8", "fortran_order": False, "shape": (100000, 100000)})
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x.npy", header.getvalue() + bytes(64))
            z.writestr("y.npy", header.getvalue())
    elif kind == "no x and y":
        np.savez(path, a=np.zeros(2))
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("kind, words", [
    ("npy under the npz name", "a single .npy array, expected an NPZ archive"),
    ("huge header", "shape (100000, 100000) (10,000,000,000 elements): the test split may "
                    "hold at most 268,435,456 elements in all"),
    ("no x and y", "dataset.test: test split"),
    ("empty", "mini.test.npz"),
])
def test_a_broken_test_split_is_one_line(mini_spec, tmp_path, capsys, kind, words):
    """Issue 14: the spec's [dataset] test file is read with the same checks as its weights
    (headers before data), not np.load."""
    _test_split_variants(tmp_path / "mini.test.npz", kind)
    assert main(["sim", str(mini_spec), "--work-dir", str(tmp_path / "work")]) == 2
    assert words in error_line(capsys)


# -- hwgen import ----------------------------------------------------------------------------

@pytest.fixture
def onnx_model(tmp_path) -> Path:
    from tests.importers.test_qonnx import binary_mlp

    return binary_mlp(tmp_path / "mlp.onnx")


def test_import_verifies_and_writes_a_spec_that_loads_as_the_model(onnx_model, tmp_path,
                                                                    capsys):
    import hwgen

    out = tmp_path / "spec" / "mlp.toml"
    out.parent.mkdir()
    assert main(["import", str(onnx_model), "-o", str(out), "--verify", "40"]) == 0
    printed = capsys.readouterr().out
    assert "from the model's Quant node 'inq'" in printed
    assert "on 40 inputs: classes equal on 40; inputs with a different integer output, by " \
           "layer: none" in printed
    assert out.read_text().startswith("# Written by hwgen import from ")
    written, imported = spec.load(out), hwgen.load(onnx_model)
    assert [layer.name for layer in written.layers] == [layer.name for layer in
                                                        imported.layers]
    for a, b in zip(written.layers[:-1], imported.layers[:-1], strict=True):
        assert np.array_equal(a.weights, b.weights)
        assert (a.thresholds is None and b.thresholds is None) or np.array_equal(
            a.thresholds, b.thresholds)


def test_import_replaces_its_own_spec_but_no_other_file(onnx_model, tmp_path, capsys):
    out = tmp_path / "mlp.toml"
    assert main(["import", str(onnx_model), "-o", str(out)]) == 0
    assert main(["import", str(onnx_model), "-o", str(out)]) == 0  # its own: replaced
    capsys.readouterr()
    foreign = tmp_path / "mine.toml"
    foreign.write_text("name = 'mine'\n")
    assert main(["import", str(onnx_model), "-o", str(foreign)]) == 2
    assert "-o " + str(foreign) + ": exists and was not written by hwgen" in error_line(capsys)
    assert foreign.read_text() == "name = 'mine'\n"
    (tmp_path / "new.npz").write_bytes(b"user data")
    assert main(["import", str(onnx_model), "-o", str(tmp_path / "new.toml")]) == 2
    assert "new.npz: exists and was not written by hwgen" in error_line(capsys)
    assert (tmp_path / "new.npz").read_bytes() == b"user data"
    assert not (tmp_path / "new.toml").exists()


def test_import_that_is_not_exact_writes_nothing(onnx_model, tmp_path, monkeypatch, capsys):
    from hwgen.importers import qonnx

    monkeypatch.setattr(qonnx, "verify", lambda imported, x: qonnx.VerifyResult(
        len(x), len(x) - 1, {"fc0": 1}))
    assert main(["import", str(onnx_model), "--verify", "5"]) == 1
    captured = capsys.readouterr()
    assert "by layer: fc0 1" in captured.out and "no spec written" in captured.err
    assert not onnx_model.with_suffix(".toml").exists()


def test_spec_commands_take_an_onnx_model(onnx_model, tmp_path, capsys):
    assert main(["check", str(onnx_model)]) == 0
    assert "classifier" in capsys.readouterr().out
    assert main(["generate", str(onnx_model), "-o", str(tmp_path / "v")]) == 0
    assert (tmp_path / "v" / "mlp.v").exists()


@pytest.mark.parametrize("argv, message", [
    (["import", "{model}", "--input-signed"], "--input-signed and --input-scale need "
                                              "--input-bits"),
    (["import", "{dir}/m.txt"], "MODEL {dir}/m.txt: expected an .onnx file"),
    (["import", "{dir}/none.onnx"], "none.onnx: file not found"),
    (["import", "{model}", "-o", "{dir}/x.json"], "expected a .toml file name"),
    (["import", "{model}", "--input-bits", "4"], "a second quantizer on the model input"),
    (["check", "{dir}/garbage.onnx"], "garbage.onnx: not an ONNX model"),
])
def test_import_errors_are_one_line(onnx_model, tmp_path, capsys, argv, message):
    (tmp_path / "garbage.onnx").write_bytes(b"\x07not a protobuf at all")
    argv = [a.format(model=onnx_model, dir=tmp_path) for a in argv]
    assert main(argv) == 2
    assert message.format(dir=tmp_path) in error_line(capsys)


def test_import_quantizes_a_float_model_and_prints_both_accuracies(tmp_path, capsys):
    from tests.importers.test_ptq import float_mlp

    model = float_mlp(tmp_path / "f.onnx")
    x = np.random.default_rng(2).random((60, 20)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(60) % 4)
    assert main(["import", str(model), "--bits", "4", "--calibration", str(tmp_path / "x.npy"),
                 "--labels", str(tmp_path / "y.npy"), "--verify", "20"]) == 0
    out = capsys.readouterr().out
    assert "accuracy on the 60 calibration inputs: float model " in out
    assert "post-training quantization: weights 4-bit per channel" in out
    assert (tmp_path / "f.toml").exists()
    assert main(["import", str(model), "--bits", "4"]) == 2
    assert "--bits and --calibration go together" in error_line(capsys)
    assert main(["import", str(model), "--act-bits", "4"]) == 2
    assert "need --bits and --calibration" in error_line(capsys)
    assert main(["import", str(model), "--act-calibration", "mse"]) == 2
    assert "need --bits and --calibration" in error_line(capsys)
    assert main(["import", str(model), "--bits", "4", "--calibration",
                 str(tmp_path / "x.npy"), "--act-calibration", "mse", "-o",
                 str(tmp_path / "g.toml")]) == 0
    assert "(mse over 60 calibration inputs)" in capsys.readouterr().out


def test_fold_writes_a_spec_it_may_replace_and_no_one_elses(mini_spec, tmp_path, capsys):
    out = tmp_path / "folded.toml"
    assert main(["fold", str(mini_spec), "--board", "icebreaker", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mini folded for icebreaker" in text and "bottleneck:" in text
    folded = spec.load(out)
    assert out.read_text().startswith("# Written by hwgen fold")
    assert [layer.name for layer in folded.layers] == ["fc0", "fc1", "argmax"]
    assert folded.layers[0].pe * folded.layers[0].simd > 2 * 4  # faster than written
    assert main(["fold", str(mini_spec), "--board", "icebreaker", "-o", str(out),
                 "--fps", "1000"]) == 0  # its own file: replaced
    assert "(1000 inferences/s" in out.read_text().splitlines()[0]
    theirs = tmp_path / "theirs.toml"
    theirs.write_text("name = 'x'\n")
    assert main(["fold", str(mini_spec), "--board", "icebreaker", "-o", str(theirs)]) == 2
    assert "was not written by hwgen fold" in error_line(capsys)
    assert theirs.read_text() == "name = 'x'\n"
    # with --json, stdout is the JSON alone: what was written goes to stderr
    assert main(["fold", str(mini_spec), "--board", "icebreaker", "-o", str(out),
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["board"] == "icebreaker"
    assert f"wrote {out}" in captured.err


def test_fold_json_is_the_choice(mini_spec, capsys):
    assert main(["fold", str(mini_spec), "--board", "ulx3s-85f", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["board"] == "ulx3s-85f" and doc["bottleneck"] in ("fc0", "fc1", "argmax")
    assert [row["name"] for row in doc["layers"]] == ["fc0", "fc1", "argmax"]
    assert doc["use"]["bram"] <= doc["available"]["bram"]


def test_fold_that_cannot_fit_is_one_line_exit_2(mini_spec, capsys):
    assert main(["fold", str(mini_spec), "--board", "icebreaker", "--headroom", "0.01"]) == 2
    err = error_line(capsys)
    assert err.startswith("hwgen: error: mini does not fit icebreaker (iCE40UP5K) at any "
                          "folding") and err.endswith("bind)")


def test_check_plot_draws_cycles_and_shares_and_replaces_only_its_own(mini_spec, tmp_path,
                                                                      capsys):
    from hwgen.plots import written_by_hwgen

    png = tmp_path / "check.png"
    for _ in range(2):  # the second run replaces its own picture
        assert main(["check", str(mini_spec), "--board", "icebreaker", "--plot",
                     str(png)]) == 0
        assert f"wrote {png}" in capsys.readouterr().out
        assert written_by_hwgen(png)
    theirs = tmp_path / "theirs.png"
    theirs.write_bytes(b"\x89PNG not ours")
    assert main(["check", str(mini_spec), "--board", "icebreaker", "--plot",
                 str(theirs)]) == 2
    assert "was not written by hwgen" in error_line(capsys)
    assert theirs.read_bytes() == b"\x89PNG not ours"
    assert main(["check", str(mini_spec), "--plot", str(png)]) == 2
    assert error_line(capsys) == ("hwgen: error: --plot needs --board (the device the shares "
                                  "are of)")


def test_check_board_folds_the_auto_fields(mini_spec, capsys):
    text = mini_spec.read_text().replace("pe = 2\n", 'pe = "auto"\n', 1)
    mini_spec.write_text(text)
    assert main(["check", str(mini_spec), "--board", "icebreaker"]) == 0
    out = capsys.readouterr().out
    assert 'folding mini for icebreaker (its "auto" fields)' in out
    assert "mini folded for icebreaker" in out and "fits: block RAMs" in out


@pytest.mark.synth
def test_build_fold_max_builds_the_fold_and_records_it(mini_spec, tmp_path, capsys):
    out = tmp_path / "built"
    assert main(["build", str(mini_spec), "--board", "icebreaker", "--fold", "max",
                 "--clock-mhz", "osc", "--seeds", "1", "-o", str(out)]) == 0
    assert "mini folded for icebreaker" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["fold"]["cycles_per_inference"] == report["cycles_per_inference"] < 16
    assert report["lcs"]["used"] <= report["lcs"]["available"]
