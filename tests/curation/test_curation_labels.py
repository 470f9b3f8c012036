"""Tree merge on hand-made rows with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from curation_helpers import BIG_ID, canonical_row

from galaxy_distillation.curation.errors import CatalogueFormatError, EmptyDatasetError
from galaxy_distillation.curation.labels import CLASS_NAMES, SCORE_COLUMNS, label_galaxies

# one row per class (+ artifact) with its expected winning score
CASES = [
    (0, canonical_row(a01_smooth=0.9, a02_features_or_disk=0.1, a16_completely_round=0.8,
                      a17_in_between=0.2), 0.72),
    (1, canonical_row(a01_smooth=0.8, a02_features_or_disk=0.2, a17_in_between=0.9,
                      a16_completely_round=0.1), 0.72),
    (2, canonical_row(a01_smooth=0.7, a02_features_or_disk=0.3, a18_cigar_shaped=1.0), 0.7),
    # class 3 uses rounded + boxy: 0.9 * 0.8 * (0.3 + 0.4) = 0.504 beats no_bulge 0.9*0.8*0.3
    (3, canonical_row(a01_smooth=0.1, a02_features_or_disk=0.9, a04_edgeon_yes=0.8,
                      a05_edgeon_no=0.2, a25_bulge_rounded=0.3, a26_bulge_boxy=0.4,
                      a27_no_bulge=0.3), 0.9 * 0.8 * 0.7),
    (4, canonical_row(a02_features_or_disk=1.0, a04_edgeon_yes=0.9, a05_edgeon_no=0.1,
                      a27_no_bulge=0.8, a25_bulge_rounded=0.2), 0.72),
    (5, canonical_row(a02_features_or_disk=1.0, a05_edgeon_no=1.0, a06_bar=0.9, a07_no_bar=0.1,
                      a08_spiral=0.8, a09_no_spiral=0.2), 0.72),
    (6, canonical_row(a02_features_or_disk=1.0, a05_edgeon_no=1.0, a06_bar=0.9, a07_no_bar=0.1,
                      a08_spiral=0.2, a09_no_spiral=0.8), 0.72),
    (7, canonical_row(a02_features_or_disk=1.0, a05_edgeon_no=1.0, a06_bar=0.1, a07_no_bar=0.9,
                      a08_spiral=0.8, a09_no_spiral=0.2), 0.72),
    (8, canonical_row(a02_features_or_disk=1.0, a05_edgeon_no=1.0, a06_bar=0.1, a07_no_bar=0.9,
                      a08_spiral=0.2, a09_no_spiral=0.8), 0.72),
]


def frame(rows, ids=None) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df.insert(0, "dr7objid", np.asarray(ids if ids is not None else range(1, len(rows) + 1),
                                        dtype=np.int64))
    return df


def test_each_class_and_artifact():
    artifact = canonical_row(a01_smooth=0.2, a03_star_or_artifact=0.6, a02_features_or_disk=0.2,
                             a16_completely_round=1.0)
    rows = [r for _, r, _ in CASES] + [artifact]
    out, stats = label_galaxies(frame(rows, ids=[BIG_ID + i for i in range(len(rows))]))
    assert out["label"].tolist() == list(range(9))
    np.testing.assert_allclose(out["confidence"], [c for _, _, c in CASES], rtol=1e-12)
    assert out["dr7objid"].dtype == np.int64
    assert out["dr7objid"].tolist() == [BIG_ID + i for i in range(9)]  # exact, artifact gone
    assert list(out.columns[:3]) == ["dr7objid", "label", "confidence"]
    assert set(SCORE_COLUMNS) <= set(out.columns)
    assert stats["n_artifact_dropped"] == 1
    assert stats["counts_by_label"] == [1] * 9
    assert stats["counts"][CLASS_NAMES[3]] == 1
    assert stats["mean_confidence"] == pytest.approx(np.mean([c for _, _, c in CASES]))


def test_class3_needs_the_sum_of_rounded_and_boxy():
    # alone, rounded (0.3) or boxy (0.3) lose to no_bulge (0.4); together (0.6) they win
    row = canonical_row(a02_features_or_disk=1.0, a04_edgeon_yes=1.0, a25_bulge_rounded=0.3,
                        a26_bulge_boxy=0.3, a27_no_bulge=0.4)
    out, _ = label_galaxies(frame([row]))
    assert out["label"].item() == 3
    assert out["confidence"].item() == pytest.approx(0.6)
    assert out["score_4"].item() == pytest.approx(0.4)


def test_ties_go_to_the_lower_index_and_beat_artifact():
    tie_classes = canonical_row(a01_smooth=1.0, a16_completely_round=0.5, a17_in_between=0.5)
    tie_artifact = canonical_row(a01_smooth=0.5, a03_star_or_artifact=0.5, a18_cigar_shaped=1.0)
    no_votes = canonical_row()
    out, stats = label_galaxies(frame([tie_classes, tie_artifact, no_votes]))
    assert out["label"].tolist() == [0, 2]
    assert stats["n_no_votes_dropped"] == 1
    assert stats["n_artifact_dropped"] == 0


def test_bad_inputs():
    with pytest.raises(CatalogueFormatError, match="a27_no_bulge"):
        label_galaxies(frame([canonical_row()]).drop(columns="a27_no_bulge"))
    with pytest.raises(EmptyDatasetError):
        label_galaxies(frame([canonical_row(a03_star_or_artifact=1.0)]))
    with pytest.raises(EmptyDatasetError):
        label_galaxies(frame([canonical_row()]).iloc[:0])


def test_labelling_node_reports_class_counts_and_mean_confidence(tmp_path, caplog):
    import logging

    import mlflow

    from galaxy_distillation.pipelines.curation.nodes import label_catalogue

    rows = [row for c, row, _ in CASES] + [CASES[0][1]]  # class 0 twice, then one per class
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with caplog.at_level(logging.INFO, logger="galaxy_distillation"), mlflow.start_run() as run:
        labelled, report = label_catalogue(frame(rows))
    stats = report["labels"]
    assert stats["counts_by_label"] == [2, 1, 1, 1, 1, 1, 1, 1, 1]
    assert stats["mean_confidence_by_label"][0] == pytest.approx(0.72)
    assert stats["mean_confidence_by_label"][3] == pytest.approx(0.504)
    assert stats["mean_confidence"] == pytest.approx(labelled["confidence"].mean())
    assert f"labelled 10 of 10 galaxies (dropped 0 star/artifact, 0 without votes); mean confidence " \
           f"{labelled['confidence'].mean():.3f}" in caplog.text
    assert f"0 {CLASS_NAMES[0]}: 2 (0.72)" in caplog.text
    metrics = mlflow.MlflowClient().get_run(run.info.run_id).data.metrics
    assert metrics["labels.count_class_0"] == 2 and metrics["labels.n_labelled"] == 10
    assert metrics["labels.mean_confidence_class_3"] == pytest.approx(0.504)
