"""Nodes of the ``curation`` pipeline: GZ2 votes + images -> the curated 9-class dataset.

Each node is a small function over the curation core (``galaxy_distillation.curation``);
reports are plain dicts, merged into one curation report at the end.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure

from galaxy_distillation import tracking
from galaxy_distillation.curation.images import load_split_tensors
from galaxy_distillation.curation.labels import CLASS_NAMES, label_galaxies
from galaxy_distillation.curation.paths import clean_filename_mapping, resolve_image_paths
from galaxy_distillation.curation.report import curation_report, make_montage, summary_line, to_plain
from galaxy_distillation.curation.selection import require_every_class, select_and_split
from galaxy_distillation.curation.stats import channel_stats
from galaxy_distillation.params import CurationParams
from galaxy_distillation.storage import exists, is_local, mirror_files, sibling

log = logging.getLogger(__name__)


def label_catalogue(vote_catalogue: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Merge the GZ2 decision tree into 9 classes and score each galaxy's confidence.

    Returns:
        ``labelled_catalog`` (dr7objid, label 0..8, confidence, the ten scores) and the label
        report (``label_report.json``: what reading the catalogue dropped, the class counts and
        mean confidences), also logged (two lines) and as MLflow metrics (``labels.*``).
    """
    labelled, stats = label_galaxies(vote_catalogue)
    read_info = dict(vote_catalogue.attrs.get("read_info", {}))
    labelled.attrs = {}
    by_label = labelled.groupby("label")["confidence"].mean()
    stats["mean_confidence_by_label"] = [float(by_label[c]) if c in by_label.index else None
                                         for c in range(len(CLASS_NAMES))]
    for line in label_summary(stats):
        log.info(line)
    tracking.log_histories(label_metrics(stats))
    return labelled, to_plain({"read": read_info, "labels": stats})


def label_summary(stats: dict[str, Any]) -> list[str]:
    """The labels in two log lines: how many galaxies were labelled and dropped, the mean
    confidence, and per class its count and mean confidence."""
    per_class = ", ".join(
        f"{c} {name}: {n:,}" + (f" ({conf:.2f})" if conf is not None else "")
        for c, (name, n, conf) in enumerate(zip(CLASS_NAMES, stats["counts_by_label"],
                                                stats["mean_confidence_by_label"], strict=True)))
    return [f"labelled {stats['n_labelled']:,} of {stats['n_input']:,} galaxies (dropped {stats['n_artifact_dropped']:,}"
            f" star/artifact, {stats['n_no_votes_dropped']:,} without votes); mean confidence "
            f"{stats['mean_confidence']:.3f}",
            f"class counts (mean confidence): {per_class}"]


