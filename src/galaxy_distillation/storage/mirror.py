"""The one local cache and the one mirror of remote files.

Two things are read from an object store as local files: curation's raw GZ2 images (a remote
image folder) and a bank of expert trajectories (:class:`galaxy_distillation.storage.shelf.ExpertShelf`).
Both go through :func:`mirror_files`, into :func:`cache_folder` of their URL (the mock sky's
staging folder, :mod:`galaxy_distillation.sky.remote`, lives under the same cache root).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from galaxy_distillation.storage.atomic import atomic_path, write_bytes
from galaxy_distillation.storage.location import Location

__all__ = ["cache_folder", "content_tag", "mirror_files"]

#: files fetched in one concurrent batch; the record of what is cached is written after each batch,
#: so an interrupted mirror keeps the batches it finished
BATCH = 256


def cache_folder(url: str, cache_dir: str | Path | None = None) -> Path:
    """The local cache folder of ``url``: ``<cache_dir or $TMPDIR/galaxy_distillation_cache>/<sha256(url)[:16]>``."""
    root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "galaxy_distillation_cache"
    return root / hashlib.sha256(str(url).encode()).hexdigest()[:16]


def content_tag(entry: dict[str, Any]) -> str:
    """What identifies a remote file's content in a listing entry: its ETag (S3: the MD5 of the
    bytes) or checksum when the store gives one, else its size and modification time."""
    for key in ("ETag", "etag", "md5Hash", "md5", "checksum", "crc32c"):
        if entry.get(key):
            return str(entry[key]).strip('"')
    when = entry.get("LastModified") or entry.get("mtime") or entry.get("updated") or entry.get("created")
    return f"{entry.get('size')}:{when}"


def _read_record(record: Path) -> dict[str, str]:
    try:
        seen = json.loads(record.read_text()) if record.exists() else {}
    except (OSError, ValueError):
        return {}
    return seen if isinstance(seen, dict) else {}


def mirror_files(url: str, names: list[str] | set[str], cache_dir: str | Path | None = None,
                 storage_options: dict[str, Any] | None = None) -> Path:
    """Mirror the files ``names`` of the folder ``url`` into its local cache folder (:func:`cache_folder`).

    One listing of the folder. A file is downloaded unless the cached copy was made from the
    same remote content: the :func:`content_tag` (ETag/checksum) recorded at its download, in
    ``.<folder>.content.json`` beside the cache folder (so the folder holds only the files), and
    the remote size; never by size alone. Each download goes to a temporary file that is renamed
    into place once complete, so an interrupted mirror leaves no partial file; files are fetched
    concurrently by fsspec, :data:`BATCH` at a time. A cached file absent from the remote folder
    is removed, so a reader of the cache sees only what the folder holds (the cache is a copy:
    the remote folder is never changed).

    Returns:
        The local folder holding the mirrored files.
    """
    loc = Location(url, storage_options)
    cache = cache_folder(url, cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    loc.invalidate()
    try:
        listing = {PurePosixPath(e["name"]).name: e for e in loc.fs.ls(loc.path, detail=True)
                   if e.get("type") == "file"}
    except FileNotFoundError:
        listing = {}
    record = cache.parent / f".{cache.name}.content.json"
    recorded = _read_record(record)
    for old in cache.iterdir():  # a cache copy only: the remote folder is never changed
        if old.is_file() and not old.name.startswith(".") and old.name not in listing:
            old.unlink()
    seen = {name: tag for name, tag in recorded.items() if name in listing and (cache / name).is_file()}

    def fresh(name: str) -> bool:
        entry, target = listing[name], cache / name
        size = entry.get("size")
        return seen.get(name) == content_tag(entry) and target.is_file() and \
            (size is None or target.stat().st_size == int(size))

    wanted = [name for name in sorted(set(names)) if name in listing and not fresh(name)]
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start:start + BATCH]
        for name in batch:
            seen.pop(name, None)
        with contextlib.ExitStack() as stack:  # every file renamed into place only when all of the batch arrived
            tmps = [stack.enter_context(atomic_path(cache / name)) for name in batch]
            loc.fs.get([loc.join(name) for name in batch], [str(tmp) for tmp in tmps])
        seen.update({name: content_tag(listing[name]) for name in batch})
        write_bytes(record, json.dumps(seen, sort_keys=True).encode())
    if seen != recorded and not wanted:  # stale entries forgotten
        write_bytes(record, json.dumps(seen, sort_keys=True).encode())
    return cache
