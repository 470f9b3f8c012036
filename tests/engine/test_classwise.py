"""Per-class accuracy and confusion matrices (engine.classwise) and the predictions behind them."""

import pytest
import torch

from _configs import eval_config
from galaxy_distillation.engine.classwise import class_report, confusion_counts
from galaxy_distillation.engine.evaluation import evaluate_images

CPU = torch.device("cpu")


def test_confusion_and_per_class_accuracy_on_a_known_case():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    preds = torch.tensor([[0, 1, 1, 1, 2, 2],    # net 0: class 0 1/2, class 1 2/3, class 2 1/1
                          [0, 0, 0, 1, 1, 0]])   # net 1: class 0 2/2, class 1 2/3, class 2 0/1
    counts = confusion_counts(preds, labels, 3)
    assert counts.shape == (2, 3, 3)
    assert counts[0].tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert counts[1].tolist() == [[2, 0, 0], [1, 2, 0], [1, 0, 0]]
    report = class_report(preds, labels, 3)
    assert report["support"] == [2, 3, 1]
    assert report["per_class_acc"] == pytest.approx([75.0, 200 / 3, 50.0])
    assert report["per_class_acc_std"] == pytest.approx([25.0, 0.0, 50.0])
    assert report["confusion_counts"] == [[1.5, 0.5, 0], [0.5, 2, 0.5], [0.5, 0, 0.5]]
    assert report["confusion"][0] == pytest.approx([0.75, 0.25, 0.0])
    assert report["confusion"][1] == pytest.approx([1 / 6, 2 / 3, 1 / 6], abs=1e-6)  # stored to 6 decimals
    assert all(sum(row) == pytest.approx(1.0, abs=1e-5) for row in report["confusion"])


def test_a_class_without_test_images_has_a_zero_row():
    report = class_report(torch.tensor([0, 1]), torch.tensor([0, 1]), 3)
    assert report["support"] == [1, 1, 0] and report["confusion"][2] == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="predictions per net"):
        confusion_counts(torch.tensor([0, 1, 1]), torch.tensor([0, 1]), 3)


@pytest.mark.parametrize("use_vmap", [False, True])
def test_evaluation_keeps_the_final_predictions_behind_each_accuracy(toy_dataset, use_vmap):
    train_x, train_y, test_x, test_y = toy_dataset(num_classes=3, n_per_class=4, size=8, seed=1, n_test_per_class=5)
    cfg = eval_config(n_nets=2, epochs=3, batch_size=8, arch={"arch": "convnet", "width": 4, "depth": 1},
                      use_vmap=use_vmap, vmap_on_cpu=True, eval_batch_size=4)
    res = evaluate_images(train_x, train_y, test_x, test_y, 3, 0.01, cfg, seed=0, device=CPU, progress=False)
    assert res.used_vmap is use_vmap and res.predictions is not None and res.predictions.shape == (2, 15)
    for acc, pred in zip(res.accs, res.predictions):
        assert acc == 100.0 * int((pred == test_y).sum()) / 15
    report = class_report(res.predictions, test_y, 3)
    assert sum(report["per_class_acc"]) / 3 == pytest.approx(res.mean)  # balanced test set
