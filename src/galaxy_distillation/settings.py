"""Kedro project settings for galaxy-distillation."""

from galaxy_distillation.hooks import ParameterValidationHook, TypedParamsMlflowHook
from galaxy_distillation.outputs import OUTPUTS
from galaxy_distillation.params import experts_key, parse_flag, variant_name

# Validate parameters before any node runs (fails fast with one line); keep a run's outputs
# all-or-nothing (galaxy_distillation.outputs).
HOOKS = (ParameterValidationHook(), TypedParamsMlflowHook(), OUTPUTS)


def _flag(value: object) -> str:
    """OmegaConf resolver: a boolean-ish runtime value as a path-friendly word (aug / plain)."""
    return "aug" if parse_flag(value) else "plain"


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"gd.flag": _flag, "gd.variant": variant_name, "gd.experts": experts_key},
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
