"""Batched distillations (engine/batched.py, student.unroll_students) compute what separate runs compute."""

import pytest
import torch
from _toy_d import TINY_ARCH, fast_config, random_experts, small_problem

from galaxy_distillation.engine import (
    DistillationDivergedError,
    DistillConfigError,
    Distiller,
    InMemoryExperts,
    matching_loss,
    unroll_student,
)
from galaxy_distillation.engine.batched import BatchedDistiller
from galaxy_distillation.engine.functional import FlatModel
from galaxy_distillation.engine.networks import build_from_spec
from galaxy_distillation.engine.student import matching_losses, unroll_students

DSA = "color_crop_cutout_flip_scale_rotate"
F64 = torch.float64


@pytest.mark.parametrize("mode", ["unrolled", "checkpoint"])
@pytest.mark.parametrize("batch_syn", [None, 5])
def test_unroll_students_equals_one_unroll_per_student(mode, batch_syn):
    torch.manual_seed(0)
    model = FlatModel(build_from_spec({"arch": "convnet", "width": 8, "depth": 2}, 3, 4, (12, 12)).to(F64))
    K, P = 3, model.numel
    g = torch.Generator().manual_seed(0)
    theta0 = model.flat_params()[None] + 0.01 * torch.randn(K, P, generator=g, dtype=F64)
    target = theta0 + 0.01 * torch.randn(K, P, generator=g, dtype=F64)
    x = torch.randn(K, 8, 3, 12, 12, generator=g, dtype=F64)
    y = torch.arange(4).repeat_interleave(2).expand(K, 8).clone()
    seeds = [[100 * k + i for i in range(4)] for k in range(K)]
    xs, lr = x.clone().requires_grad_(True), torch.tensor([0.01, 0.02, 0.03], dtype=F64, requires_grad=True)
    losses = matching_losses(unroll_students(model, theta0, xs, y, lr, seeds, DSA, None, batch_syn, mode),
                             theta0, target)
    losses.sum().backward(inputs=[xs, lr])
    for k in range(K):
        xk, lk = x[k].clone().requires_grad_(True), lr[k].detach().clone().requires_grad_(True)
        loss = matching_loss(unroll_student(model, theta0[k], xk, y[k], lk, seeds[k], DSA, None, batch_syn, mode),
                             theta0[k], target[k])
        loss.backward(inputs=[xk, lk])
        assert abs(float(loss.detach() - losses[k].detach())) < 1e-12
        assert torch.allclose(xk.grad, xs.grad[k], rtol=0, atol=1e-12) and xk.grad.abs().sum() > 0
        assert abs(float(lk.grad - lr.grad[k])) < 1e-12 and float(lk.grad) != 0


def test_unroll_students_bad_shapes_named():
    model = FlatModel(build_from_spec(TINY_ARCH, 3, 2, (8, 8)))
    with pytest.raises(DistillConfigError, match="unroll_students needs theta0"):
        unroll_students(model, torch.zeros(2, model.numel), torch.zeros(3, 2, 3, 8, 8), torch.zeros(3, 2).long(),
                        torch.ones(2), [[1], [2]])


def _runs(mode, experts, x, y, bad=None):
    """Five seeds: two STM runs, one STM with noise init, one STM at another N (its own group), one MTT; budgets differ."""
    cfgs = [fast_config(seed=0, memory_mode=mode, iterations=6, lam=0.5, test_every=3),
            fast_config(seed=1, memory_mode=mode, iterations=4, lam=0.5, test_every=3),
            fast_config(seed=2, memory_mode=mode, iterations=6, init="noise"),
            fast_config(seed=3, memory_mode=mode, iterations=5, syn_steps=2),
            fast_config(seed=4, memory_mode=mode, iterations=6, method="mtt", expert_epochs=2, lr_lr=1e-5)]
    out = []
    for k, cfg in enumerate(cfgs):
        out.append(Distiller(bad if k == 1 and bad is not None else experts, x, y, 3, cfg, "cpu", TINY_ARCH))
    return out


