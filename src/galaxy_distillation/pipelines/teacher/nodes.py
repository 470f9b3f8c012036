"""Nodes of the ``teacher`` pipeline: expert trajectories, and the Full-set baseline.

Both train networks on the whole training set, and both depend only on the dataset and on
whether it is augmented, so they are computed once per (dataset, augmented) and shared by
every variant.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import torch

from galaxy_distillation import tracking
from galaxy_distillation.compute import Stopped, run_tasks, stop_requested
from galaxy_distillation.engine.checkpoint import EXECUTION_ONLY, result_key, tensor_sha256
from galaxy_distillation.engine.classwise import class_report
from galaxy_distillation.engine.data import pick_device
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.experts import (
    ExpertConfig,
    config_record,
    experts_at_once,
    grow_experts,
    probe_experts_at_once,
    train_expert_group,
    trains_alone,
)
from galaxy_distillation.engine.seeding import derive_seed
from galaxy_distillation.engine.trajectories import ExpertError, expert_path, has_state, load_trajectory
from galaxy_distillation.params import ArchParams, ComputeParams, EvaluationParams, TeacherParams
from galaxy_distillation.pipelines.prepare.nodes import PreparedData
from galaxy_distillation.storage.shelf import BANK_PREFIX

log = logging.getLogger(__name__)

#: ``derive_seed(evaluation.seed, FULL_SEED_KEY)`` seeds the Full-set baseline's nets.
FULL_SEED_KEY = 4


def train_expert_group_task(data, config, seeds, device, progress, grow_from=None):
    """One task of the teacher (module level, so Ray can ship it): the engine's ``train_expert_group``
    for the experts of ``seeds`` (one batched program when there are several), on this node's device.
    ``data`` is the whole prepared set: the one object-store copy the sweep's other tasks share.
    ``grow_from = (shelf, bank, indices)``: these experts exist, shorter, in that bank of the shelf
    (with their training state): they are read there and grown to ``config.epochs``
    (:func:`~galaxy_distillation.engine.experts.grow_experts`), the same numbers as training them anew.
    A stop request (``compute.stop_requested``) ends it within one epoch with ``Stopped`` and no
    trajectory: nothing partial is ever returned, so none is written."""
    if grow_from is not None:
        shelf, bank, indices = grow_from
        folder = shelf.bank(bank).directory
        shorter = [load_trajectory(expert_path(folder, i), with_state=True) for i in indices]
        return grow_experts(shorter, config.epochs - shorter[0].num_epochs, data.train_x, data.train_y, data.test_x,
                            data.test_y, data.num_classes, config, device=pick_device(device), progress=progress,
                            should_stop=stop_requested)
    return train_expert_group(data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes, config,
                              seeds=list(seeds), device=pick_device(device), progress=progress,
                              should_stop=stop_requested)


def growable(shelf: Any, bank: str, todo: list[int], seeds: list[int], config: ExpertConfig,
             data_sha: str) -> dict[int, tuple[str, int]]:
    """The experts to train that another bank of ``shelf`` already holds shorter: the same seed,
    data and settings but fewer epochs, with their training state (experts saved before it was
    kept cannot be grown). ``{index: (bank, epochs)}``, the longest such expert of each index."""
    if not todo:
        return {}
    want = {k: v for k, v in _settings(config).items() if k != "epochs"}
    found: dict[int, tuple[str, int]] = {}
    for other in shelf.names():
        if other == bank:
            continue
        for i, meta in shelf.inventory(other).items():
            stored = _stored_settings(meta)
            had = int(stored.pop("epochs", 0) or 0)
            if (i in todo and meta.get("seed") == seeds[i] and meta.get("data_sha256") == data_sha
                    and stored == want and 0 < had < config.epochs
                    and had > found.get(i, ("", -1))[1]):
                found[i] = (other, had)
    folders = {b: shelf.bank(b).directory for b, _ in set(found.values())}
    return {i: src for i, src in found.items() if has_state(expert_path(folders[src[0]], i))}


def data_fingerprint(data: PreparedData) -> str:
    """SHA-256 of the training and test tensors the experts learn from: the data's content, not its
    shape (a folder whose images were replaced, same count, is other data). Computed once per
    prepared set (remembered on it)."""
    cached = data.__dict__.get("_sha256")
    if cached is None:
        cached = tensor_sha256(data.train_x, data.train_y, data.test_x, data.test_y)
        object.__setattr__(data, "_sha256", cached)  # PreparedData is frozen; this is a cache only
    return cached


def _settings(config: ExpertConfig) -> dict[str, Any]:
    """The expert settings that change the numbers (JSON round-tripped, as stored in the headers)."""
    want = {k: v for k, v in config_record(config).items() if k not in EXECUTION_ONLY}
    return json.loads(json.dumps(want))


def _stored_settings(meta: dict[str, Any]) -> dict[str, Any]:
    """The settings an expert's header records, as :func:`_settings` gives them (execution-only ones left out)."""
    stored = {k: v for k, v in (meta.get("config") or {}).items() if k not in EXECUTION_ONLY}
    return json.loads(json.dumps(stored))


