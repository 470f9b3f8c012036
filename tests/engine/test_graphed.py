"""``memory_mode: graphed`` (engine/graphs.py) computes the checkpoint mode's numbers, bit for bit on a CPU.

On a CPU the step programs run eagerly from their static buffers (the CUDA capture of the same
programs is checked against eager in tests/engine/test_cuda_fastpaths.py, skipped without CUDA).
"""

import dataclasses

import pytest
import torch
from _toy_d import TINY_ARCH, fast_config, random_experts, small_problem

from galaxy_distillation.engine import Distiller, matching_loss, mix_seed, unroll_student
from galaxy_distillation.engine.batched import BatchedDistiller
from galaxy_distillation.engine.distill_config import DistillConfigError
from galaxy_distillation.engine.draws import draw_steps, to_device
from galaxy_distillation.engine.dsa import DSAParams
from galaxy_distillation.engine.functional import FlatModel
from galaxy_distillation.engine.graphs import StepPrograms, unroll_graphed
from galaxy_distillation.engine.networks import build_from_spec

DSA = "color_crop_cutout_flip_scale_rotate"


def _setup(dtype, seed=0, n=6, size=8):
    torch.manual_seed(seed)
    model = FlatModel(build_from_spec(TINY_ARCH, 3, 3, (size, size)).to(dtype))
    g = torch.Generator().manual_seed(seed)
    theta0 = model.flat_params()
    target = theta0 + 0.05 * torch.randn(model.numel, generator=g, dtype=dtype)
    x = torch.randn(n, 3, size, size, generator=g, dtype=dtype)
    y = torch.tensor([0, 0, 1, 1, 2, 2])[:n]
    return model, theta0, target, x, y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("batch_syn", "mode"), [(None, "single"), (4, "single"), (4, "all")])
def test_graphed_unroll_equals_checkpoint_bit_for_bit(dtype, batch_syn, mode):
    model, theta0, target, x, y = _setup(dtype)
    params = DSAParams(mode=mode)
    draws = to_device(draw_steps([mix_seed(3, i) for i in range(5)], 6, (8, 8), batch_syn, DSA, params), "cpu", dtype)
    programs = StepPrograms(model, params)
    out = {}
    for name in ("checkpoint", "graphed"):
        xs = x.clone().requires_grad_(True)
        lr = torch.tensor(-3.0, dtype=dtype, requires_grad=True)
        if name == "graphed":
            theta = unroll_graphed(programs, theta0, xs, y, lr.exp(), draws)
            val = unroll_graphed(programs, theta0, xs, y, lr.exp(), draws, create_graph=False)
        else:
            theta = unroll_student(model, theta0, xs, y, lr.exp(), draws, DSA, params, batch_syn, memory_mode=name)
            val = unroll_student(model, theta0, xs, y, lr.exp(), draws, DSA, params, batch_syn, create_graph=False)
        loss = matching_loss(theta, theta0, target)
        loss.backward(inputs=[xs, lr])
        out[name] = (loss.detach(), theta.detach(), val, xs.grad, lr.grad)
    for a, b in zip(out["checkpoint"], out["graphed"]):
        assert torch.equal(a, b)
    assert out["graphed"][3].abs().sum() > 0 and out["graphed"][4] != 0
    # single mode: one program per chosen op and kind (forward / vjp / vjp of step 0); all mode: one op list
    assert 2 <= len(programs) <= (3 if mode == "all" else 3 * 6)


