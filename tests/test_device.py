"""cvlib.device: the device rule and seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cvlib.device import experiment_scale, pick_device, seed_everything


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
