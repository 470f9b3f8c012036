"""Evaluation protocol: train fresh networks on a (distilled / random / full) set, test them.

Protocol (paper section 4 / MTT): ``n_nets`` fresh networks, SGD (momentum 0.9, weight decay
5e-4) at the given ``lr`` (the learned alpha for distilled sets), lr x0.1 from epoch
``int(lr_decay_at * epochs)`` on (0-based; i.e. after half the epochs by default), cross-entropy,
DSA on every training batch, batch size ``min(batch_size, N)``, reshuffled each epoch (last
partial batch kept). Reported: per-net final test accuracy (%), their mean and POPULATION std
(``np.std``, ddof=0, as in the literature).

Seeds: net ``k`` uses ``derive_seed(seed, k)``, from which its initialisation, its minibatch
order and its DSA draws are derived, so the vmap path and the loop path see the same
randomness. With ``use_vmap=True`` (and no batch-norm) the nets are trained together with
``torch.func.stack_module_state`` + ``vmap(functional_call)``; results match the loop to float
tolerance. vmap is skipped (loop used) for batch-norm nets, when ``n_nets * batch`` exceeds
``vmap_max_images`` (memory), and on CPU unless ``vmap_on_cpu`` (the loop is faster there).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from galaxy_distillation.errors import Stopped, UserError

from .data import as_float_batch
from .dsa import DSAParams
from .networks import build_from_spec, has_batchnorm
from .seeding import derive_seed, make_generator
from .training import EpochSettings, NetGroup, train_epochs

log = logging.getLogger(__name__)

__all__ = [
    "EvaluationError",
    "EvalConfig",
    "EvalResult",
    "evaluate_images",
    "compute_accuracy",
    "compute_predictions",
    "init_network",
    "check_dataset",
]

class EvaluationError(UserError, ValueError):
    """Raised for inconsistent evaluation inputs or settings."""


@dataclass(kw_only=True)
class EvalConfig:
    """Settings of the evaluation protocol (no defaults: built from
    ``params.EvaluationParams.engine_config``, where the paper's values are the defaults).

    ``lr_decay_at``: fraction of epochs after which lr is multiplied by 0.1 (>= 1 disables).
    ``vmap_on_cpu``: on CPU the loop measured 1.4-2x faster (grouped convs), so vmap is GPU-only
    unless set. ``eval_batch_size``: test-set batch (per net under vmap). ``vmap_max_images``:
    ``n_nets * batch`` above this falls back to the loop (bounds vmap memory on large sets).
    ``curve_every`` > 0 records test accuracy every this many epochs (plus epoch 0 and the end).
    ``dsa_params`` is engine-only (``None`` = DSA's published strengths). ``compile``: each
    training step's forward, loss and backward through ``torch.compile`` (:mod:`.training`).
    """

    n_nets: int
    epochs: int
    batch_size: int
    momentum: float
    weight_decay: float
    lr_decay_at: float
    dsa_strategy: str
    arch: dict
    use_vmap: bool | str  # True | False | "auto" (CPU: the loop; CUDA: the faster by a short probe)
    vmap_on_cpu: bool
    eval_batch_size: int
    vmap_max_images: int
    curve_every: int = 0
    dsa_params: DSAParams | None = None
    compile: bool


@dataclass
class EvalResult:
    """Evaluation outcome: per-net final test accuracies in %."""

    accs: list[float]
    mean: float
    std: float  # population std (ddof=0)
    curve_epochs: list[int] = field(default_factory=list)
    curves: list[list[float]] = field(default_factory=list)  # [net][checkpoint] test accuracy (%)
    seconds: float = 0.0
    used_vmap: bool = False
    predictions: torch.Tensor | None = None  # (n_nets, M) final predicted class of each test image



def check_dataset(x: torch.Tensor, y: torch.Tensor, num_classes: int, name: str) -> None:
    """Validate images (N, C, H, W) and integer labels (N,) in [0, num_classes)."""
    if x.dim() != 4:
        raise EvaluationError(f"{name} images must be (N, C, H, W), got shape {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise EvaluationError(f"{name} labels must be (N,) with N={x.shape[0]}, got shape {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise EvaluationError(f"{name} set is empty")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise EvaluationError(f"{name} labels must be integers, got {y.dtype}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise EvaluationError(f"{name} labels must lie in [0, {num_classes}), got range [{lo}, {hi}]")


def init_network(arch: dict, channels: int, num_classes: int, im_size: tuple[int, int], seed: int) -> nn.Module:
    """Build a network from ``arch`` with weights drawn from a generator seeded ``seed`` (the
    weights ``torch.manual_seed(seed)`` + construction gave; torch's global generator is never
    used, so threads may build networks at once). CPU."""
    return build_from_spec(arch, channels, num_classes, im_size, generator=make_generator(seed))


@torch.no_grad()
def compute_accuracy(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    device: torch.device,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> float:
    """Accuracy (%) of ``forward`` ((B, C, H, W) -> (B, K) logits) on ``x`` (N, C, H, W), ``y`` (N,), in batches."""
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        xb = as_float_batch(x[i : i + batch_size].to(device, non_blocking=True), mean, std)
        pred = forward(xb).argmax(-1)
        correct += int((pred == y[i : i + batch_size].to(device)).sum())
    return 100.0 * correct / x.shape[0]


@torch.no_grad()
def compute_predictions(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    batch_size: int,
    device: torch.device,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """Predicted class (N,) (int64, on CPU) of ``forward`` on ``x`` (N, C, H, W), in batches
    (the same batches as :func:`compute_accuracy`, so ``(pred == y).mean()`` is its accuracy)."""
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb = as_float_batch(x[i : i + batch_size].to(device, non_blocking=True), mean, std)
        out.append(forward(xb).argmax(-1).cpu())
    return torch.cat(out)


def _checkpoints(epochs: int, every: int) -> list[int]:
    if every <= 0:
        return [epochs]
    pts = list(range(0, epochs, every)) + [epochs]
    return sorted(set(pts))


def _decay_epoch(config: EvalConfig) -> int | None:
    if config.lr_decay_at is None or config.lr_decay_at >= 1 or config.lr_decay_at < 0:
        return None
    return int(config.lr_decay_at * config.epochs)


def _settings(config: EvalConfig, n: int, mean: Sequence[float] | None, std: Sequence[float] | None) -> EpochSettings:
    return EpochSettings(batch_size=min(config.batch_size, n), dsa_strategy=config.dsa_strategy,
                         dsa_params=config.dsa_params, mean=mean, std=std, compile=config.compile)


def _decay_hook(group: NetGroup, lr: float, config: EvalConfig) -> Callable[[int], None]:
    decay = _decay_epoch(config)

    def before_epoch(ep: int) -> None:
        if decay is not None and ep == decay:
            group.set_lr(lr * 0.1)

    return before_epoch


def _train_loop(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    num_classes: int, lr: float, config: EvalConfig, seeds: list[int], device: torch.device,
    progress: bool, mean: Sequence[float] | None, std: Sequence[float] | None,
    predictions: list[torch.Tensor] | None = None, should_stop: Callable[[], bool] | None = None,
) -> tuple[list[float], list[int], list[list[float]]]:
    """The nets one after the other (the shared loop, :mod:`.training`, one net at a time)."""
    n, c, h, w = train_x.shape
    cps = _checkpoints(config.epochs, config.curve_every)
    test_y_cpu = test_y.cpu()
    accs: list[float] = []
    curves: list[list[float]] = []
    for k, s in enumerate(seeds):
        net = init_network(config.arch, c, num_classes, (h, w), derive_seed(s, 0)).to(device)
        group = NetGroup([net], [s], lr=lr, momentum=config.momentum, weight_decay=config.weight_decay, batched=False)
        curve: list[float] = []

        def record(epoch: int, _losses: object = None, net: torch.nn.Module = net, curve: list[float] = curve) -> None:
            if epoch in cps:
                net.eval()
                if epoch == cps[-1] and predictions is not None:  # the final nets: keep what they predict
                    pred = compute_predictions(net, test_x, config.eval_batch_size, device, mean, std)
                    predictions.append(pred)
                    curve.append(100.0 * int((pred == test_y_cpu).sum()) / test_x.shape[0])
                else:
                    curve.append(compute_accuracy(net, test_x, test_y, config.eval_batch_size, device, mean, std))
                net.train()

        record(0)
        train_epochs(group, train_x, train_y, _settings(config, n, mean, std), range(config.epochs),
                     before_epoch=_decay_hook(group, lr, config), after_epoch=record, progress=progress,
                     desc=f"eval net {k}", should_stop=should_stop)
        accs.append(curve[-1])
        curves.append(curve)
    return accs, cps, curves


def _train_vmap(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    num_classes: int, lr: float, config: EvalConfig, seeds: list[int], device: torch.device,
    progress: bool, mean: Sequence[float] | None, std: Sequence[float] | None,
    predictions: list[torch.Tensor] | None = None, should_stop: Callable[[], bool] | None = None,
) -> tuple[list[float], list[int], list[list[float]]]:
    """The nets together as one vmap program (the shared loop, :mod:`.training`, batched)."""
    n, c, h, w = train_x.shape
    k_nets = len(seeds)
    cps = _checkpoints(config.epochs, config.curve_every)
    nets = [init_network(config.arch, c, num_classes, (h, w), derive_seed(s, 0)).to(device) for s in seeds]
    group = NetGroup(nets, seeds, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay, batched=True)
    curves: list[list[float]] = [[] for _ in seeds]

    @torch.no_grad()
    def record(epoch: int, _losses: object = None) -> None:
        if epoch not in cps:
            return
        correct = torch.zeros(k_nets, dtype=torch.long, device=device)
        keep = predictions is not None and epoch == cps[-1]  # the final nets: keep what they predict
        preds = []
        for i in range(0, test_x.shape[0], config.eval_batch_size):
            xb = as_float_batch(test_x[i : i + config.eval_batch_size].to(device), mean, std)
            pred = group.logits_each(xb).argmax(-1)  # (K, b)
            correct += (pred == test_y[i : i + config.eval_batch_size].to(device).unsqueeze(0)).sum(1)
            if keep:
                preds.append(pred.cpu())
        if keep:
            predictions.extend(torch.cat(preds, dim=1).unbind(0))
        for j in range(k_nets):
            curves[j].append(100.0 * int(correct[j]) / test_x.shape[0])

    record(0)
    train_epochs(group, train_x, train_y, _settings(config, n, mean, std), range(config.epochs),
                 before_epoch=_decay_hook(group, lr, config), after_epoch=record, progress=progress,
                 desc="eval nets (vmap)", should_stop=should_stop)
    return [cv[-1] for cv in curves], cps, curves


_VMAP_CHOICE: dict[tuple, bool] = {}


def vmap_is_faster(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                   num_classes: int, lr: float, config: EvalConfig, seeds: list[int], device: torch.device,
                   mean: Sequence[float] | None = None, std: Sequence[float] | None = None, epochs: int = 3) -> bool:
    """``evaluation.use_vmap: auto``: whether the vmap program beats the per-net loop here, by timing
    both for ``epochs`` epochs (after a one-epoch warm-up each) on this very set. Decided once per
    (set shape, nets, batch, architecture, device) in a process, and logged. Same results either way
    (to float tolerance), only the time differs."""
    key = (tuple(train_x.shape), len(seeds), config.batch_size, repr(config.arch), str(device))
    if key not in _VMAP_CHOICE:
        times = {}
        small_x, small_y = test_x[: config.eval_batch_size], test_y[: config.eval_batch_size]
        for name, runner in (("loop", _train_loop), ("vmap", _train_vmap)):
            for n_epochs in (1, epochs):
                cfg = dataclasses.replace(config, epochs=n_epochs, curve_every=0)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                runner(train_x, train_y, small_x, small_y, num_classes, lr, cfg, seeds, device, False, mean, std)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times[name] = time.perf_counter() - t0
        _VMAP_CHOICE[key] = times["vmap"] < times["loop"]
        log.info("evaluation.use_vmap auto -> %s (probe on %s, %d nets x %d epochs: loop %.3f s, vmap %.3f s)",
                 _VMAP_CHOICE[key], device, len(seeds), epochs, times["loop"], times["vmap"])
    return _VMAP_CHOICE[key]


def evaluate_images(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    lr: float,
    config: EvalConfig,
    seed: int,
    device: torch.device,
    progress: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EvalResult:
    """Train ``config.n_nets`` fresh networks on (train_x, train_y) and test them.

    Args:
        train_x: training images (N, C, H, W), normalised float (or uint8 with ``mean``/``std``).
        train_y: integer labels (N,).
        test_x, test_y: test images (M, C, H, W) and labels (M,) (same conventions).
        num_classes: number of classes.
        lr: SGD learning rate (the learned alpha for distilled sets).
        config: protocol settings.
        seed: master seed; net ``k`` uses ``derive_seed(seed, k)``.
        device: where to train.
        progress: show tqdm bars.
        mean, std: per-channel statistics, only needed for uint8 images.
        should_stop: asked before every epoch of every net (:func:`~.training.train_epochs`): when
            true, :class:`~galaxy_distillation.errors.Stopped` is raised (no result).

    Returns:
        :class:`EvalResult` with per-net final accuracies (%), mean and population std.
    """
    check_dataset(train_x, train_y, num_classes, "training")
    check_dataset(test_x, test_y, num_classes, "test")
    if tuple(train_x.shape[1:]) != tuple(test_x.shape[1:]):
        raise EvaluationError(f"train images {tuple(train_x.shape[1:])} and test images {tuple(test_x.shape[1:])} differ")
    if not (np.isfinite(lr) and lr > 0):
        raise EvaluationError(f"learning rate must be a positive finite number, got {lr}")
    if config.n_nets < 1 or config.epochs < 0 or config.batch_size < 1:
        raise EvaluationError("n_nets and batch_size must be >= 1 and epochs >= 0")
    t0 = time.perf_counter()
    train_x = train_x.detach().to(device)
    train_y = train_y.detach().to(device=device, dtype=torch.long)
    test_x = test_x.detach().to(device)
    test_y = test_y.detach().to(device=device, dtype=torch.long)
    seeds = [derive_seed(seed, k) for k in range(config.n_nets)]
    probe = build_from_spec(config.arch, train_x.shape[1], num_classes, tuple(train_x.shape[2:]), device="meta")
    bs = min(config.batch_size, train_x.shape[0])
    allowed = ((device.type != "cpu" or config.vmap_on_cpu) and config.n_nets > 1 and not has_batchnorm(probe)
               and bs * config.n_nets <= config.vmap_max_images)
    if str(config.use_vmap).lower() == "auto":  # CPU: the loop (measured faster); CUDA: a short timed probe
        use_vmap = allowed and device.type != "cpu" and vmap_is_faster(
            train_x, train_y, test_x, test_y, num_classes, float(lr), config, seeds, device, mean, std)
    else:
        use_vmap = bool(config.use_vmap) and allowed
    runner = _train_vmap if use_vmap else _train_loop
    predictions: list[torch.Tensor] = []
    accs, cps, curves = runner(train_x, train_y, test_x, test_y, num_classes, float(lr), config, seeds, device,
                               progress, mean, std, predictions, should_stop)
    return EvalResult(
        accs=[float(a) for a in accs],
        mean=float(np.mean(accs)),
        std=float(np.std(accs)),
        curve_epochs=cps,
        curves=curves,
        seconds=time.perf_counter() - t0,
        used_vmap=use_vmap,
        predictions=torch.stack(predictions) if len(predictions) == len(accs) else None,
    )


def quick_evaluator(test_x: torch.Tensor, test_y: torch.Tensor, num_classes: int, config: EvalConfig, seed: int,
                    device: torch.device, *seed_keys: int, should_stop: Callable[[], bool] | None = None
                    ) -> Callable[[int, torch.Tensor, torch.Tensor, float], dict[str, float]]:
    """The distiller's ``eval_hook``: ``hook(iteration, images, labels, lr)`` trains ``config.n_nets``
    fresh nets on the current synthetic set with its current step size and returns
    ``{"test_acc", "test_acc_std"}`` (%). Net seeds are ``derive_seed(seed, *seed_keys, iteration)``,
    so two runs evaluated at the same iteration use the same initialisations. ``should_stop``: as
    :func:`evaluate_images` (a stop ends the evaluation within one epoch: ``Stopped``, naming the
    quick evaluation and its iteration)."""

    def hook(iteration: int, images: torch.Tensor, labels: torch.Tensor, lr: float) -> dict[str, float]:
        try:
            result = evaluate_images(images, labels, test_x, test_y, num_classes, lr, config,
                                     seed=derive_seed(seed, *seed_keys, iteration), device=device, progress=False,
                                     should_stop=should_stop)
        except Stopped as exc:
            raise Stopped(f"quick evaluation at iteration {iteration}: {exc}") from None
        return {"test_acc": result.mean, "test_acc_std": result.std}

    return hook
