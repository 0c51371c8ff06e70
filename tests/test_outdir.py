"""hwgen.outdir: hwgen writes new or empty folders and replaces only its own output."""

import json
import os
import stat
from pathlib import Path

import pytest

from hwgen.outdir import (
    MANIFEST,
    OutputDir,
    OutputError,
    check_output_file,
    read_manifest,
    write_file,
)


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Path:
    """The current folder: a spec in proj/net, a user folder, a user file, a home folder."""
    (tmp_path / "proj" / "net").mkdir(parents=True)
    (tmp_path / "proj" / "net" / "mini.toml").write_text("name = 'mini'\n")
    (tmp_path / "proj" / "net" / "other.toml").write_text("name = 'other'\n")
    (tmp_path / "user" / "sub").mkdir(parents=True)
    (tmp_path / "user" / "notes.txt").write_text("mine\n")
    (tmp_path / "user" / "sub" / "data.bin").write_bytes(b"\x00\x01")
    (tmp_path / "file.txt").write_text("mine too\n")
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


SPEC = "proj/net/mini.toml"


def out_dir(path, kind="generate", spec=SPEC, **kwargs) -> OutputDir:
    return OutputDir(path, kind=kind, command=kind, spec=spec, protect=[spec], **kwargs)


def write(out: OutputDir, files: dict[str, str]) -> Path:
    with out.staged() as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        return out.commit()


def refusal(path, **kwargs) -> str:
    with pytest.raises(OutputError) as exc:
        out_dir(path, **kwargs)
    return str(exc.value)


def normal_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def test_a_new_folder_gets_a_manifest_and_normal_permissions(ws):
    folder = write(out_dir("out/a"), {"mini.v": "module", "logs/yosys.log": "ok"})
    assert folder == ws / "out" / "a"
    assert (folder / "mini.v").read_text() == "module"
    assert stat.S_IMODE(folder.stat().st_mode) == normal_mode()
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest == {"format": 1, "kind": "generate", "command": "generate",
                        "spec": str(ws / SPEC), "files": ["logs/", "logs/yosys.log", "mini.v"]}
    assert sorted(p.name for p in (ws / "out").iterdir()) == ["a"]  # no staging left


def test_a_users_folder_is_refused_and_kept(ws):
    assert refusal("user", label="-o user") == (
        "-o user: the folder exists and was not made by hwgen; choose another folder")
    assert (ws / "user" / "notes.txt").read_text() == "mine\n"
    assert (ws / "user" / "sub" / "data.bin").read_bytes() == b"\x00\x01"


def test_an_empty_folder_is_written(ws):
    (ws / "empty").mkdir()
    write(out_dir("empty"), {"a": "1"})
    assert (ws / "empty" / "a").read_text() == "1"


@pytest.mark.parametrize("path, why", [
    (".", "is the current folder"),
    ("..", "holds the current folder"),
    ("/", "is the root folder"),
    ("home", "is your home folder"),
    ("proj/net", f"is the folder of {{ws}}/{SPEC}"),
    ("proj", f"holds {{ws}}/{SPEC}"),
])
def test_protected_folders(ws, path, why):
    assert refusal(path) == f"{path}: {why.format(ws=ws)}; choose another folder"


@pytest.mark.parametrize("path, why", [
    ("file.txt", "exists and is not a folder; choose another folder"),
    ("file.txt/sub", "{ws}/file.txt is not a folder"),
    ("/dev/null/x", "/dev/null is not a folder"),
    ("/proc/x", "cannot create /proc/x (No such file or directory)"),
    ("/proc/x/y", "cannot create /proc/x (No such file or directory)"),
    ("", "expected a folder name, got ''"),
])
def test_paths_that_cannot_be_an_output_folder(ws, path, why):
    label = path or "output folder"
    assert refusal(path) == f"{label}: {why.format(ws=ws)}"


def test_a_symbolic_link_is_refused(ws):
    (ws / "empty").mkdir()
    os.symlink("empty", ws / "link")
    assert refusal("link") == "link: is a symbolic link; name a folder"


def test_checks_leave_nothing_behind(ws):
    before = sorted(p.name for p in ws.iterdir())
    out_dir("a/b/c")  # made and removed again while checking
    with pytest.raises(OutputError):
        out_dir("a/b/c" + "x" * 300)  # a name too long is found before any work
    assert sorted(p.name for p in ws.iterdir()) == before


def test_hwgen_replaces_its_own_output_of_the_same_spec(ws):
    write(out_dir("out"), {"old.v": "old", "logs/a.log": "a"})
    write(out_dir("out"), {"new.v": "new"})
    assert sorted(p.name for p in (ws / "out").iterdir()) == [MANIFEST, "new.v"]
    assert sorted(p.name for p in ws.iterdir()) == ["file.txt", "home", "out", "proj", "user"]


