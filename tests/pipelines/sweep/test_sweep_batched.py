"""``sweep.batched``: the cells of a shape group distil as ONE BatchedDistiller task, each cell
keeping its own result key, files, skip and evaluation; the numbers are those of the unbatched
sweep (float32 here: to a tolerance that a swapped pair of cells fails).

Each run is the Table 2 sweep pipeline itself (``create_sweep_pipeline("table2")``, IPC 1: one
group of 4 cells, real/noise init x plain/aug training set) run by Kedro's ``SequentialRunner``
on a catalog of the same dataset types as ``catalog.yml``, with tiny images and few iterations.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from galaxy_distillation.datasets import ExpertInventoryDataset
from galaxy_distillation.engine import BatchedDistiller
from galaxy_distillation.params import ComputeParams, SweepParams
from galaxy_distillation.pipelines.sweep import batched as batched_module
from galaxy_distillation.pipelines.sweep.cells import cells, shape_groups, sweep_cells, sweep_groups
from galaxy_distillation.pipelines.sweep.datasets import OptionalDataset, SweepExpertsDataset
from galaxy_distillation.pipelines.sweep.pipeline import create_sweep_pipeline

TABLE = "table2"
GROUP = [c for c in cells(TABLE) if c.ipc == 1]  # the shape group stm_ipc1
TOL = 1e-4  # float32: batched kernels sum in another order


class Spy(BatchedDistiller):
    """Records every BatchedDistiller a sweep makes and the group sizes of each of its steps."""

    made: list[Spy] = []

    def __init__(self, distillers, **kwargs):
        super().__init__(distillers, **kwargs)
        self.steps: list[list[int]] = []
        Spy.made.append(self)

    def step(self):
        self.steps.append([len(g) for g in self.groups()])
        return super().step()


def _optional(kind: str, path: Path) -> OptionalDataset:
    return OptionalDataset({"type": kind, "filepath": str(path)})


def _catalog(root: Path, experts: Path, model_inputs: dict, params: dict) -> DataCatalog:
    """The sweep's datasets as ``catalog.yml`` makes them, under ``root`` (experts under ``experts``)."""
    data: dict = {}
    for flag, model_input in model_inputs.items():
        data[f"{flag}.model_input"] = MemoryDataset(model_input, copy_mode="assign")
        data[f"{flag}.expert_trajectories"] = SweepExpertsDataset(str(experts / flag))
        data[f"{flag}.expert_inventory"] = ExpertInventoryDataset(str(experts / flag))
        for name in ("full_baseline", "full_previous"):
            data[f"{flag}.{name}"] = _optional("json.JSONDataset", root / f"full_{flag}.json")
    for c in cells(TABLE):
        folder = root / c.name
        for name, kind, file in (("distilled", "galaxy_distillation.datasets.TensorDictDataset", "distilled.safetensors"),
                                 ("history", "pandas.CSVDataset", "history.csv"),
                                 ("evaluation", "json.JSONDataset", "evaluation.json")):
            current = {"distilled": "distilled_set", "history": "distill_history",
                       "evaluation": "evaluation_results"}[name]
            data[f"{c.name}.{current}"] = _optional(kind, folder / file)
            data[f"{c.name}.{name}_previous"] = _optional(kind, folder / file)
    catalog = DataCatalog(data)
    for name in create_sweep_pipeline(TABLE).inputs():
        if name.startswith("params:"):
            value = params
            for part in name.removeprefix("params:").split("."):
                value = value[part]
            catalog[name] = MemoryDataset(value, copy_mode="assign")
    return catalog


def _sweep(root: Path, experts: Path, model_inputs: dict, tiny_params: dict, batched: bool) -> dict:
    """One ``kedro run --pipelines=table2`` (IPC 1) into ``root``; each cell's outputs as saved."""
    distill = tiny_params["distill"].model_copy(update={"checkpoint_root": str(root / "ckpt"), "expert_epochs": 1})
    params = {"distill": distill, "evaluation": tiny_params["evaluation"], "model": tiny_params["model"],
              "teacher": tiny_params["teacher"], "dataset": "imagefolder", "sweep": SweepParams(ipcs=[1], batched=batched),
              "device": "cpu", "progress": False, "compute": ComputeParams(), "data_root": "", "data_label": "tiny",
              "sweep_cells": sweep_cells(), "sweep_groups": sweep_groups()}
    catalog = _catalog(root, experts, model_inputs, params)
    SequentialRunner().run(create_sweep_pipeline(TABLE), catalog)
    return {c.name: {"set": catalog.load(f"{c.name}.distilled_previous"),
                     "history": catalog.load(f"{c.name}.history_previous"),
                     "evaluation": catalog.load(f"{c.name}.evaluation_previous")} for c in GROUP}


