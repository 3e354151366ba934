"""Parity cases drawn from torch's own module test database (imported as ``module_db_parity``).

``torch.testing._internal.common_modules.module_db`` lists, for every ``torch.nn`` module, the
constructor arguments and inputs torch's own ``test_modules.py`` runs (``module_inputs_func``)
and the arguments torch refuses (``module_error_inputs_func``). For a cvlib module with a torch
twin, :func:`check_sample` builds both from the same arguments, gives torch's module random
parameters and buffers, copies them into cvlib's with ``load_state_dict``, and compares two
forward passes (outputs, dtype, shape, strides), the input and parameter gradients and the
state (running statistics) after each.

Where torch raises, cvlib must raise the same exception type. A dtype torch's own CPU kernel does
not implement is skipped, with torch's error as the reason.

float16 and bfloat16: torch's CPU kernels compute in float32 and round at the end, but not
always once (BatchNorm rounds its per-channel scale and shift to float16 first: errors of 1000
ulps next to 0). So cvlib's low-precision results are held to the *exact* answer, torch's twin
run in float64 on the same (exactly representable) inputs, parameters and gradients, with
``assert_close``'s float16/bfloat16 tolerances, and to torch's low-precision answer within
those tolerances plus torch's own error.
"""

from __future__ import annotations

import pytest
import torch

# Importing torch's test utilities calls torch.backends.disable_global_flags(), which would make
# every later `torch.backends.cudnn.x = ...` in this process raise (cvlib.device.seed_everything
# sets such flags, and pytest-xdist collects every test module in every worker): keep them settable.
_disable_global_flags = torch.backends.disable_global_flags
torch.backends.disable_global_flags = lambda: None
try:
    from torch.testing._internal.common_modules import ModuleErrorEnum, module_db
finally:
    torch.backends.disable_global_flags = _disable_global_flags

INFOS = {info.module_cls.__name__: info for info in module_db}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
LOW_PRECISION = (torch.float16, torch.bfloat16)


def tolerances(dtype: torch.dtype) -> dict:
    """float32 loosened to 1e-4 relative for the reductions of normalization layers; float64,
    float16 and bfloat16 get ``torch.testing.assert_close``'s defaults (1e-7, 1e-3, 1.6e-2)."""
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {}


def samples(name: str, dtype: torch.dtype, training: bool) -> list:
    """torch's sample inputs for module ``name`` (seeded: the same tensors every call)."""
    info = INFOS[name]
    torch.manual_seed(0)
    return info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True, training=training)


def _layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """The sample's input as given, in channels_last, or as an empty batch (its first 0 rows)."""
    if layout == "channels_last":
        return x.detach().to(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)
    if layout == "empty_batch":
        return x.detach()[:0]
    return x.detach()


def _applies(sample, layout: str) -> bool:
    (x,) = sample.forward_input.args
    if layout == "channels_last":
        return x.ndim in (4, 5)
    if layout == "empty_batch":  # batched inputs only: [0, C, ...] keeps the channels
        return x.ndim >= 2 and "no_batch_dim" not in sample.desc and "zero_batch" not in sample.desc
    return True


def cases(names: list[str], layout: str = "as_given") -> list:
    """``pytest.param(name, dtype, training, index, layout)`` for every sample of every module
    in ``names`` (that the layout applies to: ``"as_given"``, ``"channels_last"`` for 4-d and 5-d
    inputs, ``"empty_batch"`` for batched inputs), with an id naming the sample
    (``BatchNorm2d-float16-train-zero_batch``)."""
    params = []
    for name in names:
        for dtype in DTYPES:
            for training in (True, False):
                for i, sample in enumerate(samples(name, dtype, training)):
                    if not _applies(sample, layout):
                        continue
                    mode = "train" if training else "eval"
                    label = sample.desc or "default"
                    suffix = "" if layout == "as_given" else f"-{layout}"
                    params.append(pytest.param(name, dtype, training, i, layout,
                                               id=f"{name}-{str(dtype)[6:]}-{mode}-{label}{suffix}"))
    return params


def error_cases(names: list[str]) -> list:
    """``pytest.param(name, training, index)`` for every error input torch lists for ``names``."""
    params = []
    for name in names:
        info = INFOS[name]
        if info.module_error_inputs_func is None:
            continue
        for training in (True, False):
            errors = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32,
                                                   requires_grad=False, training=training)
            for i, _ in enumerate(errors):
                mode = "train" if training else "eval"
                params.append(pytest.param(name, training, i, id=f"{name}-{mode}-{i}"))
    return params


