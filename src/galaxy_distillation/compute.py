"""Where independent tasks run: in this process (``compute.backend: local``) or on a Ray cluster.

``run_tasks(fn, tasks, compute)`` runs ``fn(*shared, *args)`` for every ``args`` in ``tasks``
and yields ``(index, result)`` as each one comes back, so a caller can save every result
at once (a failed task then costs only itself, and a re-run does only what is missing).
The local backend is a plain loop; the Ray backend submits one remote task per item with
``compute.max_retries`` retries (a task whose node dies is rerun on another node) and
``compute.cpus_per_task`` / ``compute.gpus_per_task`` as its resource request. Ray is
imported only when ``backend`` is ``ray`` (:mod:`galaxy_distillation.cluster` joins the
cluster); the tasks call the same functions with the same arguments as the local loop, so
both backends give the same results.

One tqdm bar over all the tasks in flight in this process shows done / running / failed /
retried (quiet when stderr is not a terminal; each call logs a summary line at the end
either way). :func:`run_one` runs a single task and waits for it: a node that hands its work
to Ray that way lets Kedro's ``ThreadRunner`` keep several such nodes' tasks in flight.

Local tasks of several threads run side by side: the engine draws every random number from
explicit generators (never torch's global one), so a task's result does not depend on what
runs beside it. ``shared`` arguments go into Ray's object store once per object for the whole
process (:func:`object_ref`), so the cells of a sweep on one training set share one copy.
:func:`request_stop` (the first Ctrl-C or ``SIGTERM`` of a ``kedro run``) makes every call
waiting on Ray cancel its tasks, the running ones forcibly, and raise :class:`Stopped`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from galaxy_distillation.cluster import compute_settings, connect
from galaxy_distillation.errors import Stopped  # its home: errors.py (the engine raises it too)

log = logging.getLogger(__name__)


def task_threads(cpus_per_task: float) -> int:
    """Intra-op threads of a Ray task: its CPU allocation (``compute.cpus_per_task``), at least 1.

    Fixed by the configuration, never by the worker's environment, because the thread count
    changes the order of floating-point reductions: a local run with ``threads`` set to the
    same number gives bit-identical results.
    """
    return max(1, int(cpus_per_task))


def _call_on_node(fn: Callable[..., Any], attempts: Any, name: str, index: int, threads: int, *args: Any
                  ) -> tuple[str, Any]:
    """What a Ray task runs: note the attempt, set ``threads`` intra-op threads, run ``fn(*args)``,
    return the node's address with the result."""
    import ray
    import torch

    torch.set_num_threads(int(threads))

    node = ray.util.get_node_ip_address()
    try:
        ray.get(attempts.start.remote(index), timeout=30)  # recorded before the task does anything else
    except Exception:  # noqa: BLE001 - counting attempts is best effort; the task itself must run
        pass
    print(f"task {name} {index} started on {node}", file=sys.stderr, flush=True)  # Ray forwards it to the driver
    return node, fn(*args)


class _Attempts:
    """A small Ray actor on the driver's node counting the attempts of each task (retries = more than one)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def start(self, index: int) -> None:
        self.counts[index] = self.counts.get(index, 0) + 1

    def retried(self) -> int:
        return sum(1 for n in self.counts.values() if n > 1)


class _Board:
    """The process's one tqdm bar over every task in flight, with done / running / failed /
    retried in the postfix. Under Kedro's ``ThreadRunner`` several nodes wait on their tasks at
    once; each ``run_tasks`` call adds its tasks to this bar and keeps its own counts for its
    summary line."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.calls: list[_Tasks] = []
        self.bar: Any = None
        self.finished = 0  # tasks done by calls already released, while the bar is still open
        self.done = 0  # tasks done while the bar is open (what it shows)

    def open(self, total: int, desc: str, progress: bool) -> _Tasks:
        from tqdm.auto import tqdm

        with self.lock:
            if self.bar is None:
                self.bar = tqdm(total=0, desc="tasks", disable=not (progress and sys.stderr.isatty()), leave=False)
            calls = _Tasks(self, total, desc)
            self.calls.append(calls)
            self.bar.total += total
            self.refresh()
            return calls

    def refresh(self) -> None:
        with self.lock:
            if self.bar is None:
                return
            totals = {key: sum(c.counts[key] for c in self.calls) for key in ("done", "running", "failed", "retried")}
            self.bar.set_description(" + ".join(dict.fromkeys(c.desc for c in self.calls)) or "tasks", refresh=False)
            self.done = totals["done"] + self.finished
            self.bar.update(self.done - self.bar.n)
            self.bar.set_postfix(totals, refresh=False)

    def release(self, calls: _Tasks) -> None:
        with self.lock:
            self.calls.remove(calls)
            self.finished += calls.counts["done"]
            if not self.calls:
                self.bar.close()
                self.bar, self.finished = None, 0
            else:
                self.refresh()


