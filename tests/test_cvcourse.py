"""Unit tests of the grader's parts (no kernel): reading and rebuilding submissions, the review
scan, scoring, feedback pages, the sandbox's command line. The whole grader runs in
test_sandbox.py and test_grading.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from helpers import REPO
from cvcourse import feedback, hidden, integrity
from cvcourse.execute import score
from cvcourse.record import NotebookScore, StudentResult
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
    rules = integrity.Forbidden.of(source)  # applied to solution cells (scratch cells may use the twins)
    solutions = [MARKER.sub("", c.source) for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")]
    for text in solutions + [p.read_text() for p in (REPO / "tests" / "submissions" / assignment).glob("*/*.py")]:
        assert integrity.forbidden_uses(text, rules) == [], text[:200]


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

SOURCE = nbformat.read(REPO / "solutions" / "01_topk" / "01_topk.ipynb", as_version=4)


@pytest.fixture(scope="module")
def plans():
    return hidden.prepare(SOURCE)


def _solution_ns():
    """The instructor's topk_error, defined in a namespace as the kernel would hold it."""
    ns = {}
    for cell in SOURCE.cells:
        if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("grade") and \
                cell.metadata.get("nbgrader", {}).get("grade_id") in ("imports", "topk_error"):
            exec(cell.source, ns)
    return ns


def _kernel_payload(plan, ns):
    """Run a plan's kernel half the way the kernel does; return the payload it would display."""
    shown = []
    ns = dict(ns)
    import IPython.display

    original = IPython.display.display
    IPython.display.display = lambda obj, raw=False: shown.append(obj[hidden.MIME])
    try:
        exec(plan.kernel_code, ns)
    finally:
        IPython.display.display = original
    return shown


def _executed(plans, status="ok", test_outputs=(), payloads=None):
    nb = nbformat.from_dict(json.loads(json.dumps(RELEASE)))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata["cvcourse"] = {"status": "ok", "results": []}
        if cell.metadata.get("nbgrader", {}).get("grade"):
            g = gid(cell)
            cell.metadata["cvcourse"] = {"status": status, "results": payloads[g] if payloads else []}
            cell.outputs = list(test_outputs)
    return nb


def test_kernel_half_carries_no_expected_values_nor_the_twin(plans):
    for plan in plans.values():
        assert "multiclass_accuracy" not in plan.kernel_code and "torchmetrics" not in plan.kernel_code
        assert "_check" not in plan.kernel_code and "_reference" not in plan.kernel_code
        assert "def _run(inputs, record)" in plan.kernel_code


def test_score_full_marks_from_reported_data_with_stderr_output(plans):
    payloads = {g: _kernel_payload(p, _solution_ns()) for g, p in plans.items()}
    nb = _executed(plans, test_outputs=[nbformat.v4.new_output("stream", name="stderr", text="UserWarning\n")],
                   payloads=payloads)
    result = score(nb, plans, [])
    assert result.failed == {}
    assert result.scores == {"test_values": (3.0, 3.0), "test_ties": (2.0, 2.0), "test_errors": (2.0, 2.0)}


def test_score_zero_for_wrong_data_missing_data_errors_and_deleted_tests(plans):
    wrong = dict(_solution_ns(), topk_error=lambda logits, target, k: 0.5)
    payloads = {g: _kernel_payload(p, wrong) for g, p in plans.items()}
    result = score(_executed(plans, payloads=payloads), plans, [])
    assert all(points == 0 for points, _ in result.scores.values())
    assert "expected" in result.failed["test_values"] and "nothing was raised" in result.failed["test_errors"]
    result = score(_executed(plans), plans, ["test_values"])
    assert "deleted" in result.failed["test_values"] and "did not come back" in result.failed["test_ties"]
    good = {g: _kernel_payload(p, _solution_ns()) for g, p in plans.items()}
    result = score(_executed(plans, status="error", payloads=good), plans, [])
    assert all(points == 0 for points, _ in result.scores.values())  # an error reply can only cost points
    twice = {g: v * 2 for g, v in good.items()}
    assert "more than once" in score(_executed(plans, payloads=twice), plans, []).failed["test_ties"]


