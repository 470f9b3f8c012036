"""``kedro run --env paper --pipelines=table2``: the paper's Table 2 from the raw GZ2 files:
curation, then STM at IPC 1 and 10 with real and noise init on the plain and the
rotation-augmented training set, Random and Full."""

from kedro.pipeline import Pipeline

from galaxy_distillation.pipelines import curation, sky
from galaxy_distillation.pipelines.sweep.pipeline import create_sweep_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return sky.create_pipeline() + curation.create_pipeline(after_sky=True) + create_sweep_pipeline(
        "table2", after="curation_report")
