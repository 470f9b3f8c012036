"""Beyond one machine, on loopback only: a real two-node Ray cluster (head 127.0.0.2, worker
127.0.0.3), a moto S3 server and an MLflow tracking server on 127.0.0.1, each started here and
stopped here. ``kedro run --pipelines=sky,curation,teacher`` with ``compute.backend=ray`` and
``storage_root=s3://...`` puts the experts in the bucket, equal to a local run of the same
seeds, with the MLflow run on the server; the worker's raylet is killed mid-run and its task
is retried on the head; a re-run trains nothing; bad settings fail before any training with
one line naming them."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from _project import copy_project
from _s3 import free_port as _free_port

ray = pytest.importorskip("ray", reason="the cluster extra is not installed (pip install -e '.[cluster]')")
boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")
pytest.importorskip("moto")

from safetensors.torch import load as load_bytes  # noqa: E402

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HEAD, WORKER = "127.0.0.2", "127.0.0.3"
BUCKET = "gd-bucket"

TINY = {
    "parameters_sky.yml": "sky: {n_galaxies: 110, seed: 3, n_workers: 1, progress: false}\n",
    "parameters_curation.yml": """
curation: {fraction: fraction, k_per_class: 6, n_train_per_class: 4, seed: 1, on_shortfall: take, image_size: 16,
           rotations: 2, max_missing_fraction: 0.05, montage_per_class: 2, n_workers: 1}
""",
    "parameters_teacher.yml": "teacher: {n_experts: 2, epochs: 100, lr: 0.01, batch_size: 16, seed: 0}\n",
    "parameters.yml": """
model: {arch: convnet, width: 8, depth: 2, norm: instancenorm, pooling: avgpooling, activation: relu}
progress: false
device: cpu
""",
}


def _wait_port(host: str, port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{what} did not listen on {host}:{port} within {timeout}s")


def _raylet_pid(node_ip: str) -> int | None:
    """The raylet of the node at ``node_ip`` (by process name and its node_ip_address argument)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if name == "raylet" and any(a.endswith(f"node_ip_address={node_ip}".encode()) for a in args):
            return int(entry.name)
    return None


def _children(ppid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def _ray_start(env: dict, *args: str) -> None:
    proc = subprocess.run([str(BIN / "ray"), "start", *args, "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"],
                          env=env, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise AssertionError(f"ray start {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _start_cluster(env: dict, port: int, tries: int = 3) -> None:
    """Head then worker; once more from scratch if a node misses Ray's fixed 30 s start-up window (busy machine)."""
    for attempt in range(tries):
        try:
            _ray_start(env, "--head", f"--node-ip-address={HEAD}", f"--port={port}", "--include-dashboard=false")
            _ray_start(env, f"--address={HEAD}:{port}", f"--node-ip-address={WORKER}")
            return
        except AssertionError:
            subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=120, env=env)
            if attempt == tries - 1:
                raise


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """moto S3 + MLflow server on 127.0.0.1 and a two-node Ray cluster on 127.0.0.2/.3."""
    tmp = tmp_path_factory.mktemp("services")
    s3_port, mlflow_port, ray_port = _free_port(), _free_port(), _free_port(HEAD)
    base_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "DO_NOT_TRACK": "1",
                "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore",
                "RAY_USAGE_STATS_ENABLED": "0"}
    for key in [k for k in base_env if k.startswith(("AWS_", "RAY_ADDRESS", "MLFLOW_"))]:
        base_env.pop(key)
    procs: list[subprocess.Popen] = []
    # a busy 2-core machine: give the nodes' agents longer to start; notice a dead node within ~2 s
    ray_env = {**base_env, "RAY_agent_register_timeout_ms": "120000", "RAY_health_check_period_ms": "500",
               "RAY_health_check_failure_threshold": "4"}
    try:
        _start_cluster(ray_env, ray_port)  # first, alone: Ray's start-up has fixed time limits
        procs.append(subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=base_env))
        procs.append(subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--artifacts-destination", str(tmp / "artifacts")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=base_env, cwd=tmp))
        _wait_port("127.0.0.1", s3_port, procs[0], "moto_server")
        _wait_port("127.0.0.1", mlflow_port, procs[1], "mlflow server", timeout=120)
        aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}", "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"), "AWS_CONFIG_FILE": str(tmp / "none")}
        s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        # RAY_DEDUP_LOGS=0: the driver prints each task's "task i started" line at once
        env = {**base_env, **aws, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}", "RAY_DEDUP_LOGS": "0"}
        yield {"env": env, "s3": s3, "ray_address": f"{HEAD}:{ray_port}", "mlflow": env["MLFLOW_TRACKING_URI"],
               "s3_port": s3_port, "ray_env": ray_env}
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=120, env=ray_env)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("cluster_project"), {"tiny": TINY})


