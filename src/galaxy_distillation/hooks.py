"""Kedro hooks: validate parameters before any node runs."""

from __future__ import annotations

import copy

from kedro.framework.hooks import hook_impl

from galaxy_distillation.params import check_known_names, validate_parameters


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
    """Fail fast, with one line, on invalid parameters (``--params ipc=0``, ``method=foo``...)."""

    @hook_impl
    def after_context_created(self, context) -> None:  # noqa: ANN001 - kedro's signature
        self._context = context

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ANN001
        params = self._context.params if hasattr(self, "_context") else {}
        if hasattr(self, "_context"):
            check_known_names(run_params.get("runtime_params") or {}, configured_names(self._context))
        validate_parameters(params)  # ParameterError: printed in one line by galaxy_distillation.cli
