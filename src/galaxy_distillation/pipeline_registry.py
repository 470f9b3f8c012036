"""Project pipelines.

``__default__`` is sky -> curation -> teacher -> distill -> evaluation -> reporting -> insight. The sky
node renders the mock sky only when the raw GZ2 paths point at it (real data configured:
it does nothing), and curation waits for it through the ``mock_sky_manifest`` dataset.
``benchmark`` (teacher -> distill -> evaluation -> reporting) is for ``dataset=cifar10``,
``cifar100`` or ``imagefolder``, where there is nothing to curate.
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from galaxy_distillation.pipelines import benchmark, curation, insight, sky


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    pipelines.pop("sweep", None)  # the package table, table1 and table2 are built from, not a pipeline of its own
    # Kedro >= 1.5 imports only the selected pipelines: build __default__ from its parts
    # explicitly rather than by indexing names that may not have been loaded.
    pipelines["__default__"] = (
        sky.create_pipeline() + curation.create_pipeline(after_sky=True) + benchmark.create_pipeline()
        + insight.create_pipeline(after=["curation_report", "results_table_csv"])
    )
    return pipelines
