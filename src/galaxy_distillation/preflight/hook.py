"""The Kedro hook of the checks before any node: credentials when the context is created, then
:func:`~.checks.check_run`, the storage root and the Ray connection before the first node."""

from __future__ import annotations

import logging
import sys
from typing import Any

from kedro.framework.hooks import hook_impl

from galaxy_distillation.preflight.checks import check_run, uses_compute
from galaxy_distillation.preflight.credentials import check_storage, export_credentials, read_credentials

log = logging.getLogger(__name__)


class ClusterHook:
    """Credentials, storage and Ray checks before the first node (one line and exit 2 on failure)."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._ray_started_here = False

    @hook_impl(tryfirst=True)  # before kedro-mlflow's, which reads the credentials too (and would raise a traceback)
    def after_context_created(self, context) -> None:  # noqa: ANN001 - kedro's signature
        credentials = read_credentials(context.config_loader)
        exported = export_credentials((credentials or {}).get("storage"))
        if exported:
            log.info("storage credentials from credentials.yml: %s", ", ".join(exported))
        self._context = context

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ANN001
        from galaxy_distillation.cluster import connect

        params = self._context.params if hasattr(self, "_context") else {}
        compute = params.get("compute") or {}
        if hasattr(compute, "model_dump"):
            compute = compute.model_dump()
        # ParameterError / StorageError / ComputeError: printed in one line by galaxy_distillation.cli
        runtime = getattr(getattr(self._context, "config_loader", None), "runtime_params", None) or {}
        check_run(params, pipeline, catalog, runtime)
        check_storage(str(params.get("storage_root", "data")))
        if compute.get("backend") == "ray" and uses_compute(pipeline):
            ray = sys.modules.get("ray")
            already = ray is not None and ray.is_initialized()
            connect(compute)
            self._ray_started_here = not already

    def _stop_ray(self) -> None:
        if self._ray_started_here:
            import ray

            ray.shutdown()
            self._ray_started_here = False

    @hook_impl
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ANN001
        self._stop_ray()

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:  # noqa: ANN001
        self._stop_ray()
