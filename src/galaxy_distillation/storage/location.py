"""Where a file or folder lives: a local path or any fsspec URL (``s3://bucket/prefix``, ``gs://...``).

The URL helpers (:func:`split`, :func:`is_local`, :func:`join`, :func:`sibling`, :func:`inside`,
:func:`rooted`) are pure string work. :class:`Location` is the one location type of the
project: a URL, the credentials to reach it and its fsspec filesystem (made on first use, so
a ``Location`` pickles as its URL and credentials and a Ray task on another node opens the same
place). Without credentials, s3fs reads the standard ``AWS_*`` variables, which
:mod:`galaxy_distillation.preflight.credentials` exports from a ``storage`` entry of
``conf/<env>/credentials.yml``. A local path (or a ``file://`` URL) is used as a plain path.

No Kedro here.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from galaxy_distillation.storage.atomic import atomic_path, write_bytes

__all__ = ["ROOT_TOKEN", "Location", "exists", "filesystem", "inside", "is_local", "join", "local_path", "rooted",
           "sibling", "split"]

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


class Location:
    """A file or folder at a local path or an fsspec URL, with the credentials to reach it.

    ``url`` as given; ``protocol`` (``"file"`` locally) and ``path`` (the path on the filesystem);
    ``local``; ``fs`` (the fsspec filesystem, made on first use). Methods taking a ``path`` act on
    that path of the same filesystem (default: this location). Writes are atomic: locally a
    temporary file, fsync and rename (:mod:`galaxy_distillation.storage.atomic`), on an object
    store one PUT (or one completed multipart upload), so a reader sees the old file or the new
    one. Pickled as its URL and credentials, never as an open filesystem.
    """

    def __init__(self, url: str | Path, credentials: dict[str, Any] | None = None) -> None:
        self.url = str(url)
        self.credentials = dict(credentials or {})
        self.protocol, self.path = split(self.url)
        self.local = self.protocol == "file"
        self._fs: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "credentials": self.credentials}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["credentials"])

    def __repr__(self) -> str:
        return f"Location({self.url!r})"

    def __str__(self) -> str:
        return self.url

    @property
    def fs(self) -> Any:
        """The fsspec filesystem of this location (made once, on first use)."""
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem(self.protocol, **self.credentials)
        return self._fs

    def join(self, *parts: str) -> str:
        """The path of ``parts`` under this location, on its filesystem."""
        return str(PurePosixPath(self.path, *parts))

    def full(self, path: str | None = None) -> str:
        """``path`` as a URL the filesystem's users understand (for messages, :class:`Location` and Path-based readers)."""
        path = self.path if path is None else path
        return path if self.local else f"{self.protocol}://{path}"

    def invalidate(self) -> None:
        """Forget fsspec's cached listings (the next look is a fresh one)."""
        self.fs.invalidate_cache()

    def exists(self, path: str | None = None) -> bool:
        return bool(self.fs.exists(self.path if path is None else path))

    def read_bytes(self, path: str | None = None) -> bytes:
        """The file's bytes (``FileNotFoundError`` when there is none)."""
        return self.fs.cat_file(self.path if path is None else path)

    def write_bytes(self, data: bytes, path: str | None = None) -> None:
        """Replace the file with ``data`` atomically (see the class docstring)."""
        target = self.path if path is None else path
        if self.local:
            write_bytes(Path(target), data)
        else:
            self.fs.pipe_file(target, data)

    def put_file(self, local_file: Path, path: str | None = None) -> None:
        """Copy a finished local file to ``path`` (atomic as :meth:`write_bytes`)."""
        target = self.path if path is None else path
        if self.local:
            with atomic_path(target) as tmp:
                shutil.copyfile(local_file, tmp)
        else:
            self.fs.put_file(str(local_file), target)

    def delete(self, path: str | None = None) -> None:
        """Remove the file (no error when it is not there)."""
        try:
            self.fs.rm_file(self.path if path is None else path)
        except FileNotFoundError:
            pass
        self.invalidate()


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``(fsspec filesystem, path on it)`` for ``url``."""
    loc = Location(url, storage_options)
    return loc.fs, loc.path


def exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether ``url`` exists (a fresh look, not a cached listing)."""
    loc = Location(url, storage_options)
    loc.invalidate()
    return loc.exists()