def _close(a: dict, b: dict) -> bool:
    """Whether two cells' results agree to :data:`TOL` (images, step size, losses, accuracy)."""
    return (torch.allclose(a["set"]["images"], b["set"]["images"], atol=TOL, rtol=TOL)
            and abs(a["set"]["meta"]["lr"] - b["set"]["meta"]["lr"]) <= TOL * max(1.0, abs(a["set"]["meta"]["lr"]))
            and bool(((a["history"]["loss"] - b["history"]["loss"]).abs() <= TOL * (1 + b["history"]["loss"].abs())).all())
            and abs(a["evaluation"]["distilled_acc_mean"] - b["evaluation"]["distilled_acc_mean"]) <= 1e-3)


@pytest.fixture(scope="module")
def runs(tiny_model_input, tiny_params, tmp_path_factory):
    """The unbatched sweep, then the batched one (own outputs and checkpoints, the same experts)."""
    root = tmp_path_factory.mktemp("sweep")
    aug = {**tiny_model_input, "train_x": tiny_model_input["train_x"].flip(-1)}  # another training set, same shape
    inputs = {"plain": tiny_model_input, "aug": aug}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(batched_module, "BatchedDistiller", Spy)
        Spy.made = []
        plain = _sweep(root / "unbatched", root / "experts", inputs, tiny_params, batched=False)
        unbatched_spies = list(Spy.made)
        Spy.made = []
        batched = _sweep(root / "batched", root / "experts", inputs, tiny_params, batched=True)
        batched_spies = list(Spy.made)
    return {"root": root, "inputs": inputs, "plain": plain, "batched": batched,
            "spies": {"unbatched": unbatched_spies, "batched": batched_spies}}


def test_table2_has_two_shape_groups_of_four_and_the_other_tables_none():
    assert {k: [c.name for c in v] for k, v in shape_groups(TABLE).items()} == {
        f"stm_ipc{i}": [f"stm_ipc{i}_{init}_{flag}" for flag in ("plain", "aug") for init in ("real", "noise")]
        for i in (1, 10)}
    assert shape_groups("table") == {} and shape_groups("table1") == {}
    names = {n.name for n in create_sweep_pipeline(TABLE).nodes}
    assert {"stm_ipc1_real_plain.distill_batched", "stm_ipc10_real_plain.distill_batched"} <= names
    assert not any(n.endswith("distill_batched") for t in ("table", "table1") for n in
                   {m.name for m in create_sweep_pipeline(t).nodes})
    for node in create_sweep_pipeline(TABLE).nodes:  # each cell reads its own group's node
        if node.name.endswith(".distill"):
            leader = next(g[0] for g in shape_groups(TABLE).values() if node.namespace in [c.name for c in g])
            assert node.inputs[-1] == f"{leader.name}.batched_distillations", node.name


def test_batched_sweep_gives_each_cell_the_results_of_the_unbatched_sweep(runs):
    plain, batched = runs["plain"], runs["batched"]
    for c in GROUP:
        assert _close(batched[c.name], plain[c.name]), c.name
        assert batched[c.name]["set"]["meta"]["cell_key"] == plain[c.name]["set"]["meta"]["cell_key"]
        assert batched[c.name]["evaluation"]["cell_key"] == plain[c.name]["evaluation"]["cell_key"]
        assert batched[c.name]["set"]["meta"]["variant"] == f"tiny_{c.name}"
    # the tolerance tells the cells apart: any other pairing fails it
    for a in GROUP:
        for b in GROUP:
            if a != b:
                assert not _close(batched[a.name], plain[b.name]), (a.name, b.name)
    # each cell wrote its own checkpoint (a rerun of either kind resumes it)
    for c in GROUP:
        assert (runs["root"] / "batched" / "ckpt" / f"tiny_{c.name}").is_dir()


def test_the_batched_cells_advance_as_one_batched_distiller_and_the_default_makes_none(runs):
    assert runs["spies"]["unbatched"] == []  # the default: each cell its own Distiller.run
    (spy,) = runs["spies"]["batched"]  # IPC 10 is not selected: its group computes nothing
    assert len(spy.runs) == len(GROUP)
    assert spy.steps and spy.steps[0] == [len(GROUP)]  # all four in one program
    assert all(sum(sizes) <= len(GROUP) for sizes in spy.steps)


def test_a_finished_cell_is_reused_while_its_siblings_are_batched(runs, tiny_params, monkeypatch, caplog):
    root, done = runs["root"], GROUP[1]
    shutil.copytree(root / "unbatched" / done.name, root / "again" / done.name)  # its result exists already
    monkeypatch.setattr(batched_module, "BatchedDistiller", Spy)
    Spy.made = []
    caplog.set_level(logging.INFO)
    again = _sweep(root / "again", root / "experts", runs["inputs"], tiny_params, batched=True)
    (spy,) = Spy.made
    assert len(spy.runs) == len(GROUP) - 1 and spy.steps[0] == [len(GROUP) - 1]
    assert f"{done.name}: distilled set finished, skipped" in caplog.text
    assert f"{done.name}: evaluation finished, skipped" in caplog.text
    assert torch.equal(again[done.name]["set"]["images"], runs["plain"][done.name]["set"]["images"])  # reused as is
    assert not (root / "again" / "ckpt" / f"tiny_{done.name}").exists()  # never recomputed
    for c in GROUP:
        assert _close(again[c.name], runs["plain"][c.name]), c.name


