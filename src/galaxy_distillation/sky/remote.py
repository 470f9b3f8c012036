"""The mock sky in a folder on an object store (any fsspec URL): rendered locally, then uploaded.

:func:`publish_mock_sky` keeps the local writer's guarantees (:mod:`.writer`) on the remote folder:

- a folder holding a catalogue (``*.csv`` / ``*.csv.gz``) or ``images/`` but no ``MOCK_SKY.json``
  is refused as real data; a marked folder is overwritten only when each table in it has the
  checksum its marker records (:class:`~.writer.RealDataProtectedError` otherwise);
- a re-run with the same settings finds the complete marker and every file, and uploads nothing;
- atomic as far as an object store allows: the sky is rendered by :func:`~.writer.write_mock_sky`
  into a local staging folder (the URL's cache folder, so an interrupted upload is resumed
  without rendering again), then uploaded one PUT per file: first the marker with status
  ``in_progress`` (a half-uploaded folder stays recognisably the mock sky's, never "real
  data"), the old tables removed, each table followed by its checksum in that marker (as the
  local writer records them), then the images, images of an earlier mock sky that are no
  longer part of it removed, and the complete marker last. A reader that finds a complete
  marker finds every file.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from galaxy_distillation.storage import cache_folder, filesystem

from .writer import (
    CATALOGUE_NAME,
    IMAGES_DIR,
    MAPPING_NAME,
    MARKER_NAME,
    TRUTH_NAME,
    MockSkyError,
    RealDataProtectedError,
    _summary,
    sky_spec,
    write_mock_sky,
)

_TABLES = (CATALOGUE_NAME, MAPPING_NAME, TRUTH_NAME)


def _entries(fs: Any, path: str) -> dict[str, dict[str, Any]]:
    """``{name: info}`` of what lies directly under ``path`` (empty when nothing does)."""
    try:
        listing = fs.ls(path, detail=True)
    except FileNotFoundError:
        return {}
    return {PurePosixPath(str(e["name"]).rstrip("/")).name: e for e in listing}


def _tables(entries: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(n for n, e in entries.items() if e.get("type") == "file" and n.endswith((".csv", ".csv.gz")))


def _guard(fs: Any, root: str, url: str, entries: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Refuse a folder that looks like real data; return its marker (or None)."""
    if MARKER_NAME not in entries:
        found = _tables(entries) + ([IMAGES_DIR + "/"] if IMAGES_DIR in entries else [])
        if found:
            raise RealDataProtectedError(
                f"refusing to write a mock sky into {url}: it holds {', '.join(found)} but no {MARKER_NAME} marker (real data?)"
            )
        return None
    try:
        return json.loads(fs.cat_file(f"{root}/{MARKER_NAME}"))
    except (OSError, ValueError) as exc:
        raise MockSkyError(f"unreadable mock-sky marker {url}/{MARKER_NAME}: {exc}") from None


def _check_owned(fs: Any, root: str, url: str, marker: dict[str, Any], entries: dict[str, dict[str, Any]]) -> None:
    """Every table in the marked folder must be one the writer wrote (its checksum in the marker)."""
    recorded = marker.get("sha256") or {}
    for name in _tables(entries):
        if recorded.get(name) != hashlib.sha256(fs.cat_file(f"{root}/{name}")).hexdigest():
            why = "differs from" if name in recorded else "is not recorded in"
            raise RealDataProtectedError(
                f"refusing to overwrite {url}/{name}: its checksum {why} the mock sky's marker {url}/{MARKER_NAME} "
                f"(a foreign catalogue?); move it out of {url} or delete the folder to render a new mock sky"
            )


def _images(fs: Any, root: str) -> set[str]:
    return {n for n in _entries(fs, f"{root}/{IMAGES_DIR}") if n.endswith(".jpg")}


def _complete(fs: Any, root: str, marker: dict[str, Any], wanted: dict[str, Any],
              entries: dict[str, dict[str, Any]]) -> bool:
    if marker.get("status") != "complete" or any(marker.get(k) != v for k, v in wanted.items()):
        return False
    if not all(name in entries for name in _TABLES):
        return False
    return len(_images(fs, root)) == marker.get("n_galaxies")


