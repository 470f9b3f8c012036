"""The sweep pipelines' wiring: plain module-level node functions given their cell as a
parameter that comes from the one list of cells (``cells.TABLES``), readable node names, one
cell's distill node selectable alone (``kedro run --pipelines=table --nodes=...``)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from galaxy_distillation.pipelines.sweep.cells import TABLES, Cell, cell_of, cell_params, cells, groups, sweep_cells
from galaxy_distillation.pipelines.sweep.pipeline import create_sweep_pipeline
from galaxy_distillation.settings import CONFIG_LOADER_ARGS

CONF = Path(__file__).resolve().parents[3] / "conf"


def _params(env: str = "local") -> dict:
    args = {k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"}
    return OmegaConfigLoader(conf_source=str(CONF), default_run_env=env, **args)["parameters"]


def _param(params: dict, name: str):
    """The value Kedro gives ``params:a.b.c`` (its nested-parameter lookup)."""
    value = params
    for part in name.removeprefix("params:").split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_sweep_node_is_a_plain_module_level_function_with_a_readable_name(table):
    pipe = create_sweep_pipeline(table)
    names = {n.name for n in pipe.nodes}
    expected = {f"{f}.{s}" for f in groups(table) for s in ("prepare", "teacher", "full_baseline")}
    expected |= {f"{c.name}.{s}" for c in cells(table) for s in ("distill", "evaluate")} | {f"{table}.results_table"}
    assert expected <= names, sorted(expected - names)
    for n in pipe.nodes:
        func = n.func
        assert inspect.isfunction(func) and func.__closure__ is None, n.name
        assert "<locals>" not in func.__qualname__ and func.__qualname__ == func.__name__, n.name
        assert getattr(importlib.import_module(func.__module__), func.__name__) is func, n.name  # picklable by name
    funcs = {n.name.rsplit(".", 1)[1]: n.func.__name__ for n in pipe.nodes}
    assert (funcs["distill"], funcs["evaluate"], funcs["results_table"]) == (
        "distill_cell", "evaluate_cell", "results_table_node")


@pytest.mark.parametrize("table", sorted(TABLES))
def test_each_cell_node_is_given_its_own_cell_from_the_one_list_of_cells(table):
    params = _params("paper" if table == "table2" else "local")
    assert params["sweep_cells"] == sweep_cells()  # the YAML reads the code; it holds no copy
    pipe = create_sweep_pipeline(table)
    for n in pipe.nodes:
        given = [i for i in n.inputs if i.startswith("params:sweep_cells.")]
        if n.name.endswith((".distill", ".evaluate")):
            assert given == [f"params:sweep_cells.{table}.{n.namespace}"], n.name
            this_table, cell = cell_of(_param(params, given[0]))
            assert (this_table, cell.name) == (table, n.namespace)
        elif n.name.endswith(".results_table"):
            assert given == [f"params:sweep_cells.{table}"]
            assert list(_param(params, given[0])) == [c.name for c in cells(table)]  # the results' order
        else:
            assert given == [], n.name


def test_kedro_nodes_selects_one_cells_distill_node_with_every_input_it_reads():
    """What ``kedro run --pipelines=table --nodes=stm_ipc1_real_plain.distill`` selects: that node
    alone; its inputs are its training set's datasets, its own views and parameters that exist."""
    from galaxy_distillation.pipelines.table.pipeline import create_pipeline

    one = create_pipeline().only_nodes("stm_ipc1_real_plain.distill")
    assert [n.name for n in one.nodes] == ["stm_ipc1_real_plain.distill"]
    params = _params()
    inputs = one.inputs()
    assert {"plain.prepared_data", "plain.expert_trajectories", "stm_ipc1_real_plain.distilled_previous",
            "stm_ipc1_real_plain.history_previous"} <= inputs
    for name in (i for i in inputs if i.startswith("params:")):
        _param(params, name)  # KeyError: a parameter the node would miss
    assert _param(params, "params:sweep_cells.table.stm_ipc1_real_plain") == cell_params("table", Cell("stm", 1, "real", False))
    assert one.outputs() == {"stm_ipc1_real_plain.distilled_set", "stm_ipc1_real_plain.distill_history"}
    # its training set is in memory: --to-nodes runs it with what it needs and no other cell
    upto = create_pipeline().to_nodes("stm_ipc1_real_plain.distill")
    assert {n.name for n in upto.nodes} == {"plain.prepare", "plain.teacher", "stm_ipc1_real_plain.distill"}


def test_a_cell_not_in_the_tables_is_refused_in_one_line():
    with pytest.raises(KeyError, match="is not a cell of") as err:
        cell_of({"table": "table", "method": "stm", "ipc": 50, "init": "real", "augmented": False})
    assert "\n" not in str(err.value)
    with pytest.raises(KeyError, match="is not a cell of"):
        cell_of({"table": "table3", "method": "stm", "ipc": 1, "init": "real", "augmented": False})


def test_the_sweep_package_is_no_registered_pipeline():
    from kedro.framework.project import configure_project

    from galaxy_distillation.pipeline_registry import register_pipelines

    configure_project("galaxy_distillation")
    registered = register_pipelines()
    assert "sweep" not in registered and {"table", "table1", "table2"} <= set(registered)
