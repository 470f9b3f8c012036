"""Every check the parameters and the file system alone decide runs before any node (issue 18):
start epochs against the experts, a local root with a remote cluster, an ``image_size`` that
would do nothing, files that must exist, writable outputs, a broken credentials file. Two
cases go through the real ``kedro run`` (on a bare copy of the configuration, no data) to show
that nothing runs first; the others call the checks directly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _project import copy_project
from galaxy_distillation.errors import ParameterError

KEDRO = str(Path(sys.executable).with_name("kedro"))
PREFIX = "galaxy-distillation: "


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("bare"))


def kedro_run(project: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg",
           "PYTHONWARNINGS": "ignore"}
    env.pop("GD_VERBOSE", None)
    return subprocess.run([KEDRO, "run", *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


def ours(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith(PREFIX)]


# ---------------------------------------------------------------- through kedro run


def test_a_sweep_whose_start_epochs_exceed_the_experts_stops_before_any_expert_is_trained(bare, tmp_path):
    """Before: the sweep trained every expert of the image folder, then failed in its first MTT cell."""
    from galaxy_distillation.datasources.synthetic_folder import make_toy_image_folder

    folder = make_toy_image_folder(tmp_path / "shapes", n_classes=3, n_per_class=6, size=12, seed=0)
    proc = kedro_run(bare, "--pipelines=table", "--params", f"dataset=imagefolder,data_root={folder},"
                     "teacher.epochs=3,teacher.n_experts=1,distill.max_start_epoch=10")
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = ours(proc)
    assert "'distill.max_start_epoch' = 10" in line and "needs 11 expert epochs" in line
    assert "teacher.epochs = 3" in line
    assert "== teacher" not in proc.stderr and not (bare / "data" / "06_models").exists()  # no node ran


def test_an_image_size_that_would_do_nothing_is_refused_by_kedro_run(tmp_path):
    """Before: ``--pipelines=distill --params image_size=30`` on GZ2 curated at 32 px ran every
    iteration at 32 px, exit 0, no word."""
    project = copy_project(tmp_path)
    gz2 = project / "data" / "05_model_input" / "gz2"
    gz2.mkdir(parents=True)
    (gz2 / "meta.json").write_text(json.dumps({"image_size": 32}))  # what curation at 32 px leaves
    proc = kedro_run(project, "--pipelines=distill", "--params", "image_size=30")
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = ours(proc)
    assert line.startswith(f"{PREFIX}invalid parameter 'image_size' = 30: the curated GZ2 data in ")
    assert "is 32 px and this run does not curate" in line


def test_a_local_root_with_a_remote_cluster_is_refused_by_kedro_run_before_any_connection(bare):
    """Before: nothing compared the two; the run went on to reach the cluster, whose nodes could
    not have read this machine's folders (experts, checkpoints)."""
    proc = kedro_run(bare, "--pipelines=teacher", "--params", "compute.backend=ray,compute.address=ray://10.1.2.3:10001")
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = ours(proc)
    assert line == (f"{PREFIX}storage_root 'data' is a local folder but compute.address 'ray://10.1.2.3:10001' is a "
                    "remote Ray cluster whose nodes cannot read it: use an object store (s3://...) for storage_root")


def test_a_missing_mapping_file_is_named_before_any_node(bare, tmp_path):
    """Before: label_catalogue and select_galaxies ran first, then locate_images failed."""
    from galaxy_distillation.sky.writer import simulate_catalogue

    votes = tmp_path / "votes.csv"
    simulate_catalogue(300, seed=0).to_csv(votes, index=False)
    proc = kedro_run(bare, "--pipelines=curation", "--params",
                     f"votes_path={votes},mapping_path={tmp_path / 'nowhere.csv'},image_dir={tmp_path}")
    assert proc.returncode == 1, proc.stderr[-2000:]
    (line,) = ours(proc)
    assert line == f"{PREFIX}filename mapping not found: {tmp_path / 'nowhere.csv'} (parameter mapping_path; see docs/data.md)"
    assert "== curation" not in proc.stderr  # no node started


