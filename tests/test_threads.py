"""Threads give the sequential results (issue 18): every random draw comes from an explicit
generator, so node functions and local tasks run side by side in one process (Kedro's
``ThreadRunner``, several sweep cells at once) and compute exactly what they compute alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from galaxy_distillation.compute import run_one
from galaxy_distillation.engine.experts import train_expert_group
from galaxy_distillation.engine.seeding import derive_seed
from galaxy_distillation.params import ArchParams
from galaxy_distillation.pipelines.evaluation.nodes import evaluate_random
from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.teacher.nodes import evaluate_full_set


def _jobs(tiny_model_input, tiny_params):
    """Experts (the teacher's engine call), Full baselines and Random baselines (node functions),
    each with its own seed: small shapes, but a network wide enough that its construction takes a while."""
    model = ArchParams(width=32, depth=2)
    teacher = tiny_params["teacher"].model_copy(update={"epochs": 1})
    evaluation = tiny_params["evaluation"].model_copy(update={"epochs": 1, "full_epochs": 1, "full_n_nets": 2})
    data, _ = prepare(tiny_model_input, teacher)
    config = teacher.engine_config(model)
    jobs = []
    for k in range(3):
        ev = evaluation.model_copy(update={"seed": k})
        jobs.append(lambda k=k: [t.params for t in train_expert_group(
            data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes, config,
            seeds=[derive_seed(9, k), derive_seed(9, k, 1)], device=torch.device("cpu"), progress=False)])
        jobs.append(lambda ev=ev: evaluate_full_set(data, ev, model, "cpu", False))
        jobs.append(lambda ev=ev: evaluate_random(data, {"meta": {"lr": 0.01}}, ev, model, 1,
                                                  "cpu", False))
    return jobs


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a if k != "seconds")
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_node_functions_in_threads_give_exactly_the_sequential_results(tiny_model_input, tiny_params):
    torch.set_num_threads(1)
    jobs = _jobs(tiny_model_input, tiny_params)
    sequential = [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        threaded = list(pool.map(lambda job: job(), jobs))
    differ = [i for i, (s, t) in enumerate(zip(sequential, threaded)) if not _same(s, t)]
    assert differ == [], f"{len(differ)} of {len(jobs)} jobs differ when run in threads: {differ}"


def test_local_tasks_of_several_threads_run_side_by_side():
    """What Kedro's ThreadRunner does with several nodes on the local backend: their tasks overlap
    (the process lock that ran them one at a time is gone)."""
    meet = threading.Barrier(3, timeout=10)

    def work(x: int) -> int:
        meet.wait()  # returns only when all three tasks are inside at once
        return x * x

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(run_one, work, (i,), {"backend": "local"}, progress=False) for i in range(3)]
        assert [f.result(timeout=60) for f in futures] == [0, 1, 4]
