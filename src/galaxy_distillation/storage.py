"""Files outside the catalog on a local path or any fsspec URL (``s3://bucket/prefix``, ``gs://...``).

Three things the project writes or reads itself, not through a Kedro dataset, go through here:

- distillation checkpoints: :class:`FileStore` (one file: load bytes / save bytes / delete),
  handed to the engine's ``Distiller`` (:func:`checkpoint_location`);
- the mock sky: rendered into a local staging folder, then uploaded
  (:mod:`galaxy_distillation.sky.remote`);
- curation's raw GZ2 images: a remote image folder is mirrored into a local cache, only the
  files asked for, only when new or changed (:func:`mirror_files`).

No Kedro here. Credentials are those of the catalog datasets: without ``storage_options``,
s3fs reads the standard ``AWS_*`` variables, which :mod:`galaxy_distillation.preflight`
exports from a ``storage`` entry of ``conf/<env>/credentials.yml``. A local path (or a
``file://`` URL) is used as a plain path, so the local behaviour is the one of a folder.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from galaxy_distillation.io import move_aside, write_bytes

__all__ = ["FileStore", "cache_folder", "checkpoint_location", "content_tag", "exists", "filesystem", "inside", "is_local",
           "join", "local_path", "mirror_files", "rooted", "sibling", "split"]

_LOCAL = {None, "", "file", "local"}
#: Placeholder of ``globals.yml`` paths (``{storage_root}/01_raw/mock_sky``), see :func:`rooted`.
ROOT_TOKEN = "{storage_root}"


def split(url: str) -> tuple[str, str]:
    """``(protocol, path)``: ``("file", path)`` for a local path or ``file://`` URL."""
    from fsspec.core import split_protocol

    protocol, path = split_protocol(str(url))
    if protocol in _LOCAL:
        return "file", path
    return protocol, path


def is_local(url: str) -> bool:
    """True for a local path or a ``file://`` URL."""
    return split(url)[0] == "file"


def local_path(url: str) -> Path:
    """The local path of a local ``url`` (``file:///a/b`` -> ``/a/b``)."""
    protocol, path = split(url)
    if protocol != "file":
        raise ValueError(f"not a local path: {url}")
    return Path(path)


def join(url: str, *parts: str) -> str:
    """``url`` with ``parts`` appended by ``/`` (keeps the protocol)."""
    return "/".join([str(url).rstrip("/"), *(str(p).strip("/") for p in parts)])


def sibling(url: str, name: str) -> str:
    """The file ``name`` in the folder of ``url``."""
    protocol, path = split(url)
    if protocol == "file":
        return str(local_path(url).parent / name)
    return f"{protocol}://{PurePosixPath(path).parent / name}"


def inside(url: str, folder: str) -> bool:
    """True when ``url`` lies (at any depth) in ``folder`` (same filesystem, paths resolved locally)."""
    (p1, a), (p2, b) = split(url), split(folder)
    if p1 != p2:
        return False
    if p1 == "file":
        return Path(b).resolve() in Path(a).resolve().parents
    return PurePosixPath(b.rstrip("/")) in PurePosixPath(a).parents


def rooted(value: Any, root: Any) -> str:
    """OmegaConf resolver ``gd.rooted``: ``value`` with ``{storage_root}`` replaced by ``root``.

    The raw GZ2 paths of ``globals.yml`` default to ``{storage_root}/01_raw/mock_sky/...``, so
    the mock sky lives under the same root as every catalog dataset (``--params
    storage_root=s3://...`` moves it too); a path without the placeholder is used as given.
    """
    return str(value).replace(ROOT_TOKEN, str(root).rstrip("/"))


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``(fsspec filesystem, path on it)`` for ``url``."""
    import fsspec

    protocol, path = split(url)
    return fsspec.filesystem(protocol, **(storage_options or {})), path


def exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether ``url`` exists (a fresh look, not a cached listing)."""
    if is_local(url):
        return local_path(url).exists()
    fs, path = filesystem(url, storage_options)
    fs.invalidate_cache()
    return bool(fs.exists(path))


def cache_folder(url: str, cache_dir: str | Path | None = None) -> Path:
    """The local cache folder of ``url``: ``<cache_dir or $TMPDIR/galaxy_distillation_cache>/<sha256(url)[:16]>``
    (the root the expert datasets mirror into)."""
    root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "galaxy_distillation_cache"
    return root / hashlib.sha256(str(url).encode()).hexdigest()[:16]