def test_cuda_cases_are_notes_that_never_change_the_score():
    """One submission, one score, whatever the host: 01's CUDA cases run only under ``--gpu``, and
    what they find is a note. Here the plans say "GPU" but the kernel has none, so every CUDA call
    fails, as a device bug in the student's code would."""
    plans = hidden.prepare(SOURCE, gpu=True)
    try:
        payloads = {g: _kernel_payload(p, _solution_ns()) for g, p in plans.items()}
    finally:
        hidden.prepare(SOURCE)  # leaves the module as the other tests expect it (no GPU)
    result = score(_executed(plans, payloads=payloads), plans, [])
    assert result.failed == {} and result.scores["test_values"] == (3.0, 3.0), result
    assert result.notes and all(n.startswith("on CUDA (not counted): ") for n in result.notes["test_values"])
    page = feedback.render(_executed(plans, payloads=payloads), result, "01_topk / ann")
    assert "on CUDA (not counted)" in page and "Score: 7 / 7" in page


@pytest.mark.parametrize("name, cuda_cells", [
    ("01_topk", {"test_values"}), ("02_early_stopping", {"test_restore"}),
    ("08_optimizers", {"test_sgd", "test_adam_wd_groups"}),
])
def test_every_cuda_case_of_the_hidden_tests_is_not_counted(name, cuda_cells):
    """The assignments whose hidden tests add CUDA cases under ``--gpu``: with the instructor's
    solution and CUDA calls that fail, every cell still passes, and the failures are notes of
    exactly the cells that have CUDA cases."""
    import IPython.display
    import torch

    source = nbformat.read(REPO / "solutions" / name / f"{name}.ipynb", as_version=4)
    ns = {}
    for cell in source.cells:
        if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("grade"):
            exec(cell.source, ns)
    plans = hidden.prepare(source, gpu=True)
    original, noted = IPython.display.display, {}
    try:
        for g, plan in plans.items():
            shown = []
            IPython.display.display = lambda obj, raw=False: shown.append(obj[hidden.MIME])
            exec(plan.kernel_code, dict(ns))
            reason, notes = plan.verdict(shown)
            assert reason is None, f"{name} {g}: {reason}"
            if notes:
                noted[g] = notes
    finally:
        IPython.display.display = original
        hidden.prepare(source)
    if not torch.cuda.is_available():
        assert set(noted) == cuda_cells, noted
        assert all(n.startswith("on CUDA (not counted): ") for notes in noted.values() for n in notes)
    else:
        assert noted == {}, noted  # on a GPU the solution passes its CUDA cases too


@pytest.mark.parametrize("payload, why", [
    (None, "not text"),
    ("[" * 100000 + "]" * 100000, "not JSON"),
    ("x" * (hidden.MAX_RESULTS_BYTES + 1), "larger than"),
    ('{"results": [], "stopped": 3}', "expected form"),
    ('{"results": [["k", {"value": {"$tensor": {"dtype": "float32", "shape": [1000000000], "data": ""}}}]], '
     '"stopped": null}', "does not hold"),
    ('{"results": [["k", {"value": {"$tensor": {"dtype": "complex64", "shape": [1], "data": "AAAAAAAAAAA="}}}]], '
     '"stopped": null}', "bad dtype"),
    ('{"results": [["k", {"value": {"$pickle": "gASV"}}]], "stopped": null}', "not an encoded value"),
    ('{"results": [["k", {"value": ' + '{"$tuple": [' * 40 + "1" + "]}" * 40 + '}]], "stopped": null}', "nested"),
])
def test_malformed_results_are_rejected_with_a_reason(payload, why):
    with pytest.raises(ValueError, match=why):
        hidden.decode(payload)


