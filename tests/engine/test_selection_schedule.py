"""best_train image selection and the STM code schedule (reproduction settings)."""

import pytest
import torch
from _toy_d import TINY_ARCH, fast_config, random_experts, small_problem

from galaxy_distillation.engine import Distiller
from galaxy_distillation.engine.distill_config import DistillConfigError
from galaxy_distillation.engine.schedule import STMSchedule


def _distiller(tmp_path=None, **overrides):
    x, y = small_problem()
    experts = random_experts(TINY_ARCH, 3, 3, 8, epochs=4)
    accs = iter([10.0, 70.0, 30.0, 20.0, 50.0, 40.0])
    seen = []

    def hook(iteration, images, labels, lr):
        seen.append((iteration, images.clone()))
        return {"train_acc": next(accs), "test_acc": 99.0 - iteration}

    cfg = fast_config(eval_every=1, **overrides)
    d = Distiller(experts, x, y, 3, cfg, "cpu", TINY_ARCH, checkpoint_dir=tmp_path, eval_hook=hook)
    return d, seen


def test_best_train_returns_the_images_with_the_best_training_accuracy():
    d, seen = _distiller(selection="best_train")
    res = d.run(progress=False)
    assert res.selection == "best_train" and res.selected_iteration == 2 and res.selected_train_acc == 70.0
    torch.testing.assert_close(res.images, seen[1][1])  # the second quick evaluation (after iteration 2)
    assert not torch.equal(res.images, d.images.detach())  # not the final images


def test_final_selection_returns_the_last_images():
    d, seen = _distiller(selection="final")
    res = d.run(progress=False)
    assert res.selection == "final" and res.selected_iteration == res.iterations_done
    torch.testing.assert_close(res.images, seen[-1][1])


def test_best_train_survives_a_resume(tmp_path):
    d, _ = _distiller(tmp_path, selection="best_train", checkpoint_every=1)
    d.run(progress=False, stop_after=3)
    d2, _ = _distiller(tmp_path, selection="best_train", checkpoint_every=1)
    d2.run(progress=False)
    assert d2.result().selected_iteration == 2 and d2.result().selected_train_acc == 70.0


def test_best_train_needs_quick_evaluations():
    with pytest.raises(DistillConfigError, match="best_train"):
        fast_config(selection="best_train", eval_every=0).validate()
    cfg = fast_config()
    cfg.selection = "best_test"  # the engine checks too, not only the typed parameters
    with pytest.raises(DistillConfigError, match="selection"):
        cfg.validate()


def test_code_schedule_decays_lr_img_past_the_stage_limit_and_stops_below_min():
    """The code's run: once a stage passes max_iter_stage, lr_img x0.8 every 50, stop below 50."""
    s = STMSchedule(T_max=29, lam=5.0, max_iter_stage=20, stop_rule="code", min_lr_img=50.0)
    lr, stop, it = 100.0, None, 0
    while stop is None and it < 1000:
        d = s.observe(it, 1.0 + 0.001 * ((it * 7919) % 13), lr)  # flat noise: never grows
        lr, stop = d.lr_img, d.stop
        it += 1
    assert stop == "lr_img_below_min" and lr < 50.0
    # frozen after 21 values (history > 20); 100 * 0.8^k < 50 first at k = 4 decays -> 4 * 50 iterations later
    assert it == 21 + 4 * 50
