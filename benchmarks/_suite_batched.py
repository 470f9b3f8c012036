"""benchmarks/gpu_suite.py's rows for batched distillations (engine/batched.py): K runs that share a
shape advanced as one program per iteration, against one run alone, per distillation-iteration."""

from __future__ import annotations

import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

import _suite_measure as M
from galaxy_distillation.engine.batched import BatchedDistiller


def batched_costs(shape: M.Shape, mode: str, device: torch.device, width: int, k: int, iters: int,
                  budget_s: float) -> dict:
    """Per distillation-iteration costs of ``k`` STM runs (seeds 0..k-1) advanced by one
    :class:`BatchedDistiller` (``k = 0``: one plain :class:`Distiller`, the path of a run alone; ``k = 1``:
    the batched program of one run, ``single_alone=False``, which the default would step alone).

    - ``aten``: ATen ops (dispatch counter, forward and backward) of one iteration of all the runs / runs;
    - ``aten_compute``: the same without the view ops (view, permute, expand, detach, ...: no kernel on CUDA);
    - ``events``: CUDA kernel events of ``torch.profiler`` (CUDA) or its ``aten::`` op events (CPU) / runs;
    - ``sec``: median seconds of one iteration of all the runs (after one warm-up) / runs.
    """
    n = max(k, 1)
    runs = [M.build_distiller(shape, mode, device, width, seed=s) for s in range(n)]
    step = runs[0].step if k == 0 else BatchedDistiller(runs, single_alone=False).step
    try:
        step()  # warm-up (experts cached, cuDNN choices)
        M.sync(device)
        oc = M._OpCounter()
        with oc:
            step()
            M.sync(device)
        cuda = device.type == "cuda"
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
            step()
            M.sync(device)
        events = M._cuda_kernels(prof) if cuda else sum(1 for e in prof.events() if e.name.startswith("aten::"))
        times: list[float] = []
        t_start = time.perf_counter()
        while len(times) < iters and (not times or time.perf_counter() - t_start < budget_s):
            t0 = time.perf_counter()
            step()
            M.sync(device)
            times.append(time.perf_counter() - t0)
        return {"aten": oc.ops / n, "aten_compute": oc.compute / n, "events": None if events is None else events / n,
                "sec": statistics.median(times) / n, "n": len(times)}
    finally:
        del runs, step
        M.free(device)
