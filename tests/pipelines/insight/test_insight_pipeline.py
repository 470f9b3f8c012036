"""The insight pipeline on a tiny curated set and distilled set, through Kedro's runner with the
project's dataset types: the report folder, the claims, and the real galaxies' cache reused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from _galaxies import curated_set, params
from galaxy_distillation.insight_dataset import ReportFolderDataset
from galaxy_distillation.params import TeacherParams
from galaxy_distillation.pipelines.insight import create_pipeline
from galaxy_distillation.pipelines.insight import nodes as insight_nodes
from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.sweep.datasets import OptionalDataset

NAMES = [f"class {k}" for k in range(9)]


def _model_input(seed: int) -> dict:
    x, y = curated_set(4, 32, seed)
    x = torch.from_numpy(x)
    y = torch.from_numpy(y)
    train = np.arange(len(y)) % 4 != 3
    mean = (x[torch.from_numpy(train)].float() / 255).mean(dim=(0, 2, 3)).tolist()
    std = (x[torch.from_numpy(train)].float() / 255).std(dim=(0, 2, 3)).tolist()
    return {"train_x": x[train], "train_y": y[train], "test_x": x[~train], "test_y": y[~train], "class_names": NAMES,
            "mean": mean, "std": std, "name": "gz2", "augmented": False}


def _catalog(root: Path, model_input: dict, distilled: dict, transform: dict) -> DataCatalog:
    parquet = {"type": "pandas.ParquetDataset", "filepath": str(root / "insight_real_diagnostics.parquet")}
    from kedro.io.core import AbstractDataset

    return DataCatalog({
        "insight_real_input": MemoryDataset(model_input, copy_mode="assign"),
        "insight_real_previous": OptionalDataset(parquet),
        "insight_real_diagnostics": AbstractDataset.from_config("insight_real_diagnostics", dict(parquet)),
        "insight_report": ReportFolderDataset(str(root / "insight_v")),
        "all_insight_summaries": OptionalDataset({
            "type": "partitions.PartitionedDataset", "path": str(root), "dataset": "json.JSONDataset",
            "filename_suffix": "/summary.json"}),
        "insight_metrics": MemoryDataset(),
        "distilled_set": MemoryDataset(distilled, copy_mode="assign"),
        "data_transform": MemoryDataset(transform, copy_mode="assign"),
        "params:insight": MemoryDataset(params(statmorph=False, n_bootstrap=50, n_workers=1, progress=False),
                                        copy_mode="assign"),
        "params:variant": MemoryDataset("v"), "params:dataset": MemoryDataset("gz2"),
        "params:method": MemoryDataset("stm"), "params:ipc": MemoryDataset(1), "params:init": MemoryDataset("real"),
        "params:augmented": MemoryDataset(False),
    })


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("insight")
    model_input = _model_input(seed=5)
    data, transform = prepare(model_input, TeacherParams(zca=False))
    first = np.array([int(np.flatnonzero(data.train_y.numpy() == k)[0]) for k in range(9)])
    start = data.train_x[first]
    distilled = {"images": start + 0.05 * torch.randn(start.shape, generator=torch.Generator().manual_seed(0)),
                 "labels": data.train_y[first], "initial_images": start.clone(),
                 "meta": {"variant": "v", "method": "stm", "ipc": 1, "init": "real"}}
    SequentialRunner().run(create_pipeline(), _catalog(root, model_input, distilled, transform))
    return root, model_input, distilled, transform


def test_the_report_folder_has_every_file(run):
    root = run[0]
    folder = root / "insight_v"
    names = {p.name for p in folder.iterdir()}
    assert {"diagnostics.csv", "claims.csv", "report.md", "summary.json", "heatmap.png"} <= names
    assert {f"card_class{k}.png" for k in range(9)} <= names
    table = pd.read_csv(folder / "diagnostics.csv")
    for column in ("class", "prototype", "diagnostic", "value", "initial_value", "real_median", "percentile",
                   "pct_lo", "pct_hi", "z", "flags", "q_value", "stability_spread", "clamped_percentile"):
        assert column in table.columns, column
    assert len(table) == 9 * table["diagnostic"].nunique()
    verdicts = pd.read_csv(folder / "claims.csv").set_index("claim")
    assert set(verdicts["verdict"]) <= {"supported", "exaggerated", "not supported", "not measurable"}
    assert verdicts.loc["smooth_core_no_bar", "verdict"] == "not measurable"  # 32 px
    assert "statmorph switched off" in verdicts.loc["floral_asymmetry", "evidence"]
    assert verdicts.loc["bluer_spirals", "verdict"] != "not measurable"
    assert "## Caveats" in (folder / "report.md").read_text()
    assert json.loads((folder / "summary.json").read_text())["ipc"] == 1


def test_a_second_run_reuses_the_real_galaxies_and_a_new_curated_set_does_not(run, tmp_path, monkeypatch):
    root, model_input, distilled, transform = run
    cache = root / "insight_real_diagnostics.parquet"
    reference_sky = insight_nodes.analyse.reference_sky
    before = pd.read_parquet(cache)

    def refuse(*args, **kwargs):
        raise AssertionError("the real galaxies were measured again")

    monkeypatch.setattr(insight_nodes.analyse, "reference_sky", refuse)
    for name in ("card", "heatmap"):  # drawn above; here only the cache matters
        monkeypatch.setattr(insight_nodes.figures, name, lambda *a, **k: Figure(figsize=(1, 1)))
    SequentialRunner().run(create_pipeline(), _catalog(root, model_input, distilled, transform))
    pd.testing.assert_frame_equal(pd.read_parquet(cache), before)
    monkeypatch.setattr(insight_nodes.analyse, "reference_sky", reference_sky)
    other = _model_input(seed=6)
    SequentialRunner().run(create_pipeline(), _catalog(root, other, distilled, transform))
    assert pd.read_parquet(cache)["fingerprint"].iloc[0] != before["fingerprint"].iloc[0]
