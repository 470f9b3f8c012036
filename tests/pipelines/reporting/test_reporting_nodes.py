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


def _evaluation(variant, data, ipc, iterations, **extra):
    return {"variant": variant, "dataset": "gz2", "data_label": data, "method": "stm", "ipc": ipc, "init": "real",
            "augmented": False, "distill_iterations": iterations, "max_iterations": iterations,
            "stop_reason": "max_iterations", "n_experts": 5, "expert_train_epochs": 15, "n_nets": 5, "epochs": 300,
            "full_n_nets": 2, "full_epochs": 50, "distilled_acc_mean": 63.9, "distilled_acc_std": 2.1,
            "random_acc_mean": 63.9, "random_acc_std": 0.8, "full_acc_mean": 80.0, "full_acc_std": 1.0, **extra}


def test_results_table_carries_the_budget_of_every_number_and_keeps_mock_apart_from_gz2():
    from galaxy_distillation.pipelines.reporting.nodes import COLUMNS, results_tables

    ten = _evaluation("mock_stm_ipc10_real_plain", "mock", 10, 50)
    one = _evaluation("mock_stm_ipc1_real_plain", "mock", 1, 400)
    real = _evaluation("gz2_stm_ipc1_real_plain", "gz2", 1, 5000, n_experts=100, expert_train_epochs=50,
                       epochs=1000)
    files = {f"evaluation_{r['variant']}": (lambda r=r: r) for r in (one, real)}
    markdown, frame = results_tables(files, ten)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 3
    row = frame[frame["variant"] == "mock_stm_ipc10_real_plain"].iloc[0]
    assert (row["data"], row["method"], row["ipc"], row["init"], row["iterations"], row["stop_reason"],
            row["n_experts"], row["expert_epochs"], row["eval_protocol"], row["full_protocol"]) == (
        "mock", "stm", 10, "real", 50, "max_iterations", 5, 15, "5 x 300", "2 x 50")
    assert "mock sky" in row["budget_vs_paper"] and "50 iterations" in row["budget_vs_paper"]
    assert frame[frame["data"] == "gz2"].iloc[0]["budget_vs_paper"] == "paper's"
    assert "| mock_stm_ipc10_real_plain | mock | stm | 10 | real | plain | 50 (max_iterations) | 5 x 15 | 5 x 300 | " \
           "63.9 ± 2.1† | 63.9 ± 0.8† | 80.0 ± 1.0† (2 x 50) |" in markdown
    assert "## Mock sky (synthetic galaxies, not real GZ2): paper Table 2 layout, STM" in markdown
    assert "## Real GZ2: paper Table 2 layout, STM" in markdown and "| Mock real init |" not in markdown.split(
        "## Real GZ2")[1].split("## All")[0]
    assert "| 1 | 63.9 ± 0.8 | 63.9 ± 2.1 |" in markdown  # real GZ2 at the paper's budget: unmarked
    assert "† Budget differs from the paper's" in markdown
