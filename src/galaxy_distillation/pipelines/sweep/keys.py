"""When a sweep skips work: the skip marker of a cell that is not in the table, and the result
keys that say an earlier result is this one.

Each key is :func:`~galaxy_distillation.engine.checkpoint.result_key` (the one key function, that
of the distillation checkpoints too) of the data's content
(:func:`~galaxy_distillation.pipelines.teacher.nodes.data_fingerprint`), the experts used (their
fingerprint) and the settings that change the numbers: data whose content changed, or retrained
experts, redo every cell; an execution-only setting (``memory_mode``, ``expert_cache``,
``use_vmap``...) redoes nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from galaxy_distillation.engine.checkpoint import result_key
from galaxy_distillation.params import ArchParams, EvaluationParams, TeacherParams
from galaxy_distillation.pipelines.prepare.nodes import PreparedData
from galaxy_distillation.pipelines.sweep.cells import Cell
from galaxy_distillation.pipelines.teacher.nodes import data_fingerprint

__all__ = ["NOT_IN_TABLE", "is_skipped", "full_key", "distill_key", "evaluation_key"]

#: What a sweep node returns (and :class:`~.datasets.OptionalDataset` does not write) for a cell
#: that is not part of the table, or not selected by the ``sweep`` parameters.
NOT_IN_TABLE: dict[str, str] = {"skipped": "not in table"}


def is_skipped(data: Any) -> bool:
    """Whether ``data`` is the skip marker (or nothing): a cell that is not part of the table."""
    return data is None or (isinstance(data, dict) and bool(data.get("skipped")))


def full_key(prepared_data: PreparedData, evaluation: EvaluationParams, teacher: TeacherParams,
             model: ArchParams) -> str:
    """The key of a training set's Full baseline: its data, protocol (``full_*``), ZCA and model."""
    return result_key(data=data_fingerprint(prepared_data), n=evaluation.full_n_nets, epochs=evaluation.full_epochs,
                      lr=evaluation.full_lr, zca=teacher.zca, model=model.spec(),
                      evaluation=evaluation.model_dump(exclude={"n_nets", "epochs", "random_lr", "cross_arch"}))


def distill_key(prepared_data: PreparedData, experts_fingerprint: str, config: Any, model: ArchParams, dataset: str,
                cell: Cell, evaluation: EvaluationParams) -> str:
    """The key of a cell's distilled set: data, experts, the engine config, model, dataset, the
    cell and the quick evaluations' settings (they choose the kept iteration)."""
    return result_key(data=data_fingerprint(prepared_data), experts=experts_fingerprint, config=asdict(config),
                      model=model.spec(), dataset=dataset, cell=cell.name,
                      quick=evaluation.model_dump(include={"quick_nets", "quick_epochs_fraction", "epochs", "seed"}))


def evaluation_key(distilled_set: dict[str, Any], full: dict[str, Any], evaluation: EvaluationParams) -> str:
    """The key of a cell's evaluation: its distilled set's key, the Full baseline's and the protocol."""
    return result_key(distilled=distilled_set["meta"].get("cell_key"), full=full.get("key"),
                      evaluation=evaluation.model_dump(exclude={"full_n_nets", "full_epochs", "full_lr",
                                                                "cross_arch"}))
