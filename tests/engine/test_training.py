"""The shared training loop (engine/training.py) equals, bit for bit on CPU, the four loops it
replaced (verbatim copies in tests/engine/_reference_loops.py), and a grown expert equals one
trained longer at once."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _reference_loops import ref_train_expert, ref_train_expert_group, ref_train_loop, ref_train_vmap

from _configs import eval_config, expert_config
from galaxy_distillation.engine.evaluation import _train_loop, _train_vmap
from galaxy_distillation.engine.experts import grow_experts, train_expert, train_expert_group
from galaxy_distillation.engine.trajectories import (
    ExpertError,
    Trajectory,
    has_state,
    load_trajectory,
    save_trajectory,
)

CPU = torch.device("cpu")
ARCH = {"arch": "convnet", "width": 4, "depth": 2}
DSA = ["color_crop_cutout_flip_scale_rotate", "none"]


@pytest.fixture(scope="module")
def toy(toy_dataset):
    return toy_dataset(num_classes=3, n_per_class=10, size=16, seed=3)  # 30 images: batches 8, 8, 8, 6


@pytest.fixture
def steps(monkeypatch):
    """Every SGD step's parameters after the step (all the optimizer's tensors, flattened)."""
    seen: list[torch.Tensor] = []
    step = torch.optim.SGD.step

    def recording(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        seen.append(torch.cat([p.detach().flatten() for g in self.param_groups for p in g["params"]]).clone())
        return out

    monkeypatch.setattr(torch.optim.SGD, "step", recording)
    return seen


def _same_trajectory(new, old) -> None:
    assert torch.equal(new.params, old.params)
    assert new.test_acc == old.test_acc and new.train_loss == old.train_loss
    old_meta = {k: v for k, v in old.meta.items() if k != "seconds"}
    assert old_meta["config"].pop("precision") == "fp32"  # fp32 is left out of the record (experts saved before)
    assert old_meta["config"].pop("compile") is False  # an execution choice: never recorded
    assert {k: v for k, v in new.meta.items() if k != "seconds"} == old_meta


@pytest.mark.parametrize("dsa", DSA)
def test_single_expert_equals_the_old_loop(toy, dsa):
    cfg = expert_config(epochs=3, lr=0.05, batch_size=8, dsa_strategy=dsa, arch=ARCH)
    new = train_expert(*toy, num_classes=3, config=cfg, seed=5, device=CPU, progress=False)
    old = ref_train_expert(*toy, num_classes=3, config=cfg, seed=5, device=CPU, progress=False)
    _same_trajectory(new, old)
    assert (new.params[1:] != new.params[:-1]).any(dim=1).all()  # it trained


@pytest.mark.parametrize("dsa", DSA)
def test_expert_group_equals_the_old_grouped_loop(toy, dsa):
    cfg = expert_config(epochs=3, lr=0.05, batch_size=8, momentum=0.5, weight_decay=1e-3, dsa_strategy=dsa, arch=ARCH)
    new = train_expert_group(*toy, num_classes=3, config=cfg, seeds=[5, 6, 7], device=CPU, progress=False)
    old = ref_train_expert_group(*toy, num_classes=3, config=cfg, seeds=[5, 6, 7], device=CPU, progress=False)
    assert len(new) == len(old) == 3
    for a, b in zip(new, old, strict=True):
        _same_trajectory(a, b)


def test_expert_group_with_batchnorm_falls_back_equally(toy):
    cfg = expert_config(epochs=2, lr=0.05, batch_size=8, arch={**ARCH, "norm": "batchnorm"})
    new = train_expert_group(*toy, num_classes=3, config=cfg, seeds=[1, 2], device=CPU, progress=False)
    old = ref_train_expert_group(*toy, num_classes=3, config=cfg, seeds=[1, 2], device=CPU, progress=False)
    for a, b in zip(new, old, strict=True):
        _same_trajectory(a, b)


@pytest.mark.parametrize("dsa", DSA)
@pytest.mark.parametrize("vmapped", [False, True])
def test_evaluation_loops_equal_the_old_ones(toy, dsa, vmapped, steps):
    cfg = eval_config(arch=ARCH, n_nets=3, epochs=4, curve_every=1, batch_size=8, dsa_strategy=dsa,
                      lr_decay_at=0.5)
    new_fn, old_fn = (_train_vmap, ref_train_vmap) if vmapped else (_train_loop, ref_train_loop)
    seeds = [11, 12, 13]
    new_pred: list[torch.Tensor] = []
    old_pred: list[torch.Tensor] = []
    new = new_fn(*toy, 3, 0.05, cfg, seeds, CPU, False, None, None, new_pred)
    new_steps = list(steps)
    steps.clear()
    old = old_fn(*toy, 3, 0.05, cfg, seeds, CPU, False, None, None, old_pred)
    assert len(new_steps) == len(steps) == 4 * 4 * (1 if vmapped else 3)  # epochs x batches (x nets)
    assert all(torch.equal(a, b) for a, b in zip(new_steps, steps, strict=True))  # the weights after every step
    assert new == old and len(new[2][0]) == 5
    assert len(new_pred) == len(old_pred) == 3
    assert all(torch.equal(a, b) for a, b in zip(new_pred, old_pred, strict=True))


def _strip_grown(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("seconds", "grown_from")}


@pytest.mark.parametrize("seeds", [[5], [5, 6, 7]], ids=["single", "group"])
def test_grown_experts_equal_longer_training(toy, seeds, tmp_path):
    short = expert_config(epochs=2, lr=0.05, batch_size=8, momentum=0.9, weight_decay=5e-4, arch=ARCH)
    long = expert_config(epochs=4, lr=0.05, batch_size=8, momentum=0.9, weight_decay=5e-4, arch=ARCH)
    once = train_expert_group(*toy, num_classes=3, config=long, seeds=seeds, device=CPU, progress=False)
    first = train_expert_group(*toy, num_classes=3, config=short, seeds=seeds, device=CPU, progress=False)
    for k, traj in enumerate(first):  # through the file format: the state travels with the expert
        save_trajectory(traj, tmp_path / f"expert_{k:04d}.safetensors")
        assert has_state(tmp_path / f"expert_{k:04d}.safetensors")
    loaded = [load_trajectory(tmp_path / f"expert_{k:04d}.safetensors", with_state=True) for k in range(len(seeds))]
    grown = grow_experts(loaded, 2, *toy, num_classes=3, config=short, device=CPU, progress=False)
    for a, b in zip(grown, once, strict=True):
        assert a.num_epochs == 4 and a.meta["grown_from"] == [2] and "momentum" in a.state
        assert torch.equal(a.params, b.params)
        assert a.test_acc == b.test_acc and a.train_loss == b.train_loss
        assert _strip_grown(a.meta) == _strip_grown(b.meta)
        assert a.state.keys() == b.state.keys() and all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    twice = grow_experts(grown, 1, *toy, num_classes=3, config=short, device=CPU, progress=False)
    assert twice[0].num_epochs == 5 and twice[0].meta["grown_from"] == [2, 4]
    assert torch.equal(twice[0].params[:5], once[0].params)


def test_grown_batchnorm_expert_equals_longer_training(toy):
    arch = {**ARCH, "norm": "batchnorm"}
    short = expert_config(epochs=1, lr=0.05, batch_size=8, arch=arch)
    once = train_expert(*toy, num_classes=3, config=expert_config(epochs=3, lr=0.05, batch_size=8, arch=arch), seed=2,
                        device=CPU, progress=False)
    first = train_expert(*toy, num_classes=3, config=short, seed=2, device=CPU, progress=False)
    assert any(k.startswith("buffer.") for k in first.state)  # running statistics travel too
    grown = grow_experts([first], 2, *toy, num_classes=3, config=short, device=CPU, progress=False)[0]
    assert torch.equal(grown.params, once.params) and grown.test_acc == once.test_acc


def test_experts_without_state_or_with_other_settings_are_refused(toy, tmp_path):
    cfg = expert_config(epochs=1, lr=0.05, batch_size=8, arch=ARCH)
    traj = train_expert(*toy, num_classes=3, config=cfg, seed=1, device=CPU, progress=False)
    old = tmp_path / "expert_0000.safetensors"
    save_trajectory(Trajectory(traj.params, traj.test_acc, traj.train_loss, traj.meta), old)  # an older file
    assert not has_state(old) and load_trajectory(old, with_state=True).state is None
    with pytest.raises(ExpertError, match="no training state"):
        grow_experts([load_trajectory(old, with_state=True)], 1, *toy, num_classes=3, config=cfg, device=CPU)
    with pytest.raises(ExpertError, match=r"other settings \(lr\)"):
        grow_experts([traj], 1, *toy, num_classes=3, config=expert_config(epochs=1, lr=0.1, batch_size=8, arch=ARCH),
                     device=CPU)
    with pytest.raises(ExpertError, match="last epoch"):
        load_trajectory(tmp_path / "expert_0000.safetensors", max_epoch=0, with_state=True)


def test_bf16_expert_training_runs_and_fp32_is_unchanged(toy):
    fp32 = expert_config(epochs=2, lr=0.05, batch_size=8, arch=ARCH)
    bf16 = expert_config(epochs=2, lr=0.05, batch_size=8, arch=ARCH, precision="bf16")
    plain = train_expert(*toy, num_classes=3, config=fp32, seed=5, device=CPU, progress=False)
    _same_trajectory(plain, ref_train_expert(*toy, num_classes=3, config=fp32, seed=5, device=CPU, progress=False))
    for k in (1, 2):
        half = train_expert_group(*toy, num_classes=3, config=bf16, seeds=[5, 6][:k], device=CPU, progress=False)[0]
        assert half.params.dtype == torch.float32 and torch.isfinite(half.params).all()
        assert torch.equal(half.params[0], plain.params[0])  # same initialisation
        assert not torch.equal(half.params[1:], plain.params[1:])  # trained otherwise (bfloat16 forward)
        assert half.meta["config"]["precision"] == "bf16" and "precision" not in plain.meta["config"]
    with pytest.raises(ExpertError, match="precision"):
        train_expert(*toy, num_classes=3, config=dataclasses.replace(fp32, precision="fp16"), seed=5, device=CPU)
