"""The ``benchmark`` pipeline: teacher -> distill -> evaluation -> reporting on any model input
(``dataset=cifar10``, ``cifar100`` or ``imagefolder``; for ``gz2`` after curation)."""

from kedro.pipeline import Pipeline

from galaxy_distillation.pipelines import distill, evaluation, reporting, teacher


def create_pipeline(**kwargs) -> Pipeline:
    return (
        teacher.create_pipeline()
        + distill.create_pipeline()
        + evaluation.create_pipeline()
        + reporting.create_pipeline()
    )
