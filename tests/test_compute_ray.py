"""The Ray backend's bookkeeping against a stand-in for Ray (fast; the real two-node cluster:
tests/test_cluster_stop.py): a shared training set goes into the object store once for every
task on it, and a stop request cancels the tasks in flight (running ones forcibly) within a
second."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from galaxy_distillation import compute

pytest.importorskip("ray")  # only ray.util.scheduling_strategies is used; no Ray is started


class _Ref:
    def __init__(self, value=None, task=None):
        self.value, self.task = value, task


class _Remote:
    def __init__(self, fake, fn):
        self.fake, self.fn = fake, fn

    def options(self, **_):
        return self

    def remote(self, *args):
        if isinstance(self.fn, type):  # the attempts actor
            return SimpleNamespace(retried=SimpleNamespace(remote=lambda: _Ref(0)),
                                   start=SimpleNamespace(remote=lambda i: _Ref(None)))
        ref = _Ref(task=args)
        self.fake.submitted.append(ref)
        return ref


class FakeRay:
    """Enough of ``ray`` for :func:`compute._run_ray`: tasks finish at once, or never (``hang``)."""

    def __init__(self, hang: bool = False):
        self.hang, self.puts, self.submitted, self.cancelled = hang, [], [], []

    def put(self, obj):
        self.puts.append(obj)
        return _Ref(obj)

    def remote(self, fn):
        return _Remote(self, fn)

    def get_runtime_context(self):
        return SimpleNamespace(get_node_id=lambda: "ab" * 28, get_job_id=lambda: "01000000")

    def wait(self, refs, num_returns=1, timeout=None):
        if self.hang:
            time.sleep(min(timeout or 0.1, 0.1))
            return [], refs
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref, timeout=None):
        if ref.task is None:
            return ref.value
        fn_ref, _attempts, _name, _i, _threads, *args = ref.task
        values = [a.value if isinstance(a, _Ref) else a for a in args]
        return "127.0.0.2", fn_ref.value(*values)

    def cancel(self, ref, force=False):
        self.cancelled.append((ref, force))

    def kill(self, actor):
        pass


class Training:
    """A training set (an object the tasks share)."""

    def __init__(self, n):
        self.n = n


def _size(data, offset):
    return data.n + offset


@pytest.fixture
def fake(monkeypatch):
    def install(hang=False):
        ray = FakeRay(hang)
        monkeypatch.setattr(compute, "connect", lambda cfg: ray)
        return ray
    compute.clear_stop()
    yield install
    compute.clear_stop()


def test_a_training_set_goes_into_the_object_store_once_for_all_its_tasks(fake):
    ray = fake()
    data, other = Training(10), Training(20)
    cfg = {"backend": "ray"}
    # a sweep: the Full baseline, two cells' distillations and evaluations, all on one training set
    results = [compute.run_one(_size, (k,), cfg, progress=False, shared=(data,)) for k in range(5)]
    assert results == [10, 11, 12, 13, 14]
    assert sum(p is data for p in ray.puts) == 1
    refs = {id(task.task[5]) for task in ray.submitted}
    assert len(refs) == 1  # every task got the same object-store reference
    assert compute.run_one(_size, (0,), cfg, progress=False, shared=(other,)) == 20
    assert sum(p is other for p in ray.puts) == 1  # another training set: its own copy


def test_a_stop_request_cancels_the_tasks_in_flight_within_a_second(fake):
    ray = fake(hang=True)
    outcome = {}

    def node():
        try:
            compute.run_one(_size, (1,), {"backend": "ray"}, progress=False, shared=(Training(1),))
        except compute.Stopped as exc:
            outcome["stopped"] = (str(exc), time.monotonic())

    thread = threading.Thread(target=node)
    thread.start()
    while not ray.submitted:
        time.sleep(0.01)
    t0 = time.monotonic()
    compute.request_stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert outcome["stopped"][1] - t0 < 1.5, outcome
    assert [(ref, force) for ref, force in ray.cancelled] == [(ray.submitted[0], True)]
    with pytest.raises(compute.Stopped):  # nothing new is submitted while the run stops
        compute.run_one(_size, (1,), {"backend": "ray"}, progress=False, shared=(Training(1),))
    assert len(ray.submitted) == 1


def test_tasks_that_finished_before_a_stop_request_still_come_back(fake):
    """A stop request cancels what is in flight, but a task that had already finished (its result
    not yet collected) is not lost: its result comes back, and a call whose tasks had all
    finished ends normally (e.g. a sweep's Full baseline done just before Ctrl-C is saved)."""
    ray = fake()  # tasks finish at once
    got = []

    def first_back(i, result):
        got.append((i, result))
        compute.request_stop()  # Ctrl-C right after the first result was collected

    results = list(compute.run_tasks(_size, [(0,), (1,), (2,)], {"backend": "ray"}, on_result=first_back,
                                     shared=(Training(5),), progress=False))
    assert sorted(results) == [(0, 5), (1, 6), (2, 7)] and len(got) == 3
    assert ray.cancelled == []


def test_ctrl_c_ends_the_node_threads_waiting_on_ray_and_a_second_one_waits_for_them(fake, capsys):
    """What ``kedro run`` of a sweep on Ray does on Ctrl-C: the signal handler of the CLI stops
    compute and interrupts the main thread; the node threads (Kedro's ThreadRunner) waiting on
    their tasks cancel them and end within a second; a second Ctrl-C while the main thread
    waits for them is only noted (no second interrupt, so nothing is put back under them)."""
    import os
    import signal

    from galaxy_distillation import cli

    ray = fake(hang=True)
    stopped = []

    def node():
        try:
            compute.run_one(_size, (1,), {"backend": "ray"}, progress=False, shared=(Training(1),))
        except compute.Stopped:
            stopped.append(threading.current_thread().name)

    cli._STOPPING.clear()
    previous = signal.signal(signal.SIGINT, cli._raise_interrupt)
    threads = [threading.Thread(target=node, daemon=True) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        while len(ray.submitted) < 2:
            time.sleep(0.01)
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)  # the handler raises in this (the main) thread
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, while the node threads end
        time.sleep(0.05)
        for t in threads:
            t.join(timeout=10)
        assert not any(t.is_alive() for t in threads) and len(stopped) == 2
        assert time.monotonic() - t0 < 2.0
        assert sorted((id(ref), force) for ref, force in ray.cancelled) == sorted((id(r), True) for r in ray.submitted)
        assert "stopping: waiting for the running nodes" in capsys.readouterr().err
    finally:
        signal.signal(signal.SIGINT, previous)
        cli._STOPPING.clear()
