"""Configuration and results of one distillation run (MTT or STM), and the engine's errors."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from galaxy_distillation.errors import UserError

__all__ = [
    "METHODS",
    "DISTILL_MEMORY_MODES",
    "MEMORY_MODES",
    "STOP_RULES",
    "SELECTIONS",
    "DistillationError",
    "DistillConfigError",
    "DistillationDivergedError",
    "DistillConfig",
    "IterationRecord",
    "DistillResult",
]

METHODS = ("stm", "mtt")
MEMORY_MODES = ("unrolled", "checkpoint")  # of one unroll (student.unroll_student)
#: A Distiller's: the unroll's, ``graphed`` (checkpoint with each step a replayed program: .graphs) and ``auto``.
DISTILL_MEMORY_MODES = (*MEMORY_MODES, "graphed", "auto")
STOP_RULES = ("paper", "code")
SELECTIONS = ("final", "best_train")


class DistillationError(UserError, RuntimeError):
    """Base class of distillation errors."""


class DistillConfigError(DistillationError, ValueError):
    """Invalid distillation configuration or inputs."""


class DistillationDivergedError(DistillationError):
    """Too many consecutive non-finite steps."""


@dataclass(kw_only=True)
class DistillConfig:
    """Hyper-parameters of one distillation run. No defaults here: build it from the typed
    parameters (``galaxy_distillation.params.DistillParams.engine_config``), the one home of
    the defaults.

    Attributes:
        method: ``"stm"`` (self-adaptive, log-space step size) or ``"mtt"``.
        ipc: synthetic images per class.
        syn_steps: N, inner student steps per iteration.
        expert_epochs: M, expert epochs to match (STM forces 1).
        max_start_epoch: MTT draws ``t`` in ``[0, max_start_epoch)``; STM's pool ``T`` never
            exceeds it (nor ``expert epochs - 1``).
        iterations: maximum number of distillation iterations.
        lr_img: SGD learning rate of the pixels.
        lr_lr: SGD learning rate of the step size (``None``: 0.01 for STM, 1e-5 for MTT).
        lr_init: alpha0, the initial student step size.
        img_momentum, lr_momentum: SGD momenta of the two optimisers.
        batch_syn: inner minibatch size (``None`` = full synthetic set every step).
        dsa_strategy: DSA strategy for the inner steps ("" / "none" disables it).
        lam: STM lambda; grow when ``r < -lam * sqrt(1/(n-2))``.
        test_every: STM trend test whenever the validation history length n is a multiple of it.
        max_iter_stage: stop rule length (see ``stop_rule``).
        stop_rule: ``"paper"`` (stop when a stage lasts ``max_iter_stage`` iterations without
            expansion) or ``"code"`` (past ``n > max_iter_stage`` freeze T, decay lr_img by
            ``lr_img_decay`` every ``lr_img_decay_every`` iterations, stop below ``min_lr_img``).
        loss_rising_rule: also grow when ``r > rising_lam * sigma`` at n = 10, 30, 50, ...
        memory_mode: ``"unrolled"`` (one graph over N steps) or ``"checkpoint"`` (each inner
            step recomputed in backward; memory flat in N, identical gradient) or ``"graphed"``
            (checkpoint with each inner step and its backward one replayed program: a CUDA graph on
            a GPU, :mod:`.graphs`; the checkpoint mode's numbers) or ``"auto"`` (CPU: unrolled; CUDA:
            the fastest that fits, by a short timed probe at the first step, logged and kept in the
            checkpoint).
        checkpoint_every: save a resumable checkpoint every this many iterations (0 = never).
        seed: seed of every random draw.
        max_bad_steps: consecutive rejected steps before ``DistillationDivergedError``.
        bad_step_lr_factor: lr_img multiplier after a rejected step.
        init: ``"real"`` or ``"noise"`` initial images.
        log_lr: learn the step size in log space (``None``: True for STM, False for MTT).
        eval_every: call ``eval_hook`` every this many iterations (0 = never).
        selection: which images :meth:`Distiller.result` returns: ``"final"`` (the last ones) or
            ``"best_train"`` (those of the quick evaluation with the highest ``train_acc``, the
            accuracy on the real *training* set as the STM code selects; never test accuracy).
        expert_cache: number of experts kept in memory.
    """

    method: str
    ipc: int
    syn_steps: int
    expert_epochs: int
    max_start_epoch: int
    iterations: int
    lr_img: float
    lr_lr: float | None
    lr_init: float
    img_momentum: float
    lr_momentum: float
    batch_syn: int | None
    dsa_strategy: str
    lam: float
    rising_lam: float
    test_every: int
    max_iter_stage: int
    stop_rule: str
    loss_rising_rule: bool
    min_lr_img: float
    lr_img_decay: float
    lr_img_decay_every: int
    memory_mode: str
    checkpoint_every: int
    seed: int
    max_bad_steps: int
    bad_step_lr_factor: float
    init: str
    log_lr: bool | None
    eval_every: int
    expert_cache: int
    selection: str

    def validate(self) -> None:
        """Raise :class:`DistillConfigError` naming the first bad field."""
        if self.method not in METHODS:
            raise DistillConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.memory_mode not in DISTILL_MEMORY_MODES:
            raise DistillConfigError(f"memory_mode must be one of {DISTILL_MEMORY_MODES}, got {self.memory_mode!r}")
        if self.selection not in SELECTIONS:
            raise DistillConfigError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.selection == "best_train" and self.eval_every < 1:
            raise DistillConfigError("selection 'best_train' needs eval_every >= 1 (quick evaluations on the train set)")
        if self.stop_rule not in STOP_RULES:
            raise DistillConfigError(f"stop_rule must be one of {STOP_RULES}, got {self.stop_rule!r}")
        for name in ("ipc", "syn_steps", "expert_epochs", "max_start_epoch", "test_every", "max_bad_steps",
                     "lr_img_decay_every", "expert_cache"):
            if int(getattr(self, name)) < 1:
                raise DistillConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("iterations", "checkpoint_every", "eval_every", "max_iter_stage"):
            if int(getattr(self, name)) < 0:
                raise DistillConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_syn is not None and self.batch_syn < 1:
            raise DistillConfigError(f"batch_syn must be >= 1 or None, got {self.batch_syn}")
        if not self.lr_init > 0:
            raise DistillConfigError(f"lr_init must be > 0, got {self.lr_init}")
        if not self.lr_img > 0:
            raise DistillConfigError(f"lr_img must be > 0, got {self.lr_img}")
        if self.lam <= 0:
            raise DistillConfigError(f"lam must be > 0, got {self.lam}")

    @property
    def effective_expert_epochs(self) -> int:
        """M actually used: 1 for STM, ``expert_epochs`` for MTT."""
        return 1 if self.method == "stm" else int(self.expert_epochs)

    @property
    def effective_lr_lr(self) -> float:
        """Step-size learning rate actually used."""
        if self.lr_lr is not None:
            return float(self.lr_lr)
        return 0.01 if self.method == "stm" else 1e-5

    @property
    def effective_log_lr(self) -> bool:
        """Whether the step size is learned in log space."""
        return (self.method == "stm") if self.log_lr is None else bool(self.log_lr)


@dataclass
class IterationRecord:
    """What happened in one distillation iteration (all plain types)."""

    iteration: int
    loss: float
    val_loss: float | None
    T: int
    r: float | None
    threshold: float | None
    lr: float
    lr_img: float
    start_epoch: int
    expert: int
    seconds: float
    rejected: bool
    grew: bool = False
    eval: dict[str, float] | None = None


@dataclass
class DistillResult:
    """Outcome of :meth:`Distiller.run`.

    Attributes:
        images: ``(ipc * num_classes, C, H, W)`` float32 CPU synthetic images (class-major).
        labels: ``(ipc * num_classes,)`` int64 labels.
        lr: learned student step size alpha.
        history: one :class:`IterationRecord` per iteration done so far (including resumed ones).
        stop_reason: ``"max_iterations"``, ``"no_expansion"``, ``"lr_img_below_min"`` or
            ``"interrupted"`` (``stop_after`` reached; resumable).
        n_rejected_steps: number of rejected (non-finite) steps.
        T: final STM epoch pool (MTT: ``max_start_epoch``).
        iterations_done: iterations completed.
        selection: ``"final"`` or ``"best_train"`` (how ``images``/``lr`` were chosen).
        selected_iteration: iterations done when the returned images were taken.
        selected_train_acc: their quick-evaluation training-set accuracy (``best_train`` only).
    """

    images: torch.Tensor
    labels: torch.Tensor
    lr: float
    history: list[IterationRecord]
    stop_reason: str
    n_rejected_steps: int
    T: int
    iterations_done: int
    selection: str = "final"
    selected_iteration: int | None = None
    selected_train_acc: float | None = None
