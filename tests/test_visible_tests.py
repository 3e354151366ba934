"""The visible tests of every assignment tell the student what was expected and what came back,
and every error rule the hidden tests check has a visible example (``cvcourse/expect.py``)."""

from __future__ import annotations

import ast
import subprocess
import sys

import nbformat
import pytest
import torch

from helpers import REPO
from cvcourse.expect import close, equal, raises, returns

SOLUTIONS = sorted((REPO / "solutions").glob("*/*.ipynb"))
HIDDEN = "### BEGIN HIDDEN TESTS"


def _test_cells(path):
    """(grade_id, visible part, hidden region) of each graded test cell of a solution notebook."""
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            visible, _, hidden = cell.source.partition(HIDDEN)
            yield meta["grade_id"], visible, hidden


def _error_rules(hidden: str) -> set[tuple[str, str]]:
    """(exception name, word its message must contain) pairs of a hidden region: written next to
    each other in a tuple (``((8, 0), ValueError, "kernel_size")``) or a call
    (``results[key].raises(ValueError, "height")``). Computed words (f-strings) are not counted."""
    rules = set()
    for node in ast.walk(ast.parse(hidden)):
        items = node.elts if isinstance(node, ast.Tuple) else node.args if isinstance(node, ast.Call) else []
        for error, word in zip(items, items[1:]):
            if (isinstance(error, ast.Name) and error.id.endswith("Error")
                    and isinstance(word, ast.Constant) and isinstance(word.value, str)):
                rules.add((error.id, word.value))
    return rules


def _visible_examples(visible: str) -> set[tuple[str, str]]:
    """(exception name, word) of each ``raises(Error, "word", fn, ...)`` of a visible part."""
    examples = set()
    for node in ast.walk(ast.parse(visible)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "raises"
                and len(node.args) >= 2 and isinstance(node.args[0], ast.Name)):
            words = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            examples |= {(node.args[0].id, w.value) for w in words if isinstance(w, ast.Constant)}
    return examples


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_every_visible_assert_says_what_was_expected(path):
    bare = [f"{gid}: {ast.unparse(node)}" for gid, visible, _ in _test_cells(path)
            for node in ast.walk(ast.parse(visible)) if isinstance(node, ast.Assert) and node.msg is None]
    assert not bare, "asserts without a message (use cvcourse.expect or add one):\n" + "\n".join(bare)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_every_error_rule_of_the_hidden_tests_has_a_visible_example(path):
    missing, rules = [], 0
    for gid, visible, hidden in _test_cells(path):
        found = _error_rules(hidden)
        rules += len(found)
        missing += [f"{gid}: {error} mentioning {word!r}" for error, word in sorted(found - _visible_examples(visible))]
    assert not missing, "error rules checked only by the hidden tests:\n" + "\n".join(missing)
    if path.parent.name in ("01_topk", "03_conv_arithmetic", "09_imbalance", "10_detection"):
        assert rules >= 7  # the extraction finds the rules at all


def test_the_rule_extraction_sees_tuples_calls_and_skips_computed_words():
    hidden = ('_BAD = [((0, 3), ValueError, "size"), ((8.0, 3), TypeError, "size")]\n'
              'results["h"].raises(ValueError, "height")\nresults[k].raises(ValueError, f"layer {i}")\n')
    assert _error_rules(hidden) == {("ValueError", "size"), ("TypeError", "size"), ("ValueError", "height")}
    assert _visible_examples('raises(ValueError, ("size", "8"), f, 0)\nraises(TypeError, "x", g)\n') == {
        ("ValueError", "size"), ("ValueError", "8"), ("TypeError", "x")}


# -- the messages ----------------------------------------------------------------------------------

