"""``kedro run --env cifar10 --pipelines=table1 --params dataset=cifar10`` (or cifar100): the
paper's Table 1, Random, MTT, STM and Full at IPC 1/10/50 (CIFAR-100: 1/10)."""

from kedro.pipeline import Pipeline

from galaxy_distillation.pipelines.sweep.pipeline import create_sweep_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return create_sweep_pipeline("table1")
