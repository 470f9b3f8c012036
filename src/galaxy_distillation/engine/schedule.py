"""STM's self-adaptive epoch-pool schedule (paper Algorithm 1): the trend test, stages, stop rules.

Independent of any network: the distiller feeds it one validation loss per iteration and it
decides when the pool ``T`` of start epochs grows, when ``lr_img`` decays (code stop rule) and
when the run stops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .distill_config import STOP_RULES, DistillConfigError

__all__ = ["pearson_trend", "TrendTest", "trend_test", "StageState", "StageDecision", "STMSchedule"]


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