def test_a_stop_request_saves_every_cells_checkpoint_and_a_rerun_resumes_them(runs, tiny_params, monkeypatch):
    """Asked to stop during the 3rd iteration (between periodic checkpoints, every 2): every cell of
    the group saves its checkpoint at iteration 3 before the task stops; a rerun resumes each
    there and ends with the numbers of an uninterrupted run."""
    from galaxy_distillation.compute import Stopped

    root = runs["root"] / "stopped"
    asked = iter([False] * (2 * len(GROUP)) + [True] * 100)  # one call per cell per iteration
    monkeypatch.setattr(batched_module, "stop_requested", lambda: next(asked))
    with pytest.raises(Stopped, match="each cell's checkpoint resumes it"):
        _sweep(root, runs["root"] / "experts", runs["inputs"], tiny_params, batched=True)
    monkeypatch.setattr(batched_module, "stop_requested", lambda: False)
    again = _sweep(root, runs["root"] / "experts", runs["inputs"], tiny_params, batched=True)
    for c in GROUP:
        assert again[c.name]["set"]["meta"]["resumed_from"]["iteration"] == 3, c.name
        assert _close(again[c.name], runs["plain"][c.name]), c.name


def test_the_groups_parameter_reads_the_code_and_setting_it_is_refused():
    from test_sweep_pipeline import _param, _params

    from galaxy_distillation.hooks import refuse_ignored
    from galaxy_distillation.params import ParameterError

    params = _params("paper")
    assert params["sweep_groups"] == sweep_groups() and params["sweep"]["batched"] is False
    for node in create_sweep_pipeline(TABLE).nodes:
        for name in (i for i in node.inputs if i.startswith("params:")):
            _param(params, name)  # KeyError: a parameter the node would miss
    with pytest.raises(ParameterError, match="'sweep_groups.table2.stm_ipc1' = 3: does nothing"):
        refuse_ignored({"sweep_groups.table2.stm_ipc1": 3}, {"dataset": "gz2"})


def test_preflight_counts_a_groups_node_as_its_cells_never_as_the_runs_own_method_and_ipc():
    """The group node reads ``params:distill``: in its leader's namespace, preflight (start epochs,
    ``teacher.epochs: reach``) counts the group's method and IPC, not the top-level ``method``/``ipc``."""
    from galaxy_distillation.preflight.checks import _distill_cells

    pipe = create_sweep_pipeline(TABLE)
    assert _distill_cells({"method": "mtt", "ipc": 50, "sweep": {"ipcs": [10]}}, pipe) == [("stm", 10)]
    assert _distill_cells({"method": "mtt", "ipc": 50, "sweep": {}}, pipe) == [("stm", 1), ("stm", 10)]


def test_a_group_too_big_for_the_device_is_refused_before_any_distiller_starts(monkeypatch, tiny_params,
                                                                                 tiny_model_input):
    """The group holds every cell's unroll at once: its memory is checked as a whole, first."""
    import galaxy_distillation.pipelines.distill.nodes as distill_nodes
    from galaxy_distillation.engine import resources
    from galaxy_distillation.engine.resources import ResourceError
    from galaxy_distillation.pipelines.prepare.nodes import prepare
    from galaxy_distillation.pipelines.sweep.cells import Cell

    class Bank:
        num_params, num_epochs = 5_000, 3

    def no_compute(*args, **kwargs):
        raise AssertionError("no distiller may start")

    monkeypatch.setattr(distill_nodes, "Distiller", no_compute)
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    one = resources.estimate_distill_bytes(1, data.num_classes, tuple(data.train_x.shape[1:]), Bank.num_params,
                                           tiny_params["distill"].syn_steps, Bank.num_epochs)
    monkeypatch.setattr(batched_module, "check_fits", lambda e, d: resources.check_fits(e, d, 3 * one.total))
    runs = [batched_module.GroupRun(0, Bank(), Cell("stm", 1, init, False), f"v{init}") for init in ("real", "noise")]
    args = (tiny_params["distill"], tiny_params["evaluation"], tiny_params["model"], "cpu", False, "imagefolder")
    with pytest.raises(AssertionError, match="no distiller may start"):  # 2 x one fits: the distillers are built
        batched_module.distill_group_task(data, runs, *args)
    with pytest.raises(ResourceError):  # 4 x one does not, though each run alone would
        batched_module.distill_group_task(data, runs + runs, *args)
