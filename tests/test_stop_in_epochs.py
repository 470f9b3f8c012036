"""A stop request (``compute.request_stop``: the first Ctrl-C or SIGTERM of a run) made from
another thread while experts or evaluation nets train ends the training within one epoch: the
engine's loop asks ``should_stop`` before every epoch (engine/training.py). Before, a running
expert group or evaluation went on to its last epoch (docs/reliability.md, issue 18).

Deterministic: the stop is requested from a second thread while a chosen epoch runs (the epoch
waits for it), and the test counts the epochs that start afterwards (none may)."""

from __future__ import annotations

import threading

import pytest
import torch

from galaxy_distillation import compute
from galaxy_distillation.engine import InMemoryExperts, training
from galaxy_distillation.engine.experts import train_experts as engine_train_experts
from galaxy_distillation.engine.trajectories import expert_path, load_trajectory, save_trajectory
from galaxy_distillation.params import CompareParams, ComputeParams
from galaxy_distillation.pipelines.compare.nodes import compare_methods
from galaxy_distillation.pipelines.distill.nodes import distill_dataset
from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.teacher.nodes import evaluate_full_set, train_experts

EPOCHS = 40  # long enough that running to the end would be seen (each epoch is milliseconds)


@pytest.fixture
def stop_during_epoch(monkeypatch):
    """``arm(n)``: the ``n``-th epoch (1-based, over every NetGroup of the test, counted from the call
    to ``arm``) has another thread call ``compute.request_stop()`` while it runs, and waits for it.
    Returns the record ``{"epochs": epochs run since, "after": epochs started after the request}``."""
    seen = {"epochs": 0, "after": 0, "at": None}
    epoch = training.NetGroup.epoch

    def watched(self, *args, **kwargs):
        seen["epochs"] += 1
        if compute.stop_requested():
            seen["after"] += 1
        if seen["epochs"] == seen["at"]:
            reached.set()
            assert requested.wait(30), "the stopping thread never asked"
        return epoch(self, *args, **kwargs)

    reached, requested = threading.Event(), threading.Event()

    def stopper() -> None:
        if reached.wait(120):
            compute.request_stop()  # what the CLI's signal handler does
            requested.set()

    def arm(n: int) -> dict:
        seen.update(epochs=0, after=0, at=n)
        threading.Thread(target=stopper, daemon=True).start()
        return seen

    monkeypatch.setattr(training.NetGroup, "epoch", watched)
    return arm


@pytest.mark.parametrize("at_once", [1, 2])
def test_a_teacher_asked_to_stop_mid_expert_ends_within_the_epoch_keeping_finished_experts(
        tiny_model_input, tiny_params, tmp_path, stop_during_epoch, at_once):
    """Two groups of ``at_once`` experts (one net, or a batched group): the stop arrives in the
    third epoch of the second group. No further epoch starts, the first group's experts (saved as
    they came back, as the expert dataset does) are kept, and nothing of the second is written."""
    teacher = tiny_params["teacher"].model_copy(update={"n_experts": 2 * at_once, "epochs": EPOCHS,
                                                        "experts_at_once": at_once})
    data, _ = prepare(tiny_model_input, teacher)
    seen = stop_during_epoch(EPOCHS + 3)  # the second group's third epoch (a group runs its nets' epoch as one)
    with pytest.raises(compute.Stopped, match=rf"teacher stopped when asked: {at_once} expert\(s\) .* kept"):
        for chunk in train_experts(data, teacher, tiny_params["model"], "cpu", False, {}, ComputeParams()):
            if "trajectory" in chunk:
                save_trajectory(chunk["trajectory"], expert_path(tmp_path, chunk["index"]))
    assert seen["after"] == 0, f"{seen['after']} epoch(s) started after the stop request"
    assert seen["epochs"] == EPOCHS + 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [expert_path(tmp_path, i).name for i in range(at_once)]


@pytest.mark.parametrize("use_vmap", [False, True])
def test_an_evaluation_asked_to_stop_ends_within_the_epoch(tiny_model_input, tiny_params, stop_during_epoch,
                                                           use_vmap):
    """The Full-set baseline's nets (one after the other, or as one vmap program): the stop
    arrives in the third epoch of the second net (of the vmap group); no further epoch starts
    and no result comes back."""
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    evaluation = tiny_params["evaluation"].model_copy(update={"full_n_nets": 2, "full_epochs": EPOCHS,
                                                              "use_vmap": use_vmap, "vmap_on_cpu": True})
    at = 3 if use_vmap else EPOCHS + 3
    seen = stop_during_epoch(at)
    with pytest.raises(compute.Stopped, match=rf"stopped when asked, before epoch 4 of {EPOCHS}"):
        evaluate_full_set(data, evaluation, tiny_params["model"], "cpu", False)
    assert seen["after"] == 0, f"{seen['after']} epoch(s) started after the stop request"
    assert seen["epochs"] == at


