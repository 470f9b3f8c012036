"""The table sweeps: which cells each table has, the results table beside the paper's numbers,
and the datasets that let finished cells be skipped."""

from __future__ import annotations

import pytest

from galaxy_distillation.pipelines.sweep.cells import Cell, applies, cells, groups
from galaxy_distillation.pipelines.sweep.datasets import OptionalDataset
from galaxy_distillation.pipelines.sweep.table import results_table


def test_tables_have_the_papers_cells():
    t2 = cells("table2")
    assert len(t2) == 8 and {c.method for c in t2} == {"stm"} and groups("table2") == ("plain", "aug")
    assert {(c.ipc, c.init, c.augmented) for c in t2} == {(i, n, a) for i in (1, 10) for n in ("real", "noise")
                                                         for a in (False, True)}
    assert {(c.method, c.ipc) for c in cells("table1")} == {(m, i) for m in ("mtt", "stm") for i in (1, 10, 50)}
    assert {(c.method, c.ipc) for c in cells("table")} == {(m, i) for m in ("mtt", "stm") for i in (1, 10)}
    assert groups("table") == ("plain",)
    c50 = Cell("stm", 50, "real", False)
    assert applies("table1", "cifar10", c50) and not applies("table1", "cifar100", c50)
    assert not applies("table", "gz2", Cell("mtt", 10, "real", False), {"ipcs": [1], "methods": None})
    assert Cell("stm", 10, "noise", True).variant("gz2") == "gz2_stm_ipc10_noise_aug"
    assert Cell("stm", 1, "real", False).variant("mock") == "mock_stm_ipc1_real_plain"
    with pytest.raises(KeyError, match="unknown table"):
        cells("table3")


PAPER = {"distill_iterations": 5000, "stop_reason": "max_iterations", "n_experts": 100, "expert_train_epochs": 50,
         "n_nets": 5, "epochs": 1000}


def _record(mean, std=1.0, **budget):
    return {"distilled_acc_mean": mean, "distilled_acc_std": std, "random_acc_mean": 20.0, "random_acc_std": 2.0,
            "method": "stm", "ipc": 1, "init": "real", **PAPER, **budget}


def test_table1_layout_puts_the_paper_beside_ours_with_the_difference():
    evaluations = {c.name: None for c in cells("table1")}
    evaluations["stm_ipc1_real_plain"] = _record(50.0)
    evaluations["mtt_ipc1_real_plain"] = _record(40.0)
    md, rows = results_table("table1", "cifar10", evaluations, {"plain": {"full_acc_mean": 80.0, "full_acc_std": 0.5}},
                             "caption text")
    assert "| cifar10 | 1 | 20.0 ± 2.0 (paper 14.4 ± 2.0, +5.6) | 40.0 ± 1.0 (paper 46.3 ± 0.8, -6.3) | " \
           "50.0 ± 1.0 (paper 47.7 ± 0.1, +2.3) | 80.0 ± 0.5 (paper 84.8 ± 0.1, -4.8) |" in md
    assert "caption text" in md and "| cifar10 | 10 |" not in md  # cells not run are left out
    stm = next(r for r in rows if r["column"] == "stm")
    assert stm["difference"] == pytest.approx(2.3) and stm["paper_mean"] == 47.7 and stm["table"] == "table1"


def test_table2_layout_and_datasets_without_paper_numbers():
    evaluations = {c.name: None for c in cells("table2")}
    evaluations["stm_ipc1_noise_aug"] = _record(55.0)
    evaluations["stm_ipc1_real_plain"] = _record(52.0)
    md, _ = results_table("table2", "gz2", evaluations, {"plain": None, "aug": None}, "")
    assert "52.0 ± 1.0 (paper 53.1 ± 1.7, -1.1)" in md and "55.0 ± 1.0 (paper 54.6 ± 2.0, +0.4)" in md
    md, rows = results_table("table", "imagefolder", {c.name: None for c in cells("table")} | {
        "stm_ipc1_real_plain": _record(60.0)}, {"plain": None}, "")
    assert "| imagefolder | 1 | 20.0 ± 2.0 |  | 60.0 ± 1.0 |  |" in md and "(paper" not in md
    assert all(r["paper_mean"] is None for r in rows)


def test_a_smaller_budget_or_the_mock_sky_is_marked_never_silently_beside_the_paper():
    evaluations = {c.name: None for c in cells("table2")}
    evaluations["stm_ipc1_real_plain"] = _record(52.0)  # the paper's budget: unmarked
    evaluations["stm_ipc10_real_plain"] = _record(63.9, ipc=10, distill_iterations=50, n_experts=5, expert_train_epochs=15,
                                                  n_nets=5, epochs=300)
    md, rows = results_table("table2", "gz2", evaluations, {"plain": None, "aug": None}, "", label="gz2")
    assert "| 1 | 20.0 ± 2.0 (paper 27.4" in md and "52.0 ± 1.0 (paper 53.1" in md
    assert "63.9 ± 1.0† (paper 63.9" in md and "† Budget differs from the paper's" in md
    ten = next(r for r in rows if r["ipc"] == 10 and r["column"] == "plain_real")
    assert ten["budget_vs_paper"] == "50 iterations (max_iterations); experts 5 x 15; evaluation 5 x 300"
    assert (ten["iterations"], ten["stop_reason"], ten["n_experts"], ten["expert_epochs"], ten["eval_protocol"],
            ten["method"], ten["init"], ten["data"]) == (50, "max_iterations", 5, 15, "5 x 300", "stm", "real", "gz2")
    assert "| gz2_stm_ipc10_real_plain | gz2 | stm | 10 | real | plain | 50 (max_iterations) | 5 x 15 | 5 x 300 |" in md
    mock, rows = results_table("table2", "gz2", evaluations, {"plain": None, "aug": None}, "", label="mock")
    assert mock.startswith("# table2: mock") and "mock sky (synthetic galaxies, not real GZ2)" in mock
    assert "Mock real init" in mock and "GZ2 real init" not in mock and "52.0 ± 1.0† (paper 53.1" in mock
    assert all(r["data"] == "mock" and "mock sky" in r["budget_vs_paper"] for r in rows if r["ours_mean"])


def test_optional_dataset_reads_none_when_missing_and_never_writes_a_skip_marker(tmp_path):
    path = tmp_path / "r.json"
    ds = OptionalDataset({"type": "json.JSONDataset", "filepath": str(path)})
    assert ds.load() is None and not ds.exists()
    ds.save({"skipped": "not in table"})
    assert not path.exists()
    ds.save({"a": 1})
    assert ds.load() == {"a": 1}