def test_encoding_round_trips_plain_values_and_tensors():
    import torch

    value = {"a": [1, 2.5, float("inf"), None, True, "s"], 3: (torch.arange(6, dtype=torch.int16).reshape(2, 3),),
             "big": 1 << 70, "dtypes": [torch.bfloat16, torch.bool], "t": torch.tensor([0.5, -1.0], dtype=torch.bfloat16),
             "empty": torch.zeros(0, 4), "bool": torch.tensor([True, False])}
    back = hidden._unblob(hidden._blob(value))
    assert back["a"] == value["a"] and back["big"] == 1 << 70 and back["dtypes"] == value["dtypes"]
    assert torch.equal(back[3][0], value[3][0]) and back[3][0].dtype == torch.int16
    assert torch.equal(back["t"], value["t"]) and back["empty"].shape == (0, 4) and torch.equal(back["bool"], value["bool"])
    assert repr(hidden._unblob(hidden._blob(object()))) == "<a object object>"
    evil = hidden.decode('{"results": [["b", {"value": {"$tensor": {"dtype": "bool", "shape": [2], "data": "AgM="}}}]],'
                         ' "stopped": null}')
    assert evil["b"].value.tolist() == [True, True]  # bytes other than 0/1 do not make invalid bools


def test_an_exception_arrives_as_data_with_a_bounded_name():
    record = hidden._Recorder()
    evil = type("E" * 100_000, (ValueError,), {"__str__": lambda self: "k " * 10_000})
    record("call", lambda: (_ for _ in ()).throw(evil()))
    outcome = hidden.decode(record.payload())["call"]
    assert len(outcome.raised.type) == 100 and "ValueError" in outcome.raised.bases
    assert len(outcome.raised.message) <= hidden.MAX_TEXT + 3
    outcome.raises(ValueError, "k")
    with pytest.raises(hidden.Failure, match="expected TypeError"):
        outcome.raises(TypeError, "k")


def test_authoring_errors_name_the_cell():
    nb = nbformat.from_dict(json.loads(json.dumps(SOURCE)))
    for cell in nb.cells:
        if gid(cell) == "test_ties":
            cell.source = cell.source.replace("const, labels = torch.zeros(12, 4)", "const, labels = _reference(0, 0, 0)")
    with pytest.raises(hidden.AuthoringError, match="test_ties.*_reference"):
        hidden.prepare(nb)
    for cell in nb.cells:
        if gid(cell) == "test_ties":
            cell.source = hidden.split(cell.source)[0]
    with pytest.raises(hidden.AuthoringError, match="test_ties: a graded cell without hidden tests"):
        hidden.prepare(nb)


# -- feedback --------------------------------------------------------------------------------------------