def _matches(meta: dict[str, Any], seed: int, config: ExpertConfig, data_sha: str) -> bool:
    return (meta.get("seed") == seed and meta.get("data_sha256") == data_sha
            and _stored_settings(meta) == _settings(config))


def bank_name(data_sha: str, config: ExpertConfig, teacher_seed: int) -> str:
    """The folder of the experts of this data and these settings in an expert folder:
    ``bank-<16 hex>`` of :func:`~galaxy_distillation.engine.checkpoint.result_key`
    (data fingerprint, expert settings, teacher seed)."""
    return BANK_PREFIX + result_key(data=data_sha, config=_settings(config), seed=int(teacher_seed))[:16]


def choose_bank(shelf: Any, data_sha: str, teacher: TeacherParams, model: ArchParams) -> str:
    """The bank of ``shelf`` for this data and these settings: its keyed folder, or the folder itself
    when the experts written there before banks were keyed are all of this data and settings."""
    config = teacher.engine_config(model)
    name = bank_name(data_sha, config, teacher.seed)
    names = shelf.names()
    if name not in names and "" in names:
        legacy = shelf.inventory("")
        if all(_matches(meta, derive_seed(teacher.seed, i), config, data_sha) for i, meta in legacy.items()):
            return ""
    return name


def experts_for(experts: Any, data: PreparedData, teacher: TeacherParams | None = None,
                model: ArchParams | None = None) -> Any:
    """The experts a stage uses for ``data``: from an expert folder (:class:`~galaxy_distillation.storage.shelf.ExpertShelf`)
    the bank of this data and settings, its first ``teacher.n_experts`` experts; an expert bank given
    directly is checked and limited the same way.

    Raises:
        ExpertError: no experts for this data (one line naming both data fingerprints), or fewer
            experts than ``teacher.n_experts``.
    """
    data_sha = data_fingerprint(data)
    n = teacher.n_experts if teacher is not None else None
    if hasattr(experts, "inventory") and hasattr(experts, "bank"):  # an expert folder
        shelf = experts
        inventories = {b: shelf.inventory(b) for b in shelf.names()}
        if teacher is not None and model is not None:
            names = [choose_bank(shelf, data_sha, teacher, model)]
        else:  # no settings given: the banks of this data
            names = [b for b, inv in inventories.items() if any(m.get("data_sha256") == data_sha for m in inv.values())]
        inventory = inventories.get(names[0], {}) if len(names) == 1 else {}
        if len(names) > 1:
            raise ExpertError(f"{shelf.url} holds {len(names)} banks for this data (other expert settings): "
                              f"give the teacher parameters to choose one")
        if not inventory:
            others = sorted({str(m.get("data_sha256"))[:12] for inv in inventories.values() for m in inv.values()})
            raise ExpertError(f"no experts for this data (sha256 {data_sha[:12]}) and teacher settings in {shelf.url} "
                              f"(its experts are of data {', '.join(others) or '-'}): run `kedro run --pipelines=teacher`")
        missing = [i for i in range(n or len(inventory)) if i not in inventory]
        if missing:
            raise ExpertError(f"{shelf.location(names[0])} lacks experts {missing[:5]} of the {n} teacher.n_experts "
                              f"asks for: run `kedro run --pipelines=teacher` to train them")
        experts = shelf.bank(names[0], n or len(inventory))
    elif n is not None and len(experts) > n and hasattr(experts, "first"):
        experts = experts.first(n)
    for i, info in enumerate(getattr(experts, "_infos", [])):
        sha = info["meta"].get("data_sha256")
        if sha is not None and sha != data_sha:
            raise ExpertError(f"expert {i} in {experts.directory} was trained on data sha256 {sha[:12]}, "
                              f"not this data's {data_sha[:12]}: run `kedro run --pipelines=teacher` for this data")
    return experts


def check_same_data(data_sha: str | None, *records: tuple[str, dict[str, Any] | None]) -> None:
    """Refuse results made from other data: each ``(what, record)`` whose ``data_sha256`` is set
    must equal ``data_sha`` (records written before the field existed pass).

    Raises:
        ExpertError: one line naming the result and both data fingerprints.
    """
    for what, record in records:
        sha = (record or {}).get("data_sha256")
        if data_sha is not None and sha is not None and sha != data_sha:
            raise ExpertError(f"the {what} was made from data sha256 {str(sha)[:12]}, not this data's "
                              f"{data_sha[:12]}: rerun the stage that makes it (teacher for the Full baseline, "
                              f"distill for the distilled set)")


