"""cvlib.device: the device rule and seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cvlib.device import experiment_dtype, experiment_scale, pick_device, seed_everything


def test_explicit_argument_wins_and_is_announced(monkeypatch, capsys):
    monkeypatch.setenv("CVLIB_DEVICE", "cuda:7")
    assert pick_device("cpu") == torch.device("cpu")
    assert "cvlib: using cpu (requested by the device argument)" in capsys.readouterr().out


def test_environment_variable(monkeypatch, capsys):
    monkeypatch.setenv("CVLIB_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    assert "CVLIB_DEVICE" in capsys.readouterr().out


def test_automatic_choice(monkeypatch, capsys):
    monkeypatch.delenv("CVLIB_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device().type == expected
    assert capsys.readouterr().out.startswith(f"cvlib: using {expected}")
    assert pick_device(verbose=False).type == expected
    assert capsys.readouterr().out == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_unavailable_device_is_an_error_not_a_fallback(monkeypatch):
    with pytest.raises(RuntimeError, match="cuda was requested by the device argument but CUDA is not available"):
        pick_device("cuda")
    monkeypatch.setenv("CVLIB_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="CVLIB_DEVICE environment variable"):
        pick_device()


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", 3.5])
def test_invalid_device_names(bad):
    with pytest.raises(ValueError, match="invalid device"):
        pick_device(bad)


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_everything(123)
    first = draw()
    gen_a = seed_everything(123)
    assert draw() == first
    gen_b = seed_everything(123)
    assert torch.equal(torch.rand(3, generator=gen_a), torch.rand(3, generator=gen_b))
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    seed_everything(123, deterministic=False)
    assert torch.backends.cudnn.benchmark
    seed_everything(0)


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, True, "7"])
def test_bad_seed(bad):
    with pytest.raises(ValueError, match="seed must be an int"):
        seed_everything(bad)


def test_experiment_scale_precedence_and_errors(monkeypatch, capsys):
    monkeypatch.delenv("CVLIB_SCALE", raising=False)
    assert experiment_scale() == "cpu"
    assert "cvlib: experiment scale cpu (default" in capsys.readouterr().out
    monkeypatch.setenv("CVLIB_SCALE", "gpu")
    assert experiment_scale(verbose=False) == "gpu"
    assert experiment_scale("cpu", verbose=False) == "cpu"
    monkeypatch.setenv("CVLIB_SCALE", "huge")
    with pytest.raises(ValueError, match="CVLIB_SCALE environment variable"):
        experiment_scale()
    with pytest.raises(ValueError, match="scale argument"):
        experiment_scale("GPU")


def test_experiment_dtype_is_float64_at_cpu_scale_and_says_why(capsys):
    assert experiment_dtype("cpu") == torch.float64
    assert "cvlib: computing in float64 at cpu scale (stored outputs do not depend on the CPU)" in capsys.readouterr().out
    assert experiment_dtype("gpu", verbose=False) == torch.float32
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="experiment scale must be one of"):
        experiment_dtype("tpu")


def test_float64_training_does_not_depend_on_the_cpu_code_path(tmp_path):
    """The reason for experiment_dtype: the same seeded training run, under the machine's own code
    and under the notebook check's (scalar ATen, capped MKL and oneDNN), ends far closer in
    float64 than in float32."""
    import platform
    import subprocess
    import sys

    from cvcourse import numerics

    script = (
        "import sys, torch\n"
        "from cvlib.data import load_digits\n"
        "from cvlib.models import SmallCNN\n"
        "torch.set_num_threads(1)\n"
        "out = {}\n"
        "for dtype in (torch.float32, torch.float64):\n"
        "    torch.set_default_dtype(dtype)\n"
        "    x, y = load_digits(dtype=dtype).train.tensors\n"
        "    torch.manual_seed(0)\n"
        "    model = SmallCNN(width=8)\n"
        "    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
        "    for i in range(0, len(y), 32):\n"
        "        opt.zero_grad()\n"
        "        torch.nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()\n"
        "        opt.step()\n"
        "    out[str(dtype)] = [p.detach().double() for p in model.parameters()]\n"
        "torch.save(out, sys.argv[1])\n"
    )
    runs = {}
    for name in ("store", "check"):
        with numerics.environment(numerics.PATHS[name]):
            subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], check=True)
        runs[name] = torch.load(tmp_path / name)

    def gap(dtype):
        return max(float((p - q).abs().max()) for p, q in zip(runs["store"][dtype], runs["check"][dtype]))

    assert gap("torch.float64") < 1e-10
    if platform.machine() in ("x86_64", "AMD64") and torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        assert gap("torch.float32") > 1e3 * gap("torch.float64")  # this machine's own code is not the check's
