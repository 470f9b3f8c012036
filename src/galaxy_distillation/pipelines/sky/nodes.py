"""Nodes of the ``sky`` pipeline: render the built-in mock GZ2 sky."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from galaxy_distillation.sky.writer import write_mock_sky

log = logging.getLogger(__name__)


def render_mock_sky(sky: dict[str, Any], votes_path: str) -> dict[str, Any]:
    """Write the mock sky into ``sky.out_dir`` unless real data is configured.

    Real data is configured when the vote catalogue path does not lie inside the mock sky
    folder; then nothing is rendered and the manifest says so. Re-running with the same seed
    and size is a no-op (the writer checks its marker file), and a folder holding a
    catalogue the renderer did not make is never written into.

    Returns:
        The manifest: ``mode`` ("mock" or "real"), and for the mock sky the writer's summary.
    """
    out_dir = Path(sky["out_dir"]).resolve()
    votes = Path(votes_path).resolve()
    if out_dir not in votes.parents:
        log.info("Real GZ2 data configured (%s): the mock sky is not rendered.", votes)
        return {"mode": "real", "votes_path": str(votes_path)}
    summary = write_mock_sky(
        out_dir=out_dir,
        n_galaxies=int(sky["n_galaxies"]),
        seed=int(sky["seed"]),
        n_workers=int(sky.get("n_workers", 1)),
        progress=bool(sky.get("progress", True)),
    )
    return {"mode": "mock", **_plain(summary)}


def _plain(value: Any) -> Any:
    """Make the writer's summary JSON-serialisable (paths to strings, numpy to Python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return value