def kedro(project: Path, env: dict, *params: str, wait: bool = True, pipelines: str = "sky,curation,teacher"):
    cmd = [str(BIN / "kedro"), "run", "--env", "tiny", f"--pipelines={pipelines}"]
    if params:
        cmd += ["--params", ",".join(params)]
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def _ray_params(services, root: str = f"s3://{BUCKET}/run") -> list[str]:
    return ["compute.backend=ray", f"compute.address={services['ray_address']}", f"compute.node_ip_address={HEAD}",
            f"storage_root={root}", "teacher.n_experts=4"]


def _bucket_experts(s3) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="run/06_models/experts/mock_plain/")
    return {o["Key"].rsplit("/", 1)[1]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            for o in listing.get("Contents", [])}


def _local_reference(services, project) -> dict[str, object]:
    """The same teacher node on the local backend, on the model input the ray run wrote to the bucket."""
    from galaxy_distillation.datasets import ModelInputDataset
    from galaxy_distillation.pipelines.teacher.nodes import train_experts

    env = services["env"]
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: env[k] for k in keys})
    try:
        import fsspec

        fsspec.filesystem("s3").clear_instance_cache()
        model_input = ModelInputDataset(gz2_dir=f"s3://{BUCKET}/run/05_model_input/gz2").load()
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    import yaml

    from galaxy_distillation.params import ArchParams, ComputeParams, TeacherParams
    from galaxy_distillation.pipelines.prepare.nodes import prepare

    teacher = TeacherParams(**{**yaml.safe_load(TINY["parameters_teacher.yml"])["teacher"], "n_experts": 4})
    model = ArchParams(**yaml.safe_load(TINY["parameters.yml"])["model"])
    import torch

    from galaxy_distillation.compute import task_threads

    data, _ = prepare(model_input, teacher)
    before = torch.get_num_threads()
    torch.set_num_threads(task_threads(ComputeParams().cpus_per_task))  # a Ray task's thread count
    try:
        chunks = list(train_experts(data, teacher, model, "cpu", False, {}, ComputeParams()))
    finally:
        torch.set_num_threads(before)
    return {f"expert_{c['index']:04d}.safetensors": c["trajectory"].params for c in chunks[1:]}


def test_ray_run_on_s3_survives_a_dead_node_equals_local_and_reruns_nothing(services, project):
    env = services["env"]
    t0 = time.monotonic()
    proc = kedro(project, env, *_ray_params(services), wait=False)
    raylet = _raylet_pid(WORKER)
    assert raylet is not None, "the worker node's raylet is not running"
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    # Ray forwards each task's "task i started on <node>" line to the driver
    while not any(f"started on {WORKER}" in line for line in list(lines)):
        assert proc.poll() is None and time.monotonic() < deadline, "no task ever started on the worker node:\n" + "".join(lines)[-3000:]
        time.sleep(0.05)
    # the worker node dies mid-task: its raylet and the worker processes it started (`ray stop` would stop both nodes)
    for pid in [raylet, *_children(raylet)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    print(f"worker raylet killed after {time.monotonic() - t0:.1f}s")
    proc.wait(timeout=300)
    reader.join(timeout=30)
    out = "".join(lines)
    print(f"ray run done after {time.monotonic() - t0:.1f}s")
    assert proc.returncode == 0, out[-4000:]
    assert "experts: 4 done, 0 failed" in out and re.search(r"experts \(bank-[0-9a-f]+\): 0 kept, 4 to train", out), out[-3000:]
    retried = int(out.split("experts: 4 done, 0 failed, ")[1].split()[0])
    assert retried >= 1, out[-3000:]

    remote = _bucket_experts(services["s3"])
    local = _local_reference(services, project)
    assert sorted(remote) == sorted(local) and len(remote) == 4
    for name, blob in remote.items():
        assert load_bytes(blob)["params"].equal(local[name]), name
    print(f"local reference done after {time.monotonic() - t0:.1f}s")

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=services["mlflow"])
    runs = client.search_runs([client.get_experiment_by_name("galaxy_distillation").experiment_id])
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "teacher.expert_0003.test_acc")
    assert len(history) == 101
    assert client.get_metric_history(runs[0].info.run_id, "teacher.expert_test_acc_mean")
    assert "curation/curation_report.json" in {a.path for a in client.list_artifacts(runs[0].info.run_id, "curation")}

    code, out = kedro(project, env, *_ray_params(services))
    assert code == 0, out[-3000:]
    assert re.search(r"experts \(bank-[0-9a-f]+\): 4 kept, 0 to train", out), out[-3000:]
    assert _bucket_experts(services["s3"]) == remote
    print(f"re-run done after {time.monotonic() - t0:.1f}s")


