"""Any labelled image folder (one sub-folder per class) as :class:`LabelledImages`.

Layouts accepted::

    root/<class>/<images...>                      -> seeded per-class train/test split
    root/train/<class>/...  +  root/test/<class>/...   -> the given split is used

Conversion of every image (any size, any PIL mode):

* EXIF orientation is applied; multi-frame files (GIF, TIFF) use their first frame.
* Mode -> RGB: 16-bit / 32-bit integer greyscale is rescaled to 8 bits (``I;16``
  and ``I`` with values above 255 divide by 257, i.e. 65535 -> 255), float images
  (``F``) are min-max scaled; images with transparency (RGBA, LA, palette with a
  transparent colour) are composited over a black background; greyscale is repeated
  over the three channels; everything else goes through ``PIL.Image.convert("RGB")``.
* Resize: centre square crop (side = the shorter edge), then resampled to
  ``image_size x image_size`` with a box filter (area averaging) when shrinking, or
  bilinear when enlarging.

Files are matched on their extension (case-insensitive: jpg, jpeg, png, bmp, gif,
tif, tiff, webp); other files and hidden entries (names starting with ``.``) are
ignored. Class folders are searched recursively. Symbolic links that lead out of the root
folder (a linked class folder, a link to ``/etc/passwd``) are never followed: they are
skipped with a :class:`DataSourceWarning` naming each link and listed in the report
(``skipped_links``); links that stay inside the root are followed. Unreadable images are skipped,
counted and listed in the report; classes left without images are skipped with a
:class:`DataSourceWarning`.
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from .base import DataSourceError, DataSourceWarning, LabelledImages

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder", "load_rgb_image"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)
_MAX_LISTED = 20  # unreadable / ignored files named in the report
_MAX_SIZES = 10  # distinct original sizes named in the report


def _list_dir(path: Path) -> list[Path]:
    """Entries of ``path`` in whatever order the file system gives (callers sort)."""
    return list(path.iterdir())


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _leaves(entry: Path, root: Path | None, links: list[Path] | None) -> bool:
    """Whether ``entry`` is a symbolic link whose target lies outside ``root`` (recorded in ``links``)."""
    if root is None or not entry.is_symlink():
        return False
    try:
        entry.resolve(strict=False).relative_to(root)
        return False
    except (ValueError, RuntimeError, OSError):  # outside, a link loop, or unreadable
        if links is not None:
            links.append(entry)
        return True


def _class_dirs(folder: Path, root: Path | None = None, links: list[Path] | None = None) -> list[Path]:
    """Non-hidden sub-folders of ``folder``, sorted by name (links out of ``root`` skipped)."""
    return sorted((p for p in _list_dir(folder) if not _is_hidden(p) and not _leaves(p, root, links) and p.is_dir()),
                  key=lambda p: p.name)


def _scan_files(folder: Path, root: Path | None = None, links: list[Path] | None = None
                ) -> tuple[list[Path], list[Path]]:
    """Image files and ignored (non-image) files under ``folder``, recursively; a symbolic link
    that leads out of ``root`` (the resolved root folder) is skipped and recorded in ``links``.

    Returns:
        ``(images, ignored)``, each sorted by path relative to ``folder`` so the result
        does not depend on the file system's listing order.
    """
    images: list[Path] = []
    ignored: list[Path] = []
    stack = [folder]
    seen: set[Path] = set()
    while stack:
        current = stack.pop()
        real = current.resolve()
        if real in seen:  # a link back to a folder already scanned (inside the root)
            continue
        seen.add(real)
        for entry in _list_dir(current):
            if _is_hidden(entry) or _leaves(entry, root, links):
                continue
            if entry.is_dir():
                stack.append(entry)
            elif entry.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(entry)
            else:
                ignored.append(entry)
    key = lambda p: p.relative_to(folder).as_posix()  # noqa: E731
    return sorted(images, key=key), sorted(ignored, key=key)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to 8-bit RGB (see module docstring for the rules)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        elif mode.startswith("I;16") or float(arr.max(initial=0.0)) > 255.0:
            arr = arr / 257.0
        grey = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
        return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_rgb_image(path: str | Path, image_size: int) -> tuple[np.ndarray, tuple[int, int], str]:
    """Read one image file as an ``(S, S, 3)`` uint8 RGB array.

    Args:
        path: image file.
        image_size: output side ``S``.

    Returns:
        ``(array, (width, height), mode)``: the converted ``(S, S, 3)`` uint8 array,
        the original size and the original PIL mode.

    Raises:
        OSError / ValueError / other PIL errors when the file cannot be decoded
        (the folder loader catches them and skips the file).
    """
    with Image.open(path) as opened:
        opened.seek(0)
        opened.load()
        mode = opened.mode
        size = opened.size
        img = ImageOps.exif_transpose(opened)
        img = _to_rgb(img)
    w, h = img.size
    if w < 1 or h < 1:
        raise ValueError(f"empty image {w}x{h}")
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    resample = Image.Resampling.BOX if side >= image_size else Image.Resampling.BILINEAR
    img = img.resize((image_size, image_size), resample, box=(left, top, left + side, top + side))
    arr = np.asarray(img, dtype=np.uint8)
    if arr.shape != (image_size, image_size, 3):
        raise ValueError(f"conversion gave shape {arr.shape}")
    return arr, (int(size[0]), int(size[1])), str(mode)


def _split_indices(n: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into sorted ``(train, test)`` index arrays.

    The test part has ``round(n * test_fraction)`` items, clamped to ``[1, n - 1]``.
    """
    n_test = min(max(1, int(round(n * test_fraction))), n - 1)
    perm = rng.permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _class_rng(seed: int, class_name: str) -> np.random.Generator:
    """Generator for one class's split: depends only on ``seed`` and the class name."""
    return np.random.default_rng([int(seed), zlib.crc32(class_name.encode("utf-8"))])


