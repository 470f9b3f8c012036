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

import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoint import CheckpointMismatchError, config_fingerprint, load_state, save_state
from .dsa import DEFAULT_DSA_STRATEGY, DSAParams, dsa_augment
from .functional import FlatModel
from .networks import build_from_spec
from .synthetic import init_synthetic

__all__ = [
    "DistillationError",
    "DistillConfigError",
    "DistillationDivergedError",
    "DistillConfig",
    "IterationRecord",
    "DistillResult",
    "TrendTest",
    "StageState",
    "StageDecision",
    "STMSchedule",
    "InMemoryExperts",
    "Distiller",
    "pearson_trend",
    "trend_test",
    "mix_seed",
    "unroll_student",
    "matching_loss",
]

METHODS = ("stm", "mtt")
MEMORY_MODES = ("unrolled", "checkpoint")
STOP_RULES = ("paper", "code")

# Seed "slots" so that the different random streams of one iteration never collide.
_SLOT_CHOICE = 0
_SLOT_TRAIN = 1
_SLOT_VAL = 2


class DistillationError(RuntimeError):
    """Base class of distillation errors."""


class DistillConfigError(DistillationError, ValueError):
    """Invalid distillation configuration or inputs."""


class DistillationDivergedError(DistillationError):
    """Too many consecutive non-finite steps."""


# --------------------------------------------------------------------------- config


