"""``compile: true`` (teacher / evaluation): the training step's forward, loss and backward through
``torch.compile`` (inductor) equal the eager step to float tolerance; a compilation that fails
falls back to the eager step, bit for bit, with one log line.

Slow on CPU: inductor compiles the smallest net's forward and backward with gcc, about 15-20 s
for one net and 8-10 s for the batched (vmap) program on a loaded 2-core machine (the eager runs
take milliseconds); one graph each (24 images, batch 8: no partial last batch, so no second
shape), which the evaluation tests reuse."""

from __future__ import annotations

import logging

import pytest
import torch

from _configs import eval_config, expert_config
from galaxy_distillation.engine import training
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.experts import train_expert, train_expert_group

CPU = torch.device("cpu")
ARCH = {"arch": "convnet", "width": 4, "depth": 1}
#: Compiled kernels may sum in another order (fused reductions): after 2 epochs of 3 SGD steps the
#: parameters agree to this (observed: at most 2e-8 absolute).
ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def toy(toy_dataset):
    return toy_dataset(num_classes=3, n_per_class=8, size=8, seed=4)  # 24 images: batches 8, 8, 8


def _expert(toy, compile_: bool):
    cfg = expert_config(epochs=2, lr=0.05, batch_size=8, arch=ARCH, compile=compile_)
    return train_expert(*toy, num_classes=3, config=cfg, seed=7, device=CPU, progress=False)


def test_a_compiled_expert_equals_the_eager_one_to_float_tolerance(toy, caplog):
    from torch._dynamo.utils import counters

    eager = _expert(toy, False)
    captured = counters["stats"]["unique_graphs"]
    with caplog.at_level(logging.WARNING, logger=training.__name__):
        compiled = _expert(toy, True)
    fell_back = [r.getMessage() for r in caplog.records if r.name == training.__name__]
    assert "one" not in training._FAILED and not fell_back, f"the compiled step fell back to eager: {fell_back}"
    assert counters["stats"]["unique_graphs"] > captured, "nothing was compiled"
    assert compiled.params.shape == eager.params.shape == (3, eager.params.shape[1])
    assert torch.equal(compiled.params[0], eager.params[0])  # the same initialisation
    assert not torch.equal(compiled.params[1:], compiled.params[:1].expand(2, -1))  # it trained
    torch.testing.assert_close(compiled.params, eager.params, atol=ATOL, rtol=RTOL)
    assert compiled.train_loss == pytest.approx(eager.train_loss, rel=RTOL, abs=ATOL)
    assert "compile" not in compiled.meta["config"]  # an execution choice: the same bank either way


def test_compiled_grouped_experts_equal_the_eager_group_to_float_tolerance(toy):
    """The batched program (``vmap(functional_call)`` of K = 2 experts) compiled."""
    runs = {}
    for compile_ in (False, True):
        cfg = expert_config(epochs=2, lr=0.05, batch_size=8, arch=ARCH, compile=compile_)
        runs[compile_] = train_expert_group(*toy, num_classes=3, config=cfg, seeds=[7, 8], device=CPU, progress=False)
    assert "each" not in training._FAILED, "the compiled batched step fell back to eager"
    for compiled, eager in zip(runs[True], runs[False], strict=True):
        assert compiled.meta["experts_at_once"] == 2
        torch.testing.assert_close(compiled.params, eager.params, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("use_vmap", [False, True])
def test_a_compiled_evaluation_gives_the_eager_accuracies(toy, use_vmap, monkeypatch):
    """Evaluation nets (momentum 0.9, lr decay) through the same compiled steps: each net's final
    test accuracy within one test image of the eager one (weights differ at float rounding)."""
    steps: list[str] = []
    real = training._compiled
    monkeypatch.setattr(training, "_compiled", lambda kind: steps.append(kind) or real(kind))
    results = {}
    for compile_ in (False, True):
        cfg = eval_config(arch=ARCH, n_nets=2, epochs=4, batch_size=8, use_vmap=use_vmap, vmap_on_cpu=True,
                          compile=compile_)
        results[compile_] = evaluate_images(*toy, num_classes=3, lr=0.01, config=cfg, seed=1, device=CPU,
                                            progress=False)
    assert results[True].used_vmap is use_vmap and not training._FAILED
    assert set(steps) == {"each" if use_vmap else "one"} and len(steps) == 2 * 4 * 3 // (2 if use_vmap else 1)
    one_image = 100.0 / toy[2].shape[0]
    assert results[True].accs == pytest.approx(results[False].accs, abs=one_image + 1e-9)


def test_a_failing_compilation_falls_back_to_the_eager_step_with_one_log_line(toy, monkeypatch, caplog):
    def broken(fn, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("inductor: no C compiler\nsecond line")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(training, "_COMPILED", {})
    monkeypatch.setattr(training, "_FAILED", set())
    eager = _expert(toy, False)
    with caplog.at_level(logging.WARNING, logger=training.__name__):
        fallen = _expert(toy, True)
    lines = [r.getMessage() for r in caplog.records if r.name == training.__name__]
    assert len(lines) == 1 and "torch.compile of the training step failed (RuntimeError: inductor: no C compiler)" \
        in lines[0] and "eagerly" in lines[0]
    assert torch.equal(fallen.params, eager.params)  # the same step, the same draws: bit for bit
    assert fallen.train_loss == eager.train_loss
