"""Never stale, never lost: every result is keyed by the data's content, the experts it used and
the settings that change its numbers; experts are append-only.

Each test here reproduces a case of issue 18 through the nodes and datasets a ``kedro run`` uses
(an image folder read by ``ModelInputDataset``, the teacher node saving into the expert folder,
the distill node with its checkpoint, the sweep's nodes and table).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from galaxy_distillation.datasets import ExpertInventoryDataset, ExpertTrajectoriesDataset, ModelInputDataset
from galaxy_distillation.params import SweepParams
from galaxy_distillation.pipelines.distill.nodes import distill_dataset
from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.teacher.nodes import train_experts


def _image_folder(root: Path, seed: int) -> Path:
    """3 classes x (4 train + 3 test) 8x8 PNGs; ``seed`` changes every pixel, never the count."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", 4), ("test", 3)):
        for label, name in enumerate("abc"):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 120, (8, 8, 3), dtype=np.uint8)
                pixels[: 4 * (1 + label % 2), :, label] = 250  # a class signal
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def _data(root: Path, teacher):
    model_input = ModelInputDataset(dataset="imagefolder", data_root=str(root), image_size=8).load()
    return prepare(model_input, teacher)[0]


def _teacher_run(data, teacher, model, folder: Path):
    """The teacher node saving into the expert folder, as the catalog does; the experts as loaded after."""
    experts = ExpertTrajectoriesDataset(str(folder))
    for chunk in train_experts(data, teacher, model, "cpu", False, ExpertInventoryDataset(str(folder)).load()):
        experts.save(chunk)
    return experts.load()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("expert_*.safetensors"))}


def test_distill_after_the_image_folder_changed_moves_the_old_state_aside_and_starts_afresh(tiny_params, tmp_path):
    teacher, model = tiny_params["teacher"], tiny_params["model"]
    distill = tiny_params["distill"].model_copy(update={"checkpoint_root": str(tmp_path / "ckpt")})
    args = (distill, tiny_params["evaluation"], model, "stm", 1, "real", "v", "cpu", False)
    data_a = _data(_image_folder(tmp_path / "images", seed=1), teacher)
    first, _, _ = distill_dataset(data_a, _teacher_run(data_a, teacher, model, tmp_path / "experts"), *args)

    data_b = _data(_image_folder(tmp_path / "images", seed=2), teacher)  # same count, other pixels
    assert data_b.train_x.shape == data_a.train_x.shape and not torch.equal(data_b.train_x, data_a.train_x)
    experts_b = _teacher_run(data_b, teacher, model, tmp_path / "experts")
    second, history, _ = distill_dataset(data_b, experts_b, *args)

    fresh_root = distill.model_copy(update={"checkpoint_root": str(tmp_path / "fresh")})
    fresh, _, _ = distill_dataset(data_b, experts_b, fresh_root, *args[1:])
    assert not second["images"].equal(first["images"])
    assert second["images"].equal(fresh["images"]) and len(history) == distill.iterations  # a whole new run
    moved = sorted((tmp_path / "ckpt" / "v").glob("state.*.pt"))
    assert len(moved) == 1 and (tmp_path / "ckpt" / "v" / "state.pt").exists()  # the old state kept beside
    old = torch.load(moved[0], weights_only=True)
    assert old["iteration"] == distill.iterations and torch.equal(old["images"], first["images"])


def test_n_experts_smaller_than_the_bank_uses_the_first_and_deletes_nothing(tiny_model_input, tiny_params, tmp_path):
    teacher, model = tiny_params["teacher"], tiny_params["model"]
    data, _ = prepare(tiny_model_input, teacher)
    _teacher_run(data, teacher, model, tmp_path / "experts")
    before = _files(tmp_path / "experts")
    assert len(before) == 2
    one = teacher.model_copy(update={"n_experts": 1})
    loaded = _teacher_run(data, one, model, tmp_path / "experts")
    assert _files(tmp_path / "experts") == before  # expert_0001 is still there, unchanged

    from galaxy_distillation.pipelines.teacher.nodes import experts_for

    used = experts_for(loaded, data, one, model)
    assert len(used) == 1 and used.load(0).equal(experts_for(loaded, data, teacher, model).load(0))


