"""End to end through the real `kedro` CLI on a tiny configuration (a copy of the project's
conf with a `smoke` environment of small sizes): mock sky -> curation -> teacher -> distill
-> evaluation -> reporting, MLflow runs, variants side by side, fail-fast parameters and the
static kedro-viz build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _project import copy_project

ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))

SMOKE = {
    "parameters_sky.yml": """
sky: {out_dir: data/01_raw/mock_sky, n_galaxies: 110, seed: 3, n_workers: 1, progress: false}
""",
    "parameters_curation.yml": """
curation:
  fraction: fraction
  k_per_class: 6
  n_train_per_class: 4
  seed: 1
  on_shortfall: take
  image_size: 16
  rotations: 2
  max_missing_fraction: 0.05
  montage_per_class: 2
  n_workers: 1
""",
    "parameters_teacher.yml": """
teacher: {n_experts: 2, epochs: 3, lr: 0.01, batch_size: 16, dsa_strategy: color_crop_cutout_flip_scale_rotate, seed: 0}
""",
    "parameters_distill.yml": """
distill:
  iterations: 6
  syn_steps: 2
  expert_epochs: 1
  max_start_epoch: 2
  lr_img: 100
  lr_lr: null
  lr_init: 0.01
  checkpoint_every: 3
  checkpoint_root: data/07_model_output/checkpoints
  eval_every: 3
  seed: 0
""",
    "parameters_evaluation.yml": """
evaluation: {n_nets: 2, epochs: 4, full_n_nets: 1, full_epochs: 1, full_lr: 0.01, batch_size: 64, seed: 0,
             cross_arch: [mlp]}
""",
    "parameters_insight.yml": """
insight: {statmorph: false, stability: false, n_bootstrap: 50, n_workers: 1, progress: false}
""",
    "parameters.yml": """
model: {arch: convnet, width: 8, depth: 2, norm: instancenorm, pooling: avgpooling, activation: relu}
progress: false
""",
}


def kedro(project: Path, *args: str, check: bool = True, hide_warnings: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DO_NOT_TRACK": "1", "MPLBACKEND": "Agg"}
    env.pop("PYTHONWARNINGS", None)
    if hide_warnings:
        env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.run([KEDRO, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"kedro {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's configuration with the `smoke` environment, after `kedro run`."""
    root = copy_project(tmp_path_factory.mktemp("project"), {"smoke": SMOKE})
    kedro(root, "run", "--env", "smoke")
    return root


def test_default_run_produces_every_stage(project):
    assert (project / "data/01_raw/mock_sky/gz2_hart16.csv").exists()
    meta = json.loads((project / "data/05_model_input/gz2/meta.json").read_text())
    assert meta["sizes"]["train_augmented"] == 2 * meta["sizes"]["train"]
    train = load_file(str(project / "data/05_model_input/gz2/train.safetensors"))
    assert train["images"].dtype == torch.uint8 and train["images"].shape[1:] == (3, 16, 16)
    assert len(list((project / "data/06_models/experts/mock_plain").glob("bank-*/expert_*.safetensors"))) == 2
    distilled = load_file(str(project / "data/07_model_output/mock_stm_ipc1_real_plain/distilled.safetensors"))
    assert distilled["images"].shape == (9, 3, 16, 16)
    result = json.loads((project / "data/08_reporting/evaluation_mock_stm_ipc1_real_plain.json").read_text())
    for key in ("distilled_acc_mean", "distilled_acc_std", "random_acc_mean", "random_acc_std",
                "full_acc_mean", "full_acc_std"):
        assert 0.0 <= result[key] <= 100.0
    assert (result["dataset"], result["method"], result["ipc"], result["init"], result["augmented"]) == (
        "gz2", "stm", 1, "real", False)
    assert result["data_label"] == "mock"  # the mock sky is named as such, never as GZ2
    assert set(result["classes"]) == {"class_names", "distilled", "random", "full"}
    for name in ("curation_report.json", "curation_montage.png", "grid_mock_stm_ipc1_real_plain.png",
                 "confusion_mock_stm_ipc1_real_plain.png",
                 "curves_mock_stm_ipc1_real_plain.png", "results_table.md", "results_table.csv"):
        assert (project / "data/08_reporting" / name).stat().st_size > 0
    assert "| 1 |" in (project / "data/08_reporting/results_table.md").read_text()
    # insight (after reporting): the report folder of the variant, one card per class
    (folder,) = (project / "data/08_reporting").glob("insight_*")
    assert {"diagnostics.csv", "claims.csv", "report.md", "heatmap.png", "card_class0.png"} <= {
        p.name for p in folder.iterdir()}
    assert (project / "data/05_model_input/insight_real_diagnostics.parquet").exists()
    assert set(result["cross_arch"]) == {"mlp"}


