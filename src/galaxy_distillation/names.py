"""The names the run-level choices give files, checkpoints, tables and MLflow runs.

Every variant name, run name, title and table row starts with the data label
(:func:`data_label`: ``mock``, ``gz2``, or :func:`source_name`); :func:`variant_name` and
:func:`experts_key` name a variant's files and its expert set. The OmegaConf resolvers
``gd.label``, ``gd.source``, ``gd.variant`` and ``gd.experts`` (``settings.py``) call these,
so the catalog's paths and the nodes agree.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from galaxy_distillation.params import parse_flag
from galaxy_distillation.storage import inside, rooted


def source_name(dataset: str, data_root: Any = None) -> str:
    """The data's name in file names: the dataset, and for an image folder also which folder
    (``imagefolder-<folder name>-<sha256 of data_root, 6 hex>``), so runs on two folders never
    share files, experts or checkpoints. GZ2 and CIFAR keep their name (their content is fixed:
    curated model input, checksummed official files)."""
    if str(dataset) != "imagefolder" or data_root in (None, ""):
        return str(dataset)
    root = os.path.normpath(str(data_root)) if "://" not in str(data_root) else str(data_root).rstrip("/")
    name = re.sub(r"[^A-Za-z0-9]+", "-", root.rstrip("/").rsplit("/", 1)[-1]).strip("-")[:24] or "root"
    return f"imagefolder-{name}-{hashlib.sha256(root.encode()).hexdigest()[:6]}"


def data_label(dataset: str, votes_path: Any = None, mock_sky_dir: Any = None, storage_root: Any = "data",
               data_root: Any = None) -> str:
    """What the numbers come from, the first word of every variant name, run name, title and
    table row: ``mock`` for GZ2 curated from the built-in mock sky (synthetic galaxies), ``gz2``
    for real Galaxy Zoo 2, else :func:`source_name` (``cifar10``, ``imagefolder-<name>-<sha6>``).

    The data is the mock sky when the vote catalogue lies inside the mock sky folder: the
    ``sky`` pipeline's own rule (it renders the sky only then). ``{storage_root}`` in either
    path stands for ``storage_root``. OmegaConf resolver ``gd.label``.
    """
    if dataset != "gz2" or not votes_path or not mock_sky_dir:
        return source_name(dataset, data_root)
    return "mock" if inside(rooted(votes_path, storage_root), rooted(mock_sky_dir, storage_root)) else "gz2"


def experts_key(dataset: str, augmented: Any) -> str:
    """Name of the expert set (and of the Full baseline) of a dataset (its :func:`data_label`):
    ``mock_plain``, ``gz2_aug``."""
    return f"{dataset}_{'aug' if parse_flag(augmented) else 'plain'}"


def variant_name(dataset: str, method: str, ipc: Any, init: str, augmented: Any) -> str:
    """The variant's name, used for its files, checkpoints and MLflow run:
    ``<dataset>_<method>_ipc<ipc>_<init>_<plain|aug>`` where ``dataset`` is the
    :func:`data_label` (``mock_stm_ipc1_real_plain`` on the mock sky, ``gz2_...`` on real GZ2)."""
    return f"{dataset}_{method}_ipc{ipc}_{init}_{'aug' if parse_flag(augmented) else 'plain'}"
