"""One draw per iteration (engine/draws.py): the same numbers, hence the same student, as per-step draws."""

from __future__ import annotations

import pytest
import torch

from galaxy_distillation.engine import Distiller, InMemoryExperts
from galaxy_distillation.engine.draws import draw_steps, to_device
from galaxy_distillation.engine.dsa import DSAParams, draw_dsa
from galaxy_distillation.engine.functional import FlatModel
from galaxy_distillation.engine.networks import build_from_spec
from galaxy_distillation.engine.student import unroll_student
from galaxy_distillation.params import DistillParams

STRATEGY = "color_crop_cutout_flip_scale_rotate"


def _expected_stream(seed: int, b: int, h: int, w: int) -> tuple[str, list[torch.Tensor]]:
    """The draws the pre-batching code made, call by call, from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    ops = STRATEGY.split("_")
    op = ops[int(torch.randint(len(ops), (1,), generator=g).item())]
    p = DSAParams()
    u = lambda: torch.rand(b, generator=g, dtype=torch.float32)
    if op == "color":
        return op, [u(), u(), u()]
    if op == "crop":
        sh, sw = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
        return op, [torch.randint(-sh, sh + 1, (b,), generator=g), torch.randint(-sw, sw + 1, (b,), generator=g)]
    if op == "cutout":
        ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
        return op, [torch.randint(0, h + (1 - ch % 2), (b,), generator=g), torch.randint(0, w + (1 - cw % 2), (b,), generator=g)]
    if op == "scale":
        return op, [u(), u()]
    return op, [u()]


def test_draw_dsa_consumes_the_generator_as_the_per_call_code_did():
    seen = set()
    for seed in range(40):
        op, expected = _expected_stream(seed, 5, 12, 10)
        d = draw_dsa(STRATEGY, 5, (12, 10), torch.Generator().manual_seed(seed))
        assert [name for name, _ in d.ops] == [op]
        for got, want in zip(d.ops[0][1], expected, strict=True):
            assert torch.equal(got, want)
        seen.add(op)
    assert seen == set(STRATEGY.split("_"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_packed_copy_equals_the_per_step_draws(dtype):
    seeds = list(range(100, 112))
    steps = draw_steps(seeds, 7, (9, 9), 4, STRATEGY, None)
    moved = to_device(steps, "cpu", dtype)
    for s, m in zip(steps, moved, strict=True):
        a, b = s.tensors(), m.tensors()
        assert len(a) == len(b) and len(a) >= 2  # minibatch + at least one DSA draw
        for x, y in zip(a, b, strict=True):
            if x.is_floating_point():
                assert y.dtype == dtype and torch.equal(x.to(dtype), y)
            else:
                assert y.dtype == torch.int64 and torch.equal(x, y)


def _tiny(dtype=torch.float32):
    torch.manual_seed(0)
    arch = {"arch": "convnet", "width": 8, "depth": 2}
    model = FlatModel(build_from_spec(arch, 3, 4, (12, 12)).to(dtype))
    g = torch.Generator().manual_seed(0)
    init = model.flat_params()
    traj = torch.cat([init[None], init[None] + 0.01 * torch.randn(4, model.numel, generator=g, dtype=dtype).cumsum(0)])
    x = torch.randn(8, 3, 12, 12, generator=g, dtype=dtype)
    y = torch.arange(4).repeat_interleave(2)
    return arch, model, traj, x, y


@pytest.mark.parametrize("mode", ["unrolled", "checkpoint"])
def test_float64_gradient_same_with_batched_draws(mode):
    _, model, traj, x, y = _tiny(torch.float64)
    seeds = [11, 12, 13]
    grads = []
    for batched in (False, True):
        xs = x.clone().requires_grad_(True)
        lr = torch.tensor(0.01, dtype=torch.float64, requires_grad=True)
        steps = to_device(draw_steps(seeds, 8, (12, 12), 5, STRATEGY, None), "cpu", torch.float64) if batched else seeds
        theta = unroll_student(model, traj[0], xs, y, lr, steps, STRATEGY, None, 5, memory_mode=mode)
        ((theta - traj[1]) ** 2).sum().backward(inputs=[xs, lr])
        grads.append((xs.grad, lr.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


@pytest.mark.parametrize("mode,batch_syn", [("unrolled", None), ("checkpoint", 3)])
def test_distiller_same_result_with_one_draw_per_iteration(mode, batch_syn):
    results = []
    for batched in (False, True):
        arch, _, traj, x, y = _tiny()
        cfg = DistillParams(syn_steps=3, iterations=4, lr_img=100.0, lr_init=0.01, max_start_epoch=3, memory_mode=mode,
                            checkpoint_every=0, batch_syn=batch_syn).engine_config("stm", 2, "real")
        d = Distiller(InMemoryExperts([traj, traj * 1.01]), x, y, 4, cfg, "cpu", arch)
        d.batched_draws = batched
        results.append(d.run(progress=False))
    old, new = results
    assert torch.equal(old.images, new.images) and old.lr == new.lr
    assert [h.loss for h in old.history] == [h.loss for h in new.history]
    assert [h.val_loss for h in old.history] == [h.val_loss for h in new.history]