def test_second_variant_writes_beside_the_first_and_mlflow_has_both(project):
    proc = kedro(project, "run", "--env", "smoke", "--pipelines=distill,evaluation,reporting", "--params", "ipc=2",
                 hide_warnings=False)
    log = (proc.stdout + proc.stderr).splitlines()
    assert not [line for line in log if "WARNING" in line or "Warning" in line], log
    assert len(log) < 60 and "== distill (" in " ".join(log)
    one = load_file(str(project / "data/07_model_output/mock_stm_ipc1_real_plain/distilled.safetensors"))
    two = load_file(str(project / "data/07_model_output/mock_stm_ipc2_real_plain/distilled.safetensors"))
    assert one["images"].shape == (9, 3, 16, 16)
    assert two["images"].shape == (18, 3, 16, 16)
    assert len(list((project / "data/08_reporting").glob("evaluation_mock_stm_ipc*_real_plain.json"))) == 2
    table = (project / "data/08_reporting/results_table.csv").read_text()
    assert "mock_stm_ipc1_real_plain" in table and "mock_stm_ipc2_real_plain" in table

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["galaxy_distillation"])
    names = set(runs["tags.mlflow.runName"])
    assert {"all mock_stm_ipc1_real_plain", "distill+evaluation+reporting mock_stm_ipc2_real_plain"} <= names
    client = mlflow.MlflowClient()
    first = runs[runs["tags.mlflow.runName"] == "all mock_stm_ipc1_real_plain"].iloc[-1]
    second = runs[runs["tags.mlflow.runName"] == "distill+evaluation+reporting mock_stm_ipc2_real_plain"].iloc[0]
    run_id = second["run_id"]
    # the ipc=2 run links to the run whose curated data and experts it used, and says how it was started
    assert second["tags.consumed.model_input"] == second["tags.consumed.expert_trajectories"] == first["run_id"]
    assert second["tags.kedro_command"].endswith("run --env smoke --pipelines=distill,evaluation,reporting --params ipc=2")
    assert second["tags.runner"] == "SequentialRunner" and second["tags.kedro.env"] == "smoke"
    inputs = {d.dataset.name for d in client.get_run(run_id).inputs.dataset_inputs}
    assert {"model_input", "expert_trajectories"} <= inputs
    snapshots = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    assert len(snapshots) == 3  # iterations 0, 3 and 6
    losses = client.get_metric_history(run_id, "distill.loss")
    assert len(losses) == 6
    assert client.get_metric_history(run_id, "eval.distilled_acc_mean")
    artifacts = {a.path for a in client.list_artifacts(run_id, "reporting")}
    assert "reporting/grid_mock_stm_ipc2_real_plain.png" in artifacts
    logged = client.get_run(run_id).data.params  # typed groups logged field by field
    assert logged["distill.iterations"] == "6" and logged["evaluation.n_nets"] == "2" and logged["ipc"] == "2"


@pytest.mark.parametrize("bad", ["ipc=0", "ipc=-1", "ipc=abc", "method=foo", "init=bar"])
def test_invalid_parameter_fails_fast_with_one_line(project, bad):
    proc = kedro(project, "run", "--env", "smoke", "--pipelines=distill", "--params", bad, check=False)
    assert proc.returncode != 0
    name = bad.split("=")[0]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("galaxy-distillation: invalid parameter")]
    assert len(lines) == 1 and f"'{name}'" in lines[0] and "allowed" in lines[0]
    assert "Traceback" not in proc.stderr


def test_static_kedro_viz_build(project):
    kedro(project, "viz", "build")
    assert (project / "build/index.html").exists()
    main = json.loads((project / "build/api/main").read_text())
    names = {n["name"] for n in main["nodes"]}
    assert {"render_mock_sky", "label_catalogue", "prepare", "train_experts", "distill_dataset", "collect_evaluation"} <= {
        n.replace("_", " ").lower().replace(" ", "_") for n in names} | names
    layers = set(main.get("layers", []))
    assert {"raw", "model_input", "reporting"} <= layers


