"""Hart 2016 column layout."""

import re
from pathlib import Path

from galaxy_distillation.sky.columns import ANSWER_SUFFIXES, HART16_COLUMNS, answer_prefixes, build_columns


def _shared_dir() -> Path:
    """``../shared`` beside the checkout (as in CI), else the workplace's ``/work/shared``."""
    root = Path(__file__).resolve().parents[2]
    for candidate in (root.parent / "shared", Path("/work/shared")):
        if (candidate / "data").is_dir():
            return candidate
    return root.parent / "shared"


SHARED = _shared_dir() / "data/gz2_hart16_columns.txt"
PACKAGED = Path(__file__).resolve().parents[2] / "src/galaxy_distillation/sky/gz2_hart16_columns.txt"


def _read(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def test_231_columns_in_file_order():
    assert len(HART16_COLUMNS) == 231
    assert len(set(HART16_COLUMNS)) == 231
    assert HART16_COLUMNS == _read(PACKAGED) == build_columns()
    if SHARED.exists():  # the reference copy (read-only, outside the package)
        assert HART16_COLUMNS == _read(SHARED)


def test_answers_numbering():
    prefixes = answer_prefixes()
    assert len(prefixes) == 37
    numbers = sorted(int(re.search(r"_a(\d\d)_", p).group(1)) for p in prefixes)
    assert numbers == [n for n in range(1, 39) if n != 35]
    assert HART16_COLUMNS[9:15] == [f"{prefixes[0]}_{s}" for s in ANSWER_SUFFIXES]
