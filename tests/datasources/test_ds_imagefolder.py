"""Image-folder loading: layouts, image modes/sizes, bad input, split determinism."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import galaxy_distillation.datasources.imagefolder as imagefolder
from galaxy_distillation.datasources import (
    DataSourceError,
    DataSourceWarning,
    LabelledImages,
    load_datasource,
    load_image_folder,
)


def _save(path: Path, img: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def _simple_folder(root: Path, counts: dict[str, int], size: int = 12) -> Path:
    """One class folder per entry, each holding ``n`` distinct RGB PNGs."""
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            arr = np.full((size, size, 3), (c * 50 + k) % 256, dtype=np.uint8)
            arr[0, 0] = (k, c, 7)
            _save(root / name / f"img_{k:03d}.png", Image.fromarray(arr))
    return root


def _load_quiet(*args, **kwargs) -> LabelledImages:
    kwargs.setdefault("progress", False)
    return load_image_folder(*args, **kwargs)


def test_modes_sizes_and_extensions_all_become_rgb_square(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    a, b = root / "alpha", root / "beta"
    _save(a / "grey.png", Image.new("L", (20, 30), 77))
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # fully transparent red -> black
    _save(a / "rgba.PNG", rgba)
    pal = Image.new("P", (17, 17), 0)
    pal.putpalette([10, 200, 30] + [0] * 765)
    _save(a / "palette.gif", pal)
    _save(a / "photo.JPEG", Image.new("RGB", (64, 48), (0, 0, 255)), quality=95)
    sixteen = Image.fromarray(np.full((25, 25), 257 * 100, dtype=np.uint16))  # 16-bit grey -> 100
    _save(b / "sixteen.png", sixteen)
    _save(b / "bitmap.bmp", Image.new("RGB", (9, 9), (1, 2, 3)))
    _save(b / "scan.tiff", Image.new("RGB", (33, 21), (4, 5, 6)))
    _save(b / "web.webp", Image.new("RGB", (16, 16), (7, 8, 9)), lossless=True)
    _save(b / "cmyk.jpg", Image.new("CMYK", (12, 12), (0, 0, 0, 0)))
    (b / "notes.txt").write_text("not an image")
    (b / "sub").mkdir()
    _save(b / "sub" / "nested.tif", Image.new("1", (10, 10), 1))

    ds = _load_quiet(root, image_size=8, test_fraction=0.25, seed=0)
    assert ds.class_names == ["alpha", "beta"]
    assert ds.train_x.shape[1:] == (3, 8, 8) and ds.test_x.shape[1:] == (3, 8, 8)
    assert ds.train_x.shape[0] + ds.test_x.shape[0] == 10
    rep = ds.report
    assert rep["n_unreadable"] == 0
    assert rep["n_ignored_files"] == 1 and rep["ignored_files"] == ["beta/notes.txt"]
    assert rep["n_distinct_original_sizes"] == 10
    assert [20, 30] in rep["original_sizes"] and [64, 48] in rep["original_sizes"]
    assert {"L", "RGBA", "P", "RGB", "CMYK", "1"} <= set(rep["original_modes"])
    json.dumps(rep)

    # conversions, checked on the single-image path
    def px(name: str) -> list[int]:
        arr, _, _ = imagefolder.load_rgb_image(name, 8)
        assert arr.shape == (8, 8, 3) and arr.dtype == np.uint8
        return arr[4, 4].tolist()

    assert px(a / "grey.png") == [77, 77, 77]
    assert px(a / "rgba.PNG") == [0, 0, 0]
    assert px(a / "palette.gif") == [10, 200, 30]
    assert px(b / "sixteen.png") == [100, 100, 100]
    assert px(b / "sub" / "nested.tif") == [255, 255, 255]
    assert px(b / "cmyk.jpg") == [255, 255, 255]


def test_centre_crop_keeps_the_middle(tmp_path: Path) -> None:
    wide = np.zeros((10, 30, 3), dtype=np.uint8)
    wide[:, :10] = (255, 0, 0)
    wide[:, 10:20] = (0, 255, 0)
    wide[:, 20:] = (0, 0, 255)
    path = _save(tmp_path / "wide.png", Image.fromarray(wide))
    arr, size, mode = imagefolder.load_rgb_image(path, 5)
    assert size == (30, 10) and mode == "RGB"
    assert (arr == np.array([0, 255, 0], dtype=np.uint8)).all()


def test_box_resize_averages_area(tmp_path: Path) -> None:
    checker = ((np.indices((20, 20)).sum(0) % 2) * 255).astype(np.uint8)
    path = _save(tmp_path / "checker.png", Image.fromarray(checker))
    arr, _, _ = imagefolder.load_rgb_image(path, 10)
    assert np.abs(arr.astype(int) - 127.5).max() <= 1


def test_seeded_split_counts_and_order(tmp_path: Path) -> None:
    root = _simple_folder(tmp_path / "f", {"a": 10, "b": 5, "c": 2})
    ds = _load_quiet(root, image_size=12, test_fraction=0.2, seed=3)
    assert ds.report["layout"] == "seeded-split"
    assert ds.report["train_counts"] == {"a": 8, "b": 4, "c": 1}
    assert ds.report["test_counts"] == {"a": 2, "b": 1, "c": 1}
    assert ds.train_y.tolist() == [0] * 8 + [1] * 4 + [2]
    assert ds.name == "imagefolder:f"
    # every train/test image of class a is one of a's files, none duplicated
    keys = sorted(int(x[0, 0, 0]) for x, y in zip(torch.cat([ds.train_x, ds.test_x]), torch.cat([ds.train_y, ds.test_y])) if y == 0)
    assert keys == list(range(10))


def test_split_is_seeded_and_independent_of_listing_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _simple_folder(tmp_path / "f", {"a": 15, "b": 15})
    first = _load_quiet(root, image_size=12, seed=7)
    again = _load_quiet(root, image_size=12, seed=7)
    assert torch.equal(first.test_x, again.test_x) and torch.equal(first.train_x, again.train_x)
    other = _load_quiet(root, image_size=12, seed=8)
    assert not torch.equal(first.test_x, other.test_x)

    original = imagefolder._list_dir
    shuffler = random.Random(123)

    def scrambled(path: Path) -> list[Path]:
        entries = original(path)
        shuffler.shuffle(entries)
        return entries[::-1]

    monkeypatch.setattr(imagefolder, "_list_dir", scrambled)
    shuffled = _load_quiet(root, image_size=12, seed=7)
    assert torch.equal(first.train_x, shuffled.train_x) and torch.equal(first.test_x, shuffled.test_x)
    assert torch.equal(first.train_y, shuffled.train_y)


def test_class_split_does_not_depend_on_other_classes(tmp_path: Path) -> None:
    two = _simple_folder(tmp_path / "two", {"a": 12, "b": 12})
    three = _simple_folder(tmp_path / "three", {"a": 12, "b": 12, "aa": 12})
    d2, d3 = _load_quiet(two, image_size=12, seed=1), _load_quiet(three, image_size=12, seed=1)
    a2 = d2.test_x[d2.test_y == d2.class_names.index("a")]
    a3 = d3.test_x[d3.test_y == d3.class_names.index("a")]
    assert torch.equal(a2, a3)


def test_presplit_layout_used_as_given(tmp_path: Path) -> None:
    root = tmp_path / "pre"
    _simple_folder(root / "train", {"x": 4, "y": 3})
    _simple_folder(root / "test", {"x": 1, "y": 2})
    ds = _load_quiet(root, image_size=6)
    assert ds.report["layout"] == "pre-split"
    assert ds.report["train_counts"] == {"x": 4, "y": 3} and ds.report["test_counts"] == {"x": 1, "y": 2}
    assert ds.train_x.shape == (7, 3, 6, 6) and ds.test_y.tolist() == [0, 1, 1]


def test_presplit_mismatched_classes_and_half_split_errors(tmp_path: Path) -> None:
    root = tmp_path / "pre"
    _simple_folder(root / "train", {"x": 3, "y": 3})
    _simple_folder(root / "test", {"x": 1, "z": 1})
    with pytest.raises(DataSourceError, match=r"differ: only in train \['y'\], only in test \['z'\]"):
        _load_quiet(root, image_size=6)
    half = _simple_folder(tmp_path / "half" / "train", {"x": 3, "y": 3}).parent
    with pytest.raises(DataSourceError, match="'train' folder but no 'test'"):
        _load_quiet(half, image_size=6)


def test_corrupt_file_skipped_counted_and_listed(tmp_path: Path) -> None:
    root = _simple_folder(tmp_path / "f", {"a": 4, "b": 4})
    (root / "a" / "broken.png").write_bytes(b"\x89PNG not really" + bytes(range(50)))
    (root / "b" / "empty.jpg").write_bytes(b"")
    with pytest.warns(DataSourceWarning, match="skipped 2 unreadable"):
        ds = _load_quiet(root, image_size=8)
    assert ds.report["n_unreadable"] == 2
    assert ds.report["unreadable_files"] == ["a/broken.png", "b/empty.jpg"]
    assert ds.train_x.shape[0] + ds.test_x.shape[0] == 8


def test_empty_class_skipped_with_warning(tmp_path: Path) -> None:
    root = _simple_folder(tmp_path / "f", {"a": 3, "b": 3})
    (root / "empty").mkdir()
    (root / "empty" / "readme.md").write_text("nothing")
    with pytest.warns(DataSourceWarning, match="without readable images: empty"):
        ds = _load_quiet(root, image_size=8)
    assert ds.class_names == ["a", "b"]
    assert ds.report["skipped_empty_classes"] == ["empty"]


def test_too_few_classes_after_skipping_is_an_error(tmp_path: Path) -> None:
    root = _simple_folder(tmp_path / "f", {"a": 3})
    (root / "b").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataSourceWarning)
        with pytest.raises(DataSourceError, match="only 1 class"):
            _load_quiet(root, image_size=8)


def test_single_class_and_no_class_errors(tmp_path: Path) -> None:
    single = _simple_folder(tmp_path / "single", {"only": 5})
    with pytest.raises(DataSourceError, match="only one class folder .*at least 2"):
        _load_quiet(single, image_size=8)
    flat = tmp_path / "flat"
    _save(flat / "loose.png", Image.new("RGB", (4, 4)))
    with pytest.raises(DataSourceError, match="no class folders"):
        _load_quiet(flat, image_size=8)


def test_missing_folder_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="does not exist"):
        _load_quiet(tmp_path / "absent", image_size=8)
    root = _simple_folder(tmp_path / "f", {"a": 3, "b": 3})
    with pytest.raises(DataSourceError, match="image_size"):
        _load_quiet(root, image_size=0)
    with pytest.raises(DataSourceError, match="test_fraction"):
        _load_quiet(root, image_size=8, test_fraction=1.0)


def test_class_below_minimum_named(tmp_path: Path) -> None:
    root = _simple_folder(tmp_path / "f", {"a": 5, "tiny": 2})
    with pytest.raises(DataSourceError, match="class 'tiny' .* has 2 readable images, fewer than the minimum 3"):
        _load_quiet(root, image_size=8, min_per_class=3)
    one = _simple_folder(tmp_path / "g", {"a": 5, "solo": 1})
    with pytest.raises(DataSourceError, match="'solo'"):
        _load_quiet(one, image_size=8, min_per_class=1)  # the split still needs 2


def test_load_datasource_dispatch_and_errors(tmp_path: Path) -> None:
    root = _simple_folder(tmp_path / "f", {"a": 3, "b": 3})
    ds = load_datasource("imagefolder", root=root, image_size=8, progress=False)
    assert ds.num_classes == 2 and ds.im_size == (8, 8) and ds.channels == 3
    with pytest.raises(DataSourceError, match="allowed: cifar10, cifar100, imagefolder"):
        load_datasource("mnist")
    with pytest.raises(DataSourceError, match="curation pipeline"):
        load_datasource("gz2")
    with pytest.raises(DataSourceError, match="unknown parameter.*imagesize.*accepted: root, image_size"):
        load_datasource("imagefolder", root=root, imagesize=8)
    with pytest.raises(DataSourceError, match="needs parameter.*image_size"):
        load_datasource("imagefolder", root=root)


def test_labelled_images_validates_its_fields() -> None:
    x = torch.zeros(4, 3, 5, 5, dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1])
    ok = LabelledImages(x, y, x[:2], y[:2], ["p", "q"], "t")
    assert ok.class_counts("test") == {"p": 1, "q": 1}
    with pytest.raises(DataSourceError, match="uint8"):
        LabelledImages(x.float(), y, x, y, ["p", "q"], "t")
    with pytest.raises(DataSourceError, match=r"\[0, 2\)"):
        LabelledImages(x, y + 1, x, y, ["p", "q"], "t")
    with pytest.raises(DataSourceError, match="at least 2 classes"):
        LabelledImages(x, y * 0, x, y * 0, ["p"], "t")
    with pytest.raises(DataSourceError, match="differ in"):
        LabelledImages(x, y, x[:, :1], y, ["p", "q"], "t")
