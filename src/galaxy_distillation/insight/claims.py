"""Claims as data: a hypothesis about the prototypes -> a verdict with its evidence.

A claim is a mapping (``conf/base/parameters_insight.yml`` -> ``insight.claims``):

- ``kind: compare``: the prototypes of ``classes`` are ``lower``/``higher`` in ``diagnostic``
  than those of ``versus`` (medians over prototypes);
- ``kind: within``: the prototypes of ``classes`` are ``lower``/``higher`` than the real
  galaxies of their own class (median percentile at least ``min_shift`` below / above 0.5);
- ``kind: rank``: the prototypes of ``classes`` order like their classes' real medians
  (Spearman rho >= ``min_rho``);
- ``kind: closer``: the set with ``ipcs[1]`` images per class is closer to real galaxies than
  the one with ``ipcs[0]`` (``metric`` of the two runs' summaries, higher = closer).

Verdicts: ``supported``; ``exaggerated`` (right direction, but a prototype lies beyond its
class's real 5-95 % range in that direction); ``not supported``; ``not measurable`` (with the
reason: image too small, diagnostic not measurable, the other run missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["KINDS", "evaluate_claim", "evaluate_claims"]

KINDS = ("compare", "within", "rank", "closer")
SUPPORTED, EXAGGERATED, NOT_SUPPORTED, NOT_MEASURABLE = "supported", "exaggerated", "not supported", "not measurable"


def _sign(direction: str) -> float:
    return -1.0 if direction == "lower" else 1.0


def _rows(table: pd.DataFrame, diagnostic: str, classes: Sequence[int], value: str) -> pd.DataFrame:
    rows = table[(table["diagnostic"] == diagnostic) & (table["class"].isin(list(classes)))]
    return rows[np.isfinite(rows[value].to_numpy(dtype=np.float64))]


def _missing(table: pd.DataFrame, diagnostic: str, classes: Sequence[int], value: str) -> str | None:
    """A reason when some class has no measurable prototype, else None."""
    for k in classes:
        rows = table[(table["diagnostic"] == diagnostic) & (table["class"] == k)]
        if rows.empty:
            return f"no prototype of class {k}"
        if not np.isfinite(rows[value].to_numpy(dtype=np.float64)).any():
            reason = str(rows["reason"].iloc[0]) if "reason" in rows and rows["reason"].iloc[0] else "not measurable"
            return f"{diagnostic} of class {k}: {reason}"
    return None


def _beyond(rows: pd.DataFrame, direction: str, pct: str) -> list[int]:
    p = rows[pct].to_numpy(dtype=np.float64)
    hit = p < 0.05 if direction == "lower" else p > 0.95
    return sorted({int(k) for k in rows["class"].to_numpy()[hit]})


def _fmt(rows: pd.DataFrame, value: str) -> str:
    return ", ".join(f"{int(k)}: {v:.3g}" for k, v in rows.groupby("class")[value].median().items())


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _verdict_on(claim: Mapping[str, Any], table: pd.DataFrame, value: str, pct: str) -> tuple[str, str]:
    kind, d = claim["kind"], claim["diagnostic"]
    classes = [int(k) for k in claim["classes"]]
    direction = claim.get("direction", "higher")
    s = _sign(direction)
    involved = classes + [int(k) for k in claim.get("versus") or []]
    reason = _missing(table, d, involved, value)
    if reason:
        return NOT_MEASURABLE, reason
    g1 = _rows(table, d, classes, value)
    if kind == "compare":
        g2 = _rows(table, d, claim["versus"], value)
        diff = float(np.median(g1[value]) - np.median(g2[value]))
        real = table[table["diagnostic"] == d].drop_duplicates("class").set_index("class")["real_median"]
        real_diff = float(np.nanmedian(real.reindex(classes)) - np.nanmedian(real.reindex(claim["versus"])))
        evidence = (f"{d}: prototypes {_fmt(g1, value)} vs {_fmt(g2, value)}; median difference {diff:+.3g} "
                    f"(real galaxies' medians: {real_diff:+.3g})")
        if s * diff <= 0:
            return NOT_SUPPORTED, evidence
    elif kind == "within":
        med = float(np.median(g1[pct]))
        shift = float(claim.get("min_shift", 0.25))
        evidence = f"{d}: percentile within own class {_fmt(g1, pct)} (median {med:.2f}; needs {shift:g} from 0.5)"
        if s * (med - 0.5) < shift:
            return NOT_SUPPORTED, evidence
    elif kind == "rank":
        proto = g1.groupby("class")[value].median()
        real = table[table["diagnostic"] == d].drop_duplicates("class").set_index("class")["real_median"]
        rho = _spearman(proto.to_numpy(), real.reindex(proto.index).to_numpy())
        evidence = (f"{d}: prototypes {_fmt(g1, value)}; real medians "
                    + ", ".join(f"{int(k)}: {real[k]:.3g}" for k in proto.index) + f"; Spearman rho {rho:.2f}")
        if not np.isfinite(rho) or rho < float(claim.get("min_rho", 0.7)):
            return NOT_SUPPORTED, evidence
        beyond = [k for k in classes if _beyond(g1[g1["class"] == k], "lower", pct) or
                  _beyond(g1[g1["class"] == k], "higher", pct)]
        if beyond:
            return EXAGGERATED, evidence + f"; beyond the real 5-95 % range: classes {beyond}"
        return SUPPORTED, evidence
    else:
        raise ValueError(f"unknown claim kind {kind!r}")
    beyond = _beyond(g1, direction, pct)
    if beyond:
        return EXAGGERATED, evidence + f"; beyond the real 5-95 % range: classes {beyond}"
    return SUPPORTED, evidence


def _closer(claim: Mapping[str, Any], summary: Mapping[str, Any], others: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    low, high = (int(v) for v in claim.get("ipcs", (1, 10)))
    metric = claim.get("metric", "envelope_share")
    same = ("dataset", "method", "init", "augmented")
    runs = {int(summary["ipc"]): summary}
    for other in others:
        if all(other.get(k) == summary.get(k) for k in same) and other.get("ipc") is not None:
            runs.setdefault(int(other["ipc"]), other)
    missing = [ipc for ipc in (low, high) if ipc not in runs]
    if missing:
        return NOT_MEASURABLE, (f"needs the IPC {', '.join(map(str, missing))} run of this variant "
                                f"(kedro run --params ipc={missing[0]}, then --pipelines=insight)")
    a, b = float(runs[low][metric]), float(runs[high][metric])
    evidence = f"{metric}: IPC {low} {a:.3f}, IPC {high} {b:.3f} (higher = closer to real galaxies)"
    return (SUPPORTED if b > a else NOT_SUPPORTED), evidence


def evaluate_claim(claim: Mapping[str, Any], table: pd.DataFrame, image_size: int,
                   summary: Mapping[str, Any] | None = None, others: Sequence[Mapping[str, Any]] = ()
                   ) -> dict[str, Any]:
    """One claim -> ``{"claim", "text", "verdict", "evidence", "starting_images"}``.

    ``table``: the tidy diagnostics table; ``summary``/``others``: this run's and earlier runs'
    set summaries (for ``closer``). ``starting_images`` repeats the verdict on the initial images
    (real initialisation: a claim that holds for them may describe the starting galaxies).
    """
    out = {"claim": claim["id"], "text": claim.get("text", ""), "starting_images": ""}
    if int(claim.get("min_size", 0)) > image_size:
        out.update(verdict=NOT_MEASURABLE, evidence=f"needs images of >= {claim['min_size']} px; these are {image_size} px")
        return out
    if claim["kind"] == "closer":
        verdict, evidence = _closer(claim, summary or {}, others)
        out.update(verdict=verdict, evidence=evidence)
        return out
    verdict, evidence = _verdict_on(claim, table, "value", "percentile")
    out.update(verdict=verdict, evidence=evidence)
    if "initial_value" in table and np.isfinite(table["initial_value"].to_numpy(dtype=np.float64)).any():
        out["starting_images"] = _verdict_on(claim, table, "initial_value", "initial_percentile")[0]
    return out


def evaluate_claims(claims: Sequence[Mapping[str, Any]], table: pd.DataFrame, image_size: int,
                    summary: Mapping[str, Any] | None = None, others: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """Every claim -> the rows of ``claims.csv``."""
    return pd.DataFrame([evaluate_claim(c, table, image_size, summary, others) for c in claims],
                        columns=["claim", "text", "verdict", "evidence", "starting_images"])
