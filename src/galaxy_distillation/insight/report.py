"""The Markdown report of one variant's insight run, caveats included."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["markdown", "CAVEATS"]

CAVEATS = (
    "Display space is not flux: the images are asinh-stretched colour composites, so literature thresholds "
    "for C, A, Gini and M20 (e.g. the Gini-M20 merger line) do not apply as they are; compare with the real "
    "galaxies of the same set, as done here.",
    "Colour is -2.5 log10(B / R) of the composite (g - i like): it says 'bluer', not 'younger'; it is monotone "
    "in the true colour but not calibrated (a true 1.3 mag change reads 1.3-1.7).",
    "Small images: at 32 px smoothness S is not measurable when the Petrosian radius is < 8 px, bar strength "
    "needs >= 96 px, and a Sersic index means nothing without a PSF (not reported).",
    "Real initialisation: each prototype starts as one real galaxy; 'initial_value' and the claims' "
    "'starting_images' column say whether a finding was already true of the starting galaxy.",
    "Out-of-gamut pixels: prototypes are measured unclamped (what the network sees); 'gamut' flags a "
    "diagnostic whose percentile moves by more than the set limit when clamped to [0, 1] (what eyes see).",
    "Multiplicity: many classes x diagnostics are tested; only Benjamini-Hochberg findings (q_value) and the "
    "pre-registered claims count, and with one prototype per class a claim rests on a handful of images.",
    "The mock sky's own limits (when run on it): it saturates about 1-1.5 % of pixels, which weakens its bars "
    "in display space; its colours and structures are a model, not SDSS.",
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.3g}"
    return str(value)


def markdown(table: pd.DataFrame, verdicts: pd.DataFrame, summary: dict[str, Any], image_size: int,
             statmorph_installed: bool) -> str:
    """Claims, findings, what was not measurable, and the caveats."""
    lines = [f"# Insight: {summary.get('variant')}", "",
             f"Images {image_size} px; {summary['n_tests']} tests (class x prototype x diagnostic), "
             f"{summary['n_findings']} Benjamini-Hochberg findings; {summary['envelope_share']:.0%} of the measured "
             f"values lie inside their class's real 5-95 % range; median nearest-real-galaxy percentile "
             f"{summary['nn_percentile_median']:.2f}.", ""]
    if not statmorph_installed:
        lines += ["statmorph is not installed: C, A, S, Gini, M20 and ellipticity are not measurable "
                  "(`pip install -e \".[insight]\"`).", ""]
    lines += ["## Claims", "", "| claim | verdict | evidence | starting images |", "|---|---|---|---|"]
    for _, row in verdicts.iterrows():
        lines.append(f"| {row['claim']} | **{row['verdict']}** | {row['evidence']} | {row['starting_images']} |")
    lines += ["", "## Findings (Benjamini-Hochberg)", ""]
    found = table[table["finding"]]
    n_real = int(table["real_n"].median()) if "real_n" in table and len(table) else 0
    lines.append(f"A prototype is ranked among about {n_real} real galaxies of its class, so no p-value is below "
                 f"{2 / (n_real + 1):.3f}; the q-values correct it for {summary['n_tests']} tests.")
    lines.append("")
    if found.empty:
        lines.append("None: no prototype differs from its class beyond what multiplicity allows.")
    else:
        lines += ["| class | prototype | diagnostic | value | real median | percentile | z | q |", "|---|---|---|---|---|---|---|---|"]
        for _, r in found.iterrows():
            lines.append(f"| {r['class']} | {r['prototype']} | {r['diagnostic']} | {_fmt(r['value'])} | "
                         f"{_fmt(r['real_median'])} | {_fmt(r['percentile'])} | {_fmt(r['z'])} | {_fmt(r['q_value'])} |")
    lines += ["", "## Not measurable", ""]
    missing = table[~table["measurable"]].groupby(["diagnostic", "reason"])["class"].apply(
        lambda s: ", ".join(str(k) for k in sorted(set(s))))
    if missing.empty:
        lines.append("Every diagnostic was measured on every prototype.")
    for (diagnostic, reason), classes in missing.items():
        lines.append(f"- {diagnostic} (classes {classes}): {reason or 'not measurable on the real galaxies'}")
    flagged = table[table["flags"].astype(str) != ""]
    if len(flagged):
        lines += ["", "Flags: " + ", ".join(f"{f} ({n})" for f, n in
                                            flagged["flags"].str.split(";").explode().value_counts().items())]
    lines += ["", "## Caveats", ""] + [f"- {c}" for c in CAVEATS] + [""]
    return "\n".join(lines)
