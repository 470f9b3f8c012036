"""Reporting: the grid maps the distilled images back to display colours with the saved transform."""

from matplotlib.figure import Figure

from galaxy_distillation.params import ReportingParams, TeacherParams
from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.reporting.nodes import distilled_grid


def test_grid_has_one_row_per_class(tiny_model_input):
    data, transform = prepare(tiny_model_input, TeacherParams(zca=False))
    distilled = {"images": data.train_x[:6], "labels": data.train_y[:6] * 0 + data.train_y[[0, 8, 16, 1, 9, 17]],
                 "meta": {"variant": "v", "method": "stm", "ipc": 2, "class_names": data.class_names}}
    fig = distilled_grid(distilled, transform, ReportingParams(grid_max_per_class=2))
    assert isinstance(fig, Figure) and len(fig.axes) >= 3


def test_confusion_figure_has_a_panel_per_evaluated_set():
    from galaxy_distillation.pipelines.reporting.nodes import confusion_matrices

    record = {"per_class_acc": [50.0, 100.0], "confusion": [[0.5, 0.5], [0.0, 1.0]],
              "confusion_counts": [[1, 1], [0, 2]], "support": [2, 2], "per_class_acc_std": [0, 0]}
    results = {"variant": "mock_stm_ipc1_real_plain", "distilled_acc_mean": 75.0, "distilled_acc_std": 1.0,
               "random_acc_mean": 60.0, "random_acc_std": 2.0, "n_nets": 2, "epochs": 3,
               "classes": {"class_names": ["round", "disk"], "distilled": record, "random": record}}
    fig = confusion_matrices(results)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 2 and "75.0 ± 1.0 %" in titles[0] and "(2 nets x 3 epochs)" in titles[1]
    assert "mock_stm_ipc1_real_plain" in fig._suptitle.get_text()
    assert len(confusion_matrices({"variant": "old"}).axes) == 1  # an old record: a one-line figure
