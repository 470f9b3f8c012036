"""Each fast path against its plain (eager) counterpart on CUDA. Skipped without CUDA.

Run on a GPU machine by benchmarks/device_run.sh. On CUDA some backward kernels (index
accumulation, grid_sample) add in a nondeterministic order, so float32 comparisons use a
tolerance; the float64 gradient checks are tight.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from galaxy_distillation.engine import Distiller, InMemoryExperts
from galaxy_distillation.engine.draws import draw_steps, to_device
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.experts import train_expert, train_expert_group
from galaxy_distillation.engine.functional import FlatModel
from galaxy_distillation.engine.networks import build_from_spec
from galaxy_distillation.engine.student import unroll_student
from galaxy_distillation.params import ArchParams, DistillParams, EvaluationParams, TeacherParams

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = torch.device("cuda")
STRATEGY = "color_crop_cutout_flip_scale_rotate"
ARCH = {"arch": "convnet", "width": 16, "depth": 2}


@pytest.fixture(autouse=True)
def _no_tf32():
    """Full float32 convolutions and products, so that the float32 comparisons measure the paths, not TF32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _setup(dtype=torch.float32, classes=4, ipc=2, size=16):
    torch.manual_seed(0)
    model = FlatModel(build_from_spec(ARCH, 3, classes, (size, size)).to(device=CUDA, dtype=dtype))
    g = torch.Generator().manual_seed(0)
    init = model.flat_params().cpu()
    traj = torch.cat([init[None], init[None] + 0.01 * torch.randn(4, model.numel, generator=g, dtype=dtype).cumsum(0)])
    x = torch.randn(classes * ipc, 3, size, size, generator=g, dtype=dtype)
    y = torch.arange(classes).repeat_interleave(ipc)
    return model, traj, x, y


