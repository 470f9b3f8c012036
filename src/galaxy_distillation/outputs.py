"""No partial results: the files a ``kedro run`` writes are kept all together or not at all.

:class:`RunOutputsGuard` is a Kedro hook. The first time a run saves a file-backed dataset,
the previous file (or folder: the expert bank, the curated model input) is moved aside to
``.<name>.gd-prev-<run>`` beside it, which costs a rename, not a copy; ``<run>`` is the run's
own id (process id and a random part), so two runs on one storage root (two variants at once)
never move, delete or restore each other's backups. When the run succeeds the
moved-aside copies are deleted; when it fails (any error in a node or a save) or is
interrupted (Ctrl-C, ``SIGTERM``: see :mod:`galaxy_distillation.cli`), every output the run
wrote is removed and the previous ones are moved back. So a curation that fails at its
image step leaves the previous catalogue, selections, model input and report together, and a
full disk while writing ``history.csv`` leaves the previous ``distilled.safetensors`` beside
the previous history, not a new one beside a 0-byte file.

Not covered: datasets marked ``resumable`` (the table sweeps' cells and shared experts, kept
when a sweep is interrupted so that it resumes), MLflow artifacts already uploaded (the MLflow run is marked ``FAILED`` /
``KILLED`` instead), distillation checkpoints (kept on purpose, to resume), and a
``kill -9`` (nothing can run; the ``.gd-prev-<run>`` copies stay beside the outputs, for the
user to restore by hand; no later run deletes them).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

__all__ = ["RunOutputsGuard", "OUTPUTS", "output_paths"]

log = logging.getLogger(__name__)

#: attribute of a dataset holding its local file or folder (our datasets and kedro-datasets')
_PATH_ATTRS = ("_filepath", "_path", "_gz2_dir")


def output_paths(dataset: Any) -> list[Path]:
    """The local files or folders a dataset writes (empty for memory / metrics datasets)."""
    if getattr(dataset, "_protocol", "file") not in ("file", None):
        return []
    if getattr(dataset, "resumable", False):  # a sweep's cells and experts: kept so an interrupted sweep resumes
        return []
    if type(dataset).__name__.startswith("PartitionedDataset"):  # a whole folder of other outputs
        return []
    if getattr(dataset, "_dataset", "gz2") != "gz2":  # ModelInputDataset reading a benchmark
        return []
    for attr in _PATH_ATTRS:
        value = getattr(dataset, attr, None)
        if value:
            return [Path(str(value))]
    return []


def new_run_id() -> str:
    """A run's own id for its backup names: the process id and a random part."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _backup_of(path: Path, run_id: str) -> Path:
    return path.with_name(f".{path.name}.gd-prev-{run_id}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class RunOutputsGuard:
    """Kedro hook keeping a run's outputs all-or-nothing (see the module docstring)."""

    def __init__(self) -> None:
        self._catalog: Any = None
        self._touched: dict[Path, Path | None] = {}  # output -> its moved-aside previous version
        self.run_id = new_run_id()
        self.last_restored = 0  # outputs the last failed run put back (the command line says it)

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ANN001, ARG002
        self._catalog = catalog
        self._touched = {}
        self.run_id = new_run_id()
        self.last_restored = 0

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:  # noqa: ARG002
        if self._catalog is None:
            return
        try:
            dataset = self._catalog.get(dataset_name)
        except Exception:  # noqa: BLE001 - an unknown name: nothing on disk to protect
            return
        for path in output_paths(dataset):
            path = path.absolute()
            if path in self._touched:
                continue
            backup: Path | None = None
            if path.exists():
                backup = _backup_of(path, self.run_id)  # this run's own name: no other run touches it
                os.replace(path, backup)
            self._touched[path] = backup

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:  # noqa: ANN001, ARG002
        for backup in self._touched.values():
            if backup is not None:
                _remove(backup)
        self._touched = {}

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:  # noqa: ANN001, ARG002
        n = self.last_restored = self.rollback()
        if n:  # the command line's error message says it (one line); here for logs of in-process runs
            log.debug("run failed: %d output(s) put back as they were before the run (no partial results)", n)

    def rollback(self) -> int:
        """Remove what this run wrote and move the previous outputs back; the number of outputs."""
        n = 0
        for path, backup in reversed(list(self._touched.items())):
            try:
                _remove(path)
                if backup is not None and backup.exists():
                    os.replace(backup, path)
                n += 1
            except OSError as exc:  # keep going: put back as much as possible
                log.error("could not restore %s: %s", path, exc)
        self._touched = {}
        return n


#: the instance registered in ``settings.HOOKS`` (the CLI calls ``rollback`` on an interrupt)
OUTPUTS = RunOutputsGuard()
