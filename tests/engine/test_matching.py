"""Trajectory-matching core: exact gradients, memory-flat mode, NaN handling, reproducibility, usefulness."""

import math

import pytest
import torch
from _toy_d import TINY_ARCH, fast_config, random_experts, small_problem

from _configs import distill_config, eval_config, expert_config
from galaxy_distillation.engine import (
    DistillationDivergedError,
    DistillConfigError,
    Distiller,
    InMemoryExperts,
    matching_loss,
    mix_seed,
    unroll_student,
)
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.experts import train_expert
from galaxy_distillation.engine.functional import FlatModel
from galaxy_distillation.engine.networks import build_from_spec
from galaxy_distillation.engine.synthetic import random_real_subset

DSA = "color_crop_cutout_flip_scale_rotate"


def _setup64(seed=0):
    torch.manual_seed(seed)
    model = FlatModel(build_from_spec(TINY_ARCH, 3, 2, (8, 8)).double())
    g = torch.Generator().manual_seed(seed)
    theta0 = model.flat_params()
    target = theta0 + 0.05 * torch.randn(model.numel, generator=g, dtype=torch.float64)
    x = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    return model, theta0, target, x, y


def _loss_fn(model, theta0, target, y, mode, strategy=DSA, batch_syn=None, log_lr=False):
    seeds = [mix_seed(7, i) for i in range(3)]

    def f(x, lr):
        alpha = lr.exp() if log_lr else lr
        theta_n = unroll_student(model, theta0, x, y, alpha, seeds, strategy, batch_syn=batch_syn, memory_mode=mode)
        return matching_loss(theta_n, theta0, target)

    return f


@pytest.mark.parametrize("log_lr", [False, True])
def test_gradient_matches_finite_differences(log_lr):
    model, theta0, target, x, y = _setup64()
    lr = torch.tensor(math.log(0.05) if log_lr else 0.05, dtype=torch.float64)
    f = _loss_fn(model, theta0, target, y, "unrolled", log_lr=log_lr)
    xs = x[:2].clone().requires_grad_(True)  # 2 images x 192 pixels: fast enough for gradcheck
    f2 = _loss_fn(model, theta0, target, y[:2], "unrolled", log_lr=log_lr)
    assert torch.autograd.gradcheck(f2, (xs, lr.clone().requires_grad_(True)), eps=1e-6, atol=1e-5, rtol=1e-4)
    assert f(x, lr).item() > 0


@pytest.mark.parametrize("batch_syn", [None, 3])
def test_checkpoint_mode_gradient_equals_unrolled(batch_syn):
    model, theta0, target, x, y = _setup64(1)
    grads = {}
    for mode in ("unrolled", "checkpoint"):
        xs = x.clone().requires_grad_(True)
        lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
        loss = _loss_fn(model, theta0, target, y, mode, batch_syn=batch_syn)(xs, lr)
        loss.backward()
        grads[mode] = (loss.detach(), xs.grad, lr.grad)
    for a, b in zip(grads["unrolled"], grads["checkpoint"]):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    assert grads["unrolled"][1].abs().sum() > 0


def test_checkpoint_mode_distiller_same_images():
    x, y = small_problem(dtype=torch.float64)
    experts = random_experts(TINY_ARCH, 3, 3, 8, dtype=torch.float64)
    out = [Distiller(experts, x, y, 3, fast_config(memory_mode=m, iterations=3), "cpu", TINY_ARCH).run(progress=False)
           for m in ("unrolled", "checkpoint")]
    assert torch.allclose(out[0].images, out[1].images, atol=1e-5)
    assert out[0].lr == pytest.approx(out[1].lr, rel=1e-9)


def test_same_seed_same_images_different_seed_differs():
    x, y = small_problem()
    experts = random_experts(TINY_ARCH, 3, 3, 8)
    runs = [Distiller(experts, x, y, 3, fast_config(seed=s, method="mtt", expert_epochs=2, lr_lr=1e-5), "cpu",
                      TINY_ARCH).run(progress=False) for s in (3, 3, 4)]
    assert torch.equal(runs[0].images, runs[1].images) and runs[0].lr == runs[1].lr
    assert not torch.equal(runs[0].images, runs[2].images)
    assert [r.expert for r in runs[0].history] == [r.expert for r in runs[1].history]
    starts = {r.start_epoch for r in runs[0].history}
    assert starts <= {0, 1, 2}
    init = Distiller(experts, x, y, 3, fast_config(seed=3), "cpu", TINY_ARCH).images.detach()
    assert not torch.equal(init, runs[0].images)  # images actually moved


