"""`auto` choices (teacher.experts_at_once, evaluation.use_vmap, distill.memory_mode): fixed rules on CPU,
a short timed probe on CUDA (the probes themselves run here on CPU too, as functions)."""

from __future__ import annotations

import torch

from _configs import distill_config, eval_config, expert_config
from galaxy_distillation.engine import Distiller, InMemoryExperts
from galaxy_distillation.engine.autotune import probe_memory_mode
from galaxy_distillation.engine.evaluation import evaluate_images, vmap_is_faster
from galaxy_distillation.engine.experts import experts_at_once, probe_experts_at_once, trains_alone
from galaxy_distillation.engine.functional import FlatModel
from galaxy_distillation.engine.networks import build_from_spec
from galaxy_distillation.params import DistillParams, EvaluationParams

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
TINY = {"arch": "convnet", "width": 4, "depth": 1}


def test_experts_at_once_auto_uses_the_probe_on_cuda_only():
    calls = []
    probe = lambda k: calls.append(k) or 1  # noqa: E731
    assert experts_at_once("auto", CPU, 5, probe=probe) == 1 and calls == []
    assert experts_at_once("auto", CUDA, 3, probe=probe) == 1 and calls == [3]
    assert experts_at_once("auto", CUDA, 3) == 3  # no probe: the earlier rule (4, at most n)
    assert experts_at_once(2, CUDA, 5, probe=probe) == 2 and calls == [3]
    # batch-norm experts train one at a time in any group: groups of one, no probe (a stop keeps each finished one)
    assert experts_at_once("auto", CUDA, 3, probe=probe, alone=True) == 1 and calls == [3]
    assert experts_at_once(4, CUDA, 5, alone=True) == 1
    assert trains_alone(expert_config(arch={**TINY, "norm": "batchnorm"}), (3, 8, 8), 3)
    assert not trains_alone(expert_config(arch=TINY), (3, 8, 8), 3)


def test_probe_experts_at_once_picks_a_candidate():
    cfg = expert_config(arch=TINY, batch_size=8, lr=0.01)
    assert probe_experts_at_once((3, 8, 8), 3, cfg, CPU, 2, batches=2) in (1, 2)
    assert probe_experts_at_once((3, 8, 8), 3, cfg, CPU, 1) == 1


def test_use_vmap_auto_is_the_loop_on_cpu_and_the_probe_decides_once():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 3, 8, 8, generator=g), torch.arange(3).repeat(4)
    res = evaluate_images(x, y, x, y, 3, 0.01, eval_config(TINY, 2, 2, use_vmap="auto", vmap_on_cpu=True), seed=0,
                          device=CPU, progress=False)
    assert not res.used_vmap
    cfg = eval_config(TINY, 2, 2, use_vmap="auto", vmap_on_cpu=True)
    first = vmap_is_faster(x, y, x, y, 3, 0.01, cfg, [1, 2], CPU, epochs=1)
    assert vmap_is_faster(x, y, x, y, 3, 0.01, cfg, [1, 2], CPU, epochs=1) == first  # decided once
    assert EvaluationParams(use_vmap="auto").engine_config(TINY).use_vmap == "auto"


def _distiller(mode):
    torch.manual_seed(0)
    arch = {"arch": "convnet", "width": 4, "depth": 1}
    flat = FlatModel(build_from_spec(arch, 3, 3, (8, 8)))
    traj = torch.stack([flat.flat_params() + 0.01 * k for k in range(3)])
    x, y = torch.randn(6, 3, 8, 8), torch.arange(3).repeat_interleave(2)
    cfg = distill_config(ipc=2, syn_steps=2, iterations=2, max_start_epoch=1, memory_mode=mode, checkpoint_every=0)
    return Distiller(InMemoryExperts([traj]), x, y, 3, cfg, CPU, arch)


def test_memory_mode_auto_is_unrolled_on_cpu_and_a_resumed_run_keeps_the_chosen_mode():
    assert DistillParams(memory_mode="auto").memory_mode == "auto"
    d = _distiller("auto")
    assert d.memory_mode is None
    d.step()
    assert d.resolved_memory_mode() == "unrolled" and d.state_dict()["memory_mode"] == "unrolled"
    d.memory_mode = "checkpoint"  # as a CUDA probe might have chosen
    state = d.state_dict()
    again = _distiller("auto")
    again.load_state_dict(state)
    assert again.resolved_memory_mode() == "checkpoint"
    fixed = _distiller("checkpoint")
    assert fixed.resolved_memory_mode() == "checkpoint"


def test_memory_mode_probe_picks_a_mode_and_leaves_the_state_alone():
    d = _distiller("auto")
    images, lr, it = d.images.detach().clone(), d.lr_param.detach().clone(), d.iteration
    choice = probe_memory_mode(d)
    assert choice in ("unrolled", "checkpoint", "graphed")
    assert (d._programs is not None) == (choice == "graphed")  # the graphed programs are kept only when chosen
    assert torch.equal(d.images, images) and torch.equal(d.lr_param, lr) and d.iteration == it
    assert d.images.grad is None and d.lr_param.grad is None and d._draws == {}
    d.memory_mode = None
    d.step()  # on CPU auto resolves to unrolled, the probe is not run
    assert d.memory_mode == "unrolled"
