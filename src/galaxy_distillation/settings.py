"""Kedro project settings for galaxy-distillation."""

import os

from omegaconf import OmegaConf

from galaxy_distillation.catalog import ProjectDataCatalog
from galaxy_distillation.hooks import ParameterValidationHook
from galaxy_distillation.logs import quiet_progress_bars, quiet_third_party_warnings
from galaxy_distillation.tracking import RunStoryHook

# Quiet logs: no third-party deprecation blocks, no tqdm redraws in log files, MLflow at WARNING.
quiet_third_party_warnings()
quiet_progress_bars()
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

# Validate parameters before any node runs (fails fast with one line); name, tag and link
# the MLflow run and print a one-line header per stage.
HOOKS = (ParameterValidationHook(), RunStoryHook())

# The default dataset (in-memory, no copy) the Kedro 1.7 way instead of a "{default}" pattern.
DATA_CATALOG_CLASS = ProjectDataCatalog


def _flag(value: object, true_name: str = "aug", false_name: str = "plain") -> str:
    """OmegaConf resolver turning a boolean-ish runtime value into a path-friendly word."""
    text = str(value).strip().lower()
    return true_name if text in {"true", "1", "yes", "y", "on"} else false_name


# Registered with OmegaConf's supported API (Kedro's `custom_resolvers` uses the deprecated one).
OmegaConf.register_resolver("gd.flag", _flag, replace=True)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