#: a table sweep cut to the bone: IPC 1 only (an MTT and an STM cell), a few iterations and epochs
SWEEP = ["sweep.ipcs=[1]", "distill.iterations=3", "distill.syn_steps=2", "distill.expert_epochs=1",
         "distill.max_start_epoch=2", "distill.eval_every=0", "evaluation.n_nets=1", "evaluation.epochs=4",
         "evaluation.full_n_nets=1", "evaluation.full_epochs=2"]
CELLS = ("mtt_ipc1_real_plain", "stm_ipc1_real_plain")


def _cell_outputs(s3) -> dict[str, bytes]:
    keys = [o["Key"] for prefix in ("run/07_model_output/", "run/08_reporting/")
            for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
            if any(cell in o["Key"] for cell in CELLS) or "full_mock_plain" in o["Key"]]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def test_table_sweep_runs_its_cells_as_ray_tasks_side_by_side_like_a_local_run(services, project):
    """The cells of a sweep are Ray tasks in flight at once (one per node), logged as MLflow child
    runs; deleting their outputs and running the same sweep locally gives the same bytes."""
    env, s3 = services["env"], services["s3"]
    if _raylet_pid(WORKER) is None:  # the first test killed it: the worker node joins again
        _ray_start(services["ray_env"], f"--address={services['ray_address']}", f"--node-ip-address={WORKER}")
    code, out = kedro(project, env, *_ray_params(services), *SWEEP, pipelines="table")
    assert code == 0, out[-4000:]
    assert re.search(r"experts \(bank-[0-9a-f]+\): 4 kept, 0 to train", out), out[-3000:]  # the experts of the first test, from the bucket
    for cell in CELLS:
        assert f"cell {cell}: 1 done, 0 failed" in out and f"evaluate {cell}: 1 done, 0 failed" in out, out[-3000:]
    # two 1-CPU nodes, two cells submitted together: one cell's task on each node
    nodes = {line.rsplit(" ", 1)[1].strip() for line in out.splitlines() if "task distill_cell_task 0 started on" in line}
    assert nodes == {HEAD, WORKER}, out[-3000:]
    ray_outputs = _cell_outputs(s3)
    for cell in CELLS:
        assert f"run/07_model_output/mock_{cell}/distilled.safetensors" in ray_outputs
    assert s3.get_object(Bucket=BUCKET, Key="run/08_reporting/table_mock.md")["Body"].read().startswith(b"# table: mock")

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=services["mlflow"])
    experiment = client.get_experiment_by_name("galaxy_distillation").experiment_id
    parent = client.search_runs([experiment], "attributes.run_name = 'table'")
    assert len(parent) == 1 and parent[0].data.tags.get("runner") == "ThreadRunner", parent
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent[0].info.run_id}'")
    assert {r.info.run_name for r in children} == {f"cell {cell}" for cell in CELLS}
    assert all(0 <= r.data.metrics["distilled_acc_mean"] <= 100 for r in children)
    assert all(client.get_metric_history(r.info.run_id, "loss") for r in children)

    # the same cells on the local backend, with a Ray task's thread count: the same bytes
    for key in ray_outputs:
        s3.delete_object(Bucket=BUCKET, Key=key)
    for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="run/07_model_output/checkpoints/").get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=o["Key"])
    # the cells' checkpoints are in this machine's folder (both nodes run here): without them the local
    # run computes the cells again instead of resuming (a resumed set records where it resumed from)
    shutil.rmtree(project / "data" / "07_model_output" / "checkpoints", ignore_errors=True)
    local = [p for p in _ray_params(services) if not p.startswith("compute.")]
    code, out = kedro(project, env, *local, *SWEEP, "threads=1", pipelines="table")
    assert code == 0, out[-4000:]
    assert all(f"cell {cell}: 1 done, 0 failed" in out for cell in CELLS), out[-3000:]  # computed again, here
    assert "started on" not in out  # no Ray task this time
    local_outputs = _cell_outputs(s3)
    assert sorted(local_outputs) == sorted(ray_outputs)
    for key, blob in ray_outputs.items():
        if key.endswith((".safetensors", ".csv")) and not key.endswith("history.csv"):
            assert local_outputs[key] == blob, key
    for cell in CELLS:
        import json

        ray_eval = json.loads(ray_outputs[f"run/08_reporting/evaluation_mock_{cell}.json"])
        local_eval = json.loads(local_outputs[f"run/08_reporting/evaluation_mock_{cell}.json"])
        assert ray_eval["distilled_accs"] == local_eval["distilled_accs"], cell
        assert ray_eval["random_accs"] == local_eval["random_accs"], cell


