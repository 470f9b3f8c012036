"""The Distiller's plumbing around its iterations: its state and checkpoints (fingerprint, save,
resume, restart on a mismatch), the quick evaluation's ``best_train`` selection and the result.

:class:`DistillerState` is a mixin of :class:`~.matching.Distiller` (which holds the attributes it
reads: ``config``, ``images``, ``lr_param``, the optimisers, ``schedule``, ``history`` ...); it is
also what :class:`~.batched.BatchedDistiller` drives for each of its runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import torch

from .checkpoint import (
    CheckpointMismatchError,
    load_state,
    move_aside,
    result_key,
    save_state,
    tensor_sha256,
)
from .distill_config import DistillConfigError, DistillResult, IterationRecord
from .resume import changed_settings, describe_changes, stored_settings
from .schedule import StageState

__all__ = ["DistillerState"]

log = logging.getLogger(__name__)


class DistillerState:
    """State, checkpoints, resume and result of a :class:`~.matching.Distiller` (a mixin)."""

    @property
    def T_now(self) -> int:
        """The epoch pool of the current iteration: STM's schedule ``T``, MTT's ``max_start_epoch``."""
        return self.schedule.T if self.config.method == "stm" else self.config.max_start_epoch

    def _consider(self, eval_result: dict[str, Any] | None) -> None:
        """Keep the current images when their training-set accuracy is the best so far."""
        if self.config.selection != "best_train" or not eval_result or "train_acc" not in eval_result:
            return
        acc = float(eval_result["train_acc"])
        if self.best is None or acc > self.best["train_acc"]:
            self.best = {"train_acc": acc, "iteration": self.iteration, "images": self.images.detach().clone(),
                         "lr_param": self.lr_param.detach().clone()}

    def fingerprint(self) -> str:
        """The checkpoint's key: :func:`~.checkpoint.result_key` of the data (content), the experts
        (their fingerprint: headers, no tensor read) and the settings that change the numbers.

        ``iterations`` and ``eval_every`` are excluded, so a run can be resumed with a larger
        iteration budget; so are the execution-only settings (``memory_mode``, ``expert_cache``,
        ``checkpoint_every``: :data:`~.checkpoint.EXECUTION_ONLY`).
        """
        cfg = dataclasses.asdict(self.config)
        for k in ("iterations", "eval_every"):
            cfg.pop(k)
        experts = getattr(self.experts, "fingerprint", None)
        if self.data_key is None:
            self.data_key = tensor_sha256(self.train_x, self.train_y)
        return result_key(
            config=cfg, arch=self.arch, num_classes=self.num_classes, train_shape=list(self.train_x.shape),
            data=self.data_key, n_experts=len(self.experts), expert_epochs=int(self.experts.num_epochs),
            experts=experts() if callable(experts) else None, dtype=str(self.dtype),
        )

    def settings(self) -> dict[str, Any]:
        """Every setting of this run as plain values (the fingerprint's and the budget's), stored
        in each checkpoint so a resumed run can say which of them changed."""
        payload = {"config": dataclasses.asdict(self.config), "arch": self.arch, "num_classes": self.num_classes,
                   "train_shape": list(self.train_x.shape), "n_experts": len(self.experts),
                   "expert_epochs": int(self.experts.num_epochs), "dtype": str(self.dtype)}
        return json.loads(json.dumps(payload, sort_keys=True, default=repr))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (tensors + plain types only)."""
        s = self.schedule.state
        return {
            "run_info": {str(k): str(v) for k, v in self.run_info.items()},
            "settings_json": json.dumps(self.settings(), sort_keys=True),
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
            "best": self.best,
            "memory_mode": self.memory_mode,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (raises ``CheckpointMismatchError`` on a config mismatch)."""
        if state.get("fingerprint") != self.fingerprint():
            raise CheckpointMismatchError(
                f"checkpoint {self.checkpoint_store} was written with a different configuration/data/experts; "
                "use a new checkpoint_dir or move it away"
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
        if self.config.memory_mode == "auto" and state.get("memory_mode"):
            self.memory_mode = str(state["memory_mode"])  # the mode the run chose: a resumed run keeps it
        best = state.get("best")
        self.best = None if best is None else {**best, "images": best["images"].to(self.images),
                                                 "lr_param": best["lr_param"].to(self.lr_param)}

    def save_checkpoint(self) -> None:
        """Atomically write the current state to the checkpoint store (no-op without one)."""
        if self.checkpoint_store is not None:
            save_state(self.checkpoint_store, self.state_dict())

    def result(self) -> DistillResult:
        """Current synthetic set and bookkeeping as a :class:`DistillResult`.

        With ``selection="best_train"`` the images and step size are those of the quick
        evaluation with the best training-set accuracy (the last ones if none ran yet).
        """
        images, lr_param, selected_it, selected_acc = self.images, self.lr_param, self.iteration, None
        if self.config.selection == "best_train" and self.best is not None:
            images, lr_param = self.best["images"], self.best["lr_param"]
            selected_it, selected_acc = int(self.best["iteration"]), float(self.best["train_acc"])
        lr = lr_param.detach().exp() if self.config.effective_log_lr else lr_param.detach()
        return DistillResult(
            images=images.detach().to("cpu", torch.float32).clone(),
            labels=self.labels.detach().cpu().clone(),
            lr=float(lr),
            history=list(self.history),
            stop_reason=self.stop_reason or "interrupted",
            n_rejected_steps=self.n_rejected,
            T=self.T_now,
            iterations_done=self.iteration,
            selection=self.config.selection,
            selected_iteration=selected_it,
            selected_train_acc=selected_acc,
        )

    # ------------------------------------------------------------------ a run's start and end

    def resume(self, on_mismatch: str = "raise") -> None:
        """Before a run: resume from the checkpoint when there is one (same fingerprint required;
        ``on_mismatch="restart"`` moves a mismatching one aside, never deletes it, and starts afresh)."""
        if on_mismatch not in ("raise", "restart"):
            raise DistillConfigError(f"on_mismatch must be 'raise' or 'restart', got {on_mismatch!r}")
        if self.checkpoint_store is not None:
            state = load_state(self.checkpoint_store)
            if state is not None:
                changed = changed_settings(stored_settings(state), self.settings())
                try:
                    self.load_state_dict(state)
                    self.resumed_from = {"iteration": self.iteration, "checkpoint": str(self.checkpoint_store),
                                         "run_info": dict(state.get("run_info") or {}), "changed": changed}
                except CheckpointMismatchError:
                    if on_mismatch == "raise":
                        raise
                    if changed:
                        log.warning("The checkpoint %s was made with other settings: %s.", self.checkpoint_store,
                                    describe_changes(changed))
                    if move_aside(self.checkpoint_store, str(state.get("fingerprint"))) is None:
                        raise
                    self._init_state()
        if self.stop_reason == "max_iterations" and self.iteration < self.config.iterations:
            self.stop_reason = None  # resumed with a larger budget

    @property
    def active(self) -> bool:
        """Whether the run has iterations left (no stop rule fired, budget not reached)."""
        return self.stop_reason is None and self.iteration < self.config.iterations

    def after_iteration(self, record: IterationRecord) -> None:
        """After each iteration of :meth:`run`: the callback, and a checkpoint every ``checkpoint_every``."""
        if self.callback is not None:
            self.callback(record)
        if (self.config.checkpoint_every > 0 and self.iteration % self.config.checkpoint_every == 0
                and self.stop_reason is None):
            self.save_checkpoint()

    def finish(self) -> DistillResult:
        """At the end of a run call: mark a spent budget, save the checkpoint, return the result."""
        if self.stop_reason is None and self.iteration >= self.config.iterations:
            self.stop_reason = "max_iterations"
        self.save_checkpoint()
        return self.result()
