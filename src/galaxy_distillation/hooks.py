"""Kedro hooks: validate parameters before anything else happens."""

from __future__ import annotations

import sys

from kedro.framework.hooks import hook_impl

from galaxy_distillation.params import ParameterError, validate_parameters


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
        try:
            validate_parameters(params)
        except ParameterError as err:
            print(f"galaxy-distillation: {err}", file=sys.stderr)
            raise SystemExit(2) from None
