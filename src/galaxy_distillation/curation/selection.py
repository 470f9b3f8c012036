"""Top-K-per-class selection by confidence and a seeded per-class train/test split."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import CatalogueFormatError, EmptyDatasetError, ParameterError, ShortfallError
from .labels import CLASS_NAMES, N_CLASSES

SHORTFALL_POLICIES: tuple[str, ...] = ("take", "error")
OUTPUT_COLUMNS: tuple[str, ...] = ("dr7objid", "label", "confidence", "split")


def class_rng(seed: int, label: int) -> np.random.Generator:
    """Independent, reproducible generator for one class: ``SeedSequence([seed, label])``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(label)]))


def top_k(group: pd.DataFrame, k: int) -> pd.DataFrame:
    """Return the ``k`` rows of highest confidence, ties broken by smaller dr7objid.

    The result does not depend on the input row order.

    Args:
        group: frame with ``dr7objid`` and ``confidence`` (one class).
        k: number of rows wanted (fewer returned if fewer exist).
    """
    ordered = group.sort_values(
        ["confidence", "dr7objid"], ascending=[False, True], kind="mergesort"
    )
    return ordered.head(k)


def select_and_split(
    labelled: pd.DataFrame,
    k_per_class: int,
    n_train_per_class: int,
    seed: int,
    on_shortfall: str = "take",
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Select the K most confident galaxies of each class and split them.

    Per class: take the top ``k_per_class`` by confidence (ties: smaller
    ``dr7objid`` first), sort them by ``dr7objid``, shuffle with
    ``SeedSequence([seed, label])`` and put the first ``n_train_per_class`` in
    train, the rest in test. The result is independent of the input row order.

    Shortfall (a class with fewer than K galaxies): ``"take"`` keeps all n of
    them and splits ``round(n * n_train / K)`` to train (``warnings.warn`` and a
    record in the report); ``"error"`` raises :class:`ShortfallError`.

    Args:
        labelled: output of :func:`~.labels.label_galaxies` (needs ``dr7objid``,
            ``label``, ``confidence``).
        k_per_class: galaxies kept per class (paper: 600).
        n_train_per_class: train galaxies per class (paper: 500), 0..K.
        seed: split seed.
        on_shortfall: ``"take"`` or ``"error"``.

    Returns:
        ``(train, test, report)``: frames with columns ``dr7objid`` (int64),
        ``label`` (int64), ``confidence`` (float64), ``split`` ("train"/"test"),
        ordered by class then shuffled order; ``report`` has ``k_per_class``,
        ``n_train_per_class``, ``seed``, ``counts_available`` / ``counts_train``
        / ``counts_test`` (9-int lists), ``n_train``, ``n_test``,
        ``mean_confidence_all``, ``mean_confidence_selected``, ``min_confidence_selected``
        (per class, None if empty) and ``shortfalls`` (class name -> available).

    Raises:
        ParameterError: bad K / n_train / on_shortfall.
        CatalogueFormatError: missing columns or labels outside 0..8.
        ShortfallError: a class is short and ``on_shortfall="error"``.
        EmptyDatasetError: nothing selected.
    """
    if on_shortfall not in SHORTFALL_POLICIES:
        raise ParameterError(
            f"on_shortfall={on_shortfall!r} is not allowed; use one of {list(SHORTFALL_POLICIES)}"
        )
    if int(k_per_class) < 1:
        raise ParameterError(f"k_per_class must be >= 1, got {k_per_class}")
    if not 0 <= int(n_train_per_class) <= int(k_per_class):
        raise ParameterError(
            f"n_train_per_class must be in 0..k_per_class={k_per_class}, got {n_train_per_class}"
        )
    missing = [c for c in ("dr7objid", "label", "confidence") if c not in labelled.columns]
    if missing:
        raise CatalogueFormatError(f"labelled frame lacks column(s): {', '.join(missing)}")
    if len(labelled) == 0:
        raise EmptyDatasetError("cannot select from an empty labelled frame")
    labels = labelled["label"].to_numpy()
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise CatalogueFormatError(f"labels must lie in 0..{N_CLASSES - 1}")

    k, n_train = int(k_per_class), int(n_train_per_class)
    available = np.bincount(labels.astype(np.int64), minlength=N_CLASSES)
    short = {CLASS_NAMES[c]: int(available[c]) for c in range(N_CLASSES) if available[c] < k}
    if short and on_shortfall == "error":
        detail = ", ".join(f"{name}: {n}" for name, n in short.items())
        raise ShortfallError(f"{len(short)} class(es) have fewer than K={k} galaxies ({detail})")
    if short:
        detail = ", ".join(f"{name}: {n}" for name, n in short.items())
        warnings.warn(f"taking fewer than K={k} galaxies for {detail}", stacklevel=2)

    base = labelled[["dr7objid", "label", "confidence"]].astype(
        {"dr7objid": "int64", "label": "int64", "confidence": "float64"}
    )
    trains, tests, min_conf = [], [], []
    for c in range(N_CLASSES):
        chosen = top_k(base[base["label"] == c], k)
        n = len(chosen)
        min_conf.append(float(chosen["confidence"].min()) if n else None)
        chosen = chosen.sort_values("dr7objid", kind="mergesort").reset_index(drop=True)
        order = class_rng(seed, c).permutation(n)
        chosen = chosen.iloc[order]
        n_tr = n_train if n >= k else int(round(n * n_train / k))
        trains.append(chosen.iloc[:n_tr].assign(split="train"))
        tests.append(chosen.iloc[n_tr:].assign(split="test"))
    train = pd.concat(trains, ignore_index=True)[list(OUTPUT_COLUMNS)]
    test = pd.concat(tests, ignore_index=True)[list(OUTPUT_COLUMNS)]
    if len(train) + len(test) == 0:
        raise EmptyDatasetError("selection is empty")
    selected_conf = pd.concat([train["confidence"], test["confidence"]])
    report = {
        "k_per_class": k,
        "n_train_per_class": n_train,
        "seed": int(seed),
        "counts_available": [int(v) for v in available],
        "counts_train": [int(v) for v in np.bincount(train["label"], minlength=N_CLASSES)],
        "counts_test": [int(v) for v in np.bincount(test["label"], minlength=N_CLASSES)],
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "mean_confidence_all": float(base["confidence"].mean()),
        "mean_confidence_selected": float(selected_conf.mean()),
        "min_confidence_selected": min_conf,
        "shortfalls": short,
    }
    return train, test, report


def require_every_class(counts: Sequence[int], split: str, hint: str = "") -> None:
    """Fail in curation, not three stages later, when a class of ``split`` has no galaxy.

    Args:
        counts: galaxies per class (index = label).
        split: ``"train"`` / ``"test"`` (named in the message).
        hint: where they went (appended to the message).

    Raises:
        EmptyDatasetError: naming the first empty class and what to change.
    """
    for c, n in enumerate(counts):
        if int(n) == 0:
            name = CLASS_NAMES[c] if c < len(CLASS_NAMES) else str(c)
            raise EmptyDatasetError(
                f"class {c} ({name}) has 0 {split} galaxies after curation{hint}; every class needs at "
                f"least one: use a larger catalogue / mock sky (sky.n_galaxies) or check the class's votes"
            )