def test_a_read_error_while_taking_the_inventory_deletes_nothing(tiny_model_input, tiny_params, tmp_path,
                                                                   monkeypatch):
    import galaxy_distillation.storage.shelf as shelf

    teacher, model = tiny_params["teacher"], tiny_params["model"]
    data, _ = prepare(tiny_model_input, teacher)
    _teacher_run(data, teacher, model, tmp_path / "experts")
    before = _files(tmp_path / "experts")
    real = shelf.read_metadata

    def flaky(loc, path):  # a transient network / disk error on one header
        if str(path).endswith("expert_0001.safetensors"):
            raise OSError(5, "Input/output error")
        return real(loc, path)

    monkeypatch.setattr(shelf, "read_metadata", flaky)
    with pytest.raises(Exception, match="expert_0001"):
        _teacher_run(data, teacher, model, tmp_path / "experts")
    assert _files(tmp_path / "experts") == before


def test_experts_for_other_data_go_beside_the_old_bank(tiny_model_input, tiny_params, tmp_path):
    teacher, model = tiny_params["teacher"], tiny_params["model"]
    data_a, _ = prepare(tiny_model_input, teacher)
    _teacher_run(data_a, teacher, model, tmp_path / "experts")
    bank_a = _files(tmp_path / "experts")
    other = {**tiny_model_input, "train_x": 255 - tiny_model_input["train_x"]}
    data_b, _ = prepare(other, teacher)
    shelf = _teacher_run(data_b, teacher, model, tmp_path / "experts")
    after = _files(tmp_path / "experts")
    assert len(after) == 4 and {k: after.get(k) for k in bank_a} == bank_a  # the first bank untouched

    from galaxy_distillation.engine.trajectories import ExpertError
    from galaxy_distillation.pipelines.teacher.nodes import experts_for

    a, b = experts_for(shelf, data_a, teacher, model), experts_for(shelf, data_b, teacher, model)
    assert a.directory != b.directory and a.directory.parent == b.directory.parent
    assert a.meta["data_sha256"] != b.meta["data_sha256"]
    # distillation refuses experts of other data, naming both fingerprints
    with pytest.raises(ExpertError, match=r"trained on data sha256 \w{12}, not this data's \w{12}") as err:
        experts_for(a, data_b)
    assert "\n" not in str(err.value)