def test_curation_labels_the_real_stripe82_table_from_the_command_line(project):
    votes = ROOT / "tests/data/gz2_stripe82_coadd2_votes.csv.gz"  # a public GZ2 table carried in the repository
    assert votes.exists(), f"the real Stripe 82 vote table is missing: {votes}"
    out = project / "data/02_intermediate/labelled_catalog.parquet"
    proc = kedro(project, "run", "--env", "smoke", "--pipelines=curation", "--to-outputs=labelled_catalog",
                 "--params", f"votes_path={votes}")
    import pandas as pd

    labelled = pd.read_parquet(out)
    assert len(labelled) > 19000
    assert str(labelled["dr7objid"].dtype) == "int64"
    assert labelled["dr7objid"].min() > 10**17
    assert set(labelled["label"].unique()) <= set(range(9)) and labelled["label"].nunique() == 9
    assert 0.3 < labelled["confidence"].mean() < 0.8
    # the labels-only recipe reports what it found: a JSON report, log lines, MLflow metrics
    report = json.loads((project / "data/08_reporting/label_report.json").read_text())["labels"]
    assert report["counts_by_label"] == labelled["label"].value_counts().reindex(range(9)).tolist()
    assert abs(report["mean_confidence"] - labelled["confidence"].mean()) < 1e-9
    log = proc.stdout + proc.stderr
    assert f"labelled {len(labelled):,} of" in log and "class counts (mean confidence): 0 smooth" in log


def test_distillation_resumes_from_its_checkpoint(project):
    """A longer budget continues the ipc=1 run from its checkpoint: the first iterations are
    the ones already done (same losses), not a new run."""
    before = pd_read(project / "data/07_model_output/mock_stm_ipc1_real_plain/history.csv")
    proc = kedro(project, "run", "--env", "smoke", "--pipelines=distill", "--params", "distill.iterations=9")
    after = pd_read(project / "data/07_model_output/mock_stm_ipc1_real_plain/history.csv")
    assert len(before) == 6 and len(after) == 9
    assert after["loss"].iloc[:6].tolist() == before["loss"].tolist()
    log = proc.stdout + proc.stderr
    assert "mock_stm_ipc1_real_plain: resumed from the checkpoint" in log and "at iteration 6" in log
    assert "settings changed since the checkpoint: iterations 6 -> 9" in log


def pd_read(path: Path):
    import pandas as pd

    return pd.read_csv(path)


def test_benchmark_pipeline_distils_an_image_folder(project, tmp_path):
    from galaxy_distillation.datasources.synthetic_folder import make_toy_image_folder

    folder = make_toy_image_folder(tmp_path / "shapes", n_classes=3, n_per_class=12, size=20, seed=0)
    kedro(project, "run", "--env", "smoke", "--pipelines=benchmark", "--params",
          f"dataset=imagefolder,data_root={folder},image_size=16")
    from galaxy_distillation.names import source_name

    variant = f"{source_name('imagefolder', str(folder))}_stm_ipc1_real_plain"  # the folder is in the name
    distilled = load_file(str(project / f"data/07_model_output/{variant}/distilled.safetensors"))
    assert distilled["images"].shape == (3, 3, 16, 16)
    result = json.loads((project / f"data/08_reporting/evaluation_{variant}.json").read_text())
    assert result["dataset"] == "imagefolder"
    assert {"distilled_acc_mean", "random_acc_mean", "full_acc_mean"} <= set(result)
    assert (project / f"data/08_reporting/grid_{variant}.png").exists()


def test_explore_notebook_runs_top_to_bottom_on_the_smoke_run(project, tmp_path):
    """notebooks/explore_distilled.ipynb executes (nbconvert --execute, the venv's kernel) on
    this smoke project, with the `[notebook]` extra of the README's test command."""
    notebooks = project / "notebooks"
    notebooks.mkdir(exist_ok=True)
    shutil.copy(ROOT / "notebooks" / "explore_distilled.ipynb", notebooks / "explore_distilled.ipynb")
    out = tmp_path / "executed.ipynb"
    env = {**os.environ, "KEDRO_ENV": "smoke", "DO_NOT_TRACK": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=300",
         "--ExecutePreprocessor.kernel_name=python3", "--output", str(out), str(notebooks / "explore_distilled.ipynb")],
        cwd=notebooks, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = json.loads(out.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "variant: mock_stm_ipc1_real_plain" in text
    for name in ("distilled", "random", "full"):
        assert f"{name:>9}: " in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # the grid and the curves
    assert "model_input: run 'all mock_stm_ipc1_real_plain'" in text  # the provenance sidecar
