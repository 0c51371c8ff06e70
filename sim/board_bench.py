"""cocotb bench of a whole simulated board: :class:`hwgen.rtl.board.BoardLogic` (UART receiver →
protocol core → network → UART transmitter) with a host UART on its ``rx``/``tx`` lines at the
real bit timing (1 / baud seconds per bit against the board's clock period).

Started by :func:`hwgen_sim.runner.board_session`, which writes the case file named by
``HWGEN_CASE`` (JSON). Two modes:

- ``script``: send each request's bytes, wait for the response frame when one is expected
  (the next request goes out the moment it is complete), and record every byte the board
  sent, when each request started (``send_ns``) and when each frame ended (``frame_ns``);
- ``pty``: open a pseudo-terminal, publish its path, and bridge it to the UART lines until the
  host program on the other side is done — the bytes a user's board would see.
"""

from __future__ import annotations

import json
import os
import time
import tty
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, Timer
from cocotb.utils import get_sim_time

from hwgen.protocol import FrameDecoder


class HostUart:
    """The host's side of an 8N1 line: drives ``dut.rx``, decodes ``dut.tx``."""

    def __init__(self, dut, bit_ps: int):
        self.dut, self.bit_ps = dut, bit_ps
        self.received = bytearray()
        self.decoder = FrameDecoder()
        self.frames = 0
        self.frame_ns: list[float] = []  # when each frame's last byte arrived
        self.frame_done = Event()
        self.on_byte = None

    async def send(self, data: bytes) -> None:
        for byte in data:
            bits = [0] + [(byte >> i) & 1 for i in range(8)] + [1]
            for bit in bits:
                self.dut.rx.value = bit
                await Timer(self.bit_ps, unit="ps")

    async def monitor(self) -> None:
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(self.bit_ps // 2, unit="ps")
            if self.dut.tx.value:  # a glitch, not a start bit
                continue
            byte = 0
            for i in range(8):
                await Timer(self.bit_ps, unit="ps")
                byte |= int(self.dut.tx.value) << i
            await Timer(self.bit_ps, unit="ps")
            assert self.dut.tx.value == 1, "stop bit low on the board's tx line"
            self.received.append(byte)
            for _ in self.decoder.feed(bytes([byte])):
                self.frames += 1
                self.frame_ns.append(get_sim_time("ns"))
                self.frame_done.set()
            if self.on_byte is not None:
                self.on_byte(byte)


@cocotb.test()
async def board(dut):
    case = json.loads(Path(os.environ["HWGEN_CASE"]).read_text())
    Clock(dut.clk, case["clk_ps"], unit="ps").start()
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    host = HostUart(dut, case["bit_ps"])
    cocotb.start_soon(host.monitor())
    byte_ps = 10 * case["bit_ps"]
    result = {"timed_out": False}
    if case["mode"] == "script":
        # each step's first byte and its response's last byte, in ns of simulated time: the
        # link's rate end to end (tests/sim/test_board_bench.py)
        result["send_ns"] = []
        for step in case["steps"]:
            result["send_ns"].append(get_sim_time("ns"))
            await host.send(bytes.fromhex(step["send"]))
            if step["answered"]:
                want = host.frames + 1
                deadline = Timer(case["response_timeout_ps"], unit="ps")
                while host.frames < want:
                    host.frame_done.clear()
                    if await First(host.frame_done.wait(), deadline) is deadline:
                        break
                if host.frames < want:
                    result["timed_out"] = True
                    break
            else:
                await Timer(step.get("idle_ps", 0) + byte_ps, unit="ps")
    else:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        host.on_byte = lambda b: os.write(master, bytes([b]))
        Path(case["pty_file"]).write_text(os.ttyname(slave))
        done = Path(case["done_file"])
        deadline = time.monotonic() + case["wall_timeout_s"]
        while not done.exists():
            if time.monotonic() > deadline:
                result["timed_out"] = True
                break
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, OSError):
                data = b""
            if data:
                await host.send(data)
            else:
                await Timer(byte_ps, unit="ps")
        os.close(master)
        os.close(slave)
    result.update(received=host.received.hex(), frames=host.frames, frame_ns=host.frame_ns,
                  sim_ns=get_sim_time("ns"))
    Path(case["results"]).write_text(json.dumps(result))
