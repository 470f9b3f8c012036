"""Kedro hooks: validate parameters before anything else happens; log the typed parameters
to MLflow flat (``distill.iterations``...)."""

from __future__ import annotations

import copy

from kedro.framework.hooks import hook_impl

from galaxy_distillation.params import check_known_names, validate_parameters
from galaxy_distillation.preflight import refuse_ignored
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
