"""The compute backend (local loop; Ray errors) and the teacher's resume: only missing experts are trained."""

from __future__ import annotations

import socket

import pytest
import torch

from galaxy_distillation.compute import ComputeError, run_tasks
from galaxy_distillation.params import ParameterError, validate_parameters
from galaxy_distillation.pipelines.teacher.nodes import train_experts


def _square(x: int, offset: int = 0) -> int:
    return x * x + offset


def test_compute_parameters_are_validated_with_one_line():
    assert validate_parameters({"compute": {}})["compute"].backend == "local"
    for bad, name in [({"backend": "slurm"}, "compute.backend"), ({"cpus_per_task": 0}, "compute.cpus_per_task"),
                      ({"max_retries": -1}, "compute.max_retries"), ({"gpu": 1}, "compute.gpu")]:
        with pytest.raises(ParameterError) as err:
            validate_parameters({"compute": bad})
        assert name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ParameterError, match="storage_root"):
        validate_parameters({"storage_root": ""})


def test_local_backend_runs_every_task_in_order_with_shared_arguments():
    seen = []
    out = list(run_tasks(_square, [(1,), (2,), (3,)], {"backend": "local"}, on_result=lambda i, r: seen.append((i, r)),
                         shared=(), progress=False))
    assert out == [(0, 1), (1, 4), (2, 9)] == seen
    assert list(run_tasks(lambda off, x: _square(x, off), [(2,)], None, shared=(10,), progress=False)) == [(0, 14)]


def test_ray_backend_reports_an_unreachable_address_in_one_line():
    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    with pytest.raises(ComputeError) as err:
        list(run_tasks(_square, [(1,)], {"backend": "ray", "address": f"127.0.0.2:{port}"}, progress=False))
    assert f"compute.address '127.0.0.2:{port}'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ComputeError, match="expected host:port"):
        list(run_tasks(_square, [(1,)], {"backend": "ray", "address": "no-port-here"}, progress=False))


def _model_input(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "train_x": torch.randint(0, 255, (12, 3, 8, 8), generator=g, dtype=torch.uint8),
        "train_y": torch.arange(12) % 3,
        "test_x": torch.randint(0, 255, (6, 3, 8, 8), generator=g, dtype=torch.uint8),
        "test_y": torch.arange(6) % 3,
        "mean": [0.5] * 3, "std": [0.25] * 3, "name": "gz2", "class_names": ["a", "b", "c"],
    }


TEACHER = {"n_experts": 3, "epochs": 1, "lr": 0.01, "batch_size": 8, "dsa_strategy": "flip", "seed": 4}
MODEL = {"arch": "convnet", "width": 4, "depth": 1}


def _run(model_input, teacher, inventory):
    chunks = list(train_experts(model_input, teacher, MODEL, "cpu", False, inventory, {"backend": "local"}))
    assert "keep" in chunks[0]
    return chunks[0]["keep"], {c["index"]: c["trajectory"] for c in chunks[1:]}


def test_teacher_trains_only_missing_or_stale_experts():
    data = _model_input()
    keep, trained = _run(data, TEACHER, {})
    assert keep == [] and sorted(trained) == [0, 1, 2]
    inventory = {i: t.meta for i, t in trained.items()}
    assert _run(data, TEACHER, inventory) == ([0, 1, 2], {})
    keep, again = _run(data, TEACHER, {0: inventory[0], 2: inventory[2]})
    assert keep == [0, 2] and sorted(again) == [1] and again[1].params.equal(trained[1].params)
    keep, more = _run(data, {**TEACHER, "n_experts": 4}, inventory)
    assert keep == [0, 1, 2] and sorted(more) == [3]
    assert _run(data, {**TEACHER, "seed": 5}, inventory)[0] == []          # other seeds
    assert _run(data, {**TEACHER, "lr": 0.02}, inventory)[0] == []         # other settings
    assert _run(_model_input(seed=1), TEACHER, inventory)[0] == []         # other data