def _randomize(module: torch.nn.Module, seed: int) -> None:
    """Random parameters and buffers (running variances positive), so that a swapped or
    ignored weight cannot pass unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if not t.is_floating_point():
                continue
            values = torch.randn(t.shape, generator=gen, dtype=torch.float64)
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            t.copy_(values.to(t.dtype))


def _unsupported(exc: Exception) -> bool:
    return isinstance(exc, (RuntimeError, NotImplementedError)) and "not implemented for" in str(exc)


def _observed(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """What a step produced: output, input gradient, parameter gradients, state (buffers)."""
    return {"output": y, "input grad": x.grad,
            **{f"grad of {k}": p.grad for k, p in module.named_parameters()},
            **{f"state {k}": v for k, v in module.state_dict().items()}}


def check_sample(ours_cls, name: str, dtype: torch.dtype, training: bool, index: int, layout: str) -> None:
    """Sample ``index`` of torch's ``name`` in ``dtype`` and ``layout``: cvlib's ``ours_cls`` and
    torch's module, built alike, agree over two steps (or both raise the same exception type)."""
    sample = samples(name, dtype, training)[index]
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    x = _layout(sample.forward_input.args[0], layout)
    assert not sample.forward_input.kwargs
    theirs = INFOS[name].module_cls(*args, **kwargs).to(dtype).train(training)
    _randomize(theirs, seed=index)
    ours = ours_cls(*args, **kwargs).to(dtype).train(training)
    ours.load_state_dict(theirs.state_dict())
    low = dtype in LOW_PRECISION
    if low:  # the exact answer: the same module, state and inputs in float64
        exact = INFOS[name].module_cls(*args, **kwargs).to(torch.float64).train(training)
    tol = tolerances(dtype)
    gen = torch.Generator().manual_seed(index)
    for step in range(2):  # two steps: running statistics accumulate (momentum=None averages)
        inp = x if step == 0 else (2 * x + 1)  # (keeps x's memory format)
        x1, x2 = inp.clone().requires_grad_(), inp.clone().requires_grad_()
        if low:
            exact.load_state_dict(ours.state_dict())
        try:
            y2 = theirs(x2)
        except Exception as exc:
            if _unsupported(exc):
                pytest.skip(f"torch's CPU kernel: {exc}")
            with pytest.raises(type(exc)):
                ours(x1)
            return
        y1 = ours(x1)
        assert y1.dtype == y2.dtype and y1.shape == y2.shape, (y1.dtype, y1.shape, y2.dtype, y2.shape)
        if y2.numel() > 1:
            assert y1.stride() == y2.stride(), f"strides {y1.stride()} vs torch's {y2.stride()}"
        grad = torch.randn(y2.shape, generator=gen, dtype=torch.float64).to(dtype)
        try:
            y2.backward(grad)
        except Exception as exc:
            if _unsupported(exc):
                pytest.skip(f"torch's CPU backward kernel: {exc}")
            raise
        y1.backward(grad)
        got, twin = _observed(ours, x1, y1), _observed(theirs, x2, y2)
        assert list(got) == list(twin)
        if low:  # the exact step from the state cvlib held before it (each step rounds once)
            x3 = inp.double().requires_grad_()
            y3 = exact(x3)
            y3.backward(grad.double())
            truth = _observed(exact, x3, y3)
        for key in got:
            a, b = got[key], twin[key]
            assert a.dtype == b.dtype and a.shape == b.shape, (key, a.dtype, a.shape, b.dtype, b.shape)
            msg = lambda m, key=key: f"{key}, step {step}: {m}"  # noqa: E731
            if not low or not a.is_floating_point():
                torch.testing.assert_close(a, b, **tol, msg=msg)
                continue
            torch.testing.assert_close(a, truth[key].to(dtype), msg=msg)  # as good as exact, once rounded
            torch_error = (b.double() - truth[key]).abs().max().item() if b.numel() else 0.0
            default_atol = 1e-5
            torch.testing.assert_close(a, b, rtol=1e-3 if dtype == torch.float16 else 1.6e-2,
                                       atol=default_atol + torch_error, msg=msg)
        for p in [*ours.parameters(), *theirs.parameters()]:
            p.grad = None
        if low:
            for p in exact.parameters():
                p.grad = None


def check_error(ours_cls, name: str, training: bool, index: int) -> None:
    """cvlib raises the exception type torch's module_db says torch raises, at the same stage."""
    info = INFOS[name]
    error = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32,
                                          requires_grad=False, training=training)[index]
    sample = error.module_error_input
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    if error.error_on == ModuleErrorEnum.CONSTRUCTION_ERROR:
        with pytest.raises(error.error_type, match=error.error_regex):
            info.module_cls(*args, **kwargs)  # torch itself raises this (the database is right)
        with pytest.raises(error.error_type):
            ours_cls(*args, **kwargs)
        return
    (x,) = sample.forward_input.args
    theirs = info.module_cls(*args, **kwargs).train(training)
    ours = ours_cls(*args, **kwargs).train(training)
    try:
        theirs(x)
    except Exception as exc:
        assert isinstance(exc, error.error_type), exc
        with pytest.raises(error.error_type):
            ours(x)
    else:  # torch raises only in the other mode (e.g. eps=0 is refused when training only)
        ours(x)
