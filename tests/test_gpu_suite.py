"""benchmarks/gpu_suite.py at reduced shapes on the CPU: every row of the table, a finite Table 2 estimate."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_gpu_suite_runs_at_reduced_shapes_and_fills_every_row(tmp_path):
    from gpu_suite import ROW_KEYS  # noqa: PLC0415 - benchmarks/ is not a package

    out = tmp_path / "suite.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_suite.py"), "--cpu-shapes", "--budget", "400",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = out.read_text()
    data = json.loads(Path(str(out) + ".json").read_text())
    rows = {r["key"]: r for r in data["rows"]}
    assert list(rows) == ROW_KEYS
    assert data["errors"] == [], data["errors"]
    for key, row in rows.items():
        assert row["what"] in table
        if key.startswith(("stm_", "eval_", "expert_", "table2_")) or key in ("count_aten_per_step", "count_syncs",
                                                                            "count_kernels"):
            assert row["after"] is not None and math.isfinite(row["after"]) and row["after"] > 0, row
    assert data["estimate"]["total"] > 0 and math.isfinite(data["estimate"]["total"])
    # before (per-step draws, each scalar read alone) and after (one draw, one read per iteration)
    syncs = rows["count_syncs"]
    assert syncs["after"] == 1 and syncs["before"] > syncs["after"]
    assert rows["stm_checkpoint:gz2_ipc1"]["before"] > 0
    assert "Table 2 estimate: total" in proc.stdout
    # side by side: the paper's 50 expert epochs and teacher.epochs reach (STM code schedule: T cap 29 -> 30 read)
    assert "Table 2 experts: teacher.epochs 50: " in proc.stdout and "| teacher.epochs reach (30): " in proc.stdout
    est = data["estimate"]
    assert math.isclose(rows["table2_experts_reach"]["after"], rows["table2_experts"]["after"] * 30 / 50)
    assert math.isclose(est["total"] - est["total_reach"], est["experts"] - est["experts_reach"])
    # cells batched (sweep.batched: true): the IPC 1 group at the measured K = 4 seconds, IPC 10 (not measured) alone
    assert "Table 2 cells batched (sweep.batched: true): distill " in proc.stdout
    assert est["batched_ipcs"] == [1] and "IPC 10" in rows["table2_distill_batched"]["note"]
    assert math.isclose(est["total"] - est["total_batched"], est["distill"] - est["distill_batched"])
    # batched distillations: every K's row beside one run alone; K = 4 shares the network's ops among its runs
    for key in [k for k in ROW_KEYS if k.startswith("batched_")]:
        assert rows[key]["before"] > 0 and rows[key]["after"] > 0, rows[key]
    for metric in ("aten", "aten_compute"):
        assert rows[f"batched_{metric}:k4"]["after"] < 0.75 * rows[f"batched_{metric}:k1"]["before"]


def test_the_batched_table2_estimate_costs_each_group_of_cells_at_its_measured_batched_seconds():
    from _suite_estimate import table2_hours  # noqa: PLC0415 - benchmarks/ is not a package
    from galaxy_distillation.presets import preset_for

    units = {"s_it": {1: 2.0, 10: 3.0}, "eval_s": {1: 10.0, 10: 20.0}, "expert_ips": 1000.0, "expert_ips_one": 500.0}
    alone = table2_hours(units)
    its = {ipc: int(preset_for("gz2", "stm", ipc, "code")["iterations"]) for ipc in (1, 10)}
    assert math.isclose(alone["distill"], 4 * (its[1] * 2.0 + its[10] * 3.0) / 3600)
    assert alone["distill_batched"] == alone["distill"] and alone["batched_ipcs"] == []
    assert alone["batched_missing"] == [f"IPC {i} (no batched measurement at its shape; its group has 4 cells)"
                                        for i in (1, 10)]
    both = table2_hours({**units, "s_it_batched": {1: (4, 0.5)}})
    assert both["batched_ipcs"] == [1] and len(both["batched_missing"]) == 1
    assert math.isclose(both["distill_batched"], 4 * (its[1] * 0.5 + its[10] * 3.0) / 3600)
    assert math.isclose(both["total"] - both["total_batched"], both["distill"] - both["distill_batched"])
    assert table2_hours({**units, "s_it_batched": {1: (2, 0.5)}})["batched_ipcs"] == []  # K is not the group's size
