"""The compute backend (local loop; Ray errors) and the teacher's resume: only missing experts are trained."""

from __future__ import annotations

import socket

import pytest

from galaxy_distillation.cluster import ComputeError
from galaxy_distillation.compute import run_tasks
from galaxy_distillation.params import ComputeParams, ParameterError, validate_parameters
from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.teacher.nodes import train_experts


def _square(x: int, offset: int = 0) -> int:
    return x * x + offset


def test_compute_parameters_are_validated_with_one_line():
    assert validate_parameters({"compute": {}})["compute"].backend == "local"
    for bad, name in [({"backend": "slurm"}, "compute.backend"), ({"cpus_per_task": 0}, "compute.cpus_per_task"),
                      ({"max_retries": -1}, "compute.max_retries"), ({"gpu": 1}, "compute.gpu")]:
        with pytest.raises(ParameterError) as err:
            validate_parameters({"compute": bad})
        assert name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ParameterError, match="storage_root"):
        validate_parameters({"storage_root": ""})


def test_local_backend_runs_every_task_in_order_with_shared_arguments():
    seen = []
    out = list(run_tasks(_square, [(1,), (2,), (3,)], {"backend": "local"}, on_result=lambda i, r: seen.append((i, r)),
                         shared=(), progress=False))
    assert out == [(0, 1), (1, 4), (2, 9)] == seen
    assert list(run_tasks(lambda off, x: _square(x, off), [(2,)], None, shared=(10,), progress=False)) == [(0, 14)]


def test_ray_backend_reports_an_unreachable_address_in_one_line():
    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    with pytest.raises(ComputeError) as err:
        list(run_tasks(_square, [(1,)], {"backend": "ray", "address": f"127.0.0.2:{port}"}, progress=False))
    assert f"compute.address '127.0.0.2:{port}'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ComputeError, match="expected host:port"):
        list(run_tasks(_square, [(1,)], {"backend": "ray", "address": "no-port-here"}, progress=False))


def _run(data, teacher, model, inventory):
    chunks = list(train_experts(data, teacher, model, "cpu", False, inventory, ComputeParams()))
    assert "keep" in chunks[0]
    return chunks[0]["keep"], {c["index"]: c["trajectory"] for c in chunks[1:]}


def test_teacher_trains_only_missing_or_stale_experts(tiny_model_input, tiny_params):
    teacher, model = tiny_params["teacher"].model_copy(update={"n_experts": 3, "epochs": 1}), tiny_params["model"]
    data, _ = prepare(tiny_model_input, teacher)
    keep, trained = _run(data, teacher, model, {})
    assert keep == [] and sorted(trained) == [0, 1, 2]
    inventory = {i: t.meta for i, t in trained.items()}
    assert _run(data, teacher, model, inventory) == ([0, 1, 2], {})
    keep, again = _run(data, teacher, model, {0: inventory[0], 2: inventory[2]})
    assert keep == [0, 2] and sorted(again) == [1] and again[1].params.equal(trained[1].params)
    keep, more = _run(data, teacher.model_copy(update={"n_experts": 4}), model, inventory)
    assert keep == [0, 1, 2] and sorted(more) == [3]
    assert _run(data, teacher.model_copy(update={"seed": 5}), model, inventory)[0] == []     # other seeds
    assert _run(data, teacher.model_copy(update={"lr": 0.02}), model, inventory)[0] == []    # other settings
    other = {**tiny_model_input, "train_x": tiny_model_input["train_x"].flip(0)}
    assert _run(prepare(other, teacher)[0], teacher, model, inventory)[0] == []            # other data


def test_run_one_is_one_task_with_shared_arguments_first():
    from galaxy_distillation.compute import run_one

    assert run_one(_square, (3, 1), {"backend": "local"}, progress=False) == 10
    assert run_one(_square, (1,), {"backend": "local"}, progress=False, shared=(4,)) == 17  # 4 * 4 + 1
    # tasks of several threads now run side by side: tests/test_threads.py


