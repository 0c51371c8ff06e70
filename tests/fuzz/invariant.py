"""The invariant every fuzz case asserts (issue 14): a bad input ends in one clear error line
and the right exit code, never a traceback, never a touched user file, never a wrong result
reported as correct.

:func:`run_main` runs ``hwgen.cli.main`` in this process with its output captured, so an
uncaught exception is seen as the traceback it would print; :func:`tree` and
:func:`assert_untouched` compare a folder before and after.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from hwgen.cli import main


@dataclass
class Outcome:
    """What one ``hwgen`` run did: exit code, standard output and error, and the exception
    that escaped ``main`` (a traceback the user would have seen), if any."""

    argv: list[str]
    code: int | None
    out: str
    err: str
    escaped: BaseException | None = None

    def describe(self) -> str:
        return (f"hwgen {' '.join(self.argv)!r} → exit {self.code}, escaped "
                f"{self.escaped!r}\nstderr: {self.err[-2000:]}\nstdout: {self.out[-2000:]}")


def run_main(argv: list[str]) -> Outcome:
    """``hwgen ARGV`` in this process; argparse's SystemExit gives its exit code."""
    out, err = io.StringIO(), io.StringIO()
    code, escaped = None, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: usage error (2) or --help (0)
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 - a traceback is what we look for
            escaped = exc
    return Outcome(list(argv), code, out.getvalue(), err.getvalue(), escaped)


def error_lines(outcome: Outcome) -> list[str]:
    """The lines of standard error that state an error (hwgen's or argparse's)."""
    return [line for line in outcome.err.splitlines() if "error:" in line]


def assert_clean_error(outcome: Outcome, codes: tuple[int, ...] = (2,)) -> str:
    """A refusal: one error line, an exit code in ``codes``, no traceback. Returns the line."""
    assert outcome.escaped is None, outcome.describe()
    assert "Traceback" not in outcome.err + outcome.out, outcome.describe()
    assert outcome.code in codes, outcome.describe()
    lines = error_lines(outcome)
    assert len(lines) == 1, outcome.describe()
    assert "internal error" not in lines[0], outcome.describe()
    return lines[0]


def assert_no_traceback(outcome: Outcome) -> None:
    """Success or a clean refusal (exit 0, 1 or 2), and nothing escaped."""
    assert outcome.escaped is None, outcome.describe()
    assert "Traceback" not in outcome.err + outcome.out, outcome.describe()
    assert outcome.code in (0, 1, 2), outcome.describe()
    if outcome.code:
        assert len(error_lines(outcome)) <= 1, outcome.describe()


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder under ``root``: relative path → (mode, content digest)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            p = Path(dirpath, name)
            found[str(p.relative_to(root)) + "/"] = (p.stat().st_mode, "")
        for name in filenames:
            p = Path(dirpath, name)
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            found[str(p.relative_to(root))] = (p.lstat().st_mode, digest)
    return found


def assert_untouched(before: dict[str, tuple[int, str]], root: Path,
                     allowed_new: tuple[str, ...] = ()) -> None:
    """Every file and folder of ``before`` is still under ``root``, unchanged; new entries
    only below the ``allowed_new`` prefixes (hwgen's own output)."""
    after = tree(root)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"user files changed or removed: {changed[:10]}"
    new = [k for k in after if k not in before and not k.startswith(allowed_new)]
    assert not new, f"unexpected new files: {new[:10]}"
