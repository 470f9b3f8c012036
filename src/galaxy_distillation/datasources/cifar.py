"""CIFAR-10 / CIFAR-100 from a local copy (the standard python-pickle release).

Files are read through ``torchvision.datasets.CIFAR10`` / ``CIFAR100`` and converted in
one go from the dataset's ``(N, 32, 32, 3)`` numpy ``.data`` array (no per-image PIL
round trip). Images stay raw ``uint8``; mean/std normalisation and the ZCA whitening
the paper uses for CIFAR are applied later by the engine, not here.

Expected layout (what ``torchvision`` extracts from the official archives)::

    <data_root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <data_root>/cifar-100-python/{train, test, meta}

The files are Python pickles, so they are only read after ``torchvision`` has checked the
md5 of every one of them against the official release; there is no option to skip that
(unpickling an unverified file can run arbitrary code). The tests register tiny
home-made files by their own md5 (a reader subclass in ``_READERS``), never by skipping
the check.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100

from .base import DataSourceError, LabelledImages

__all__ = ["CIFAR_NAMES", "load_cifar"]


_READERS: dict[str, type[CIFAR10]] = {
    # name: reader (torchvision verifies every file's md5 before unpickling it)
    "cifar10": CIFAR10,
    "cifar100": CIFAR100,
}
CIFAR_NAMES: tuple[str, ...] = tuple(_READERS)


def _expected_files(reader: type[CIFAR10]) -> list[str]:
    """File names (inside ``reader.base_folder``) of one CIFAR release, meta file last."""
    return [f for f, _ in reader.train_list + reader.test_list] + [reader.meta["filename"]]


def _missing_message(name: str, data_root: Path, reader: type[CIFAR10], missing: list[str]) -> str:
    """One-line explanation of where CIFAR was looked for and how to get it."""
    folder = data_root / reader.base_folder
    expected = ", ".join(_expected_files(reader))
    return (
        f"{name} not found: looked in {folder} (missing: {', '.join(missing)}); expected "
        f"layout {folder}/{{{expected}}}; download {reader.url} and extract it into {data_root}"
    )


def _to_tensors(ds: CIFAR10) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a torchvision CIFAR dataset to ``(N, 3, 32, 32)`` uint8 and ``(N,)`` int64."""
    data = np.asarray(ds.data)
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[1:] != (32, 32, 3):
        raise DataSourceError(
            f"unexpected CIFAR array: dtype {data.dtype}, shape {data.shape} (want uint8 (N, 32, 32, 3))"
        )
    x = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
    y = torch.as_tensor(np.asarray(ds.targets, dtype=np.int64))
    if y.shape != (x.shape[0],):
        raise DataSourceError(f"CIFAR file holds {x.shape[0]} images but {y.shape[0]} labels")
    return x, y


def load_cifar(
    name: str,
    data_root: str | Path,
    download: bool = False,
) -> LabelledImages:
    """Load CIFAR-10 or CIFAR-100 (standard 50k/10k train/test split) as uint8 tensors.

    Args:
        name: ``"cifar10"`` or ``"cifar100"`` (case-insensitive). CIFAR-100 uses the 100
            fine labels.
        data_root: folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/``.
        download: fetch and extract the official archive into ``data_root`` when the
            files are missing (needs internet).

    Returns:
        :class:`LabelledImages` with ``train_x`` ``(50000, 3, 32, 32)`` and ``test_x``
        ``(10000, 3, 32, 32)`` uint8 (for the official release), int64 labels, the
        release's class names, ``name`` = ``"cifar10"`` / ``"cifar100"``. No
        normalisation or ZCA whitening is applied here (the engine does it).

    Raises:
        DataSourceError: unknown ``name``; files missing and ``download`` is False (the
            message says where it looked, the expected layout and how to get the data);
            download failed; checksum mismatch; unreadable or malformed files.
    """
    key = str(name).strip().lower()
    if key not in _READERS:
        raise DataSourceError(f"unknown CIFAR dataset {name!r}; allowed: {', '.join(CIFAR_NAMES)}")
    reader = _READERS[key]
    root = Path(data_root).expanduser()
    folder = root / reader.base_folder

    missing = [f for f in _expected_files(reader) if not (folder / f).is_file()]
    if missing and not download:
        raise DataSourceError(_missing_message(key, root, reader, missing))
    if missing:
        try:
            root.mkdir(parents=True, exist_ok=True)
            reader(str(root), train=True, download=True)
        except Exception as exc:  # network, disk, bad archive: all reported in one line
            raise DataSourceError(
                f"{key}: download into {root} failed ({type(exc).__name__}: {exc}); "
                f"download {reader.url} manually and extract it into {root}"
            ) from None

    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    classes: list[Any] = []
    for split, train in (("train", True), ("test", False)):
        try:
            ds = reader(str(root), train=train, download=False)
        except RuntimeError as exc:
            if "corrupted" in str(exc) or "not found" in str(exc):
                raise DataSourceError(
                    f"{key}: files in {folder} do not match the official release checksums "
                    f"(corrupted, partial or re-packed copy?); they were not read: delete them and "
                    f"extract {reader.url} again"
                ) from None
            raise DataSourceError(f"{key}: could not read {folder} ({exc})") from None
        except (KeyError, ValueError, EOFError, pickle.UnpicklingError, TypeError) as exc:
            raise DataSourceError(
                f"{key}: malformed file in {folder} ({type(exc).__name__}: {exc})"
            ) from None
        splits[split] = _to_tensors(ds)
        classes = list(ds.classes)

    train_x, train_y = splits["train"]
    test_x, test_y = splits["test"]
    k = len(classes)
    for split, y in (("train", train_y), ("test", test_y)):
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            raise DataSourceError(
                f"{key}: {split} labels span [{int(y.min())}, {int(y.max())}] but the meta file "
                f"names {k} classes"
            )
    class_names = [str(c) for c in classes]
    report: dict[str, Any] = {
        "source": key,
        "folder": str(folder),
        "checksums_verified": True,
        "num_classes": k,
        "image_size": [32, 32],
        "n_train": int(train_y.numel()),
        "n_test": int(test_y.numel()),
        "train_counts": dict(
            zip(class_names, torch.bincount(train_y, minlength=k).tolist(), strict=True)
        ),
        "test_counts": dict(
            zip(class_names, torch.bincount(test_y, minlength=k).tolist(), strict=True)
        ),
        "normalisation": "none here: raw uint8; mean/std and ZCA whitening applied by the engine",
    }
    return LabelledImages(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        class_names=class_names,
        name=key,
        report=report,
    )
