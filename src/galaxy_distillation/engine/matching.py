"""Trajectory matching: MTT (Cazenavette et al. 2022) and STM (Guan et al. 2023).

One distillation iteration (see ``docs/method.md``):

1. pick an expert and a start epoch ``t`` (MTT: uniform in ``[0, max_start_epoch)``;
   STM: ``t = it mod T``),
2. STM only: validation loss = the same ``N``-step student run from ``expert[T]`` to
   ``expert[T+1]`` without a graph, measured before the image update,
3. student ``theta_0 = expert[t]``; ``N`` inner SGD steps on the DSA-augmented synthetic set,
   ``theta_{i+1} = theta_i - alpha * grad CE(theta_i)``, keeping the graph,
4. loss ``||theta_N - expert[t+M]||^2 / ||expert[t] - expert[t+M]||^2`` is back-propagated to
   the pixels and to the step size (``alpha`` directly for MTT, ``log alpha`` for STM),
5. a non-finite loss / gradient / step size rejects the step (nothing changes, ``lr_img``
   halves); otherwise both SGD optimisers step,
6. STM: every ``test_every`` validation points the trend test may grow the epoch pool ``T``.

Every random draw comes from a ``torch.Generator`` seeded by ``(config.seed, iteration,
slot)``: runs are reproducible and a resumed run replays exactly the same draws.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .autotune import probe_memory_mode, resident_experts
from .checkpoint import CheckpointStore, as_store
from .distill_config import (
    DistillationDivergedError,
    DistillConfig,
    DistillConfigError,
    DistillResult,
    IterationRecord,
)
from .distill_state import DistillerState
from .draws import StepDraw, draw_slots
from .dsa import DSAParams
from .functional import FlatModel
from .graphs import StepPrograms, unroll_graphed
from .host_reads import backward_one_read, backward_reads
from .networks import build_from_spec
from .schedule import STMSchedule
from .seeding import make_generator, mix_seed
from .student import _as_draw, matching_loss, unroll_student
from .synthetic import init_synthetic
from .trajectories import ExpertSource

__all__ = ["Distiller"]

log = logging.getLogger(__name__)

# Seed "slots" so that the different random streams of one iteration never collide.
_SLOT_CHOICE = 0
_SLOT_TRAIN = 1
_SLOT_VAL = 2

class Distiller(DistillerState):
    """Distil a synthetic set by matching expert trajectories (STM or MTT).

    Args:
        experts: an ``ExpertBank`` (or :class:`InMemoryExperts`): ``len``, ``num_epochs``,
            ``load(i, max_epoch) -> (E+1, P)``.
        train_x: ``(N, C, H, W)`` normalised float training images (used for the "real" init).
        train_y: ``(N,)`` labels.
        num_classes: number of classes.
        config: :class:`DistillConfig`.
        device: where the student runs.
        arch: network spec for ``build_from_spec`` (e.g. ``{"arch": "convnet", "width": 128}``);
            must have the experts' parameter count.
        checkpoint_dir: folder for ``state.pt``, or a checkpoint store (``load() -> bytes | None``,
            ``save(bytes)``, ``delete()``; e.g. ``galaxy_distillation.storage.FileStore`` on an
            object store); ``run`` resumes from it when present. A checkpoint written with a
            different configuration raises ``CheckpointMismatchError``.
        callback: called with each :class:`IterationRecord`.
        eval_hook: ``eval_hook(iteration, images, labels, lr) -> dict | None`` every
            ``config.eval_every`` iterations; its result is stored in the record.
        dsa_params: DSA strengths (default ``DSAParams()``).
        data_key: the data's fingerprint (content), part of the checkpoint's key; default the
            SHA-256 of ``train_x`` and ``train_y``.
    """

    def __init__(self, experts: ExpertSource, train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int,
                 config: DistillConfig, device: torch.device | str, arch: dict[str, Any],
                 checkpoint_dir: str | Path | CheckpointStore | None = None,
                 callback: Callable[[IterationRecord], None] | None = None,
                 eval_hook: Callable[[int, torch.Tensor, torch.Tensor, float], dict[str, float] | None] | None = None,
                 dsa_params: DSAParams | None = None, data_key: str | None = None) -> None:
        config.validate()
        if train_x.dim() != 4:
            raise DistillConfigError(f"train_x must be (N, C, H, W), got shape {tuple(train_x.shape)}")
        if not train_x.is_floating_point():
            raise DistillConfigError(f"train_x must be normalised float images, got {train_x.dtype} (use data.to_float)")
        if len(experts) < 1:
            raise DistillConfigError("the expert bank is empty")
        self.experts = experts
        self.config = config
        self.device = torch.device(device)
        self.arch = dict(arch)
        self.num_classes = int(num_classes)
        self.checkpoint_store = as_store(checkpoint_dir)
        self.checkpoint_dir = Path(checkpoint_dir) if isinstance(checkpoint_dir, (str, Path)) else checkpoint_dir
        self.callback = callback
        self.eval_hook = eval_hook
        # Who writes the checkpoints (e.g. {"mlflow_run_id": ...}; plain strings, stored in each
        # checkpoint) and, after ``run``, where it resumed from (None: started afresh).
        self.run_info: dict[str, str] = {}
        self.resumed_from: dict[str, Any] | None = None
        self.dsa_params = dsa_params
        self.train_x = train_x
        self.train_y = train_y
        self.dtype = train_x.dtype
        self.data_key = data_key  # computed on first use (only a checkpointed run needs it)

        channels, h, w = train_x.shape[1:]
        # the template's own weights are never used (every forward gets a flat parameter vector)
        module = build_from_spec(self.arch, int(channels), self.num_classes, (int(h), int(w)),
                                 generator=make_generator(0))
        self.model = FlatModel(module.to(device=self.device, dtype=self.dtype))

        E = int(experts.num_epochs)
        M = config.effective_expert_epochs
        if config.method == "stm":
            self.T_max = min(int(config.max_start_epoch), E - 1)
            if self.T_max < 1:
                raise DistillConfigError(f"STM needs experts with >= 2 epochs, got {E}")
            self.max_epoch_needed = self.T_max + 1
        else:
            self.T_max = int(config.max_start_epoch)
            self.max_epoch_needed = config.max_start_epoch - 1 + M
            if self.max_epoch_needed > E:
                raise DistillConfigError(
                    f"max_start_epoch={config.max_start_epoch} with expert_epochs={M} needs {self.max_epoch_needed} "
                    f"expert epochs, the experts have {E}"
                )
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        # True: one draw + one copy + one host read per iteration (draws.py, host_reads.py); False: the
        # earlier per-step path, for benchmarks/gpu_suite.py's before/after. Same results; not fingerprinted.
        self.batched_draws = True
        self.memory_mode: str | None = None if config.memory_mode == "auto" else config.memory_mode
        self._draws: dict[int, list[StepDraw]] = {}
        self._programs: StepPrograms | None = None  # memory_mode graphed: the step programs, made on first use
        self._cache_size = int(config.expert_cache)
        first = self._expert(0)
        self._cache_size = resident_experts(self.config.expert_cache, len(experts), first, self.device)
        if first.shape[1] != self.model.numel:
            raise DistillConfigError(
                f"experts have {first.shape[1]} parameters but arch {self.arch} has {self.model.numel}"
            )
        self._init_state()

    # ------------------------------------------------------------------ state

    def _init_state(self) -> None:
        cfg = self.config
        gen = torch.Generator().manual_seed(mix_seed(cfg.seed, -1))
        images, labels = init_synthetic(self.train_x, self.train_y, self.num_classes, cfg.ipc, cfg.init, gen)
        self.images = images.to(device=self.device, dtype=self.dtype).detach().requires_grad_(True)
        self.labels = labels.to(self.device)
        lr0 = torch.tensor(cfg.lr_init, dtype=self.dtype, device=self.device)
        self.lr_param = (lr0.log() if cfg.effective_log_lr else lr0).detach().requires_grad_(True)
        self.opt_img = torch.optim.SGD([self.images], lr=cfg.lr_img, momentum=cfg.img_momentum)
        self.opt_lr = torch.optim.SGD([self.lr_param], lr=cfg.effective_lr_lr, momentum=cfg.lr_momentum)
        self.schedule = STMSchedule(
            self.T_max if cfg.method == "stm" else max(self.T_max, 1), lam=cfg.lam, test_every=cfg.test_every,
            max_iter_stage=cfg.max_iter_stage, stop_rule=cfg.stop_rule, loss_rising_rule=cfg.loss_rising_rule,
            rising_lam=cfg.rising_lam, lr_img_decay=cfg.lr_img_decay, lr_img_decay_every=cfg.lr_img_decay_every,
            min_lr_img=cfg.min_lr_img,
        )
        self.iteration = 0
        self.history: list[IterationRecord] = []
        self.n_rejected = 0
        self.consecutive_bad = 0
        self.stop_reason: str | None = None
        # best_train selection: the images of the quick evaluation with the best train accuracy
        self.best: dict[str, Any] | None = None

    @property
    def lr_img(self) -> float:
        """Current pixel learning rate."""
        return float(self.opt_img.param_groups[0]["lr"])

    def _set_lr_img(self, value: float) -> None:
        for group in self.opt_img.param_groups:
            group["lr"] = float(value)

    def step_size(self) -> torch.Tensor:
        """Current student step size alpha (scalar tensor, differentiable w.r.t. ``lr_param``)."""
        return self.lr_param.exp() if self.config.effective_log_lr else self.lr_param

    # ------------------------------------------------------------------ one iteration

    def _expert(self, i: int) -> torch.Tensor:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        traj = self.experts.load(i, max_epoch=self.max_epoch_needed)
        if traj.shape[0] < self.max_epoch_needed + 1:
            raise DistillConfigError(
                f"expert {i} has {traj.shape[0] - 1} epochs, need {self.max_epoch_needed}"
            )
        traj = traj.to(device=self.device, dtype=self.dtype)
        self._cache[i] = traj
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return traj

    def _seeds(self, iteration: int, slot: int) -> list[int] | list[StepDraw]:
        """The inner steps' seeds of ``(iteration, slot)``, or their draws when :meth:`_draw_iteration` made them."""
        if slot in self._draws:
            return self._draws[slot]
        return [mix_seed(self.config.seed, iteration, slot, i) for i in range(self.config.syn_steps)]

    def _step_draws(self, iteration: int, slot: int) -> list[StepDraw]:
        """The inner steps' draws of ``(iteration, slot)`` on the device (made one by one when not made at once)."""
        cfg = self.config
        return [_as_draw(s, self.images, cfg.batch_syn, cfg.dsa_strategy, self.dsa_params)
                for s in self._seeds(iteration, slot)]

    @property
    def programs(self) -> StepPrograms:
        """``memory_mode: graphed``: the student's step programs (CUDA graphs on a GPU), made on first use."""
        if self._programs is None:
            self._programs = StepPrograms(self.model, self.dsa_params)
        return self._programs

    def _draw_iteration(self, iteration: int) -> None:
        """Make all the inner-step draws of ``iteration`` (training + STM validation) and copy them once."""
        self._draws = {}
        if self.batched_draws:
            slots = [_SLOT_TRAIN] + ([_SLOT_VAL] if self.config.method == "stm" else [])
            self._draws = draw_slots({slot: self._seeds(iteration, slot) for slot in slots}, self.images,
                                     self.config.batch_syn, self.config.dsa_strategy, self.dsa_params)

    def _choose(self, iteration: int) -> tuple[int, int]:
        """(expert index, start epoch) of ``iteration``."""
        gen = torch.Generator().manual_seed(mix_seed(self.config.seed, iteration, _SLOT_CHOICE))
        expert = int(torch.randint(len(self.experts), (1,), generator=gen))
        if self.config.method == "stm":
            start = iteration % self.schedule.T
        else:
            start = int(torch.randint(self.config.max_start_epoch, (1,), generator=gen))
        return expert, start

    def _unroll(self, theta0: torch.Tensor, iteration: int, slot: int, create_graph: bool = True) -> torch.Tensor:
        """The N-step student run from ``theta0`` with the draws of ``(iteration, slot)`` in the resolved memory
        mode (``graphed``: through :attr:`programs`); ``create_graph=False``: no graph (the validation pass)."""
        cfg, mode = self.config, self.resolved_memory_mode()
        if mode == "graphed":
            return unroll_graphed(self.programs, theta0, self.images, self.labels, self.step_size(),
                                  self._step_draws(iteration, slot), create_graph)
        images, alpha = self.images, self.step_size()
        if not create_graph:
            images, alpha = images.detach(), alpha.detach()
        return unroll_student(self.model, theta0, images, self.labels, alpha, self._seeds(iteration, slot),
                              cfg.dsa_strategy, self.dsa_params, cfg.batch_syn, memory_mode=mode,
                              create_graph=create_graph)

    def validation_loss(self, iteration: int, expert: int) -> torch.Tensor:
        """STM validation: student run ``expert[T] -> expert[T+1]`` without a graph: a 0-d device tensor
        (read with the iteration's other scalars in one host sync; :meth:`step` also accepts a float)."""
        traj = self._expert(expert)
        T = self.schedule.T
        theta_n = self._unroll(traj[T], iteration, _SLOT_VAL, create_graph=False)
        with torch.no_grad():
            return matching_loss(theta_n, traj[T], traj[T + 1])

    def compute_loss(self, iteration: int, expert: int, start: int) -> torch.Tensor:
        """Differentiable matching loss of ``iteration`` (graph to images and ``lr_param``)."""
        traj = self._expert(expert)
        M = self.config.effective_expert_epochs
        theta_n = self._unroll(traj[start], iteration, _SLOT_TRAIN)
        return matching_loss(theta_n, traj[start], traj[start + M])

    def resolved_memory_mode(self) -> str:
        """``memory_mode`` with ``auto`` resolved once (CPU: unrolled; CUDA: :func:`.autotune.probe_memory_mode`,
        the fastest of unrolled, checkpoint and graphed); logged, and kept in the checkpoint so that a
        resumed run uses the same mode."""
        if self.memory_mode is None:
            self.memory_mode = "unrolled" if self.device.type != "cuda" else probe_memory_mode(self)
            log.info("distill.memory_mode auto -> %s on %s", self.memory_mode, self.device)
        return self.memory_mode

    def prepare(self) -> tuple[int, int, int]:
        """The start of an iteration: its expert and start epoch, the memory mode (``auto``: probed once,
        before this iteration's draws) and all its draws. Returns ``(iteration, expert, start)``."""
        it = self.iteration
        expert, start = self._choose(it)
        self.resolved_memory_mode()
        self._draw_iteration(it)
        return it, expert, start

    def zero_grads(self) -> None:
        self.opt_img.zero_grad(set_to_none=True)
        self.opt_lr.zero_grad(set_to_none=True)

    def step(self) -> IterationRecord:
        """Run one distillation iteration and return its record."""
        t0 = time.perf_counter()
        T_now = self.T_now
        it, expert, start = self.prepare()
        val_t = self.validation_loss(it, expert) if self.config.method == "stm" else None
        self.zero_grads()
        alpha_t = self.step_size().detach().clone()
        loss = self.compute_loss(it, expert, start)
        ok, loss_value, alpha_used, val = (backward_one_read if self.batched_draws else backward_reads)(
            loss, alpha_t, val_t, self.images, self.lr_param)
        return self.conclude(it, expert, start, T_now, ok, loss_value, alpha_used, val, time.perf_counter() - t0)

    def conclude(self, it: int, expert: int, start: int, T_now: int, ok: bool, loss_value: float, alpha_used: float,
                 val: float | None, seconds: float) -> IterationRecord:
        """The end of an iteration, after its backward pass and its one read: step or reject, the STM
        schedule, the quick evaluation; appends and returns the record."""
        cfg = self.config
        self._draws = {}
        if ok:
            self.opt_img.step()
            self.opt_lr.step()
            self.consecutive_bad = 0
        else:
            self.zero_grads()
            self.n_rejected += 1
            self.consecutive_bad += 1
            self._set_lr_img(self.lr_img * cfg.bad_step_lr_factor)
            if self.consecutive_bad >= cfg.max_bad_steps:
                raise DistillationDivergedError(
                    f"{self.consecutive_bad} consecutive non-finite steps at iteration {it} "
                    f"(lr_img now {self.lr_img:.3g}, step size {alpha_used:.3g}); lower lr_img/lr_lr"
                )

        r = threshold = None
        grew = False
        if cfg.method == "stm":
            decision = self.schedule.observe(it, val, self.lr_img)
            r, threshold, grew = decision.r, decision.threshold, decision.grew
            self._set_lr_img(decision.lr_img)
            if decision.stop is not None:
                self.stop_reason = decision.stop
        self.iteration = it + 1
        eval_result = None
        if self.eval_hook is not None and cfg.eval_every > 0 and self.iteration % cfg.eval_every == 0:
            eval_result = self.eval_hook(self.iteration, self.images.detach().clone(), self.labels,
                                         float(self.step_size().detach()))
            self._consider(eval_result)
        record = IterationRecord(
            iteration=it, loss=float(loss_value), val_loss=val, T=T_now, r=r, threshold=threshold,
            lr=alpha_used, lr_img=self.lr_img, start_epoch=start, expert=expert,
            seconds=seconds, rejected=not ok, grew=grew,
            eval=None if eval_result is None else {k: float(v) for k, v in eval_result.items()},
        )
        self.history.append(record)
        return record

    # ------------------------------------------------------------------ run

    def run(self, progress: bool = True, stop_after: int | None = None, on_mismatch: str = "raise") -> DistillResult:
        """Distil until a stop rule fires or ``config.iterations`` is reached.

        Resumes from the checkpoint (``checkpoint_dir/state.pt`` or the store) when it exists (same
        fingerprint required).
        Saves a checkpoint every ``checkpoint_every`` iterations and when the call returns.

        Args:
            progress: show a tqdm bar.
            stop_after: return after this many iterations in this call (stop_reason
                ``"interrupted"``; the checkpoint lets a later call continue exactly).
            on_mismatch: a checkpoint written with other settings: ``"raise"``
                (``CheckpointMismatchError``) or ``"restart"`` (move it aside, never delete it,
                log a warning and start afresh).
        """
        self.resume(on_mismatch)
        if self.stop_reason is not None:
            return self.result()
        done_this_call = 0
        bar = tqdm(total=self.config.iterations, initial=self.iteration, disable=not progress,
                   desc=f"distil[{self.config.method}]")
        try:
            while self.active:
                if stop_after is not None and done_this_call >= stop_after:
                    break
                rec = self.step()
                done_this_call += 1
                bar.update(1)
                bar.set_postfix(loss=f"{rec.loss:.4f}", T=rec.T, lr=f"{rec.lr:.3g}")
                self.after_iteration(rec)
        finally:
            bar.close()
        return self.finish()