def _message(check, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    return str(info.value)


def _size(size, kernel_size, stride=1):
    if kernel_size > size:
        raise ValueError(f"kernel_size={kernel_size} does not fit size={size}")
    return (size - kernel_size) // stride + 1


def test_returns_and_equal_say_the_call_what_was_expected_and_what_came_back():
    assert returns(28, _size, 32, 5) == 28
    assert _message(returns, 16, _size, 32, 3, stride=2) == "_size(32, 3, stride=2): expected 16, got 15"
    assert _message(returns, 1, _size, 2, 3) == "_size(2, 3): expected 1, got ValueError: kernel_size=3 does not fit size=2"
    equal([torch.ones(2), (1, "a")], [torch.ones(2), (1, "a")])
    assert _message(equal, torch.tensor([1.0, 0.5]), torch.ones(2), "w") == (
        "w: expected tensor of shape (2,), torch.float32: [1.0, 1.0], got tensor of shape (2,), torch.float32: [1.0, 0.5]")
    assert "expected tensor of shape (3,)" in _message(equal, torch.ones(2), torch.ones(3))  # shapes differ
    assert _message(equal, {"a": "ok"}, {"a": "frozen"}, "statuses") == (
        "statuses: expected {'a': 'frozen'}, got {'a': 'ok'}")


def test_close_uses_allclose_tolerances_without_broadcasting():
    close(torch.tensor([1.0, 2.0 + 1e-6]), torch.tensor([1.0, 2.0]))
    close([0.01, 0.1], [0.01, 0.1 + 1e-12], rtol=0, atol=1e-9)
    text = _message(close, torch.tensor([1.0, 2.1]), torch.tensor([1.0, 2.0]), "p after step 1")
    assert text.startswith("p after step 1: Tensor-likes are not close!") and "Mismatched elements: 1 / 2" in text
    assert "got      tensor of shape (2,), torch.float32: [1.0, 2.1]" in text
    assert "shape" in _message(close, torch.ones(3), torch.ones(1))  # allclose would broadcast and pass
    assert _message(close, None, 1.0, "loss") == "loss: expected numbers close to 1.0, got None"


@pytest.mark.parametrize("got, expected, rtol, atol", [
    ([1.0, 2.0 + 1e-6], [1.0, 2.0], 1e-5, 1e-8),
    ([1.0, 2.0 + 3e-5], [1.0, 2.0], 1e-5, 1e-8),  # just outside rtol
    ([0.0, 1e-8], [0.0, 0.0], 0.0, 1e-8),  # exactly at atol
    ([0.0, 1.01e-8], [0.0, 0.0], 0.0, 1e-8),
    ([float("nan")], [float("nan")], 1e-5, 1e-8),  # NaN is never close (equal_nan=False)
    ([float("inf"), -float("inf")], [float("inf"), -float("inf")], 1e-5, 1e-8),
    ([float("inf")], [-float("inf")], 1e-5, 1e-8),
    ([float("inf")], [1e308], 1e-5, 1e-8),
    ([], [], 1e-5, 1e-8),
])
@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float32), (torch.float32, torch.float64),
                                    (torch.float16, torch.float64), (torch.bfloat16, torch.float32)])
def test_close_passes_exactly_where_torch_testing_assert_close_passes(got, expected, rtol, atol, dtypes):
    """close() decides a passing float comparison itself (``torch.isclose``, without importing the
    heavy part of ``torch.testing``); its verdict must stay assert_close's on every edge."""
    g, e = torch.tensor(got, dtype=dtypes[0]), torch.tensor(expected, dtype=dtypes[1])
    try:
        torch.testing.assert_close(g, e, rtol=rtol, atol=atol, check_dtype=False, check_device=False)
        upstream = True
    except AssertionError:
        upstream = False
    try:
        close(g, e, rtol=rtol, atol=atol)
        ours = True
    except AssertionError:
        ours = False
    assert ours is upstream


def test_a_passing_close_does_not_import_torch_distributed():
    code = ("import sys, torch; from cvcourse.expect import close\n"
            "close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7])); close([0.5], [0.5])\n"
            "print('torch.distributed.tensor' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stdout + done.stderr


def test_raises_names_the_error_the_words_and_what_happened_instead():
    exc = raises(ValueError, "kernel_size", _size, 2, 3)
    assert isinstance(exc, ValueError)
    raises(ValueError, ("kernel_size", "size=2"), _size, 2, 3)
    assert _message(raises, ValueError, "stride", _size, 2, 3) == (
        "_size(2, 3): expected ValueError mentioning 'stride'; the message 'kernel_size=3 does not fit size=2' "
        "does not mention 'stride'")
    assert _message(raises, ValueError, "k", _size, 8, 3) == (
        "_size(8, 3): expected ValueError mentioning 'k', nothing was raised (it returned 6)")
    assert _message(raises, TypeError, "k", _size, 2, 3).endswith(
        "expected TypeError mentioning 'k', got ValueError: kernel_size=3 does not fit size=2")
    assert _message(raises, ValueError, "k", lambda: None).startswith("the call: ")
    raises(LookupError, (), {}.__getitem__, "x")  # a subclass (KeyError) counts


def test_check_tells_a_partial_solution_which_rule_it_misses(tmp_path):
    """The issue's case: 03 with the right arithmetic and no input checks passes the value examples
    and is told, in the visible tests, which error rule it misses."""
    nb = nbformat.read(REPO / "notebooks" / "03_conv_arithmetic" / "03_conv_arithmetic.ipynb", as_version=4)
    partial = {"sizes": ("def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):\n"
                         "    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1\n\n\n"
                         "def pool_output_size(size, kernel_size, stride=None, padding=0, ceil_mode=False):\n"
                         "    return (size + 2 * padding - kernel_size) // (stride or kernel_size) + 1\n")}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in partial:
            cell.source = partial[gid]
    nbformat.write(nb, tmp_path / "03_conv_arithmetic.ipynb")
    done = subprocess.run([sys.executable, "-m", "cvcourse", "check", str(tmp_path / "03_conv_arithmetic.ipynb")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    source = next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_conv_size")
    line = next(i for i, text in enumerate(source.splitlines(), 1) if text.startswith("raises(ValueError, \"kernel_size\""))
    assert (f"test_conv_size (2 points): FAILED: line {line}: raises(ValueError, \"kernel_size\", conv_output_size, 4, 5)"
            in done.stdout), done.stdout
    assert ("AssertionError: conv_output_size(4, 5): expected ValueError mentioning 'kernel_size', "
            "nothing was raised (it returned 0)") in done.stdout, done.stdout
    assert "without encryption" not in done.stderr and "Traceback" not in done.stderr, done.stderr
