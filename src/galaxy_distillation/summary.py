"""The closing lines of every ``kedro run``: the headline accuracies and where the figures,
tables and reports it wrote went (so a log ends with the answer, not with a stage header).

:class:`RunSummaryHook` notes every reporting file saved during the run (``08_reporting``:
figures ``.png``, tables ``.md``/``.csv``, reports ``.json``) and every evaluation result;
:func:`summary_lines` turns them into lines, the last one starting with ``done``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kedro.framework.hooks import hook_impl

log = logging.getLogger(__name__)

_KINDS = ((".png", "figures"), (".md", "tables"), (".csv", "tables"), (".json", "reports"))


def dataset_file(description: Mapping[str, Any] | None) -> str | None:
    """The file behind a dataset's ``_describe()`` (looking inside wrappers), as text; None if none."""
    if not description:
        return None
    if isinstance(description.get("inner"), Mapping):
        return dataset_file(description["inner"])
    path = description.get("filepath")
    if path is None:
        return None
    protocol = description.get("protocol")
    text = str(path)
    return text if "://" in text or protocol in (None, "file") else f"{protocol}://{text}"


def _acc(record: Mapping[str, Any], prefix: str) -> str:
    mean = record.get(f"{prefix}_acc_mean")
    return "n/a" if mean is None else f"{mean:.1f} ± {record.get(f'{prefix}_acc_std') or 0.0:.1f} %"


def headline(record: Mapping[str, Any]) -> str:
    """``mock_stm_ipc1_real_plain: distilled 46.4 ± 1.7 %, random 34.2 ± 2.4 %, full 80.2 ± 0.9 %
    (5 nets x 300 epochs; full 2 x 50; 400 iterations)``."""
    return (f"{record.get('variant', '?')}: distilled {_acc(record, 'distilled')}, random {_acc(record, 'random')}, "
            f"full {_acc(record, 'full')} ({record.get('n_nets', '?')} nets x {record.get('epochs', '?')} epochs; "
            f"full {record.get('full_n_nets', '?')} x {record.get('full_epochs', '?')}; "
            f"{record.get('distill_iterations', '?')} iterations)")


def summary_lines(results: Sequence[Mapping[str, Any]], files: Sequence[str]) -> list[str]:
    """One line per evaluated variant when there are several; the last line (``done``) has the
    headline accuracies of a single variant and the paths of the figures, tables and reports."""
    groups: dict[str, list[str]] = {}
    for path in dict.fromkeys(files):
        kind = next((k for suffix, k in _KINDS if path.endswith(suffix)), None)
        if kind:
            groups.setdefault(kind, []).append(path)
    where = "; ".join(f"{kind}: {', '.join(paths)}" for kind, paths in groups.items())
    lines = [f"result {headline(r)}" for r in results] if len(results) > 1 else []
    head = f"done: {headline(results[0])}" if len(results) == 1 else "done"
    lines.append(f"{head}" + (f" | {where}" if where else " (no figures or tables written)"))
    return lines


class RunSummaryHook:
    """Logs :func:`summary_lines` after a successful run."""

    def __init__(self) -> None:
        self._catalog = None
        self._results: list[dict[str, Any]] = []
        self._files: list[str] = []

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ANN001, ARG002
        self._catalog, self._results, self._files = catalog, [], []

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:  # noqa: ANN001
        if dataset_name.split(".")[-1] == "evaluation_results" and isinstance(data, dict) \
                and "distilled_acc_mean" in data:
            self._results.append(data)
        try:
            path = dataset_file(self._catalog.get(dataset_name)._describe()) if self._catalog is not None else None
        except Exception:  # noqa: BLE001 - a summary must never break a run
            path = None
        if path and "08_reporting" in path:
            self._files.append(path)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:  # noqa: ANN001, ARG002
        for line in summary_lines(self._results, self._files):
            log.info(line)