_BOARD = _Board()


class _Tasks:
    """The counts of one ``run_tasks`` call (shown on the process's bar; a summary line at the end)."""

    def __init__(self, board: _Board, total: int, desc: str) -> None:
        self.board, self.total, self.desc = board, total, desc
        self.counts = {"done": 0, "running": 0, "failed": 0, "retried": 0}

    def update(self, done: int = 0, **counts: int) -> None:
        with self.board.lock:
            self.counts["done"] += done
            self.counts.update(counts)
            self.board.refresh()

    def close(self, desc: str) -> None:
        self.board.release(self)
        c = self.counts
        log.info("%s: %d done, %d failed, %d retried", desc, c["done"], c["failed"], c["retried"])


#: Set by :func:`request_stop`; cleared by :func:`clear_stop` when a run starts.
_STOP = threading.Event()


def request_stop() -> None:
    """Ask every :func:`run_tasks` of this process to stop: calls waiting on Ray cancel their
    pending and running tasks (``ray.cancel(force=True)``) within a second and raise
    :class:`Stopped`, and no new call submits anything. Safe to call from a signal handler."""
    _STOP.set()


def clear_stop() -> None:
    """Forget an earlier :func:`request_stop` (a new run starts)."""
    _STOP.clear()


def stop_requested() -> bool:
    """Whether :func:`request_stop` was called since the run started."""
    return _STOP.is_set()


#: ``id(obj)`` -> (a weak reference to ``obj``, the Ray job, its ObjectRef): one object-store
#: copy per shared object while it lives (the entry goes with the object).
_REFS: dict[int, tuple[Any, str, Any]] = {}
_REFS_LOCK = threading.RLock()  # re-entrant: a weak-reference callback may run inside object_ref (GC)


def _forget(key: int, weak: Any) -> None:
    with _REFS_LOCK:
        if key in _REFS and _REFS[key][0] is weak:
            del _REFS[key]