def test_nan_gradient_step_is_rejected_and_state_untouched():
    x, y = small_problem()
    experts = random_experts(TINY_ARCH, 3, 3, 8)
    d = Distiller(experts, x, y, 3, fast_config(iterations=10), "cpu", TINY_ARCH)
    d.step()
    d.step()
    images = d.images.detach().clone()
    lr_param = d.lr_param.detach().clone()
    momentum = d.opt_img.state[d.images]["momentum_buffer"].clone()
    lr_img = d.lr_img
    handle = d.images.register_hook(lambda g: g * float("nan"))
    rec = d.step()
    handle.remove()
    assert rec.rejected and d.n_rejected == 1 and d.consecutive_bad == 1
    assert torch.equal(d.images.detach(), images) and torch.equal(d.lr_param.detach(), lr_param)
    assert torch.equal(d.opt_img.state[d.images]["momentum_buffer"], momentum)
    assert d.lr_img == lr_img * 0.5
    rec = d.step()
    assert not rec.rejected and d.consecutive_bad == 0 and not torch.equal(d.images.detach(), images)


def test_nan_loss_rejected_then_diverged_error():
    x, y = small_problem()
    experts = random_experts(TINY_ARCH, 3, 3, 8)
    trajs = [experts.load(i).clone() for i in range(len(experts))]
    for t in trajs:
        t[1, 0] = float("nan")  # STM's first target epoch is poisoned
    bad = InMemoryExperts(trajs)
    d = Distiller(bad, x, y, 3, fast_config(iterations=2, max_bad_steps=3), "cpu", TINY_ARCH)
    init = d.images.detach().clone()
    res = d.run(progress=False)
    assert res.n_rejected_steps == 2 and all(r.rejected for r in res.history)
    assert torch.equal(res.images, init)
    assert res.history[-1].lr_img == pytest.approx(10.0 * 0.25)
    d = Distiller(bad, x, y, 3, fast_config(iterations=5, max_bad_steps=3), "cpu", TINY_ARCH)
    with pytest.raises(DistillationDivergedError, match="3 consecutive non-finite steps"):
        d.run(progress=False)


def test_config_errors_are_clear():
    x, y = small_problem()
    experts = random_experts(TINY_ARCH, 3, 3, 8, epochs=4)
    with pytest.raises(DistillConfigError, match="method must be one of"):
        Distiller(experts, x, y, 3, fast_config(method="dc"), "cpu", TINY_ARCH)
    with pytest.raises(DistillConfigError, match="needs 6 expert epochs, the experts have 4"):
        Distiller(experts, x, y, 3, fast_config(method="mtt", max_start_epoch=4, expert_epochs=3), "cpu", TINY_ARCH)
    with pytest.raises(DistillConfigError, match="parameters but arch"):
        Distiller(experts, x, y, 3, fast_config(), "cpu", {"arch": "convnet", "width": 5, "depth": 1})


def test_stm_distilled_beats_random_real_on_noisy_toy(toy_dataset):
    """IPC 1 on a noisy 3-class blob problem: STM images beat random single real images."""
    arch = {"arch": "convnet", "width": 8, "depth": 2}
    trx, tr_y, tex, tey = toy_dataset(num_classes=3, n_per_class=40, size=12, seed=0, n_test_per_class=50, noise=2.0)
    cpu = torch.device("cpu")
    ecfg = expert_config(epochs=6, lr=0.01, batch_size=20, dsa_strategy="", arch=arch)
    trajs = [train_expert(trx, tr_y, tex, tey, 3, ecfg, seed=s, device=cpu, progress=False).params for s in range(2)]
    cfg = distill_config(method="stm", syn_steps=10, iterations=40, lr_img=1000.0, lr_init=0.005, max_start_epoch=5,
                        dsa_strategy="", checkpoint_every=0, seed=0, lam=2.0)
    res = Distiller(InMemoryExperts(trajs), trx, tr_y, 3, cfg, cpu, arch).run(progress=False)
    assert res.T > 1 and res.n_rejected_steps == 0
    ev = eval_config(n_nets=3, epochs=60, dsa_strategy="", arch=arch)
    distilled = evaluate_images(res.images, res.labels, tex, tey, 3, res.lr, ev, seed=1, device=cpu, progress=False)
    rx, ry = random_real_subset(trx, tr_y, 3, 1, torch.Generator().manual_seed(0))
    random = evaluate_images(rx, ry, tex, tey, 3, res.lr, ev, seed=1, device=cpu, progress=False)
    assert distilled.mean > random.mean + 5.0, (distilled.accs, random.accs)
