"""Expert (teacher) training: train networks and record their parameters every epoch
(one at a time, or several at once as one batched program). Storing and reading the
trajectories, the expert bank and in-memory sources: :mod:`.trajectories`.

Training: SGD (lr, momentum, weight decay from :class:`ExpertConfig`), cross-entropy, DSA on
every training batch, minibatches indexed on the device with a seeded permutation (last
partial batch kept). Seed ``s`` drives init (``derive_seed(s, 0)``), batch order
(``derive_seed(s, 1)``) and DSA (``derive_seed(s, 2)``): same seed, same trajectory on CPU.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .dsa import DSAParams
from .evaluation import check_dataset, compute_accuracy, init_network
from .functional import FlatModel
from .networks import build_from_spec, has_batchnorm
from .seeding import derive_seed
from .training import EpochSettings, NetGroup, train_epochs
from .trajectories import ExpertError, Trajectory, expert_path, save_trajectory

log = logging.getLogger(__name__)

__all__ = [
    "ExpertConfig",
    "config_record",
    "probe_experts_at_once",
    "train_expert",
    "train_expert_group",
    "grow_experts",
    "experts_at_once",
    "trains_alone",
    "train_experts",
]

@dataclass(kw_only=True)
class ExpertConfig:
    """Expert training settings (no defaults: built from ``params.TeacherParams.engine_config``).

    ``precision``: ``"fp32"`` or ``"bf16"`` (the training forward and loss under
    ``torch.autocast`` bfloat16; the test passes stay fp32; recorded in the experts' settings
    only when not fp32, so fp32 experts keep their settings and bank).
    ``dsa_params`` (the DSA strengths) is engine-only: ``None`` = DSA's published strengths.
    ``compile``: each training step's forward, loss and backward through ``torch.compile``
    (:mod:`.training`; an execution choice: never recorded, the same bank either way).
    """

    epochs: int
    lr: float
    batch_size: int
    momentum: float
    weight_decay: float
    dsa_strategy: str
    arch: dict
    eval_batch_size: int
    precision: str
    dsa_params: DSAParams | None = None
    compile: bool


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def config_record(config: ExpertConfig) -> dict:
    """The settings an expert's metadata records (``meta["config"]``): all but ``dsa_params`` and
    ``compile``, and ``precision`` only when it is not the default fp32 (experts saved before it
    existed match)."""
    return {k: v for k, v in asdict(config).items()
            if k not in ("dsa_params", "compile") and not (k == "precision" and v == "fp32")}


def train_expert(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    config: ExpertConfig,
    seed: int,
    device: torch.device,
    progress: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Trajectory:
    """Train one expert and record its flat parameters at every epoch.

    Args:
        train_x: (N, C, H, W) normalised float images (or uint8 with ``mean``/``std``; uint8 keeps
            a large training set 4x smaller on the device).
        train_y: (N,) integer labels.
        test_x, test_y: (M, C, H, W), (M,) test set (same conventions).
        num_classes: number of classes.
        config: training settings.
        seed: drives init, batch order and DSA.
        device: training device (data is moved there once).
        progress: tqdm bar over epochs.
        mean, std: per-channel statistics for uint8 inputs.
        should_stop: asked before every epoch (:func:`~.training.train_epochs`): when true,
            :class:`~galaxy_distillation.errors.Stopped` is raised and nothing is returned (no
            partial expert).

    Returns:
        :class:`Trajectory` with ``params`` (E+1, P) on CPU and ``state`` (what
        :func:`grow_experts` needs to train it further).
    """
    _check_expert_inputs(train_x, train_y, test_x, test_y, num_classes, config)
    n, c, h, w = train_x.shape
    net = init_network(config.arch, c, num_classes, (h, w), derive_seed(seed, 0)).to(device)
    return _run([net], [int(seed)], False, train_x, train_y, test_x, test_y, num_classes, config, device, progress,
                mean, std, should_stop=should_stop)[0]


def _check_expert_inputs(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                         num_classes: int, config: ExpertConfig) -> None:
    check_dataset(train_x, train_y, num_classes, "training")
    check_dataset(test_x, test_y, num_classes, "test")
    if config.epochs < 1 or config.batch_size < 1 or not config.lr > 0:
        raise ExpertError(f"need epochs >= 1, batch_size >= 1, lr > 0 (got {config.epochs}, {config.batch_size}, {config.lr})")
    if config.precision not in PRECISIONS:
        raise ExpertError(f"expert precision must be one of {sorted(PRECISIONS)}, got {config.precision!r}")


def trains_alone(config: ExpertConfig, image_shape: Sequence[int], num_classes: int) -> bool:
    """Whether these experts train one at a time whatever the grouping: batch-norm networks (running
    buffers are not vmap-safe; :func:`train_expert_group`)."""
    c, h, w = image_shape
    return has_batchnorm(build_from_spec(config.arch, c, num_classes, (h, w), device="meta"))


def experts_at_once(setting: int | str | None, device: torch.device, n_experts: int,
                    probe: Callable[[int], int] | None = None, alone: bool = False) -> int:
    """How many experts :func:`train_experts` trains together (``teacher.experts_at_once``).

    ``"auto"``: on CPU 1 (measured: the batched program is slower there, docs/performance.md; no
    probe); on CUDA ``probe(max_k)`` when given (:func:`probe_experts_at_once`: the faster of 1 and
    ``max_k`` by a short timed run, logged), else 4. An integer is taken as is. Never more than
    ``n_experts``. ``alone`` (:func:`trains_alone`: batch-norm experts, trained one at a time in any
    group): 1 whatever the setting (no probe), so that a stop request keeps every expert that
    finished (a group stopped part-way returns none of its experts); the same numbers.
    """
    if alone:
        return 1
    if setting is None or str(setting).strip().lower() == "auto":
        if torch.device(device).type != "cuda":
            k = 1
        elif probe is not None:
            k = int(probe(max(1, min(4, int(n_experts)))))
        else:
            k = 4
    else:
        if isinstance(setting, bool) or int(setting) < 1:
            raise ExpertError(f"experts_at_once must be 'auto' or a positive integer, got {setting!r}")
        k = int(setting)
    return max(1, min(k, int(n_experts)))


def probe_experts_at_once(image_shape: Sequence[int], num_classes: int, config: ExpertConfig, device: torch.device,
                          max_k: int, batches: int = 3) -> int:
    """The faster of 1 and ``max_k`` experts at once on ``device``, by a short timed run.

    Each candidate trains on ``batches`` batches of random images of ``image_shape`` for one epoch
    (twice; the second run is timed): expert-images per second decide. Values do not change the
    time, so the probe needs no data. Logged.
    """
    if max_k <= 1:
        return 1
    device = torch.device(device)
    g = torch.Generator().manual_seed(0)
    n = batches * config.batch_size
    x = torch.randn(n, *[int(d) for d in image_shape], generator=g)
    y = torch.randint(0, num_classes, (n,), generator=g)
    tx, ty = x[:num_classes], torch.arange(num_classes)
    cfg = replace(config, epochs=1)
    rates = {}
    for k in (1, max_k):
        for _ in range(2):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            train_expert_group(x, y, tx, ty, num_classes, cfg, seeds=list(range(k)), device=device, progress=False)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - t0
        rates[k] = k * n / seconds
    best = max(rates, key=rates.get)
    log.info("teacher.experts_at_once auto -> %d (probe on %s: %s expert-images/s)", best, device,
             {k: round(r) for k, r in rates.items()})
    return best


def train_expert_group(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    config: ExpertConfig,
    seeds: Sequence[int],
    device: torch.device,
    progress: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Trajectory]:
    """Train ``len(seeds)`` experts at once, as one batched program; same result as one at a time.

    The K networks' parameters are stacked (``torch.func.stack_module_state``) and trained with
    ``vmap(functional_call)`` (a K-group convolution); the loss is the sum of the K experts' mean
    losses, so each stacked slice gets exactly its own expert's gradient, and SGD (elementwise) then
    updates each slice as :func:`train_expert` would. Each expert keeps its own init, batch order
    and DSA generators (derived from its seed as in :func:`train_expert`), so trajectory ``k``
    equals ``train_expert(..., seed=seeds[k])`` to float tolerance (the batched kernels sum in
    another order). Networks with batch-norm (running buffers are not vmap-safe) fall back to
    one at a time.

    Args:
        seeds: one seed per expert (K >= 1); the other arguments are :func:`train_expert`'s.

    Returns:
        K :class:`Trajectory` objects, in the order of ``seeds``.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ExpertError("train_expert_group needs at least one seed")
    _check_expert_inputs(train_x, train_y, test_x, test_y, num_classes, config)
    n, c, h, w = train_x.shape
    nets = [init_network(config.arch, c, num_classes, (h, w), derive_seed(s, 0)).to(device) for s in seeds]
    if len(seeds) == 1 or has_batchnorm(nets[0]):
        return [train_expert(train_x, train_y, test_x, test_y, num_classes, config, s, device, progress, mean, std,
                             should_stop) for s in seeds]
    return _run(nets, seeds, True, train_x, train_y, test_x, test_y, num_classes, config, device, progress, mean, std,
                should_stop=should_stop)


