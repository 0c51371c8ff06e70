"""A misbehaving hwgen board on a pseudo-terminal, for the link fuzzer.

:class:`FakeBoard` plays the board's side of docs/protocol.md in Python: it decodes each
request and builds the answer a correct board would send (INFO_REPLY for its network, RESULT
from the golden model, LOAD_REPLY), then, as its seeded fault plan says, sends it damaged,
late, twice, out of order, not at all, after noise or a made-up frame, with another request's
id, or with a class that is not the argmax of its scores. With ``lie`` it may also send a
well-formed RESULT with the right id and wrong scores (a board that computes wrongly): only
the golden-model check can catch that one.
"""

from __future__ import annotations

import os
import select
import struct
import threading
import time
from collections import Counter

import numpy as np

from hwgen import golden, protocol
from hwgen.protocol import Command

#: Every way an answer can go wrong; "ok" sends it as a correct board would.
FAULTS = ("ok", "corrupt", "truncate", "delay", "repeat", "reorder", "invent", "noise", "drop",
          "wrong_id", "not_argmax", "fake_header")


class FakeBoard(threading.Thread):
    """A board running ``network`` on the master side of a pseudo-terminal.

    Parameters
    ----------
    network : Network
        What the board runs (INFO carries its id; RESULTs come from the golden model).
    rng : numpy.random.Generator
        Draws the fault of every answer and its details.
    faults : dict
        Fault name → weight (missing names weigh 0).
    delay_s : float
        The scale of delays (a late answer comes 0.5 … 2 × this after the request).
    lie : bool
        Allow "lie": a valid RESULT, right id, wrong scores and their argmax.

    Members
    -------
    port : str
        The path a host opens.
    applied : Counter
        How often each fault was applied.
    lies : set
        The request ids that were answered with a lie.
    """

    def __init__(self, network, rng: np.random.Generator, faults: dict[str, float], *,
                 delay_s: float = 0.3, lie: bool = False):
        super().__init__(daemon=True)
        self.network, self.rng, self.delay_s, self.lie = network, rng, delay_s, lie
        names = [f for f in (*FAULTS, "lie") if faults.get(f, 0) > 0 and (f != "lie" or lie)]
        weights = np.array([faults[f] for f in names], dtype=float)
        self.names, self.weights = names, weights / weights.sum()
        self.master, slave = os.openpty()
        self._slave = slave
        self.port = os.ttyname(slave)
        self.applied: Counter = Counter()
        self.lies: set[int] = set()
        self._decoder = protocol.FrameDecoder()
        self._outbox: list[tuple[float, bytes]] = []
        self._held: bytes | None = None
        self._finished = threading.Event()
        self.classes = network.layer_io()[-1][1].size
        self.info = protocol.Info(
            network_id=protocol.network_id(network), input_bytes=network.input_type.size,
            classes=self.classes, weight_bytes=0, weights_next=0, clock_hz=12_000_000,
            baud=115200, cycles_per_inference=256)

    # The correct answer --------------------------------------------------------------------

    def _result(self, payload: bytes) -> protocol.Result:
        t = self.network.input_type
        raw = np.frombuffer(payload, dtype=np.uint8).astype(np.int64)
        if t.binary:
            x = 2 * (raw & 1) - 1
        else:
            x = raw & ((1 << t.bits) - 1)
            if t.signed:
                x = np.where(x >= 1 << (t.bits - 1), x - (1 << t.bits), x)
        x = x.reshape(1, *t.shape)
        values = golden.run(self.network, x)
        scores = values[self.network.layers[-2].name].reshape(-1)
        return protocol.Result(int(golden.predict(self.network, x)[0]),
                               tuple(int(s) for s in scores), 900, 705)

    def _answer(self, frame: protocol.Frame) -> tuple[int, bytes]:
        """What a correct board answers: (command, payload)."""
        if frame.command == Command.INFO:
            return Command.INFO_REPLY, protocol.info_payload(self.info)
        if frame.command == Command.INFER:
            if len(frame.payload) != self.info.input_bytes:
                return Command.ERROR, protocol.error_payload(
                    protocol.ErrorReply(protocol.ErrorCode.BAD_LENGTH, Command.INFER))
            return Command.RESULT, protocol.result_payload(self._result(frame.payload))
        return Command.ERROR, protocol.error_payload(
            protocol.ErrorReply(protocol.ErrorCode.UNKNOWN_COMMAND, frame.command))

    # Faults --------------------------------------------------------------------------------

    def _send(self, data: bytes, after_s: float = 0.0) -> None:
        self._outbox.append((time.monotonic() + after_s, data))

    def _random_frame(self, rid: int) -> bytes:
        rng = self.rng
        command = int(rng.choice([Command.RESULT, Command.INFO_REPLY, Command.LOAD_REPLY,
                                  Command.ERROR]))
        size = int(rng.integers(0, 64))
        other = int(rng.integers(0, 0x10000))
        if other == rid:
            other ^= 1
        return protocol.encode_frame(command, rng.bytes(size), request_id=other)

    def _respond(self, frame: protocol.Frame) -> None:
        rng, rid = self.rng, frame.request_id
        command, payload = self._answer(frame)
        good = protocol.encode_frame(command, payload, request_id=rid)
        fault = str(rng.choice(self.names, p=self.weights))
        if command != Command.RESULT and fault in ("not_argmax", "lie"):
            fault = "ok"
        self.applied[fault] += 1
        if self._held is not None and fault != "reorder":
            held, self._held = self._held, None
            self._send(held, 0.0)
        if fault == "ok":
            self._send(good)
        elif fault == "corrupt":
            bad = bytearray(good)
            bad[int(rng.integers(0, len(bad)))] ^= 1 << int(rng.integers(0, 8))
            self._send(bytes(bad))
        elif fault == "truncate":
            self._send(good[:int(rng.integers(1, len(good)))])
        elif fault == "delay":
            self._send(good, float(rng.uniform(0.5, 2.0)) * self.delay_s)
        elif fault == "repeat":
            self._send(good)
            self._send(good, float(rng.uniform(0.0, 1.5)) * self.delay_s)
        elif fault == "reorder":
            if self._held is not None:
                self._send(good)
                held, self._held = self._held, None
                self._send(held)
            else:
                self._held = good
        elif fault == "invent":
            self._send(self._random_frame(rid) + (good if rng.random() < 0.7 else b""))
        elif fault == "noise":
            self._send(rng.bytes(int(rng.integers(1, 200))) + good)
        elif fault == "fake_header":
            fake = struct.pack("<2sBBHH", protocol.MAGIC, protocol.VERSION, int(command),
                               rid, int(rng.integers(0, 0x10000)))
            self._send(fake + good)
        elif fault == "drop":
            pass
        elif fault == "wrong_id":
            other = (rid + int(rng.integers(1, 0xFFFF))) % 0x10000
            self._send(protocol.encode_frame(command, payload, request_id=other))
        elif fault in ("not_argmax", "lie"):
            r = self._result(frame.payload)
            if fault == "not_argmax":
                best = r.predicted
                wrong = (best + int(rng.integers(1, self.classes))) % self.classes
                if r.scores[wrong] == r.scores[best] and wrong < best:
                    wrong = best  # a lower tie is the argmax too: send the truth
                r = protocol.Result(wrong, r.scores, r.cycles_first, r.cycles_last)
            else:
                scores = list(r.scores)
                scores[int(rng.integers(0, len(scores)))] += int(rng.integers(1, 1000))
                best = max(range(len(scores)), key=lambda i: (scores[i], -i))
                r = protocol.Result(best, tuple(scores), r.cycles_first, r.cycles_last)
                self.lies.add(rid)
            self._send(protocol.encode_frame(Command.RESULT, protocol.result_payload(r),
                                             request_id=rid))

    # The loop ------------------------------------------------------------------------------

    def run(self) -> None:
        while not self._finished.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.005)
            if ready:
                try:
                    data = os.read(self.master, 1 << 16)
                except OSError:
                    return
                for frame in self._decoder.feed(data):
                    self._respond(frame)
            now = time.monotonic()
            due = [item for item in self._outbox if item[0] <= now]
            self._outbox = [item for item in self._outbox if item[0] > now]
            for _, data in sorted(due, key=lambda item: item[0]):
                try:
                    os.write(self.master, data)
                except OSError:
                    return

    def __enter__(self) -> FakeBoard:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._finished.set()
        self.join(5)
        os.close(self.master)
        os.close(self._slave)
