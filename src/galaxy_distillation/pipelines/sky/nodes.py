"""Nodes of the ``sky`` pipeline: render the built-in mock GZ2 sky."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from galaxy_distillation.curation.report import to_plain
from galaxy_distillation.params import SkyParams
from galaxy_distillation.sky.writer import write_mock_sky

log = logging.getLogger(__name__)


def render_mock_sky(sky: SkyParams, votes_path: str) -> dict[str, Any]:
    """Write the mock sky into ``sky.out_dir`` unless real data is configured.

    Real data is configured when the vote catalogue path does not lie inside the mock sky
    folder; then nothing is rendered and the manifest says so. Re-running with the same seed
    and size is a no-op (the writer checks its marker file), and a folder holding a
    catalogue the renderer did not make is never written into.

    Returns:
        The manifest: ``mode`` ("mock" or "real"), and for the mock sky the writer's summary.
    """
    out_dir = Path(sky.out_dir).resolve()
    votes = Path(votes_path).resolve()
    if out_dir not in votes.parents:
        log.info("Real GZ2 data configured (%s): the mock sky is not rendered.", votes)
        return {"mode": "real", "votes_path": str(votes_path)}
    summary = write_mock_sky(
        out_dir=out_dir,
        n_galaxies=int(sky.n_galaxies),
        seed=int(sky.seed),
        n_workers=int(sky.n_workers),
        progress=bool(sky.progress),
    )
    return {"mode": "mock", **to_plain(summary)}