def test_feedback_escapes_everything_and_hides_hidden_tests():
    source = nbformat.read(REPO / "solutions" / "01_topk" / "01_topk.ipynb", as_version=4)
    nb = nbformat.from_dict(json.loads(json.dumps(source)))
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(evil))
    nb.cells.insert(2, nbformat.v4.new_markdown_cell("**Read** [this](https://pytorch.org) or [that](javascript:alert(3)) "
                                                     "![a tracker](https://example.org/pixel.png)"))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": evil, "text/plain": evil,
                                                                           "image/png": "bm90IGEgcG5n"}),
                            nbformat.v4.new_output("stream", name="stdout", text=f"from {gid(cell)}: {evil}")]
    outcome = NotebookScore({"test_values": (0.0, 3.0), "test_ties": (2.0, 2.0), "test_errors": (2.0, 2.0)},
                            {"test_values": "EvilError: <b>boom</b>", "test_ties": "AssertionError: expected 2, got 3"})
    page = feedback.render(nb, outcome, title="t")
    assert "<script" not in page.lower() and not re.search(r"<[^>]+\son\w+\s*=", page, re.I)
    assert "<img" not in page  # the "PNG" was not one
    assert "### BEGIN HIDDEN TESTS" not in page and "_reference" not in page and "multiclass_accuracy" not in page
    assert "from topk_error:" in page and "from test_values:" not in page  # no output from the first hidden cell on
    assert "EvilError" not in page and "failed" in page  # a non-builtin exception name is not shown
    assert "AssertionError: expected 2, got 3" in page  # a builtin one is, with its message, in plain words
    assert "reply status" not in page
    assert "Score: 4 / 7" in page
    # Markdown is rendered (raw HTML in it shown as text), links only to http(s), images as alt text
    assert "<strong>Read</strong>" in page and '<a href="https://pytorch.org">this</a>' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript' not in page and "pixel.png" not in page and "a tracker" in page
    assert '<span class="k">def</span>' in page  # code is highlighted


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
    argv = kernel_argv(tmp_path, Limits(cpu=7, memory_mb=100), cgroup=["--cgroup", "/sys/fs/cgroup/pids/g:pids.max=9"])
    assert argv[1:6] == ["-m", "cvcourse.launch", "--cgroup", "/sys/fs/cgroup/pids/g:pids.max=9", "--"]
    argv = argv[6:]
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


def test_report_text_from_students_is_inert_markdown():
    from cvcourse.results import md

    hostile = "<img src=x onerror=alert(1)> [link](http://x) `code` **b**\n# heading"
    safe = md(hostile)
    assert "\n" not in safe and re.search(r"(?<!\\)[<>`\[\]()*#]", safe) is None, safe
    assert safe.replace("\\", "") == hostile.replace("\n", " ")  # escaped, not dropped
    assert len(md("x" * 10_000)) == 300 and md("x" * 10_000).endswith("…")


# -- what an assignment forbids ----------------------------------------------------------------------

RULES = integrity.Forbidden(("cvlib", "torchmetrics", "torch.nn.functional"), ("local_response_norm", "SGD"), "try")


@pytest.mark.parametrize("source, what", [
    ("from cvlib.topk import topk_error\n", "cvlib.topk.topk_error"),
    ("import cvlib\n", "cvlib"),
    ("from torchmetrics.functional import accuracy as acc\n", "torchmetrics.functional.accuracy"),
    ("import torch\ny = torch.nn.functional.gelu(x)\n", "torch.nn.functional"),
    ("from torch import nn\ny = nn.functional.softmax(x, 1)\n", "nn.functional"),
    ("import torch.nn.functional as F\n", "torch.nn.functional"),
    ("y = F.local_response_norm(x, 5)\n", "F.local_response_norm"),
    ("class SGD(torch.optim.Optimizer):\n    def step(self):\n        return torch.optim.SGD.step(self)\n",
     "torch.optim.SGD"),
    ("m = __import__('cvlib')\n", "cvlib"),
])
def test_forbidden_uses_are_flagged_with_their_line(source, what):
    reasons = integrity.forbidden_uses(source, RULES)
    assert any(r.startswith(f"uses {what}, which this assignment forbids (try)") and "(line " in r for r in reasons), reasons


def test_computed_imports_are_flagged_and_honest_code_is_not():
    assert any("computed name" in r for r in integrity.forbidden_uses("import importlib\nm = importlib.import_module('cv' + 'lib')\n", RULES))
    assert any("computed name" in r for r in integrity.forbidden_uses("m = __import__(''.join(['cv', 'lib']))\n", RULES))
    honest = "import torch\nclass SGD(torch.optim.Optimizer):\n    def step(self):\n        return torch.exp(x).sum()\n"
    assert integrity.forbidden_uses(honest, RULES) == []


