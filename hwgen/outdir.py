"""Output folders and files: hwgen replaces only what it wrote itself.

Every folder hwgen writes (``generate``'s, ``build``'s and ``flow``'s output, a failed build's
``<output>.failed``, ``sim --work-dir``) carries a manifest, ``.hwgen-output.json``, naming the
kind of output, the command, the spec and every file and folder in it. The rule
(docs/boards.md, "Output folders"):

- a folder that does not exist, or an empty one, is written;
- a folder holding hwgen's manifest of the same kind and spec is replaced (a second
  ``hwgen build`` into ``build/<network>-<board>``); of another kind or spec only with
  ``--force``;
- a non-empty folder without a manifest, or holding anything its manifest does not list, is
  refused, with or without ``--force``;
- never the current folder, the home folder, the root, a folder holding the spec, its weights
  or its test split, or any folder above them; never a symbolic link or a file.

:class:`OutputDir` checks all of this when it is made, before any work. The output is written
into a temporary sibling (normal permissions) and renamed into place by
:meth:`OutputDir.commit`, so an interrupted run never leaves a folder that looks complete and
a failed one leaves the old output as it was. :func:`check_output_file` and
:func:`write_file` do the same for a single file (``hwgen run --json``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

__all__ = ["MANIFEST", "OutputDir", "OutputError", "check_output_file", "write_file"]

#: The manifest file in every folder hwgen writes.
MANIFEST = ".hwgen-output.json"
_FORMAT = 1
_STAGING = ".hwgen-partial-"


class OutputError(Exception):
    """An output path hwgen will not write: one line naming the option and the reason."""


def _token() -> str:
    return secrets.token_hex(4)


def _entries(root: Path) -> set[str]:
    """Every file and folder below ``root``, relative, folders with a trailing ``/``; symbolic
    links count as files (never followed)."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                found.add((rel / name).as_posix())
            else:
                found.add((rel / name).as_posix() + "/")
        for name in filenames:
            found.add((rel / name).as_posix())
    found.discard(MANIFEST)
    return found


def read_manifest(folder: Path) -> dict | None:
    """The manifest of ``folder`` if it holds a valid one, else None."""
    try:
        doc = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if (not isinstance(doc, dict) or doc.get("format") != _FORMAT
            or not isinstance(doc.get("files"), list)
            or not all(isinstance(f, str) for f in doc["files"])):
        return None
    return doc


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))


def _protected(out: Path, guarded: Iterable[tuple[Path, str, str]]) -> str | None:
    """Why ``out`` (resolved) must not be written, or None."""
    for folder, equal, above in guarded:
        if out == folder:
            return equal
        if out in folder.parents:
            return above
    return None


