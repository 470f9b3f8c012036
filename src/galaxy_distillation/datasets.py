"""Kedro datasets for tensors, expert trajectories and GZ2 vote catalogues.

These are the only Kedro-aware I/O pieces; the numerical code never imports Kedro.
Nothing here unpickles arbitrary objects: tensors go through safetensors, metadata
through JSON.

Every path may be a local path or any fsspec URL (``s3://bucket/prefix/...``,
``gs://...``, ``file:///...``), the pattern of kedro-datasets (``get_protocol_and_path`` +
``fsspec.filesystem``); ``credentials`` are passed to the filesystem (without them, s3fs
reads the standard ``AWS_*`` variables). Writes are atomic where the filesystem allows:
locally a temporary file renamed into place, on an object store one PUT (or one
completed multipart upload), so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import torch
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from safetensors.torch import save_file

from galaxy_distillation.engine.trajectories import ExpertBank
from galaxy_distillation.io import atomic_path, write_bytes
from galaxy_distillation.params import parse_flag

_META_KEY = "gd_meta_json"


class _Location:
    """A file or folder on any fsspec filesystem."""

    def __init__(self, path: str, credentials: dict[str, Any] | None = None) -> None:
        self.url = str(path)
        self.protocol, self.path = get_protocol_and_path(self.url)
        self.local = self.protocol == "file"
        self.fs = fsspec.filesystem(self.protocol, **(credentials or {}))

    def join(self, *parts: str) -> str:
        return str(PurePosixPath(self.path, *parts))

    def full(self, path: str) -> str:
        """``path`` as a URL the filesystem's users understand (for messages and Path-based readers)."""
        return path if self.local else f"{self.protocol}://{path}"

    def exists(self, path: str | None = None) -> bool:
        return self.fs.exists(self.path if path is None else path)

    def read_bytes(self, path: str | None = None) -> bytes:
        return self.fs.cat_file(self.path if path is None else path)

    def write_bytes(self, data: bytes, path: str | None = None) -> None:
        """Write ``data`` atomically: temporary file + rename locally, one upload on an object store."""
        target = self.path if path is None else path
        if self.local:
            _atomic_local_write(Path(target), data)
        else:
            self.fs.pipe_file(target, data)

    def put_file(self, local_file: Path, path: str) -> None:
        """Copy a finished local file to ``path`` (atomic as :meth:`write_bytes`)."""
        if self.local:
            with atomic_path(path) as tmp:
                shutil.copyfile(local_file, tmp)
        else:
            self.fs.put_file(str(local_file), path)

    def invalidate(self) -> None:
        self.fs.invalidate_cache()


def _atomic_local_write(path: Path, data: bytes) -> None:
    """Local atomic write: the project-wide helper (temporary file, fsync, rename)."""
    write_bytes(path, data)


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file, from its header bytes."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]).get("__metadata__", {}) or {}


def _read_header(loc: _Location, path: str) -> dict[str, str]:
    """A safetensors file's metadata, reading only its header (two small range reads remotely)."""
    with loc.fs.open(path, "rb") as handle:
        head = handle.read(8)
        (n,) = struct.unpack("<Q", head)
        return safetensors_metadata(head + handle.read(n))


class TensorDictDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """A dict of tensors (plus an optional JSON-able ``"meta"`` dict) in one safetensors file.

    Images are stored as given (uint8 stays uint8: 4x smaller than float32). Saving is atomic
    (see the module docstring), so an interrupted run never leaves a half-written file behind.
    """

    def __init__(self, filepath: str, credentials: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._loc = _Location(filepath, credentials)
        self._protocol = self._loc.protocol  # what galaxy_distillation.outputs guards: local files only
        self._filepath = Path(self._loc.path) if self._loc.local else None
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        if not self._loc.exists():
            raise DatasetError(f"{self._loc.url} does not exist: run the pipeline that produces it first")
        data = self._loc.read_bytes()
        tensors: dict[str, Any] = dict(load_bytes(data))
        meta = safetensors_metadata(data).get(_META_KEY)
        if meta is not None:
            tensors["meta"] = json.loads(meta)
        return tensors

    def save(self, data: dict[str, Any]) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in data.items() if isinstance(v, torch.Tensor)}
        others = {k: v for k, v in data.items() if not isinstance(v, torch.Tensor)}
        if set(others) - {"meta"}:
            raise DatasetError(f"TensorDictDataset stores tensors and a 'meta' dict only, got {sorted(others)}")
        metadata = {_META_KEY: json.dumps(others.get("meta", {}))}
        if self._loc.local:  # streamed to disk by safetensors, through the project's atomic-write helper
            with atomic_path(self._loc.path) as tmp:
                save_file(tensors, str(tmp), metadata=metadata)
        else:
            self._loc.write_bytes(save_bytes(tensors, metadata=metadata))
        self._loc.invalidate()

    def _exists(self) -> bool:
        return self._loc.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._loc.url}


class ArtifactDataset(AbstractDataset[Any, Any]):
    """Any file dataset, also logged as an MLflow artifact of the active run when saved.

    The stand-in for kedro-mlflow's ``MlflowArtifactDataset`` that works for every
    ``storage_root``: the wrapped dataset writes wherever its ``filepath`` points (a local
    path or an fsspec URL) and the file is then logged under ``artifact_path`` (from a local
    temporary copy when the file lives on an object store). Loading reads the wrapped
    dataset. Without an active MLflow run nothing is logged.
    """

    def __init__(self, dataset: dict[str, Any], artifact_path: str = "", credentials: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        config = dict(dataset)
        if credentials is not None:
            config.setdefault("credentials", credentials)
        self._inner = AbstractDataset.from_config("artifact", config)
        self._loc = _Location(str(config["filepath"]), config.get("credentials"))
        self._protocol = self._loc.protocol  # what galaxy_distillation.outputs guards: local files only
        self._filepath = Path(self._loc.path) if self._loc.local else None
        self._artifact_path = artifact_path or None
        self.metadata = metadata

    def load(self) -> Any:
        return self._inner.load()

    def save(self, data: Any) -> None:
        self._inner.save(data)
        import mlflow

        if mlflow.active_run() is None:
            return
        if self._loc.local:
            mlflow.log_artifact(str(Path(self._loc.path)), self._artifact_path)
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / PurePosixPath(self._loc.path).name
            self._loc.invalidate()
            self._loc.fs.get_file(self._loc.path, str(local))
            mlflow.log_artifact(str(local), self._artifact_path)

    def _exists(self) -> bool:
        return self._inner.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._loc.url, "artifact_path": self._artifact_path, "type": type(self._inner).__name__}


_EXPERT_FILE = re.compile(r"expert_(\d+)\.safetensors")
#: prefix of a bank's folder under an expert folder (``bank-<key>``: one per data and expert settings)
BANK_PREFIX = "bank-"


def _expert_files(loc: _Location, folder: str | None = None) -> dict[int, str]:
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


def _remote_checksum(loc: _Location, path: str) -> str:
    """What identifies a remote file's content: its ETag / checksum as the store reports it (an
    S3 ETag is the MD5 of the bytes; :func:`galaxy_distillation.storage.content_tag`), never the size alone."""
    from galaxy_distillation.storage import content_tag

    return content_tag(loc.fs.info(path))


