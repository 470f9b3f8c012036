"""Kedro hooks: validate parameters before any node runs."""

from __future__ import annotations

import sys

from kedro.framework.hooks import hook_impl

from galaxy_distillation.params import ParameterError, validate_parameters
from galaxy_distillation.runtime import ThreadPolicyError, apply_threads


class ParameterValidationHook:
    """Fail fast, with one line, on invalid parameters (``--params ipc=0``, ``method=foo``...)."""

    @hook_impl
    def after_context_created(self, context) -> None:  # noqa: ANN001 - kedro's signature
        self._context = context

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ANN001
        params = self._context.params if hasattr(self, "_context") else {}
        try:
            validate_parameters(params)
        except ParameterError as err:
            print(f"galaxy-distillation: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        try:  # torch intra-op threads from the run parameter `threads` (docs/performance.md)
            apply_threads(params.get("threads", "auto"))
        except ThreadPolicyError as err:
            print(f"galaxy-distillation: {err}", file=sys.stderr)
            raise SystemExit(2) from None
