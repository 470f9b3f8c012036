"""The distill node: a distilled set with its meta, quick evaluations in the history, resume
from its checkpoint, and a restart when the checkpoint was made with other settings."""

from galaxy_distillation.engine import InMemoryExperts
from galaxy_distillation.pipelines.distill.nodes import distill_dataset
from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.teacher.nodes import train_experts


def _experts(data, params):
    return InMemoryExperts([o["trajectory"].params for o in train_experts(data, params["teacher"], params["model"],
                                                                         "cpu", False) if "trajectory" in o])


def test_distilled_set_history_and_resume(tiny_model_input, tiny_params, tmp_path):
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    experts = _experts(data, tiny_params)
    distill = tiny_params["distill"].model_copy(update={"checkpoint_root": str(tmp_path)})
    args = (data, experts, distill, tiny_params["evaluation"], tiny_params["model"], "stm", 2, "real", "v", "cpu",
            False)
    distilled, history, metrics = distill_dataset(*args)
    assert distilled["images"].shape == (6, 3, 8, 8) and distilled["labels"].tolist() == [0, 0, 1, 1, 2, 2]
    meta = distilled["meta"]
    assert (meta["variant"], meta["ipc"], meta["iterations"], meta["stop_reason"]) == ("v", 2, 4, "max_iterations")
    assert history["test_acc"].notna().sum() == 2  # quick evaluations at iterations 2 and 4
    assert {"loss", "val_loss", "T", "test_acc"} <= set(metrics)
    assert (tmp_path / "v" / "state.pt").exists()
    again, _, _ = distill_dataset(*args)  # a finished variant comes back from its checkpoint
    assert again["images"].equal(distilled["images"])
    changed = distill.model_copy(update={"lr_img": 20.0})  # other settings: start afresh, no error
    other, history2, _ = distill_dataset(data, experts, changed, *args[3:])
    assert len(history2) == 4 and not other["images"].equal(distilled["images"])


def test_a_resumed_run_names_the_run_and_checkpoint_it_continued_and_what_changed(tiny_model_input, tiny_params,
                                                                                 tmp_path, caplog):
    import logging

    import mlflow

    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    experts = _experts(data, tiny_params)
    short = tiny_params["distill"].model_copy(update={"checkpoint_root": str(tmp_path / "ck"), "iterations": 2})
    rest = (tiny_params["evaluation"], tiny_params["model"], "stm", 1, "real", "mock_v", "cpu", False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run(run_name="distill mock_v") as first:  # stopped after 2 iterations (the "killed" run)
        fresh, _, _ = distill_dataset(data, experts, short, *rest)
    assert "resumed_from" not in fresh["meta"]
    longer = short.model_copy(update={"iterations": 4})
    with caplog.at_level(logging.INFO, logger="galaxy_distillation"), mlflow.start_run(run_name="again") as second:
        resumed, history, _ = distill_dataset(data, experts, longer, *rest)
    assert len(history) == 4
    record = resumed["meta"]["resumed_from"]
    assert (record["iteration"], record["run_id"], record["run_name"]) == (2, first.info.run_id, "distill mock_v")
    assert record["changed"] == {"iterations": [2, 4]} and str(tmp_path / "ck") in record["checkpoint"]
    tags = mlflow.MlflowClient().get_run(second.info.run_id).data.tags
    assert tags["resumed_from.run_id"] == first.info.run_id and tags["resumed_from.iteration"] == "2"
    assert tags["resumed_from.changed"] == "iterations 2 -> 4"
    text = caplog.text
    assert "mock_v: resumed from the checkpoint" in text and "at iteration 2" in text and first.info.run_id in text
    assert "settings changed since the checkpoint: iterations 2 -> 4" in text
