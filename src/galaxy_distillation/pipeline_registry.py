"""Project pipelines.

``__default__`` is sky -> curation -> teacher -> distill -> evaluation -> reporting. The sky
node renders the mock sky only when the raw GZ2 paths point at it (real data configured:
it does nothing), and curation waits for it through the ``mock_sky_manifest`` dataset.
``benchmark`` (teacher -> distill -> evaluation -> reporting) is for ``dataset=cifar10``,
``cifar100`` or ``imagefolder``, where there is nothing to curate.
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from galaxy_distillation.pipelines import curation


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    names = ("teacher", "distill", "evaluation", "reporting")
    model_stages = sum((pipelines[n] for n in names if n in pipelines), Pipeline([]))
    if "sky" in pipelines and "curation" in pipelines:
        pipelines["__default__"] = pipelines["sky"] + curation.create_pipeline(after_sky=True) + model_stages
    else:
        pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    pipelines["benchmark"] = model_stages
    return pipelines
