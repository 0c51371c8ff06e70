"""The host side of the UART protocol (docs/protocol.md): a board built by ``hwgen build``,
driven over a serial port.

::

    from hwgen import runtime, spec

    network = spec.load("designs/digits_bnn.toml")
    with runtime.Board("/dev/ttyUSB1", network=network) as board:
        board.check_network()              # the board runs this spec (else LinkError)
        if not board.info().weights_loaded:
            board.load_weights()           # SPRAM weights (UP5K), once per configuration
        result = board.infer(x)            # protocol.Result: predicted, scores, cycles

Every request carries a fresh id and waits, until a deadline (:meth:`Board.deadline`), for the
one response that echoes that id: a late answer to an abandoned request, a repeated answer or
noise is dropped, never taken for the answer to a new request. A silent board, a serial error,
an implausible INFO or a malformed answer (a RESULT whose class is not the argmax of its
scores included) raise :class:`LinkError`, an ERROR frame raises :class:`BoardReplyError`;
nothing blocks longer than the deadline. After a timeout the board is given its idle time (at
most the user's timeout) to drop any partial frame and the input is flushed.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import serial

from . import golden, protocol
from .protocol import Command, ErrorCode
from .spec import Network

__all__ = ["DEFAULT_BAUD", "LinkError", "BoardReplyError", "Board", "ProgressBar",
           "ERROR_MEANINGS", "Mismatch", "RunReport", "run_inferences", "infer_frame_bytes",
           "result_frame_bytes", "line_rate"]

#: The UART rate of a board this host knows nothing about (docs/protocol.md); a known board's
#: own rate is ``hwgen.toolchain.boards.Board.baud`` (3 Mbaud on the iCEBreaker).
DEFAULT_BAUD = 115200
#: Bits per byte on the line: start bit, 8 data bits, stop bit.
BITS_PER_BYTE = 10
#: The board drops a partial frame after the line is idle this long (docs/protocol.md).
BOARD_IDLE_S = 0.1
#: Added to every default deadline: USB serial adapters batch bytes (FTDI: 16 ms) and
#: operating systems schedule late.
MARGIN_S = 0.25
#: Clock assumed for the board's compute time before INFO has told the real one (slow on
#: purpose: it only lengthens deadlines).
SLOWEST_CLOCK_HZ = 1_000_000
#: Longest wait inside one read call, so deadlines are kept to within this.
POLL_S = 0.02
#: The range of explicit timeouts a Board accepts, in seconds.
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 0.001, 86_400.0
#: The clock frequencies a board may report in INFO; anything else is not an hwgen board (or
#: a corrupted answer) and would make every deadline absurd.
MIN_CLOCK_HZ, MAX_CLOCK_HZ = 1_000_000, 1_000_000_000

#: What each ERROR code means, for messages.
ERROR_MEANINGS = {
    ErrorCode.BAD_CRC: "the request reached the board with a bad CRC: noise on the line or a "
                       "different baud rate",
    ErrorCode.BAD_VERSION: "the board speaks another protocol version",
    ErrorCode.UNKNOWN_COMMAND: "the board does not know the command",
    ErrorCode.BAD_LENGTH: "the request's length does not fit the command (INFER: the board's "
                          "network takes another number of input bytes)",
    ErrorCode.NOT_LOADED: "the SPRAM weights are not loaded yet (Board.load_weights; hwgen "
                          "run loads them)",
    ErrorCode.BAD_OFFSET: "LOAD at an offset that is neither 0 nor the board's next expected "
                          "one, or past the end of its weight image",
    ErrorCode.TIMEOUT: "the board timed out: the line went idle in the middle of a frame, or "
                       "the network did not answer",
}

_ANSWERS = {Command.INFER: Command.RESULT, Command.INFO: Command.INFO_REPLY,
            Command.LOAD: Command.LOAD_REPLY}
#: Header and CRC of every frame.
_FRAME = protocol.HEADER_BYTES + protocol.CRC_BYTES


class LinkError(Exception):
    """The board could not be reached or did not answer properly: a port that cannot be
    opened, a serial error, no valid response before the deadline, a malformed or unexpected
    response. The message names the port."""


class BoardReplyError(LinkError):
    """The board answered with an ERROR frame. ``code`` is the :class:`ErrorCode` (or the
    raw number of an unknown one) and ``command`` the command byte of the request it
    answers."""

    def __init__(self, port: str, code: ErrorCode | int, command: int):
        self.port, self.code, self.command = port, code, command
        name = code.name if isinstance(code, ErrorCode) else f"code {int(code)}"
        meaning = ERROR_MEANINGS.get(code, "an error code this host does not know")
        super().__init__(f"{port}: the board answered {_command_name(command)} with ERROR "
                         f"{name}: {meaning}")


def _command_name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"command 0x{command:02x}"


class Board:
    """A board running an hwgen design, on a serial port. Opens the port at construction; use
    it as a context manager (or call :meth:`close`).

    Parameters
    ----------
    port : str
        The serial device (``/dev/ttyUSB1``, ``COM4``, a pseudo-terminal's path).
    baud : int
        The board's UART rate (default 115200; ``hwgen build --baud`` changes it).
    timeout : float or None
        Seconds to wait for each response. ``None`` (default) computes a deadline per request
        from its size (:meth:`deadline`); give a number for slow links, such as a simulated
        board that runs far slower than real time.
    network : Network or None
        The network the board should run. Needed by :meth:`infer`, :meth:`infer_many`,
        :meth:`check_network` and for :meth:`load_weights` without an explicit image.

    Members
    -------
    port, baud, timeout, network
        As given.
    serial : serial.Serial
        The open port.
    last_seconds : float
        Host time of the last request, from the first byte written to its response decoded.
    """

    def __init__(self, port: str, *, baud: int = DEFAULT_BAUD, timeout: float | None = None,
                 network: Network | None = None):
        if not isinstance(baud, int) or baud < 1:
            raise ValueError(f"baud must be a positive integer, not {baud!r}")
        if timeout is not None and not MIN_TIMEOUT_S <= timeout <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout must be a number of seconds from {MIN_TIMEOUT_S} to "
                             f"{MAX_TIMEOUT_S:g}, not {timeout!r}")
        self.port, self.baud, self.timeout, self.network = port, baud, timeout, network
        self.last_seconds = 0.0
        self._info: protocol.Info | None = None
        self._plan = None
        self._decoder = protocol.FrameDecoder()
        self._stale = 0  # valid answers dropped because they carried another request's id
        self._last_id = 0
        # A write only blocks when the port does not drain; allow the longest frame twice.
        longest = protocol.HEADER_BYTES + 0xFFFF + protocol.CRC_BYTES
        write_timeout = max(timeout or 0.0, 2 * longest * BITS_PER_BYTE / baud + MARGIN_S)
        try:
            self.serial = serial.Serial(port, baud, timeout=POLL_S,
                                        write_timeout=write_timeout, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"cannot open serial port {port}: {_reason(exc)}") from None
        self.serial.reset_input_buffer()  # an answer to a request of an earlier program

    def close(self) -> None:
        self.serial.close()

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Requests -----------------------------------------------------------------------------

    def info(self) -> protocol.Info:
        """INFO: what the board runs, its clock and baud rate, and the weight-loading state.
        A reply no hwgen board sends (a clock outside 1 MHz … 1 GHz, another baud rate than
        this link's, more weights loaded than the image holds, no classes) raises LinkError."""
        info = self._request(lambda rid: protocol.info_request(request_id=rid),
                             Command.INFO_REPLY)
        problems = []
        if not MIN_CLOCK_HZ <= info.clock_hz <= MAX_CLOCK_HZ:
            problems.append(f"a clock of {info.clock_hz} Hz (expected {MIN_CLOCK_HZ / 1e6:g} "
                            f"MHz to {MAX_CLOCK_HZ / 1e6:g} MHz)")
        if info.baud != self.baud:
            problems.append(f"{info.baud} baud (this link runs at {self.baud})")
        if info.weights_next > info.weight_bytes:
            problems.append(f"{info.weights_next} of {info.weight_bytes} weight bytes loaded")
        if not 1 <= info.classes <= protocol.MAX_CLASSES:
            problems.append(f"{info.classes} classes (expected 1 … {protocol.MAX_CLASSES})")
        if not info.input_bytes or not info.cycles_per_inference:
            problems.append(f"{info.input_bytes} input bytes and {info.cycles_per_inference} "
                            f"cycles per inference (expected both above 0)")
        if problems:
            raise LinkError(f"{self.port}: the board's INFO reports " + "; ".join(problems)
                            + ": not an hwgen board, or a corrupted answer")
        self._info = info
        return info

    def check_network(self) -> protocol.Info:
        """INFO, checked against :attr:`network`: the same network_id and input size, else a
        LinkError naming both ids. Returns the INFO."""
        network = self._need_network("check_network")
        info = self.info()
        ours = protocol.network_id(network)
        size = network.input_type.size
        classes = network.layer_io()[-1][1].size
        if info.network_id != ours or info.input_bytes != size or info.classes != classes:
            raise LinkError(
                f"{self.port}: the board runs network 0x{info.network_id:08x} "
                f"({info.input_bytes} input bytes, {info.classes} classes), not "
                f"{network.name} (0x{ours:08x}, {size} input bytes); program it with a "
                f"bitstream built from this spec")
        return info

    def load_weights(self, image: bytes | None = None, *,
                     progress: Callable[[int, int], None] | None = None
                     ) -> protocol.LoadReply | None:
        """Load the SPRAM weight image (default ``hwgen.weight_image.spram_image(network)``)
        with LOAD requests of :data:`~hwgen.protocol.MAX_LOAD_DATA` bytes, in order from
        offset 0. Each reply must name the next offset, and the last must say loaded.
        ``progress(done, total)`` is called after each reply. Returns the last reply (``None``
        for an empty image)."""
        if image is None:
            from .weight_image import spram_image

            image = spram_image(self._need_network("load_weights"))
        image = bytes(image)
        if self._info is not None and len(image) != self._info.weight_bytes:
            name = self.network.name if self.network is not None else "the"
            raise LinkError(f"{self.port}: the board expects {self._info.weight_bytes} bytes "
                            f"of SPRAM weights, {name}'s image has {len(image)}")
        if len(image) % 2:
            raise ValueError(f"a weight image has an even number of bytes, not {len(image)}")
        reply = None
        for offset in range(0, len(image), protocol.MAX_LOAD_DATA):
            chunk = image[offset:offset + protocol.MAX_LOAD_DATA]
            reply = self._request(
                lambda rid, o=offset, c=chunk: protocol.load_request(o, c, request_id=rid),
                Command.LOAD_REPLY)
            if reply.weights_next != offset + len(chunk):
                raise LinkError(f"{self.port}: LOAD of {len(chunk)} bytes at offset {offset}: "
                                f"the board expects offset {reply.weights_next} next, not "
                                f"{offset + len(chunk)}")
            if progress is not None:
                progress(offset + len(chunk), len(image))
        if reply is not None and not reply.weights_loaded:
            raise LinkError(f"{self.port}: the board still expects weights after all "
                            f"{len(image)} bytes of the image (a bitstream built from another "
                            f"spec?)")
        return reply

    def infer(self, x) -> protocol.Result:
        """INFER one input tensor (the network's input shape, integer values in its range;
        ValueError otherwise): the predicted class, the classifier scores and the board's
        cycle counts."""
        network = self._need_network("infer")
        x = golden.check_inputs(network, np.asarray(x)[None])
        return self._infer_checked(x[0])

    def infer_many(self, xs, *, progress: bool | Callable[[int, int], None] = False
                   ) -> Iterator[protocol.Result]:
        """INFER each input of ``xs`` (N × input shape, all checked before the first is sent),
        yielding the results in order. ``progress``: ``True`` for a progress bar on stderr
        (when it is a terminal), or a function called with (done, total) after each."""
        network = self._need_network("infer_many")
        xs = golden.check_inputs(network, xs)
        report = progress
        bar = None
        if progress is True:
            bar = ProgressBar(len(xs))
            report = bar.update
        try:
            for i, x in enumerate(xs):
                yield self._infer_checked(x)
                if report:
                    report(i + 1, len(xs))
        finally:
            if bar is not None:
                bar.close()

    # Deadlines ----------------------------------------------------------------------------

    def deadline(self, request_bytes: int, response_bytes: int, compute_cycles: int = 0
                 ) -> float:
        """Seconds to wait for a response: the explicit ``timeout`` if one was given, else
        twice the request's and the response's time on the line (10 bits per byte at the
        baud rate), plus ``compute_cycles`` at the board's clock (from INFO, checked to lie in
        1 MHz … 1 GHz; 1 MHz before INFO has been asked), plus 0.25 s."""
        if self.timeout is not None:
            return self.timeout
        wire = (request_bytes + response_bytes) * BITS_PER_BYTE / self.baud
        return 2 * wire + compute_cycles / self._clock_hz() + MARGIN_S

    def _clock_hz(self) -> int:
        return self._info.clock_hz if self._info and self._info.clock_hz else SLOWEST_CLOCK_HZ

    def _network_cycles(self) -> int:
        """The board's own network timeout (4 × (latency bound + cycles per inference))."""
        if self.network is not None:
            if self._plan is None:
                from .plan import plan

                self._plan = plan(self.network)
            return 4 * (self._plan.latency_bound + self._plan.cycles_per_inference)
        if self._info is not None:
            return 8 * self._info.cycles_per_inference
        return 0

    def _idle_s(self) -> float:
        """How long the line must stay quiet for the board to drop a partial frame (its idle
        timeout, never shorter than the network timeout and two bytes on the line), but never
        longer than an explicit ``timeout``."""
        board = 1.2 * max(BOARD_IDLE_S, (self._network_cycles() / self._clock_hz()
                                         + 20 / self.baud))
        return board if self.timeout is None else min(board, self.timeout)

    # The exchange -------------------------------------------------------------------------

    def _need_network(self, method: str) -> Network:
        if self.network is None:
            raise ValueError(f"Board.{method} needs the network: Board(port, network=...)")
        return self.network

    def _infer_checked(self, x: np.ndarray) -> protocol.Result:
        network = self.network
        classes = network.layer_io()[-1][1].size
        data = protocol.input_bytes(x, network.input_type.binary)
        result = self._request(lambda rid: protocol.infer_request(data, request_id=rid),
                               Command.RESULT, classes, self._network_cycles())
        if len(result.scores) != classes or not 0 <= result.predicted < classes:
            raise LinkError(f"{self.port}: RESULT with class {result.predicted} of "
                            f"{len(result.scores)} scores; {network.name} has {classes} "
                            f"classes")
        return result

    def _next_request_id(self) -> int:
        """1, 2, … MAX_REQUEST_ID, then 1 again (0 is never a request's id)."""
        self._last_id = self._last_id % protocol.MAX_REQUEST_ID + 1
        return self._last_id

    def _request(self, make_frame: Callable[[int], bytes], answer: Command, classes: int = 0,
                 compute_cycles: int = 0):
        """Send the frame ``make_frame(request_id)`` and return its parsed response: a frame
        carrying that id, ``answer`` (a RESULT of ``classes`` scores) or ERROR."""
        request_id = self._next_request_id()
        frame = make_frame(request_id)
        size = (protocol.result_bytes(classes) if answer == Command.RESULT
                else protocol.MAX_PAYLOAD[answer])
        wait = self.deadline(len(frame), _FRAME + size, compute_cycles)
        start = time.monotonic()
        try:
            self.serial.write(frame)
            response = self._receive(request_id, answer, size, start + wait)
        except serial.SerialTimeoutException:
            raise LinkError(f"{self.port}: could not write a {len(frame)}-byte request within "
                            f"{self.serial.write_timeout:.2f} s (the port does not drain)"
                            ) from None
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"{self.port}: serial error: {_reason(exc)} (was the board "
                            f"unplugged?)") from None
        if response is None:
            self._resync()
            raise LinkError(self._silence_message(wait))
        self.last_seconds = time.monotonic() - start
        if isinstance(response, protocol.ErrorReply):
            raise BoardReplyError(self.port, response.code, response.command)
        return response

    def _receive(self, request_id: int, answer: Command, size: int, deadline: float):
        """The response carrying ``request_id`` (``answer`` of ``size`` payload bytes, or an
        ERROR), or None at the deadline. The decoder takes no header that claims another
        size, so noise cannot hold it past the real frame; valid frames that carry another
        id (late or repeated answers to earlier requests) are counted and dropped."""
        decoder = protocol.FrameDecoder({answer: size, Command.ERROR: protocol.MAX_PAYLOAD[
            Command.ERROR]})
        self._decoder, self._stale = decoder, 0
        while time.monotonic() < deadline:
            data = self.serial.read(self.serial.in_waiting or 1)
            for frame in decoder.feed(data) if data else ():
                if frame.request_id != request_id:
                    self._stale += 1
                    continue
                try:
                    return protocol.parse_response(frame)
                except protocol.ProtocolError as exc:
                    self._resync()
                    raise LinkError(f"{self.port}: malformed response to "
                                    f"{answer.name.removesuffix('_REPLY')} request "
                                    f"{request_id}: {exc}") from None
        return None

    def _silence_message(self, wait: float) -> str:
        what = (f"is the board programmed with {self.network.name}" if self.network else
                "is the board programmed with an hwgen design")
        noise = self._decoder
        if noise.other_versions:
            versions = ", ".join(str(v) for v in sorted(noise.other_versions))
            return (f"no response from {self.port} within {wait:.2f} s that this host can "
                    f"read: the board speaks protocol version {versions}, this host "
                    f"{protocol.VERSION} (rebuild the bitstream with this hwgen)")
        message = (f"no response from {self.port} within {wait:.2f} s ({what}, at "
                   f"{self.baud} baud?)")
        heard = []
        if noise.skipped_bytes:
            heard.append(f"{noise.skipped_bytes} byte(s) that were not frames")
        if noise.bad_frames:
            heard.append(f"{noise.bad_frames} frame(s) with a bad CRC or a header that "
                         f"cannot be an answer")
        if self._stale:
            heard.append(f"{self._stale} answer(s) carrying another request's id")
        if heard:
            message += "; received " + ", ".join(heard)
        return message

    def _resync(self) -> None:
        """Let the board drop a partial frame (its idle time), then flush what it sent."""
        try:
            time.sleep(self._idle_s())
            self.serial.reset_input_buffer()
        except serial.SerialException:
            pass


def _reason(exc: BaseException) -> str:
    """An exception's message; for an OS error (pyserial's are OSErrors too) the system's
    words for its errno, without pyserial's echo of the port name."""
    if isinstance(exc, OSError) and exc.errno in (errno.EAGAIN, errno.EBUSY):
        return "busy (another program has it open)"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def infer_frame_bytes(network: Network) -> int:
    """Bytes of one INFER frame for ``network``: header, one byte per input element, CRC."""
    return protocol.HEADER_BYTES + network.input_type.size + protocol.CRC_BYTES


def result_frame_bytes(network: Network) -> int:
    """Bytes of one RESULT frame for ``network``: header, class, cycles and scores, CRC."""
    classes = network.layer_io()[-1][1].size
    return protocol.HEADER_BYTES + protocol.result_bytes(classes) + protocol.CRC_BYTES


def line_rate(baud: int, request_bytes: int, response_bytes: int) -> float:
    """Inferences per second a UART line at ``baud`` carries one request at a time (the
    protocol's pacing): a request and its response back to back, 10 bits per byte; the
    network's time and the host's turnaround come on top."""
    return baud / BITS_PER_BYTE / (request_bytes + response_bytes)


@dataclass(frozen=True)
class Mismatch:
    """An inference whose class or scores differ from the golden model's."""

    index: int
    result: protocol.Result
    golden_class: int
    golden_scores: tuple[int, ...]


@dataclass
class RunReport:
    """What :func:`run_inferences` measured: every result in input order, the host time of
    each request, and, when checked, the inferences that differ from the golden model."""

    results: list[protocol.Result] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    total_s: float = 0.0
    checked: bool = False
    #: The link (set by :func:`run_inferences`): its rate and the two frames' sizes.
    baud: int | None = None
    request_bytes: int | None = None
    response_bytes: int | None = None
    #: The network's own pace (from the plan), for its rate beside the link's.
    cycles_per_inference: int | None = None

    def summary(self, labels: np.ndarray | None, clock_hz: int) -> dict:
        """Accuracy (against ``labels``, when given), host latency, throughput and board
        cycles, as ``hwgen run --json`` writes them. ``inferences_per_second`` is the rate
        over the link, end to end (request out, result back, measured on the host);
        ``link`` gives the link's baud, frame sizes, that rate again and the most the line
        carries (:func:`line_rate`); ``network_inferences_per_second`` is the network's own
        rate at ``clock_hz`` (``None`` where a figure is unknown)."""
        predicted = np.array([r.predicted for r in self.results])
        ms = np.array(self.seconds) * 1e3
        rate = len(self.results) / self.total_s
        link = None
        if None not in (self.baud, self.request_bytes, self.response_bytes):
            link = {"baud": self.baud, "request_bytes": self.request_bytes,
                    "response_bytes": self.response_bytes, "inferences_per_second": rate,
                    "line_inferences_per_second": line_rate(self.baud, self.request_bytes,
                                                            self.response_bytes)}
        return {
            "count": len(self.results),
            "accuracy": (float(np.mean(predicted == labels)) if labels is not None else None),
            "correct": int(np.sum(predicted == labels)) if labels is not None else None,
            "latency_ms": {"mean": float(ms.mean()), "p50": float(np.median(ms)),
                           "max": float(ms.max())},
            "inferences_per_second": rate,
            "link": link,
            "network_inferences_per_second": (clock_hz / self.cycles_per_inference
                                              if self.cycles_per_inference else None),
            "clock_hz": clock_hz,
            "cycles_last_mean": float(np.mean([r.cycles_last for r in self.results])),
            "cycles_first_mean": float(np.mean([r.cycles_first for r in self.results])),
            "check": ({"checked": len(self.results), "mismatches": len(self.mismatches)}
                      if self.checked else None),
        }


def run_inferences(board: Board, x: np.ndarray, *, check: bool = False,
                   on_result: Callable[[int, protocol.Result, float, bool], None] | None = None,
                   report: RunReport | None = None) -> RunReport:
    """INFER every input of ``x`` on ``board`` in order. With ``check``, every class and score
    is compared with the golden model (run in batches of 256). ``on_result(i, result,
    seconds, mismatch)`` hears about each. Results gather in ``report`` (a new one by
    default), so a caller still has those before a :class:`LinkError` that ends the run."""
    network = board._need_network("run_inferences")
    scores_tensor = network.sources[-1][0]  # argmax's input: the classifier scores
    report = report if report is not None else RunReport()
    report.checked = check
    report.baud = board.baud
    report.request_bytes = infer_frame_bytes(network)
    report.response_bytes = result_frame_bytes(network)
    report.cycles_per_inference = (board._info.cycles_per_inference if board._info is not None
                                   else None)
    gold_classes = gold_scores = None
    start = time.perf_counter()
    for i, xi in enumerate(x):
        if check and i % 256 == 0:
            values = golden.run(network, x[i:i + 256])
            gold_scores = values[scores_tensor].reshape(len(x[i:i + 256]), -1)
            gold_classes = values[network.layers[-1].name].reshape(-1)
        t0 = time.perf_counter()
        r = board.infer(xi)
        report.seconds.append(time.perf_counter() - t0)
        report.results.append(r)
        bad = False
        if check:
            want_class, want = int(gold_classes[i % 256]), gold_scores[i % 256]
            if r.predicted != want_class or list(r.scores) != want.tolist():
                report.mismatches.append(Mismatch(i, r, want_class,
                                                  tuple(int(v) for v in want)))
                bad = True
        if on_result is not None:
            on_result(i, r, report.seconds[-1], bad)
    report.total_s = time.perf_counter() - start
    return report


class ProgressBar:
    """A one-line progress bar on a terminal, redrawn at most ten times a second with the
    count, percentage and rate; silent when the stream is not a terminal (logs stay clean).

    Parameters
    ----------
    total : int
        The count at 100 %.
    stream : text stream
        Default ``sys.stderr``.
    """

    WIDTH = 30

    def __init__(self, total: int, *, stream=None):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = self._drawn = time.monotonic()
        self._shown = False

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        now = time.monotonic()
        if not self.enabled or (now - self._drawn < 0.1 and done < self.total):
            return
        self._drawn = now
        fill = self.WIDTH * done // max(self.total, 1)
        rate = done / max(now - self.start, 1e-9)
        self.stream.write(f"\r  {done}/{self.total} [{'#' * fill}{'.' * (self.WIDTH - fill)}] "
                          f"{100 * done // max(self.total, 1):3d} %  {rate:,.1f}/s ")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