def test_a_failing_node_prints_two_lines(bare, tmp_path):
    """Before: Kedro's node error (2 lines), its resume suggestion (3), the outputs guard's
    warning and the message with its hint: 8 lines."""
    from galaxy_distillation.sky.writer import simulate_catalogue

    simulate_catalogue(300, seed=0).to_csv(tmp_path / "votes.csv", index=False)
    (tmp_path / "map.csv").write_text("objid,sample,asset_id\n1,original,1\n")
    proc = kedro_run(bare, "--pipelines=curation", "--params",
                     f"votes_path={tmp_path / 'votes.csv'},mapping_path={tmp_path / 'map.csv'},image_dir={tmp_path}")
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    lines = lines[next(i for i, ln in enumerate(lines) if "== curation" in ln) + 1:]
    after = [ln for ln in lines if not re.match(r"\d\d:\d\d:\d\d INFO ", ln)]  # the nodes' progress lines
    assert len(after) == 2, after
    assert after[0].startswith(f"{PREFIX}240 of 240 selected galaxies have no image")
    assert re.match(r"\(\d+ output\(s\) put back as before the run; rerun with --verbose", after[1])


def test_a_broken_credentials_file_is_named_by_kedro_run(tmp_path):
    """Before: kedro-mlflow read it first and the run ended in a 100-line traceback."""
    project = copy_project(tmp_path)
    broken = project / "conf" / "local" / "credentials.yml"
    broken.write_text("storage:\n  aws_access_key_id: [unclosed\n")
    proc = kedro_run(project, "--pipelines=distill")
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = ours(proc)
    assert line.startswith(f"{PREFIX}credentials file {broken} cannot be read (ParserError: ")
    assert "Traceback" not in proc.stderr


