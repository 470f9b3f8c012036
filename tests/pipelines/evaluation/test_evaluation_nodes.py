"""Evaluation nodes: distilled, random (own subset per net; fixed or learned lr), cross-architecture,
collected with the Full baseline into the evaluation_<variant>.json fields."""

import torch

from galaxy_distillation.pipelines.evaluation.nodes import (
    collect_evaluation,
    evaluate_cross_arch,
    evaluate_distilled,
    evaluate_random,
)
from galaxy_distillation.pipelines.prepare.nodes import prepare

FIELDS = {"variant", "dataset", "method", "ipc", "init", "augmented", "distilled_acc_mean", "distilled_acc_std",
          "random_acc_mean", "random_acc_std", "full_acc_mean", "full_acc_std", "learned_lr", "n_nets", "epochs",
          "full_n_nets", "full_epochs", "stop_reason", "distill_iterations"}


def _distilled(data):
    images = torch.stack([data.train_x[data.train_y == c][0] for c in range(3)])
    return {"images": images, "labels": torch.arange(3),
            "meta": {"lr": 0.01, "iterations": 4, "stop_reason": "max_iterations"}}


def test_nodes_collect_into_the_published_fields(tiny_model_input, tiny_params):
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    ev, model = tiny_params["evaluation"], tiny_params["model"]
    distilled_set = _distilled(data)
    distilled = evaluate_distilled(data, distilled_set, ev, model, "cpu", False)
    random = evaluate_random(data, distilled_set, ev, model, 1, "cpu", False)
    assert len(distilled["accs"]) == len(random["accs"]) == ev.n_nets and random["lr"] == 0.01
    fixed = evaluate_random(data, distilled_set, ev.model_copy(update={"random_lr": 1e-4}), model, 1, "cpu", False)
    assert fixed["lr"] == 1e-4
    cross = evaluate_cross_arch(data, distilled_set, ev.model_copy(update={"cross_arch": ["mlp"]}), model, "cpu",
                                False)
    assert set(cross) == {"mlp"}
    full = {"mean": 50.0, "std": 1.0, "accs": [50.0], "n_nets": 1, "epochs": 2, "lr": 0.01}
    results, metrics = collect_evaluation(distilled, random, full, cross, distilled_set, model, "gz2", "stm", 1,
                                          "real", "false", "gz2_stm_ipc1_real_plain")
    assert FIELDS <= set(results) and results["augmented"] is False and results["cross_arch"] == cross
    assert results["full_acc_mean"] == 50.0 and metrics["distilled_acc_mean"]["value"] == distilled["mean"]
    no_cross, _ = collect_evaluation(distilled, random, full, {}, distilled_set, model, "gz2", "stm", 1, "real",
                                     True, "v")
    assert "cross_arch" not in no_cross and no_cross["augmented"] is True


def test_evaluation_records_per_class_accuracy_and_confusion(tiny_model_input, tiny_params):
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    ev, model = tiny_params["evaluation"], tiny_params["model"]
    distilled_set = _distilled(data)
    distilled_set["meta"]["class_names"] = ["a", "b", "c"]
    distilled = evaluate_distilled(data, distilled_set, ev, model, "cpu", False)
    random = evaluate_random(data, distilled_set, ev, model, 1, "cpu", False)
    n_test = len(data.test_y)
    for summary in (distilled, random):
        counts = summary["classes"]["confusion_counts"]
        assert len(counts) == 3 and abs(sum(map(sum, counts)) - n_test) < 1e-6
        # the diagonal of the mean counts over the test images is the mean accuracy
        assert abs(100 * sum(counts[c][c] for c in range(3)) / n_test - summary["mean"]) < 1e-6
    full = {"mean": 50.0, "std": 1.0, "accs": [50.0], "n_nets": 1, "epochs": 2, "lr": 0.01,
            "classes": {"per_class_acc": [10.0, 20.0, 30.0], "confusion": [[1, 0, 0]] * 3,
                        "confusion_counts": [[1, 0, 0]] * 3, "support": [1, 1, 1], "per_class_acc_std": [0] * 3}}
    results, metrics = collect_evaluation(distilled, random, full, {}, distilled_set, model, "gz2", "stm", 1,
                                          "real", False, "v")
    classes = results["classes"]
    assert classes["class_names"] == ["a", "b", "c"] and set(classes) == {"class_names", "distilled", "random", "full"}
    assert classes["distilled"]["per_class_acc"] == distilled["classes"]["per_class_acc"]
    assert metrics["full_acc_class_2"]["value"] == 30.0
    assert metrics["random_acc_class_0"]["value"] == random["classes"]["per_class_acc"][0]
    old_full = {k: v for k, v in full.items() if k != "classes"}  # a Full baseline from before per-class records
    results, _ = collect_evaluation(distilled, random, old_full, {}, distilled_set, model, "gz2", "stm", 1,
                                    "real", False, "v")
    assert "full" not in results["classes"] and "distilled" in results["classes"]


def test_quick_random_reference_uses_the_quick_protocol_and_leaves_the_final_numbers_alone(tiny_model_input,
                                                                                           tiny_params):
    from galaxy_distillation.pipelines.evaluation.nodes import evaluate_random_quick

    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    ev, model = tiny_params["evaluation"], tiny_params["model"]
    distilled_set = _distilled(data)
    before = evaluate_random(data, distilled_set, ev, model, 1, "cpu", False)
    quick = evaluate_random_quick(data, distilled_set, ev, model, 1, "cpu", False)
    assert (quick["n_nets"], quick["epochs"]) == (ev.quick_nets, ev.quick_config(model).epochs)
    assert evaluate_random(data, distilled_set, ev, model, 1, "cpu", False)["accs"] == before["accs"]
    distilled = evaluate_distilled(data, distilled_set, ev, model, "cpu", False)
    full = {"mean": 50.0, "std": 1.0, "accs": [50.0], "n_nets": 1, "epochs": 2, "lr": 0.01}
    results, _ = collect_evaluation(distilled, before, full, {}, distilled_set, model, "gz2", "stm", 1, "real", False,
                                    "v", "mock", quick)
    assert results["random_quick_acc_mean"] == quick["mean"] and results["quick_epochs"] == quick["epochs"]
    assert results["data_label"] == "mock"
