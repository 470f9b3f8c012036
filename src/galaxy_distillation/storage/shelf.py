"""The expert banks of one expert folder, local or remote (:class:`ExpertShelf`).

Not imported by :mod:`galaxy_distillation.storage` itself: this module builds on the engine's
:class:`~galaxy_distillation.engine.trajectories.ExpertBank`, and the engine imports the storage
package's atomic writes.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path, PurePosixPath
from typing import Any

from galaxy_distillation.engine.trajectories import ExpertBank, ExpertError
from galaxy_distillation.storage.location import Location
from galaxy_distillation.storage.mirror import mirror_files

__all__ = ["BANK_PREFIX", "ExpertShelf", "StoredExperts", "expert_files", "read_metadata", "safetensors_metadata"]

_EXPERT_FILE = re.compile(r"expert_(\d+)\.safetensors")
#: prefix of a bank's folder under an expert folder (``bank-<key>``: one per data and expert settings)
BANK_PREFIX = "bank-"


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file, from its header bytes."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]).get("__metadata__", {}) or {}


def read_metadata(loc: Location, path: str) -> dict[str, str]:
    """A safetensors file's metadata, reading only its header (two small range reads remotely)."""
    with loc.fs.open(path, "rb") as handle:
        head = handle.read(8)
        (n,) = struct.unpack("<Q", head)
        return safetensors_metadata(head + handle.read(n))


def expert_files(loc: Location, folder: str | None = None) -> dict[int, str]:
    """``{index: path}`` of the ``expert_NNNN.safetensors`` files in ``folder`` (default: ``loc``)."""
    folder = loc.path if folder is None else folder
    loc.invalidate()
    if not loc.fs.isdir(folder):
        return {}
    out = {}
    for p in loc.fs.ls(folder, detail=False):
        m = _EXPERT_FILE.fullmatch(PurePosixPath(p).name)
        if m:
            out[int(m.group(1))] = p
    return out


class ExpertShelf:
    """The expert banks in one folder (``06_models/experts/<dataset>_<plain|aug>``).

    Experts are append-only: each bank is the subfolder ``bank-<key>`` of one (training data,
    expert settings) pair (:func:`galaxy_distillation.pipelines.teacher.nodes.bank_name`), so
    experts for other data or settings go beside the others, never over them, and nothing is
    ever deleted. Experts written before banks were keyed lie in the folder itself (bank ``""``).
    ``bank(name, n)`` opens a bank (mirrored into the local cache from an object store by
    :func:`~galaxy_distillation.storage.mirror.mirror_files`); ``inventory(name)`` reads its
    experts' headers only. Pickled as where it was loaded from.
    """

    def __init__(self, url: str, credentials: dict[str, Any] | None = None, cache_dir: str | None = None) -> None:
        self.url, self.credentials, self.cache_dir = str(url), credentials, cache_dir
        self._loc = Location(self.url, credentials)

    def __reduce__(self) -> tuple[Any, tuple]:
        return ExpertShelf, (self.url, self.credentials, self.cache_dir)

    def _folder(self, name: str) -> str:
        return self._loc.join(name) if name else self._loc.path

    def location(self, name: str) -> str:
        """The bank's URL (its local path for a local shelf)."""
        return self._loc.full(self._folder(name))

    def names(self) -> list[str]:
        """The banks that hold experts (``""``: experts in the folder itself)."""
        loc = self._loc
        loc.invalidate()
        if not loc.fs.isdir(loc.path):
            return []
        names = [""] if expert_files(loc) else []
        for entry in loc.fs.ls(loc.path, detail=True):
            name = PurePosixPath(entry["name"]).name
            if entry.get("type") == "directory" and name.startswith(BANK_PREFIX) and \
                    expert_files(loc, entry["name"]):
                names.append(name)
        return sorted(names)

    def inventory(self, name: str) -> dict[int, dict[str, Any]]:
        """``{index: meta}`` of bank ``name`` from the safetensors headers (no tensor read).

        Raises:
            ExpertError: a header could not be read (the file is named; nothing is treated as missing).
        """
        out = {}
        for index, path in sorted(expert_files(self._loc, self._folder(name)).items()):
            try:
                out[index] = json.loads(read_metadata(self._loc, path).get("meta", "{}"))
            except (OSError, ValueError, struct.error) as exc:
                raise ExpertError(f"cannot read expert {self._loc.full(path)} ({type(exc).__name__}: {exc}); "
                                  f"nothing was changed: fix or move that file, then rerun") from None
        return out

    def bank(self, name: str, n: int | None = None) -> StoredExperts:
        """Bank ``name`` as an :class:`~galaxy_distillation.engine.trajectories.ExpertBank`, limited to its
        first ``n`` experts when given.

        Raises:
            ExpertError: the bank holds no experts.
        """
        files = expert_files(self._loc, self._folder(name))
        if not files:
            raise ExpertError(f"no experts in {self.location(name)}: run `kedro run --pipelines=teacher` first")
        if self._loc.local:
            folder = Path(self._folder(name))
        else:
            names = [PurePosixPath(p).name for p in files.values()]
            folder = mirror_files(self.location(name), names, self.cache_dir, self.credentials)
        bank = StoredExperts(folder, (self.url, self.credentials, self.cache_dir, name, n))
        return bank if n is None else bank.first(n)


class StoredExperts(ExpertBank):
    """An :class:`ExpertBank` that remembers the bank it came from (``source``: shelf URL,
    credentials, cache folder, bank name, number of experts used) and is pickled as that, never
    as this machine's paths, so a Ray task on another node opens the same experts there."""

    def __init__(self, directory: str | Path, source: tuple[str, dict[str, Any] | None, str | None, str, int | None]
                 ) -> None:
        super().__init__(directory)
        self.source = source

    def first(self, n: int) -> ExpertBank:
        view = super().first(n)
        view.source = (*self.source[:4], n)
        return view

    def __reduce__(self) -> tuple[Any, tuple]:
        return _open_experts, self.source


def _open_experts(path: str, credentials: dict[str, Any] | None, cache_dir: str | None, name: str = "",
                  n: int | None = None) -> ExpertBank:
    return ExpertShelf(path, credentials, cache_dir).bank(name, n)