@dataclass
class DistillConfig:
    """Hyper-parameters of one distillation run (defaults: STM, CIFAR-like scale).

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
            step recomputed in backward; memory flat in N, identical gradient).
        checkpoint_every: save a resumable checkpoint every this many iterations (0 = never).
        seed: seed of every random draw.
        max_bad_steps: consecutive rejected steps before ``DistillationDivergedError``.
        bad_step_lr_factor: lr_img multiplier after a rejected step.
        init: ``"real"`` or ``"noise"`` initial images.
        log_lr: learn the step size in log space (``None``: True for STM, False for MTT).
        eval_every: call ``eval_hook`` every this many iterations (0 = never).
        expert_cache: number of experts kept in memory.
    """

    method: str = "stm"
    ipc: int = 1
    syn_steps: int = 20
    expert_epochs: int = 3
    max_start_epoch: int = 25
    iterations: int = 5000
    lr_img: float = 1000.0
    lr_lr: float | None = None
    lr_init: float = 0.01
    img_momentum: float = 0.5
    lr_momentum: float = 0.5
    batch_syn: int | None = None
    dsa_strategy: str = DEFAULT_DSA_STRATEGY
    lam: float = 5.0
    rising_lam: float = 3.0
    test_every: int = 10
    max_iter_stage: int = 1000
    stop_rule: str = "paper"
    loss_rising_rule: bool = False
    min_lr_img: float = 50.0
    lr_img_decay: float = 0.8
    lr_img_decay_every: int = 50
    memory_mode: str = "unrolled"
    checkpoint_every: int = 50
    seed: int = 0
    max_bad_steps: int = 10
    bad_step_lr_factor: float = 0.5
    init: str = "real"
    log_lr: bool | None = None
    eval_every: int = 0
    expert_cache: int = 4

    def validate(self) -> None:
        """Raise :class:`DistillConfigError` naming the first bad field."""
        if self.method not in METHODS:
            raise DistillConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.memory_mode not in MEMORY_MODES:
            raise DistillConfigError(f"memory_mode must be one of {MEMORY_MODES}, got {self.memory_mode!r}")
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
    """

    images: torch.Tensor
    labels: torch.Tensor
    lr: float
    history: list[IterationRecord]
    stop_reason: str
    n_rejected_steps: int
    T: int
    iterations_done: int


# --------------------------------------------------------------------------- STM logic


def pearson_trend(values: Sequence[float]) -> float:
    """Pearson correlation of ``values`` with ``0, 1, ..., n-1`` (0.0 for a constant series).

    Raises:
        DistillConfigError: fewer than 2 values.
    """
    n = len(values)
    if n < 2:
        raise DistillConfigError(f"need at least 2 values for a correlation, got {n}")
    v = torch.as_tensor(list(values), dtype=torch.float64)
    i = torch.arange(n, dtype=torch.float64)
    vc = v - v.mean()
    ic = i - i.mean()
    denom = math.sqrt(float((vc * vc).sum()) * float((ic * ic).sum()))
    if denom == 0.0 or not math.isfinite(denom):
        return 0.0
    return float((vc * ic).sum()) / denom


@dataclass
class TrendTest:
    """Result of the STM trend test on a validation history of length ``n``."""

    n: int
    r: float
    sigma: float
    threshold: float  # -lam * sigma
    falling: bool  # r < -lam * sigma
    rising: bool  # r > rising_lam * sigma (only meaningful with the loss-rising rule)


def trend_test(values: Sequence[float], lam: float, rising_lam: float = 3.0) -> TrendTest:
    """STM's test: ``r = corr(values, 0..n-1)``, ``sigma = sqrt(1/(n-2))``.

    Falling when ``r < -lam * sigma``; rising when ``r > rising_lam * sigma``.

    Raises:
        DistillConfigError: fewer than 3 values (sigma undefined).
    """
    n = len(values)
    if n < 3:
        raise DistillConfigError(f"trend test needs at least 3 values, got {n}")
    r = pearson_trend(values)
    sigma = math.sqrt(1.0 / (n - 2))
    return TrendTest(n=n, r=r, sigma=sigma, threshold=-lam * sigma,
                     falling=r < -lam * sigma, rising=r > rising_lam * sigma)


@dataclass
class StageState:
    """Mutable state of the STM schedule (plain types; stored in checkpoints)."""

    T: int = 1
    val_history: list[float] = field(default_factory=list)
    stage_start: int = 0
    frozen: bool = False
    frozen_at: int = -1
    n_expansions: int = 0


@dataclass
class StageDecision:
    """What :meth:`STMSchedule.observe` decided after one iteration."""

    grew: bool
    r: float | None
    threshold: float | None
    lr_img: float
    stop: str | None


class STMSchedule:
    """The epoch-pool schedule of STM (paper Algorithm 1), independent of any network.

    Args:
        T_max: largest allowed pool (``T + 1`` must be an available expert epoch).
        lam, rising_lam, test_every, max_iter_stage, stop_rule, loss_rising_rule,
        lr_img_decay, lr_img_decay_every, min_lr_img: as in :class:`DistillConfig`.
    """

    def __init__(self, T_max: int, lam: float = 5.0, test_every: int = 10, max_iter_stage: int = 1000,
                 stop_rule: str = "paper", loss_rising_rule: bool = False, rising_lam: float = 3.0,
                 lr_img_decay: float = 0.8, lr_img_decay_every: int = 50, min_lr_img: float = 50.0,
                 state: StageState | None = None) -> None:
        if T_max < 1:
            raise DistillConfigError(f"T_max must be >= 1 (experts need >= 2 epochs for STM), got {T_max}")
        if stop_rule not in STOP_RULES:
            raise DistillConfigError(f"stop_rule must be one of {STOP_RULES}, got {stop_rule!r}")
        self.T_max = int(T_max)
        self.lam = float(lam)
        self.rising_lam = float(rising_lam)
        self.test_every = int(test_every)
        self.max_iter_stage = int(max_iter_stage)
        self.stop_rule = stop_rule
        self.loss_rising_rule = bool(loss_rising_rule)
        self.lr_img_decay = float(lr_img_decay)
        self.lr_img_decay_every = int(lr_img_decay_every)
        self.min_lr_img = float(min_lr_img)
        self.state = state or StageState()

    @property
    def T(self) -> int:
        """Current epoch pool: start epochs are ``0 .. T-1``."""
        return self.state.T

    def observe(self, iteration: int, val_loss: float | None, lr_img: float) -> StageDecision:
        """Feed the validation loss of ``iteration`` (after its image update) and decide.

        A non-finite or missing ``val_loss`` is not recorded. The trend test runs when the
        history length n is a multiple of ``test_every`` (n >= 3). At ``T == T_max`` the pool
        cannot grow and the history is kept, so the stop rule can still end the run.
        """
        s = self.state
        r = threshold = None
        grew = False
        if not s.frozen and val_loss is not None and math.isfinite(val_loss):
            s.val_history.append(float(val_loss))
        n = len(s.val_history)
        if not s.frozen and n >= 3 and n % self.test_every == 0:
            tt = trend_test(s.val_history, self.lam, self.rising_lam)
            r, threshold = tt.r, tt.threshold
            rising_check = self.loss_rising_rule and n % (2 * self.test_every) == self.test_every
            if (tt.falling or (rising_check and tt.rising)) and s.T < self.T_max:
                s.T += 1
                s.val_history = []
                s.stage_start = iteration + 1
                s.n_expansions += 1
                grew = True
        stop: str | None = None
        if self.stop_rule == "paper":
            if self.max_iter_stage > 0 and iteration + 1 - s.stage_start >= self.max_iter_stage:
                stop = "no_expansion"
        else:
            if not s.frozen and len(s.val_history) > self.max_iter_stage:
                s.frozen = True
                s.frozen_at = iteration
            if s.frozen:
                since = iteration - s.frozen_at
                if since > 0 and since % self.lr_img_decay_every == 0:
                    lr_img = lr_img * self.lr_img_decay
                if lr_img < self.min_lr_img:
                    stop = "lr_img_below_min"
        return StageDecision(grew=grew, r=r, threshold=threshold, lr_img=lr_img, stop=stop)


# --------------------------------------------------------------------------- experts


class ExpertSource(Protocol):
    """What the distiller needs from an expert bank (``ExpertBank`` satisfies it)."""

    num_epochs: int

    def __len__(self) -> int: ...

    def load(self, i: int, max_epoch: int | None = None) -> torch.Tensor: ...


class InMemoryExperts:
    """Expert trajectories held in memory, with :class:`ExpertBank`'s ``load`` interface.

    Args:
        trajectories: list of ``(E+1, P)`` tensors (row 0 = initialisation), same shape.
    """

    def __init__(self, trajectories: Sequence[torch.Tensor]) -> None:
        if not trajectories:
            raise DistillConfigError("need at least one expert trajectory")
        shape = tuple(trajectories[0].shape)
        for k, t in enumerate(trajectories):
            if t.dim() != 2 or tuple(t.shape) != shape:
                raise DistillConfigError(f"expert {k} has shape {tuple(t.shape)}, expected {shape} (E+1, P)")
        self._trajs = [t.detach() for t in trajectories]
        self.num_epochs = shape[0] - 1
        self.meta: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._trajs)

    def load(self, i: int, max_epoch: int | None = None) -> torch.Tensor:
        """Rows ``0 .. max_epoch`` of expert ``i``, shape ``(max_epoch+1, P)``."""
        t = self._trajs[i]
        return t if max_epoch is None else t[: max_epoch + 1]


# --------------------------------------------------------------------------- core maths


def mix_seed(*values: int) -> int:
    """Deterministically mix integers into one 63-bit seed (splitmix64 chain)."""
    mask = (1 << 64) - 1
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & mask)) & mask
        h = (h + 0x9E3779B97F4A7C15) & mask
        z = h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        h = z ^ (z >> 31)
    return h & ((1 << 63) - 1)


def _student_step(model: FlatModel, theta: torch.Tensor, x_syn: torch.Tensor, y_syn: torch.Tensor,
                  step_size: torch.Tensor, step_seed: int, dsa_strategy: str, dsa_params: DSAParams | None,
                  batch_syn: int | None, create_graph: bool) -> torch.Tensor:
    """One student SGD step ``theta - alpha * grad CE(theta; DSA(x_syn[batch]))``.

    All randomness (minibatch, DSA) comes from a generator seeded with ``step_seed``, so a
    recomputation (checkpoint mode) replays exactly the same step.

    Args:
        theta: ``(P,)`` parameters; x_syn ``(B, C, H, W)``; y_syn ``(B,)``; step_size scalar.

    Returns:
        ``(P,)`` next parameters (detached unless ``create_graph``).
    """
    gen = torch.Generator().manual_seed(step_seed)
    x, y = x_syn, y_syn
    if batch_syn is not None and batch_syn < x_syn.shape[0]:
        idx = torch.randperm(x_syn.shape[0], generator=gen)[:batch_syn].to(x_syn.device)
        x, y = x_syn[idx], y_syn[idx]
    with torch.enable_grad():
        if not theta.requires_grad:
            theta = theta.detach().requires_grad_(True)
        x = dsa_augment(x, dsa_strategy, gen, dsa_params)
        ce = F.cross_entropy(model.forward(theta, x), y)
        (grad,) = torch.autograd.grad(ce, theta, create_graph=create_graph)
    if not create_graph:
        return (theta - step_size * grad).detach()
    return theta - step_size * grad


class _CheckpointedStep(torch.autograd.Function):
    """One student step that stores only its inputs and recomputes its graph in backward.

    ``torch.utils.checkpoint(use_reentrant=False)`` around a step that itself calls
    ``torch.autograd.grad(create_graph=True)`` was measured to keep most of the inner graph
    alive (memory still grew with N), so the checkpoint is written by hand: forward runs the
    step without a graph; backward rebuilds that one step's double-backward graph from the saved
    ``theta_i`` and returns the exact vector-Jacobian products for ``theta_i``, ``x_syn`` and
    ``alpha``. Memory: one ``(P,)`` vector per step plus one step's activations. Supports
    first-order backward through the unroll (all that distillation needs).
    """

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, x_syn: torch.Tensor, step_size: torch.Tensor, y_syn: torch.Tensor,
                model: FlatModel, seed: int, dsa_strategy: str, dsa_params: DSAParams | None,
                batch_syn: int | None) -> torch.Tensor:
        ctx.save_for_backward(theta, x_syn, step_size, y_syn)
        ctx.args = (model, seed, dsa_strategy, dsa_params, batch_syn)
        return _student_step(model, theta.detach(), x_syn.detach(), y_syn, step_size.detach(), seed,
                             dsa_strategy, dsa_params, batch_syn, create_graph=False)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        theta, x_syn, step_size, y_syn = ctx.saved_tensors
        model, seed, dsa_strategy, dsa_params, batch_syn = ctx.args
        needs = ctx.needs_input_grad[:3]
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(bool(n) or i == 0) for i, (t, n) in
                      enumerate(zip((theta, x_syn, step_size), needs))]
            out = _student_step(model, leaves[0], leaves[1], y_syn, leaves[2], seed, dsa_strategy, dsa_params,
                                batch_syn, create_graph=True)
            wanted = [leaf for leaf, n in zip(leaves, needs) if n]
            grads = iter(torch.autograd.grad(out, wanted, grad_out, allow_unused=True)) if wanted else iter(())
        result = [next(grads) if n else None for n in needs]
        return (*result, None, None, None, None, None, None)


def unroll_student(model: FlatModel, theta0: torch.Tensor, x_syn: torch.Tensor, y_syn: torch.Tensor,
                   step_size: torch.Tensor, step_seeds: Sequence[int], dsa_strategy: str = DEFAULT_DSA_STRATEGY,
                   dsa_params: DSAParams | None = None, batch_syn: int | None = None,
                   memory_mode: str = "unrolled", create_graph: bool = True) -> torch.Tensor:
    """Run ``len(step_seeds)`` student steps from ``theta0``.

    Args:
        model: flat functional view of the student network.
        theta0: ``(P,)`` start parameters (treated as a constant).
        x_syn: ``(B, C, H, W)`` synthetic images (may require grad).
        y_syn: ``(B,)`` labels.
        step_size: scalar tensor alpha (may require grad).
        step_seeds: one seed per inner step (minibatch + DSA draws).
        memory_mode: ``"unrolled"`` keeps every step's graph; ``"checkpoint"`` keeps only each
            step's input and recomputes the step in backward (memory flat in N, same gradient).
        create_graph: ``False`` runs without any graph (validation pass).

    Returns:
        ``(P,)`` parameters after the last step.
    """
    if memory_mode not in MEMORY_MODES:
        raise DistillConfigError(f"memory_mode must be one of {MEMORY_MODES}, got {memory_mode!r}")
    theta = theta0.detach()
    if create_graph:
        theta = theta.clone().requires_grad_(True)
    for seed in step_seeds:
        if create_graph and memory_mode == "checkpoint":
            theta = _CheckpointedStep.apply(theta, x_syn, step_size, y_syn, model, int(seed),
                                            dsa_strategy, dsa_params, batch_syn)
        else:
            theta = _student_step(model, theta, x_syn if create_graph else x_syn.detach(), y_syn,
                                  step_size if create_graph else step_size.detach(), int(seed),
                                  dsa_strategy, dsa_params, batch_syn, create_graph)
    return theta


def matching_loss(theta_n: torch.Tensor, theta_start: torch.Tensor, theta_target: torch.Tensor) -> torch.Tensor:
    """Normalised trajectory-matching loss ``||theta_n - target||^2 / ||start - target||^2`` (scalar)."""
    target = theta_target.detach()
    denom = ((theta_start.detach() - target) ** 2).sum()
    return ((theta_n - target) ** 2).sum() / denom


# --------------------------------------------------------------------------- distiller


class Distiller:
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
        checkpoint_dir: folder for ``state.pt``; ``run`` resumes from it when present. A
            checkpoint written with a different configuration raises ``CheckpointMismatchError``.
        callback: called with each :class:`IterationRecord`.
        eval_hook: ``eval_hook(iteration, images, labels, lr) -> dict | None`` every
            ``config.eval_every`` iterations; its result is stored in the record.
        dsa_params: DSA strengths (default ``DSAParams()``).
    """

    def __init__(self, experts: ExpertSource, train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int,
                 config: DistillConfig, device: torch.device | str, arch: dict[str, Any],
                 checkpoint_dir: str | Path | None = None,
                 callback: Callable[[IterationRecord], None] | None = None,
                 eval_hook: Callable[[int, torch.Tensor, torch.Tensor, float], dict[str, float] | None] | None = None,
                 dsa_params: DSAParams | None = None) -> None:
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
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.callback = callback
        self.eval_hook = eval_hook
        self.dsa_params = dsa_params
        self.train_x = train_x
        self.train_y = train_y
        self.dtype = train_x.dtype

        channels, h, w = train_x.shape[1:]
        module = build_from_spec(self.arch, int(channels), self.num_classes, (int(h), int(w)))
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
        first = self._expert(0)
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

    def fingerprint(self) -> str:
        """Hash of everything that must match for a checkpoint to be resumed.

        ``iterations``, ``checkpoint_every`` and ``eval_every`` are excluded, so a run can be
        resumed with a larger iteration budget.
        """
        cfg = dataclasses.asdict(self.config)
        for k in ("iterations", "checkpoint_every", "eval_every"):
            cfg.pop(k)
        payload = {
            "config": cfg,
            "arch": self.arch,
            "num_classes": self.num_classes,
            "train_shape": list(self.train_x.shape),
            "n_experts": len(self.experts),
            "expert_epochs": int(self.experts.num_epochs),
            "dtype": str(self.dtype),
        }
        return config_fingerprint(payload)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (tensors + plain types only)."""
        s = self.schedule.state
        return {
            "fingerprint": self.fingerprint(),
            "iteration": self.iteration,
            "images": self.images.detach(),
            "labels": self.labels,
            "lr_param": self.lr_param.detach(),
            "opt_img": self.opt_img.state_dict(),
            "opt_lr": self.opt_lr.state_dict(),
            "stage": dataclasses.asdict(s),
            "history": [dataclasses.asdict(r) for r in self.history],
            "n_rejected": self.n_rejected,
            "consecutive_bad": self.consecutive_bad,
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (raises ``CheckpointMismatchError`` on a config mismatch)."""
        if state.get("fingerprint") != self.fingerprint():
            raise CheckpointMismatchError(
                "checkpoint was written with a different configuration/data; use a new checkpoint_dir or delete it"
            )
        with torch.no_grad():
            self.images.copy_(state["images"].to(self.images))
            self.lr_param.copy_(state["lr_param"].to(self.lr_param))
        self.labels = state["labels"].to(self.device)
        self.opt_img.load_state_dict(state["opt_img"])
        self.opt_lr.load_state_dict(state["opt_lr"])
        self.schedule.state = StageState(**state["stage"])
        self.history = [IterationRecord(**r) for r in state["history"]]
        self.iteration = int(state["iteration"])
        self.n_rejected = int(state["n_rejected"])
        self.consecutive_bad = int(state["consecutive_bad"])
        self.stop_reason = state["stop_reason"]

    def save_checkpoint(self) -> None:
        """Atomically write the current state to ``checkpoint_dir/state.pt`` (no-op without a dir)."""
        if self.checkpoint_dir is not None:
            save_state(self.checkpoint_dir, self.state_dict())

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
        while len(self._cache) > self.config.expert_cache:
            self._cache.popitem(last=False)
        return traj

    def _seeds(self, iteration: int, slot: int) -> list[int]:
        return [mix_seed(self.config.seed, iteration, slot, i) for i in range(self.config.syn_steps)]

    def _choose(self, iteration: int) -> tuple[int, int]:
        """(expert index, start epoch) of ``iteration``."""
        gen = torch.Generator().manual_seed(mix_seed(self.config.seed, iteration, _SLOT_CHOICE))
        expert = int(torch.randint(len(self.experts), (1,), generator=gen))
        if self.config.method == "stm":
            start = iteration % self.schedule.T
        else:
            start = int(torch.randint(self.config.max_start_epoch, (1,), generator=gen))
        return expert, start

    def validation_loss(self, iteration: int, expert: int) -> float:
        """STM validation: student run ``expert[T] -> expert[T+1]`` without a graph (float)."""
        traj = self._expert(expert)
        T = self.schedule.T
        theta_n = unroll_student(self.model, traj[T], self.images.detach(), self.labels,
                                 self.step_size().detach(), self._seeds(iteration, _SLOT_VAL),
                                 self.config.dsa_strategy, self.dsa_params, self.config.batch_syn,
                                 create_graph=False)
        with torch.no_grad():
            return float(matching_loss(theta_n, traj[T], traj[T + 1]))

    def compute_loss(self, iteration: int, expert: int, start: int) -> torch.Tensor:
        """Differentiable matching loss of ``iteration`` (graph to images and ``lr_param``)."""
        traj = self._expert(expert)
        M = self.config.effective_expert_epochs
        theta_n = unroll_student(self.model, traj[start], self.images, self.labels, self.step_size(),
                                 self._seeds(iteration, _SLOT_TRAIN), self.config.dsa_strategy, self.dsa_params,
                                 self.config.batch_syn, memory_mode=self.config.memory_mode)
        return matching_loss(theta_n, traj[start], traj[start + M])

    def _finite(self, *tensors: torch.Tensor | None) -> bool:
        return all(t is not None and bool(torch.isfinite(t).all()) for t in tensors)

    def step(self) -> IterationRecord:
        """Run one distillation iteration and return its record."""
        cfg = self.config
        it = self.iteration
        t0 = time.perf_counter()
        expert, start = self._choose(it)
        T_now = self.schedule.T if cfg.method == "stm" else cfg.max_start_epoch
        val = self.validation_loss(it, expert) if cfg.method == "stm" else None

        self.opt_img.zero_grad(set_to_none=True)
        self.opt_lr.zero_grad(set_to_none=True)
        alpha_used = float(self.step_size().detach())
        loss = self.compute_loss(it, expert, start)
        ok = self._finite(loss) and math.isfinite(alpha_used)
        if ok:
            loss.backward()
            ok = self._finite(self.images.grad, self.lr_param.grad)
        if ok:
            self.opt_img.step()
            self.opt_lr.step()
            self.consecutive_bad = 0
        else:
            self.opt_img.zero_grad(set_to_none=True)
            self.opt_lr.zero_grad(set_to_none=True)
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
        record = IterationRecord(
            iteration=it, loss=float(loss.detach()), val_loss=val, T=T_now, r=r, threshold=threshold,
            lr=alpha_used, lr_img=self.lr_img, start_epoch=start, expert=expert,
            seconds=time.perf_counter() - t0, rejected=not ok, grew=grew,
            eval=None if eval_result is None else {k: float(v) for k, v in eval_result.items()},
        )
        self.history.append(record)
        return record

    # ------------------------------------------------------------------ run

    def result(self) -> DistillResult:
        """Current synthetic set and bookkeeping as a :class:`DistillResult`."""
        return DistillResult(
            images=self.images.detach().to("cpu", torch.float32).clone(),
            labels=self.labels.detach().cpu().clone(),
            lr=float(self.step_size().detach()),
            history=list(self.history),
            stop_reason=self.stop_reason or "interrupted",
            n_rejected_steps=self.n_rejected,
            T=self.schedule.T if self.config.method == "stm" else self.config.max_start_epoch,
            iterations_done=self.iteration,
        )

    def run(self, progress: bool = True, stop_after: int | None = None) -> DistillResult:
        """Distil until a stop rule fires or ``config.iterations`` is reached.

        Resumes from ``checkpoint_dir/state.pt`` when it exists (same fingerprint required).
        Saves a checkpoint every ``checkpoint_every`` iterations and when the call returns.

        Args:
            progress: show a tqdm bar.
            stop_after: return after this many iterations in this call (stop_reason
                ``"interrupted"``; the checkpoint lets a later call continue exactly).
        """
        if self.checkpoint_dir is not None:
            state = load_state(self.checkpoint_dir)
            if state is not None:
                self.load_state_dict(state)
        if self.stop_reason == "max_iterations" and self.iteration < self.config.iterations:
            self.stop_reason = None  # resumed with a larger budget
        if self.stop_reason is not None:
            return self.result()
        done_this_call = 0
        bar = tqdm(total=self.config.iterations, initial=self.iteration, disable=not progress,
                   desc=f"distil[{self.config.method}]")
        try:
            while self.iteration < self.config.iterations and self.stop_reason is None:
                if stop_after is not None and done_this_call >= stop_after:
                    break
                rec = self.step()
                done_this_call += 1
                bar.update(1)
                bar.set_postfix(loss=f"{rec.loss:.4f}", T=rec.T, lr=f"{rec.lr:.3g}")
                if self.callback is not None:
                    self.callback(rec)
                if (self.config.checkpoint_every > 0 and self.iteration % self.config.checkpoint_every == 0
                        and self.stop_reason is None):
                    self.save_checkpoint()
        finally:
            bar.close()
        if self.stop_reason is None and self.iteration >= self.config.iterations:
            self.stop_reason = "max_iterations"
        self.save_checkpoint()
        return self.result()
