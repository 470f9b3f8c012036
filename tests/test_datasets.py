"""Round trips of every custom dataset, on a local folder and on an S3 bucket (a moto server on
127.0.0.1, started and stopped here; skipped where s3fs/moto are not installed)."""

from __future__ import annotations

import json
import socket

import pytest
import torch
from kedro.io import DatasetError

from galaxy_distillation.datasets import (
    ArtifactDataset,
    ExpertInventoryDataset,
    ExpertTrajectoriesDataset,
    ModelInputDataset,
    TensorDictDataset,
    VoteCatalogueDataset,
)
from galaxy_distillation.engine.trajectories import Trajectory

BUCKET = "gd-datasets"


@pytest.fixture(scope="module")
def s3_server():
    pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path, monkeypatch):
    if request.param == "local":
        return str(tmp_path / "store")
    url = request.getfixturevalue("s3_server")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": url,
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    return f"s3://{BUCKET}/{tmp_path.name}"


def _trajectory(seed: int) -> Trajectory:
    g = torch.Generator().manual_seed(seed)
    return Trajectory(params=torch.randn(3, 5, generator=g), test_acc=[10.0, 20.0, 30.0 + seed], train_loss=[1.0, 0.5],
                      meta={"seed": seed, "index": seed})


def test_tensor_dict_round_trip(root):
    ds = TensorDictDataset(f"{root}/07/distilled.safetensors")
    assert not ds.exists()
    with pytest.raises(DatasetError, match="does not exist"):
        ds.load()
    data = {"images": torch.arange(24, dtype=torch.uint8).reshape(2, 3, 2, 2), "lr": torch.tensor(0.5),
            "meta": {"ipc": 1, "classes": ["a", "b"]}}
    ds.save(data)
    back = ds.load()
    assert ds.exists() and back["images"].dtype == torch.uint8 and back["images"].equal(data["images"])
    assert back["lr"].item() == 0.5 and back["meta"] == data["meta"]
    with pytest.raises(DatasetError, match="tensors and a 'meta'"):
        ds.save({"images": data["images"], "other": 1})


def test_expert_trajectories_and_inventory_round_trip(root, tmp_path):
    path = f"{root}/06_models/experts/gz2_plain"
    ds = ExpertTrajectoriesDataset(path, cache_dir=str(tmp_path / "cache"))
    inventory = ExpertInventoryDataset(path)
    assert inventory.load().names() == [] and not ds.exists()
    with pytest.raises(DatasetError, match="no experts"):
        ds.load()
    for i in range(3):
        ds.save({"bank": "bank-a", "index": i, "trajectory": _trajectory(i)})
    shelf = inventory.load()
    assert shelf.names() == ["bank-a"] and sorted(shelf.inventory("bank-a")) == [0, 1, 2]
    assert shelf.inventory("bank-a")[2]["seed"] == 2
    bank = ds.load().bank("bank-a")
    assert len(bank) == 3 and bank.test_acc(2) == [10.0, 20.0, 32.0]
    for i in range(3):
        assert bank.load(i).equal(_trajectory(i).params)
    ds.save({"bank": "bank-a", "keep": [0]})  # append-only: nothing is deleted
    assert sorted(inventory.load().inventory("bank-a")) == [0, 1, 2]
    first = ds.load().bank("bank-a", 2)
    assert len(first) == 2 and first.load(1).equal(_trajectory(1).params)
    with pytest.raises(DatasetError, match="append-only"):
        ds.save({"bank": "bank-a", "index": 1, "trajectory": _trajectory(5)})
    assert ds.load().bank("bank-a").load(1).equal(_trajectory(1).params)
    with pytest.raises(DatasetError, match="read-only"):
        inventory.save({})


