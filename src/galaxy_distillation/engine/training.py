"""The one SGD + DSA + cross-entropy training loop of the engine: experts (:mod:`.experts`) and
evaluation nets (:mod:`.evaluation`) both train through :func:`train_epochs`.

A :class:`NetGroup` is K >= 1 networks with one SGD optimizer and, per network, its own
minibatch-order generator (``derive_seed(seed, 1)``) and DSA generator (``derive_seed(seed, 2)``).
``batched=False`` (K = 1): the module itself is trained. ``batched=True``: the K networks'
parameters are stacked (``torch.func.stack_module_state``) and trained as one ``vmap(functional_call)``
program; the loss is the sum of the K mean losses, so each slice gets its own network's gradient
and SGD (elementwise) updates it as alone (to float tolerance: the batched kernels sum in another
order). Each epoch: one permutation per network (drawn at the start of the epoch, last partial
batch kept), then per batch each network's DSA draw, in network order. What a caller does
between epochs (lr decay, recording a trajectory row, testing at checkpoints) are its hooks;
``should_stop`` (a plain callable, e.g. the pipelines' ``compute.stop_requested``) is asked before
every epoch, and :class:`~galaxy_distillation.errors.Stopped` ends the run there (the epoch in
progress is finished first; nothing of a run stopped so is returned).

:meth:`NetGroup.export_state` / the ``states`` argument carry what a network needs to go on
training exactly where it stopped: both generators' states, the SGD momentum buffer and the
module's buffers (batch-norm statistics). Restored, further epochs equal, bit for bit on CPU,
those of one longer run (the parameters themselves come from the caller, e.g. a trajectory's
last row).

``EpochSettings.compile``: the forward, loss and backward of each step run through
``torch.compile`` (inductor; one graph per batch shape, shared by every group of that
architecture in the process). DSA (its draws come from CPU generators, in the order above) and
the SGD update stay eager, so the randomness is that of the eager run; the numbers equal it to
float tolerance (the compiled kernels may sum in another order). A compilation that fails falls
back to eager for the rest of the process, with one log line.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from galaxy_distillation.errors import Stopped

from .data import as_float_batch
from .dsa import DSAParams, dsa_augment
from .seeding import derive_seed, make_generator

__all__ = ["EpochSettings", "NetGroup", "train_epochs"]

log = logging.getLogger(__name__)

GENERATOR_KEYS = ("perm_generator", "dsa_generator")


@dataclass(kw_only=True)
class EpochSettings:
    """What one epoch needs besides the networks: batch size, DSA, uint8 statistics, and
    ``autocast``: a dtype to run the training forward and loss in under ``torch.autocast``
    (``None``: plain fp32; DSA, backward and the update stay outside it); ``compile``: the step's
    forward, loss and backward through ``torch.compile`` (see the module's note)."""

    batch_size: int
    dsa_strategy: str
    dsa_params: DSAParams | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    autocast: torch.dtype | None = None
    compile: bool = False

    def forward_context(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast)


def _loss_one(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(net(xb), yb)


def _loss_each(base: nn.Module, params: dict, buffers: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """(K,) each network's mean batch loss: the batched step's forward and loss, as one function."""

    def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    logits = vmap(one, in_dims=(0, 0, 0))(params, buffers, xb)  # (K, b, classes)
    per = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none")
    return per.view(xb.shape[0], -1).mean(1)


#: The step's forward and loss by kind: one network, or a batched group (each network's loss).
_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"one": _loss_one, "each": _loss_each}
#: The compiled step functions (made on first use), and the kinds whose compilation failed here.
_COMPILED: dict[str, Callable] = {}
_FAILED: set[str] = set()


def _compiled(kind: str) -> Callable | None:
    if kind in _FAILED:
        return None
    if kind not in _COMPILED:
        _COMPILED[kind] = torch.compile(_LOSSES[kind], dynamic=False)
    return _COMPILED[kind]


def _give_up(kind: str, exc: BaseException) -> None:
    _FAILED.add(kind)
    log.warning("torch.compile of the training step failed (%s: %s); training eagerly instead",
                type(exc).__name__, str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "")


class NetGroup:
    """K networks (on their device, initialised), their SGD optimizer and generators.

    Args:
        nets: the K networks (their own parameters are trained when ``batched=False``; with
            ``batched=True`` they are copied into stacked tensors, :attr:`params`).
        seeds: one seed per network (its generators are derived from it).
        lr, momentum, weight_decay: SGD settings.
        batched: one vmap program for the K nets (no batch-norm); ``False`` needs K = 1.
        states: optional per-net :meth:`export_state` dicts to continue from.
    """

    def __init__(self, nets: list[nn.Module], seeds: Sequence[int], *, lr: float, momentum: float,
                 weight_decay: float, batched: bool, states: Sequence[dict[str, torch.Tensor]] | None = None) -> None:
        if not batched and len(nets) != 1:
            raise ValueError(f"an unbatched NetGroup holds one network, got {len(nets)}")
        self.nets, self.k, self.batched = nets, len(nets), batched
        self.names = [name for name, _ in nets[0].named_parameters()]
        self.g_perms = [make_generator(derive_seed(s, 1)) for s in seeds]
        self.g_dsas = [make_generator(derive_seed(s, 2)) for s in seeds]
        if states is not None:
            for k, state in enumerate(states):
                self.g_perms[k].set_state(state["perm_generator"])
                self.g_dsas[k].set_state(state["dsa_generator"])
                with torch.no_grad():
                    for name, buf in nets[k].named_buffers():
                        buf.copy_(state[f"buffer.{name}"])
        if batched:
            self.params, self.buffers = stack_module_state(nets)  # leaves with a leading (K,) dim
            base = copy.deepcopy(nets[0]).to("meta")
            self._base = base

            def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
                return functional_call(base, (p, b), (x,))

            self._shared = vmap(one, in_dims=(0, 0, None))
        self.opt = torch.optim.SGD(self._optimised(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        if states is not None and all("momentum" in s for s in states):
            self._load_momentum([s["momentum"] for s in states])

    def _optimised(self) -> list[torch.Tensor]:
        """The tensors SGD updates: the stacked parameters (batched) or the one network's."""
        return list(self.params.values()) if self.batched else list(self.nets[0].parameters())

    @property
    def device(self) -> torch.device:
        return next(self.nets[0].parameters()).device

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

    def _trained(self, k: int) -> list[torch.Tensor]:
        """Network ``k``'s trained parameter tensors (views), in ``named_parameters`` order."""
        if self.batched:
            return [self.params[name][k] for name in self.names]
        return list(self.nets[0].parameters())

    @torch.no_grad()
    def flat(self, k: int) -> torch.Tensor:
        """Network ``k``'s parameters as one detached flat vector (P,) (on the device)."""
        return torch.cat([p.detach().reshape(-1) for p in self._trained(k)]).clone()

    @torch.no_grad()
    def logits_each(self, x: torch.Tensor) -> torch.Tensor:
        """(K, B, classes): every network on the same batch ``x`` (B, C, H, W)."""
        if self.batched:
            return self._shared(self.params, self.buffers, x)
        return self.nets[0](x).unsqueeze(0)

    def export_state(self, k: int) -> dict[str, torch.Tensor]:
        """What network ``k`` needs to continue training exactly (CPU tensors): both generators'
        states, its SGD momentum (flat, if the optimizer has one yet) and its module buffers."""
        state = {"perm_generator": self.g_perms[k].get_state(), "dsa_generator": self.g_dsas[k].get_state()}
        bufs = [self.opt.state.get(p, {}).get("momentum_buffer") for p in self._optimised()]
        if bufs and all(b is not None for b in bufs):
            parts = [b[k] if self.batched else b for b in bufs]
            state["momentum"] = torch.cat([b.detach().reshape(-1) for b in parts]).cpu().clone()
        if self.batched:
            named = {name: b[k] for name, b in self.buffers.items()}
        else:
            named = dict(self.nets[0].named_buffers())
        for name, b in named.items():
            state[f"buffer.{name}"] = b.detach().cpu().clone()
        return state

    def _load_momentum(self, flats: list[torch.Tensor]) -> None:
        shapes = [p.shape for p in self._trained(0)]
        sizes = [s.numel() for s in shapes]
        per_net = [[c.view(s) for c, s in zip(torch.split(f.to(self.device), sizes), shapes, strict=True)]
                   for f in flats]
        for i, p in enumerate(self._optimised()):
            buf = torch.stack([parts[i] for parts in per_net]) if self.batched else per_net[0][i]
            self.opt.state[p]["momentum_buffer"] = buf.clone().to(p.dtype)

    def _step_one(self, train_x: torch.Tensor, train_y: torch.Tensor, idx: torch.Tensor,
                  s: EpochSettings) -> torch.Tensor:
        xb = dsa_augment(as_float_batch(train_x[idx], s.mean, s.std), s.dsa_strategy, self.g_dsas[0], s.dsa_params)
        return self._optimise("one", (self.nets[0], xb, train_y[idx]), s, xb.device) * idx.numel()

    def _step_batched(self, train_x: torch.Tensor, train_y: torch.Tensor, idx: torch.Tensor,
                      s: EpochSettings) -> torch.Tensor:
        xb = torch.stack([dsa_augment(as_float_batch(train_x[idx[k]], s.mean, s.std), s.dsa_strategy, self.g_dsas[k],
                                      s.dsa_params) for k in range(self.k)])  # (K, b, C, H, W)
        loss_k = self._optimise("each", (self._base, self.params, self.buffers, xb, train_y[idx]), s, xb.device)
        return loss_k * idx.shape[1]

    def _optimise(self, kind: str, args: tuple, s: EpochSettings, device: torch.device) -> torch.Tensor:
        """One SGD step on the loss ``_LOSSES[kind](*args)`` (() for one net, (K,) each net's mean
        batch loss for a batched group, whose sum is backpropagated): compiled when
        ``s.compile`` and the compilation works (:func:`_compiled`), else eager. Returns the
        loss, detached."""
        self.opt.zero_grad(set_to_none=True)
        loss = None
        if s.compile and (step := _compiled(kind)) is not None:
            try:
                with s.forward_context(device):
                    loss = step(*args)
                loss.sum().backward()
            except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager step instead
                _give_up(kind, exc)
                self.opt.zero_grad(set_to_none=True)
                loss = None
        if loss is None:
            with s.forward_context(device):
                loss = _LOSSES[kind](*args)
            loss.sum().backward()
        self.opt.step()
        return loss.detach()

    def epoch(self, train_x: torch.Tensor, train_y: torch.Tensor, s: EpochSettings,
              track_loss: bool) -> torch.Tensor | None:
        """One epoch over (train_x, train_y) (on the device); the summed per-image loss of each
        network ((K,), or () for an unbatched group) when ``track_loss``."""
        n, device = train_x.shape[0], train_x.device
        perms = [torch.randperm(n, generator=g).to(device) for g in self.g_perms]
        total = torch.zeros(self.k if self.batched else (), device=device) if track_loss else None
        for i in range(0, n, s.batch_size):
            if self.batched:
                idx = torch.stack([p[i : i + s.batch_size] for p in perms])  # (K, b)
                part = self._step_batched(train_x, train_y, idx, s)
            else:
                part = self._step_one(train_x, train_y, perms[0][i : i + s.batch_size], s)
            if total is not None:
                total += part
        return total


def train_epochs(group: NetGroup, train_x: torch.Tensor, train_y: torch.Tensor, settings: EpochSettings,
                 epochs: range, *, before_epoch: Callable[[int], None] | None = None,
                 after_epoch: Callable[[int, list[float] | None], dict | None] | None = None,
                 track_loss: bool = False, progress: bool = False, desc: str = "",
                 should_stop: Callable[[], bool] | None = None) -> None:
    """Train ``group`` for the epochs ``epochs`` (0-based; ``range(e0, e1)`` continues a group
    restored at epoch ``e0``) on (train_x, train_y) already on the device.

    Hooks: ``before_epoch(ep)`` (e.g. lr decay); ``after_epoch(ep + 1, losses)`` with each
    network's mean training loss of the epoch (``None`` unless ``track_loss``), which may return
    a dict shown on the progress bar.

    Raises:
        Stopped: ``should_stop()`` was true before an epoch (checked once per epoch, so a stop
            request ends the run within the epoch in progress).
    """
    n = train_x.shape[0]
    bar = tqdm(epochs, desc=desc, disable=not progress, leave=False)
    for ep in bar:
        if should_stop is not None and should_stop():
            bar.close()
            raise Stopped(f"{desc or 'training'}: stopped when asked, before epoch {ep + 1} of {epochs.stop}")
        if before_epoch is not None:
            before_epoch(ep)
        total = group.epoch(train_x, train_y, settings, track_loss)
        losses = None
        if total is not None:
            losses = [float(t) / n for t in total] if group.batched else [float(total) / n]
        if after_epoch is not None:
            shown = after_epoch(ep + 1, losses)
            if shown:
                bar.set_postfix(**shown)
