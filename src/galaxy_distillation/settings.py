"""Kedro project settings for galaxy-distillation."""

import os

from galaxy_distillation.hooks import ParameterValidationHook, TypedParamsMlflowHook
from galaxy_distillation.outputs import OUTPUTS
from galaxy_distillation.params import experts_key, parse_flag, variant_name
from galaxy_distillation.preflight import ClusterHook

# Validate parameters, then the storage root and the Ray cluster, before any node runs (fails
# fast with one line); keep a run's outputs all-or-nothing (galaxy_distillation.outputs).
HOOKS = (ParameterValidationHook(), TypedParamsMlflowHook(), ClusterHook(), OUTPUTS)


def _flag(value: object) -> str:
    """OmegaConf resolver: a boolean-ish runtime value as a path-friendly word (aug / plain)."""
    return "aug" if parse_flag(value) else "plain"


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"gd.flag": _flag, "gd.variant": variant_name, "gd.experts": experts_key,
                         "gd.env": lambda name, default=None: os.environ.get(name) or default},
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