class ExpertShelf:
    """The expert banks in one folder (``06_models/experts/<dataset>_<plain|aug>``).

    Experts are append-only: each bank is the subfolder ``bank-<key>`` of one (training data,
    expert settings) pair (:func:`galaxy_distillation.pipelines.teacher.nodes.bank_name`), so
    experts for other data or settings go beside the others, never over them, and nothing is
    ever deleted. Experts written before banks were keyed lie in the folder itself (bank ``""``).
    ``bank(name, n)`` opens a bank (mirrored into the local cache from an object store);
    ``inventory(name)`` reads its experts' headers only. Pickled as where it was loaded from.
    """

    def __init__(self, url: str, credentials: dict[str, Any] | None = None, cache_dir: str | None = None) -> None:
        self.url, self.credentials, self.cache_dir = str(url), credentials, cache_dir
        self._loc = _Location(self.url, credentials)

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
        names = [""] if _expert_files(loc) else []
        for entry in loc.fs.ls(loc.path, detail=True):
            name = PurePosixPath(entry["name"]).name
            if entry.get("type") == "directory" and name.startswith(BANK_PREFIX) and \
                    _expert_files(loc, entry["name"]):
                names.append(name)
        return sorted(names)

    def inventory(self, name: str) -> dict[int, dict[str, Any]]:
        """``{index: meta}`` of bank ``name`` from the safetensors headers (no tensor read).

        Raises:
            ExpertError: a header could not be read (the file is named; nothing is treated as missing).
        """
        from galaxy_distillation.engine.trajectories import ExpertError

        out = {}
        for index, path in sorted(_expert_files(self._loc, self._folder(name)).items()):
            try:
                out[index] = json.loads(_read_header(self._loc, path).get("meta", "{}"))
            except (OSError, ValueError, struct.error) as exc:
                raise ExpertError(f"cannot read expert {self._loc.full(path)} ({type(exc).__name__}: {exc}); "
                                  f"nothing was changed: fix or move that file, then rerun") from None
        return out

    def bank(self, name: str, n: int | None = None) -> StoredExperts:
        """Bank ``name`` as an :class:`~galaxy_distillation.engine.trajectories.ExpertBank`, limited to its
        first ``n`` experts when given."""
        files = _expert_files(self._loc, self._folder(name))
        if not files:
            raise DatasetError(f"no experts in {self.location(name)}: run `kedro run --pipelines=teacher` first")
        folder = Path(self._folder(name)) if self._loc.local else self._mirror(name, files)
        bank = StoredExperts(folder, (self.url, self.credentials, self.cache_dir, name, n))
        return bank if n is None else bank.first(n)

    def _mirror(self, name: str, files: dict[int, str]) -> Path:
        """Copy bank ``name`` into the local cache: a file is downloaded (to a temporary file, then
        renamed) unless the cached copy was made from the same remote content (ETag/checksum)."""
        from galaxy_distillation.storage import cache_folder

        cache = cache_folder(self.location(name), self.cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        wanted = {PurePosixPath(p).name: p for p in files.values()}
        for old in cache.glob("expert_*.safetensors"):
            if old.name not in wanted:  # a cache copy only: the bank itself is never changed
                old.unlink()
        for file_name, remote in wanted.items():
            local, stamp = cache / file_name, cache / f".{file_name}.checksum"
            checksum = _remote_checksum(self._loc, remote)
            if local.exists() and stamp.exists() and stamp.read_text() == checksum:
                continue
            with atomic_path(local) as tmp:
                self._loc.fs.get_file(remote, str(tmp))
            write_bytes(stamp, checksum.encode())
        return cache


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


class ExpertTrajectoriesDataset(AbstractDataset[dict[str, Any], Any]):
    """A folder of expert banks (:class:`ExpertShelf`), saved one expert at a time, loaded lazily.

    ``save`` takes one chunk at a time (the teacher node is a generator, so experts are
    written as they finish and never all held in memory): ``{"bank": name, "index": i,
    "trajectory": Trajectory}`` writes expert ``i`` of bank ``name``; ``{"bank": name, "keep":
    [i, ...]}`` (the experts reused) writes nothing. Nothing is ever deleted or replaced: an
    expert file that is already there is refused. ``load`` returns the :class:`ExpertShelf`;
    the stages pick the bank of their data and settings
    (:func:`galaxy_distillation.pipelines.teacher.nodes.experts_for`).
    """

    def __init__(self, path: str, credentials: dict[str, Any] | None = None, cache_dir: str | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._loc = _Location(path, credentials)
        self._credentials = credentials
        self._cache_dir = cache_dir
        self.metadata = metadata

    def load(self) -> Any:
        shelf = ExpertShelf(self._loc.url, self._credentials, self._cache_dir)
        if not shelf.names():
            raise DatasetError(f"no experts in {self._loc.url}: run `kedro run --pipelines=teacher` first")
        return shelf

    def save(self, data: dict[str, Any]) -> None:
        if "keep" in data:
            return  # the experts reused stay as they are; nothing is deleted
        from galaxy_distillation.engine.trajectories import ExpertError, save_trajectory

        index, name = int(data["index"]), str(data.get("bank", ""))
        folder = self._loc.join(name) if name else self._loc.path
        target = str(PurePosixPath(folder, f"expert_{index:04d}.safetensors"))
        self._loc.invalidate()
        if self._loc.exists(target):
            raise ExpertError(f"refusing to replace the expert {self._loc.full(target)} (experts are append-only)")
        if self._loc.local:
            save_trajectory(data["trajectory"], target)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / "expert.safetensors"
                save_trajectory(data["trajectory"], local)
                self._loc.put_file(local, target)
        self._loc.invalidate()

    def _exists(self) -> bool:
        return bool(ExpertShelf(self._loc.url, self._credentials, self._cache_dir).names())

    def _describe(self) -> dict[str, Any]:
        return {"path": self._loc.url}


class ExpertInventoryDataset(AbstractDataset[None, Any]):
    """The experts already in a folder of :class:`ExpertTrajectoriesDataset`: its
    :class:`ExpertShelf`, whose ``inventory(bank)`` reads the safetensors headers only (a header
    that cannot be read is an error, never a missing expert). Read-only. The teacher uses it to
    train only the experts that are missing.
    """

    def __init__(self, path: str, credentials: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._loc = _Location(path, credentials)
        self._credentials = credentials
        self.metadata = metadata

    def load(self) -> ExpertShelf:
        return ExpertShelf(self._loc.url, self._credentials)

    def save(self, data: Any) -> None:
        raise DatasetError("the expert inventory is read-only (the teacher writes expert_trajectories)")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": self._loc.url}


class VoteCatalogueDataset(AbstractDataset[None, Any]):
    """A GZ2 vote catalogue (Hart 2016 or Willett 2013; .csv or .csv.gz), read-only.

    Loads the canonical frame of :func:`galaxy_distillation.curation.catalogue.read_vote_catalogue`
    with the read report in ``frame.attrs["read_info"]``.
    """

    def __init__(self, filepath: str, fraction: str = "fraction", credentials: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._loc = _Location(filepath, credentials)
        self._fraction = fraction
        self.metadata = metadata

    def load(self) -> Any:
        from galaxy_distillation.curation.catalogue import read_vote_catalogue

        if self._loc.local:
            frame, info = read_vote_catalogue(Path(self._loc.path), fraction=self._fraction)
        else:
            if not self._loc.exists():
                from galaxy_distillation.curation.errors import CatalogueNotFoundError

                raise CatalogueNotFoundError(f"vote catalogue not found: {self._loc.url}")
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / PurePosixPath(self._loc.path).name  # keeps .csv / .csv.gz
                self._loc.fs.get_file(self._loc.path, str(local))
                frame, info = read_vote_catalogue(local, fraction=self._fraction)
            info["path"] = self._loc.url
        frame.attrs["read_info"] = info
        return frame

    def save(self, data: Any) -> None:
        """The sky pipeline's notice that the catalogue is in place (it wrote the mock sky, or real
        data is configured): checks the file exists; never writes (the catalogue is an input)."""
        if not isinstance(data, dict) or "mode" not in data:
            raise DatasetError("the vote catalogue is an input: only the sky pipeline's notice can be saved to it")
        self._loc.invalidate()
        if not self._loc.exists():
            raise DatasetError(f"vote catalogue not found after the sky pipeline ({data['mode']} mode): {self._loc.url}")

    def _exists(self) -> bool:
        return self._loc.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._loc.url, "fraction": self._fraction}


class ModelInputDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """The labelled images the teacher, distill and evaluation stages train on.

    ``dataset`` selects the source: ``gz2`` reads the curated galaxies written by the curation
    pipeline (plain or rotation-augmented training set, by ``augmented``); ``cifar10``,
    ``cifar100`` and ``imagefolder`` read benchmark data from ``data_root``.

    Loads ``{"train_x", "train_y", "test_x", "test_y"}`` (uint8 images, int64 labels) plus
    ``class_names``, per-channel ``mean``/``std`` of the training images in [0, 1], ``name``
    and ``augmented``. Saving is for the curation pipeline (GZ2 only): ``{"train": {...},
    "train_augmented": {...}, "test": {...}, "meta": {...}}`` with ``images``/``labels``.
    """

    _SPLITS = ("train", "train_augmented", "test")

    def __init__(
        self,
        dataset: str = "gz2",
        gz2_dir: str = "data/05_model_input/gz2",
        augmented: Any = False,
        data_root: str = "data/01_raw/benchmarks",
        image_size: int = 32,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._dataset = str(dataset)
        self._gz2 = _Location(gz2_dir, credentials)
        self._protocol = self._gz2.protocol  # what galaxy_distillation.outputs guards: local folders only
        self._gz2_dir = Path(self._gz2.path) if self._gz2.local else None
        self._augmented = parse_flag(augmented)
        self._data_root = Path(data_root)
        self._image_size = int(image_size)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        if self._dataset == "gz2":
            return self._load_gz2()
        from galaxy_distillation.curation.stats import channel_stats
        from galaxy_distillation.datasources import load_datasource

        if self._dataset == "imagefolder":
            source = load_datasource("imagefolder", root=self._data_root, image_size=self._image_size)
        else:
            source = load_datasource(self._dataset, data_root=self._data_root)
        stats = channel_stats(source.train_x)
        return {
            "train_x": source.train_x,
            "train_y": source.train_y,
            "test_x": source.test_x,
            "test_y": source.test_y,
            "class_names": list(source.class_names),
            "mean": stats["mean"],
            "std": stats["std"],
            "name": source.name,
            "augmented": False,
            "source_report": source.report,
        }

    def _load_gz2(self) -> dict[str, Any]:
        loc = self._gz2
        if not loc.exists(loc.join("meta.json")):
            raise DatasetError(
                f"no curated GZ2 data in {loc.url}: run `kedro run --pipelines=curation` first"
            )
        meta = json.loads(loc.read_bytes(loc.join("meta.json")))
        train_split = "train_augmented" if self._augmented else "train"
        train = load_bytes(loc.read_bytes(loc.join(f"{train_split}.safetensors")))
        test = load_bytes(loc.read_bytes(loc.join("test.safetensors")))
        stats = meta["normalisation"]["train_augmented" if self._augmented else "train"]
        return {
            "train_x": train["images"],
            "train_y": train["labels"],
            "test_x": test["images"],
            "test_y": test["labels"],
            "class_names": meta["class_names"],
            "mean": stats["mean"],
            "std": stats["std"],
            "name": "gz2",
            "augmented": self._augmented,
        }

    def save(self, data: dict[str, Any]) -> None:
        missing = [s for s in (*self._SPLITS, "meta") if s not in data]
        if missing:
            raise DatasetError(f"model_input save needs {missing}")
        loc = self._gz2
        for split in self._SPLITS:
            tensors = {k: v.contiguous() for k, v in data[split].items()}
            loc.write_bytes(save_bytes(tensors), loc.join(f"{split}.safetensors"))
        # meta.json last: its presence marks a complete model input
        loc.write_bytes(json.dumps(data["meta"], indent=2).encode(), loc.join("meta.json"))
        loc.invalidate()

    def _exists(self) -> bool:
        return self._dataset != "gz2" or self._gz2.exists(self._gz2.join("meta.json"))

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset, "gz2_dir": self._gz2.url, "augmented": self._augmented}
