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
    experiment = mlflow.create_experiment("resume")  # explicit: no experiment left active by another test
    with mlflow.start_run(run_name="distill mock_v", experiment_id=experiment) as first:  # stopped after 2 iterations (the "killed" run)
        fresh, _, _ = distill_dataset(data, experts, short, *rest)
    assert "resumed_from" not in fresh["meta"]
    longer = short.model_copy(update={"iterations": 4})
    with caplog.at_level(logging.INFO, logger="galaxy_distillation"), \
            mlflow.start_run(run_name="again", experiment_id=experiment) as second:
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


def test_a_distillation_in_a_node_thread_stops_between_iterations_keeping_its_checkpoint(tiny_model_input, tiny_params,
                                                                                       tmp_path):
    """Before: a stop request (the first Ctrl-C or SIGTERM of a run: ``compute.request_stop``)
    reached Ray tasks and the local task loop between tasks only; a distillation running in a
    node thread (``--runner ThreadRunner``) went on to its last iteration. Now it ends at the end
    of the iteration it is in, saves its checkpoint there and raises ``Stopped``; a rerun resumes."""
    import logging
    import re
    import threading

    from galaxy_distillation import compute

    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    experts = _experts(data, tiny_params)
    distill = tiny_params["distill"].model_copy(update={"checkpoint_root": str(tmp_path), "iterations": 100_000,
                                                        "checkpoint_every": 100_000, "eval_every": 2,
                                                        "max_iter_stage": 0})  # no stop rule fires
    rest = (tiny_params["evaluation"], tiny_params["model"], "stm", 1, "real", "v", "cpu", False)
    evaluated = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "quick evaluation" in record.getMessage() and record.args[0] >= 2:
                evaluated.set()

    logger = logging.getLogger("galaxy_distillation.pipelines.distill.nodes")
    handler, level = Seen(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    outcome: dict = {}

    def node() -> None:  # what a ThreadRunner node thread runs
        try:
            outcome["result"] = distill_dataset(data, experts, distill, *rest)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=node, daemon=True)
    thread.start()
    try:
        assert evaluated.wait(300), "the distillation never reached iteration 2"
        compute.request_stop()  # as the CLI's signal handler does, from another thread
        thread.join(120)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not thread.is_alive(), "the distillation did not stop when asked"
    error = outcome.get("error")
    assert isinstance(error, compute.Stopped), outcome
    found = re.fullmatch(r"distillation v: stopped after iteration (\d+); checkpoint (.+) resumes it", str(error))
    assert found and 2 <= int(found[1]) < 100_000 and str(tmp_path / "v") in found[2]
    stopped_at = int(found[1])

    compute.clear_stop()  # the next run: resumes where the stop left it (no periodic checkpoint was due)
    resumed, history, _ = distill_dataset(data, experts, distill.model_copy(update={"iterations": stopped_at + 1}),
                                          *rest)
    assert resumed["meta"]["resumed_from"]["iteration"] == stopped_at and len(history) == stopped_at + 1


def test_memory_mode_graphed_through_the_node_gives_the_checkpoint_modes_set(tiny_model_input, tiny_params, tmp_path):
    """``distill.memory_mode: graphed`` (CUDA graphs on a GPU; eager step programs here) is an execution-only
    setting: the same distilled set as ``checkpoint``, and each resumes the other's finished checkpoint."""
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    experts = _experts(data, tiny_params)
    rest = (tiny_params["evaluation"], tiny_params["model"], "stm", 2, "real", "v", "cpu", False)
    out = {}
    for mode in ("checkpoint", "graphed"):
        distill = tiny_params["distill"].model_copy(update={"checkpoint_root": str(tmp_path / mode), "memory_mode": mode})
        out[mode], history, _ = distill_dataset(data, experts, distill, *rest)
        assert len(history) == 4
    assert out["graphed"]["images"].equal(out["checkpoint"]["images"])
    again, _, _ = distill_dataset(data, experts, tiny_params["distill"].model_copy(
        update={"checkpoint_root": str(tmp_path / "graphed"), "memory_mode": "checkpoint"}), *rest)
    assert again["meta"]["resumed_from"]["iteration"] == 4 and again["images"].equal(out["graphed"]["images"])
