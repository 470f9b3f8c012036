"""A throw-away copy of the project for tests that run the real ``kedro`` CLI.

The package itself is the installed (editable) one; the copy has the project's
``pyproject.toml`` and ``conf/`` (without ``conf/local``), an empty ``src/``, telemetry
consent off, and optionally extra configuration environments.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_project(root: Path, envs: dict[str, dict[str, str]] | None = None) -> Path:
    """Copy the project into ``root``; ``envs`` = ``{env: {file name: YAML text}}`` written under ``conf/``."""
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / ".telemetry").write_text("consent: false\n")  # no telemetry prompt (.telemetry is not in git)
    (root / "src").mkdir()
    shutil.copytree(ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    for env, files in (envs or {}).items():
        (root / "conf" / env).mkdir()
        for name, text in files.items():
            (root / "conf" / env / name).write_text(text)
    return root
