"""The table sweeps (``table``, ``table1``, ``table2``) as one concept, one package.

* :mod:`.cells`: which cells each table has (:data:`~.cells.TABLES`, the one source of cells);
* :mod:`.keys`: when finished work is skipped (the skip marker, the result keys);
* :mod:`.nodes`: the nodes, plain functions given their cell as a parameter;
* :mod:`.batched`: ``sweep.batched``, the cells that share a shape distilled as one batched program;
* :mod:`.datasets`: the datasets that read what an earlier run left (``OptionalDataset``...);
* :mod:`.table`: the results table beside the paper's numbers and each number's budget;
* :mod:`.pipeline`: the wiring (:func:`~.pipeline.create_sweep_pipeline`), used by the
  ``table``, ``table1`` and ``table2`` pipelines.

Not a registered pipeline itself: Kedro's ``find_pipelines`` wants a ``create_pipeline`` in
every folder of ``pipelines/``, so :func:`create_pipeline` builds a table's sweep, and
:func:`galaxy_distillation.pipeline_registry.register_pipelines` drops the ``sweep`` entry (it would
be the ``table`` pipeline twice). Nothing is imported at module level, so ``catalog.yml``
and the other stages import one module of the package cheaply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kedro.pipeline import Pipeline


def create_pipeline(table: str = "table", **kwargs: Any) -> Pipeline:
    """The sweep of ``table`` (:func:`~.pipeline.create_sweep_pipeline`)."""
    from galaxy_distillation.pipelines.sweep.pipeline import create_sweep_pipeline

    return create_sweep_pipeline(table)
