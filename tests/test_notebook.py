"""notebooks/explore_distilled.ipynb runs top to bottom (nbconvert --execute, the venv's
kernel) on the small `smoke` configuration of the end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from test_pipelines_e2e import ROOT, project  # noqa: F401 - the smoke project fixture


def test_explore_notebook_runs_top_to_bottom_on_the_smoke_run(project, tmp_path):  # noqa: F811
    notebooks = project / "notebooks"
    notebooks.mkdir(exist_ok=True)
    shutil.copy(ROOT / "notebooks" / "explore_distilled.ipynb", notebooks / "explore_distilled.ipynb")
    out = tmp_path / "executed.ipynb"
    env = {**os.environ, "KEDRO_ENV": "smoke", "DO_NOT_TRACK": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=300",
         "--ExecutePreprocessor.kernel_name=python3", "--output", str(out), str(notebooks / "explore_distilled.ipynb")],
        cwd=notebooks, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = json.loads(out.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "variant: gz2_stm_ipc1_real_plain" in text
    for name in ("distilled", "random", "full"):
        assert f"{name:>9}: " in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # the grid and the curves
    assert "distilled_set: run 'all gz2_stm_ipc1_real_plain'" in text  # the provenance sidecar


def test_committed_notebook_ships_with_its_outputs():
    cells = json.loads((ROOT / "notebooks" / "explore_distilled.ipynb").read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code)
    assert sum(any("image/png" in o.get("data", {}) for o in c.get("outputs", [])) for c in code) == 2
