"""``kedro run --pipelines=table --params dataset=imagefolder,data_root=PATH``: Random, MTT,
STM and Full at IPC 1 and 10 on any model input (Table 1's layout), on the CPU default."""

from kedro.pipeline import Pipeline

from galaxy_distillation.pipelines.sweep.pipeline import create_sweep_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return create_sweep_pipeline("table")