def object_ref(ray: Any, obj: Any) -> Any:
    """``obj`` in Ray's object store, put there once for as long as ``obj`` lives in this process
    (a training set shared by a sweep's teacher, Full baseline and every cell is one copy, not one
    per task). Objects that cannot be weakly referenced (numbers, strings, tuples) are put each
    time. A shared object must not be changed in place while it is in use (Kedro's inputs never are)."""
    job = ray.get_runtime_context().get_job_id()
    key = id(obj)
    with _REFS_LOCK:
        entry = _REFS.get(key)
        if entry is not None and entry[0]() is obj and entry[1] == job:
            return entry[2]
        ref = ray.put(obj)
        try:
            weak = weakref.ref(obj, lambda w, key=key: _forget(key, w))
        except TypeError:
            return ref
        _REFS[key] = (weak, job, ref)
        log.info("put a %s into Ray's object store (one copy for every task sharing it)", type(obj).__name__)
        return ref


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[tuple],
    compute: dict[str, Any] | None = None,
    on_result: Callable[[int, Any], None] | None = None,
    shared: tuple = (),
    desc: str = "tasks",
    progress: bool = True,
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*shared, *tasks[i])`` for every ``i``; yield ``(i, result)`` as results come back.

    Args:
        fn: a module-level (picklable) function.
        tasks: the per-task arguments.
        compute: the ``compute`` parameter group (backend, address, resources, retries).
        on_result: called with ``(i, result)`` before each result is yielded.
        shared: arguments common to every task (put once into Ray's object store, see :func:`object_ref`).
        desc: the progress bar's label.
        progress: show the bar (only on a terminal).

    Yields:
        ``(i, result)``: in order for the local backend, in completion order for Ray.

    Raises:
        ComputeError: Ray unavailable or unreachable (before any task runs).
        Stopped: :func:`request_stop` was called (Ray tasks still in flight are cancelled; those
            that had already finished still come back first).
        Whatever ``fn`` raised, for a task that failed after its retries.
    """
    cfg = compute_settings(compute)
    if _STOP.is_set():
        raise Stopped(f"{desc}: not started, the run is stopping")
    if cfg["backend"] == "ray":
        connect(cfg)  # a bad address fails here, before the bar or any task
    bar = _BOARD.open(len(tasks), desc, progress)
    try:
        if cfg["backend"] == "local":
            for i, args in enumerate(tasks):
                if _STOP.is_set():
                    raise Stopped(f"{desc}: stopped after {i} of {len(tasks)} task(s)")
                bar.update(running=1)
                result = fn(*shared, *args)
                bar.update(done=1, running=0)
                if on_result is not None:
                    on_result(i, result)
                yield i, result
            return
        yield from _run_ray(fn, tasks, cfg, on_result, shared, bar)
    finally:
        bar.close(desc)


def _run_ray(fn, tasks, cfg, on_result, shared, bar) -> Iterator[tuple[int, Any]]:
    ray = connect(cfg)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    name = desc_name(fn)
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    attempts = ray.remote(_Attempts).options(num_cpus=0, scheduling_strategy=here).remote()
    remote = ray.remote(_call_on_node).options(
        name=name,
        num_cpus=float(cfg["cpus_per_task"]),
        num_gpus=float(cfg["gpus_per_task"]),
        max_retries=int(cfg["max_retries"]),
        retry_exceptions=False,
    )
    fn_ref = ray.put(fn)
    shared_refs = [object_ref(ray, x) for x in shared]
    threads = task_threads(cfg["cpus_per_task"])
    pending: dict[Any, int] = {}

    def count_retries() -> None:
        try:
            bar.update(retried=int(ray.get(attempts.retried.remote(), timeout=10)))
        except Exception:  # noqa: BLE001 - counting is best effort, never fails the run
            pass

    try:
        for i, args in enumerate(tasks):
            pending[remote.remote(fn_ref, attempts, name, i, threads, *shared_refs, *args)] = i
        while pending:
            stopping = _STOP.is_set()
            if stopping:  # the tasks that already finished still come back (their work is kept)
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            else:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                count_retries()
            for ref in done:
                i = pending.pop(ref)
                try:
                    node, result = ray.get(ref)
                except Exception:
                    bar.update(failed=bar.counts["failed"] + 1, running=len(pending))
                    raise  # the other tasks are cancelled below
                bar.update(done=1, running=len(pending))
                log.info("%s %d came back from node %s", name, i, node)
                if on_result is not None:
                    on_result(i, result)
                yield i, result
            if stopping and pending:
                raise Stopped(f"{name}: stopped, {len(pending)} task(s) cancelled")
            bar.update(running=len(pending))
        count_retries()
    except BaseException:  # a failure, Stopped, Ctrl-C in this thread, or the caller closing early
        _cancel(ray, list(pending))
        raise
    finally:
        ray.kill(attempts)


def _cancel(ray: Any, refs: list[Any]) -> None:
    """Cancel ``refs``: pending tasks never start, running ones are killed (their worker
    process ends); finished ones are unaffected. Best effort, never raises."""
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - already finished, or Ray is going away
            pass
    if refs:
        log.info("cancelled %d Ray task(s)", len(refs))


def run_one(fn: Callable[..., Any], args: tuple, compute: dict[str, Any] | None = None, desc: str = "task",
            progress: bool = True, shared: tuple = ()) -> Any:
    """``fn(*shared, *args)`` as one task (:func:`run_tasks` with a single item): in this process,
    or on the Ray cluster while this thread waits for it. Kedro's ``ThreadRunner`` (chosen by
    ``kedro run`` for a sweep when ``compute.backend`` is ``ray``) then keeps one such task in
    flight per node that is ready, e.g. every cell of a table sweep at once; a training set
    passed in ``shared`` is one object-store copy for all of them."""
    with contextlib.closing(run_tasks(fn, [args], compute, desc=desc, progress=progress, shared=shared)) as results:
        for _, result in results:
            return result
    raise RuntimeError(f"{desc}: the task returned nothing")  # pragma: no cover - run_tasks yields once per task


def desc_name(fn: Callable[..., Any]) -> str:
    """The Ray task name for ``fn`` (its qualified name)."""
    return getattr(fn, "__qualname__", getattr(fn, "__name__", "task"))
