"""Measurements of benchmarks/gpu_suite.py: one STM iteration, its op / sync / kernel counts, expert
training and evaluation throughput. Each function builds what it needs, measures, and frees it."""

from __future__ import annotations

import gc
import statistics
import time
import warnings
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from galaxy_distillation.engine import Distiller, InMemoryExperts
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.experts import train_expert_group
from galaxy_distillation.engine.functional import FlatModel
from galaxy_distillation.engine.networks import build_from_spec
from galaxy_distillation.params import ArchParams, DistillParams, EvaluationParams, TeacherParams


@dataclass(frozen=True)
class Shape:
    key: str
    size: int
    classes: int
    ipc: int
    steps: int

    @property
    def label(self) -> str:
        return f"{self.size}px {self.classes}cl IPC {self.ipc} N {self.steps}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def build_distiller(shape: Shape, mode: str, device: torch.device, width: int, batched: bool = True,
                    seed: int = 0) -> Distiller:
    """A Distiller at ``shape`` on a random-walk expert of the right size (timing does not depend on values)."""
    arch = {"arch": "convnet", "width": width, "depth": 3}
    flat = FlatModel(build_from_spec(arch, 3, shape.classes, (shape.size, shape.size)))
    init = flat.flat_params()
    g = torch.Generator().manual_seed(0)
    traj = torch.cat([init[None], init[None] + 0.01 * torch.randn(2, flat.numel, generator=g).cumsum(0)])
    x = torch.randn(shape.classes * shape.ipc, 3, shape.size, shape.size, generator=g)
    y = torch.arange(shape.classes).repeat_interleave(shape.ipc)
    cfg = DistillParams(syn_steps=shape.steps, iterations=10**6, lr_img=100.0, lr_init=0.01, max_start_epoch=1,
                        memory_mode=mode, checkpoint_every=0, max_iter_stage=0, seed=seed).engine_config("stm", shape.ipc, "real")
    d = Distiller(InMemoryExperts([traj]), x, y, shape.classes, cfg, device, arch)
    d.batched_draws = batched
    return d


def time_stm(shape: Shape, mode: str, device: torch.device, width: int, iters: int, budget_s: float,
             batched: bool = True) -> dict:
    """Median seconds per STM iteration (after one warm-up) and the peak device memory (GiB; CUDA only)."""
    d = build_distiller(shape, mode, device, width, batched)
    try:
        if device.type == "cuda":
            sync(device)
            torch.cuda.reset_peak_memory_stats(device)
        t_start = time.perf_counter()
        for _ in range(2 if mode == "graphed" else 1):  # warm-up (cuDNN choices, allocator; graphed: the captures)
            d.step()  # counted in the peak, not in the time
        sync(device)
        times = []
        while len(times) < iters and (not times or (time.perf_counter() - t_start) < budget_s):
            t0 = time.perf_counter()
            d.step()
            sync(device)
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        return {"sec": statistics.median(times) if times else None, "n": len(times), "peak_gib": peak}
    finally:
        del d
        free(device)


# ----------------------------------------------------------------------------- counting

_RANDOM_OPS = {"randint", "randperm", "rand", "random_", "uniform_", "normal_", "bernoulli", "bernoulli_", "randn"}


_VIEWS = {"_unsafe_view", "_reshape_alias", "lift_fresh"}  # views that their schema does not mark as such