def label_metrics(stats: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    """MLflow metrics of the labels: ``labels.n_labelled``, ``labels.mean_confidence``,
    ``labels.count_class_<k>``, ``labels.mean_confidence_class_<k>``."""
    points = {"labels.n_input": stats["n_input"], "labels.n_labelled": stats["n_labelled"],
              "labels.mean_confidence": stats["mean_confidence"]}
    for c, (n, conf) in enumerate(zip(stats["counts_by_label"], stats["mean_confidence_by_label"], strict=True)):
        points[f"labels.count_class_{c}"] = n
        if conf is not None:
            points[f"labels.mean_confidence_class_{c}"] = conf
    return {name: [{"step": 0, "value": float(v)}] for name, v in points.items()}


def label_catalogue_after_sky(
    vote_catalogue: pd.DataFrame, mock_sky_manifest: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`label_catalogue`, ordered after the mock sky is rendered (default pipeline)."""
    labelled, report = label_catalogue(vote_catalogue)
    report["sky"] = {"mode": mock_sky_manifest.get("mode")}
    return labelled, report


def select_galaxies(
    labelled_catalog: pd.DataFrame, curation: CurationParams
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Keep the top-K most confident galaxies per class and split each class train/test.

    Raises:
        EmptyDatasetError: a class has no training galaxy (here, before any image is read).
    """
    train, test, report = select_and_split(
        labelled_catalog,
        k_per_class=int(curation.k_per_class),
        n_train_per_class=int(curation.n_train_per_class),
        seed=int(curation.seed),
        on_shortfall=str(curation.on_shortfall),
    )
    require_every_class(report["counts_train"], "train", f" ({report['counts_available']} labelled per class)")
    return train, test, report


def locate_images(
    selected_train_galaxies: pd.DataFrame,
    selected_test_galaxies: pd.DataFrame,
    filename_mapping: pd.DataFrame,
    image_dir: str,
    curation: CurationParams,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Join the selection to the filename mapping and keep galaxies whose image exists.

    The mapping is read as text (catalog ``load_args``) and parsed here by the tolerant reader:
    a row with a non-integer id is dropped and counted, never fatal. An ``image_dir`` on an
    object store (any fsspec URL) is mirrored first: only the selected galaxies' images, into
    a local cache folder (:func:`galaxy_distillation.storage.mirror_files`).
    """
    mapping, mapping_report = clean_filename_mapping(filename_mapping)
    limit = float(curation.max_missing_fraction)
    folder, shown = image_dir, None
    if not is_local(image_dir):
        ids = set(selected_train_galaxies["dr7objid"].tolist()) | set(selected_test_galaxies["dr7objid"].tolist())
        assets = mapping.loc[mapping["objid"].isin(ids), "asset_id"].tolist()
        folder, shown = str(mirror_files(image_dir, [f"{a}.jpg" for a in assets])), image_dir
    train, train_report = resolve_image_paths(selected_train_galaxies, mapping, folder, limit, shown)
    test, test_report = resolve_image_paths(selected_test_galaxies, mapping, folder, limit, shown)
    return train, test, {"train": train_report, "test": test_report, "mapping": mapping_report}


def load_images(
    galaxy_paths: pd.DataFrame, curation: CurationParams, rotations: int = 1
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load, crop the central half and area-resize the images; ``rotations`` > 1 augments.

    Returns:
        ``{"images": uint8 (N*rotations, 3, S, S), "labels": int64}`` and a load report.
    """
    images, labels, report = load_split_tensors(
        galaxy_paths,
        image_size=int(curation.image_size),
        rotations=rotations,
        progress=True,
        n_workers=int(curation.n_workers),
        interpolation=curation.rotation_interpolation,
    )
    return {"images": images, "labels": labels}, report


def load_plain_images(galaxy_paths: pd.DataFrame, curation: CurationParams):
    """Images of a split without augmentation (the test set, and the plain training set)."""
    return load_images(galaxy_paths, curation, rotations=1)


def load_augmented_images(galaxy_paths: pd.DataFrame, curation: CurationParams):
    """The training set with ``curation.rotations`` rotations (10 x 36 degrees in the paper)."""
    return load_images(galaxy_paths, curation, rotations=int(curation.rotations))


def package_model_input(
    train: dict[str, torch.Tensor],
    train_augmented: dict[str, torch.Tensor],
    test: dict[str, torch.Tensor],
    curation: CurationParams,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bundle the curated splits with their class names and normalisation statistics.

    Raises:
        EmptyDatasetError: a class lost all its training images (missing or unreadable files).
    """
    require_every_class(torch.bincount(train["labels"], minlength=len(CLASS_NAMES)).tolist(), "train",
                        " (its images are missing or unreadable)")
    normalisation = {
        "train": channel_stats(train["images"]),
        "train_augmented": channel_stats(train_augmented["images"]),
    }
    meta = {
        "class_names": list(CLASS_NAMES),
        "image_size": int(curation.image_size),
        "rotations": int(curation.rotations),
        "rotation_interpolation": curation.rotation_interpolation,
        "normalisation": normalisation,
        "sizes": {
            "train": int(train["labels"].numel()),
            "train_augmented": int(train_augmented["labels"].numel()),
            "test": int(test["labels"].numel()),
        },
    }
    model_input = {"train": train, "train_augmented": train_augmented, "test": test, "meta": meta}
    return model_input, meta


def report_curation(
    label_report: dict[str, Any],
    selection_report: dict[str, Any],
    locate_report: dict[str, Any],
    train_load_report: dict[str, Any],
    test_load_report: dict[str, Any],
    augment_report: dict[str, Any],
    model_input_meta: dict[str, Any],
) -> dict[str, Any]:
    """One JSON-serialisable curation report (also logged to MLflow): class counts before and
    after selection, mean confidence of all vs selected galaxies, shortfalls, missing and
    unreadable images, dataset sizes and normalisation statistics; what was dropped is also
    summarised in one console line."""
    report = curation_report(
        catalogue_info=label_report.get("read"),
        label_stats=label_report.get("labels"),
        selection_report=selection_report,
        image_reports={
            "located_train": locate_report["train"],
            "located_test": locate_report["test"],
            "train": train_load_report,
            "test": test_load_report,
            "train_augmented": augment_report,
            "mapping": locate_report.get("mapping", {}),
        },
        stats=model_input_meta.get("normalisation"),
        dataset=model_input_meta,
        sky=label_report.get("sky"),
    )
    line, dropped = summary_line(report)
    logging.getLogger(__name__).log(logging.WARNING if dropped else logging.INFO, line)
    return report


def montage(train: dict[str, torch.Tensor], curation: CurationParams, votes_path: str | None = None) -> Figure:
    """A few curated training galaxies per class, one row per class; marked "mock sky" when the
    votes come from the built-in mock sky (its ``MOCK_SKY.json`` marker beside the catalogue)."""
    mock = votes_path is not None and exists(sibling(str(votes_path), "MOCK_SKY.json"))
    return make_montage(
        train["images"], train["labels"], CLASS_NAMES, per_class=int(curation.montage_per_class), seed=0,
        mock_sky=mock,
    )