def train_experts(
    prepared_data: PreparedData, teacher: TeacherParams, model: ArchParams, device: str, progress: bool,
    expert_inventory: Any = None, compute: ComputeParams | None = None,
) -> Iterator[dict[str, Any]]:
    """Train the missing ones of ``teacher.n_experts`` experts; yield each trajectory as it comes back.

    A generator node: Kedro saves every expert as it finishes, so 100 experts of 121 MB
    never sit in memory together, and a run that dies keeps the experts it finished.
    Expert ``i`` is trained with seed ``derive_seed(teacher.seed, i)``, locally or as a Ray
    task (``compute``, see :mod:`galaxy_distillation.compute`). The experts live in the bank of
    this data and settings (:func:`choose_bank`; other data or settings: another bank beside it),
    append-only: an expert already there is kept, never retrained or deleted, and a bank larger
    than ``n_experts`` keeps its other experts. ``expert_inventory`` is the expert folder
    (:class:`~galaxy_distillation.storage.shelf.ExpertShelf`; a read error there is raised, never
    taken for a missing expert), or a plain ``{index: meta}`` of the bank. An expert to train that
    another bank of the folder holds shorter (same seed, data and settings, fewer ``teacher.epochs``,
    saved with its training state) is grown from it instead (:func:`growable`): the numbers of
    training it anew (bit for bit on CPU when grown one at a time, as it was trained: the default
    there; to float tolerance in another grouping), written as a new file of this bank; the
    shorter bank stays as it is.
    ``teacher.experts_at_once`` experts are trained together as one batched program, one task
    (``auto``: on CUDA the faster of 1 and 4 by a short probe, 1 on CPU); each keeps its own seed.
    Batch-norm experts (trained one at a time in any group) are one task each, so a stop request
    keeps every expert that finished.

    Yields:
        First ``{"bank": name, "keep": [i, ...]}`` (the experts reused), then ``{"bank": name,
        "index": i, "trajectory": Trajectory}`` per trained expert, with parameters at every epoch
        (row 0 = initialisation) and the test accuracy per epoch.
    """
    data = prepared_data
    config = teacher.engine_config(model)
    n_experts = teacher.n_experts
    seeds = [derive_seed(teacher.seed, index) for index in range(n_experts)]
    data_sha = data_fingerprint(data)
    if hasattr(expert_inventory, "inventory"):
        bank = choose_bank(expert_inventory, data_sha, teacher, model)
        inventory = expert_inventory.inventory(bank)
    else:
        bank = bank_name(data_sha, config, teacher.seed)  # a plain {index: meta}: those of this bank are kept
        inventory = {i: m for i, m in (expert_inventory or {}).items()
                     if i < n_experts and _matches(m, seeds[i], config, data_sha)}
    foreign = [i for i in range(n_experts) if i in inventory and not _matches(inventory[i], seeds[i], config, data_sha)]
    if foreign:  # cannot happen in a keyed bank; never overwrite what is there
        raise ExpertError(f"experts {foreign[:5]} of bank {bank or '(folder)'} were made with other data or settings; "
                          f"move them away to train new ones")
    keep = [i for i in range(n_experts) if i in inventory]
    todo = [i for i in range(n_experts) if i not in inventory]
    grow = growable(expert_inventory, bank, todo, seeds, config, data_sha) if hasattr(expert_inventory, "bank") else {}
    log.info("experts (%s): %d kept, %d to train%s%s", bank or "folder", len(keep), len(todo) - len(grow),
             f", {len(grow)} to grow from shorter ones" if grow else "",
             f", {len(inventory) - len(keep)} more in the bank not used" if len(inventory) > len(keep) else "")
    yield {"bank": bank, "keep": keep}
    compute = compute or ComputeParams()
    shared = (data, config)
    per_epoch_bars = bool(progress) and compute.backend == "local"
    # group size from the device the tasks get: this one locally, a GPU per task when Ray grants one
    task_device = pick_device(device) if compute.backend == "local" else torch.device(
        "cuda" if compute.gpus_per_task > 0 else "cpu")
    probe = None if compute.backend != "local" else (  # auto on CUDA: a short timed probe (engine/experts.py)
        lambda max_k: probe_experts_at_once(tuple(data.train_x.shape[1:]), data.num_classes, config, task_device, max_k))
    k = experts_at_once(teacher.experts_at_once, task_device, max(1, len(todo)), probe=probe,
                        alone=trains_alone(config, tuple(data.train_x.shape[1:]), data.num_classes))
    fresh = [i for i in todo if i not in grow]
    groups = [fresh[start:start + k] for start in range(0, len(fresh), k)]
    tasks = [([seeds[i] for i in group], device, per_epoch_bars) for group in groups]
    for source in sorted(set(grow.values())):  # grown k at a time, like the fresh ones
        same = [i for i in todo if grow.get(i) == source]
        for start in range(0, len(same), k):
            groups.append(same[start:start + k])
            tasks.append(([seeds[i] for i in groups[-1]], device, per_epoch_bars,
                          (expert_inventory, source[0], groups[-1])))
    finished = 0
    try:
        for g, trajectories in run_tasks(train_expert_group_task, tasks, compute, shared=shared, desc="experts",
                                         progress=bool(progress)):
            for index, trajectory in zip(groups[g], trajectories):
                trajectory.meta.update(index=index, data_sha256=data_sha)
                log.info("expert %d/%d: test accuracy %.1f%% after %d epochs",
                         index + 1, n_experts, trajectory.test_acc[-1], config.epochs)
                log_expert_metrics(index, trajectory.test_acc)
                yield {"bank": bank, "index": index, "trajectory": trajectory}
                finished += 1
    except Stopped as exc:
        raise Stopped(f"teacher stopped when asked: {finished} expert(s) of this run finished and kept, "
                      f"none partly written ({exc})") from None


