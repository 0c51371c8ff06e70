"""The ``hwgen`` command: each subcommand's output, exit codes and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hwgen_sim.runner as runner
from hwgen import spec
from hwgen.cli import main
from hwgen.spec import Input
from tests.helpers import chain, error_line


@pytest.fixture
def mini_spec(tmp_path) -> Path:
    """A three-layer binary MLP with argmax, saved as TOML + NPZ, with a labelled test split."""
    rng = np.random.default_rng(7)
    net, x = chain(rng, Input((16,), 8, lanes=4), [
        dict(out=8, weight_bits=1, out_bits=1, pe=2, simd=4),
        dict(out=4, weight_bits=16, out_bits=None, pe=1, simd=8, bias=True)],
        count=6, argmax=True, name="mini")
    path = tmp_path / "mini.toml"
    np.savez(tmp_path / "mini.test.npz", x=x, y=np.arange(len(x)) % 4)
    net.dataset = tmp_path / "mini.test.npz"
    spec.save(net, path)
    return path




def test_check_prints_every_layer_and_totals(mini_spec, capsys):
    assert main(["check", str(mini_spec)]) == 0
    out = capsys.readouterr().out
    for word in ("fc0", "fc1", "argmax", "total", "cycles per inference", "u8", "bin", "s"):
        assert word in out


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


@pytest.mark.parametrize("command", ["check", "generate", "sim", "build", "flow"])
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
    assert main(["sim", str(mini_spec), "--bulk", "2", "--work-dir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "bulk: every output and score of" in out
    assert "every-beat bench on the first 2 inference(s)" in out and "accuracy" in out


def test_sim_bulk_needs_verilator(mini_spec, tmp_path, capsys):
    assert main(["sim", str(mini_spec), "--bulk", "--simulator", "icarus",
                 "--work-dir", str(tmp_path / "w")]) == 2
    assert "--bulk runs on verilator only" in capsys.readouterr().err


@pytest.mark.cocotb
def test_sim_mismatch_exits_1_and_names_the_first(mini_spec, tmp_path, capsys, monkeypatch):
    from tests.sim.test_runner import _mutated

    real_write = runner.write_verilog
    monkeypatch.setattr(runner, "write_verilog",
                        lambda network, path: real_write(_mutated(network, "fc1"), path))
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
                                   f"'conv9' (expected one of: add, argmax, conv2d, dense, "
                                   f"depthwise_conv2d, flatten, global_sum_pool, maxpool)")


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
    dw = json.loads(capsys.readouterr().out)["layers"][0]
    assert (dw["kind"], dw["mac"], dw["dsp_pack"], dw["pe"], dw["simd"]) == \
        ("depthwise_conv2d", "dsp", 1, 2, 1)
    assert dw["cycles"] == 36 * 2 * 9 and dw["macs"] == 36 * 4 * 9
