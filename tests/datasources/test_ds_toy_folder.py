"""make_toy_image_folder: round trip through load_image_folder, determinism, learnability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from galaxy_distillation.datasources import DataSourceError, load_image_folder, make_toy_image_folder


def test_toy_folder_round_trip(tmp_path: Path) -> None:
    root = make_toy_image_folder(tmp_path / "toy", n_classes=3, n_per_class=10, size=16, seed=0)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert classes == ["00_disc", "01_square", "02_triangle"]
    files = sorted((root / "00_disc").iterdir())
    assert len(files) == 10 and {f.suffix for f in files} == {".png", ".jpg"}

    ds = load_image_folder(root, image_size=16, progress=False)
    assert ds.class_names == classes and ds.name == "imagefolder:toy"
    assert ds.report["train_counts"] == dict.fromkeys(classes, 8)
    assert ds.report["test_counts"] == dict.fromkeys(classes, 2)
    assert ds.report["n_ignored_files"] == 0  # the hidden parameter file is not counted
    # lossless files come back pixel for pixel (same size: crop/resize are identities)
    everything = torch.cat([ds.train_x, ds.test_x])
    for png in root.glob("*/*.png"):
        arr = torch.from_numpy(np.array(Image.open(png).convert("RGB"))).permute(2, 0, 1)
        assert (everything == arr).flatten(1).all(1).sum() == 1


def test_toy_folder_split_layout_and_reuse(tmp_path: Path) -> None:
    root = make_toy_image_folder(tmp_path / "toy", n_classes=2, n_per_class=10, size=12, split=True)
    ds = load_image_folder(root, image_size=12, progress=False)
    assert ds.report["layout"] == "pre-split"
    assert ds.report["train_counts"] == {"00_disc": 8, "01_square": 8}
    assert ds.report["test_counts"] == {"00_disc": 2, "01_square": 2}
    # same parameters: folder reused untouched; different ones: refused
    before = sorted(p.stat().st_mtime_ns for p in root.rglob("*.png"))
    assert make_toy_image_folder(root, n_classes=2, n_per_class=10, size=12, split=True) == root
    assert sorted(p.stat().st_mtime_ns for p in root.rglob("*.png")) == before
    with pytest.raises(DataSourceError, match="not empty"):
        make_toy_image_folder(root, n_classes=3, n_per_class=10, size=12, split=True)


def test_toy_folder_is_deterministic(tmp_path: Path) -> None:
    a = make_toy_image_folder(tmp_path / "a", n_classes=2, n_per_class=4, size=10, seed=5)
    b = make_toy_image_folder(tmp_path / "b", n_classes=2, n_per_class=4, size=10, seed=5)
    c = make_toy_image_folder(tmp_path / "c", n_classes=2, n_per_class=4, size=10, seed=6)
    pngs = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in pngs)
    assert any((a / p).read_bytes() != (c / p).read_bytes() for p in pngs)


def test_toy_classes_learnable_but_one_image_is_weak(tmp_path: Path) -> None:
    """Nearest class mean on raw pixels is good; a single random image per class is much worse."""
    root = make_toy_image_folder(tmp_path / "toy", n_classes=4, n_per_class=40, size=16, seed=0)
    ds = load_image_folder(root, image_size=16, progress=False)
    x, xt = ds.train_x.float().flatten(1) / 255, ds.test_x.float().flatten(1) / 255
    y, yt = ds.train_y, ds.test_y
    centroids = torch.stack([x[y == k].mean(0) for k in range(4)])
    centroid_acc = (torch.cdist(xt, centroids).argmin(1) == yt).float().mean().item()
    gen = torch.Generator().manual_seed(0)
    single = []
    for _ in range(30):
        idx = torch.stack([torch.nonzero(y == k).flatten()[torch.randint(int((y == k).sum()), (1,), generator=gen)][0] for k in range(4)])
        single.append((torch.cdist(xt, x[idx]).argmin(1) == yt).float().mean().item())
    assert centroid_acc >= 0.85
    assert np.mean(single) < centroid_acc - 0.2
    assert np.mean(single) > 0.25  # still better than chance: classes are visible in one image


def test_toy_folder_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="n_classes"):
        make_toy_image_folder(tmp_path / "x", n_classes=0)
    with pytest.raises(DataSourceError, match="n_per_class"):
        make_toy_image_folder(tmp_path / "x", n_per_class=1, split=True)
    with pytest.raises(DataSourceError, match="size"):
        make_toy_image_folder(tmp_path / "x", size=4)
