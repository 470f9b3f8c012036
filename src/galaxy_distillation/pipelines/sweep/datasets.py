"""Kedro datasets that let a sweep skip finished work: read what an earlier run left, if anything
(``catalog.yml``: ``galaxy_distillation.pipelines.sweep.datasets.OptionalDataset``...)."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset

from galaxy_distillation.datasets import ExpertTrajectoriesDataset
from galaxy_distillation.pipelines.sweep.keys import is_skipped

__all__ = ["OptionalDataset", "SweepExpertsDataset"]


class OptionalDataset(AbstractDataset[Any, Any]):
    """Wraps a dataset: ``load`` gives ``None`` when it does not exist; ``save`` of a skip
    marker (``{"skipped": reason}``, :func:`~.keys.is_skipped`) writes nothing.

    Two catalog entries on the same file (``<cell>.evaluation_results`` and
    ``<cell>.evaluation_previous``) let a node see its own earlier output without a cycle.
    ``resumable``: the run-outputs guard (:mod:`galaxy_distillation.outputs`) leaves it alone,
    so the cells a sweep finished stay when it is interrupted.
    """

    resumable = True

    def __init__(self, dataset: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        self._inner = AbstractDataset.from_config("inner", dict(dataset))
        self.metadata = metadata

    def load(self) -> Any:
        return self._inner.load() if self._inner.exists() else None

    def save(self, data: Any) -> None:
        if not is_skipped(data):
            self._inner.save(data)

    def _exists(self) -> bool:
        return self._inner.exists()

    def _describe(self) -> dict[str, Any]:
        return {"inner": self._inner._describe()}


class SweepExpertsDataset(ExpertTrajectoriesDataset):
    """The expert folder of a sweep's training set: kept when the sweep is interrupted (each
    expert is a complete file), so a resumed sweep reuses the experts already trained."""

    resumable = True