def test_model_input_round_trip(root):
    ds = ModelInputDataset(dataset="gz2", gz2_dir=f"{root}/05_model_input/gz2", augmented=False)
    assert not ds.exists()
    with pytest.raises(DatasetError, match="no curated GZ2 data"):
        ds.load()
    split = lambda n, v: {"images": torch.full((n, 3, 4, 4), v, dtype=torch.uint8), "labels": torch.arange(n)}
    meta = {"class_names": ["a", "b"], "normalisation": {"train": {"mean": [0.1] * 3, "std": [0.2] * 3},
                                                         "train_augmented": {"mean": [0.3] * 3, "std": [0.4] * 3}}}
    ds.save({"train": split(2, 1), "train_augmented": split(4, 2), "test": split(3, 3), "meta": meta})
    plain = ds.load()
    assert ds.exists() and plain["train_x"].shape == (2, 3, 4, 4) and plain["test_y"].tolist() == [0, 1, 2]
    assert plain["mean"] == [0.1] * 3 and plain["class_names"] == ["a", "b"] and plain["augmented"] is False
    aug = ModelInputDataset(dataset="gz2", gz2_dir=f"{root}/05_model_input/gz2", augmented="true").load()
    assert aug["train_x"].shape[0] == 4 and int(aug["train_x"][0, 0, 0, 0]) == 2 and aug["std"] == [0.4] * 3
    with pytest.raises(DatasetError, match="needs"):
        ds.save({"train": split(1, 0)})


def test_vote_catalogue_round_trip(root):
    import fsspec

    from galaxy_distillation.sky.writer import simulate_catalogue

    url = f"{root}/01_raw/gz2_hart16.csv"
    ds = VoteCatalogueDataset(url)
    with pytest.raises(DatasetError, match="vote catalogue not found"):
        ds.load()
    with pytest.raises(DatasetError, match="not found after the sky"):
        ds.save({"mode": "mock"})
    frame = simulate_catalogue(20, seed=1).drop(columns=["true_class", "clarity"])
    with fsspec.open(url, "w", auto_mkdir=True) as handle:
        frame.to_csv(handle, index=False)
    ds.save({"mode": "mock", "votes_path": url})  # the sky's notice: checks, writes nothing
    loaded = ds.load()
    assert len(loaded) == 20 and loaded["dr7objid"].tolist() == frame["dr7objid"].tolist()
    assert loaded.attrs["read_info"]["n_rows"] == 20
    with pytest.raises(DatasetError, match="is an input"):
        ds.save(loaded)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """One sqlite tracking store for the module (creating one takes seconds)."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}")
    yield mlflow
    mlflow.set_tracking_uri(None)


def test_artifact_dataset_round_trip_and_logs_to_mlflow(root, tmp_path, mlflow_store):
    mlflow = mlflow_store
    ds = ArtifactDataset({"type": "json.JSONDataset", "filepath": f"{root}/08_reporting/report.json"}, artifact_path="rep")
    ds.save({"a": 1})  # no active run: nothing logged, nothing fails
    assert ds.load() == {"a": 1} and ds.exists()
    with mlflow.start_run() as run:
        ds.save({"a": 2})
    client = mlflow.MlflowClient()
    assert [a.path for a in client.list_artifacts(run.info.run_id, "rep")] == ["rep/report.json"]
    local = client.download_artifacts(run.info.run_id, "rep/report.json", str(tmp_path))
    assert json.loads(open(local).read()) == {"a": 2}


def test_an_expert_bank_is_pickled_as_where_it_came_from(tmp_path):
    """A Ray task on another node reopens the bank from its dataset, not from this machine's paths."""
    import pickle

    import torch

    from galaxy_distillation.datasets import ExpertTrajectoriesDataset
    from galaxy_distillation.engine.trajectories import Trajectory
    from galaxy_distillation.storage.shelf import StoredExperts

    folder = tmp_path / "experts"
    dataset = ExpertTrajectoriesDataset(str(folder))
    for i in range(2):
        trajectory = Trajectory(params=torch.full((3, 4), float(i)), test_acc=[1.0, 2.0, 3.0], train_loss=[1.0, 0.5],
                                meta={"seed": i})
        dataset.save({"bank": "bank-x", "index": i, "trajectory": trajectory})
    bank = dataset.load().bank("bank-x")
    assert isinstance(bank, StoredExperts) and bank.source[0] == str(folder) and bank.source[3] == "bank-x"
    blob = pickle.dumps(bank)
    assert str(folder).encode() in blob and b"params" not in blob  # the source, not the tensors
    again = pickle.loads(blob)
    assert len(again) == 2 and again.load(1).equal(bank.load(1))
