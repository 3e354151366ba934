"""Data-parallel training: two CPU processes (gloo) started by torchrun, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import REPO
from cvlib.distributed import setup, world
from cvlib.loaders import DeviceLoader
from cvlib.models import SmallCNN
from cvlib.train import fit, load_checkpoint

sys.path.insert(0, str(REPO / "tests"))
import ddp_worker  # noqa: E402


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(REPO / "tests" / "ddp_worker.py"), str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out, run.stdout


def test_one_ddp_step_equals_one_step_on_the_combined_batch(two_processes):
    out, _ = two_processes
    x, y = ddp_worker.fixed_batch(2 * ddp_worker.BATCH)
    model = ddp_worker.plain_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fit(model, opt, DeviceLoader((x, y), 2 * ddp_worker.BATCH), epochs=1, device="cpu", progress=False)
    start = ddp_worker.plain_net().state_dict()
    for rank in (0, 1):
        got = torch.load(out / f"step_rank{rank}.pt", weights_only=True)
        for name, want in model.state_dict().items():
            assert not torch.equal(got[name], start[name]), f"{name} did not move"
            torch.testing.assert_close(got[name], want, rtol=1e-5, atol=1e-6, msg=f"rank {rank}: {name}")


def test_replicas_stay_identical_and_agree_on_metrics(two_processes):
    out, _ = two_processes
    states = [torch.load(out / f"train_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert states[0].keys() == states[1].keys()
    for name in states[0]:  # parameters and BatchNorm buffers (broadcast from rank 0)
        assert torch.equal(states[0][name], states[1][name]), name
    rows = [json.loads((out / f"history_rank{r}.json").read_text()) for r in (0, 1)]
    drop = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert drop(rows[0]) == drop(rows[1]) and len(rows[0]) == 3


def test_rank_zero_alone_logs_and_checkpoints(two_processes):
    out, stdout = two_processes
    assert stdout.count("epoch 3/3") == 1, stdout
    assert stdout.count("cvlib: 2 processes, backend gloo") == 1, stdout
    assert not list(out.glob(".checkpoint.pt.*")), "a temporary checkpoint file was left behind"
    model = SmallCNN(width=8)
    history = load_checkpoint(out / "checkpoint.pt", model)
    assert len(history) == 3
    rank0 = torch.load(out / "train_rank0.pt", weights_only=True)
    for name, value in model.state_dict().items():
        assert torch.equal(value, rank0[name]), name


def test_sharded_evaluation_counts_every_sample_once():
    """Unshuffled shards (evaluation) split 37 samples 19/18 with no sample twice."""
    x, y = ddp_worker.fixed_batch(37)
    shards = [DeviceLoader((torch.arange(37.0)[:, None], y), 8, rank=r, world_size=2) for r in (0, 1)]
    seen = torch.cat([b[0][:, 0] for s in shards for b in s])
    assert sorted(seen.tolist()) == list(range(37))


def test_setup_without_torchrun_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = setup(device="cpu", verbose=False)
    assert (info.rank, info.world_size, info.is_main) == (0, 1, True) and world() == (0, 1)


def test_setup_refuses_more_processes_than_gpus(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(RuntimeError, match="CUDA device"):
        setup(device=f"cuda:{torch.cuda.device_count()}", verbose=False)
    with pytest.raises(RuntimeError, match="nccl' needs CUDA"):
        setup("nccl", device="cpu", verbose=False)
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="RANK='one'"):
        setup(device="cpu", verbose=False)


def test_communication_per_step_counts_split_inputs_and_all_reduced_gradients():
    from torch import nn

    from cvlib.distributed import communication_per_step

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.5), nn.Linear(2 * 6 * 6, 3)).train()
    params = sum(p.numel() for p in model.parameters())  # 20 + 219
    two = communication_per_step(model, torch.zeros(1, 1, 8, 8), ["2", "4"], batch_size=10)
    assert two.crossing == {"2": 72, "4": 72}  # Flatten's and Linear's input: 2 x 6 x 6 per image
    assert two.model_parallel == 2 * 10 * (72 + 72) / 2 and two.data_parallel == params
    four = communication_per_step(model, torch.zeros(1, 1, 8, 8), ["4"], batch_size=10, world_size=4)
    assert four.model_parallel == 2 * 10 * 72 * 3 / 4 and four.data_parallel == 1.5 * params
    assert all(m.training for m in model.modules()) and all(p.grad is None for p in model.parameters())
    assert not model[0]._forward_pre_hooks  # the hooks are removed
    with pytest.raises(ValueError, match="unknown: \\['fc9'\\]"):
        communication_per_step(model, torch.zeros(1, 1, 8, 8), ["fc9"], batch_size=10)
    with pytest.raises(ValueError, match="world_size must be an int >= 2"):
        communication_per_step(model, torch.zeros(1, 1, 8, 8), ["4"], batch_size=10, world_size=1)
    with pytest.raises(ValueError, match="example must be one input"):
        communication_per_step(model, torch.zeros(2, 1, 8, 8), ["4"], batch_size=10)


def test_ddp_train_torchrun_reports_a_failing_run():
    from cvlib import ddp_train

    with pytest.raises(ValueError, match="nproc_per_node must be a positive int"):
        ddp_train.torchrun([], nproc_per_node=0)
    with pytest.raises(RuntimeError, match="torchrun failed"):  # argparse refuses in the worker
        ddp_train.torchrun(["--epochs", "0"], nproc_per_node=1)