def grow_experts(
    trajectories: Sequence[Trajectory],
    epochs: int,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    config: ExpertConfig,
    device: torch.device,
    progress: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Trajectory]:
    """Train experts ``epochs`` epochs further from where their trajectories end: the same
    result, bit for bit on CPU, as training them that much longer at once, given the same data
    and settings and the same grouping (the trajectories passed together are trained together,
    as :func:`train_expert_group` does: one at a time for one trajectory or batch-norm nets).

    Each trajectory needs its ``state`` (:func:`~.trajectories.load_trajectory` with
    ``with_state=True``); experts saved before the state was kept cannot be grown.
    ``config.epochs`` is ignored (the new length is the old one + ``epochs``); the other settings
    must be those the experts were trained with.

    Returns:
        New :class:`Trajectory` objects (rows 0..E+epochs; the first E+1 rows are the old ones).
    """
    trajs = list(trajectories)
    if not trajs:
        raise ExpertError("grow_experts needs at least one trajectory")
    if int(epochs) < 1:
        raise ExpertError(f"grow_experts needs epochs >= 1, got {epochs}")
    if any(t.state is None for t in trajs):
        raise ExpertError("these experts have no training state (saved before it was kept): they cannot be grown; "
                          "train longer experts instead")
    lengths = {t.num_epochs for t in trajs}
    if len(lengths) != 1:
        raise ExpertError(f"experts grown together must have the same length, got epochs {sorted(lengths)}")
    start = lengths.pop()
    config = replace(config, epochs=start + int(epochs))
    wanted = json.loads(json.dumps({k: v for k, v in config_record(config).items() if k != "epochs"}))
    for t in trajs:
        had = json.loads(json.dumps({k: v for k, v in t.meta.get("config", {}).items() if k != "epochs"}))
        if had != wanted:
            diff = sorted(k for k in set(had) | set(wanted) if had.get(k) != wanted.get(k))
            raise ExpertError(f"expert seed {t.meta.get('seed')} was trained with other settings ({', '.join(diff)}); "
                              f"it can only be grown with its own")
    _check_expert_inputs(train_x, train_y, test_x, test_y, num_classes, config)
    n, c, h, w = train_x.shape
    seeds = [int(t.meta["seed"]) for t in trajs]
    nets = [init_network(config.arch, c, num_classes, (h, w), derive_seed(s, 0)).to(device) for s in seeds]
    if len(trajs) > 1 and has_batchnorm(nets[0]):
        return [grow_experts([t], epochs, train_x, train_y, test_x, test_y, num_classes, config, device, progress,
                             mean, std, should_stop)[0] for t in trajs]
    return _run(nets, seeds, len(trajs) > 1, train_x, train_y, test_x, test_y, num_classes, config, device, progress,
                mean, std, grown=trajs, should_stop=should_stop)