def test_compare_runs_every_trial_as_a_ray_task(services, project):
    """Figure 2's runs (method x seed) and Figure 3's (each lambda) are Ray tasks, each curve an MLflow child run."""
    env, s3 = services["env"], services["s3"]
    if _raylet_pid(WORKER) is None:
        _ray_start(services["ray_env"], f"--address={services['ray_address']}", f"--node-ip-address={WORKER}")
    compare = ["compare.seeds=[0]", "compare.iterations=2", "compare.eval_every=2",
               "compare.eval_nets=1", "compare.eval_epochs=2", "compare.lambdas=[5]", "distill.syn_steps=2",
               "distill.expert_epochs=1", "distill.max_start_epoch=2"]
    code, out = kedro(project, env, *_ray_params(services), *compare, pipelines="compare")
    assert code == 0, out[-4000:]
    assert "comparison runs: 2 done, 0 failed" in out and "comparison runs: 1 done, 0 failed" in out, out[-3000:]
    # three Ray tasks, each logged once by the driver as it comes back (a worker's own lines may be
    # forwarded more than once, and one worker process may run several tasks)
    back = [line for line in out.splitlines() if "curve_task" in line and "came back from node 127.0.0." in line]
    assert len(back) == 3, out[-3000:]
    import pandas as pd

    body = s3.get_object(Bucket=BUCKET, Key="run/08_reporting/compare_mock_ipc1_plain.csv")["Body"]
    curves = pd.read_csv(body)
    assert set(curves["method"]) == {"mtt", "stm"} and curves["iteration"].max() == 2

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=services["mlflow"])
    experiment = client.get_experiment_by_name("galaxy_distillation").experiment_id
    parent = client.search_runs([experiment], "attributes.run_name LIKE 'compare%'")
    assert len(parent) == 1 and parent[0].data.tags.get("runner") == "ThreadRunner"
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent[0].info.run_id}'")
    assert {r.info.run_name for r in children} == {"mtt seed 0", "stm seed 0", "stm lambda 5 seed 0"}
    assert all(client.get_metric_history(r.info.run_id, "test_acc") for r in children)


def test_bad_cluster_settings_fail_before_training_with_one_line(services, project):
    cases = {}
    for case in ("address", "bucket", "credential"):
        env = dict(services["env"])
        params = _ray_params(services, root=f"s3://{BUCKET}/bad")
        if case == "address":
            bad = f"{HEAD}:{_free_port(HEAD)}"
            params[1] = f"compute.address={bad}"
            expected = f"galaxy-distillation: compute.address '{bad}'"
        elif case == "bucket":
            env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{_free_port()}"
            expected = f"galaxy-distillation: storage_root 's3://{BUCKET}/bad': cannot reach the bucket"
        else:
            env.pop("AWS_ACCESS_KEY_ID"), env.pop("AWS_SECRET_ACCESS_KEY")
            expected = f"galaxy-distillation: storage_root 's3://{BUCKET}/bad': no credentials"
        cmd = [str(BIN / "kedro"), "run", "--env", "tiny", "--pipelines=teacher", "--params", ",".join(params)]
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cases[case] = (proc, expected)
    for case, (proc, expected) in cases.items():  # the three run side by side
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (case, out[-2000:], err[-2000:])
        lines = [line for line in err.splitlines() if line.startswith("galaxy-distillation:")]
        assert len(lines) == 1 and lines[0].startswith(expected), (case, err[-2000:])
    listing = services["s3"].list_objects_v2(Bucket=BUCKET, Prefix="bad/")
    assert listing.get("KeyCount", 0) == 0