def test_a_read_only_storage_root_is_refused_by_kedro_run_before_any_node(bare, tmp_path, request):
    root = tmp_path / "ro"
    root.mkdir()
    _read_only(root, request)
    proc = kedro_run(bare, "--pipelines=sky", "--params", f"storage_root={root}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = ours(proc)
    assert line.startswith(f"{PREFIX}output folder {root} is not writable (") and "storage_root" in line
    assert "== sky" not in proc.stderr  # the node never started


# ---------------------------------------------------------------- the checks, in process


def _table_params(**distill) -> dict:
    from galaxy_distillation.params import DistillParams, TeacherParams

    return {"dataset": "gz2", "method": "stm", "ipc": 1, "teacher": TeacherParams(epochs=3).model_dump(),
            "distill": DistillParams(**{"max_start_epoch": 2, "expert_epochs": 2, **distill}).model_dump(),
            "sweep": {"ipcs": None, "methods": None, "inits": None}}


def test_presets_are_checked_against_the_experts_per_cell():
    """``preset`` values are resolved per cell (MTT GZ2: max_start_epoch 20, expert_epochs 2)."""
    from galaxy_distillation.pipelines.table.pipeline import create_pipeline
    from galaxy_distillation.preflight.checks import check_epochs

    table = create_pipeline()
    check_epochs(_table_params(), table)  # 2 - 1 + 2 = 3 epochs: fits
    with pytest.raises(ParameterError, match=r"'distill.max_start_epoch' = 20: with distill.expert_epochs=2 "
                                             r"\(from the preset\) MTT \(ipc 1\) needs 21 expert epochs") as info:
        check_epochs(_table_params(max_start_epoch="preset", expert_epochs="preset"), table)
    assert "raise teacher.epochs to 21: experts trained with state are grown, not retrained; or lower " \
        "distill.max_start_epoch to 2" in str(info.value) and "\n" not in str(info.value)  # one line
    only_stm = {**_table_params(max_start_epoch=50), "sweep": {"methods": ["stm"]}}
    check_epochs(only_stm, table)  # the MTT cells are not run: STM caps its pool at the expert length


def test_a_local_root_with_a_remote_cluster_is_refused_naming_both():
    from galaxy_distillation.pipelines.table.pipeline import create_pipeline
    from galaxy_distillation.preflight.checks import check_cluster_storage, remote_cluster
    from galaxy_distillation.preflight.credentials import StorageError

    assert [remote_cluster(a) for a in ("", "auto", "127.0.0.2:6379", "ray://localhost:10001", "[::1]:6379")] == [
        False] * 5
    assert remote_cluster("10.1.2.3:6379") and remote_cluster("ray://head.example:10001")
    params = {**_table_params(), "storage_root": "data",
              "compute": {"backend": "ray", "address": "ray://10.1.2.3:10001"}}
    with pytest.raises(StorageError) as info:
        check_cluster_storage(params, create_pipeline())
    assert str(info.value) == ("storage_root 'data' is a local folder but compute.address 'ray://10.1.2.3:10001' is a "
                               "remote Ray cluster whose nodes cannot read it: use an object store (s3://...) for "
                               "storage_root")
    remote = {**params, "storage_root": "s3://bucket/run", "distill": {**params["distill"], "checkpoint_root": "ckpt"}}
    with pytest.raises(StorageError, match="distill.checkpoint_root 'ckpt' is a local folder"):
        check_cluster_storage(remote, create_pipeline())
    check_cluster_storage({**params, "compute": {"backend": "ray", "address": "127.0.0.1:6379"}}, create_pipeline())


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


def test_compute_address_auto_without_a_cluster_is_named_before_any_node(tmp_path, monkeypatch):
    """Before: ``compute.address: auto`` was taken for a local Ray by the checks and reached Ray
    only when the hook connected. Ray's own lookup is used, without connecting: ``RAY_ADDRESS``,
    the address file ``ray start`` writes (under ``RAY_TMPDIR``, a fresh folder here), and a
    scan for Ray processes (isolated here: other sessions on this machine may run Ray)."""
    import socket

    pytest.importorskip("ray")
    from ray._private import services

    from galaxy_distillation.cluster import ComputeError
    from galaxy_distillation.pipelines.table.pipeline import create_pipeline
    from galaxy_distillation.preflight.checks import check_cluster_address, check_cluster_storage, check_run
    from galaxy_distillation.preflight.credentials import StorageError

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.setattr(services, "find_gcs_addresses", frozenset)
    params = {**_table_params(), "storage_root": str(tmp_path / "data"),
              "compute": {"backend": "ray", "address": "auto"}}
    with pytest.raises(ComputeError) as info:
        check_run(params, create_pipeline(), None)
    message = str(info.value)
    assert "\n" not in message and message.startswith("compute.address 'auto': no running Ray cluster found")
    assert "ray start --head" in message

    port = _closed_port()  # a cluster that stopped: its address file is still there
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.2:{port}\n")
    with pytest.raises(ComputeError) as info:
        check_cluster_address(params, create_pipeline())
    assert str(info.value).startswith(f"compute.address 'auto' is '127.0.0.2:{port}' (from "
                                      f"{tmp_path / 'ray' / 'ray_current_cluster'}) but no Ray cluster reachable")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.2:{_closed_port()}")
    with pytest.raises(ComputeError, match=r"compute.address 'auto' is '127.0.0.2:\d+' \(from RAY_ADDRESS\)"):
        check_cluster_address(params, create_pipeline())
    with pytest.raises(ComputeError, match="compute.address 'no-port': expected host:port|invalid compute.address"):
        check_cluster_address({**params, "compute": {"backend": "ray", "address": "no-port"}}, create_pipeline())

    with socket.socket() as server:  # a listening port stands for a live cluster (no Ray is started)
        server.bind(("127.0.0.2", 0))
        server.listen()
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.2:{server.getsockname()[1]}")
        assert check_cluster_address(params, create_pipeline()) == f"127.0.0.2:{server.getsockname()[1]}"
    assert check_cluster_address({**params, "compute": {"backend": "local", "address": "auto"}}, create_pipeline()) is None
    with pytest.raises(StorageError, match=r"compute.address 'auto' \(10.1.2.3:6379\) is a remote Ray cluster"):
        check_cluster_storage({**params, "storage_root": "data"}, create_pipeline(), "10.1.2.3:6379")


def _model_input_catalog(tmp_path: Path, size: int):
    from kedro.io import DataCatalog

    from galaxy_distillation.datasets import ModelInputDataset

    gz2 = tmp_path / "gz2"
    gz2.mkdir()
    (gz2 / "meta.json").write_text(json.dumps({"image_size": size}))
    return DataCatalog({"model_input": ModelInputDataset("gz2", gz2_dir=str(gz2))})


def test_an_image_size_that_would_do_nothing_is_refused(tmp_path):
    """Before: `--pipelines=distill --params image_size=30` distilled the curated 32 px images."""
    from galaxy_distillation.pipelines import curation, distill
    from galaxy_distillation.preflight.checks import check_image_size

    catalog = _model_input_catalog(tmp_path, 32)
    params = {"dataset": "gz2"}
    with pytest.raises(ParameterError) as info:
        check_image_size(params, {"image_size": 30}, distill.create_pipeline(), catalog)
    message = str(info.value)
    assert message.startswith("invalid parameter 'image_size' = 30: the curated GZ2 data in ") and "is 32 px" in message
    assert "--pipelines=curation --params image_size=30" in message and "\n" not in message
    check_image_size(params, {"image_size": 32}, distill.create_pipeline(), catalog)  # the data's size: acts
    check_image_size(params, {"image_size": 30}, curation.create_pipeline(), catalog)  # curation resizes: acts
    check_image_size(params, {}, distill.create_pipeline(), catalog)  # not given: nothing to refuse
    with pytest.raises(ParameterError, match=r"'image_size' = 30: cifar10 images are 32 px"):
        check_image_size({"dataset": "cifar10"}, {"image_size": 30}, distill.create_pipeline(), catalog)


def _read_only(folder: Path, request) -> None:
    """Make ``folder`` refuse new files, also for root (the immutable attribute)."""
    folder.chmod(0o555)
    request.addfinalizer(lambda: folder.chmod(0o755))
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
        request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(folder)], check=False))  # runs first
    with pytest.raises(OSError):  # the precondition: this folder really is read-only here
        (folder / "probe").write_text("x")


