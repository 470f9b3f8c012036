"""CIFAR-10/100 loading from tiny home-made copies in the official pickle format.

torchvision (0.29) reads ``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch}``:
pickled dicts with ``"data"`` (uint8 ``(n, 3072)``, channel-major rows) and
``"labels"`` (``"fine_labels"`` for CIFAR-100), plus a meta pickle with
``"label_names"`` (``"fine_label_names"``). Our files cannot match the official md5s and
the loader has no option to skip them, so each test registers its tiny copy's own md5s
(``trust``: a reader subclass in ``cifar._READERS``); one test checks that files failing
their md5 are rejected with a clear error and never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar

from galaxy_distillation.datasources import DataSourceError, cifar, load_cifar, load_datasource

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def trust(monkeypatch: pytest.MonkeyPatch, name: str, root: Path) -> None:
    """Register the md5s of the files now under ``root`` as the release checksums of ``name``."""
    base = cifar._READERS[name]
    folder = root / base.base_folder

    def md5(fname: str) -> str:
        path = folder / fname
        return hashlib.md5(path.read_bytes()).hexdigest() if path.exists() else "0" * 32

    tiny = type(f"Tiny{base.__name__}", (base,), {
        "train_list": [[f, md5(f)] for f, _ in base.train_list],
        "test_list": [[f, md5(f)] for f, _ in base.test_list],
        "meta": {**base.meta, "md5": md5(base.meta["filename"])},
    })
    monkeypatch.setitem(cifar._READERS, name, tiny)


def write_tiny_cifar10(root: Path, n_per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict:
    """Write a tiny CIFAR-10 copy under ``root``; return the arrays written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_data, train_labels = [], []
    for b in range(1, 6):
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n_per_batch)]
        _dump(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "data": data, "labels": labels})
        train_data.append(data)
        train_labels += labels
    test_data = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_labels = [int(v) for v in rng.integers(0, 10, size=n_test)]
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": test_data, "labels": test_labels})
    _dump(folder / "batches.meta", {"label_names": CIFAR10_NAMES, "num_cases_per_batch": n_per_batch, "num_vis": 3072})
    return {
        "train_data": np.concatenate(train_data),
        "train_labels": train_labels,
        "test_data": test_data,
        "test_labels": test_labels,
    }


