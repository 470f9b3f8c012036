"""One file outside the catalog, local or remote: the distillation checkpoint store."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from galaxy_distillation.storage.atomic import move_aside
from galaxy_distillation.storage.location import Location, is_local, join, local_path, sibling

__all__ = ["FileStore", "checkpoint_location"]


class FileStore:
    """One file at a local path or an fsspec URL: ``load() -> bytes | None``, ``save(bytes)``, ``delete()``.

    The engine's checkpoint store interface (``engine.checkpoint.CheckpointStore``). Saving is
    atomic (:class:`~galaxy_distillation.storage.location.Location`), so a reader sees the old file or
    the new one. Picklable (it holds its :class:`Location`: the URL and the storage options; the
    filesystem is made on first use), so a Ray task on another node can be handed one.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self._loc = Location(url, storage_options)

    @property
    def url(self) -> str:
        return self._loc.url

    @property
    def storage_options(self) -> dict[str, Any]:
        return self._loc.credentials

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"FileStore({self.url!r})"

    def load(self) -> bytes | None:
        """The file's bytes, or ``None`` when there is no such file."""
        try:
            return self._loc.read_bytes()
        except FileNotFoundError:
            return None

    def save(self, data: bytes) -> None:
        """Replace the file with ``data`` atomically."""
        self._loc.write_bytes(data)

    def move_aside(self, suffix: str) -> str:
        """Rename the file to ``<stem>.<suffix><ext>`` in its folder (kept, never deleted); the new URL."""
        name = PurePosixPath(self._loc.path).name
        stem, dot, ext = name.rpartition(".")
        target = sibling(self.url, f"{stem}.{suffix}.{ext}" if dot else f"{name}.{suffix}")
        if self._loc.local:
            move_aside(local_path(self.url), local_path(target))
            return target
        self._loc.fs.mv(self._loc.path, Location(target).path)  # an object store copies, then removes the original
        self._loc.invalidate()
        return target

    def delete(self) -> None:
        """Remove the file (no error when it is not there)."""
        self._loc.delete()


def checkpoint_location(root: str, variant: str) -> Path | FileStore:
    """Where the distiller keeps ``variant``'s checkpoint: the folder ``<root>/<variant>`` for a local
    ``root`` (the engine writes ``state.pt`` there), else a :class:`FileStore` of ``<root>/<variant>/state.pt``."""
    from galaxy_distillation.engine.checkpoint import STATE_FILE

    if is_local(root):
        return local_path(root) / variant
    return FileStore(join(root, variant, STATE_FILE))