def _same(a: Distiller, b: Distiller, tol: float = 1e-10) -> None:
    assert a.iteration == b.iteration and a.stop_reason == b.stop_reason
    assert torch.allclose(a.images.detach(), b.images.detach(), rtol=0, atol=tol)
    assert abs(float(a.lr_param.detach() - b.lr_param.detach())) <= tol
    for ra, rb in zip(a.history, b.history, strict=True):
        assert (ra.iteration, ra.expert, ra.start_epoch, ra.T, ra.rejected, ra.grew) == \
               (rb.iteration, rb.expert, rb.start_epoch, rb.T, rb.rejected, rb.grew)
        assert abs(ra.loss - rb.loss) <= tol and abs(ra.lr - rb.lr) <= tol and ra.lr_img == rb.lr_img
        assert (ra.val_loss is None) == (rb.val_loss is None)
        assert ra.val_loss is None or abs(ra.val_loss - rb.val_loss) <= tol


@pytest.mark.parametrize("mode", ["unrolled", "checkpoint"])
def test_batched_distiller_equals_separate_runs_float64(mode):
    x, y = small_problem(dtype=F64)
    experts = random_experts(TINY_ARCH, 3, 3, 8, dtype=F64)
    alone = _runs(mode, experts, x, y)
    for d in alone:
        d.run(progress=False)
    together = _runs(mode, experts, x, y)
    batch = BatchedDistiller(together)
    assert sorted(len(g) for g in batch.groups()) == [1, 4]  # the N = 2 run is its own group
    results = batch.run(progress=False)
    for a, b, r in zip(alone, together, results):
        _same(a, b)
        assert r.iterations_done == a.iteration and r.stop_reason == "max_iterations"
    assert [d.iteration for d in together] == [6, 4, 6, 5, 6]
    assert any(r.grew for d in together for r in d.history)  # STM's pool grew in some run (per-run schedules)
    assert not torch.allclose(together[0].images, together[1].images)  # the runs differ


@pytest.mark.parametrize("mode", ["unrolled", "checkpoint"])
def test_batched_k1_equals_the_plain_path(mode):
    x, y = small_problem(dtype=F64)
    experts = random_experts(TINY_ARCH, 3, 3, 8, dtype=F64)

    def run():
        return Distiller(experts, x, y, 3, fast_config(iterations=4, batch_syn=2, memory_mode=mode), "cpu", TINY_ARCH)

    plain, program, single = run(), run(), run()
    plain.run(progress=False)
    BatchedDistiller([program], single_alone=False).run(progress=False)  # the batched program at K = 1
    _same(plain, program, tol=1e-12)
    BatchedDistiller([single]).run(progress=False)  # default: a group of one takes the plain path
    _same(plain, single, tol=0.0)


def test_a_diverging_run_does_not_touch_the_others():
    x, y = small_problem(dtype=F64)
    experts = random_experts(TINY_ARCH, 3, 3, 8, dtype=F64)
    trajs = [experts.load(i).clone() for i in range(len(experts))]
    for t in trajs:
        t[1:, 0] = float("nan")  # every STM target is poisoned: run 1's every step is rejected
    bad = InMemoryExperts(trajs)
    alone = _runs("unrolled", experts, x, y, bad=bad)
    for d in alone:
        d.run(progress=False)
    together = _runs("unrolled", experts, x, y, bad=bad)
    BatchedDistiller(together).run(progress=False)
    for k, (a, b) in enumerate(zip(alone, together)):
        if k != 1:
            _same(a, b)
    assert all(r.rejected for r in together[1].history) and together[1].n_rejected == 4
    assert not any(r.rejected for d in together if d is not together[1] for r in d.history)