@pytest.mark.parametrize("mode", ["unrolled", "checkpoint"])
def test_float64_gradient_batched_draws_equal_per_step_draws(mode):
    model, traj, x, y = _setup(torch.float64)
    traj = traj.to(CUDA)
    seeds = [3, 4, 5, 6]
    grads = []
    for batched in (False, True):
        xs = x.to(CUDA).requires_grad_(True)
        lr = torch.tensor(0.01, dtype=torch.float64, device=CUDA, requires_grad=True)
        steps = to_device(draw_steps(seeds, 8, (16, 16), 6, STRATEGY, None), CUDA, torch.float64) if batched else seeds
        theta = unroll_student(model, traj[0], xs, y.to(CUDA), lr, steps, STRATEGY, None, 6, memory_mode=mode)
        ((theta - traj[1]) ** 2).sum().backward(inputs=[xs, lr])
        grads.append((xs.grad, lr.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-12)


def test_float64_checkpoint_gradient_equals_unrolled_with_batched_draws():
    model, traj, x, y = _setup(torch.float64)
    traj = traj.to(CUDA)
    steps = to_device(draw_steps([7, 8, 9], 8, (16, 16), None, STRATEGY, None), CUDA, torch.float64)
    grads = []
    for mode in ("unrolled", "checkpoint"):
        xs = x.to(CUDA).requires_grad_(True)
        lr = torch.tensor(0.01, dtype=torch.float64, device=CUDA, requires_grad=True)
        theta = unroll_student(model, traj[0], xs, y.to(CUDA), lr, steps, STRATEGY, None, None, memory_mode=mode)
        ((theta - traj[1]) ** 2).sum().backward(inputs=[xs, lr])
        grads.append((xs.grad, lr.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-12)


def _distiller(mode, batched, traj, x, y):
    cfg = DistillParams(syn_steps=4, iterations=3, lr_img=100.0, lr_init=0.01, max_start_epoch=3, memory_mode=mode,
                        checkpoint_every=0).engine_config("stm", 2, "real")
    d = Distiller(InMemoryExperts([traj, traj * 1.01]), x, y, 4, cfg, CUDA, ARCH)
    d.batched_draws = batched
    return d


@pytest.mark.parametrize("mode", ["unrolled", "checkpoint"])
def test_distiller_batched_draws_match_per_step_on_cuda(mode):
    _, traj, x, y = _setup()
    res = [_distiller(mode, b, traj, x, y).run(progress=False) for b in (False, True)]
    torch.testing.assert_close(res[0].images, res[1].images, rtol=1e-4, atol=1e-5)
    assert res[0].lr == pytest.approx(res[1].lr, rel=1e-4)
    assert [h.start_epoch for h in res[0].history] == [h.start_epoch for h in res[1].history]


def _syncs(d: Distiller) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            d.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum(1 for w in caught if "synchroniz" in str(w.message).lower())


@pytest.mark.parametrize("mode", ["unrolled", "checkpoint"])
def test_one_host_sync_per_iteration(mode):
    _, traj, x, y = _setup()
    fast, slow = _distiller(mode, True, traj, x, y), _distiller(mode, False, traj, x, y)
    fast.step()
    slow.step()  # warm-up: experts cached on the device
    n_fast, n_slow = _syncs(fast), _syncs(slow)
    assert n_slow > n_fast, (n_slow, n_fast)  # the instrument sees the per-step copies
    assert n_fast <= 1, n_fast


def test_expert_group_equals_one_at_a_time_on_cuda():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(96, 3, 16, 16, generator=g), torch.randint(0, 4, (96,), generator=g)
    cfg = TeacherParams(epochs=2, batch_size=32, lr=0.01).engine_config(ArchParams(arch="convnet", width=16, depth=2))
    group = train_expert_group(x, y, x[:16], y[:16], 4, cfg, seeds=[1, 2], device=CUDA, progress=False)
    single = [train_expert(x, y, x[:16], y[:16], 4, cfg, seed=s, device=CUDA, progress=False) for s in (1, 2)]
    for a, b in zip(group, single, strict=True):
        torch.testing.assert_close(a.params, b.params, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("at_once", [1, 2])
def test_compiled_expert_training_equals_eager_on_cuda(at_once):
    """``teacher.compile``: the training step through torch.compile (inductor / Triton) against eager."""
    from galaxy_distillation.engine import training

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(96, 3, 16, 16, generator=g), torch.randint(0, 4, (96,), generator=g)
    runs = {}
    for compile_ in (False, True):
        cfg = TeacherParams(epochs=2, batch_size=32, lr=0.01, compile=compile_).engine_config(
            ArchParams(arch="convnet", width=16, depth=2))
        runs[compile_] = train_expert_group(x, y, x[:16], y[:16], 4, cfg, seeds=list(range(1, 1 + at_once)),
                                            device=CUDA, progress=False)
    assert not training._FAILED, "the compiled step fell back to eager"
    for a, b in zip(runs[True], runs[False], strict=True):
        torch.testing.assert_close(a.params, b.params, rtol=1e-3, atol=1e-4)


def test_evaluation_vmap_equals_loop_on_cuda():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(20, 3, 16, 16, generator=g), torch.arange(4).repeat(5)
    res = []
    for use_vmap in (False, True):
        cfg = EvaluationParams(use_vmap=use_vmap).engine_config(ARCH, 3, 6)
        res.append(evaluate_images(x, y, x, y, 4, 0.01, cfg, seed=0, device=CUDA, progress=False))
    assert res[1].used_vmap and not res[0].used_vmap
    assert res[0].accs == pytest.approx(res[1].accs, abs=10.0)  # a flipped prediction or two at most


@pytest.mark.parametrize("mode", ["unrolled", "checkpoint"])
def test_batched_distillations_equal_separate_runs_on_cuda(mode):
    """engine/batched.py on CUDA, float64: three runs (one with noise init) as one program equal three runs alone."""
    from galaxy_distillation.engine.batched import BatchedDistiller  # noqa: PLC0415

    _, traj, x, y = _setup(torch.float64)

    def runs():
        return [Distiller(InMemoryExperts([traj, traj * 1.01]), x, y, 4,
                          DistillParams(syn_steps=4, iterations=3, lr_img=100.0, lr_init=0.01, max_start_epoch=3,
                                        memory_mode=mode, checkpoint_every=0, seed=s).engine_config("stm", 2, init),
                          CUDA, ARCH) for s, init in ((0, "real"), (1, "real"), (2, "noise"))]

    alone = runs()
    for d in alone:
        d.run(progress=False)
    together = runs()
    BatchedDistiller(together).run(progress=False)
    for a, b in zip(alone, together, strict=True):
        torch.testing.assert_close(a.images.detach(), b.images.detach(), rtol=0, atol=1e-9)
        assert [h.loss for h in a.history] == pytest.approx([h.loss for h in b.history], abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_graphed_unroll_captured_equals_checkpoint_eager_on_cuda(dtype):
    """The captured step programs (CUDA graphs, engine/graphs.py) against the eager checkpoint mode, both
    kinds (validation forward, differentiable unroll) and both DSA modes' op lists."""
    from galaxy_distillation.engine.dsa import DSAParams
    from galaxy_distillation.engine.graphs import StepPrograms, unroll_graphed

    model, traj, x, y = _setup(dtype)
    traj, y = traj.to(CUDA), y.to(CUDA)
    for dsa_mode in ("single", "all"):
        params = DSAParams(mode=dsa_mode)
        programs = StepPrograms(model, params)
        assert programs.capture
        for it in range(3):  # the first iteration captures, the later ones replay (new draws, same programs)
            steps = to_device(draw_steps([10 * it + i for i in range(6)], 8, (16, 16), 6, STRATEGY, params), CUDA, dtype)
            out = {}
            for name in ("checkpoint", "graphed"):
                xs = x.to(CUDA).requires_grad_(True)
                lr = torch.tensor(-4.0, dtype=dtype, device=CUDA, requires_grad=True)
                if name == "graphed":
                    theta = unroll_graphed(programs, traj[0], xs, y, lr.exp(), steps)
                    val = unroll_graphed(programs, traj[1], xs, y, lr.exp(), steps, create_graph=False)
                else:
                    theta = unroll_student(model, traj[0], xs, y, lr.exp(), steps, STRATEGY, params, 6,
                                           memory_mode="checkpoint")
                    val = unroll_student(model, traj[1], xs, y, lr.exp(), steps, STRATEGY, params, 6, create_graph=False)
                ((theta - traj[2]) ** 2).sum().backward(inputs=[xs, lr])
                out[name] = (theta.detach(), val, xs.grad, lr.grad)
            tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-6)
            for a, b in zip(out["checkpoint"], out["graphed"]):
                torch.testing.assert_close(a, b, **tol)
        assert all(p.graph is not None for p in programs._programs.values())


def test_graphed_distiller_on_cuda_equals_checkpoint_and_auto_can_choose_it():
    _, traj, x, y = _setup()
    res = [_distiller(mode, True, traj, x, y).run(progress=False) for mode in ("checkpoint", "graphed")]
    torch.testing.assert_close(res[0].images, res[1].images, rtol=1e-4, atol=1e-5)
    assert [h.start_epoch for h in res[0].history] == [h.start_epoch for h in res[1].history]
    d = _distiller("auto", True, traj, x, y)
    assert d.resolved_memory_mode() in ("unrolled", "checkpoint", "graphed")  # measured, logged; never an error
