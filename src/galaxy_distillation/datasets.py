"""Kedro datasets for tensors, expert trajectories and GZ2 vote catalogues.

These are the only Kedro-aware I/O pieces; the numerical code never imports Kedro.
Nothing here unpickles arbitrary objects: tensors go through safetensors, metadata
through JSON.

Every path may be a local path or any fsspec URL (``s3://bucket/prefix/...``,
``gs://...``, ``file:///...``), reached through :class:`galaxy_distillation.storage.Location`;
``credentials`` are passed to the filesystem (without them, s3fs reads the standard ``AWS_*``
variables). Writes are atomic where the filesystem allows: locally a temporary file renamed
into place, on an object store one PUT (or one completed multipart upload), so an
interrupted run never leaves a half-written file. The expert banks behind the expert datasets
are :class:`galaxy_distillation.storage.shelf.ExpertShelf`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from kedro.io import AbstractDataset, DatasetError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from safetensors.torch import save_file

from galaxy_distillation.params import parse_flag
from galaxy_distillation.storage import Location, atomic_path
from galaxy_distillation.storage.shelf import ExpertShelf, safetensors_metadata

_META_KEY = "gd_meta_json"


class TensorDictDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """A dict of tensors (plus an optional JSON-able ``"meta"`` dict) in one safetensors file.

    Images are stored as given (uint8 stays uint8: 4x smaller than float32). Saving is atomic
    (see the module docstring), so an interrupted run never leaves a half-written file behind.
    """

    def __init__(self, filepath: str, credentials: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._loc = Location(filepath, credentials)
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
        self._loc = Location(str(config["filepath"]), config.get("credentials"))
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
        self._loc = Location(path, credentials)
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
        self._loc = Location(path, credentials)
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
        self._loc = Location(filepath, credentials)
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
        self._gz2 = Location(gz2_dir, credentials)
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
