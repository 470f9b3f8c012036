"""``teacher.epochs: reach``: resolved before any node to the highest expert epoch distillation reads."""

from __future__ import annotations

import logging
import re

import pytest

from galaxy_distillation.errors import ParameterError
from galaxy_distillation.params import DistillParams, TeacherParams
from galaxy_distillation.reach import epochs_read, reach_epochs, resolve_reach


def _params(method: str = "mtt", ipc: int = 1, dataset: str = "gz2", **distill) -> dict:
    return {"dataset": dataset, "method": method, "ipc": ipc, "teacher": TeacherParams(epochs="reach"),
            "distill": DistillParams(**distill)}


def test_reach_is_the_last_row_distillation_reads():
    # MTT: start in [0, max_start_epoch), target row start + expert_epochs
    assert epochs_read("mtt", {"max_start_epoch": 20, "expert_epochs": 2}) == 21
    assert epochs_read("mtt", {"max_start_epoch": 1, "expert_epochs": 1}) == 1
    # STM: T <= max_start_epoch, validation reads rows T and T + 1
    assert epochs_read("stm", {"max_start_epoch": 29, "expert_epochs": 1}) == 30


def test_reach_from_the_presets():
    preset = dict(max_start_epoch="preset", expert_epochs="preset")
    assert reach_epochs(_params("mtt", 1, **preset), []) == (21, {("mtt", 1): 21})  # MTT GZ2: 20 - 1 + 2
    assert reach_epochs(_params("mtt", 1, "cifar10", **preset), [])[0] == 3  # MTT CIFAR-10 IPC 1: 2 - 1 + 2
    assert reach_epochs(_params("mtt", 50, "cifar10", **preset), [])[0] == 41  # 40 - 1 + 2
    assert reach_epochs(_params("stm", 10, **preset), [])[0] == 30  # code schedule: T cap 29, T + 1 read
    assert reach_epochs(_params("stm", 1, schedule="paper", **preset), [])[0] == 51  # paper: T cap 50
    assert reach_epochs(_params("stm", 1, max_start_epoch=7), [])[0] == 8  # explicit values win
    with pytest.raises(ParameterError, match="no published MTT setting for dataset=imagefolder"):
        reach_epochs(_params("mtt", 1, "imagefolder", **preset), [])


def test_a_sweep_takes_the_largest_reach_of_its_cells():
    from galaxy_distillation.pipelines.table.pipeline import create_pipeline as table
    from galaxy_distillation.pipelines.table2.pipeline import create_pipeline as table2
    from galaxy_distillation.preflight.checks import _distill_cells

    params = {**_params("stm", 1, max_start_epoch="preset", expert_epochs="preset"), "sweep": {}}
    epochs, per_cell = reach_epochs(params, _distill_cells(params, table()))
    assert per_cell == {("mtt", 1): 21, ("mtt", 10): 21, ("stm", 1): 30, ("stm", 10): 30} and epochs == 30
    only_mtt = {**params, "sweep": {"methods": ["mtt"]}}
    assert reach_epochs(only_mtt, _distill_cells(only_mtt, table()))[0] == 21
    paper = {**params, "distill": DistillParams(max_start_epoch="preset", schedule="paper")}
    assert reach_epochs(paper, _distill_cells(paper, table2()))[0] == 51


def test_preflight_resolves_reach_logs_one_line_and_no_longer_refuses(caplog):
    """Before: check_epochs read ``int('reach')``; a number below the reach is still refused."""
    from kedro.io import DataCatalog

    from galaxy_distillation.pipelines.table.pipeline import create_pipeline
    from galaxy_distillation.preflight.checks import check_epochs, check_run

    params = {**_params("stm", 1, max_start_epoch="preset", expert_epochs="preset"), "sweep": {}}
    catalog = DataCatalog()
    catalog["params:teacher"] = params["teacher"]
    catalog["params:teacher.epochs"] = "reach"
    with caplog.at_level(logging.INFO, logger="galaxy_distillation.reach"):
        resolved = resolve_reach(params, [("mtt", 1), ("stm", 10)], catalog)
    (line,) = [r.getMessage() for r in caplog.records if "teacher.epochs reach" in r.getMessage()]
    assert line == ("teacher.epochs reach -> 30 (the highest expert epoch distillation reads; mtt ipc 1: 21, "
                    "stm ipc 10: 30)")
    assert resolved["teacher"] == TeacherParams(epochs=30) and params["teacher"].epochs == "reach"
    assert catalog.load("params:teacher") == TeacherParams(epochs=30) and catalog.load("params:teacher.epochs") == 30
    check_epochs(resolved, create_pipeline())  # fits every cell of the table
    with pytest.raises(ParameterError, match="needs 21 expert epochs but teacher.epochs = 20"):
        check_epochs({**resolved, "teacher": TeacherParams(epochs=20)}, create_pipeline())
    # through check_run (the hook's entry): the catalog's params:teacher is resolved before any node
    catalog = DataCatalog()
    catalog["params:teacher"] = params["teacher"]
    check_run({**params, "teacher": params["teacher"].model_dump(), "storage_root": "data"},
              create_pipeline().only_nodes_with_namespaces(["mtt_ipc1_real_plain"]), catalog)
    assert catalog.load("params:teacher").epochs == 21
    assert resolve_reach({**params, "teacher": TeacherParams(epochs=4)}, [])["teacher"].epochs == 4  # numbers stay


def test_an_unresolved_reach_never_reaches_the_engine():
    with pytest.raises(ParameterError, match="teacher.epochs 'reach' is resolved before the run"):
        TeacherParams(epochs="reach").engine_config(__import__("galaxy_distillation.params").params.ArchParams())
    with pytest.raises(ValueError, match="epochs"):
        TeacherParams(epochs="auto")


def test_a_teacher_run_with_reach_trains_exactly_that_many_epochs(tmp_path):
    """kedro run: the resolved line is logged and the experts have the reach's epochs (MTT 2 - 1 + 2 = 3)."""
    from _project import copy_project
    from galaxy_distillation.datasources.synthetic_folder import make_toy_image_folder
    from test_preflight import kedro_run

    folder = make_toy_image_folder(tmp_path / "shapes", n_classes=3, n_per_class=6, size=12, seed=0)
    (tmp_path / "project").mkdir()
    project = copy_project(tmp_path / "project")
    given = (f"dataset=imagefolder,data_root={folder},method=mtt,teacher.epochs=reach,teacher.n_experts=1,"
             "teacher.batch_size=8,distill.max_start_epoch=2,distill.expert_epochs=2,model.width=8")
    proc = kedro_run(project, "--pipelines=teacher", "--params", given)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "teacher.epochs reach -> 3 (the highest expert epoch distillation reads; mtt ipc 1: 3)" in proc.stderr
    assert re.search(r"expert 1/1: test accuracy [0-9.]+% after 3 epochs", proc.stderr), proc.stderr[-3000:]
    # the distillation of the same parameters finds that bank (its key holds the resolved epochs)
    proc = kedro_run(project, "--pipelines=distill", "--params",
                     given + ",distill.iterations=1,distill.syn_steps=2,distill.test_every=1,evaluation.epochs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "teacher.epochs reach -> 3" in proc.stderr
