"""Kedro project settings for galaxy-distillation."""

import os

from galaxy_distillation.hooks import ParameterValidationHook
from galaxy_distillation.preflight import ClusterHook

# Validate parameters, then the storage root and the Ray cluster, before any node runs
# (fails fast with one line).
HOOKS = (ParameterValidationHook(), ClusterHook())


def _flag(value: object, true_name: str = "aug", false_name: str = "plain") -> str:
    """OmegaConf resolver turning a boolean-ish runtime value into a path-friendly word."""
    text = str(value).strip().lower()
    return true_name if text in {"true", "1", "yes", "y", "on"} else false_name


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"gd.flag": _flag, "gd.env": lambda name, default=None: os.environ.get(name) or default},
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