def test_a_read_only_output_folder_is_refused_before_compute(tmp_path, request):
    """Before: it failed after every iteration, in 11 lines, with a hint about free space."""
    from kedro.io import DataCatalog
    from kedro.pipeline import node, pipeline

    from galaxy_distillation.datasets import TensorDictDataset
    from galaxy_distillation.preflight.checks import check_writable
    from galaxy_distillation.preflight.credentials import StorageError

    out = tmp_path / "out"
    out.mkdir()
    catalog = DataCatalog({"distilled_set": TensorDictDataset(str(out / "run" / "distilled.safetensors"))})
    pipe = pipeline([node(lambda: {}, None, "distilled_set", name="distill")])
    check_writable({}, pipe, catalog)  # writable: passes, leaves nothing behind
    assert list(out.iterdir()) == []
    _read_only(out, request)
    with pytest.raises(StorageError) as info:
        check_writable({}, pipe, catalog)
    assert str(info.value).startswith(f"output folder {out} is not writable (")
    assert "dataset 'distilled_set'" in str(info.value) and "\n" not in str(info.value)
    assert "free space" not in str(info.value)
    with pytest.raises(StorageError, match="distill.checkpoint_root"):
        check_writable({"distill": {"checkpoint_root": str(out / "ckpt")}},
                       pipeline([node(lambda d: d, "params:distill", "x", name="d")]), DataCatalog())


def test_a_broken_credentials_file_is_named(tmp_path):
    """Before: any error reading credentials.yml was swallowed (no credentials, later a vague failure)."""
    from kedro.config import OmegaConfigLoader

    from galaxy_distillation.preflight.credentials import StorageError
    from galaxy_distillation.preflight.hook import ClusterHook

    (tmp_path / "base").mkdir()
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "credentials.yml").write_text("storage:\n  aws_access_key_id: [unclosed\n")

    class Context:
        config_loader = OmegaConfigLoader(str(tmp_path), base_env="base", default_run_env="local")

    with pytest.raises(StorageError) as info:
        ClusterHook().after_context_created(Context())
    message = str(info.value)
    assert message.startswith(f"credentials file {tmp_path / 'local' / 'credentials.yml'} cannot be read (")
    assert "\n" not in message
    (tmp_path / "local" / "credentials.yml").unlink()
    ClusterHook().after_context_created(Context())  # no credentials file at all: fine


# ---------------------------------------------------------------- messages


def test_a_misspelt_nested_key_gets_a_did_you_mean():
    from galaxy_distillation.params import validate_parameters

    with pytest.raises(ParameterError) as info:
        validate_parameters({"distill": {"lr_imgg": 100}})
    assert str(info.value) == "invalid parameter 'distill.lr_imgg' = 100: unknown parameter; did you mean 'distill.lr_img'?"


def test_a_bad_value_of_a_preset_field_names_the_parameter_and_the_value():
    """Before: ``'distill.lr_img.constrained-float' = None``."""
    from galaxy_distillation.params import validate_parameters

    with pytest.raises(ParameterError) as info:
        validate_parameters({"distill": {"lr_img": "abc"}})
    assert str(info.value) == "invalid parameter 'distill.lr_img' = 'abc': expected a number or 'preset'"
    with pytest.raises(ParameterError) as info:
        validate_parameters({"distill": {"lr_img": -1}})
    assert str(info.value) == "invalid parameter 'distill.lr_img' = -1: expected a number > 0 or 'preset'"