def test_another_spec_or_kind_needs_force(ws):
    write(out_dir("out"), {"a.v": "a"})
    other = "proj/net/other.toml"
    assert refusal("out", spec=other) == (
        f"out: holds hwgen's generate output of {ws / SPEC}; add --force to replace it, or "
        f"choose another folder")
    assert "holds hwgen's generate output" in refusal("out", kind="build")
    write(out_dir("out", spec=other, force=True), {"b.v": "b"})
    assert read_manifest(ws / "out")["spec"] == str(ws / other)
    assert not (ws / "out" / "a.v").exists()


def test_files_added_to_hwgens_output_are_never_replaced(ws):
    write(out_dir("out"), {"a.v": "a"})
    (ws / "out" / "mine.txt").write_text("mine")
    (ws / "out" / "mine").mkdir()
    assert refusal("out", force=True) == (
        "out: hwgen's output folder also holds files hwgen did not write (mine.txt, mine/); "
        "move them or choose another folder")
    assert (ws / "out" / "mine.txt").read_text() == "mine"


def test_a_broken_manifest_is_not_hwgens(ws):
    (ws / "out").mkdir()
    (ws / "out" / MANIFEST).write_text("{not json")
    assert "was not made by hwgen" in refusal("out", force=True)


def test_a_failure_while_writing_leaves_the_old_output(ws):
    write(out_dir("out"), {"a.v": "old"})
    out = out_dir("out")
    with pytest.raises(RuntimeError), out.staged() as tmp:
        (tmp / "a.v").write_text("half")
        raise RuntimeError("the work failed")
    assert (ws / "out" / "a.v").read_text() == "old"
    assert sorted(p.name for p in ws.iterdir()) == ["file.txt", "home", "out", "proj", "user"]


def test_commit_checks_again(ws):
    """A user file that appears in the folder during the work is not deleted."""
    (ws / "out").mkdir()
    out = out_dir("out")
    with pytest.raises(OutputError, match="was not made by hwgen"), out.staged() as tmp:
        (tmp / "a.v").write_text("new")
        (ws / "out" / "mine.txt").write_text("written meanwhile")
        out.commit()
    assert sorted(p.name for p in (ws / "out").iterdir()) == ["mine.txt"]
    assert not [p for p in ws.iterdir() if p.name.startswith(".hwgen")]


def test_a_failed_run_is_kept_beside_the_output(ws):
    write(out_dir("out", kind="build"), {"top.bin": "old"})
    out = out_dir("out", kind="build", failed=True)
    with out.staged() as tmp:
        (tmp / "yosys.log").write_text("error")
        assert out.commit_failed() == ws / "out.failed"
    assert (ws / "out" / "top.bin").read_text() == "old"
    assert (ws / "out.failed" / "yosys.log").read_text() == "error"
    assert read_manifest(ws / "out.failed")["kind"] == "build.failed"
    # a second failure replaces hwgen's own .failed folder
    out = out_dir("out", kind="build", failed=True)
    with out.staged() as tmp:
        (tmp / "nextpnr.log").write_text("error")
        out.commit_failed()
    assert sorted(p.name for p in (ws / "out.failed").iterdir()) == [MANIFEST, "nextpnr.log"]


def test_a_users_failed_folder_is_refused_before_the_work(ws):
    (ws / "out.failed").mkdir()
    (ws / "out.failed" / "mine.txt").write_text("mine")
    assert refusal("out", kind="build", failed=True, label="-o out") == (
        "-o out.failed (a failed run's work folder): the folder exists and was not made by "
        "hwgen; choose another folder")


def test_output_file_rules(ws):
    def ours(path):
        return path.read_text() == "hwgen's"

    assert check_output_file("new.json", "--json", ours) == Path("new.json")
    (ws / "old.json").write_text("hwgen's")
    check_output_file("old.json", "--json", ours)
    cases = {
        "file.txt": "--json file.txt: exists and was not written by hwgen; choose another file",
        "user": "--json user: is a folder; name a file in it",
        "missing/x.json": f"--json missing/x.json: {ws}/missing is not an existing folder",
        "file.txt/x.json": f"--json file.txt/x.json: {ws}/file.txt is not a folder",
        "/proc/x.json": "--json /proc/x.json: cannot write in /proc (No such file or "
                        "directory)",
        "/dev/null": "--json /dev/null: exists and is not a regular file",
        "": "--json '': expected a file name",
    }
    for path, message in cases.items():
        with pytest.raises(OutputError) as exc:
            check_output_file(path, "--json", ours)
        assert str(exc.value) == message
    assert sorted(p.name for p in ws.iterdir()) == ["file.txt", "home", "old.json", "proj",
                                                     "user"]


def test_write_file_is_atomic(ws):
    write_file("r.json", "{}\n")
    write_file("r.json", "[]\n")
    assert (ws / "r.json").read_text() == "[]\n"
    assert stat.S_IMODE((ws / "r.json").stat().st_mode) == normal_mode() & 0o666
    assert not [p for p in ws.iterdir() if p.name.startswith(".hwgen")]