@pytest.mark.parametrize("single_alone", [True, False])
def test_a_diverged_run_ends_alone_and_the_others_finish_as_alone(single_alone):
    """Run 0 (an absurd lr_img) diverges at some iteration; runs 1 and 2 (after it in the group) still
    conclude that iteration and finish with their numbers alone; run 0 ends where it ends alone, and
    ``run`` then raises naming it, the others' results kept (before: the batch stopped there)."""
    x, y = small_problem(dtype=F64)
    experts = random_experts(TINY_ARCH, 3, 3, 8, dtype=F64)

    def runs():
        cfgs = [fast_config(seed=0, iterations=8, lr_img=1e300, max_bad_steps=2),
                fast_config(seed=1, iterations=8), fast_config(seed=2, iterations=6, method="mtt", expert_epochs=2)]
        return [Distiller(experts, x, y, 3, c, "cpu", TINY_ARCH) for c in cfgs]

    alone = runs()
    with pytest.raises(DistillationDivergedError, match="2 consecutive non-finite steps") as diverged:
        alone[0].run(progress=False)
    results_alone = [d.run(progress=False) for d in alone[1:]]
    assert 0 < alone[0].iteration < 6  # it diverged while the others still had iterations to go
    together = runs()
    batch = BatchedDistiller(together, single_alone=single_alone)
    with pytest.raises(DistillationDivergedError, match=r"run 0 \(seed 0\) of 3 diverged: 2 consecutive") as err:
        batch.run(progress=False)
    assert str(diverged.value) in str(err.value) and list(batch.errors) == [0]
    a, b = alone[0], together[0]  # where it ended: the same iteration, records, rejections (images ~1e296)
    assert (a.iteration, a.n_rejected, a.consecutive_bad, len(a.history)) == \
           (b.iteration, b.n_rejected, b.consecutive_bad, len(b.history))
    assert [r.rejected for r in a.history] == [r.rejected for r in b.history] and a.lr_img == b.lr_img
    assert torch.allclose(a.images.detach(), b.images.detach(), rtol=1e-9, atol=0)
    for a, b in zip(alone[1:], together[1:]):
        _same(a, b)
    assert batch.results[0] is None
    for r, ra in zip(batch.results[1:], results_alone):
        assert r.iterations_done == ra.iterations_done and r.stop_reason == ra.stop_reason == "max_iterations"
    assert [d.iteration for d in together] == [alone[0].iteration, 8, 6]


def test_batched_resume_continues_exactly(tmp_path):
    x, y = small_problem(dtype=F64)
    experts = random_experts(TINY_ARCH, 3, 3, 8, dtype=F64)

    def make(k, folder=None):
        return Distiller(experts, x, y, 3, fast_config(seed=k, iterations=5), "cpu", TINY_ARCH,
                         checkpoint_dir=None if folder is None else folder / str(k))

    whole = [make(k) for k in range(2)]
    BatchedDistiller(whole).run(progress=False)
    first = BatchedDistiller([make(k, tmp_path) for k in range(2)]).run(progress=False, stop_after=2)
    assert [r.stop_reason for r in first] == ["interrupted", "interrupted"]
    resumed = [make(k, tmp_path) for k in range(2)]
    BatchedDistiller(resumed).run(progress=False)
    for a, b in zip(whole, resumed):
        assert b.resumed_from["iteration"] == 2
        _same(a, b, tol=0.0)


def test_batched_distiller_input_errors():
    with pytest.raises(DistillConfigError, match="at least one Distiller"):
        BatchedDistiller([])


def test_batchnorm_runs_step_one_at_a_time():
    arch = {**TINY_ARCH, "norm": "batchnorm"}
    x, y = small_problem(dtype=F64)
    experts = random_experts(arch, 3, 3, 8, dtype=F64)

    def runs():
        return [Distiller(experts, x, y, 3, fast_config(seed=s, iterations=3), "cpu", arch) for s in (0, 1)]

    alone, together = runs(), runs()
    for d in alone:
        d.run(progress=False)
    batch = BatchedDistiller(together)
    assert [len(g) for g in batch.groups()] == [1, 1]
    batch.run(progress=False)
    for a, b in zip(alone, together):
        _same(a, b, tol=0.0)
