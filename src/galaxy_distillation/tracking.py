"""The MLflow run as the story of a ``kedro run`` (kedro-mlflow starts and ends the run).

* The run is named after what ran: ``curation``, ``teacher mock_plain``,
  ``distill mock_stm_ipc2_real_plain``, ``compare mock_ipc1_plain``, ``all mock_stm_ipc1_real_plain``
  (:func:`run_name`; ``mock`` on the built-in mock sky, ``gz2`` on real GZ2), and tagged with the git commit, the exact Kedro command, the
  environment and the runner's class name.
* Provenance: every saved curated dataset, expert bank and distilled set gets a sidecar
  ``mlflow_run.json`` with the id of the run that wrote it; a run that loads one of them tags
  itself ``consumed.<dataset> = <run id>`` and logs it as an MLflow dataset input.
* :func:`child_run` opens a nested run (compare: one per method / seed / lambda) and
  :func:`log_snapshot` logs the synthetic set as an image at each quick evaluation.
* ``python -m galaxy_distillation.tracking`` prints the runs table (:func:`runs_table`).

Everything here is a no-op without an active MLflow run, so nodes stay plain functions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from kedro.framework.hooks import hook_impl

from galaxy_distillation.logs import STAGES, StageHeaders

log = logging.getLogger(__name__)

#: The sidecar beside (or inside) a produced dataset naming the MLflow run that wrote it.
SIDECAR = "mlflow_run.json"

#: Datasets whose producing run is recorded (a sidecar is written when saved).
PRODUCED = ("model_input", "expert_trajectories", "distilled_set")

#: Datasets logged as MLflow dataset inputs when a run loads them (context = dataset name).
INPUTS = ("vote_catalogue", "filename_mapping", "model_input", "expert_trajectories", "distilled_set")

#: The experiment tag that makes MLflow 3's UI open the experiment on its training runs.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")

#: Pipelines whose name is followed by the variant, the compare slug or the expert slug.
_VARIANT_PIPELINES = {"__default__", "distill", "evaluation", "reporting", "benchmark", "insight"}


def _flag(value: Any) -> str:
    from galaxy_distillation.params import parse_flag

    try:
        return "aug" if parse_flag(value) else "plain"
    except ValueError:
        return "plain"


def run_name(pipeline_names: Sequence[str] | None, params: Mapping[str, Any], partial: str | None = None) -> str:
    """A distinct, meaningful run name from the selected pipelines and the run's variant.

    ``partial`` (e.g. ``"to labelled_catalog"``) is appended for runs cut with ``--to-outputs``,
    ``--nodes``... so a labels-only curation is not mistaken for a full one.
    """
    names = [n for n in (pipeline_names or []) if n] or ["__default__"]
    order = {stage: k for k, stage in enumerate(("__default__", *STAGES))}
    names = sorted(dict.fromkeys(names), key=lambda n: (order.get(n, len(order)), n))
    label = "+".join("all" if n == "__default__" else n for n in names)
    dataset = params.get("data_label") or params.get("dataset", "gz2")  # mock on the mock sky, gz2 on real GZ2
    if _VARIANT_PIPELINES & set(names):
        suffix = params.get("variant") or (
            f"{dataset}_{params.get('method')}_ipc{params.get('ipc')}_{params.get('init')}_{_flag(params.get('augmented'))}")
    elif "compare" in names:
        suffix = f"{dataset}_ipc{params.get('ipc')}_{_flag(params.get('augmented'))}"
    elif "teacher" in names:
        suffix = f"{dataset}_{_flag(params.get('augmented'))}"
    else:
        suffix = ""
    name = f"{label} {suffix}".strip()
    return f"{name} ({partial})" if partial else name


def partial_label(run_params: Mapping[str, Any]) -> str | None:
    """``"to X"``, ``"nodes X"``... for a run restricted by Kedro's slicing options, else None."""
    parts = []
    for key, word in (("to_outputs", "to"), ("node_names", "nodes"), ("from_nodes", "from"), ("to_nodes", "to"),
                      ("from_inputs", "from"), ("tags", "tags")):
        value = run_params.get(key)
        if value:
            parts.append(f"{word} {','.join(value) if isinstance(value, (list, tuple)) else value}")
    return "; ".join(parts) or None


