"""Sweep nodes: experts and the Full baseline are resumed or skipped, never silently reused
with other settings."""

import torch

from galaxy_distillation.datasets import ExpertTrajectoriesDataset
from galaxy_distillation.pipelines._sweep_nodes import full_baseline, train_missing_experts
from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.teacher.nodes import train_experts
from galaxy_distillation.sweep_datasets import ExistingExpertsDataset


def test_an_interrupted_teacher_resumes_with_the_same_experts(tiny_model_input, tiny_params, tmp_path):
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    teacher, model = tiny_params["teacher"], tiny_params["model"]
    full = list(train_experts(data, teacher, model, "cpu", False))
    folder = ExpertTrajectoriesDataset(str(tmp_path / "experts"))
    existing = ExistingExpertsDataset(str(tmp_path / "experts"))
    assert existing.load()["n"] == 0
    folder.save(full[0])  # interrupted after the first expert
    resumed = list(train_missing_experts(data, existing.load(), teacher, model, "cpu", False))
    assert [r["index"] for r in resumed] == [1]
    assert torch.equal(resumed[0]["trajectory"].params, full[1]["trajectory"].params)
    folder.save(resumed[0])
    assert list(train_missing_experts(data, existing.load(), teacher, model, "cpu", False)) == []  # all there
    other = teacher.model_copy(update={"lr": teacher.lr * 2})
    assert [r["index"] for r in train_missing_experts(data, existing.load(), other, model, "cpu", False)] == [0, 1]


def test_full_baseline_is_reused_only_with_the_same_settings(tiny_model_input, tiny_params):
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    ev, teacher, model = tiny_params["evaluation"], tiny_params["teacher"], tiny_params["model"]
    first = full_baseline(data, None, ev, teacher, model, "cpu", False)
    assert full_baseline(data, first, ev, teacher, model, "cpu", False) is first
    changed = ev.model_copy(update={"full_lr": ev.full_lr / 2})
    again = full_baseline(data, first, changed, teacher, model, "cpu", False)
    assert again is not first and again["key"] != first["key"] and again["lr"] == ev.full_lr / 2
