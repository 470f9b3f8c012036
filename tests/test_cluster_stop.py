"""Stopping a sweep on a real two-node Ray cluster (head 127.0.0.2, worker 127.0.0.3, started and
stopped here): Ctrl-C while the cells' distillations run as Ray tasks ends ``kedro run`` within
seconds (a second Ctrl-C does not cut the wait for the node threads short), no task is left
running on either node, and the work that finished (experts, Full baseline, checkpoints) is kept.
The sweep's two cells and its teacher share one object-store copy of their training set."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from _project import copy_project
from _s3 import free_port

pytest.importorskip("ray", reason="the cluster extra is not installed (pip install -e '.[cluster]')")
from test_cluster import BIN, HEAD, ROOT, TINY, _start_cluster  # noqa: E402

pytestmark = pytest.mark.cluster

#: two cells (MTT and STM at IPC 1) whose distillation would run for hours, checkpointing often
LONG_SWEEP = ["sweep.ipcs=[1]", "teacher.n_experts=2", "teacher.epochs=2", "distill.iterations=1000000",
              "distill.syn_steps=2", "distill.expert_epochs=1", "distill.max_start_epoch=2", "distill.eval_every=0",
              "distill.checkpoint_every=2", "distill.max_iter_stage=1000000", "evaluation.full_n_nets=1",
              "evaluation.full_epochs=1"]
STOP_WITHIN_S = 30


def _running_tasks(name: str) -> list[int]:
    """Ray worker processes executing a task ``name`` (Ray titles them ``ray::<task name>``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(f"ray::{name}".encode()):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "DO_NOT_TRACK": "1",
           "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
    for key in [k for k in env if k.startswith(("AWS_", "RAY_ADDRESS", "MLFLOW_"))]:
        env.pop(key)
    port = free_port(HEAD)
    ray_env = {**env, "RAY_agent_register_timeout_ms": "120000"}  # as tests/test_cluster.py
    try:
        _start_cluster(ray_env, port)
        yield {"env": env, "address": f"{HEAD}:{port}",
               "project": copy_project(tmp_path_factory.mktemp("stop_project"), {"tiny": TINY})}
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=120, env=ray_env)


def test_ctrl_c_cancels_the_sweeps_ray_tasks_within_seconds_and_keeps_finished_work(cluster):
    env, project = cluster["env"], cluster["project"]
    kedro = [str(BIN / "kedro"), "run", "--env", "tiny"]
    done = subprocess.run([*kedro, "--pipelines=sky,curation"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    params = ["compute.backend=ray", f"compute.address={cluster['address']}", f"compute.node_ip_address={HEAD}",
              *LONG_SWEEP]
    proc = subprocess.Popen([*kedro, "--pipelines=table", "--params", ",".join(params)], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    data = project / "data"
    try:
        deadline = time.monotonic() + 420
        # both cells' distillations started (on the two 1-CPU nodes) and a checkpoint written
        while not (sum("task distill_cell_task 0 started on" in line for line in list(lines)) >= 2
                   and list(data.glob("07_model_output/checkpoints/**/state.pt"))):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-4000:]
            time.sleep(0.2)
        assert _running_tasks("distill_cell_task"), "the cells' tasks are not visible as Ray worker processes"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # a second Ctrl-C: noted, the wait for the node threads goes on
        proc.wait(timeout=STOP_WITHIN_S)
        stopped_after = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    out = "".join(lines)
    print(f"kedro run exited {proc.returncode} {stopped_after:.1f}s after Ctrl-C")
    assert proc.returncode == 130, out[-4000:]
    assert "galaxy-distillation: interrupted" in out, out[-3000:]
    assert "cancelled 1 Ray task(s)" in out, out[-3000:]
    end = time.monotonic() + 10  # a killed worker process may take a moment to go
    while _running_tasks("distill_cell_task") and time.monotonic() < end:
        time.sleep(0.2)
    assert _running_tasks("distill_cell_task") == [], "a cell's task still runs after the sweep stopped"
    # finished work is kept: the experts, the Full baseline, the cells' checkpoints (to resume)
    assert len(list(data.glob("06_models/experts/**/expert_*.safetensors"))) == 2
    assert list(data.glob("08_reporting/full_*.json"))
    assert len(list(data.glob("07_model_output/checkpoints/**/state.pt"))) >= 1
    # one object-store copy of the training set for the teacher, the Full baseline and both cells
    assert out.count("put a PreparedData into Ray's object store") == 1, out[-3000:]