class OutputDir:
    """One output folder of one command, checked on creation (before any work).

    Parameters
    ----------
    path:
        The folder.
    kind:
        What it holds (``"generate"``, ``"build"``, ``"sim"``): hwgen's output of the same
        kind and spec is replaced without ``force``.
    command:
        The command line's subcommand, recorded in the manifest.
    spec:
        The spec file the output is made from (recorded and compared), or None.
    force:
        Replace hwgen's output of another kind or spec too.
    label:
        How messages name the folder (``"-o out"``); default ``str(path)``.
    protect:
        Files whose folders (and the folders above) are never written: the spec, its NPZ,
        its test split.
    failed:
        Also check ``<path>.failed``, where :meth:`commit_failed` keeps a failed run's work.
    """

    def __init__(self, path: str | os.PathLike, *, kind: str, command: str,
                 spec: str | os.PathLike | None = None, force: bool = False,
                 label: str | None = None, protect: Iterable[str | os.PathLike | None] = (),
                 failed: bool = False):
        if str(path) == "":
            raise OutputError(f"{label or 'output folder'}: expected a folder name, got ''")
        self.path = Path(os.path.abspath(path))
        #: The folder as the user named it (for messages).
        self.shown = Path(path)
        self.label = label or str(path)
        self.kind, self.command, self.force = kind, command, force
        self.spec = (None if spec is None else
                     str(_resolved(spec)) if os.path.exists(spec) else str(spec))
        root = Path(os.path.abspath(os.sep))
        guarded = [(root, "is the root folder", ""),
                   (_resolved(Path.cwd()), "is the current folder", "holds the current folder"),
                   (_resolved(Path.home()), "is your home folder", "holds your home folder")]
        for p in protect:
            if p is not None and os.path.exists(p):
                p = _resolved(p)
                guarded.append((p.parent, f"is the folder of {p}", f"holds {p}"))
        self._guarded = guarded
        self._tmp: Path | None = None
        self.failed = None
        self.check()
        if failed:
            self.failed = OutputDir(f"{path}.failed", kind=f"{kind}.failed", command=command,
                                    spec=spec, force=force,
                                    label=f"{self.label}.failed (a failed run's work folder)",
                                    protect=protect)

    # -- checks ---------------------------------------------------------------------------

    def _refuse(self, why: str) -> OutputError:
        return OutputError(f"{self.label}: {why}")

    def check(self) -> None:
        """:class:`OutputError` unless this folder may be written (the rule above)."""
        why = _protected(_resolved(self.path), self._guarded)
        if why is not None:
            raise self._refuse(f"{why}; choose another folder")
        if os.path.islink(self.path):
            raise self._refuse("is a symbolic link; name a folder")
        if os.path.lexists(self.path):
            if not self.path.is_dir():
                raise self._refuse("exists and is not a folder; choose another folder")
            self._check_owned(self.path)
            self._probe(self.path.parent)
        else:
            self._probe_chain()

    def _check_owned(self, folder: Path) -> None:
        try:
            with os.scandir(folder) as it:
                if not any(it):
                    return
        except OSError as exc:
            raise self._refuse(f"cannot read the folder ({exc.strerror})") from None
        manifest = read_manifest(folder)
        if manifest is None:
            raise self._refuse("the folder exists and was not made by hwgen; choose another "
                               "folder")
        extra = sorted(_entries(folder) - set(manifest["files"]))
        if extra:
            shown = ", ".join(extra[:3]) + (", …" if len(extra) > 3 else "")
            raise self._refuse(f"hwgen's output folder also holds files hwgen did not write "
                               f"({shown}); move them or choose another folder")
        same = manifest.get("kind") == self.kind and manifest.get("spec") == self.spec
        if not same and not self.force:
            raise self._refuse(f"holds hwgen's {manifest.get('kind')} output of "
                               f"{manifest.get('spec')}; add --force to replace it, or choose "
                               f"another folder")

    def _probe(self, folder: Path) -> None:
        """Make and remove a folder in ``folder``: proves hwgen can write there."""
        probe = folder / f"{_STAGING}probe-{_token()}"
        try:
            os.mkdir(probe)
        except OSError as exc:
            raise self._refuse(f"cannot write in {folder} ({exc.strerror})") from None
        os.rmdir(probe)

    def _probe_chain(self) -> None:
        """The folder does not exist: make it (and the missing folders above it) and remove
        them again, so a name too long or a folder that cannot be written is found now."""
        missing = []
        p = self.path
        while not os.path.lexists(p):
            missing.append(p)
            p = p.parent
        if not p.is_dir():
            raise self._refuse(f"{p} is not a folder")
        made = []
        try:
            for q in reversed(missing):
                os.mkdir(q)
                made.append(q)
        except OSError as exc:
            raise self._refuse(f"cannot create {q} ({exc.strerror})") from None
        finally:
            for q in reversed(made):
                os.rmdir(q)

    # -- writing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def staged(self) -> Iterator[Path]:
        """A new temporary folder beside the output to write into; removed on leaving unless
        :meth:`commit` or :meth:`commit_failed` moved it into place."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = self.path.parent / f"{_STAGING}{_token()}"
            try:
                os.mkdir(tmp)  # mode 0o777 less the umask, as any new folder
                break
            except FileExistsError:
                continue
        self._tmp = tmp
        try:
            yield tmp
        finally:
            if self._tmp is not None and self._tmp.exists():
                _remove_tree(self._tmp)
            self._tmp = None

    @property
    def staging(self) -> Path:
        """The temporary folder of :meth:`staged`."""
        if self._tmp is None:
            raise RuntimeError("OutputDir.staging outside OutputDir.staged()")
        return self._tmp

    def commit(self) -> Path:
        """Write the manifest into the staging folder and put it in place of the output
        (checked again first); returns the output folder."""
        self._put(self)
        return self.path

    def commit_failed(self) -> Path:
        """Keep the staging folder as ``<path>.failed`` (same rule); returns that folder."""
        if self.failed is None:
            raise RuntimeError("OutputDir(failed=True) keeps a failed run's folder")
        self.failed._tmp = self._tmp
        self.failed._put(self.failed)
        self._tmp = None
        return self.failed.path

    def _put(self, target: OutputDir) -> None:
        tmp = target.staging
        files = sorted(_entries(tmp))
        manifest = {"format": _FORMAT, "kind": target.kind, "command": target.command,
                    "spec": target.spec, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        target.check()
        out = target.path
        old = previous = None
        try:
            if out.is_dir():
                previous = read_manifest(out)
                if previous is None:  # empty (check() passed)
                    os.rmdir(out)
                else:
                    old = out.parent / f"{_STAGING}old-{_token()}"
                    os.rename(out, old)
            os.rename(tmp, out)
        except OSError as exc:
            if old is not None and not os.path.lexists(out):
                os.rename(old, out)
            raise target._refuse(f"cannot put the output in place ({exc.strerror})") from None
        target._tmp = None
        if old is not None:
            _remove_listed(old, previous["files"])


def _remove_listed(folder: Path, files: list[str]) -> None:
    """Remove the manifest's files and folders from ``folder``, then the folder; anything
    else (there should be nothing) stays."""
    for name in files:
        if not name.endswith("/"):
            with contextlib.suppress(OSError):
                (folder / name).unlink()
    with contextlib.suppress(OSError):
        (folder / MANIFEST).unlink()
    for name in sorted((f for f in files if f.endswith("/")), key=lambda f: -f.count("/")):
        with contextlib.suppress(OSError):
            (folder / name).rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _remove_tree(folder: Path) -> None:
    """Remove a staging folder hwgen made itself (whatever the run wrote into it)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def check_output_file(path: str, option: str, ours: Callable[[Path], bool],
                      writer: str = "hwgen") -> Path:
    """:class:`OutputError` unless ``path`` may be written as one file: its folder exists and
    takes files, and ``path`` is absent or a regular file for which ``ours`` (``writer``
    wrote it) is true. Returns the path."""
    label = f"{option} {path}"
    if path == "":
        raise OutputError(f"{option} '': expected a file name")
    out = Path(os.path.abspath(path))
    if os.path.islink(out):
        raise OutputError(f"{label}: is a symbolic link; name a file")
    if out.is_dir():
        raise OutputError(f"{label}: is a folder; name a file in it")
    if os.path.lexists(out):
        if not out.is_file():
            raise OutputError(f"{label}: exists and is not a regular file")
        if not ours(out):
            raise OutputError(f"{label}: exists and was not written by {writer}; choose "
                              f"another file")
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"{label}: {parent} is not "
                          + ("a folder" if os.path.lexists(parent) else "an existing folder"))
    probe = parent / f"{_STAGING}probe-{_token()}"
    try:
        with open(probe, "x"):
            pass
    except OSError as exc:
        raise OutputError(f"{label}: cannot write in {parent} ({exc.strerror})") from None
    os.unlink(probe)
    return Path(path)


def write_file(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary sibling, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f"{_STAGING}{_token()}-{path.name}"[:255])
    try:
        with open(tmp, "x") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
