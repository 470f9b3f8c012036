"""Faults and bad input through the real ``kedro run`` (issue 11): a missing environment, an
unknown parameter and a missing input each fail with one line, before (or without) compute,
without a traceback, and leave MLflow consistent. A bare copy of the project's configuration
(no data) is enough: nothing here gets as far as rendering or training."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _project import copy_project

ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))
PREFIX = "galaxy-distillation: "


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("bare"))


def kedro_run(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg",
           "PYTHONWARNINGS": "ignore"}
    env.pop("GD_VERBOSE", None)
    return subprocess.run([KEDRO, "run", *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)


def ours(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith(PREFIX)]


def runs(project: Path):
    import mlflow

    if not (project / "mlflow.db").exists():
        return []
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return mlflow.search_runs(search_all_experiments=True).to_dict("records")


def test_a_missing_environment_is_named_before_any_hook_runs(bare):
    proc = kedro_run(bare, "--env", "nonexistent")
    assert proc.returncode == 1
    assert len(ours(proc)) == 1 and "environment 'nonexistent' not found" in ours(proc)[0]
    assert "available environments: base, cifar10, local, paper" in ours(proc)[0]
    assert "Traceback" not in proc.stderr
    assert not (bare / "mlflow.db").exists()  # kedro-mlflow's hook never ran


def test_a_missing_input_is_one_line_and_its_mlflow_run_failed(bare):
    proc = kedro_run(bare, "--pipelines=curation", "--params", "votes_path=data/01_raw/nowhere.csv")
    assert proc.returncode == 1
    (line,) = ours(proc)
    assert "vote catalogue not found: " in line and line.endswith("data/01_raw/nowhere.csv")
    assert "Traceback" not in proc.stderr and "--verbose" in proc.stderr
    assert [r["status"] for r in runs(bare)] == ["FAILED"]


def test_an_unknown_parameter_is_refused_before_any_mlflow_run(bare):
    """(``foo=1``, with no close name, is checked in process: test_reliability.py.)"""
    before = [r["status"] for r in runs(bare)]
    proc = kedro_run(bare, "--pipelines=distill", "--params", "ipcc=2")
    assert proc.returncode == 2
    (line,) = ours(proc)
    assert line == f"{PREFIX}invalid parameter 'ipcc' = 2: unknown parameter; did you mean 'ipc'?"
    assert "Traceback" not in proc.stderr
    assert [r["status"] for r in runs(bare)] == before  # no MLflow run was created