def test_a_sweep_rerun_after_the_data_changed_redoes_every_cell_and_the_table(tiny_params, tmp_path, caplog):
    from galaxy_distillation.pipelines.sweep.cells import cell_params, cells, sweep_cells
    from galaxy_distillation.pipelines.sweep.nodes import (
        distill_cell,
        evaluate_cell,
        full_baseline,
        results_table_node,
    )

    teacher, model, evaluation = tiny_params["teacher"], tiny_params["model"], tiny_params["evaluation"]
    distill = tiny_params["distill"].model_copy(update={"checkpoint_root": str(tmp_path / "ckpt"), "expert_epochs": 1})
    sweep = SweepParams(ipcs=[1])  # the smallest sweep: MTT and STM at IPC 1
    table = "table"
    run = [c for c in cells(table) if c.ipc == 1]

    def sweep_run(data, experts, previous, distill=distill, evaluation=evaluation):
        full = full_baseline(data, previous.get("full"), evaluation, teacher, model, "cpu", False)
        out = {"full": full}
        for cell in run:
            distilled, history = distill_cell(
                data, experts, previous.get(f"{cell.name}.set"), previous.get(f"{cell.name}.history"),
                cell_params(table, cell), distill, evaluation, model, "imagefolder", sweep, "cpu", False)
            out[f"{cell.name}.set"], out[f"{cell.name}.history"] = distilled, history
            out[cell.name] = evaluate_cell(
                data, distilled, history, previous.get(cell.name), full, cell_params(table, cell), evaluation, model,
                "imagefolder", sweep, "cpu", False)
        results = [out.get(c.name, {"skipped": "not in table"}) for c in cells(table)]
        out["table"] = results_table_node(sweep_cells()[table], "imagefolder", evaluation, "image folder", full,
                                          *results)
        return out

    data_a = _data(_image_folder(tmp_path / "images", seed=1), teacher)
    first = sweep_run(data_a, _teacher_run(data_a, teacher, model, tmp_path / "experts"), {})
    data_b = _data(_image_folder(tmp_path / "images", seed=2), teacher)  # same count, other pixels
    caplog.set_level(logging.INFO)
    experts_b = _teacher_run(data_b, teacher, model, tmp_path / "experts")
    second = sweep_run(data_b, experts_b, first)

    assert "skipped" not in caplog.text  # no cell, evaluation or baseline reused
    assert second["full"]["key"] != first["full"]["key"]
    for cell in run:
        assert not second[f"{cell.name}.set"]["images"].equal(first[f"{cell.name}.set"]["images"])
        assert second[cell.name]["cell_key"] != first[cell.name]["cell_key"]
    _, frame = second["table"]
    ours = {(row.column, row.ipc): row.ours_mean for row in frame.itertuples()}
    for cell in run:  # the table shows the new evaluations' numbers
        assert ours[(cell.method, 1)] == pytest.approx(second[cell.name]["distilled_acc_mean"])
    assert ours[("full", 1)] == pytest.approx(second["full"]["mean"])

    # execution-only settings (after an out-of-memory, say) redo nothing
    caplog.clear()
    third = sweep_run(data_b, experts_b, second,
                      distill=distill.model_copy(update={"memory_mode": "checkpoint", "expert_cache": 1}),
                      evaluation=evaluation.model_copy(update={"use_vmap": False, "eval_batch_size": 7}))
    assert caplog.text.count("skipped") == 1 + 2 * len(run)  # the Full baseline, each cell's two stages
    assert all(third[cell.name] is second[cell.name] for cell in run)


def test_evaluation_refuses_a_distilled_set_or_full_baseline_of_other_data(tiny_model_input, tiny_params):
    from galaxy_distillation.pipelines.evaluation.nodes import collect_evaluation, evaluate_distilled
    from galaxy_distillation.pipelines.teacher.nodes import data_fingerprint

    data_a, _ = prepare(tiny_model_input, tiny_params["teacher"])
    data_b, _ = prepare({**tiny_model_input, "train_x": 255 - tiny_model_input["train_x"]}, tiny_params["teacher"])
    stale = {"images": torch.zeros(3, 3, 8, 8), "labels": torch.arange(3),
             "meta": {"lr": 0.01, "data_sha256": data_fingerprint(data_a)}}
    with pytest.raises(Exception, match=r"distilled set was made from data sha256 \w{12}, not this data's \w{12}"):
        evaluate_distilled(data_b, stale, tiny_params["evaluation"], tiny_params["model"], "cpu", False)
    record = {"mean": 50.0, "std": 1.0, "accs": [50.0], "n_nets": 1, "epochs": 1, "lr": 0.01}
    full_of_a = {**record, "data_sha256": data_fingerprint(data_a)}
    fresh = {**stale, "meta": {**stale["meta"], "data_sha256": data_fingerprint(data_b)}}
    with pytest.raises(Exception, match="Full baseline was made from data"):
        collect_evaluation(record, record, full_of_a, {}, fresh, tiny_params["model"], "toy", "stm", 1, "real",
                           False, "v")


