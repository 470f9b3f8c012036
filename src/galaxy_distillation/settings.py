"""Kedro project settings for galaxy-distillation."""

import os

from omegaconf import OmegaConf

from galaxy_distillation.catalog import ProjectDataCatalog
from galaxy_distillation.hooks import ParameterValidationHook, TypedParamsMlflowHook
from galaxy_distillation.logs import quiet_progress_bars, quiet_third_party_warnings
from galaxy_distillation.names import data_label, experts_key, source_name, variant_name
from galaxy_distillation.outputs import OUTPUTS
from galaxy_distillation.params import parse_flag
from galaxy_distillation.pipelines.sweep.cells import sweep_cells, sweep_groups
from galaxy_distillation.preflight.hook import ClusterHook
from galaxy_distillation.storage import rooted
from galaxy_distillation.summary import RunSummaryHook
from galaxy_distillation.tracking import RunStoryHook

# Quiet logs: no third-party deprecation blocks, no tqdm redraws in log files, MLflow at WARNING.
quiet_third_party_warnings()
quiet_progress_bars()
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

# Validate parameters before any node runs (fails fast with one line), then the storage root
# and the Ray cluster (galaxy_distillation.preflight); log the typed
# parameters; keep a run's outputs all-or-nothing (galaxy_distillation.outputs); name, tag and
# link the MLflow run and print a one-line header per stage; close with the headline numbers and
# where the figures and tables went (galaxy_distillation.summary).
HOOKS = (ParameterValidationHook(), TypedParamsMlflowHook(), ClusterHook(), OUTPUTS, RunStoryHook(), RunSummaryHook())

# The default dataset (in-memory, no copy) the Kedro 1.7 way instead of a "{default}" pattern.
DATA_CATALOG_CLASS = ProjectDataCatalog


def _flag(value: object) -> str:
    """OmegaConf resolver: a boolean-ish runtime value as a path-friendly word (aug / plain)."""
    return "aug" if parse_flag(value) else "plain"


# Registered with OmegaConf's supported API (Kedro's `custom_resolvers` uses the deprecated one).
def _env(name: str, default: object = None) -> object:
    """OmegaConf resolver: an environment variable, or ``default`` when unset or empty (mlflow.yml)."""
    return os.environ.get(name) or default


for _name, _resolver in {"gd.flag": _flag, "gd.label": data_label, "gd.variant": variant_name, "gd.experts": experts_key,
                         "gd.source": source_name, "gd.sweep_cells": sweep_cells, "gd.sweep_groups": sweep_groups,
                         "gd.env": _env, "gd.rooted": rooted}.items():
    OmegaConf.register_resolver(_name, _resolver, replace=True)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
