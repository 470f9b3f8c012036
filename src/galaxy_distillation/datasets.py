"""Kedro datasets for tensors, expert trajectories and GZ2 vote catalogues.

These are the only Kedro-aware I/O pieces; the numerical code never imports Kedro.
Nothing here unpickles arbitrary objects: tensors go through safetensors, metadata
through JSON.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from kedro.io import AbstractDataset, DatasetError
from safetensors.torch import load_file, save_file

from galaxy_distillation.io import atomic_path, write_text
from galaxy_distillation.params import parse_flag

_META_KEY = "gd_meta_json"


class TensorDictDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """A dict of tensors (plus an optional JSON-able ``"meta"`` dict) in one safetensors file.

    Images are stored as given (uint8 stays uint8: 4x smaller than float32). Saving is atomic
    (written to a temporary file, then renamed), so an interrupted run never leaves a
    half-written file behind.
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        if not self._filepath.exists():
            raise DatasetError(f"{self._filepath} does not exist: run the pipeline that produces it first")
        tensors: dict[str, Any] = dict(load_file(str(self._filepath)))
        from safetensors import safe_open

        with safe_open(str(self._filepath), framework="pt") as handle:
            meta = (handle.metadata() or {}).get(_META_KEY)
        if meta is not None:
            tensors["meta"] = json.loads(meta)
        return tensors

    def save(self, data: dict[str, Any]) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in data.items() if isinstance(v, torch.Tensor)}
        others = {k: v for k, v in data.items() if not isinstance(v, torch.Tensor)}
        if set(others) - {"meta"}:
            raise DatasetError(f"TensorDictDataset stores tensors and a 'meta' dict only, got {sorted(others)}")
        metadata = {_META_KEY: json.dumps(others.get("meta", {}))}
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self._filepath) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class ExpertTrajectoriesDataset(AbstractDataset[dict[str, Any], Any]):
    """A folder of expert trajectories, saved one expert at a time, loaded lazily.

    ``save`` takes one chunk ``{"index": i, "trajectory": Trajectory}`` (the teacher node is a
    generator, so experts are written as they finish and never all held in memory); index 0
    clears experts left from an earlier run. ``load`` returns an :class:`ExpertBank`.
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Any:
        from galaxy_distillation.engine.experts import ExpertBank

        if not self._path.is_dir() or not any(self._path.glob("expert_*")):
            raise DatasetError(f"no experts in {self._path}: run `kedro run --pipelines=teacher` first")
        return ExpertBank(self._path)

    def save(self, data: dict[str, Any]) -> None:
        from galaxy_distillation.engine.experts import save_trajectory

        index = int(data["index"])
        if index == 0 and self._path.exists():
            shutil.rmtree(self._path)
        self._path.mkdir(parents=True, exist_ok=True)
        save_trajectory(data["trajectory"], self._path / f"expert_{index:04d}.safetensors")

    def _exists(self) -> bool:
        return self._path.is_dir() and any(self._path.glob("expert_*"))

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class VoteCatalogueDataset(AbstractDataset[None, Any]):
    """A GZ2 vote catalogue (Hart 2016 or Willett 2013; .csv or .csv.gz), read-only.

    Loads the canonical frame of :func:`galaxy_distillation.curation.catalogue.read_vote_catalogue`
    with the read report in ``frame.attrs["read_info"]``.
    """

    def __init__(self, filepath: str, fraction: str = "fraction", metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self._fraction = fraction
        self.metadata = metadata

    def load(self) -> Any:
        from galaxy_distillation.curation.catalogue import read_vote_catalogue

        frame, info = read_vote_catalogue(self._filepath, fraction=self._fraction)
        frame.attrs["read_info"] = info
        return frame

    def save(self, data: Any) -> None:
        raise DatasetError("the vote catalogue is an input: it is never written by the pipeline")

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "fraction": self._fraction}


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
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._dataset = str(dataset)
        self._gz2_dir = Path(gz2_dir)
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
        meta_path = self._gz2_dir / "meta.json"
        if not meta_path.exists():
            raise DatasetError(
                f"no curated GZ2 data in {self._gz2_dir}: run `kedro run --pipelines=curation` first"
            )
        meta = json.loads(meta_path.read_text())
        train_split = "train_augmented" if self._augmented else "train"
        train = load_file(str(self._gz2_dir / f"{train_split}.safetensors"))
        test = load_file(str(self._gz2_dir / "test.safetensors"))
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
        self._gz2_dir.mkdir(parents=True, exist_ok=True)
        for split in self._SPLITS:
            tensors = {k: v.contiguous() for k, v in data[split].items()}
            with atomic_path(self._gz2_dir / f"{split}.safetensors") as tmp:
                save_file(tensors, str(tmp))
        write_text(self._gz2_dir / "meta.json", json.dumps(data["meta"], indent=2))

    def _exists(self) -> bool:
        return self._dataset != "gz2" or (self._gz2_dir / "meta.json").exists()

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset, "gz2_dir": str(self._gz2_dir), "augmented": self._augmented}
