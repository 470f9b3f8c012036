"""Nodes of the ``sky`` pipeline: render the built-in mock GZ2 sky."""

from __future__ import annotations

import logging
from typing import Any

from galaxy_distillation.curation.report import to_plain
from galaxy_distillation.params import SkyParams
from galaxy_distillation.sky.writer import write_mock_sky
from galaxy_distillation.storage import inside, is_local, local_path, rooted

log = logging.getLogger(__name__)


def render_mock_sky(sky: SkyParams, votes_path: str, storage_root: str = "data") -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the mock sky into ``sky.out_dir`` (a local folder or any fsspec URL; ``{storage_root}``
    in it stands for ``storage_root``) unless real data is configured.

    Real data is configured when the vote catalogue path does not lie inside the mock sky
    folder; then nothing is rendered and the manifest says so. Re-running with the same seed
    and size is a no-op (the writer checks its marker file), and a folder holding a
    catalogue the renderer did not make is never written into. On an object store the sky is
    rendered into a local staging folder and then uploaded, the marker last
    (:func:`galaxy_distillation.sky.remote.publish_mock_sky`).

    Returns:
        The manifest: ``mode`` ("mock" or "real"), and for the mock sky the writer's summary;
        and the ``vote_catalogue`` output (``{"mode", "votes_path"}``: the dataset checks the
        catalogue is in place), so ``--pipelines=sky,curation`` orders curation after the sky
        by data.
    """
    out_dir = rooted(sky.out_dir, storage_root)
    if not inside(votes_path, out_dir):
        log.info("Real GZ2 data configured (%s): the mock sky is not rendered.", votes_path)
        return {"mode": "real", "votes_path": str(votes_path)}, {"mode": "real", "votes_path": str(votes_path)}
    settings = {"n_galaxies": int(sky.n_galaxies), "seed": int(sky.seed), "n_workers": int(sky.n_workers),
                "progress": bool(sky.progress)}
    if is_local(out_dir):
        summary = write_mock_sky(out_dir=local_path(out_dir).resolve(), **settings)
    else:
        from galaxy_distillation.sky.remote import publish_mock_sky

        summary = publish_mock_sky(out_dir, **settings)
    return {"mode": "mock", **to_plain(summary)}, {"mode": "mock", "votes_path": str(votes_path)}
