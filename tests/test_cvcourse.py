"""Unit tests of the grader's parts (no kernel): reading and rebuilding submissions, the review
scan, scoring, feedback pages, the sandbox's command line. The whole grader runs in
test_sandbox.py and test_grading.py."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from helpers import REPO
from cvcourse import feedback, integrity
from cvcourse.execute import add_probes, score
from cvcourse.sandbox import Limits, kernel_argv

RELEASE = nbformat.read(REPO / "notebooks" / "01_topk" / "01_topk.ipynb", as_version=4)
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.M)


def gid(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def cells_of(nb):
    return [{"cell_type": c.cell_type, "source": c.source, "metadata": dict(c.metadata)} for c in nb.cells]


# -- finding and reading notebooks -------------------------------------------------------------------

def _with_solution(source: str) -> str:
    nb = nbformat.from_dict(json.loads(json.dumps(RELEASE)))
    for cell in nb.cells:
        if gid(cell) == "topk_error":
            cell.source = source
    return nbformat.writes(nb)


RELEASES = {"01_topk.ipynb": RELEASE}
UNTOUCHED = nbformat.writes(RELEASE)
MINE = _with_solution("def topk_error(logits, target, k):\n    return 1.0\n")


def test_find_notebooks_reports_rename_extra_missing_and_symlinks(tmp_path):
    (tmp_path / "a-Copy1.ipynb").write_text(MINE)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "notes.txt")
    found, notes, flags = integrity.find_notebooks(tmp_path, {"01_topk.ipynb": RELEASE})
    assert found == {"01_topk.ipynb": tmp_path / "a-Copy1.ipynb"} and not flags
    assert any("renamed" in n for n in notes) and any("notes.txt" in n for n in notes)
    assert any("link.ipynb: symbolic link" in n for n in notes)
    found, notes, _ = integrity.find_notebooks(tmp_path, {"01_topk.ipynb": RELEASE, "b.ipynb": RELEASE})
    assert found == {} and any("missing notebook 01_topk.ipynb" in n for n in notes)


@pytest.mark.parametrize("files, graded, note", [
    ({"01_topk.IPYNB": MINE}, "01_topk.IPYNB", "renamed"),
    ({"Submission attachment(s)/01_topk.ipynb": MINE}, "Submission attachment(s)/01_topk.ipynb", "renamed"),
    ({"01_topk (1).ipynb": MINE, "01_topk (2).ipynb": MINE}, "01_topk (1).ipynb", "2 identical copies"),
    ({"01_topk.ipynb": UNTOUCHED, "work/01_topk (1).ipynb": MINE}, "work/01_topk (1).ipynb", "untouched copy"),
    ({"01_topk.ipynb": UNTOUCHED, "my answers.ipynb": MINE}, "my answers.ipynb", "untouched copy"),
    ({"01_topk.ipynb": MINE, ".ipynb_checkpoints/01_topk-checkpoint.ipynb": UNTOUCHED}, "01_topk.ipynb", None),
])
def test_find_notebooks_takes_lms_layouts(tmp_path, files, graded, note):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found, notes, flags = integrity.find_notebooks(tmp_path, RELEASES)
    assert found == {"01_topk.ipynb": tmp_path / graded} and not flags, (notes, flags)
    assert note is None or any(note in n for n in notes), notes


def test_find_notebooks_flags_different_copies_and_grades_the_newest(tmp_path):
    import os

    (tmp_path / "01_topk (1).ipynb").write_text(MINE)
    (tmp_path / "01_topk (2).ipynb").write_text(_with_solution("def topk_error(logits, target, k):\n    return 0.0\n"))
    os.utime(tmp_path / "01_topk (1).ipynb", (1e9, 1e9))
    found, _, flags = integrity.find_notebooks(tmp_path, RELEASES)
    assert found == {"01_topk.ipynb": tmp_path / "01_topk (2).ipynb"}
    assert len(flags) == 1 and "2 different notebooks" in flags[0] and "01_topk (1).ipynb" in flags[0]


def test_find_notebooks_reports_pipes_and_deep_folders_without_reading_them(tmp_path):
    import os

    os.mkfifo(tmp_path / "01_topk.ipynb")  # reading it would block for ever
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "01_topk.ipynb").write_text(MINE)
    found, notes, _ = integrity.find_notebooks(tmp_path, RELEASES)
    assert found == {}
    assert any("01_topk.ipynb: not a regular file" in n for n in notes)
    assert any("deeper than" in n for n in notes), notes
    with pytest.raises(integrity.Malformed, match="not a regular file"):
        integrity.read_cells(tmp_path / "01_topk.ipynb")


@pytest.mark.parametrize("name, ok", [
    ("Ann Marie_1234_assignsubmission_file_", True), ("josé", True), ("jose\u0301", True), ("s.smith@uni.edu", True),
    ("star*name", False), ("a[1]", False), (" padded", False), (".hidden", False), ("-rf", False),
    ("tab\tname", False), ("x" * 129, False),
])
def test_student_ids(name, ok):
    student, why = integrity.student_id(name)
    assert (student is not None) is ok, why
    if ok:
        assert student == __import__("unicodedata").normalize("NFC", name)
    else:
        assert why and "student folder name" in why


def test_read_cells_is_bounded(tmp_path):
    nested = tmp_path / "nested.ipynb"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(integrity.Malformed, match="nested too deeply|not a Jupyter notebook"):
        integrity.read_cells(nested)
    big_cell = tmp_path / "big.ipynb"
    big_cell.write_text(json.dumps({"nbformat": 4, "cells": [{"cell_type": "code", "source": "x = 1\n" * 300_000}]}))
    with pytest.raises(integrity.Malformed, match="cell 0's source is larger than 1 MiB"):
        integrity.read_cells(big_cell)
    figures = json.loads(MINE)  # 21 MiB of stored figures: outputs are ignored, the notebook is graded
    figures["cells"][0]["outputs"] = [{"output_type": "display_data", "metadata": {},
                                       "data": {"image/png": "A" * (21 << 20)}}]
    (tmp_path / "figures.ipynb").write_text(json.dumps(figures))
    cells = integrity.read_cells(tmp_path / "figures.ipynb")
    (tmp_path / "plain.ipynb").write_text(MINE)
    assert integrity.solution_sources(cells) == integrity.solution_sources(integrity.read_cells(tmp_path / "plain.ipynb"))
    assert "return 1.0" in integrity.solution_sources(cells)["topk_error"]


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not valid JSON"), (b"[1, 2]", "not a Jupyter notebook"), (b"\xff\xfe", "not valid JSON"),
    (b'{"nbformat": 4, "cells": {}}', "no list of cells"),
    (b'{"nbformat": 4, "cells": [{"cell_type": "code", "source": 3}]}', "cell 0 has no text source"),
    (b'{"nbformat": 4, "cells": [{"cell_type": "widget"}]}', "cell 0 is not a code"),
])
def test_read_cells_names_what_is_malformed(tmp_path, content, message):
    path = tmp_path / "a.ipynb"
    path.write_bytes(content)
    with pytest.raises(integrity.Malformed, match=message):
        integrity.read_cells(path)


def test_read_cells_joins_list_sources(tmp_path):
    path = tmp_path / "a.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "cells": [{"cell_type": "code", "source": ["a = 1\n", "b = 2"]}]}))
    assert integrity.read_cells(path)[0]["source"] == "a = 1\nb = 2"


# -- rebuilding ----------------------------------------------------------------------------------------

def test_rebuild_keeps_only_the_students_code():
    nb = nbformat.from_dict(json.loads(json.dumps(RELEASE)))
    cells = cells_of(nb)
    for cell in cells:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("solution"):
            cell["source"] = "def topk_error(*a):\n    return 0.0\n"
        elif meta.get("grade_id") == "test_values":
            cell["source"], cell["metadata"]["nbgrader"]["points"] = "pass", 99
        elif meta.get("grade_id") == "test_ties":
            cell["cell_type"] = "markdown"
    cells = [c for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id") != "test_errors"]
    cells.insert(0, {"cell_type": "code", "source": "helper = 1", "metadata": {"nbgrader": {"grade_id": "bonus"}}})
    cells.append(dict(cells[-1]))  # a duplicated cell
    rebuilt = integrity.rebuild(RELEASE, cells)
    by_id = {gid(c): c for c in rebuilt.notebook.cells if gid(c)}
    release = {gid(c): c for c in RELEASE.cells if gid(c)}
    assert by_id["topk_error"].source.startswith("def topk_error(*a)")
    for test in ("test_values", "test_ties", "test_errors"):
        assert by_id[test].source == release[test].source and by_id[test].metadata == release[test].metadata
        assert by_id[test].cell_type == "code"
    assert rebuilt.deleted_tests == ["test_errors"]
    assert rebuilt.notebook.cells[0].source == "helper = 1" and "nbgrader" not in rebuilt.notebook.cells[0].metadata
    assert [gid(c) for c in rebuilt.notebook.cells if gid(c)] == [gid(c) for c in RELEASE.cells if gid(c)]
    text = " | ".join(rebuilt.notes)
    for expected in ("unknown cell 'bonus'", "'test_values' was changed", "'test_errors' was deleted", "appears 2 times"):
        assert expected in text, text


def test_rebuild_readds_a_deleted_solution_cell_as_the_stub():
    cells = [c for c in cells_of(RELEASE) if not c["metadata"].get("nbgrader", {}).get("solution")]
    rebuilt = integrity.rebuild(RELEASE, cells)
    stub = next(c for c in rebuilt.notebook.cells if gid(c) == "topk_error")
    assert "NotImplementedError" in stub.source and any("re-added empty" in n for n in rebuilt.notes)


# -- the review scan -----------------------------------------------------------------------------------

@pytest.mark.parametrize("assignment", sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir()))
def test_scan_does_not_flag_honest_code(assignment):
    """Every instructor solution and scratch cell, and every crafted (wrong but honest) submission."""
    release = nbformat.read(REPO / "notebooks" / assignment / f"{assignment}.ipynb", as_version=4)
    modules, names = integrity.protected_names(release)
    source = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    sources = [MARKER.sub("", c.source) for c in source.cells
               if c.cell_type == "code" and (c.metadata.get("nbgrader", {}).get("solution") or not c.metadata.get("nbgrader"))]
    sources += [p.read_text() for p in (REPO / "tests" / "submissions" / assignment).glob("*/*.py")]
    assert sources
    for text in sources:
        assert integrity.scan(text, modules, names) == [], text[:200]


@pytest.mark.parametrize("source, reason", [
    ("import builtins\nbuiltins.abs = len", "imports builtins"),
    ("get_ipython().set_custom_exc((Exception,), None)", "uses get_ipython"),
    ("import sys\nf = sys._getframe(1)", "uses ._getframe"),
    ("from sys import modules", "uses sys.modules"),
    ("import torch\ntorch.allclose = lambda *a: True", "assigns to torch.allclose"),
    ("torch = None", "rebinds torch"),
    ("def raises(*a):\n    pass", "rebinds raises"),
    ("class A:\n    def __eq__(self, o):\n        return True", "class A defines __eq__"),
    ("open('../../solutions/x.ipynb')", "mentions"),
    ("import socket", "imports socket"),
    ("exec('1')", "uses exec"),
    ("x = (lambda: 0).__code__", "uses .__code__"),
])
def test_scan_flags_reaching_for_the_grader(source, reason):
    reasons = integrity.scan(source, {"torch"}, {"raises"})
    assert any(r.startswith(reason) for r in reasons), reasons


# -- scoring -------------------------------------------------------------------------------------------

def _executed(probe_text=None, status="ok", test_outputs=()):
    nb = nbformat.from_dict(json.loads(json.dumps(RELEASE)))
    probes = add_probes(nb, "n0nce")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.metadata["cvcourse"] = {"status": "ok"}
        if i in probes:
            k = probes.index(i)
            text = probe_text(k) if probe_text else f"cvcourse-probe n0nce {k + 1} ok\n"
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in (text[:9], text[9:])]
        elif cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata["cvcourse"] = {"status": status}
            cell.outputs = list(test_outputs)
    return nb, probes


def test_score_full_marks_with_stderr_output():
    nb, probes = _executed(test_outputs=[nbformat.v4.new_output("stream", name="stderr", text="UserWarning\n")])
    result = score(nb, probes, "n0nce", [])
    assert result["scores"] == {"test_values": (3.0, 3.0), "test_ties": (2.0, 2.0), "test_errors": (2.0, 2.0)}
    assert result["failed"] == {} and result["tampering"] == []


def test_score_zero_on_error_reply_even_without_a_traceback():
    nb, probes = _executed(status="error")
    result = score(nb, probes, "n0nce", [])
    assert all(points == 0 for points, _ in result["scores"].values())


def test_score_zero_for_deleted_tests_and_around_a_tampered_probe():
    nb, probes = _executed(probe_text=lambda k: f"cvcourse-probe n0nce {k} {'tampered: builtins.abs' if k == 2 else 'ok'}\n")
    result = score(nb, probes, "n0nce", ["test_values"])
    assert result["scores"]["test_values"][0] == 0 and "deleted" in result["failed"]["test_values"]
    assert result["scores"]["test_ties"][0] == 0 and result["scores"]["test_errors"][0] == 0
    assert any("builtins.abs" in t for t in result["tampering"])


def test_score_zero_when_a_probe_is_silent_or_has_the_wrong_token():
    nb, probes = _executed(probe_text=lambda k: "cvcourse-probe guess 1 ok\n")
    result = score(nb, probes, "n0nce", [])
    assert all(points == 0 for points, _ in result["scores"].values()) and result["tampering"]


# -- feedback --------------------------------------------------------------------------------------------

def test_feedback_escapes_everything_and_hides_hidden_tests():
    source = nbformat.read(REPO / "solutions" / "01_topk" / "01_topk.ipynb", as_version=4)
    nb = nbformat.from_dict(json.loads(json.dumps(source)))
    probes = add_probes(nb, "n0nce")
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(evil))
    probes = [i + 1 if i >= 1 else i for i in probes]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": evil, "text/plain": evil,
                                                                           "image/png": "bm90IGEgcG5n"}),
                            nbformat.v4.new_output("stream", name="stdout", text=f"from {gid(cell)}: {evil}")]
    outcome = {"scores": {"test_values": (0.0, 3.0), "test_ties": (2.0, 2.0), "test_errors": (2.0, 2.0)},
               "failed": {"test_values": "EvilError (reply status error)"}}
    page = feedback.render(nb, outcome, probes, title="t")
    assert "<script" not in page.lower() and not re.search(r"<[^>]+\son\w+\s*=", page, re.I)
    assert "<img" not in page  # the "PNG" was not one
    assert "### BEGIN HIDDEN TESTS" not in page and "_reference" not in page and "multiclass_accuracy" not in page
    assert "from topk_error:" in page and "from test_values:" not in page  # no output from the first hidden cell on
    assert "EvilError" not in page and "failed" in page  # a non-builtin exception name is not shown
    assert "Score: 4 / 7" in page


# -- the sandbox's command line ------------------------------------------------------------------------

def test_limits_refuse_nonsense():
    with pytest.raises(ValueError, match="Limits.cpu"):
        Limits(cpu=0)
    with pytest.raises(ValueError, match="Limits.memory_mb"):
        Limits(memory_mb=1.5)


def test_grade_names_a_bad_limit(tmp_path, capsys):
    from cvcourse.cli import main

    assert main(["grade", "01_topk", str(tmp_path), "--cpu", "0"]) == 2
    assert "Limits.cpu must be a positive int, got 0" in capsys.readouterr().err


def test_kernel_argv_isolates_the_course(tmp_path):
    argv = kernel_argv(tmp_path, Limits(cpu=7, memory_mb=100))
    assert argv[:3] == ["prlimit", "--cpu=7", f"--data={100 << 20}"]
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv", "--remount-ro"):
        assert flag in argv
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind", "--dev-bind")]
    writable = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert set(writable) == {str(tmp_path)}  # bound twice: at its own path and at /tmp/work/ipc
    for path in binds:
        assert not (REPO / "solutions").is_relative_to(path) and path != str(REPO), path
        assert not path.startswith("/etc/") or path.split("/")[2] in {"ld.so.cache", "ld.so.conf", "ld.so.conf.d",
                                                                      "localtime", "alternatives", "fonts"}
    assert argv[-3:] == ["ipykernel_launcher", "-f", "{connection_file}"]


def test_gpu_kernel_gets_the_driver_variables_and_no_others(tmp_path, monkeypatch):
    import cvcourse.sandbox as sandbox

    lib = tmp_path / "nvidia-lib"
    lib.mkdir()
    monkeypatch.setenv("LD_LIBRARY_PATH", f"{lib}:/usr/lib/x86_64-linux-gnu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-pass")
    monkeypatch.setattr(sandbox, "_gpu_binds", lambda: ["--ro-bind", str(lib), str(lib)])
    argv = kernel_argv(tmp_path, Limits(), gpu=True)
    env = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "--setenv"}
    assert env["LD_LIBRARY_PATH"] == f"{lib}:/usr/lib/x86_64-linux-gnu" and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert "SECRET_TOKEN" not in env and "--clearenv" in argv
    assert "CUDA_VISIBLE_DEVICES" not in {argv[i + 1] for i, a in enumerate(kernel_argv(tmp_path, Limits()))
                                          if a == "--setenv"}


def test_kernel_sockets_are_bound_where_their_relative_names_point(tmp_path):
    """The kernel's sockets are named ipc/kernel-N relative to the cwd (short, however deep OUT is):
    the worker's cwd is WORK, the sandboxed kernel's /tmp/work, and WORK/ipc is bound there."""
    sockets = tmp_path / "work" / "ipc"
    argv = kernel_argv(sockets, Limits())
    binds = [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == "--bind"]
    assert sorted(binds) == sorted([(str(sockets), str(sockets)), (str(sockets), "/tmp/work/ipc")])
    assert argv[argv.index("--chdir") + 1] == "/tmp/work"
    assert f"--chdir={sockets.parent}" in kernel_argv(sockets, Limits(), unsafe=True)


# -- the student's and the instructor's other commands --------------------------------------------------

def test_check_reports_each_visible_test(tmp_path):
    import subprocess
    import sys

    nb = nbformat.read(REPO / "notebooks" / "01_topk" / "01_topk.ipynb", as_version=4)
    nbformat.write(nb, tmp_path / "01_topk.ipynb")
    done = subprocess.run([sys.executable, "-m", "cvcourse", "check", str(tmp_path / "01_topk.ipynb")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    for grade_id in ("test_values", "test_ties", "test_errors"):  # test_errors: "expected ValueError, got ..."
        assert re.search(rf"{grade_id} \(\d points\): FAILED: .*NotImplementedError", done.stdout), done.stdout
    assert "3 test cell(s) fail." in done.stdout


def test_release_regenerates_the_student_notebooks(tmp_path):
    import shutil
    import subprocess
    import sys

    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    shutil.copytree(REPO / "solutions" / "03_conv_arithmetic", tmp_path / "solutions" / "03_conv_arithmetic")
    done = subprocess.run([sys.executable, "-m", "cvcourse", "release", "--course", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    made = json.loads((tmp_path / "notebooks" / "03_conv_arithmetic" / "03_conv_arithmetic.ipynb").read_text())
    committed = json.loads((REPO / "notebooks" / "03_conv_arithmetic" / "03_conv_arithmetic.ipynb").read_text())
    assert made == committed
    missing = subprocess.run([sys.executable, "-m", "cvcourse", "release", "99_nothing", "--course", str(tmp_path)],
                             capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2 and "no assignment '99_nothing'" in missing.stderr


def test_stamped_gradebook_is_the_one_nbgrader_creates(tmp_path):
    """cvcourse.gradebook.stamp stands in for nbgrader's `alembic heads` subprocess: same revision,
    same tables and columns once nbgrader has opened both files."""
    import sqlite3

    from nbgrader.api import Gradebook, get_alembic_version

    from cvcourse.gradebook import head_revision, stamp

    assert head_revision() == get_alembic_version()
    stamp(tmp_path / "ours.db")
    for name in ("ours.db", "theirs.db"):
        Gradebook(f"sqlite:///{tmp_path / name}", "c").close()

    def schema(name):
        with sqlite3.connect(tmp_path / name) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
            return ({t: db.execute(f"PRAGMA table_info({t})").fetchall() for t in tables},
                    db.execute("SELECT version_num FROM alembic_version").fetchall())

    assert schema("ours.db") == schema("theirs.db")
    before = (tmp_path / "ours.db").read_bytes()
    stamp(tmp_path / "ours.db")  # an existing gradebook is left alone
    assert (tmp_path / "ours.db").read_bytes() == before


@pytest.mark.parametrize("source", [
    "for _i in range(3):\n    print(_i)",
    "def check(x):\n    if not isinstance(x, int):\n        raise TypeError(f'got {x.__class__.__name__}')",
    'def topk(x):\n    """Never peeks at the hidden tests; see the nbgrader docs."""\n    return x',
    "import torch\ntorch.backends.cudnn.deterministic = True\ntorch.backends.cudnn.benchmark = False",
    "class Window:\n    def __init__(self, xs):\n        self.xs = xs\n    def __len__(self):\n        return len(self.xs)",
    "import threading, time\ndef tick():\n    for _ in range(3):\n        print('tick', end='')\n        time.sleep(0.01)\nthreading.Thread(target=tick, daemon=True).start()",
])
def test_scan_does_not_flag_honest_variants(source):
    assert integrity.scan(source, {"torch"}, {"raises"}) == []


def test_scan_names_the_line_of_each_flag():
    reasons = integrity.scan("x = 1\nimport inspect\ny = x.__class__\n", {"torch"}, set())
    assert all("(line " in r for r in reasons), reasons
    assert any(r.startswith("imports inspect (line 2: import inspect)") for r in reasons)
    assert any(r.startswith("uses .__class__ (line 3:") for r in reasons)


def test_probe_line_is_found_when_a_background_thread_prints():
    from cvcourse.execute import _probe_verdict

    cell = {"metadata": {"cvcourse": {"status": "ok"}},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "ticktick"},
                        {"output_type": "stream", "name": "stdout", "text": "cvcourse-probe n0nce 2 ok\ntick"}]}
    assert _probe_verdict(cell, "n0nce") == "ok"
    cell["outputs"].append({"output_type": "stream", "name": "stdout", "text": "cvcourse-probe n0nce 3 ok\n"})
    assert _probe_verdict(cell, "n0nce") != "ok"  # two reports: forged or replayed


def test_report_text_from_students_is_inert_markdown():
    from cvcourse.results import md

    hostile = "<img src=x onerror=alert(1)> [link](http://x) `code` **b**\n# heading"
    safe = md(hostile)
    assert "\n" not in safe and re.search(r"(?<!\\)[<>`\[\]()*#]", safe) is None, safe
    assert safe.replace("\\", "") == hostile.replace("\n", " ")  # escaped, not dropped
    assert len(md("x" * 10_000)) == 300 and md("x" * 10_000).endswith("…")