def _check_args(image_size: int, test_fraction: float, min_per_class: int) -> None:
    if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) or image_size < 1:
        raise DataSourceError(f"image_size must be a positive integer, got {image_size!r}")
    if not (0.0 < float(test_fraction) < 1.0):
        raise DataSourceError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    if not isinstance(min_per_class, (int, np.integer)) or min_per_class < 1:
        raise DataSourceError(f"min_per_class must be a positive integer, got {min_per_class!r}")


def load_image_folder(
    root: str | Path,
    image_size: int,
    test_fraction: float = 0.2,
    seed: int = 0,
    min_per_class: int = 2,
    progress: bool = True,
) -> LabelledImages:
    """Load a folder of labelled images (one sub-folder per class) as uint8 tensors.

    If both ``root/train`` and ``root/test`` exist, they are used as the split (their
    class folders must match). Otherwise each class's readable images are sorted by
    path, shuffled with a generator seeded by ``(seed, class name)`` and
    ``round(n * test_fraction)`` of them (at least 1, at most ``n - 1``) go to the test
    set, so the split does not depend on the listing order or on the other classes.
    Within each split, images are ordered by class, then by path.

    Args:
        root: the folder.
        image_size: output side ``S``; every image becomes ``(3, S, S)`` (centre square
            crop, then box/area resampling; see the module docstring).
        test_fraction: share of each class held out when ``root`` is not pre-split.
        seed: seed of the split.
        min_per_class: minimum readable images per class (in the train split when
            pre-split; the seeded split needs at least 2 regardless).
        progress: show a tqdm progress bar while decoding.

    Returns:
        :class:`LabelledImages` with ``train_x`` ``(N, 3, S, S)``, ``test_x``
        ``(M, 3, S, S)`` uint8, class names = sorted folder names (skipped empty classes
        removed), ``name = "imagefolder:<root folder name>"`` and a report holding counts
        per class, skipped classes, unreadable files (count + first 20), ignored files,
        original sizes and modes seen.

    Raises:
        DataSourceError: missing ``root``; only one of ``train``/``test``; mismatched
            class folders; fewer than 2 (non-empty) classes; a class with fewer than
            ``min_per_class`` readable images (named); bad arguments.
    """
    _check_args(image_size, test_fraction, min_per_class)
    root = Path(root).expanduser()
    if not root.exists():
        raise DataSourceError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise DataSourceError(f"image folder {root} is not a directory")
    image_size = int(image_size)

    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    presplit = has_train and has_test
    if has_train != has_test:
        present, absent = ("train", "test") if has_train else ("test", "train")
        raise DataSourceError(
            f"{root} has a '{present}' folder but no '{absent}' folder: provide both "
            f"(pre-split) or neither (one folder per class)"
        )

    # --- discover classes -------------------------------------------------------------
    split_roots = {"train": root / "train", "test": root / "test"} if presplit else {"all": root}
    real_root = root.resolve()
    links: list[Path] = []  # symbolic links out of the root: never followed
    class_dirs: dict[str, dict[str, Path]] = {}
    for split, folder in split_roots.items():
        class_dirs[split] = {p.name: p for p in _class_dirs(folder, real_root, links)}
    if presplit and set(class_dirs["train"]) != set(class_dirs["test"]):
        only_train = sorted(set(class_dirs["train"]) - set(class_dirs["test"]))
        only_test = sorted(set(class_dirs["test"]) - set(class_dirs["train"]))
        raise DataSourceError(
            f"class folders of {root}/train and {root}/test differ: only in train {only_train[:5]}, "
            f"only in test {only_test[:5]}"
        )
    names = sorted(next(iter(class_dirs.values())))
    if len(names) == 0:
        where = f"{root}/train" if presplit else str(root)
        raise DataSourceError(f"no class folders in {where}: expected one sub-folder per class")
    if len(names) == 1:
        raise DataSourceError(
            f"only one class folder ({names[0]!r}) in {root}: distillation needs at least 2 classes"
        )

    # --- scan files ---------------------------------------------------------------------
    files: dict[tuple[str, str], list[Path]] = {}
    ignored: list[str] = []
    for split, dirs in class_dirs.items():
        for name in names:
            imgs, other = _scan_files(dirs[name], real_root, links)
            files[(split, name)] = imgs
            ignored += [p.relative_to(root).as_posix() for p in other]
    total = sum(len(v) for v in files.values())
    skipped_links = [p.relative_to(root).as_posix() for p in links]
    if skipped_links:
        warnings.warn(f"{root}: skipped {len(skipped_links)} symbolic link(s) leading out of the folder, e.g. "
                      f"{skipped_links[0]} -> {os.readlink(links[0])}", DataSourceWarning, stacklevel=2)

    # --- decode -------------------------------------------------------------------------
    arrays: dict[tuple[str, str], list[np.ndarray]] = {k: [] for k in files}
    unreadable: list[str] = []
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    with tqdm(total=total, desc=f"reading {root.name}", unit="img", disable=not progress) as bar:
        for key, paths in files.items():
            for path in paths:
                try:
                    arr, size, mode = load_rgb_image(path, image_size)
                except Exception:  # any decoding failure: skip, count, list
                    unreadable.append(path.relative_to(root).as_posix())
                else:
                    arrays[key].append(arr)
                    sizes[size] += 1
                    modes[mode] += 1
                bar.update(1)
    if unreadable:
        warnings.warn(
            f"{root}: skipped {len(unreadable)} unreadable image file(s), e.g. {unreadable[0]}",
            DataSourceWarning,
            stacklevel=2,
        )

    # --- classes: drop empty, enforce minimum -------------------------------------------
    def n_images(name: str) -> int:
        return sum(len(arrays[(s, name)]) for s in class_dirs)

    empty = [n for n in names if n_images(n) == 0]
    if empty:
        warnings.warn(
            f"{root}: skipping {len(empty)} class(es) without readable images: {', '.join(empty[:5])}",
            DataSourceWarning,
            stacklevel=2,
        )
    kept = [n for n in names if n not in empty]
    if len(kept) < 2:
        raise DataSourceError(
            f"{root}: only {len(kept)} class(es) with readable images left ({', '.join(kept) or 'none'}); "
            f"distillation needs at least 2"
        )
    first_split = "train" if presplit else "all"
    min_needed = min_per_class if presplit else max(min_per_class, 2)
    for name in kept:
        n = len(arrays[(first_split, name)])
        if n < min_needed:
            where = "training images" if presplit else "readable images"
            raise DataSourceError(
                f"class {name!r} in {root} has {n} {where}, fewer than the minimum {min_needed}"
            )

    # --- split and stack ----------------------------------------------------------------
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    for label, name in enumerate(kept):
        if presplit:
            per_split = {s: arrays[(s, name)] for s in ("train", "test")}
        else:
            imgs = arrays[("all", name)]
            tr, te = _split_indices(len(imgs), float(test_fraction), _class_rng(seed, name))
            per_split = {"train": [imgs[i] for i in tr], "test": [imgs[i] for i in te]}
        for s, imgs in per_split.items():
            parts[s] += imgs
            labels[s] += [label] * len(imgs)

    def stack(s: str) -> torch.Tensor:
        if not parts[s]:
            return torch.zeros((0, 3, image_size, image_size), dtype=torch.uint8)
        return torch.from_numpy(np.ascontiguousarray(np.stack(parts[s]).transpose(0, 3, 1, 2)))

    train_x, test_x = stack("train"), stack("test")
    train_y = torch.tensor(labels["train"], dtype=torch.int64)
    test_y = torch.tensor(labels["test"], dtype=torch.int64)
    k = len(kept)
    train_counts = dict(zip(kept, torch.bincount(train_y, minlength=k).tolist(), strict=True))
    test_counts = dict(zip(kept, torch.bincount(test_y, minlength=k).tolist(), strict=True))
    no_test = [n for n, c in test_counts.items() if c == 0]
    if no_test:
        warnings.warn(
            f"{root}: {len(no_test)} class(es) have no test images: {', '.join(no_test[:5])}",
            DataSourceWarning,
            stacklevel=2,
        )

    report: dict[str, Any] = {
        "source": "imagefolder",
        "root": str(root),
        "layout": "pre-split" if presplit else "seeded-split",
        "image_size": image_size,
        "test_fraction": None if presplit else float(test_fraction),
        "seed": None if presplit else int(seed),
        "classes": kept,
        "train_counts": train_counts,
        "test_counts": test_counts,
        "n_train": int(train_y.numel()),
        "n_test": int(test_y.numel()),
        "skipped_empty_classes": empty,
        "classes_without_test_images": no_test,
        "n_image_files": total,
        "n_unreadable": len(unreadable),
        "unreadable_files": unreadable[:_MAX_LISTED],
        "n_ignored_files": len(ignored),
        "ignored_files": sorted(ignored)[:_MAX_LISTED],
        "skipped_links": skipped_links[:_MAX_LISTED],
        "n_distinct_original_sizes": len(sizes),
        "original_sizes": [[w, h] for (w, h), _ in sizes.most_common(_MAX_SIZES)],
        "original_modes": dict(sorted(modes.items())),
        "resize": "centre square crop, then box (area) resampling; bilinear when enlarging",
    }
    return LabelledImages(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        class_names=kept,
        name=f"imagefolder:{root.resolve().name}",
        report=report,
    )
