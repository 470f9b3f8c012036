"""Nodes of the ``insight`` pipeline: measure the real galaxies once per curated set, measure the
prototypes the same way, compare, test the claims, write the report (galaxy_distillation.insight)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from galaxy_distillation.insight import analyse, claims, figures, report
from galaxy_distillation.insight.measure import DIAGNOSTICS, denormalise, has_statmorph
from galaxy_distillation.insight.stats import transforms
from galaxy_distillation.params import InsightParams, parse_flag

log = logging.getLogger(__name__)

#: bump when a diagnostic's definition changes: the cached real measurements are then redone
MEASURE_VERSION = 1
_VERDICT_SCORE = {"supported": 1.0, "exaggerated": 0.5, "not supported": 0.0}


def wait_for(insight_real_input: dict[str, Any], *_done: Any) -> dict[str, Any]:
    """Pass the curated set on once the datasets it waits for exist (ordering only)."""
    return insight_real_input


def real_images(model_input: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The curated galaxies (train then test, un-augmented) in display space (u8 / 255) and their labels."""
    x = np.concatenate([model_input["train_x"].numpy(), model_input["test_x"].numpy()]).astype(np.float64) / 255.0
    y = np.concatenate([model_input["train_y"].numpy(), model_input["test_y"].numpy()]).astype(np.int64)
    return x, y


