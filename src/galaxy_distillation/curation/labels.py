"""Nine-class decision-tree merge of Galaxy Zoo 2 vote fractions.

Each class is a leaf of the GZ2 decision tree; its score is the product of the
vote fractions along the path (REFERENCE.md section 1). Label = argmax over the
9 leaf scores plus the star/artifact score; galaxies won by star/artifact are
dropped. Confidence = the winning score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .catalogue import ANSWER_COLUMNS
from .errors import CatalogueFormatError, EmptyDatasetError

#: Class names, index = label (REFERENCE.md table).
CLASS_NAMES: tuple[str, ...] = (
    "smooth, completely round",
    "smooth, in-between",
    "smooth, cigar-shaped",
    "edge-on disk with bulge",
    "edge-on disk, no bulge",
    "face-on, bar, spiral",
    "face-on, bar, no spiral",
    "face-on, no bar, spiral",
    "face-on, no bar, no spiral",
)

N_CLASSES: int = len(CLASS_NAMES)

SCORE_COLUMNS: tuple[str, ...] = tuple(f"score_{k}" for k in range(N_CLASSES)) + (
    "score_artifact",
)


def leaf_scores(catalogue: pd.DataFrame) -> np.ndarray:
    """Compute the 9 leaf scores and the star/artifact score.

    Args:
        catalogue: canonical frame with the columns :data:`ANSWER_COLUMNS`
            (as returned by :func:`~.catalogue.read_vote_catalogue`), N rows.

    Returns:
        float64 array (N, 10): columns 0..8 are the classes, column 9 is
        star/artifact.

    Raises:
        CatalogueFormatError: a needed column is missing or holds NaN.
    """
    missing = [c for c in ANSWER_COLUMNS if c not in catalogue.columns]
    if missing:
        raise CatalogueFormatError(
            f"catalogue frame lacks canonical answer column(s): {', '.join(missing)}"
        )
    f = {c: catalogue[c].to_numpy(dtype=np.float64) for c in ANSWER_COLUMNS}
    if any(np.isnan(v).any() for v in f.values()):
        raise CatalogueFormatError("catalogue frame has NaN fractions; read it with read_vote_catalogue")
    smooth = f["a01_smooth"]
    disk = f["a02_features_or_disk"]
    edge = disk * f["a04_edgeon_yes"]
    face = disk * f["a05_edgeon_no"]
    bar = face * f["a06_bar"]
    nobar = face * f["a07_no_bar"]
    scores = np.stack(
        [
            smooth * f["a16_completely_round"],
            smooth * f["a17_in_between"],
            smooth * f["a18_cigar_shaped"],
            edge * (f["a25_bulge_rounded"] + f["a26_bulge_boxy"]),
            edge * f["a27_no_bulge"],
            bar * f["a08_spiral"],
            bar * f["a09_no_spiral"],
            nobar * f["a08_spiral"],
            nobar * f["a09_no_spiral"],
            f["a03_star_or_artifact"],
        ],
        axis=1,
    )
    return scores


def label_galaxies(catalogue: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Label every galaxy with its 9-class argmax and confidence.

    Ties are broken towards the lowest index (``np.argmax``), so a class tied
    with star/artifact keeps the class. Rows whose 10 scores are all zero (no
    usable votes) are dropped and counted (``n_no_votes_dropped``); rows won by
    star/artifact are dropped and counted (``n_artifact_dropped``).

    Args:
        catalogue: canonical frame (``dr7objid`` + :data:`ANSWER_COLUMNS`), N rows.

    Returns:
        ``(labelled, stats)``: ``labelled`` has ``dr7objid`` int64, ``label``
        int64 in 0..8, ``confidence`` float64 and ``score_0..score_8``,
        ``score_artifact`` (in input order, index reset); ``stats`` has
        ``n_input``, ``n_labelled``, ``n_artifact_dropped``,
        ``n_no_votes_dropped``, ``counts`` (class name -> count),
        ``counts_by_label`` (list of 9 ints) and ``mean_confidence``.

    Raises:
        CatalogueFormatError: missing columns or NaN fractions.
        EmptyDatasetError: no galaxy left after dropping.
    """
    if "dr7objid" not in catalogue.columns:
        raise CatalogueFormatError("catalogue frame lacks the 'dr7objid' column")
    if len(catalogue) == 0:
        raise EmptyDatasetError("cannot label an empty catalogue")
    scores = leaf_scores(catalogue)
    winner = scores.argmax(axis=1)
    confidence = scores[np.arange(len(scores)), winner]
    no_votes = confidence <= 0.0
    artifact = (winner == N_CLASSES) & ~no_votes
    keep = ~(no_votes | artifact)
    out = pd.DataFrame(
        {
            "dr7objid": catalogue["dr7objid"].to_numpy(dtype=np.int64)[keep],
            "label": winner[keep].astype(np.int64),
            "confidence": confidence[keep].astype(np.float64),
        }
    )
    for j, name in enumerate(SCORE_COLUMNS):
        out[name] = scores[keep, j]
    if out.empty:
        raise EmptyDatasetError(
            f"no galaxy left after the tree merge ({int(artifact.sum())} star/artifact, "
            f"{int(no_votes.sum())} without votes)"
        )
    counts = np.bincount(out["label"].to_numpy(), minlength=N_CLASSES)
    stats = {
        "n_input": int(len(catalogue)),
        "n_labelled": int(len(out)),
        "n_artifact_dropped": int(artifact.sum()),
        "n_no_votes_dropped": int(no_votes.sum()),
        "counts": {name: int(c) for name, c in zip(CLASS_NAMES, counts)},
        "counts_by_label": [int(c) for c in counts],
        "mean_confidence": float(out["confidence"].mean()),
    }
    return out, stats
