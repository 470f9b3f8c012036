"""Sweep nodes: experts and the Full baseline are resumed or skipped, never silently reused
with other settings."""

import torch

from galaxy_distillation.datasets import ExpertInventoryDataset
from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.sweep.datasets import SweepExpertsDataset
from galaxy_distillation.pipelines.sweep.nodes import full_baseline
from galaxy_distillation.pipelines.teacher.nodes import train_experts


def _trained(outputs):
    return [o for o in outputs if "index" in o]


def test_an_interrupted_teacher_resumes_with_the_same_experts(tiny_model_input, tiny_params, tmp_path):
    """The sweep's teacher node is the teacher's own: it keeps the experts already in the
    folder (same seed, settings and data) and trains only the missing ones."""
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    teacher, model = tiny_params["teacher"], tiny_params["model"]
    full = _trained(train_experts(data, teacher, model, "cpu", False))
    folder = SweepExpertsDataset(str(tmp_path / "experts"))
    inventory = ExpertInventoryDataset(str(tmp_path / "experts"))
    assert inventory.load().names() == []
    folder.save(full[0])  # interrupted after the first expert
    resumed = _trained(train_experts(data, teacher, model, "cpu", False, inventory.load()))
    assert [r["index"] for r in resumed] == [1]
    assert torch.equal(resumed[0]["trajectory"].params, full[1]["trajectory"].params)
    folder.save(resumed[0])
    assert _trained(train_experts(data, teacher, model, "cpu", False, inventory.load())) == []  # all there
    other = teacher.model_copy(update={"lr": teacher.lr * 2})
    assert [r["index"] for r in _trained(train_experts(data, other, model, "cpu", False, inventory.load()))] == [0, 1]


def test_full_baseline_is_reused_only_with_the_same_settings(tiny_model_input, tiny_params):
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    ev, teacher, model = tiny_params["evaluation"], tiny_params["teacher"], tiny_params["model"]
    first = full_baseline(data, None, ev, teacher, model, "cpu", False)
    assert full_baseline(data, first, ev, teacher, model, "cpu", False) is first
    changed = ev.model_copy(update={"full_lr": ev.full_lr / 2})
    again = full_baseline(data, first, changed, teacher, model, "cpu", False)
    assert again is not first and again["key"] != first["key"] and again["lr"] == ev.full_lr / 2