def test_forbidden_rules_come_from_the_source_metadata_and_empty_packages_in_the_sandbox(tmp_path):
    rules = integrity.Forbidden.of(SOURCE)
    assert "torchmetrics" in rules.modules and rules.modules[0] == "cvlib"
    assert "torchmetrics" in rules.sandbox_hidden() and "torch" not in rules.sandbox_hidden()
    argv = kernel_argv(tmp_path, Limits(), hide=rules.sandbox_hidden())
    import torchmetrics

    folder = str(Path(torchmetrics.__file__).parent)
    i = argv.index(folder)
    assert argv[i - 1] == "--tmpfs" and argv[i + 1:i + 3] == ["--remount-ro", folder]
    assert not any("cvlib" in a for a in argv)  # not mounted at all


def test_patching_torch_in_the_kernel_cannot_move_the_reference(tmp_path):
    """The attack that got 11/11 for 2/11 of honest work when the hidden tests ran in the kernel:
    wrong formulas (dilation ignored) plus nn.Conv2d / F.conv2d replaced by fakes that agree with
    them. The kernel half runs in another process with those fakes; the checks, here, use the
    real torch."""
    import subprocess
    import sys

    source = nbformat.read(REPO / "solutions" / "03_conv_arithmetic" / "03_conv_arithmetic.ipynb", as_version=4)
    plans = hidden.prepare(source)
    meta = [(c, c.metadata.get("nbgrader", {})) for c in source.cells if c.cell_type == "code"]
    cells = [MARKER.sub("", c.source) for c, m in meta if (m.get("locked") or m.get("solution")) and not m.get("grade")]
    attack = '''
import torch, torch.nn.functional as F
_honest = conv_output_size
def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    return _honest(size, kernel_size, stride, padding, 1)  # wrong: dilation ignored
class _FakeConv(torch.nn.Module):  # agrees with the wrong formula
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        self.k, self.s, self.p, self.cout = kernel_size, stride, padding, cout
    def forward(self, x):
        h = conv_output_size(x.shape[2], self.k if isinstance(self.k, int) else self.k[0], self.s, self.p)
        return torch.zeros(x.shape[0], self.cout, h, h)
torch.nn.Conv2d = _FakeConv
F.conv2d = lambda x, w, *a, **k: torch.zeros(1)
'''
    (tmp_path / "kernel.json").write_text(json.dumps({"cells": cells + [attack],
                                                      "halves": {g: p.kernel_code for g, p in plans.items()}}))
    script = '''
import json, sys, IPython.display
spec = json.load(open(sys.argv[1]))
ns, shown = {"__name__": "__main__"}, {}
for cell in spec["cells"]:
    exec(cell, ns)
for gid, code in spec["halves"].items():
    IPython.display.display = lambda obj, raw=False, gid=gid: shown.setdefault(gid, []).append(obj[sys.argv[2]])
    exec(code, ns)
print(json.dumps(shown))
'''
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "kernel.json"), hidden.MIME],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    verdicts = {gid: plan.verdict(shown.get(gid, []))[0] for gid, plan in plans.items()}
    assert verdicts["test_conv_size"] is not None and "dilation" in verdicts["test_conv_size"], verdicts
    assert verdicts["test_pool_size"] is None  # what the attack did not touch still passes


# -- limits for the whole sandbox ------------------------------------------------------------------------

