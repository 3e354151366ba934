"""The checks the *visible* tests of every assignment use: each failure says what was expected and
what came back, so a student (in Jupyter, in ``cvcourse check`` or in the feedback) reads the
problem instead of a bare ``AssertionError``::

    from cvcourse.expect import close, equal, raises, returns

    returns(55, conv_output_size, 224, 11, stride=4, padding=2)
    # AssertionError: conv_output_size(224, 11, stride=4, padding=2): expected 55, got 54
    equal(stopper.best_epoch, 2, "best_epoch")
    # AssertionError: best_epoch: expected 2, got 3
    close(sigmoid(x), 1 / (1 + torch.exp(-x)), "sigmoid(x)")
    # AssertionError: sigmoid(x): Tensor-likes are not close! ... Greatest absolute difference: ...
    raises(ValueError, "kernel_size", conv_output_size, 5, 7)
    # AssertionError: conv_output_size(5, 7): expected ValueError mentioning 'kernel_size', got the value -1

They run in the student's kernel and decide nothing about the grade on their own: the points come
from the hidden checks, which run outside it (``cvcourse/hidden.py``).
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["close", "equal", "raises", "returns"]

_SHOWN = 300  # characters of a value shown in a message


def _rounded(value: Any) -> Any:
    """Floats to 7 significant digits (float32's), inside nested lists."""
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return float(f"{value:.7g}") if isinstance(value, float) else value


def _show(value: Any) -> str:
    """``repr(value)`` on one line, cut to a readable length (a tensor with its shape and dtype)."""
    if _is_tensor(value):
        text = f"tensor of shape {tuple(value.shape)}, {value.dtype}: {_rounded(value.detach().cpu().tolist())!r}"
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _call(fn: Callable, args: tuple, kwargs: dict) -> str:
    """``name(arg, ..., key=value)`` as the student would type it."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    shown = [_show(a) for a in args] + [f"{k}={_show(v)}" for k, v in kwargs.items()]
    text = f"{name}({', '.join(shown)})"
    return "the call" if "<lambda>" in name else text


def _error(exc: BaseException) -> str:
    """``Name: message``, or ``Name`` alone when there is no message."""
    message = " ".join(str(exc).split())[:_SHOWN]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _prefix(what: str) -> str:
    return f"{what}: " if what else ""


def _is_tensor(value: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")  # never imported here: a test without tensors stays light
    return torch is not None and isinstance(value, torch.Tensor)


def _same(got: Any, expected: Any) -> bool:
    """``got == expected``, with tensors compared by shape and value, inside lists and tuples too."""
    if _is_tensor(got) or _is_tensor(expected):
        import torch

        return (_is_tensor(got) and _is_tensor(expected) and got.shape == expected.shape
                and torch.equal(got.detach().cpu(), expected.detach().cpu()))
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(got) == len(expected) and all(_same(g, e) for g, e in zip(got, expected))
    if isinstance(expected, dict) and isinstance(got, dict):
        return got.keys() == expected.keys() and all(_same(got[k], expected[k]) for k in expected)
    result = got == expected
    return result if isinstance(result, bool) else bool(result)


def equal(got: Any, expected: Any, what: str = "") -> None:
    """Fail unless ``got`` equals ``expected`` (tensors: same shape and values)."""
    try:
        same = _same(got, expected)
    except Exception as exc:  # noqa: BLE001 - an == that cannot answer is a mismatch, said plainly
        raise AssertionError(f"{_prefix(what)}expected {_show(expected)}, got {_show(got)} "
                             f"(comparing them raised {type(exc).__name__}: {exc})") from None
    if not same:
        raise AssertionError(f"{_prefix(what)}expected {_show(expected)}, got {_show(got)}")


def close(got: Any, expected: Any, what: str = "", *, rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """Fail unless ``got`` is a tensor (or a number, or a list of numbers) of ``expected``'s shape within
    ``|got - expected| <= atol + rtol * |expected|`` everywhere (``torch.allclose``'s tolerances,
    without its broadcasting: a wrong shape fails). The message is ``torch.testing``'s: how many
    elements differ, and the greatest differences."""
    import torch

    def as_tensor(value, dtype):
        if _is_tensor(value):
            return value.detach()
        if isinstance(value, bool) or not isinstance(value, (int, float, list, tuple)):
            raise TypeError
        return torch.tensor(value, dtype=dtype)

    try:
        got_t = as_tensor(got, torch.float64)
        expected_t = as_tensor(expected, got_t.dtype if got_t.is_floating_point() else torch.float64)
    except (TypeError, ValueError, RuntimeError):  # not numbers: no tensor to compare
        raise AssertionError(f"{_prefix(what)}expected numbers close to {_show(expected)}, got {_show(got)}") from None
    if _plainly_close(torch, got_t, expected_t, rtol, atol):
        return
    try:
        torch.testing.assert_close(got_t, expected_t, rtol=rtol, atol=atol, check_dtype=False, check_device=False)
    except AssertionError as exc:
        raise AssertionError(f"{_prefix(what)}{exc}\nexpected {_show(expected)},\ngot      {_show(got)}") from None


def _plainly_close(torch, got, expected, rtol: float, atol: float) -> bool:
    """True when two dense floating-point tensors of one shape are close by ``torch.isclose``, the
    test ``torch.testing.assert_close`` applies to them (after promoting both to one dtype and one
    device). Every other case, and every failure, is left to ``assert_close`` itself, for its
    verdict and its message. Its first call imports ``torch.distributed.tensor`` (about 0.5 s in
    every student's kernel); a passing check no longer pays for it."""
    if not (got.layout == expected.layout == torch.strided and got.shape == expected.shape
            and got.is_floating_point() and expected.is_floating_point()):
        return False
    dtype = torch.promote_types(got.dtype, expected.dtype)
    a, b = got.cpu().to(dtype), expected.cpu().to(dtype)
    return bool(torch.isclose(a, b, rtol=rtol, atol=atol).all())


def returns(expected: Any, fn: Callable, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)``; fail unless it returns ``expected`` (as :func:`equal`). Returns
    the value."""
    where = _call(fn, args, kwargs)
    try:
        got = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the student's error, named, is the message
        raise AssertionError(f"{where}: expected {_show(expected)}, got {_error(exc)}") from None
    equal(got, expected, where)
    return got


def raises(error: type[BaseException], words: str | tuple[str, ...], fn: Callable, /, *args: Any,
           **kwargs: Any) -> BaseException:
    """Call ``fn(*args, **kwargs)``; fail unless it raises ``error`` (or a subclass) with each of
    ``words`` in its message. Returns the exception."""
    words = (words,) if isinstance(words, str) else tuple(words)
    where = _call(fn, args, kwargs)
    wanted = f"{error.__name__}" + (f" mentioning {', '.join(map(repr, words))}" if words else "")
    try:
        value = fn(*args, **kwargs)
    except error as exc:
        missing = [w for w in words if w not in str(exc)]
        if missing:
            raise AssertionError(f"{where}: expected {wanted}; the message {str(exc)[:_SHOWN]!r} does not "
                                 f"mention {', '.join(map(repr, missing))}") from None
        return exc
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{where}: expected {wanted}, got {_error(exc)}") from None
    raise AssertionError(f"{where}: expected {wanted}, nothing was raised (it returned {_show(value)})")