def git_commit(path: str | Path) -> tuple[str, bool] | None:
    """(commit sha, working tree dirty?) of the git checkout holding ``path``; None outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None


def kedro_command(argv: Sequence[str] | None = None) -> str | None:
    """The command line as typed (``kedro run --pipelines=distill --params ipc=2``), if it was ``kedro``."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or Path(argv[0]).name not in {"kedro", "__main__.py"}:
        return None
    return shlex.join(["kedro", *argv[1:]])


def runner_name(runner: Any) -> str | None:
    """``SequentialRunner`` from a runner object, class or its repr (never a memory address)."""
    if runner is None:
        return None
    if not isinstance(runner, str):
        runner = type(runner).__name__ if not isinstance(runner, type) else runner.__name__
    match = re.search(r"([A-Za-z_]*Runner)", runner)
    return match.group(1) if match else runner


def dataset_location(description: Mapping[str, Any] | None) -> Path | None:
    """The local file or folder of a dataset from its ``_describe()`` (None if remote or unknown)."""
    if not description:
        return None
    if description.get("dataset") not in (None, "gz2"):  # a benchmark model input: not the curated folder
        return None
    for key in ("gz2_dir", "path", "filepath"):
        value = description.get(key)
        if value and "://" not in str(value):
            return Path(str(value))
    return None


def sidecar_path(location: Path) -> Path:
    """``<folder>/mlflow_run.json`` for a folder dataset, ``<file>.mlflow_run.json`` for a file."""
    return location / SIDECAR if location.is_dir() or not location.suffix else location.with_name(
        f"{location.name}.{SIDECAR}")


def write_provenance(location: Path, run_id: str, **extra: Any) -> Path:
    """Record that run ``run_id`` produced the dataset at ``location``."""
    path = sidecar_path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run_id": run_id, **extra}, indent=1, sort_keys=True))
    return path


def read_provenance(location: Path) -> dict[str, Any] | None:
    """The sidecar of the dataset at ``location`` (None when it has none or it is unreadable)."""
    path = sidecar_path(location)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("run_id") else None


def _active_run():
    import mlflow

    return mlflow.active_run()