def log_expert_metrics(index: int, test_acc: list[float]) -> None:
    """Per-expert test accuracy per epoch into the active MLflow run (the ``kedro run``'s), if any."""
    tracking.log_histories({f"teacher.expert_{index:04d}.test_acc": [
        {"step": epoch, "value": float(acc)} for epoch, acc in enumerate(test_acc)]})


def summarise_experts(expert_trajectories: Any, prepared_data: PreparedData | None = None,
                      teacher: TeacherParams = None, model: ArchParams = None
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test accuracy per epoch of every expert used (the bank of this data and settings, see
    :func:`experts_for`; JSON summary and MLflow metric histories)."""
    if prepared_data is not None:
        expert_trajectories = experts_for(expert_trajectories, prepared_data, teacher, model)
    accs = [list(map(float, expert_trajectories.test_acc(i))) for i in range(len(expert_trajectories))]
    n_epochs = len(accs[0]) - 1
    mean_curve = [sum(a[e] for a in accs) / len(accs) for e in range(n_epochs + 1)]
    summary = {
        "n_experts": len(accs),
        "epochs": n_epochs,
        "final_test_acc": [a[-1] for a in accs],
        "final_test_acc_mean": sum(a[-1] for a in accs) / len(accs),
        "test_acc_per_epoch": accs,
    }
    metrics = {"expert_test_acc_mean": [{"step": e, "value": v} for e, v in enumerate(mean_curve)]}
    return summary, metrics


def evaluate_full_set(prepared_data: PreparedData, evaluation: EvaluationParams, model: ArchParams, device: str,
                      progress: bool) -> dict[str, Any]:
    """The "Full dataset" baseline: ``evaluation.full_n_nets`` fresh nets trained
    ``evaluation.full_epochs`` epochs on the whole training set with lr ``evaluation.full_lr``
    (otherwise the evaluation protocol: SGD momentum, weight decay, lr x0.1 at half, DSA).

    Returns:
        ``{"mean", "std", "accs", "n_nets", "epochs", "lr", "n_images", "classes"}`` (test accuracy
        in %; ``classes``: :func:`~galaxy_distillation.engine.classwise.class_report`).
    """
    data = prepared_data
    cfg = evaluation.engine_config(model, evaluation.full_n_nets, evaluation.full_epochs)
    log.info("evaluating on the full set (%d images, %d nets x %d epochs, lr %.3g)",
             len(data.train_y), cfg.n_nets, cfg.epochs, evaluation.full_lr)
    res = evaluate_images(data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes, evaluation.full_lr,
                          cfg, seed=derive_seed(evaluation.seed, FULL_SEED_KEY), device=pick_device(device),
                          progress=progress, should_stop=stop_requested)
    log.info("full: %.2f +- %.2f %%", res.mean, res.std)
    out = {"mean": res.mean, "std": res.std, "accs": list(res.accs), "n_nets": cfg.n_nets, "epochs": cfg.epochs,
           "lr": float(evaluation.full_lr), "n_images": int(len(data.train_y)), "data_sha256": data_fingerprint(data)}
    if res.predictions is not None:  # per-class accuracy and the confusion matrix (mean over the nets)
        out["classes"] = class_report(res.predictions, data.test_y, data.num_classes)
    return out