def _remote_summary(url: str, stage: Path, marker: dict[str, Any], seconds: float, skipped: bool) -> dict[str, Any]:
    summary = _summary(stage, marker, seconds, skipped)
    names = {"catalogue": CATALOGUE_NAME, "mapping": MAPPING_NAME, "images": IMAGES_DIR, "truth": TRUTH_NAME,
             "marker": MARKER_NAME}
    summary["paths"] = {k: f"{url.rstrip('/')}/{v}" for k, v in names.items()}
    return summary


def publish_mock_sky(
    url: str,
    n_galaxies: int,
    seed: int,
    class_fractions: Sequence[float] | None = None,
    jpeg_quality: tuple[int, int] = (75, 90),
    n_workers: int = 1,
    progress: bool = True,
    staging: str | Path | None = None,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Render a mock GZ2 sky (as :func:`~.writer.write_mock_sky`) into the remote folder ``url``.

    Args:
        url: the folder, e.g. ``s3://bucket/run/01_raw/mock_sky``.
        staging: local folder to render into (default: the URL's cache folder,
            :func:`galaxy_distillation.storage.cache_folder`); kept, so a re-run after an
            interrupted upload does not render again.
        storage_options: passed to the filesystem (default: the ``AWS_*`` variables, as the catalog).
        The other arguments: :func:`~.writer.write_mock_sky`.

    Returns:
        The writer's summary, with the remote ``paths``.

    Raises:
        RealDataProtectedError: the folder holds data the mock sky writer did not write.
        MockSkyError: invalid arguments or an unreadable marker.
    """
    wanted = sky_spec(n_galaxies, seed, class_fractions, jpeg_quality, n_workers)
    fs, root = filesystem(url, storage_options)
    root = root.rstrip("/")
    stage = Path(staging) if staging else cache_folder(url)
    t0 = time.perf_counter()
    fs.invalidate_cache()
    entries = _entries(fs, root)
    old = _guard(fs, root, url, entries)
    if old is not None and _complete(fs, root, old, wanted, entries):
        return _remote_summary(url, stage, old, time.perf_counter() - t0, skipped=True)
    if old is not None:
        _check_owned(fs, root, url, old, entries)

    write_mock_sky(stage, n_galaxies=n_galaxies, seed=seed, class_fractions=class_fractions,
                   jpeg_quality=jpeg_quality, n_workers=n_workers, progress=progress)
    marker_bytes = (stage / MARKER_NAME).read_bytes()
    marker = json.loads(marker_bytes)
    # as the local writer: claim the folder, drop the old tables (proven ours above), then each
    # table followed at once by its checksum in the claim, so every table there is always vouched for
    claim_path = f"{root}/{MARKER_NAME}"
    claim = {**marker, "status": "in_progress", "sha256": {}}
    fs.pipe_file(claim_path, json.dumps(claim, indent=2).encode())
    old_tables = [f"{root}/{name}" for name in _tables(entries)]
    if old_tables:
        fs.rm(old_tables)
    for name in _TABLES:
        fs.put_file(str(stage / name), f"{root}/{name}")
        claim["sha256"][name] = marker["sha256"][name]
        fs.pipe_file(claim_path, json.dumps(claim, indent=2).encode())
    images = sorted(p.name for p in (stage / IMAGES_DIR).glob("*.jpg"))
    stale = sorted(_images(fs, root) - set(images))
    fs.put([str(stage / IMAGES_DIR / name) for name in images], [f"{root}/{IMAGES_DIR}/{name}" for name in images])
    if stale:
        fs.rm([f"{root}/{IMAGES_DIR}/{name}" for name in stale])
    fs.pipe_file(claim_path, marker_bytes)  # last: the folder is complete
    fs.invalidate_cache()
    return _remote_summary(url, stage, marker, time.perf_counter() - t0, skipped=False)
