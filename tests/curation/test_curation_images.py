"""Image resolution, loading, geometry and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from curation_helpers import BIG_ID, asym_image
from PIL import Image

from galaxy_distillation.curation.errors import (
    CatalogueFormatError,
    MissingImagesError,
    UnreadableImageError,
)
from galaxy_distillation.curation.images import (
    area_resize,
    crop_center_half,
    load_image,
    load_split_tensors,
    rotate_then_crop,
    rotated_center_half,
)
from galaxy_distillation.curation.paths import read_filename_mapping, resolve_image_paths


def save(path: Path, arr: np.ndarray, mode: str | None = None, fmt: str = "JPEG") -> Path:
    im = Image.fromarray(arr)
    if mode is not None:
        im = im.convert(mode)
    im.save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


def test_mapping_and_resolve(tmp_path: Path):
    mapping_csv = tmp_path / "map.csv"
    mapping_csv.write_text(
        "objid,sample,asset_id\n"
        f"{BIG_ID},original,7\n{BIG_ID + 1},original,8\n{BIG_ID + 1},extra,9\n{BIG_ID + 2},x,10\n"
    )
    mapping = read_filename_mapping(mapping_csv)
    assert mapping["objid"].dtype == np.int64 and mapping["objid"].iloc[0] == BIG_ID
    folder = tmp_path / "images"
    folder.mkdir()
    for a in (7, 9):  # 8 has no file but 9 (same objid) does; 10 missing
        save(folder / f"{a}.jpg", asym_image(32))
    sel = pd.DataFrame({"dr7objid": np.array([BIG_ID, BIG_ID + 1, BIG_ID + 2, BIG_ID + 3],
                                             dtype=np.int64), "label": [0, 1, 2, 3]})
    resolved, rep = resolve_image_paths(sel, mapping, folder, max_missing_fraction=0.5)
    assert resolved["dr7objid"].tolist() == [BIG_ID, BIG_ID + 1]
    assert resolved["asset_id"].tolist() == [7, 9]
    assert resolved["path"].tolist() == [str(folder / "7.jpg"), str(folder / "9.jpg")]
    assert rep["n_no_mapping"] == 1 and rep["n_no_file"] == 1 and rep["missing_fraction"] == 0.5
    with pytest.raises(MissingImagesError, match=r"2 of 4 .*images"):
        resolve_image_paths(sel, mapping, folder, max_missing_fraction=0.25)
    bad = tmp_path / "bad.csv"
    bad.write_text("objid,sample\n1,a\n")
    with pytest.raises(CatalogueFormatError, match="asset_id"):
        read_filename_mapping(bad)


def test_load_image_modes(tmp_path: Path):
    arr = asym_image(40)
    gray = load_image(save(tmp_path / "g.jpg", arr, "L"))
    rgba = load_image(save(tmp_path / "a.jpg", arr, "RGBA", fmt="PNG"))  # PNG content, .jpg name
    pal = load_image(save(tmp_path / "p.png", arr, "P", fmt="PNG"))
    for out in (gray, rgba, pal):
        assert out.dtype == np.uint8 and out.shape == (40, 40, 3)
    assert (gray[..., 0] == gray[..., 2]).all()
    np.testing.assert_array_equal(rgba, arr)
    corrupt = tmp_path / "c.jpg"
    corrupt.write_bytes(save(tmp_path / "ok.jpg", arr).read_bytes()[:200])
    with pytest.raises(UnreadableImageError, match="c.jpg"):
        load_image(corrupt)
    with pytest.raises(UnreadableImageError):
        load_image(tmp_path / "none.jpg")


def test_crop_and_area_resize():
    img = asym_image(424)
    crop = crop_center_half(img)
    assert crop.shape == (212, 212, 3)
    np.testing.assert_array_equal(crop, img[106:318, 106:318])
    assert crop_center_half(asym_image(50, 30)).shape == (26, 16, 3)
    block = np.kron(np.arange(16, dtype=np.uint8).reshape(4, 4) * 10,
                    np.ones((2, 2), dtype=np.uint8))[..., None].repeat(3, axis=2)
    np.testing.assert_array_equal(area_resize(block, 4)[..., 0],
                                  np.arange(16).reshape(4, 4) * 10)
    ramp = np.tile(np.array([0, 100, 200, 50], dtype=np.uint8), (4, 1))[..., None].repeat(3, 2)
    assert area_resize(ramp, 2)[0, 0, 0] == 50 and area_resize(ramp, 2)[0, 1, 0] == 125


@pytest.mark.parametrize("size", [424, 64, 63])
def test_rotation_matches_rot90(size: int):
    img = asym_image(size, seed=size)
    s = crop_center_half(img).shape[0]
    for k in (1, 2, 3):
        expect = np.rot90(crop_center_half(img), k)
        np.testing.assert_array_equal(rotate_then_crop(img, 90.0 * k, s), expect)
    np.testing.assert_array_equal(rotate_then_crop(img, 0, s), crop_center_half(img))
    np.testing.assert_array_equal(rotate_then_crop(img, 360, 16),
                                  area_resize(crop_center_half(img), 16))


@pytest.mark.parametrize("size", [424, 101])
def test_fast_rotation_equals_full_rotate_then_crop(size: int):
    rng = np.random.default_rng(size)
    img = (asym_image(size).astype(int) + rng.integers(0, 60, (size, size, 3))).clip(0, 255)
    img = img.astype(np.uint8)
    for angle in (36.0, 108.0, 17.5, -36.0):
        full = Image.fromarray(img).rotate(angle, resample=Image.Resampling.BILINEAR)
        ref = crop_center_half(np.asarray(full)).astype(int)
        got = rotated_center_half(img, angle)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1 and (got != ref).mean() < 0.01


@pytest.mark.parametrize("size", [424, 61])
def test_arbitrary_rotation_shows_no_corners(size: int):
    flat = np.full((size, size, 3), 200, dtype=np.uint8)
    for k in range(10):
        out = rotate_then_crop(flat, 36.0 * k, 32)
        assert out.min() >= 199, (k, out.min())  # black corners would give ~0
    # a 36 degree rotation really rotates: differs from the plain crop
    img = asym_image(size)
    assert np.abs(rotate_then_crop(img, 36, 32).astype(int) - rotate_then_crop(img, 0, 32)).mean() > 5


def _split_frame(tmp_path: Path) -> pd.DataFrame:
    folder = tmp_path / "img"
    folder.mkdir()
    paths = []
    for i in range(5):
        paths.append(save(folder / f"{i}.jpg", asym_image(64, seed=i)))
    paths.append(save(folder / "big.jpg", asym_image(424)))  # native size
    corrupt = folder / "bad.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    paths.insert(2, corrupt)
    return pd.DataFrame({"dr7objid": np.arange(100, 107, dtype=np.int64),
                         "label": np.array([0, 1, 2, 3, 4, 5, 6], dtype=np.int64),
                         "path": [str(p) for p in paths]})


def test_load_split_tensors_counts_and_rotations(tmp_path: Path):
    df = _split_frame(tmp_path)
    x1, y1, rep1 = load_split_tensors(df, 16, rotations=1, progress=False)
    assert x1.dtype == torch.uint8 and x1.shape == (6, 3, 16, 16)
    assert y1.tolist() == [0, 1, 3, 4, 5, 6]
    assert rep1["n_unreadable"] == 1 and rep1["unreadable_ids"] == [102]
    assert "bad.jpg" in rep1["unreadable_errors"][0]
    assert rep1["n_other_size"] == 5 and rep1["other_sizes"] == {"64x64": 5}
    x10, y10, rep10 = load_split_tensors(df, 16, rotations=10, progress=False)
    assert x10.shape == (60, 3, 16, 16) and rep10["ordering"] == "galaxy-major"
    assert y10.tolist() == [c for c in [0, 1, 3, 4, 5, 6] for _ in range(10)]
    assert torch.equal(x10[::10], x1)  # view k = 0 is the plain crop
    img = load_image(df["path"].iloc[1])
    expect = rotate_then_crop(img, 36.0 * 3, 16).transpose(2, 0, 1)
    assert torch.equal(x10[13], torch.from_numpy(np.ascontiguousarray(expect)))


def test_load_split_tensors_process_pool_same_order(tmp_path: Path):
    df = _split_frame(tmp_path)
    x1, y1, r1 = load_split_tensors(df, 8, rotations=2, progress=False)
    x2, y2, r2 = load_split_tensors(df, 8, rotations=2, progress=False, n_workers=2)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert r1["loaded_ids"] == r2["loaded_ids"] == [100, 101, 103, 104, 105, 106]