@contextlib.contextmanager
def child_run(name: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A nested MLflow run named ``name`` under the active run (yields None without one)."""
    if _active_run() is None:
        yield None
        return
    import mlflow

    with mlflow.start_run(run_name=name, nested=True) as run:
        if params:
            mlflow.log_params({k: v for k, v in params.items() if v is not None and not (
                isinstance(v, float) and math.isnan(v))})
        yield run


def log_histories(metrics: Mapping[str, Sequence[Mapping[str, float]]]) -> int:
    """Metric histories (``{name: [{"step", "value"}, ...]}``, the format of the catalog's
    metric-history datasets) into the active run in one batch; the number of points logged."""
    run = _active_run()
    if run is None:
        return 0
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    points = [Metric(name, float(p["value"]), now, int(p["step"])) for name, history in metrics.items() for p in history
              if p.get("value") is not None and not math.isnan(float(p["value"]))]
    for start in range(0, len(points), 1000):  # MLflow's batch limit
        mlflow.MlflowClient().log_batch(run.info.run_id, metrics=points[start:start + 1000])
    return len(points)


def run_info() -> dict[str, str]:
    """``{"mlflow_run_id", "mlflow_run_name"}`` of the active run (``{}`` without one): what a
    distillation stores in its checkpoints, so a run that resumes them can name it."""
    run = _active_run()
    if run is None:
        return {}
    return {"mlflow_run_id": run.info.run_id, "mlflow_run_name": run.info.run_name or ""}


def set_tags(tags: Mapping[str, Any]) -> bool:
    """Tags on the active run (values as text; ``None`` left out); False without a run."""
    run = _active_run()
    if run is None:
        return False
    import mlflow

    mlflow.set_tags({k: str(v) for k, v in tags.items() if v is not None})
    return True


def log_curve(rows: Iterable[Mapping[str, Any]], keys: Sequence[str] = ("test_acc", "test_acc_std", "T", "loss",
                                                                        "val_loss", "lr")) -> int:
    """Log the per-iteration rows of one comparison run as metric histories of the active run,
    in batches (:func:`log_histories`: one request per 1000 points, not one per row); the
    number of rows with at least one value."""
    if _active_run() is None:
        return 0
    histories: dict[str, list[dict[str, float]]] = {k: [] for k in keys}
    n = 0
    for row in rows:
        step = int(row["iteration"])
        values = {k: float(row[k]) for k in keys if row.get(k) is not None and not math.isnan(float(row[k]))}
        for k, v in values.items():
            histories[k].append({"step": step, "value": v})
        n += bool(values)
    log_histories(histories)
    return n


def tile(images: torch.Tensor, labels: torch.Tensor, num_classes: int, scale: int = 4, pad: int = 2) -> np.ndarray:
    """Display images (N, C, H, W) float in [0, 1] as one uint8 (H, W, 3) array, one row per class."""
    x = images.detach().cpu().float().clamp(0, 1)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest") if scale > 1 else x
    per_class = max(int((labels == c).sum()) for c in range(num_classes))
    h, w = x.shape[2], x.shape[3]
    canvas = torch.ones(3, num_classes * (h + pad) + pad, max(per_class, 1) * (w + pad) + pad)
    for c in range(num_classes):
        for j, i in enumerate(torch.nonzero(labels.cpu() == c).flatten().tolist()):
            top, left = pad + c * (h + pad), pad + j * (w + pad)
            canvas[:, top:top + h, left:left + w] = x[i]
    return (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def log_snapshot(images: torch.Tensor, labels: torch.Tensor, num_classes: int, iteration: int,
                 key: str = "synthetic_set") -> bool:
    """Log the synthetic set (display colours) as an MLflow image at ``step=iteration``."""
    if _active_run() is None:
        return False
    import mlflow

    mlflow.log_image(tile(images, labels, num_classes), key=key, step=int(iteration))
    return True


def _dataset_input(name: str, location: Path, digest: str | None):
    from mlflow.data.meta_dataset import MetaDataset

    try:
        from mlflow.data.artifact_dataset_sources import LocalArtifactDatasetSource

        source = LocalArtifactDatasetSource(str(location.resolve()))
    except ImportError:  # pragma: no cover - older MLflow
        from mlflow.data.dataset_source_registry import resolve_dataset_source

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(str(location.resolve()))
    return MetaDataset(source=source, name=name, digest=digest)


class RunStoryHook:
    """Names, tags and links the MLflow run; logs a one-line header per stage."""

    def __init__(self) -> None:
        self._context = None
        self._catalog = None
        self._headers: StageHeaders | None = None
        self._logged_inputs: set[str] = set()

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:  # noqa: ANN001 - kedro's signature
        self._context = context
        for name in ("kedro_mlflow", "mlflow"):  # kedro-mlflow sets its logger to INFO at import
            logging.getLogger(name).setLevel(logging.WARNING)

    @hook_impl
    def after_catalog_created(self, catalog) -> None:  # noqa: ANN001
        self._catalog = catalog

    def _params(self) -> dict[str, Any]:
        try:
            return dict(self._context.params) if self._context is not None else {}
        except Exception:  # noqa: BLE001 - invalid params are reported by ParameterValidationHook
            return {}

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ANN001
        self._catalog = catalog
        self._logged_inputs = set()
        self._headers = StageHeaders(_stage_nodes(), [n.name for n in pipeline.nodes])
        run = _active_run()
        if run is None:
            return
        import mlflow

        params = self._params()
        names = run_params.get("pipeline_names") or ([run_params["pipeline_name"]] if run_params.get(
            "pipeline_name") else None)
        name = run_name(names, params, partial_label(run_params))
        tags = {"mlflow.runName": name, "kedro.env": run_params.get("env") or "local"}
        runner = runner_name(run_params.get("runner"))
        if runner:
            tags["runner"] = runner
        command = kedro_command()
        if command:
            tags["kedro_command"] = command
        commit = git_commit(run_params.get("project_path") or Path.cwd())
        if commit:
            tags["mlflow.source.git.commit"] = commit[0]
            tags["git.commit"] = commit[0]
            tags["git.dirty"] = str(commit[1]).lower()
        mlflow.set_tags(tags)
        _mark_training_experiment(run.info.experiment_id)
        log.info("MLflow run '%s' (%s): mlflow ui --backend-store-uri %s", name, run.info.run_id,
                 mlflow.get_tracking_uri())

    @hook_impl
    def before_node_run(self, node) -> None:  # noqa: ANN001
        if self._headers is not None:
            self._headers.enter(node.name)

    def _location(self, dataset_name: str) -> Path | None:
        if self._catalog is None:
            return None
        try:
            dataset = self._catalog.get(dataset_name)
            return dataset_location(dataset._describe()) if dataset is not None else None
        except Exception:  # noqa: BLE001 - provenance must never break a run
            return None

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:  # noqa: ANN001
        run = _active_run() if dataset_name in PRODUCED else None
        location = self._location(dataset_name) if run is not None else None
        if location is None or not location.exists():
            return
        write_provenance(location, run.info.run_id, dataset=dataset_name, run_name=run.info.run_name)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any) -> None:  # noqa: ANN001
        if dataset_name not in INPUTS or dataset_name in self._logged_inputs:
            return
        run = _active_run()
        location = self._location(dataset_name) if run is not None else None
        if location is None:
            return
        self._logged_inputs.add(dataset_name)
        import mlflow

        record = read_provenance(location) or {}
        producer = record.get("run_id")
        try:
            mlflow.log_input(_dataset_input(dataset_name, location, producer[:8] if producer else None),
                             context=dataset_name)
        except Exception as err:  # noqa: BLE001 - an input record must never break a run
            log.debug("could not log %s as an MLflow input: %s", dataset_name, err)
        if producer and producer != run.info.run_id:
            mlflow.set_tag(f"consumed.{dataset_name}", producer)


def _mark_training_experiment(experiment_id: str) -> None:
    """Tag the experiment as model training, so MLflow 3's UI opens on its runs, not on GenAI traces."""
    import mlflow

    try:
        experiment = mlflow.get_experiment(experiment_id)
        if experiment is not None and experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
            mlflow.set_experiment_tag(*EXPERIMENT_KIND)
    except Exception as err:  # noqa: BLE001 - cosmetic, never break a run
        log.debug("could not tag the experiment: %s", err)


#: The runs table's columns: (MLflow column, printed name).
RUNS_COLUMNS = (
    ("tags.mlflow.runName", "run"), ("start_time", "started"), ("status", "status"),
    ("tags.result.data", "data"), ("tags.result.method", "method"), ("tags.result.ipc", "IPC"),
    ("tags.result.init", "init"), ("tags.result.iterations", "iterations (stop)"), ("tags.result.experts", "experts"),
    ("tags.result.eval_protocol", "evaluation"),
    ("metrics.eval.distilled_acc_mean", "distilled %"), ("metrics.eval.random_acc_mean", "random %"),
    ("metrics.eval.full_acc_mean", "full %"), ("metrics.compare.stm_final_acc_mean", "compare STM %"),
    ("metrics.compare.mtt_final_acc_mean", "compare MTT %"), ("tags.git.commit", "commit"),
    ("tags.consumed.expert_trajectories", "experts from"), ("tags.resumed_from.run_id", "resumed run"),
    ("tags.result.budget_vs_paper", "vs the paper's budget"), ("run_id", "run id"),
)


def runs_table(tracking_uri: str = "sqlite:///mlflow.db", experiment: str = "galaxy_distillation") -> pd.DataFrame:
    """Every run of the experiment, newest first, with what makes its numbers comparable (data
    ``mock``/``gz2``, method, IPC, init, iterations and stop reason, experts, evaluation
    protocol, budget vs the paper's: the ``result.*`` tags), the key metrics, and the run a
    resumed distillation continued (also in the UI)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=[experiment], order_by=["start_time DESC"])
    table = pd.DataFrame({name: runs[col] if col in runs else None for col, name in RUNS_COLUMNS})
    for name in ("commit", "experts from", "resumed run", "run id"):
        table[name] = table[name].map(lambda v: v[:8] if isinstance(v, str) else "")
    table["started"] = pd.to_datetime(table["started"]).dt.strftime("%Y-%m-%d %H:%M")
    return table.round(1)


def _stage_nodes() -> dict[str, list[str]]:
    """Node names of each stage pipeline (loaded from the project's registry)."""
    from kedro.framework.project import pipelines

    stages: dict[str, list[str]] = {}
    for stage in STAGES:
        try:
            stages[stage] = [n.name for n in pipelines[stage].nodes]
        except Exception:  # noqa: BLE001 - a stage missing from the registry has no header
            continue
    return stages


if __name__ == "__main__":  # python -m galaxy_distillation.tracking [TRACKING_URI]: the runs table
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 48):
        print(runs_table(*sys.argv[1:2]).to_string(index=False))
