"""Kedro hooks: validate parameters before anything else happens (and refuse ``--params``
values no stage reads, :func:`refuse_ignored`); log the typed parameters to MLflow flat
(``distill.iterations``...)."""

from __future__ import annotations

import copy
from typing import Any

from kedro.framework.hooks import hook_impl

from galaxy_distillation.errors import ParameterError
from galaxy_distillation.params import check_known_names, validate_parameters
from galaxy_distillation.runtime import apply_threads


def configured_names(context) -> set[str]:  # noqa: ANN001 - a KedroContext
    """Top-level parameter names of the configuration itself (parameters and globals), without
    the keys ``--params`` added."""
    loader = copy.copy(context.config_loader)
    loader.runtime_params = {}
    names = set(loader["parameters"])
    try:
        names |= set(loader["globals"])
    except Exception:  # noqa: BLE001 - an environment without globals
        pass
    return names


#: ``--params`` names that no stage reads (or reads only for some datasets): name -> why / what to set.
IGNORED = {
    "seed": "no stage reads the top-level seed; set teacher.seed, distill.seed, evaluation.seed, curation.seed or sky.seed",
    "variant": "the variant name is made from dataset (and data_root), method, ipc, init and augmented; set those",
    "mock_sky_dir": "the mock sky folder is sky.out_dir (with votes_path, mapping_path and image_dir inside it)",
    "sweep_cells": "the tables' cells are fixed by the code (pipelines/sweep/cells.py); choose some with sweep.ipcs, "
                   "sweep.methods or sweep.inits",
    "sweep_groups": "the cells that share a shape are fixed by the code (pipelines/sweep/cells.py); set sweep.batched",
}


def _on(value: Any) -> bool:
    from galaxy_distillation.params import parse_flag

    try:
        return parse_flag(value)
    except ValueError:
        return True  # not a boolean word: validate_parameters names it


def refuse_ignored(runtime: dict[str, Any], params: dict[str, Any]) -> None:
    """Refuse a ``--params`` value that would do nothing (every parameter acts or is refused).

    Raises:
        ParameterError: one line naming the parameter and why.
    """
    runtime = runtime or {}
    dataset = str(params.get("dataset", "gz2"))
    for key, value in runtime.items():
        name = str(key).split(".", 1)[0]  # a dotted sweep_cells.table.x counts by its first part
        if name in IGNORED:
            raise ParameterError(f"invalid parameter '{key}' = {value!r}: does nothing; {IGNORED[name]}")
    only_gz2 = {"fraction": "the vote fraction of GZ2 curation", "augmented": "GZ2's rotation-augmented training set"}
    for name, what in only_gz2.items():
        if dataset == "gz2" or name not in runtime or (name == "augmented" and not _on(runtime[name])):
            continue
        raise ParameterError(f"invalid parameter '{name}' = {runtime[name]!r}: does nothing with dataset={dataset} "
                             f"(it selects {what})")
    if dataset == "gz2" and "data_root" in runtime:
        raise ParameterError(f"invalid parameter 'data_root' = {runtime['data_root']!r}: does nothing with dataset=gz2 "
                             "(it is the folder of cifar10, cifar100 and imagefolder data; GZ2 reads votes_path, "
                             "mapping_path and image_dir)")


class ParameterValidationHook:
    """Fail fast, with one line, on invalid parameters (``--params ipc=0``, ``method=foo``...).

    Runs when the Kedro context is created, on the raw merged parameters, so a bad value is
    reported before Kedro builds its typed parameters or the catalog, and before any MLflow run
    is started.
    """

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:  # noqa: ANN001 - kedro's signature
        try:
            params = context.config_loader["parameters"]
        except Exception:  # noqa: BLE001 - no parameters at all: Kedro reports that itself
            return
        # ParameterError: printed in one line (exit 2) by galaxy_distillation.cli, the one boundary
        runtime = getattr(context.config_loader, "runtime_params", None) or {}
        check_known_names(runtime, configured_names(context))
        validate_parameters(params)
        refuse_ignored(runtime, params)  # a --params value no stage would read
        apply_threads(params.get("threads", "auto"))  # torch intra-op threads (docs/performance.md)


class TypedParamsMlflowHook:
    """Log every typed parameter group of the run's pipeline flat (``distill.lr_img`` = 100, ...)
    to the MLflow run kedro-mlflow opened, so runs can be compared field by field in the UI.

    kedro-mlflow flattens dict parameters only; the typed models reach it as objects (it logs
    each as one text parameter, kept as a readable summary).
    """

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ANN001
        import mlflow
        from pydantic import BaseModel

        if mlflow.active_run() is None:
            return
        flat: dict[str, object] = {}
        for name in sorted(pipeline.inputs()):
            if not name.startswith("params:"):
                continue
            value = catalog.load(name)
            if isinstance(value, BaseModel):
                flat.update({f"{name[7:]}.{k}": v for k, v in value.model_dump().items()})
        if flat:
            mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})