def test_graphed_distiller_history_equals_checkpoint_stm_and_mtt():
    x, y = small_problem()
    experts = random_experts(TINY_ARCH, 3, 3, 8, n_experts=2, epochs=6)
    for method in ("stm", "mtt"):
        kw = dict(method=method, iterations=5, batch_syn=2, max_start_epoch=3)
        if method == "mtt":
            kw.update(expert_epochs=2, lr_lr=1e-5)
        runs = {m: Distiller(experts, x, y, 3, fast_config(memory_mode=m, **kw), "cpu", TINY_ARCH)
                for m in ("checkpoint", "graphed")}
        res = {m: d.run(progress=False) for m, d in runs.items()}
        for a, b in zip(runs["checkpoint"].history, runs["graphed"].history):
            assert (a.loss, a.val_loss, a.lr, a.expert, a.start_epoch) == (b.loss, b.val_loss, b.lr, b.expert, b.start_epoch)
        assert torch.equal(res["checkpoint"].images, res["graphed"].images)
        assert not torch.equal(res["graphed"].images, runs["graphed"].train_x[:3])  # the images moved
        assert runs["graphed"]._programs is not None and runs["checkpoint"]._programs is None


def test_programs_are_made_once_per_shape_and_reused():
    model, theta0, target, x, y = _setup(torch.float32)
    params = DSAParams(mode="all")
    programs = StepPrograms(model, params)
    for it in range(3):
        draws = to_device(draw_steps([mix_seed(it, i) for i in range(4)], 6, (8, 8), 4, DSA, params), "cpu",
                          torch.float32)
        xs = x.clone().requires_grad_(True)
        lr = torch.tensor(0.01, requires_grad=True)
        matching_loss(unroll_graphed(programs, theta0, xs, y, lr, draws), theta0, target).backward()
        assert len(programs) == 3  # forward, vjp, vjp of step 0: made in the first iteration, replayed after


def test_graphed_runs_alone_in_a_batch_and_equals_itself_alone():
    x, y = small_problem()
    experts = random_experts(TINY_ARCH, 3, 3, 8, n_experts=2, epochs=6)
    alone = Distiller(experts, x, y, 3, fast_config(memory_mode="graphed", iterations=3), "cpu", TINY_ARCH)
    alone.run(progress=False)
    runs = [Distiller(experts, x, y, 3, fast_config(memory_mode=m, iterations=3, seed=0), "cpu", TINY_ARCH)
            for m in ("graphed", "checkpoint")]
    assert len(BatchedDistiller(runs, single_alone=False).groups()) == 2
    results = BatchedDistiller(runs, single_alone=False).run(progress=False)
    assert torch.equal(results[0].images, alone.result().images)


def test_unknown_memory_mode_is_one_clear_error():
    with pytest.raises(DistillConfigError, match="memory_mode must be one of .*graphed"):
        dataclasses.replace(fast_config(), memory_mode="graph").validate()


def test_the_step_programs_have_no_op_a_cuda_graph_cannot_capture():
    """What a CPU can check of capture safety: no op of a program reads a device value to the host or has an
    output shape that depends on the data (either syncs, and a CUDA graph capture refuses it), in both kinds
    of program, every DSA op and with a minibatch (tests/engine/test_cuda_fastpaths.py captures them on a GPU)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    syncing = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique", "_unique2", "unique_dim",
               "unique_consecutive", "is_nonzero", "equal", "allclose", "item", "repeat_interleave", "bincount",
               "masked_scatter", "index_select_backward_dense"}
    seen: set[str] = set()

    class Ops(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    model, theta0, target, x, y = _setup(torch.float32)
    for mode, batch_syn in (("single", 4), ("all", None)):
        params = DSAParams(mode=mode)
        programs = StepPrograms(model, params)
        draws = to_device(draw_steps([mix_seed(5, i) for i in range(40)], 6, (8, 8), batch_syn, DSA, params), "cpu",
                          torch.float32)
        matching_loss(unroll_graphed(programs, theta0, x.clone().requires_grad_(True), y,
                                     torch.tensor(0.01, requires_grad=True), draws), theta0, target).backward()
        # every op's forward and vjp programs were made (+ the vjp of step 0, which has one op)
        assert len(programs) == (2 * 6 + 1 if mode == "single" else 3)
        with Ops():
            for prog in programs._programs.values():
                prog.fn()
    assert {"convolution", "grid_sampler_2d"} <= seen  # the instrument sees the programs' ops
    assert not seen & syncing, sorted(seen & syncing)