def test_experts_written_before_banks_were_keyed_are_reused_or_left_alone(tiny_model_input, tiny_params, tmp_path):
    """A folder of the earlier layout (expert files in the folder itself): used when they are all of
    this data and settings, never moved or deleted."""
    from galaxy_distillation.engine.trajectories import save_trajectory
    from galaxy_distillation.pipelines.teacher.nodes import experts_for

    teacher, model = tiny_params["teacher"], tiny_params["model"]
    data, _ = prepare(tiny_model_input, teacher)
    for chunk in train_experts(data, teacher, model, "cpu", False):
        if "index" in chunk:
            save_trajectory(chunk["trajectory"], tmp_path / "experts" / f"expert_{chunk['index']:04d}.safetensors")
    before = _files(tmp_path / "experts")
    chunks = list(train_experts(data, teacher, model, "cpu", False,
                                ExpertInventoryDataset(str(tmp_path / "experts")).load()))
    assert chunks == [{"bank": "", "keep": [0, 1]}]  # nothing to train: the folder's own experts
    bank = experts_for(ExpertTrajectoriesDataset(str(tmp_path / "experts")).load(), data, teacher, model)
    assert bank.directory == tmp_path / "experts" and len(bank) == 2
    other = teacher.model_copy(update={"lr": teacher.lr * 2})  # other settings: a bank beside them
    _teacher_run(data, other, model, tmp_path / "experts")
    after = _files(tmp_path / "experts")
    assert {k: after[k] for k in before} == before and len(after) == 4


def test_an_interrupted_teacher_on_other_data_leaves_the_old_bank_and_transform_together(
        tiny_model_input, tiny_params, tmp_path, monkeypatch):
    """Ctrl-C after the first new expert: the run's outputs are put back (the transform), and the
    old bank was never touched (the new experts went into their own bank)."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from galaxy_distillation.datasets import TensorDictDataset
    from galaxy_distillation.outputs import RunOutputsGuard
    from galaxy_distillation.params import ComputeParams
    from galaxy_distillation.pipelines.teacher import create_pipeline

    pipe = create_pipeline().only_nodes("prepare", "train_experts")

    def run(model_input):
        catalog = DataCatalog({
            "model_input": MemoryDataset(model_input, copy_mode="assign"),
            "data_transform": TensorDictDataset(str(tmp_path / "transform.safetensors")),
            "expert_trajectories": ExpertTrajectoriesDataset(str(tmp_path / "experts")),
            "expert_inventory": ExpertInventoryDataset(str(tmp_path / "experts")),
            **{f"params:{k}": MemoryDataset(v, copy_mode="assign") for k, v in {
                "teacher": tiny_params["teacher"], "model": tiny_params["model"], "device": "cpu",
                "progress": False, "compute": ComputeParams()}.items()}})
        guard = RunOutputsGuard()
        guard.before_pipeline_run(run_params={}, pipeline=pipe, catalog=catalog)
        real_save = TensorDictDataset.save

        def guarded(self, data):
            guard.before_dataset_saved(dataset_name="data_transform", data=None, node=None)
            return real_save(self, data)

        with monkeypatch.context() as m:
            m.setattr(TensorDictDataset, "save", guarded)
            try:
                SequentialRunner().run(pipe, catalog)
            except BaseException:
                guard.rollback()  # what the CLI does on Ctrl-C
                raise
        guard.after_pipeline_run(run_params={}, run_result={}, pipeline=pipe, catalog=catalog)

    run(tiny_model_input)
    old_bank, old_transform = _files(tmp_path / "experts"), (tmp_path / "transform.safetensors").read_bytes()
    real = ExpertTrajectoriesDataset.save

    def interrupted(self, data):
        real(self, data)
        if data.get("index") == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(ExpertTrajectoriesDataset, "save", interrupted)
    other = {**tiny_model_input, "train_x": 255 - tiny_model_input["train_x"]}
    with pytest.raises(KeyboardInterrupt):
        run(other)
    after = _files(tmp_path / "experts")
    assert {k: after.get(k) for k in old_bank} == old_bank  # the old bank as it was
    assert (tmp_path / "transform.safetensors").read_bytes() == old_transform  # with its transform
    assert len(after) == 3  # the new data's first expert, in its own bank (resumed next run)
