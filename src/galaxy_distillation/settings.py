"""Kedro project settings for galaxy-distillation."""

from galaxy_distillation.hooks import ParameterValidationHook
from galaxy_distillation.outputs import OUTPUTS

# Validate parameters before any node runs (fails fast with one line); keep a run's outputs
# all-or-nothing (galaxy_distillation.outputs).
HOOKS = (ParameterValidationHook(), OUTPUTS)


def _flag(value: object, true_name: str = "aug", false_name: str = "plain") -> str:
    """OmegaConf resolver turning a boolean-ish runtime value into a path-friendly word."""
    text = str(value).strip().lower()
    return true_name if text in {"true", "1", "yes", "y", "on"} else false_name


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"gd.flag": _flag},
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