class FileStore:
    """One file at a local path or an fsspec URL: ``load() -> bytes | None``, ``save(bytes)``, ``delete()``.

    The engine's checkpoint store interface (``engine.checkpoint.CheckpointStore``). Saving is
    atomic: locally a temporary file, fsync and rename (:mod:`galaxy_distillation.io`), on an
    object store one PUT (or one completed multipart upload), so a reader sees the old file or
    the new one. Picklable (it holds the URL and the storage options; the filesystem is made
    on first use), so a Ray task on another node can be handed one.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = str(url)
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["storage_options"])

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"FileStore({self.url!r})"

    def _remote(self) -> tuple[Any, str]:
        if self._fs is None:
            self._fs, self._path = filesystem(self.url, self.storage_options)
        return self._fs, self._path

    def load(self) -> bytes | None:
        """The file's bytes, or ``None`` when there is no such file."""
        if is_local(self.url):
            path = local_path(self.url)
            return path.read_bytes() if path.exists() else None
        fs, path = self._remote()
        try:
            return fs.cat_file(path)
        except FileNotFoundError:
            return None

    def save(self, data: bytes) -> None:
        """Replace the file with ``data`` atomically."""
        if is_local(self.url):
            write_bytes(local_path(self.url), data)
            return
        fs, path = self._remote()
        fs.pipe_file(path, data)

    def move_aside(self, suffix: str) -> str:
        """Rename the file to ``<stem>.<suffix><ext>`` in its folder (kept, never deleted); the new URL."""
        name = PurePosixPath(split(self.url)[1]).name
        stem, dot, ext = name.rpartition(".")
        target = sibling(self.url, f"{stem}.{suffix}.{ext}" if dot else f"{name}.{suffix}")
        if is_local(self.url):
            move_aside(local_path(self.url), local_path(target))
            return target
        fs, path = self._remote()
        fs.mv(path, split(target)[1])  # an object store copies, then removes the original
        fs.invalidate_cache()
        return target

    def delete(self) -> None:
        """Remove the file (no error when it is not there)."""
        if is_local(self.url):
            local_path(self.url).unlink(missing_ok=True)
            return
        fs, path = self._remote()
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass
        fs.invalidate_cache()


def checkpoint_location(root: str, variant: str) -> Path | FileStore:
    """Where the distiller keeps ``variant``'s checkpoint: the folder ``<root>/<variant>`` for a local
    ``root`` (the engine writes ``state.pt`` there), else a :class:`FileStore` of ``<root>/<variant>/state.pt``."""
    from galaxy_distillation.engine.checkpoint import STATE_FILE

    if is_local(root):
        return local_path(root) / variant
    return FileStore(join(root, variant, STATE_FILE))


def content_tag(entry: dict[str, Any]) -> str:
    """What identifies a remote file's content in a listing entry: its ETag (S3: the MD5 of the
    bytes) or checksum when the store gives one, else its size and modification time."""
    for key in ("ETag", "etag", "md5Hash", "md5", "checksum", "crc32c"):
        if entry.get(key):
            return str(entry[key]).strip('"')
    return f"{entry.get('size')}:{entry.get('LastModified') or entry.get('mtime') or entry.get('updated')}"


def mirror_files(url: str, names: list[str] | set[str], cache_dir: str | Path | None = None,
                 storage_options: dict[str, Any] | None = None) -> Path:
    """Mirror the files ``names`` of the remote folder ``url`` into its local cache folder.

    One listing of the folder; a file is downloaded only when it is not in the cache from the
    same remote content (:func:`content_tag`, recorded at each download in ``.<folder>.content.json``
    beside the cache folder; an interrupted download is fetched again). A name absent from the remote folder
    is absent from the returned folder too (a stale cached copy is removed), so a reader of the
    cache sees exactly what the folder holds. Many files are fetched concurrently by fsspec.

    Returns:
        The local folder holding the mirrored files.
    """
    import json

    fs, root = filesystem(url, storage_options)
    cache = cache_folder(url, cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    fs.invalidate_cache()
    try:
        listing = {PurePosixPath(e["name"]).name: content_tag(e)
                   for e in fs.ls(root, detail=True) if e.get("type") == "file"}
    except FileNotFoundError:
        listing = {}
    record = cache.parent / f".{cache.name}.content.json"  # beside the folder: the folder holds only the files
    try:
        seen = json.loads(record.read_text()) if record.exists() else {}
    except ValueError:
        seen = {}
    remote, local = [], []
    for name in sorted(set(names)):
        target = cache / name
        if name not in listing:
            target.unlink(missing_ok=True)
            seen.pop(name, None)
        elif not target.is_file() or seen.get(name) != listing[name]:
            seen.pop(name, None)
            remote.append(f"{root.rstrip('/')}/{name}")
            local.append(str(target))
    if remote:
        write_bytes(record, json.dumps(seen).encode())  # forget what is being replaced first
        fs.get(remote, local)
        seen.update({PurePosixPath(r).name: listing[PurePosixPath(r).name] for r in remote})
    write_bytes(record, json.dumps(seen).encode())
    return cache
