"""ECP5: flip-flops that take a block RAM's read data moved into the block RAM's own output
register, between Yosys and nextpnr.

A DP16KD gives its read data 5.6 ns after the clock (nextpnr's model, speed grade 6), 0.97 ns
with its output register on (``REGMODE_x = "OUTREG"``). Yosys maps memories with the output
register off and keeps a flip-flop that follows a read as a fabric flip-flop, wherever the
placer puts it, so the 5.6 ns and the route to that flip-flop fall in one cycle. The units
register every block-RAM read on ECP5 (:mod:`hwgen.rtl.memory`); this pass puts each such
register into the block RAM, which is the same function: the output register is written with
the read data on each clock edge its ``OCE`` is high, as the flip-flop was on each edge its
enable was high, and starts at 0 as the flip-flop did.

A block RAM's port is rewritten only when every read-data pin of it that anything uses drives
exactly one flip-flop's ``DI`` and nothing else, and those flip-flops share the block RAM's
clock (not inverted), one enable (or none), no set/reset (``LSR`` tied 0: the units' data
registers are reset-less) and a 0 start value, and none of them drives more than
:data:`MAX_FANOUT` inputs; the block RAM must have its resets tied 0. In
the 36-bit pseudo-dual-port mode (``DATA_WIDTH_B = 36``, read on port B) both halves' output
registers are turned on, as nextpnr does for a ``PDPW16KD`` with ``REGMODE = "OUTREG"``, and
both ports' ``OCE`` and clock pins take the enable and the read clock (a ROM's unused write
port, clock tied 0 and disabled, is clocked too; a write port on another clock is left alone).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

__all__ = ["MAX_FANOUT", "absorb_output_registers", "absorb_output_registers_in"]


#: Most inputs a register's output may drive for it to move into a block RAM: a register
#: that feeds many (a folded unit's input word, one bit to every channel's dot product) stays
#: in the fabric, where the placer can put it among its loads.
MAX_FANOUT = 4


def _width(value) -> int:
    """A Yosys JSON parameter (a binary string, or an int) as an int."""
    return int(value, 2) if isinstance(value, str) else int(value)


def _loads(module: dict) -> dict[int, list[tuple[str, str]]]:
    """Per net bit, the (cell, port) inputs it drives (``"<port>"`` for the module's outputs)."""
    loads: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, cell in module["cells"].items():
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) != "output":
                for bit in bits:
                    if isinstance(bit, int):
                        loads[bit].append((name, port))
    for name, port in module.get("ports", {}).items():
        for bit in port["bits"]:
            if isinstance(bit, int):
                loads[bit].append(("<port>", name))
    return loads


def _enable(ff: dict):
    """A flip-flop's enable as a connection bit (``"1"``: always), ``None`` if it is not a
    plain enable."""
    mux = ff["parameters"].get("CEMUX", "1").strip()
    if mux == "1":
        return "1"
    if mux == "CE":
        return ff["connections"]["CE"][0]
    return None


def _plain_register(ff: dict, clock) -> bool:
    """The flip-flop is clocked by ``clock`` on its rising edge, starts at 0 and is never
    set or reset."""
    p = ff["parameters"]
    return (ff["connections"]["CLK"] == [clock] and p.get("CLKMUX", "CLK") == "CLK"
            and ff["connections"].get("LSR", ["0"]) == ["0"]
            and p.get("REGSET", "RESET") == "RESET")


def _read_registers(bram: dict, cells: dict, loads: dict) -> dict[str, list] | None:
    """Per output register to turn on (``"A"``, ``"B"``, or ``"AB"`` for both halves of the
    36-bit mode), the (read-data pin, flip-flop) pairs it replaces; ``None`` unless every used
    read-data pin drives one flip-flop's ``DI`` and nothing else."""
    pdp = _width(bram["parameters"].get("DATA_WIDTH_B", 18)) == 36
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pin, bits in bram["connections"].items():
        if not pin.startswith("DO") or not bits or not isinstance(bits[0], int):
            continue
        users = loads.get(bits[0], [])
        if not users:
            continue
        user, user_port = users[0]
        if len(users) > 1 or user_port != "DI" or cells.get(user, {}).get("type") != "TRELLIS_FF":
            return None
        groups["AB" if pdp else pin[2]].append((pin, user))
    return groups or None


def _register_plan(bram: dict, cells: dict, loads: dict) -> list | None:
    """(register, pairs, clock, enable) for each output register of ``bram`` to turn on, or
    ``None`` where the module docstring's conditions do not all hold."""
    p, conn = bram["parameters"], bram["connections"]
    if (p.get("REGMODE_A", "NOREG"), p.get("REGMODE_B", "NOREG")) != ("NOREG", "NOREG") \
            or conn.get("RSTA", ["0"]) != ["0"] or conn.get("RSTB", ["0"]) != ["0"] \
            or p.get("CLKAMUX", "CLKA") != "CLKA" or p.get("CLKBMUX", "CLKB") != "CLKB":
        return None
    groups = _read_registers(bram, cells, loads)
    if groups is None:
        return None
    plan = []
    for port, members in groups.items():
        ffs = [cells[ff] for _, ff in members]
        clock = conn.get(f"CLK{port[-1]}", [None])[0]
        enables = {_enable(ff) for ff in ffs}
        if len(enables) != 1 or None in enables \
                or not all(_plain_register(ff, clock) for ff in ffs) \
                or max(len(loads.get(ff["connections"]["Q"][0], ())) for ff in ffs) > MAX_FANOUT:
            return None
        if port == "AB" and conn.get("CLKA") != [clock] \
                and (conn.get("CLKA") != ["0"] or conn.get("CEA") != ["0"]):
            return None  # the write side runs on another clock
        plan.append((port, members, clock, enables.pop()))
    return plan


def absorb_output_registers(module: dict) -> int:
    """Rewrite ``module`` (a Yosys JSON module after ``synth_ecp5``) as the module docstring
    says; the number of block-RAM ports whose output register was turned on."""
    cells = module["cells"]
    loads = _loads(module)
    absorbed = 0
    for bram in [c for c in cells.values() if c["type"] == "DP16KD"]:
        for port, members, clock, enable in _register_plan(bram, cells, loads) or ():
            for x in port:
                bram["parameters"][f"REGMODE_{x}"] = "OUTREG"
                bram["connections"][f"OCE{x}"] = [enable]
                bram["connections"][f"CLK{x}"] = [clock]
            for pin, ff in members:
                bram["connections"][pin] = cells[ff]["connections"]["Q"]
                del cells[ff]
            absorbed += 1
    return absorbed


def absorb_output_registers_in(path: Path) -> int:
    """:func:`absorb_output_registers` on the top module of the Yosys JSON netlist at
    ``path``, written back in place; the number of ports rewritten."""
    netlist = json.loads(Path(path).read_text())
    modules = netlist["modules"]
    top = next((m for m in modules.values() if m.get("attributes", {}).get("top")), None)
    if top is None:
        raise ValueError(f"{path}: no top module")
    count = absorb_output_registers(top)
    if count:
        Path(path).write_text(json.dumps(netlist))
    return count