def test_launch_joins_the_cgroups_with_their_limits_and_closes_the_graders_descriptors(tmp_path):
    import subprocess
    import sys

    from cvcourse import cgroups

    host = cgroups.detect()
    if host.kind == "none":
        pytest.skip(f"this host offers no cgroups: {host.why}")  # cvcourse grade says so at start-up
    name = f"cvcourse-test-{tmp_path.name[-12:]}"
    out = tmp_path / "out.txt"
    leaked = open(tmp_path / "grader.log", "w")  # an open descriptor of the "grader"
    script = (f"cat /proc/self/cgroup > {out}; ls -l /proc/$$/fd/ >> {out}; "
              + "".join(f"cat {p / name}/{'memory.limit_in_bytes' if 'memory' in str(p) else 'pids.max'} >> {out}; "
                        for p in host.parents) + "echo to-stdout")
    try:
        done = subprocess.run([sys.executable, "-m", "cvcourse.launch", *host.group_args(name, 300 << 20, 42), "--",
                               "sh", "-c", script], stdout=leaked, stderr=leaked, pass_fds=(leaked.fileno(),),
                              timeout=60)
        assert done.returncode == 0
        text = out.read_text()
        assert text.count(name) == len(host.parents), text  # in each group
        assert str(300 << 20) in text and "42" in text
        assert "grader.log" not in text and "/dev/null" in text, text  # the shell holds none of the grader's
        leaked.close()
        assert (tmp_path / "grader.log").read_text() == ""  # stdout and stderr went to /dev/null
    finally:
        cgroups.kill_and_remove(host, name)
    assert not any((p / name).exists() for p in host.parents)


def test_launch_refuses_to_start_without_a_limit_it_cannot_set(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cvcourse.launch", "--cgroup", f"{tmp_path}/no/such:pids.max=1",
                           "--", "true"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "FileNotFoundError" in done.stderr


def test_feedback_refuses_figures_that_decode_to_gigapixels():
    import base64
    import struct
    import zlib

    def png(width, height):
        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        rows = zlib.compress(b"".join(b"\0" + b"\0" * width for _ in range(min(height, 4))))
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", rows) + chunk(b"IEND", b""))

    small = {"output_type": "display_data", "data": {"image/png": base64.b64encode(png(40, 30)).decode()}}
    huge = {"output_type": "display_data", "data": {"image/png": base64.b64encode(png(30000, 30000)).decode()}}
    assert feedback._output(small).startswith("<img")
    assert "too large" in feedback._output(huge) and "<img" not in feedback._output(huge)


def test_timestamp_is_read_bounded_and_says_when_it_cannot_be(tmp_path):
    from cvcourse.grade import timestamp

    assert timestamp(tmp_path) == (None, None)  # no file: nothing to say
    (tmp_path / "timestamp.txt").write_text("2026-12-01 23:59:00.000000 UTC")
    when, note = timestamp(tmp_path)
    assert note is None and when.year == 2026 and when.hour == 23
    (tmp_path / "timestamp.txt").write_text("2026-12-01 " + " " * 10_000_000)  # 10 MB: not read whole
    assert timestamp(tmp_path) == (None, "timestamp.txt is not a regular file of at most 200 bytes; graded as on time")
    (tmp_path / "timestamp.txt").unlink()
    (tmp_path / "timestamp.txt").symlink_to("/etc/hostname")
    assert timestamp(tmp_path)[1].startswith("timestamp.txt is not a regular file")


@pytest.mark.parametrize("assignment, optimizers", [("07_activations", False), ("08_optimizers", True)])
def test_judges_are_warmed_before_the_workers_fork(tmp_path, assignment, optimizers):
    """What the hidden checks import on first use is imported once in the grading process, so that
    no forked worker pays for it: assert_close's torch.distributed.tensor always, torch._dynamo (which
    building an optimizer imports) only for a source whose code names optimizers."""
    import subprocess
    import sys

    code = ("import json, sys\n"
            "from pathlib import Path\n"
            "from cvcourse import grade\n"
            "modules = ('torch.distributed.tensor', 'torch._dynamo')\n"
            f"batch = grade.Batch(Path('.'), {assignment!r}, Path('.'), Path({str(tmp_path)!r}))\n"
            f"prepared = grade.Prepared.of(Path({str(REPO / 'solutions' / assignment)!r}), batch)\n"
            "before = [m in sys.modules for m in modules]\n"
            "grade._warm_judges(prepared)\n"
            "print(json.dumps([prepared.optimizers, before, [m in sys.modules for m in modules]]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    flag, before, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert flag is optimizers
    assert before[0] is False  # preparing did not import it already: warming is what does
    assert after == [True, optimizers]
