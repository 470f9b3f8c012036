"""Kedro project settings for galaxy-distillation."""

import os

from omegaconf import OmegaConf

from galaxy_distillation.catalog import ProjectDataCatalog
from galaxy_distillation.hooks import ParameterValidationHook, TypedParamsMlflowHook
from galaxy_distillation.logs import quiet_progress_bars, quiet_third_party_warnings
from galaxy_distillation.outputs import OUTPUTS
from galaxy_distillation.params import experts_key, parse_flag, variant_name
from galaxy_distillation.tracking import RunStoryHook

# Quiet logs: no third-party deprecation blocks, no tqdm redraws in log files, MLflow at WARNING.
quiet_third_party_warnings()
quiet_progress_bars()
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

# Validate parameters before any node runs (fails fast with one line); log the typed
# parameters; keep a run's outputs all-or-nothing (galaxy_distillation.outputs); name, tag and
# link the MLflow run and print a one-line header per stage.
HOOKS = (ParameterValidationHook(), TypedParamsMlflowHook(), OUTPUTS, RunStoryHook())

# The default dataset (in-memory, no copy) the Kedro 1.7 way instead of a "{default}" pattern.
DATA_CATALOG_CLASS = ProjectDataCatalog


def _flag(value: object) -> str:
    """OmegaConf resolver: a boolean-ish runtime value as a path-friendly word (aug / plain)."""
    return "aug" if parse_flag(value) else "plain"


# Registered with OmegaConf's supported API (Kedro's `custom_resolvers` uses the deprecated one).
for _name, _resolver in {"gd.flag": _flag, "gd.variant": variant_name, "gd.experts": experts_key}.items():
    OmegaConf.register_resolver(_name, _resolver, replace=True)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
