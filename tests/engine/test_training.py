"""The shared training loop (engine/training.py) equals, bit for bit on CPU, the four loops it
replaced (verbatim copies in tests/engine/_reference_loops.py), and a grown expert equals one
trained longer at once."""

from __future__ import annotations

import pytest
import torch
from _reference_loops import ref_train_expert, ref_train_expert_group, ref_train_loop, ref_train_vmap

from _configs import eval_config, expert_config
from galaxy_distillation.engine.evaluation import _train_loop, _train_vmap
from galaxy_distillation.engine.experts import train_expert, train_expert_group

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


def _same_trajectory(a, b) -> None:
    assert torch.equal(a.params, b.params)
    assert a.test_acc == b.test_acc and a.train_loss == b.train_loss
    assert {k: v for k, v in a.meta.items() if k != "seconds"} == {k: v for k, v in b.meta.items() if k != "seconds"}


@pytest.mark.parametrize("dsa", DSA)
def test_single_expert_equals_the_old_loop(toy, dsa):
    cfg = expert_config(epochs=3, lr=0.05, batch_size=8, dsa_strategy=dsa, arch=ARCH)
    new = train_expert(*toy, num_classes=3, config=cfg, seed=5, device=CPU, progress=False)
    old = ref_train_expert(*toy, num_classes=3, config=cfg, seed=5, device=CPU, progress=False)
    _same_trajectory(new, old)
    assert (new.params[1:] != new.params[:-1]).any(dim=1).all()  # it trained


@pytest.mark.parametrize("dsa", DSA)
def test_expert_group_equals_the_old_grouped_loop(toy, dsa):
    cfg = expert_config(epochs=3, lr=0.05, batch_size=8, dsa_strategy=dsa, arch=ARCH)
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