def _run(nets: list[torch.nn.Module], seeds: list[int], batched: bool, train_x: torch.Tensor,
         train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, num_classes: int, config: ExpertConfig,
         device: torch.device, progress: bool, mean: Sequence[float] | None, std: Sequence[float] | None,
         grown: Sequence[Trajectory] | None = None,
         should_stop: Callable[[], bool] | None = None) -> list[Trajectory]:
    """Train the experts ``nets`` (initialised, on ``device``) with the shared loop and record a
    row (flat parameters, test accuracy) per epoch; ``grown``: the trajectories the nets continue
    (their last rows loaded, their ``state`` restored) up to ``config.epochs``."""
    t0 = time.perf_counter()
    n, c, h, w = train_x.shape
    k_nets = len(seeds)
    flat = FlatModel(nets[0])
    start = 0 if grown is None else grown[0].num_epochs
    if grown is not None:
        for net, traj in zip(nets, grown, strict=True):
            FlatModel(net).load_flat(traj.params[-1])
    group = NetGroup(nets, seeds, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                     batched=batched, states=None if grown is None else [t.state for t in grown])
    net = nets[0]  # the test-pass network (of each expert in turn when batched)
    train_x = train_x.detach().to(device)
    train_y = train_y.detach().to(device=device, dtype=torch.long)
    test_x = test_x.detach().to(device)
    test_y = test_y.detach().to(device=device, dtype=torch.long)
    rows = [torch.empty(config.epochs + 1, flat.numel, dtype=torch.float32) for _ in seeds]  # preallocated, CPU
    accs: list[list[float]] = [[] for _ in seeds]
    losses: list[list[float]] = [[] for _ in seeds]
    if grown is not None:
        for k, traj in enumerate(grown):
            rows[k][: start + 1].copy_(traj.params)
            accs[k], losses[k] = list(traj.test_acc), list(traj.train_loss)

    @torch.no_grad()
    def snapshot(row: int) -> None:
        for k in range(k_nets):
            rows[k][row].copy_(group.flat(k).to(torch.float32))
            if batched:
                flat.load_flat(rows[k][row])
            net.eval()
            accs[k].append(compute_accuracy(net, test_x, test_y, config.eval_batch_size, device, mean, std))
            net.train()

    def after_epoch(epoch: int, epoch_losses: list[float] | None) -> dict:
        for k in range(k_nets):
            losses[k].append(epoch_losses[k])
        snapshot(epoch)
        return {"loss": f"{losses[0][-1]:.3f}", "acc": f"{accs[0][-1]:.1f}"}

    if grown is None:
        snapshot(0)
    desc = f"experts {seeds[0]}.. (x{k_nets})" if batched else f"expert seed {seeds[0]}"
    settings = EpochSettings(batch_size=config.batch_size, dsa_strategy=config.dsa_strategy, dsa_params=config.dsa_params,
                             mean=mean, std=std, autocast=PRECISIONS[config.precision], compile=config.compile)
    train_epochs(group, train_x, train_y, settings,
                 range(start, config.epochs), after_epoch=after_epoch, track_loss=True, progress=progress, desc=desc,
                 should_stop=should_stop)
    seconds = (time.perf_counter() - t0) / k_nets
    out = []
    for k, s in enumerate(seeds):
        meta = {
            "seed": s,
            "arch": dict(config.arch),
            "num_classes": int(num_classes),
            "image_shape": [int(c), int(h), int(w)],
            "config": config_record(config),
            "seconds": seconds if grown is None else grown[k].meta.get("seconds", 0.0) + seconds,
        }
        if batched:
            meta["experts_at_once"] = k_nets
        if grown is not None:
            meta = {**{key: v for key, v in grown[k].meta.items() if key != "experts_at_once"}, **meta,
                    "grown_from": [*grown[k].meta.get("grown_from", []), start]}
        out.append(Trajectory(params=rows[k].contiguous(), test_acc=accs[k], train_loss=losses[k], meta=meta,
                              state=group.export_state(k)))
    return out