class _OpCounter(TorchDispatchMode):
    """Counts ATen ops (below autograd) and scalar reads of non-random tensors (``_local_scalar_dense``).

    A scalar read of a tensor that a generator just drew (``int(torch.randint(..., generator=g))``
    on the CPU generator) is not a device sync and is not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.compute = 0  # ops that are not views (view, permute, expand, detach, ...: no kernel on CUDA)
        self.scalar_reads = 0
        self._random: dict[int, weakref.ref] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        name = func.overloadpacket.__name__
        if not func.is_view and name not in _VIEWS:
            self.compute += 1
        if name in _RANDOM_OPS and isinstance(out, torch.Tensor):
            self._random[id(out)] = weakref.ref(out)
        elif name == "_local_scalar_dense" and args:
            ref = self._random.get(id(args[0]))
            if ref is None or ref() is not args[0]:
                self.scalar_reads += 1
        return out


@contextmanager
def _count_copies(counter: dict):
    """Counts blocking host-to-device copies (``Tensor.to`` naming a device, from a CPU tensor, not
    ``non_blocking``) and ``Tensor.tolist`` reads, by wrapping the two methods for the block."""
    orig_to, orig_tolist = torch.Tensor.to, torch.Tensor.tolist

    def to(self, *args, **kwargs):  # noqa: ANN001
        names_device = "device" in kwargs or any(isinstance(a, (torch.device, str)) for a in args)
        if names_device and self.device.type == "cpu" and not kwargs.get("non_blocking", False):
            counter["h2d"] += 1
        return orig_to(self, *args, **kwargs)

    def tolist(self):  # noqa: ANN001
        counter["reads"] += 1
        return orig_tolist(self)

    torch.Tensor.to, torch.Tensor.tolist = to, tolist
    try:
        yield counter
    finally:
        torch.Tensor.to, torch.Tensor.tolist = orig_to, orig_tolist


def _cuda_kernels(prof) -> int | None:  # noqa: ANN001
    """Number of GPU kernel (and memcpy/memset) events of a profile: the larger of two ways this torch
    may expose them (``FunctionEvent``s of device type CUDA; the raw kineto events), ``None`` if neither works."""
    counts = []
    try:
        counts.append(sum(1 for e in prof.events() if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA))
    except Exception:  # noqa: BLE001
        pass
    try:
        counts.append(sum(1 for e in prof.profiler.kineto_results.events() if "cuda" in str(e.device_type()).lower()))
    except Exception:  # noqa: BLE001
        pass
    return max(counts) if counts else None


def count_iteration(shape: Shape, mode: str, device: torch.device, width: int, batched: bool) -> dict:
    """ATen ops per inner step, host syncs per iteration and kernels per iteration (one iteration after a warm-up).

    - ``aten_per_step``: ATen ops of one iteration (dispatch level, forward and backward) / (2 N):
      an STM iteration runs N validation steps and N differentiable steps.
    - ``syncs``: blocking host-to-device copies + scalar reads of device tensors + ``tolist`` reads,
      counted by instrumentation (the same on CPU and CUDA); ``syncs_cuda``: on CUDA, the
      synchronising calls ``torch.cuda.set_sync_debug_mode`` reports on the calling thread.
    - ``kernels``: CUDA kernel/memcpy events of ``torch.profiler`` (CUDA), or its ``aten::`` op
      events (CPU).
    """
    d = build_distiller(shape, mode, device, width, batched)
    try:
        d.step()
        sync(device)
        counter = {"h2d": 0, "reads": 0}
        oc = _OpCounter()
        with _count_copies(counter), oc:
            d.step()
            sync(device)
        out = {"aten_per_step": oc.ops / (2 * shape.steps), "syncs": counter["h2d"] + counter["reads"] + oc.scalar_reads,
               "h2d": counter["h2d"], "scalar_reads": counter["reads"] + oc.scalar_reads, "syncs_cuda": None}
        if device.type == "cuda":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    d.step()
                    sync(device)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            out["syncs_cuda"] = sum(1 for w in caught if "synchroniz" in str(w.message).lower())
        out["kernels"], out["launches"] = _profile_step(d, device)
        return out
    finally:
        del d
        free(device)


_LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx", "cudaGraphLaunch",
             "cuGraphLaunch", "cudaMemcpyAsync", "cudaMemsetAsync")


def _profile_step(d: Any, device: torch.device) -> tuple[int | None, int | None]:
    """``(kernels, launches)`` of one ``d.step()`` in ``torch.profiler``: on CUDA its GPU kernel events and the
    runtime's host-side launch calls (kernels, graphs, copies, memsets); on CPU its ``aten::`` events for both."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        d.step()
        sync(device)
    if device.type == "cuda":
        return _cuda_kernels(prof), sum(1 for e in prof.events() if e.name in _LAUNCHES)
    aten = sum(1 for e in prof.events() if e.name.startswith("aten::"))
    return aten, aten


def count_launches(shape: Shape, mode: str, device: torch.device, width: int) -> int | None:
    """Host-side launches of one iteration (:func:`_profile_step`) after two warm-up iterations, which capture a
    graphed run's programs (on CPU: ``aten::`` events; no graphs there, the graphed programs run eagerly)."""
    d = build_distiller(shape, mode, device, width)
    try:
        for _ in range(2):
            d.step()
        sync(device)
        return _profile_step(d, device)[1]
    finally:
        del d
        free(device)


# ----------------------------------------------------------------------------- experts, evaluation

def expert_rate(size: int, classes: int, n_images: int, width: int, device: torch.device, at_once: int,
                epochs: int, compile_: bool = False) -> dict:
    """Images per second of expert training (batch 256, DSA, lr 1e-3; one test pass per epoch), after a warm-up
    (``compile_``: ``teacher.compile``, the warm-up compiles; ``warm_sec`` is its time)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_images, 3, size, size, generator=g)
    y = torch.randint(0, classes, (n_images,), generator=g)
    tx, ty = x[: 5 * classes], torch.arange(classes).repeat(5)
    arch = ArchParams(arch="convnet", width=width, depth=3)
    warm = TeacherParams(epochs=1, compile=compile_).engine_config(arch)
    t0 = time.perf_counter()
    train_expert_group(x[:256], y[:256], tx, ty, classes, warm, seeds=list(range(at_once)), device=device, progress=False)
    sync(device)
    warm_sec = time.perf_counter() - t0
    cfg = TeacherParams(epochs=epochs, compile=compile_).engine_config(arch)
    sync(device)
    t0 = time.perf_counter()
    train_expert_group(x, y, tx, ty, classes, cfg, seeds=list(range(at_once)), device=device, progress=False)
    sync(device)
    sec = time.perf_counter() - t0
    del x, y
    free(device)
    return {"images_per_s": at_once * epochs * n_images / sec, "sec": sec, "warm_sec": warm_sec}


def eval_seconds(shape: Shape, width: int, device: torch.device, epochs: int, use_vmap: bool) -> dict:
    """Seconds of 5 nets x ``epochs`` epochs on an IPC set (one test pass), and that x 1000 / epochs."""
    g = torch.Generator().manual_seed(0)
    n = shape.classes * shape.ipc
    x = torch.randn(n, 3, shape.size, shape.size, generator=g)
    y = torch.arange(shape.classes).repeat_interleave(shape.ipc)
    tx, ty = x[: shape.classes], torch.arange(shape.classes)
    arch = {"arch": "convnet", "width": width, "depth": 3}
    params = EvaluationParams(use_vmap=use_vmap, vmap_on_cpu=use_vmap)
    evaluate_images(x, y, tx, ty, shape.classes, 0.01, params.engine_config(arch, 5, 1), seed=0, device=device,
                    progress=False)  # warm-up
    sync(device)
    res = evaluate_images(x, y, tx, ty, shape.classes, 0.01, params.engine_config(arch, 5, epochs), seed=0,
                          device=device, progress=False)
    sync(device)
    free(device)
    return {"sec": res.seconds, "sec_1000": res.seconds * 1000.0 / epochs, "used_vmap": res.used_vmap}