def write_tiny_cifar100(root: Path, n_train: int = 12, n_test: int = 5, seed: int = 1) -> dict:
    """Write a tiny CIFAR-100 copy under ``root``; return the arrays written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=n)]
        coarse = [f // 5 for f in fine]
        _dump(folder / split, {"filenames": [f"{i}.png" for i in range(n)], "data": data, "fine_labels": fine, "coarse_labels": coarse})
        out[split] = (data, fine)
    _dump(folder / "meta", {"fine_label_names": [f"fine_{i}" for i in range(100)],
                            "coarse_label_names": [f"coarse_{i}" for i in range(20)]})
    return out


def test_cifar10_tiny_copy_loads_with_layout_labels_and_report(tmp_path: Path, monkeypatch) -> None:
    written = write_tiny_cifar10(tmp_path)
    trust(monkeypatch, "cifar10", tmp_path)
    ds = load_cifar("cifar10", tmp_path)
    assert ds.name == "cifar10"
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.train_x.dtype == torch.uint8
    assert ds.test_x.shape == (6, 3, 32, 32)
    assert ds.train_y.dtype == torch.int64 and ds.train_y.tolist() == written["train_labels"]
    assert ds.test_y.tolist() == written["test_labels"]
    # CIFAR rows are channel-major: R plane, G plane, B plane, each row-major 32x32
    expected = torch.from_numpy(written["train_data"].reshape(-1, 3, 32, 32))
    assert torch.equal(ds.train_x, expected)
    assert torch.equal(ds.test_x, torch.from_numpy(written["test_data"].reshape(-1, 3, 32, 32)))
    assert ds.train_x.is_contiguous()
    assert ds.class_names == CIFAR10_NAMES
    assert (ds.num_classes, ds.channels, ds.im_size) == (10, 3, (32, 32))
    assert ds.report["checksums_verified"] is True
    assert sum(ds.report["train_counts"].values()) == 20
    assert ds.report["train_counts"] == ds.class_counts("train")
    json.dumps(ds.report)


def test_cifar100_tiny_copy_uses_fine_labels(tmp_path: Path, monkeypatch) -> None:
    written = write_tiny_cifar100(tmp_path)
    trust(monkeypatch, "cifar100", tmp_path)
    ds = load_datasource("CIFAR100", data_root=tmp_path)
    assert ds.name == "cifar100"
    assert ds.num_classes == 100 and ds.class_names[:2] == ["fine_0", "fine_1"]
    assert ds.train_x.shape == (12, 3, 32, 32) and ds.test_x.shape == (5, 3, 32, 32)
    assert ds.train_y.tolist() == written["train"][1]
    assert torch.equal(ds.test_x, torch.from_numpy(written["test"][0].reshape(-1, 3, 32, 32)))


def test_missing_cifar_error_says_where_layout_and_how(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError) as err:
        load_cifar("cifar10", tmp_path / "nowhere")
    msg = str(err.value)
    assert "\n" not in msg
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "data_batch_1" in msg and "batches.meta" in msg
    assert "download=true" not in msg and "cs.toronto.edu" in msg  # no hint at an option that does not exist
    with pytest.raises(DataSourceError, match="cifar-100-python"):
        load_cifar("cifar100", tmp_path)


def test_partial_copy_names_missing_files(tmp_path: Path, monkeypatch) -> None:
    write_tiny_cifar10(tmp_path)
    trust(monkeypatch, "cifar10", tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataSourceError, match=r"missing: data_batch_3\)"):
        load_cifar("cifar10", tmp_path)


def test_files_failing_their_checksum_are_rejected_and_never_unpickled(tmp_path: Path, monkeypatch) -> None:
    write_tiny_cifar10(tmp_path)
    unpickled = []
    real_load = pickle.load
    monkeypatch.setattr(pickle, "load", lambda *a, **k: unpickled.append(1) or real_load(*a, **k))
    with pytest.raises(DataSourceError, match="checksums") as err:
        load_cifar("cifar10", tmp_path)
    assert unpickled == []
    assert "not read" in str(err.value) and "\n" not in str(err.value)
    assert "verify_checksums" not in str(err.value)
    with pytest.raises(TypeError):  # no way to skip the check
        load_cifar("cifar10", tmp_path, verify_checksums=False)


def test_unknown_cifar_name(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="allowed: cifar10, cifar100"):
        load_cifar("cifar11", tmp_path)


def test_malformed_pickle_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    write_tiny_cifar10(tmp_path)
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", {"data": np.zeros((2, 3072), np.uint8)})  # no labels
    trust(monkeypatch, "cifar10", tmp_path)
    with pytest.raises(DataSourceError, match="malformed"):
        load_cifar("cifar10", tmp_path)


def test_labels_outside_meta_classes_rejected(tmp_path: Path, monkeypatch) -> None:
    write_tiny_cifar10(tmp_path)
    _dump(tmp_path / "cifar-10-batches-py" / "batches.meta", {"label_names": ["a", "b"]})
    trust(monkeypatch, "cifar10", tmp_path)
    with pytest.raises(DataSourceError, match="names 2 classes"):
        load_cifar("cifar10", tmp_path)


def test_download_failure_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataSourceError, match="download into .* failed .*network unreachable"):
        load_cifar("cifar10", tmp_path, download=True)


def test_download_true_fetches_then_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(url, download_root, **kwargs):
        calls.append(url)
        write_tiny_cifar10(Path(download_root))

    write_tiny_cifar10(tmp_path / "reference")  # same seed, same bytes: their md5s are the "release"
    trust(monkeypatch, "cifar10", tmp_path / "reference")
    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fake_download)
    ds = load_cifar("cifar10", tmp_path / "new", download=True)
    assert len(calls) == 1 and calls[0].endswith("cifar-10-python.tar.gz")
    assert ds.train_x.shape == (20, 3, 32, 32)
    # files now present: a second call must not download again
    load_cifar("cifar10", tmp_path / "new", download=True)
    assert len(calls) == 1