def _fingerprint(model_input: dict[str, Any], insight: InsightParams) -> str:
    digest = hashlib.sha256()
    for key in ("train_x", "train_y", "test_x", "test_y"):
        digest.update(model_input[key].numpy().tobytes())
    config = insight.measure_config().__dict__ | {"version": MEASURE_VERSION, "statmorph": has_statmorph()}
    digest.update(json.dumps(config, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def measure_real_galaxies(insight_real_input: dict[str, Any], insight_real_previous: pd.DataFrame | None,
                          insight: InsightParams) -> pd.DataFrame:
    """Every curated galaxy's diagnostics, reused from the cache when the curated set and the
    measurement settings are the same (its ``fingerprint`` column)."""
    fingerprint = _fingerprint(insight_real_input, insight)
    if insight_real_previous is not None and len(insight_real_previous) and \
            str(insight_real_previous["fingerprint"].iloc[0]) == fingerprint:
        log.info("insight: reusing the real galaxies' diagnostics (%d galaxies, %s)", len(insight_real_previous),
                 fingerprint)
        return insight_real_previous
    images, labels = real_images(insight_real_input)
    cfg = insight.measure_config()
    sigma, sky = analyse.reference_sky(images, cfg)
    log.info("insight: measuring %d real galaxies (sky %.4f, noise %.4f, %d worker(s))", len(images), sky, sigma,
             insight.n_workers)
    table = analyse.measure_many(images, sigma, cfg, progress=insight.progress, n_workers=insight.n_workers,
                                 desc="measuring real galaxies", sky_ref=sky)
    table.insert(0, "class", labels)
    table.insert(1, "index", np.arange(len(labels)))
    table["sigma_ref"] = sigma
    table["sky_ref"] = sky
    table["fingerprint"] = fingerprint
    return table


def measure_prototypes(distilled_set: dict[str, Any], data_transform: dict[str, Any],
                       insight_real_diagnostics: pd.DataFrame, insight: InsightParams) -> dict[str, Any]:
    """The prototypes (unclamped and clamped), their initial images and their 8 rotations / flips,
    measured exactly like the real galaxies (same threshold, same weight map)."""
    cfg = insight.measure_config()
    sigma = float(insight_real_diagnostics["sigma_ref"].iloc[0])
    sky = float(insight_real_diagnostics["sky_ref"].iloc[0])
    labels = distilled_set["labels"].numpy().astype(np.int64)
    images = denormalise(distilled_set["images"], data_transform)
    prototype = np.zeros(len(labels), dtype=np.int64)
    for k in np.unique(labels):
        prototype[labels == k] = np.arange(int((labels == k).sum()))
    ids = pd.DataFrame({"class": labels, "prototype": prototype})

    initial = (denormalise(distilled_set["initial_images"], data_transform) if "initial_images" in distilled_set
               else None)
    batches = {"protos": images, "clamped": np.clip(images, 0, 1)}
    if initial is not None:
        batches["initial"] = initial
    if insight.stability:  # the 7 other rotations / flips of each prototype (the first is itself)
        batches["variants"] = np.stack([v for im in images for v in transforms(im)[1:]])
    everything = np.concatenate(list(batches.values()))
    log.info("insight: measuring %d prototype images (unclamped, clamped, initial, rotations / flips)", len(everything))
    table = analyse.measure_many(everything, sigma, cfg, progress=insight.progress, n_workers=insight.n_workers,
                                 desc="measuring prototypes", sky_ref=sky)
    out: dict[str, Any] = {"ids": ids, "images": images, "initial_images": initial}
    start = 0
    for name, batch in batches.items():
        part = table.iloc[start:start + len(batch)].reset_index(drop=True)
        start += len(batch)
        if name == "variants":
            out[name] = {i: pd.concat([out["protos"].iloc[[i]].drop(columns=["class", "prototype"]),
                                       part.iloc[7 * i:7 * i + 7]]).reset_index(drop=True) for i in range(len(images))}
        else:
            out[name] = pd.concat([ids, part], axis=1)
    return out


def insight_results(insight_prototypes: dict[str, Any], insight_real_diagnostics: pd.DataFrame,
                    insight_real_input: dict[str, Any], all_insight_summaries: dict[str, Callable[[], Any]] | None,
                    insight: InsightParams, variant: str, dataset: str, method: str, ipc: int, init: str,
                    augmented: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tidy diagnostics table, the claims' verdicts, the set summary and the MLflow metrics."""
    p = insight_prototypes
    names = list(insight_real_input["class_names"])
    table = analyse.diagnostics_table(
        p["protos"], insight_real_diagnostics, names, insight.n_bootstrap, insight.seed, insight.fdr_q,
        initial=p.get("initial"), clamped=p["clamped"], variants=p.get("variants"),
        stability_max=insight.stability_max, gamut_max=insight.gamut_max)
    reals, real_labels = real_images(insight_real_input)
    classes = p["ids"]["class"].to_numpy()
    nearest, nn_pct = analyse.nearest_real(p["images"], classes, reals, real_labels, insight.n_nearest)
    meta = {"variant": variant, "dataset": dataset, "method": method, "ipc": int(ipc), "init": init,
            "augmented": parse_flag(augmented)}
    summary = analyse.set_summary(table, nn_pct, meta)
    if int(ipc) > 1:
        table = table.merge(analyse.ipc_spread(table, insight_real_diagnostics).rename(
            columns={"auc": "class_auc", "spread_ratio": "class_spread_ratio"}), on=["class", "diagnostic"], how="left")
    others = []
    for name, load in sorted((all_insight_summaries or {}).items()):
        record = load()
        if name.startswith("insight_") and isinstance(record, dict) and record.get("variant") != variant:
            others.append(record)
    size = int(p["images"].shape[-1])
    verdicts = claims.evaluate_claims([c.model_dump() for c in insight.claims], table, size, summary, others)
    summary["claims"] = dict(zip(verdicts["claim"], verdicts["verdict"]))
    metrics = {"envelope_share": summary["envelope_share"], "nn_percentile_median": summary["nn_percentile_median"],
               "n_findings": float(summary["n_findings"])}
    metrics |= {f"claim.{c}": _VERDICT_SCORE[v] for c, v in summary["claims"].items() if v in _VERDICT_SCORE}
    tables = {"diagnostics": table, "claims": verdicts, "summary": summary, "nearest": nearest,
              "nn_percentile": nn_pct, "image_size": size}
    return tables, {k: {"step": 0, "value": float(v)} for k, v in metrics.items() if np.isfinite(v)}


def insight_report(insight_tables: dict[str, Any], insight_prototypes: dict[str, Any],
                   insight_real_diagnostics: pd.DataFrame, insight_real_input: dict[str, Any],
                   insight: InsightParams) -> dict[str, Any]:
    """The report folder: diagnostics.csv, claims.csv, summary.json, report.md, a card per class, the heatmap."""
    table, verdicts = insight_tables["diagnostics"], insight_tables["claims"]
    reals, real_labels = real_images(insight_real_input)
    names = list(insight_real_input["class_names"])
    files: dict[str, Any] = {
        "diagnostics.csv": table, "claims.csv": verdicts, "summary.json": insight_tables["summary"],
        "report.md": report.markdown(table, verdicts, insight_tables["summary"], insight_tables["image_size"],
                                     has_statmorph()),
        "heatmap.png": figures.heatmap(table, names, [d for d in DIAGNOSTICS if d in set(table["diagnostic"])]),
    }
    ids = insight_prototypes["ids"]
    for k in sorted(set(ids["class"])):
        files[f"card_class{k}.png"] = figures.card(
            k, names[k], insight_prototypes, table, insight_real_diagnostics, reals, real_labels,
            insight_tables["nearest"], insight.card_diagnostics)
    return files
