"""Verbatim copies of the four SGD + DSA + cross-entropy loops as they were before
engine/training.py (main at 5781775): ``train_expert``, ``train_expert_group`` (engine/experts.py),
``_train_loop``, ``_train_vmap`` (engine/evaluation.py). Kept as the reference the shared loop must
equal bit for bit on CPU (tests/engine/test_training.py). Only the names, the batch-norm fall-back's
target and the imports were adapted; the training code is unchanged. Do not edit.
"""
# ruff: noqa

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from galaxy_distillation.engine.data import as_float_batch
from galaxy_distillation.engine.dsa import dsa_augment
from galaxy_distillation.engine.evaluation import EvalConfig, compute_accuracy, compute_predictions, init_network
from galaxy_distillation.engine.experts import ExpertConfig, _check_expert_inputs
from galaxy_distillation.engine.functional import FlatModel
from galaxy_distillation.engine.networks import has_batchnorm
from galaxy_distillation.engine.seeding import derive_seed, make_generator
from galaxy_distillation.engine.trajectories import ExpertError, Trajectory


def ref_train_expert(
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

    Returns:
        :class:`Trajectory` with ``params`` (E+1, P) on CPU.
    """
    _check_expert_inputs(train_x, train_y, test_x, test_y, num_classes, config)
    n, c, h, w = train_x.shape
    t0 = time.perf_counter()
    net = init_network(config.arch, c, num_classes, (h, w), derive_seed(seed, 0)).to(device)
    flat = FlatModel(net)
    g_perm, g_dsa = make_generator(derive_seed(seed, 1)), make_generator(derive_seed(seed, 2))
    train_x = train_x.detach().to(device)
    train_y = train_y.detach().to(device=device, dtype=torch.long)
    test_x = test_x.detach().to(device)
    test_y = test_y.detach().to(device=device, dtype=torch.long)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    params = torch.empty(config.epochs + 1, flat.numel, dtype=torch.float32)  # preallocated, CPU

    def snapshot(row: int) -> float:
        params[row].copy_(flat.flat_params().to(torch.float32))
        net.eval()
        acc = compute_accuracy(net, test_x, test_y, config.eval_batch_size, device, mean, std)
        net.train()
        return acc

    test_acc = [snapshot(0)]
    train_loss: list[float] = []
    bar = tqdm(range(config.epochs), desc=f"expert seed {seed}", disable=not progress, leave=False)
    for ep in bar:
        perm = torch.randperm(n, generator=g_perm).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, n, config.batch_size):
            idx = perm[i : i + config.batch_size]
            xb = dsa_augment(as_float_batch(train_x[idx], mean, std), config.dsa_strategy, g_dsa, config.dsa_params)
            yb = train_y[idx]
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * idx.numel()
        train_loss.append(float(total) / n)
        test_acc.append(snapshot(ep + 1))
        bar.set_postfix(loss=f"{train_loss[-1]:.3f}", acc=f"{test_acc[-1]:.1f}")
    meta = {
        "seed": int(seed),
        "arch": dict(config.arch),
        "num_classes": int(num_classes),
        "image_shape": [int(c), int(h), int(w)],
        "config": {k: v for k, v in asdict(config).items() if k != "dsa_params"},
        "seconds": time.perf_counter() - t0,
    }
    return Trajectory(params=params.contiguous(), test_acc=test_acc, train_loss=train_loss, meta=meta)


def ref_train_expert_group(
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
    t0 = time.perf_counter()
    nets = [init_network(config.arch, c, num_classes, (h, w), derive_seed(s, 0)).to(device) for s in seeds]
    if len(seeds) == 1 or has_batchnorm(nets[0]):
        return [ref_train_expert(train_x, train_y, test_x, test_y, num_classes, config, s, device, progress, mean, std)
                for s in seeds]
    k_nets = len(seeds)
    flat = FlatModel(nets[0])
    params, buffers = stack_module_state(nets)  # leaves with a leading (K,) dim
    base = copy.deepcopy(nets[0]).to("meta")
    net = nets[0]  # reused as the test-pass network of each expert in turn

    def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    batched = vmap(one, in_dims=(0, 0, 0))
    g_perms = [make_generator(derive_seed(s, 1)) for s in seeds]
    g_dsas = [make_generator(derive_seed(s, 2)) for s in seeds]
    train_x = train_x.detach().to(device)
    train_y = train_y.detach().to(device=device, dtype=torch.long)
    test_x = test_x.detach().to(device)
    test_y = test_y.detach().to(device=device, dtype=torch.long)
    opt = torch.optim.SGD(list(params.values()), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    rows = [torch.empty(config.epochs + 1, flat.numel, dtype=torch.float32) for _ in seeds]
    accs: list[list[float]] = [[] for _ in seeds]

    @torch.no_grad()
    def snapshot(row: int) -> None:
        for k in range(k_nets):
            rows[k][row].copy_(torch.cat([params[name][k].reshape(-1) for name in flat.names]).to(torch.float32))
            flat.load_flat(rows[k][row])
            net.eval()
            accs[k].append(compute_accuracy(net, test_x, test_y, config.eval_batch_size, device, mean, std))
            net.train()

    snapshot(0)
    losses: list[list[float]] = [[] for _ in seeds]
    bar = tqdm(range(config.epochs), desc=f"experts {seeds[0]}.. (x{k_nets})", disable=not progress, leave=False)
    for ep in bar:
        perms = [torch.randperm(n, generator=g).to(device) for g in g_perms]
        total = torch.zeros(k_nets, device=device)
        for i in range(0, n, config.batch_size):
            idx = torch.stack([p[i : i + config.batch_size] for p in perms])  # (K, b)
            xb = torch.stack([dsa_augment(as_float_batch(train_x[idx[k]], mean, std), config.dsa_strategy, g_dsas[k],
                                          config.dsa_params) for k in range(k_nets)])  # (K, b, C, H, W)
            logits = batched(params, buffers, xb)  # (K, b, classes)
            per = F.cross_entropy(logits.flatten(0, 1), train_y[idx].flatten(), reduction="none")
            loss_k = per.view(k_nets, -1).mean(1)  # (K,) each expert's mean batch loss
            opt.zero_grad(set_to_none=True)
            loss_k.sum().backward()
            opt.step()
            total += loss_k.detach() * idx.shape[1]
        for k in range(k_nets):
            losses[k].append(float(total[k]) / n)
        snapshot(ep + 1)
        bar.set_postfix(loss=f"{losses[0][-1]:.3f}", acc=f"{accs[0][-1]:.1f}")
    seconds = (time.perf_counter() - t0) / k_nets
    out = []
    for k, s in enumerate(seeds):
        meta = {
            "seed": s,
            "arch": dict(config.arch),
            "num_classes": int(num_classes),
            "image_shape": [int(c), int(h), int(w)],
            "config": {key: v for key, v in asdict(config).items() if key != "dsa_params"},
            "seconds": seconds,
            "experts_at_once": k_nets,
        }
        out.append(Trajectory(params=rows[k].contiguous(), test_acc=accs[k], train_loss=losses[k], meta=meta))
    return out


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _checkpoints(epochs: int, every: int) -> list[int]:
    if every <= 0:
        return [epochs]
    pts = list(range(0, epochs, every)) + [epochs]
    return sorted(set(pts))


def _decay_epoch(config: EvalConfig) -> int | None:
    if config.lr_decay_at is None or config.lr_decay_at >= 1 or config.lr_decay_at < 0:
        return None
    return int(config.lr_decay_at * config.epochs)

def ref_train_loop(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    num_classes: int, lr: float, config: EvalConfig, seeds: list[int], device: torch.device,
    progress: bool, mean: Sequence[float] | None, std: Sequence[float] | None,
    predictions: list[torch.Tensor] | None = None,
) -> tuple[list[float], list[int], list[list[float]]]:
    n, c, h, w = train_x.shape
    bs = min(config.batch_size, n)
    decay = _decay_epoch(config)
    cps = _checkpoints(config.epochs, config.curve_every)
    test_y_cpu = test_y.cpu()
    accs: list[float] = []
    curves: list[list[float]] = []
    for k, s in enumerate(seeds):
        net = init_network(config.arch, c, num_classes, (h, w), derive_seed(s, 0)).to(device)
        g_perm, g_dsa = make_generator(derive_seed(s, 1)), make_generator(derive_seed(s, 2))
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
        curve: list[float] = []

        def record(epoch: int, net: torch.nn.Module = net, curve: list[float] = curve) -> None:
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
        for ep in tqdm(range(config.epochs), desc=f"eval net {k}", disable=not progress, leave=False):
            if decay is not None and ep == decay:
                _set_lr(opt, lr * 0.1)
            perm = torch.randperm(n, generator=g_perm)
            for i in range(0, n, bs):
                idx = perm[i : i + bs].to(device)
                xb = as_float_batch(train_x[idx], mean, std)
                xb = dsa_augment(xb, config.dsa_strategy, g_dsa, config.dsa_params)
                loss = F.cross_entropy(net(xb), train_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            record(ep + 1)
        accs.append(curve[-1])
        curves.append(curve)
    return accs, cps, curves


def ref_train_vmap(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    num_classes: int, lr: float, config: EvalConfig, seeds: list[int], device: torch.device,
    progress: bool, mean: Sequence[float] | None, std: Sequence[float] | None,
    predictions: list[torch.Tensor] | None = None,
) -> tuple[list[float], list[int], list[list[float]]]:
    n, c, h, w = train_x.shape
    bs = min(config.batch_size, n)
    k_nets = len(seeds)
    decay = _decay_epoch(config)
    cps = _checkpoints(config.epochs, config.curve_every)
    nets = [init_network(config.arch, c, num_classes, (h, w), derive_seed(s, 0)).to(device) for s in seeds]
    params, buffers = stack_module_state(nets)  # leaves with a leading (K,) dim
    base = copy.deepcopy(nets[0]).to("meta")

    def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    batched = vmap(one, in_dims=(0, 0, 0))
    shared_x = vmap(one, in_dims=(0, 0, None))
    g_perms = [make_generator(derive_seed(s, 1)) for s in seeds]
    g_dsas = [make_generator(derive_seed(s, 2)) for s in seeds]
    opt = torch.optim.SGD(list(params.values()), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    curves: list[list[float]] = [[] for _ in seeds]

    @torch.no_grad()
    def record(epoch: int) -> None:
        if epoch not in cps:
            return
        correct = torch.zeros(k_nets, dtype=torch.long, device=device)
        keep = predictions is not None and epoch == cps[-1]  # the final nets: keep what they predict
        preds = []
        for i in range(0, test_x.shape[0], config.eval_batch_size):
            xb = as_float_batch(test_x[i : i + config.eval_batch_size].to(device), mean, std)
            pred = shared_x(params, buffers, xb).argmax(-1)  # (K, b)
            correct += (pred == test_y[i : i + config.eval_batch_size].to(device).unsqueeze(0)).sum(1)
            if keep:
                preds.append(pred.cpu())
        if keep:
            predictions.extend(torch.cat(preds, dim=1).unbind(0))
        for j in range(k_nets):
            curves[j].append(100.0 * int(correct[j]) / test_x.shape[0])

    record(0)
    for ep in tqdm(range(config.epochs), desc="eval nets (vmap)", disable=not progress, leave=False):
        if decay is not None and ep == decay:
            _set_lr(opt, lr * 0.1)
        perms = [torch.randperm(n, generator=g) for g in g_perms]
        for i in range(0, n, bs):
            idx = torch.stack([p[i : i + bs] for p in perms]).to(device)  # (K, b)
            xb = torch.stack(
                [dsa_augment(as_float_batch(train_x[idx[j]], mean, std), config.dsa_strategy, g_dsas[j],
                             config.dsa_params) for j in range(k_nets)]
            )  # (K, b, C, H, W)
            yb = train_y[idx]  # (K, b)
            logits = batched(params, buffers, xb)  # (K, b, classes)
            loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(k_nets, -1).mean(1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        record(ep + 1)
    return [cv[-1] for cv in curves], cps, curves