def test_one_bar_counts_the_tasks_of_every_call_in_flight(caplog):
    from galaxy_distillation.compute import _BOARD

    first = _BOARD.open(3, "experts", progress=False)
    second = _BOARD.open(2, "cell a", progress=False)
    assert _BOARD.bar.total == 5 and _BOARD.bar.desc.startswith("experts + cell a")
    first.update(done=3, running=0)
    second.update(done=1, running=1)
    assert _BOARD.done == 4
    with caplog.at_level("INFO", logger="galaxy_distillation.compute"):
        first.close("experts")
        assert _BOARD.done == 4 and _BOARD.bar.desc.startswith("cell a")
        second.update(done=1, running=0)
        second.close("cell a")
    assert _BOARD.bar is None and _BOARD.calls == []
    assert "experts: 3 done, 0 failed, 0 retried" in caplog.text and "cell a: 2 done, 0 failed" in caplog.text


def test_kedro_run_picks_the_thread_runner_only_for_sweeps_on_the_ray_backend(tmp_path):
    from galaxy_distillation.cli import configured_backend

    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    assert configured_backend(None, str(root / "conf"), {}) == "local"
    assert configured_backend(None, str(root / "conf"), {"compute": {"backend": "ray"}}) == "ray"
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "conf" / "base" / "parameters.yml").write_text("compute: {backend: ray}\n")
    assert configured_backend(None, str(tmp_path / "conf"), None) == "ray"
    assert configured_backend(None, str(tmp_path / "missing"), None) == ""
    from galaxy_distillation.cli import pick_runner

    ray = {"conf_source": str(tmp_path / "conf"), "params": {}}
    assert pick_runner({**ray, "pipelines": ["table2"]}) == "ThreadRunner"
    assert pick_runner({**ray, "pipelines": ["table", "compare"]}) == "ThreadRunner"
    assert pick_runner({**ray, "pipelines": ["table2"], "runner": "SequentialRunner"}) is None  # the user's choice
    assert pick_runner({**ray, "pipelines": ["sky", "teacher"]}) is None   # single runs stay sequential
    assert pick_runner({**ray, "pipelines": []}) is None                     # __default__
    assert pick_runner({"conf_source": str(root / "conf"), "params": {}, "pipelines": ["table"]}) is None  # local


def test_a_stop_request_ends_the_tasks_and_a_second_signal_waits(capsys):
    """The first Ctrl-C / SIGTERM of a run stops compute (no new task starts, Ray tasks are
    cancelled: tests/test_cluster_stop.py) and interrupts; a second one only prints a note, so
    nothing is put back while node threads still save."""
    import signal

    from galaxy_distillation import cli, compute

    cli._STOPPING.clear()
    compute.clear_stop()
    try:
        with pytest.raises(KeyboardInterrupt):
            cli._raise_interrupt(signal.SIGINT, None)
        assert compute.stop_requested()
        with pytest.raises(compute.Stopped, match="not started"):
            compute.run_one(_square, (2,), {"backend": "local"}, progress=False)
        assert cli._raise_interrupt(signal.SIGTERM, None) is None  # the second: no second interrupt
        assert "stopping: waiting for the running nodes" in capsys.readouterr().err
    finally:
        cli._STOPPING.clear()
        compute.clear_stop()
    assert compute.run_one(_square, (2,), {"backend": "local"}, progress=False) == 4


def test_a_local_teacher_asked_to_stop_ends_after_the_expert_in_hand(tiny_model_input, tiny_params):
    """A stop request (the first Ctrl-C or SIGTERM of a run) during a local teacher run: the
    experts already handed back (each saved at once by the expert dataset) stay, and no further
    expert starts; ``Stopped`` says how far it got."""
    from galaxy_distillation import compute

    teacher = tiny_params["teacher"].model_copy(update={"n_experts": 4, "epochs": 1, "experts_at_once": 1})
    data, _ = prepare(tiny_model_input, teacher)
    handed_back = []
    with pytest.raises(compute.Stopped, match=r"stopped after 1 of 4 task\(s\)"):
        for chunk in train_experts(data, teacher, tiny_params["model"], "cpu", False, {}, ComputeParams()):
            if "trajectory" in chunk:
                handed_back.append(chunk["index"])
                compute.request_stop()  # as the CLI's handler does while the expert is saved
    assert handed_back == [0]