def test_batchnorm_experts_asked_to_stop_keep_every_expert_that_finished(tiny_model_input, tiny_params, tmp_path,
                                                                         stop_during_epoch):
    """Batch-norm experts train one at a time even when ``experts_at_once`` groups them (running buffers
    are not vmap-safe): the stop arrives in the third epoch of the second expert of such a group. The
    first one finished: it is kept (written whole), nothing of the second is written. Before, the
    group's finished expert was dropped with it (nothing came back from a stopped group)."""
    model = tiny_params["model"].model_copy(update={"norm": "batchnorm"})
    teacher = tiny_params["teacher"].model_copy(update={"n_experts": 2, "epochs": EPOCHS, "experts_at_once": 2})
    data, _ = prepare(tiny_model_input, teacher)
    seen = stop_during_epoch(EPOCHS + 3)
    with pytest.raises(compute.Stopped, match=r"teacher stopped when asked: 1 expert\(s\) .* kept"):
        for chunk in train_experts(data, teacher, model, "cpu", False, {}, ComputeParams()):
            if "trajectory" in chunk:
                save_trajectory(chunk["trajectory"], expert_path(tmp_path, chunk["index"]))
    assert seen["after"] == 0 and seen["epochs"] == EPOCHS + 3
    assert [p.name for p in tmp_path.iterdir()] == [expert_path(tmp_path, 0).name]
    assert load_trajectory(expert_path(tmp_path, 0)).params.shape[0] == EPOCHS + 1  # whole


def test_the_engines_batchnorm_experts_asked_to_stop_keep_every_expert_that_finished(tiny_model_input, tiny_params,
                                                                                     tmp_path, stop_during_epoch):
    """The same through the engine's ``train_experts`` (files written per group): expert 0 is on disk."""
    model = tiny_params["model"].model_copy(update={"norm": "batchnorm"})
    teacher = tiny_params["teacher"].model_copy(update={"n_experts": 2, "epochs": EPOCHS})
    data, _ = prepare(tiny_model_input, teacher)
    seen = stop_during_epoch(EPOCHS + 3)
    with pytest.raises(compute.Stopped, match=f"stopped when asked, before epoch 4 of {EPOCHS}"):
        engine_train_experts(data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes,
                             teacher.engine_config(model), 2, tmp_path, teacher.seed, torch.device("cpu"),
                             progress=False, at_once=2, should_stop=compute.stop_requested)
    assert seen["after"] == 0 and seen["epochs"] == EPOCHS + 3
    assert [p.name for p in tmp_path.iterdir()] == [expert_path(tmp_path, 0).name]
    assert load_trajectory(expert_path(tmp_path, 0)).params.shape[0] == EPOCHS + 1


def _tiny_experts(data, params):
    return InMemoryExperts([o["trajectory"].params for o in train_experts(data, params["teacher"], params["model"],
                                                                         "cpu", False) if "trajectory" in o])


def test_a_quick_evaluation_during_distillation_asked_to_stop_ends_within_the_epoch(
        tiny_model_input, tiny_params, tmp_path, stop_during_epoch):
    """The distill node's quick evaluations (iteration 0, then every ``eval_every``): the stop arrives in
    the third epoch of the one after iteration 2. No further epoch starts; the run ends with
    ``Stopped`` naming the quick evaluation (before: it trained to its last epoch, then stopped)."""
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    experts = _tiny_experts(data, tiny_params)
    distill = tiny_params["distill"].model_copy(update={"checkpoint_root": str(tmp_path), "selection": "final"})
    evaluation = tiny_params["evaluation"].model_copy(update={"epochs": EPOCHS, "quick_epochs_fraction": 1.0,
                                                              "quick_nets": 1})
    seen = stop_during_epoch(EPOCHS + 3)  # iteration 0's evaluation, then the third epoch of iteration 2's
    with pytest.raises(compute.Stopped, match=rf"distillation v: quick evaluation at iteration 2: .*before epoch 4 "
                                              rf"of {EPOCHS}; checkpoint .* resumes it from its last save"):
        distill_dataset(data, experts, distill, evaluation, tiny_params["model"], "stm", 2, "real", "v", "cpu", False)
    assert seen["after"] == 0, f"{seen['after']} epoch(s) started after the stop request"
    assert seen["epochs"] == EPOCHS + 3


@pytest.mark.parametrize("batched", [False, True])
def test_a_comparison_runs_quick_evaluation_asked_to_stop_ends_within_the_epoch(
        tiny_model_input, tiny_params, stop_during_epoch, batched):
    """The same in the ``compare`` pipeline (one run after another, or batched): the stop arrives in
    the third epoch of the first run's evaluation at iteration 2; no further epoch starts."""
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    experts = _tiny_experts(data, tiny_params)
    compare = CompareParams(methods=["stm"], seeds=[0, 1], iterations=4, eval_every=2, eval_nets=1,
                            eval_epochs=EPOCHS, eval_at_start=False, lambdas=[], batched=batched)
    seen = stop_during_epoch(3)
    with pytest.raises(compute.Stopped, match=rf"comparison run STM seed 0 lambda \S+: quick evaluation at "
                                              rf"iteration 2: .*before epoch 4 of {EPOCHS}"):
        compare_methods(data, experts, compare, tiny_params["distill"], tiny_params["evaluation"],
                        tiny_params["model"], 2, "cpu", False)
    assert seen["after"] == 0, f"{seen['after']} epoch(s) started after the stop request"
    assert seen["epochs"] == 3
