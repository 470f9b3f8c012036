"""The project's data catalog class: Kedro 1.7's way to set the default dataset.

Every dataset not listed in ``catalog.yml`` is a ``MemoryDataset`` that hands the same
object to the next node (``copy_mode: assign``; nodes never modify their inputs), instead of
Kedro's default deep copy. Declared here (``DATA_CATALOG_CLASS`` in ``settings.py``) rather
than as a catch-all ``"{default}"`` pattern in ``catalog.yml``, which Kedro 1.7 warns about
once per dataset on every run.
"""

from __future__ import annotations

from typing import ClassVar

from kedro.io import DataCatalog


class ProjectDataCatalog(DataCatalog):
    """:class:`kedro.io.DataCatalog` whose runtime default is an assigning ``MemoryDataset``."""

    default_runtime_patterns: ClassVar = {"{default}": {"type": "kedro.io.MemoryDataset", "copy_mode": "assign"}}
