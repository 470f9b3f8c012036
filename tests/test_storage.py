"""Every artefact under ``storage_root``, on a moto S3 server on 127.0.0.1 (started and stopped
here; skipped where the cluster extra is not installed): distillation checkpoints in a bucket
resume exactly like local ones, the mock sky and curation run from and into a bucket with
nothing under the project's ``data/``, the mock sky's safety rules hold on the bucket, a remote
image folder is mirrored file by file, and every catalog entry (the sweeps' too) lives under
the root."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _project import copy_project
from _s3 import moto_s3
from galaxy_distillation.storage import FileStore, checkpoint_location, mirror_files

pytest.importorskip("s3fs")
pytest.importorskip("boto3")
pytest.importorskip("moto")

ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))
BUCKET = "gd-storage"

TINY = {
    "parameters_sky.yml": "sky: {n_galaxies: 110, seed: 3, n_workers: 1, progress: false}\n",
    "parameters_curation.yml": """
curation: {fraction: fraction, k_per_class: 6, n_train_per_class: 4, seed: 1, on_shortfall: take, image_size: 16,
           rotations: 2, max_missing_fraction: 0.05, montage_per_class: 2, n_workers: 1}
""",
    "parameters.yml": "progress: false\ndevice: cpu\n",
}


@pytest.fixture(scope="module")
def server():
    with moto_s3(BUCKET) as s3:
        yield s3


@pytest.fixture
def s3(server, monkeypatch):
    server.use(monkeypatch)
    return server


# ---------------------------------------------------------------- checkpoints


def _problem(tiny_model_input, tiny_params):
    from galaxy_distillation.engine import InMemoryExperts
    from galaxy_distillation.pipelines.prepare.nodes import prepare
    from galaxy_distillation.pipelines.teacher.nodes import train_experts

    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    chunks = train_experts(data, tiny_params["teacher"], tiny_params["model"], "cpu", False)
    return data, InMemoryExperts([c["trajectory"].params for c in chunks if "trajectory" in c])


def test_distillation_checkpoints_on_s3_resume_exactly_like_a_local_run(s3, tiny_model_input, tiny_params, tmp_path):
    from galaxy_distillation.engine import Distiller
    from galaxy_distillation.engine.checkpoint import load_state

    data, experts = _problem(tiny_model_input, tiny_params)
    config = tiny_params["distill"].model_copy(update={"iterations": 6, "checkpoint_every": 2}).engine_config(
        "stm", 1, "real")

    def distiller(where):
        return Distiller(experts, data.train_x, data.train_y, data.num_classes, config, "cpu",
                         arch=tiny_params["model"].spec(), checkpoint_dir=where)

    local = distiller(tmp_path / "local").run(progress=False)
    root = f"s3://{BUCKET}/ckpt/07_model_output/checkpoints"
    store = checkpoint_location(root, "v")
    assert isinstance(store, FileStore) and store.url == f"{root}/v/state.pt"
    assert checkpoint_location(str(tmp_path), "v") == tmp_path / "v"  # a local root stays a plain folder

    part = distiller(store).run(progress=False, stop_after=3)
    assert part.stop_reason == "interrupted" and part.iterations_done == 3
    assert list(s3.keys(BUCKET, "ckpt/")) == ["ckpt/07_model_output/checkpoints/v/state.pt"]
    assert load_state(store)["iteration"] == 3
    # a Ray task on another node gets the store pickled: URL + options, no open handle
    resumed = distiller(pickle.loads(pickle.dumps(store))).run(progress=False)
    assert resumed.iterations_done == 6 and resumed.stop_reason == "max_iterations"
    assert torch.equal(resumed.images, local.images) and resumed.lr == local.lr
    assert [r.loss for r in resumed.history] == [r.loss for r in local.history]
    assert torch.equal(load_state(store)["images"], load_state(tmp_path / "local")["images"])
    assert not (tmp_path / "v").exists()


def test_the_distill_node_keeps_its_checkpoint_in_the_bucket(s3, tiny_model_input, tiny_params):
    from galaxy_distillation.pipelines.distill.nodes import distill_dataset

    data, experts = _problem(tiny_model_input, tiny_params)
    distill = tiny_params["distill"].model_copy(update={"checkpoint_root": f"s3://{BUCKET}/node/checkpoints"})
    args = (data, experts, distill, tiny_params["evaluation"], tiny_params["model"], "stm", 1, "real", "v", "cpu", False)
    first, history, _ = distill_dataset(*args)
    key = "node/checkpoints/v/state.pt"
    assert list(s3.keys(BUCKET, "node/")) == [key] and len(history) == 4
    stamp = s3.client.head_object(Bucket=BUCKET, Key=key)["ETag"]
    again, _, _ = distill_dataset(*args)  # finished: back from the checkpoint
    assert again["images"].equal(first["images"])
    changed = distill.model_copy(update={"lr_img": 20.0})  # other settings: the old state moved aside, a fresh run
    other, history2, _ = distill_dataset(data, experts, changed, *args[3:])
    assert len(history2) == 4 and not other["images"].equal(first["images"])
    assert s3.client.head_object(Bucket=BUCKET, Key=key)["ETag"] != stamp
    (moved,) = [k for k in s3.keys(BUCKET, "node/") if k != key]
    assert moved.startswith("node/checkpoints/v/state.") and moved.endswith(".pt")
    assert s3.client.head_object(Bucket=BUCKET, Key=moved)["ETag"] == stamp  # the old state, kept


def test_the_expert_cache_downloads_a_retrained_expert_of_the_same_size_again(s3, tmp_path):
    from galaxy_distillation.datasets import ExpertTrajectoriesDataset
    from galaxy_distillation.engine.trajectories import Trajectory, save_trajectory

    def trajectory(value):
        return Trajectory(torch.full((3, 4), value), [1.0, 2.0, 3.0], [1.0, 0.5], {"seed": 0})

    dataset = ExpertTrajectoriesDataset(f"s3://{BUCKET}/cache/experts", cache_dir=str(tmp_path / "cache"))
    dataset.save({"bank": "bank-x", "index": 0, "trajectory": trajectory(1.0)})

    def bank():
        loaded = dataset.load()
        return loaded.bank(loaded.names()[0]) if hasattr(loaded, "names") else loaded

    assert bank().load(0).eq(1.0).all()
    (key,) = [k for k in s3.keys(BUCKET, "cache/") if k.endswith("expert_0000.safetensors")]
    retrained = tmp_path / "retrained.safetensors"  # retrained elsewhere: same size, other content
    save_trajectory(trajectory(2.0), retrained)
    assert retrained.stat().st_size == len(s3.read(BUCKET, key))
    s3.client.put_object(Bucket=BUCKET, Key=key, Body=retrained.read_bytes())
    assert bank().load(0).eq(2.0).all()
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_file_store_round_trip_is_picklable(s3):
    store = FileStore(f"s3://{BUCKET}/files/a.bin")
    assert store.load() is None
    store.save(b"one")
    store.save(b"two")
    clone = pickle.loads(pickle.dumps(store))
    assert clone.load() == b"two" and s3.read(BUCKET, "files/a.bin") == b"two"
    clone.delete()
    clone.delete()  # no error when already gone
    assert store.load() is None and s3.keys(BUCKET, "files/") == {}


# ---------------------------------------------------------------- mock sky and curation on a bucket


def test_sky_and_curation_read_and_write_only_the_bucket(s3, tmp_path):
    (tmp_path / "project").mkdir()
    project = copy_project(tmp_path / "project", {"tiny": TINY})
    env = {**os.environ, **s3.env, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "DO_NOT_TRACK": "1",
           "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore",
           "TMPDIR": str(tmp_path / "tmp")}  # the staging and mirror caches of this run
    (tmp_path / "tmp").mkdir()
    proc = subprocess.run([KEDRO, "run", "--env", "tiny", "--pipelines=sky,curation", "--params",
                           f"storage_root=s3://{BUCKET}/x"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])

    keys = s3.keys(BUCKET, "x/")
    sky = "x/01_raw/mock_sky/"
    images = [k for k in keys if k.startswith(sky + "images/") and k.endswith(".jpg")]
    assert len(images) == 110
    marker = json.loads(s3.read(BUCKET, sky + "MOCK_SKY.json"))
    assert marker["status"] == "complete" and marker["n_galaxies"] == 110
    import hashlib

    for table in ("gz2_hart16.csv", "gz2_filename_mapping.csv", "mock_truth.csv"):  # what the marker vouches for
        assert marker["sha256"][table] == hashlib.sha256(s3.read(BUCKET, sky + table)).hexdigest()
    for key in ("x/01_raw/mock_sky_manifest.json", "x/02_intermediate/labelled_catalog.parquet",
                "x/03_primary/selected_train_galaxies.parquet", "x/05_model_input/gz2/meta.json",
                "x/05_model_input/gz2/train.safetensors", "x/05_model_input/gz2/test.safetensors",
                "x/08_reporting/curation_report.json", "x/08_reporting/curation_montage.png"):
        assert key in keys, key
    report = json.loads(s3.read(BUCKET, "x/08_reporting/curation_report.json"))
    assert json.dumps(report).count(f"s3://{BUCKET}/x/01_raw/mock_sky/images") >= 1
    local = [p for p in (project / "data").rglob("*") if p.is_file()] if (project / "data").exists() else []
    assert local == []


def _publish(url, n=6, **kwargs):
    from galaxy_distillation.sky.remote import publish_mock_sky

    return publish_mock_sky(url, n_galaxies=n, seed=1, progress=False, **kwargs)


def test_remote_mock_sky_is_idempotent_and_refuses_foreign_data(s3, tmp_path):
    from galaxy_distillation.sky.writer import RealDataProtectedError

    url = f"s3://{BUCKET}/sky"
    first = _publish(url, staging=tmp_path / "stage")
    assert not first["skipped"] and first["paths"]["catalogue"] == f"{url}/gz2_hart16.csv"
    before = {k: s3.client.head_object(Bucket=BUCKET, Key=k)["ETag"] for k in s3.keys(BUCKET, "sky/")}
    assert len(before) == 6 + 4  # images, three tables, the marker
    again = _publish(url, staging=tmp_path / "elsewhere")  # the bucket decides: complete, nothing rendered
    assert again["skipped"] and not (tmp_path / "elsewhere").exists()
    bigger = _publish(url, n=8, staging=tmp_path / "stage")  # other settings: ours, so re-rendered
    assert not bigger["skipped"] and len([k for k in s3.keys(BUCKET, "sky/images/")]) == 8

    s3.client.put_object(Bucket=BUCKET, Key="sky/gz2_hart16.csv", Body=b"objid\n1\n")  # a foreign catalogue
    with pytest.raises(RealDataProtectedError, match="checksum differs"):
        _publish(url, n=6, staging=tmp_path / "stage")
    s3.client.put_object(Bucket=BUCKET, Key="real/gz2_hart16.csv", Body=b"objid\n1\n")  # real data, no marker
    with pytest.raises(RealDataProtectedError, match="no MOCK_SKY.json marker"):
        _publish(f"s3://{BUCKET}/real", staging=tmp_path / "stage2")
    assert s3.keys(BUCKET, "real/") == {"real/gz2_hart16.csv": 8}


def test_remote_image_folder_is_mirrored_file_by_file(s3, tmp_path):
    for name, body in {"1.jpg": b"a", "2.jpg": b"bb", "3.jpg": b"ccc"}.items():
        s3.client.put_object(Bucket=BUCKET, Key=f"img/{name}", Body=body)
    url = f"s3://{BUCKET}/img"
    folder = mirror_files(url, ["1.jpg", "2.jpg", "9.jpg"], cache_dir=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["1.jpg", "2.jpg"]  # only what was asked and exists
    kept = (folder / "2.jpg").stat().st_mtime_ns
    s3.client.delete_object(Bucket=BUCKET, Key="img/1.jpg")
    (folder / "3.jpg").write_bytes(b"c")  # a partial download: not the remote size
    mirror_files(url, ["1.jpg", "2.jpg", "3.jpg"], cache_dir=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["2.jpg", "3.jpg"]  # gone remotely: gone from the cache
    assert (folder / "3.jpg").read_bytes() == b"ccc"
    assert (folder / "2.jpg").stat().st_mtime_ns == kept  # unchanged: not fetched again
    s3.client.put_object(Bucket=BUCKET, Key="img/2.jpg", Body=b"changed")
    mirror_files(url, ["2.jpg"], cache_dir=tmp_path)
    assert (folder / "2.jpg").read_bytes() == b"changed"


# ---------------------------------------------------------------- the catalog under storage_root


def _walk_paths(entry, out: list[str]) -> None:
    if isinstance(entry, dict):
        for key, value in entry.items():
            if key in {"filepath", "path", "gz2_dir"} and isinstance(value, str):
                out.append(value)
            else:
                _walk_paths(value, out)


@pytest.mark.parametrize("env", ["local", "paper", "cifar10"])
def test_every_catalog_entry_and_raw_path_lives_under_storage_root(env):
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    from galaxy_distillation.settings import CONFIG_LOADER_ARGS

    args = {k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"}
    for root in ("data", "s3://b/x"):
        loader = OmegaConfigLoader(conf_source=str(ROOT / "conf"), default_run_env=env,
                                   runtime_params={"storage_root": root}, **args)
        catalog = {k: v for k, v in loader["catalog"].items() if not k.startswith("_")}
        paths: list[str] = []
        for entry in catalog.values():
            _walk_paths(entry, paths)
        assert len(paths) > 40 and [p for p in paths if not p.startswith(root + "/")] == []
        assert any(name.startswith("{cell}.") for name in catalog) and any(name.startswith("{flag}.") for name in catalog)
        params = loader["parameters"]
        for value in (params["votes_path"], params["mapping_path"], params["image_dir"], params["sky"]["out_dir"],
                      params["distill"]["checkpoint_root"]):
            assert value.startswith(root + "/"), value
    # the sweeps' dataset factories resolve under the root too
    cat, dataset = DataCatalog.from_config(catalog), params["data_label"]  # mock (local env) or gz2 (paper)
    assert cat.get("plain.expert_trajectories")._describe()["path"] == f"s3://b/x/06_models/experts/{dataset}_plain"
    inner = cat.get("stm_ipc1_real_plain.distilled_set")._describe()["inner"]
    assert inner["filepath"] == f"s3://b/x/07_model_output/{dataset}_stm_ipc1_real_plain/distilled.safetensors"


def test_the_image_mirror_fetches_a_same_size_change_again(s3, tmp_path):
    s3.client.put_object(Bucket=BUCKET, Key="same/1.jpg", Body=b"aaaa")
    url = f"s3://{BUCKET}/same"
    folder = mirror_files(url, ["1.jpg"], cache_dir=tmp_path)
    assert (folder / "1.jpg").read_bytes() == b"aaaa"
    s3.client.put_object(Bucket=BUCKET, Key="same/1.jpg", Body=b"bbbb")  # replaced: same size, other content
    assert (mirror_files(url, ["1.jpg"], cache_dir=tmp_path) / "1.jpg").read_bytes() == b"bbbb"


def test_an_interrupted_mirror_leaves_no_partial_file_and_the_next_one_completes(s3, tmp_path, monkeypatch):
    from galaxy_distillation.storage import Location

    for name, body in {"1.jpg": b"one", "2.jpg": b"two"}.items():
        s3.client.put_object(Bucket=BUCKET, Key=f"cut/{name}", Body=body)
    url = f"s3://{BUCKET}/cut"
    folder = mirror_files(url, ["1.jpg"], cache_dir=tmp_path)
    s3.client.put_object(Bucket=BUCKET, Key="cut/1.jpg", Body=b"ONE, retrained")
    fs = Location(url).fs
    assert Location(url).fs is fs  # fsspec's one instance per settings: the one the mirror uses

    def cut(rpaths, lpaths, **kwargs):  # half of every file arrives, then the connection drops
        for remote, local in zip(rpaths, lpaths, strict=True):
            Path(local).write_bytes(fs.cat_file(remote)[:2])
        raise ConnectionError("connection reset")

    monkeypatch.setattr(fs, "get", cut)
    with pytest.raises(ConnectionError):
        mirror_files(url, ["1.jpg", "2.jpg"], cache_dir=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["1.jpg"]  # no partial 2.jpg, no temporary file
    assert (folder / "1.jpg").read_bytes() == b"one"  # the previous copy, whole
    monkeypatch.undo()
    mirror_files(url, ["1.jpg", "2.jpg"], cache_dir=tmp_path)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {"1.jpg": b"ONE, retrained", "2.jpg": b"two"}
    (folder / "2.jpg").write_bytes(b"t")  # damaged in the cache: the recorded tag matches, the size does not
    assert (mirror_files(url, ["2.jpg"], cache_dir=tmp_path) / "2.jpg").read_bytes() == b"two"


def test_an_expert_bank_and_an_image_folder_share_the_one_mirror(s3, tmp_path, monkeypatch):
    """The bank of a remote expert folder is mirrored by mirror_files into the one cache: an expert
    gone from the bucket is gone from the cached bank, the others are not fetched again."""
    import galaxy_distillation.storage.shelf as shelf
    from galaxy_distillation.datasets import ExpertTrajectoriesDataset
    from galaxy_distillation.engine.trajectories import Trajectory
    from galaxy_distillation.storage import cache_folder

    calls = []
    monkeypatch.setattr(shelf, "mirror_files", lambda *a, **k: calls.append(a) or mirror_files(*a, **k))
    url = f"s3://{BUCKET}/one/experts"
    dataset = ExpertTrajectoriesDataset(url, cache_dir=str(tmp_path))
    for i in range(2):
        dataset.save({"bank": "bank-y", "index": i,
                      "trajectory": Trajectory(torch.full((3, 4), float(i)), [1.0, 2.0, 3.0], [1.0], {"seed": i})})
    assert len(dataset.load().bank("bank-y")) == 2
    cached = cache_folder(f"{url}/bank-y", tmp_path)
    assert calls == [(f"{url}/bank-y", ["expert_0000.safetensors", "expert_0001.safetensors"], str(tmp_path), None)]
    kept = (cached / "expert_0000.safetensors").stat().st_mtime_ns
    s3.client.delete_object(Bucket=BUCKET, Key="one/experts/bank-y/expert_0001.safetensors")
    bank = dataset.load().bank("bank-y")
    assert len(bank) == 1 and bank.load(0).eq(0.0).all()
    assert sorted(p.name for p in cached.iterdir()) == ["expert_0000.safetensors"]
    assert (cached / "expert_0000.safetensors").stat().st_mtime_ns == kept  # unchanged: not fetched again


def test_the_insight_report_folder_round_trips_on_the_bucket(s3):
    from galaxy_distillation.insight_dataset import ReportFolderDataset

    dataset = ReportFolderDataset(f"s3://{BUCKET}/report/insight_v")
    assert not dataset.exists()
    dataset.save({"summary.json": {"a": 1}, "report.md": "# r\n"})
    assert dataset.exists() and s3.keys(BUCKET, "report/") == {"report/insight_v/report.md": 4,
                                                                "report/insight_v/summary.json": 12}
    assert dataset.load() == {"report.md": b"# r\n", "summary.json": b'{\n  "a": 1\n}'}
