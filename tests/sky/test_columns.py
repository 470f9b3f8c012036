"""Hart 2016 column layout."""

import re
from pathlib import Path

from galaxy_distillation.sky.columns import ANSWER_SUFFIXES, HART16_COLUMNS, answer_prefixes, build_columns

SHARED = Path(__file__).resolve().parents[1] / "data/gz2_hart16_columns.txt"  # the reference copy (tests/data)
PACKAGED = Path(__file__).resolve().parents[2] / "src/galaxy_distillation/sky/gz2_hart16_columns.txt"


def _read(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def test_231_columns_in_file_order():
    assert len(HART16_COLUMNS) == 231
    assert len(set(HART16_COLUMNS)) == 231
    assert HART16_COLUMNS == _read(PACKAGED) == build_columns()
    assert HART16_COLUMNS == _read(SHARED)  # the reference copy in tests/data


def test_answers_numbering():
    prefixes = answer_prefixes()
    assert len(prefixes) == 37
    numbers = sorted(int(re.search(r"_a(\d\d)_", p).group(1)) for p in prefixes)
    assert numbers == [n for n in range(1, 39) if n != 35]
    assert HART16_COLUMNS[9:15] == [f"{prefixes[0]}_{s}" for s in ANSWER_SUFFIXES]
