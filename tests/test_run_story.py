"""Quiet logs, the MLflow run story and the figures module (no Kedro run here)."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from galaxy_distillation import logs, tracking
from galaxy_distillation.curation.labels import CLASS_NAMES
from galaxy_distillation.figures import canvas
from galaxy_distillation.figures import curves as curve_figs
from galaxy_distillation.figures import images as image_figs

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"dataset": "gz2", "method": "stm", "ipc": 2, "init": "real", "augmented": False,
          "variant": "gz2_stm_ipc2_real_plain"}


@pytest.mark.parametrize(("pipelines", "partial", "expected"), [
    (["curation"], None, "curation"),
    (["curation"], "to labelled_catalog", "curation (to labelled_catalog)"),
    (["teacher"], None, "teacher gz2_plain"),
    (["distill"], None, "distill gz2_stm_ipc2_real_plain"),
    (["reporting", "evaluation", "distill"], None, "distill+evaluation+reporting gz2_stm_ipc2_real_plain"),
    (["compare"], None, "compare gz2_ipc2_plain"),
    (None, None, "all gz2_stm_ipc2_real_plain"),
])
def test_run_names_say_what_ran(pipelines, partial, expected):
    assert tracking.run_name(pipelines, PARAMS, partial) == expected


@pytest.mark.parametrize(("pipelines", "expected"), [
    (["teacher"], "teacher mock_plain"), (["compare"], "compare mock_ipc2_plain"),
    (None, "all mock_stm_ipc2_real_plain"),
])
def test_run_names_on_the_mock_sky_say_mock(pipelines, expected):
    params = {**PARAMS, "data_label": "mock", "variant": "mock_stm_ipc2_real_plain"}
    assert tracking.run_name(pipelines, params) == expected


def test_figure_titles_on_the_mock_sky_say_so():
    assert "MOCK SKY" in canvas.data_note({"variant": "mock_stm_ipc1_real_plain"})
    assert "MOCK SKY" in canvas.data_note(None, {"data_label": "mock"})
    assert canvas.data_note({"variant": "gz2_stm_ipc1_real_plain"}, {"data_label": "gz2"}) == ""


def test_partial_label_and_runner_name():
    assert tracking.partial_label({"to_outputs": ["labelled_catalog"], "tags": None}) == "to labelled_catalog"
    assert tracking.partial_label({"node_names": [], "from_nodes": None}) is None
    assert tracking.runner_name("<kedro.runner.sequential_runner.SequentialRunner object at 0x7f3a>") == "SequentialRunner"
    assert tracking.runner_name(object()) == "object"
    assert tracking.kedro_command(["/venv/bin/kedro", "run", "--params", "ipc=2,method=mtt"]) == \
        "kedro run --params ipc=2,method=mtt"
    assert tracking.kedro_command(["pytest"]) is None


def test_git_commit_of_the_checkout():
    commit = tracking.git_commit(ROOT)
    assert commit is not None and re.fullmatch(r"[0-9a-f]{40}", commit[0]) and isinstance(commit[1], bool)


def test_provenance_sidecars_for_folders_and_files(tmp_path):
    folder = tmp_path / "experts" / "gz2_plain"
    folder.mkdir(parents=True)
    file = tmp_path / "distilled.safetensors"
    file.write_bytes(b"x")
    assert tracking.read_provenance(folder) is None
    tracking.write_provenance(folder, "abc123", dataset="expert_trajectories")
    tracking.write_provenance(file, "def456")
    assert tracking.read_provenance(folder)["run_id"] == "abc123"
    assert (folder / "mlflow_run.json").exists() and (tmp_path / "distilled.safetensors.mlflow_run.json").exists()
    assert tracking.read_provenance(file)["run_id"] == "def456"
    assert tracking.dataset_location({"gz2_dir": "data/05_model_input/gz2"}) == Path("data/05_model_input/gz2")
    assert tracking.dataset_location({"filepath": "s3://bucket/x"}) is None
    assert tracking.dataset_location({"dataset": "cifar10", "gz2_dir": "data/05_model_input/gz2"}) is None


def test_mlflow_child_runs_curves_and_snapshots(tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    images, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 0, 1, 2])
    assert tracking.log_snapshot(images, labels, 3, 0) is False  # no active run: nothing happens
    with mlflow.start_run(run_name="compare gz2_ipc1_plain") as parent:
        assert tracking.log_snapshot(images, labels, 3, 5)
        with tracking.child_run("stm seed 0", {"method": "stm", "seed": 0, "lam": float("nan")}) as child:
            n = tracking.log_curve([{"iteration": 0, "test_acc": 10.0, "T": 1, "loss": float("nan")},
                                    {"iteration": 20, "test_acc": 30.0, "T": 2, "loss": 0.5}])
    client = mlflow.MlflowClient()
    assert n == 2
    child_run = client.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child_run.data.params == {"method": "stm", "seed": "0"}
    assert [m.value for m in client.get_metric_history(child.info.run_id, "test_acc")] == [10.0, 30.0]
    assert any("synthetic_set" in a.path for a in client.list_artifacts(parent.info.run_id, "images"))
    tile = tracking.tile(images, labels, 3, scale=2, pad=1)
    assert tile.shape == (3 * 17 + 1, 2 * 17 + 1, 3) and tile.dtype == np.uint8


def test_third_party_warnings_are_dropped_and_others_kept():
    shown: list[str] = []
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, category, *args, **kwargs: shown.append(str(message))
        logs.quiet_third_party_warnings()  # wraps the showwarning above
        warnings.simplefilter("always")  # as MLflow does: filters alone cannot hide these
        warnings.warn("register_new_resolver() is deprecated and will be removed", UserWarning, stacklevel=1)
        warnings.warn("something the project should hear about", UserWarning, stacklevel=1)
    assert shown == ["something the project should hear about"]


def test_progress_bars_go_quiet_off_a_terminal():
    from tqdm.auto import tqdm

    try:
        assert logs.quiet_progress_bars(environ={}, terminal=False)
        assert tqdm(range(3), disable=False).disable
    finally:
        logs.restore_progress_bars()
    assert not logs.quiet_progress_bars(environ={}, terminal=True)
    assert not logs.quiet_progress_bars(environ={"TQDM_MININTERVAL": "30"}, terminal=False)
    assert not tqdm(range(3), disable=False).disable


def test_stage_headers_once_per_stage():
    stages = {"sky": ["render"], "teacher": ["train", "summarise"], "distill": ["distill"]}
    headers = logs.StageHeaders(stages, ["render", "train", "distill", "summarise"])
    seen = [headers.enter(n) for n in ("render", "train", "distill", "summarise")]
    assert seen == ["== sky (1 node) ==", "== teacher (2 nodes) ==", "== distill (1 node) ==", None]


def _history(n: int = 12, every: int = 4) -> pd.DataFrame:
    rows = [{"iteration": i, "loss": 1.0 / (i + 1), "val_loss": 1.0, "T": 1 + i // 6, "lr": 0.01 * (1 + 0.01 * i),
             "test_acc": 20.0 + i if (i + 1) % every == 0 else None,
             "test_acc_std": 1.5 if (i + 1) % every == 0 else None} for i in range(n)]
    return pd.DataFrame(rows)


def test_curves_have_iteration_zero_band_reference_lines_and_integer_ticks():
    results = {"random_acc_mean": 15.0, "random_acc_std": 1.0, "full_acc_mean": 70.0, "full_acc_std": 2.0,
               "distilled_acc_mean": 30.0, "distilled_acc_std": 1.0, "n_nets": 5, "epochs": 300}
    meta = {"variant": "gz2_stm_ipc1_real_plain", "method": "stm", "ipc": 1,
            "quick_eval": {"n_nets": 2, "epochs": 60, "eval_every": 4}}
    points = curve_figs.quick_eval_points(_history(), {"test_acc": 11.0, "test_acc_std": 0.5})
    assert points["done"].tolist() == [0, 4, 8, 12] and points["mean"].tolist() == [11.0, 23.0, 27.0, 31.0]
    fig = curve_figs.curves_figure(_history(), {"test_acc": 11.0, "test_acc_std": 0.5}, results, meta)
    acc, _, pool = fig.axes[:3]
    fig.canvas.draw()
    legend = [t.get_text() for t in acc.get_legend().get_texts()]
    assert "Random real, final (5 nets x 300 epochs): 15.0 %" in legend
    assert "Full training set, final (? nets x ? epochs): 70.0 %" in legend
    assert "distilled, quick (2 nets x 60 epochs)" in legend
    assert acc.collections, "no ± std band"
    assert all(float(t).is_integer() for t in pool.get_yticks())
    step = fig.axes[3]
    assert step.get_yscale() == "log" and len([t for t in step.get_yticklabels() if t.get_text()]) >= 2
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "2 nets x 60 epochs" in texts and "gz2_stm_ipc1_real_plain" in fig._suptitle.get_text()


def test_curves_compare_the_quick_line_only_with_a_reference_of_the_same_protocol():
    results = {"random_acc_mean": 63.9, "random_acc_std": 0.8, "distilled_acc_mean": 63.9, "distilled_acc_std": 2.1,
               "n_nets": 5, "epochs": 300, "full_acc_mean": 80.0, "full_acc_std": 1.0, "full_n_nets": 2,
               "full_epochs": 50, "random_quick_acc_mean": 50.0, "random_quick_acc_std": 1.0, "quick_n_nets": 2,
               "quick_epochs": 60}
    meta = {"variant": "mock_stm_ipc10_real_plain", "method": "stm", "ipc": 10,
            "quick_eval": {"n_nets": 2, "epochs": 60, "eval_every": 4}}
    fig = curve_figs.curves_figure(_history(), {"test_acc": 11.0, "test_acc_std": 0.5}, results, meta)
    acc = fig.axes[0]
    lines = [line for line in acc.get_lines() if line.get_linestyle() == "--"]
    assert len(lines) == 1 and lines[0].get_ydata()[0] == 50.0  # the only line across the curve: same protocol
    legend = [t.get_text() for t in acc.get_legend().get_texts()]
    assert "Random real, quick (2 nets x 60 epochs): 50.0 %" in legend
    assert "distilled, final (5 nets x 300 epochs): 63.9 %" in legend
    assert "Full training set, final (2 nets x 50 epochs): 80.0 %" in legend
    assert "MOCK SKY" in fig._suptitle.get_text()


def test_distilled_grid_has_class_columns_initial_row_and_accuracy_caption():
    labels = torch.arange(9).repeat(2)
    images = torch.rand(18, 3, 8, 8)
    fig = image_figs.distilled_grid_figure(images, labels, CLASS_NAMES, initial=torch.rand(18, 3, 8, 8),
                                           meta={"variant": "v", "method": "stm", "ipc": 2, "init": "real"},
                                           results={"distilled_acc_mean": 40.0, "distilled_acc_std": 2.0,
                                                    "n_nets": 5, "epochs": 300})
    axes = np.array(fig.axes).reshape(9, 2)  # several images per class: a row per class, prototypes side by side
    assert [axes[r][0].get_ylabel() for r in range(9)] == [f"{c}: {n}" for c, n in enumerate(CLASS_NAMES)]
    assert "40.0 ± 2.0 %" in " ".join(t.get_text() for t in fig.texts)
    with_initial = image_figs.distilled_grid_figure(images, labels, CLASS_NAMES, initial=torch.rand(18, 3, 8, 8),
                                                    meta={"ipc": 2}, show_initial=True)
    assert len(with_initial.axes) == 18 * 2 and with_initial.axes[2].get_ylabel() == "  (initial)"
    one = image_figs.distilled_grid_figure(images[:9], labels[:9], CLASS_NAMES, initial=torch.rand(9, 3, 8, 8),
                                           meta={"variant": "v", "method": "stm", "ipc": 1})
    axes = np.array(one.axes).reshape(2, 9)  # one per class: the paper's layout, a column per class
    assert [ax.get_title().replace("\n", " ") for ax in axes[0]] == list(CLASS_NAMES)
    assert [axes[r][0].get_ylabel() for r in range(2)] == ["initial", "distilled"]


def test_montage_marks_the_mock_sky_and_compare_plots_state_their_budget():
    labels = torch.arange(9).repeat(3)
    images = torch.randint(0, 255, (27, 3, 8, 8), dtype=torch.uint8)
    assert "MOCK SKY" in image_figs.montage_figure(images, labels, CLASS_NAMES, 2, mock_sky=True)._suptitle.get_text()
    assert "MOCK" not in image_figs.montage_figure(images, labels, CLASS_NAMES, 2)._suptitle.get_text()
    curves = pd.DataFrame([{"method": m, "lam": 5.0, "seed": s, "iteration": i, "test_acc": 10.0 + i + s, "T": 1}
                           for m in ("mtt", "stm") for s in (0, 1) for i in (0, 20, 40)])
    compare = {"iterations": 40, "eval_every": 20, "eval_nets": 2, "eval_epochs": 100}
    for fig in (curve_figs.comparison_figure(curves, compare), curve_figs.lambda_figure(curves, compare)):
        text = " ".join(t.get_text() for t in fig.texts)
        assert "40 distillation iterations" in text and "2 nets x 100 epochs" in text and "5000" in text


def test_figures_use_no_pyplot_and_no_backend_switch():
    code = "import sys, galaxy_distillation.figures, galaxy_distillation.pipelines.reporting.nodes, " \
           "galaxy_distillation.pipelines.compare.nodes; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
    offenders = [str(p) for p in (ROOT / "src").rglob("*.py") if re.search(r"matplotlib\.use\(|import matplotlib\.pyplot",
                                                                            p.read_text())]
    assert offenders == []


def test_notebook_extra_and_readme_test_command_agree():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"^notebook = \[.*nbconvert", text, re.M)
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "pytest" in line and "pip install" in line)
    assert "notebook" in command.split("pip install", 1)[1].split("&&")[0]
    assert "Discovering Galaxy Features via Dataset Distillation" in (ROOT / "CITATION.cff").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_committed_notebook_ships_with_its_outputs():
    import json

    cells = json.loads((ROOT / "notebooks" / "explore_distilled.ipynb").read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code)
    assert sum(any("image/png" in o.get("data", {}) for o in c.get("outputs", [])) for c in code) == 2


def test_runs_table_lists_what_makes_runs_comparable_and_the_run_a_resume_continued(tmp_path):
    import mlflow

    from galaxy_distillation.pipelines.sweep.table import result_tags

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("galaxy_distillation")  # explicit: none left active for other tests
    record = {"variant": "mock_stm_ipc10_real_plain", "data_label": "mock", "method": "stm", "ipc": 10,
              "init": "real", "augmented": False, "distill_iterations": 50, "stop_reason": "max_iterations",
              "n_experts": 5, "expert_train_epochs": 15, "n_nets": 5, "epochs": 300, "full_n_nets": 2,
              "full_epochs": 50}
    with mlflow.start_run(run_name="killed", experiment_id=experiment) as killed:
        pass
    with mlflow.start_run(run_name="all mock_stm_ipc10_real_plain", experiment_id=experiment):
        assert tracking.set_tags(result_tags(record))
        tracking.set_tags({"resumed_from.run_id": killed.info.run_id})
        mlflow.log_metric("eval.distilled_acc_mean", 63.94)
    assert tracking.set_tags({"x": 1}) is False  # no active run
    table = tracking.runs_table(uri)
    row = table.iloc[0]
    assert (row["run"], row["data"], row["method"], row["IPC"], row["init"], row["iterations (stop)"],
            row["experts"], row["evaluation"], row["distilled %"]) == (
        "all mock_stm_ipc10_real_plain", "mock", "stm", "10", "real", "50 (max_iterations)", "5 x 15", "5 x 300", 63.9)
    assert row["resumed run"] == killed.info.run_id[:8] and "50 iterations" in row["vs the paper's budget"]


def test_the_run_ends_with_the_headline_numbers_and_where_the_figures_and_tables_went():
    from galaxy_distillation.summary import dataset_file, summary_lines

    record = {"variant": "mock_stm_ipc1_real_plain", "distilled_acc_mean": 46.44, "distilled_acc_std": 1.7,
              "random_acc_mean": 34.2, "random_acc_std": 2.4, "full_acc_mean": 80.2, "full_acc_std": 0.9,
              "n_nets": 5, "epochs": 300, "full_n_nets": 2, "full_epochs": 50, "distill_iterations": 400}
    files = ["data/08_reporting/grid_mock_stm_ipc1_real_plain.png", "data/08_reporting/results_table.md",
             "data/08_reporting/evaluation_mock_stm_ipc1_real_plain.json", "data/08_reporting/results_table.csv"]
    (line,) = summary_lines([record], files)
    assert line == ("done: mock_stm_ipc1_real_plain: distilled 46.4 ± 1.7 %, random 34.2 ± 2.4 %, full 80.2 ± 0.9 % "
                    "(5 nets x 300 epochs; full 2 x 50; 400 iterations) | figures: data/08_reporting/grid_mock_stm_"
                    "ipc1_real_plain.png; tables: data/08_reporting/results_table.md, data/08_reporting/results_table"
                    ".csv; reports: data/08_reporting/evaluation_mock_stm_ipc1_real_plain.json")
    lines = summary_lines([record, {**record, "variant": "other"}], files[1:2])
    assert len(lines) == 3 and lines[1].startswith("result other:") and lines[-1] == (
        "done | tables: data/08_reporting/results_table.md")
    assert summary_lines([], []) == ["done (no figures or tables written)"]
    assert dataset_file({"inner": {"filepath": "b/x.csv", "protocol": "s3"}}) == "s3://b/x.csv"
    assert dataset_file({"filepath": "data/08_reporting/a.png", "protocol": "file"}) == "data/08_reporting/a.png"
