"""Column layout of the Hart et al. 2016 Galaxy Zoo 2 catalogue (``gz2_hart16.csv``).

The table has 9 leading columns followed by 6 columns per answer (37 answers numbered
a01..a38 without a35). The canonical header ships as package data
(``gz2_hart16_columns.txt``); the same list is also generated from :data:`GZ2_TASKS`
so the module works even when the text file was not installed.
"""

from __future__ import annotations

from importlib import resources

#: The 9 leading (non-vote) columns, in order.
LEADING_COLUMNS: tuple[str, ...] = (
    "dr7objid",
    "ra",
    "dec",
    "rastring",
    "decstring",
    "sample",
    "gz2_class",
    "total_classifications",
    "total_votes",
)

#: The 6 suffixes written for every answer, in order.
ANSWER_SUFFIXES: tuple[str, ...] = (
    "count",
    "weight",
    "fraction",
    "weighted_fraction",
    "debiased",
    "flag",
)

#: The GZ2 decision tree: task prefix -> answer stems, in catalogue order.
GZ2_TASKS: dict[str, tuple[str, ...]] = {
    "t01_smooth_or_features": ("a01_smooth", "a02_features_or_disk", "a03_star_or_artifact"),
    "t02_edgeon": ("a04_yes", "a05_no"),
    "t03_bar": ("a06_bar", "a07_no_bar"),
    "t04_spiral": ("a08_spiral", "a09_no_spiral"),
    "t05_bulge_prominence": (
        "a10_no_bulge",
        "a11_just_noticeable",
        "a12_obvious",
        "a13_dominant",
    ),
    "t06_odd": ("a14_yes", "a15_no"),
    "t07_rounded": ("a16_completely_round", "a17_in_between", "a18_cigar_shaped"),
    "t08_odd_feature": (
        "a19_ring",
        "a20_lens_or_arc",
        "a21_disturbed",
        "a22_irregular",
        "a23_other",
        "a24_merger",
        "a38_dust_lane",
    ),
    "t09_bulge_shape": ("a25_rounded", "a26_boxy", "a27_no_bulge"),
    "t10_arms_winding": ("a28_tight", "a29_medium", "a30_loose"),
    "t11_arms_number": ("a31_1", "a32_2", "a33_3", "a34_4", "a36_more_than_4", "a37_cant_tell"),
}

_PACKAGE_FILE = "gz2_hart16_columns.txt"


class ColumnsFileError(ValueError):
    """The packaged Hart 2016 header file disagrees with the built-in tree."""


def answer_prefixes() -> list[str]:
    """All 37 answer prefixes ``<task>_<answer>`` in catalogue order."""
    return [f"{task}_{ans}" for task, answers in GZ2_TASKS.items() for ans in answers]


def build_columns() -> list[str]:
    """Generate the 231 Hart 2016 column names from :data:`GZ2_TASKS`."""
    cols = list(LEADING_COLUMNS)
    for prefix in answer_prefixes():
        cols.extend(f"{prefix}_{suffix}" for suffix in ANSWER_SUFFIXES)
    return cols


def _load_columns() -> list[str]:
    """Read the packaged header file, falling back to :func:`build_columns`.

    Raises:
        ColumnsFileError: the packaged file exists but differs from the built-in tree.
    """
    built = build_columns()
    try:
        text = resources.files(__package__).joinpath(_PACKAGE_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return built
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if names != built:
        raise ColumnsFileError(f"packaged {_PACKAGE_FILE} does not match the GZ2 tree definition")
    return names


#: The 231 Hart 2016 column names, in file order.
HART16_COLUMNS: list[str] = _load_columns()