def test_an_error_inside_a_node_is_at_most_two_lines(tmp_path, monkeypatch, capsys, caplog):
    """A planted pickle in a checkpoint: before, 21 lines (torch's advice, Kedro's node error and
    its resume suggestion); now the message in two lines naming the checkpoint, and the hint."""
    import pickle

    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.io import DataCatalog
    from kedro.pipeline import node, pipeline
    from kedro.runner import SequentialRunner

    import galaxy_distillation.cli as cli
    from galaxy_distillation.engine.checkpoint import load_state
    from galaxy_distillation.logs import quiet_third_party_warnings

    folder = tmp_path / "ckpt"
    folder.mkdir()

    class Planted:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "state.pt").write_bytes(pickle.dumps(Planted()))
    pipe = pipeline([node(lambda: 1, None, "a", name="first"), node(lambda a: load_state(folder), "a", "b", name="resume"),
                     node(lambda b: b, "b", "c", name="after")])
    monkeypatch.setattr(cli._kedro_run, "callback",
                        lambda **kw: SequentialRunner().run(pipe, DataCatalog(), _create_hook_manager()))
    monkeypatch.delenv("GD_VERBOSE", raising=False)
    quiet_third_party_warnings()  # as settings.py does in every run (torch's pickle-protocol warning)
    capsys.readouterr()
    with caplog.at_level("WARNING"), pytest.raises(SystemExit) as info:
        cli.guarded_run(env=None, conf_source=None)
    err = capsys.readouterr().err.splitlines()
    assert info.value.code == 1
    message = [ln for ln in err if not ln.startswith("(rerun with")]
    assert 1 <= len(message) <= 2 and message[0].startswith(f"{PREFIX}could not read checkpoint {folder}")
    assert "delete" in message[-1]
    assert not [r for r in caplog.records if r.name.startswith("kedro")]  # no node error, no resume suggestion
    assert err[-1].startswith("(rerun with --verbose")


def test_one_boolean_parser():
    import re

    from galaxy_distillation import cli, tracking

    root = Path(__file__).resolve().parents[1] / "src"
    words = re.compile(r"""["']yes["']\s*,|["']on["']\s*[,}]""")
    found = [str(p.relative_to(root)) for p in root.rglob("*.py") if words.search(p.read_text())]
    assert found == ["galaxy_distillation/params.py"]
    assert tracking._flag("y") == "aug" and tracking._flag("off") == "plain"
    for value, expected in (("y", True), ("off", False), ("", False)):
        os.environ["GD_VERBOSE"] = value
        try:
            assert cli.verbose_from_env() is expected
        finally:
            del os.environ["GD_VERBOSE"]


# ---------------------------------------------------------------- outputs, image folders, tracking


def test_two_runs_on_one_root_never_restore_each_others_files(tmp_path, monkeypatch):
    """Before: both used `.<name>.gd-prev`; run B deleted run A's backup, A's rollback lost the file."""
    import torch
    from kedro.io import DataCatalog

    from galaxy_distillation.datasets import TensorDictDataset
    from galaxy_distillation.outputs import RunOutputsGuard

    monkeypatch.chdir(tmp_path)
    ds = TensorDictDataset("out/a.safetensors")
    ds.save({"x": torch.zeros(1)})
    catalog = DataCatalog({"a": ds})
    run_a, run_b = RunOutputsGuard(), RunOutputsGuard()
    for guard in (run_a, run_b):
        guard.before_pipeline_run(run_params={}, pipeline=None, catalog=catalog)
    run_a.before_dataset_saved(dataset_name="a", data=None, node=None)
    ds.save({"x": torch.ones(1)})
    run_b.before_dataset_saved(dataset_name="a", data=None, node=None)
    ds.save({"x": torch.full((1,), 2.0)})
    backups = sorted(p.name for p in Path("out").iterdir() if p.name != "a.safetensors")
    assert len(backups) == 2 and run_a.run_id != run_b.run_id
    run_b.after_pipeline_run(run_params={}, run_result={}, pipeline=None, catalog=catalog)
    run_a.rollback()
    assert ds.load()["x"].item() == 0.0  # A put back what was there before A
    assert sorted(p.name for p in Path("out").iterdir()) == ["a.safetensors"]