def train_experts(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    config: ExpertConfig,
    n_experts: int,
    directory: str | Path,
    seed: int,
    device: torch.device,
    progress: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    at_once: int | str = 1,
    should_stop: Callable[[], bool] | None = None,
) -> list[Path]:
    """Train ``n_experts`` experts into ``directory`` (expert i uses ``derive_seed(seed, i)``).

    Existing ``expert_i`` files are kept (resumable). The missing ones are trained ``at_once``
    at a time (:func:`train_expert_group`; ``"auto"``: see :func:`experts_at_once`); the files
    are the same, to float tolerance, whatever ``at_once``. ``should_stop``: see :func:`train_expert`
    (the experts saved before it are kept). Returns the list of file paths.
    """
    paths = [expert_path(directory, i) for i in range(n_experts)]
    todo = [i for i, path in enumerate(paths) if not path.exists()]
    n, c, h, w = train_x.shape
    k = experts_at_once(at_once, device, max(1, len(todo)),
                        probe=lambda max_k: probe_experts_at_once((c, h, w), num_classes, config, device, max_k),
                        alone=trains_alone(config, (c, h, w), num_classes))
    for j in tqdm(range(0, len(todo), k), desc="experts", disable=not progress):
        group = todo[j : j + k]
        trajs = train_expert_group(train_x, train_y, test_x, test_y, num_classes, config,
                                   [derive_seed(seed, i) for i in group], device, progress=progress, mean=mean, std=std,
                                   should_stop=should_stop)
        for i, traj in zip(group, trajs):
            traj.meta["index"] = i
            save_trajectory(traj, paths[i])
    return paths