def test_an_image_folder_never_follows_links_out_of_its_root(tmp_path):
    """Before: a linked folder became a class and /etc/passwd was opened as an image."""
    import numpy as np
    from PIL import Image

    from galaxy_distillation.datasources import DataSourceWarning, load_image_folder

    root = tmp_path / "images"
    outside = tmp_path / "elsewhere"
    for folder, n in ((root / "a", 3), (root / "b", 3), (outside / "c", 3)):
        folder.mkdir(parents=True)
        for k in range(n):
            Image.fromarray(np.full((6, 6, 3), 40 * k, np.uint8)).save(folder / f"{k}.png")
    (root / "linked").symlink_to(outside / "c")  # a class folder out of the root
    (root / "a" / "passwd.png").symlink_to("/etc/passwd")  # a file out of the root
    (root / "b" / "inside.png").symlink_to(root / "a" / "0.png")  # inside the root: followed
    with pytest.warns(DataSourceWarning, match=r"skipped 2 symbolic link\(s\) leading out of the folder"):
        ds = load_image_folder(root, image_size=4, progress=False)
    assert ds.class_names == ["a", "b"]
    assert sorted(ds.report["skipped_links"]) == ["a/passwd.png", "linked"]
    assert ds.report["n_unreadable"] == 0 and ds.report["n_image_files"] == 7


def test_log_curve_sends_metric_histories_in_a_few_requests(tmp_path, monkeypatch):
    import mlflow

    from galaxy_distillation import tracking

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    calls = {"log_batch": 0, "log_metrics": 0, "log_metric": 0}
    real_batch = mlflow.MlflowClient.log_batch

    def counted(self, *args, **kwargs):
        calls["log_batch"] += 1
        return real_batch(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "log_batch", counted)
    for name in ("log_metrics", "log_metric"):
        monkeypatch.setattr(mlflow, name, lambda *a, _n=name, **k: calls.__setitem__(_n, calls[_n] + 1))
    rows = [{"iteration": i, "test_acc": float(i), "loss": 1.0 / (i + 1), "T": 1} for i in range(600)]
    with mlflow.start_run() as run:
        assert tracking.log_curve(rows) == 600
    assert calls == {"log_batch": 2, "log_metrics": 0, "log_metric": 0}  # 1800 points, 1000 per request
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "test_acc")
    assert sorted((m.step, m.value) for m in history) == [(i, float(i)) for i in range(600)]


@pytest.mark.parametrize(("runtime", "dataset", "words"), [
    ({"seed": 3}, "gz2", "'seed' = 3: does nothing; no stage reads the top-level seed"),
    ({"variant": "mine"}, "gz2", "'variant' = 'mine': does nothing; the variant name is made from"),
    ({"mock_sky_dir": "x"}, "gz2", "'mock_sky_dir' = 'x': does nothing; the mock sky folder is sky.out_dir"),
    ({"sweep_cells.table.stm_ipc1_real_plain.ipc": 3}, "gz2",
     "'sweep_cells.table.stm_ipc1_real_plain.ipc' = 3: does nothing; the tables' cells are fixed by the code"),
    ({"data_root": "d"}, "gz2", "'data_root' = 'd': does nothing with dataset=gz2"),
    ({"fraction": "debiased"}, "cifar10", "'fraction' = 'debiased': does nothing with dataset=cifar10"),
    ({"augmented": True}, "imagefolder", "'augmented' = True: does nothing with dataset=imagefolder"),
])
def test_a_top_level_parameter_no_stage_reads_is_refused(runtime, dataset, words):
    from galaxy_distillation.hooks import refuse_ignored

    with pytest.raises(ParameterError) as info:
        refuse_ignored(runtime, {"dataset": dataset})
    assert str(info.value).startswith(f"invalid parameter {words}") and "\n" not in str(info.value)


def test_top_level_parameters_that_act_pass():
    from galaxy_distillation.hooks import refuse_ignored

    refuse_ignored({"data_root": "d", "augmented": False}, {"dataset": "imagefolder"})
    refuse_ignored({"fraction": "debiased", "augmented": "yes"}, {"dataset": "gz2"})


def test_a_full_disk_under_a_kedro_dataset_names_the_file(tmp_path, monkeypatch):
    """pandas writes through a file handle: its ENOSPC carries no file name; the dataset's does."""
    import errno

    import pandas as pd
    from kedro.io import DatasetError
    from kedro_datasets.pandas import CSVDataset

    from galaxy_distillation.cli import user_message

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    path = tmp_path / "history.csv"
    with pytest.raises(DatasetError) as info:
        CSVDataset(filepath=str(path)).save(pd.DataFrame({"a": [1]}))
    message, code = user_message(info.value)
    assert message == f"OSError writing or reading {path}: [Errno 28] No space left on device" and code == 1
