"""Teacher nodes: experts yielded one by one with their own seeds, and the Full-set baseline."""

import torch

from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.teacher.nodes import evaluate_full_set, summarise_experts, train_experts


def test_experts_are_yielded_one_by_one_with_distinct_seeds(tiny_model_input, tiny_params):
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    keep, *out = list(train_experts(data, tiny_params["teacher"], tiny_params["model"], "cpu", False))
    assert keep["keep"] == [] and keep["bank"].startswith("bank-")  # nothing to keep from an earlier run (see tests/test_compute.py)
    assert [o["index"] for o in out] == [0, 1]
    a, b = (o["trajectory"].params for o in out)
    assert a.shape == b.shape and a.shape[0] == tiny_params["teacher"].epochs + 1
    assert not torch.equal(a[0], b[0])  # each expert its own initialisation
    again = list(train_experts(data, tiny_params["teacher"], tiny_params["model"], "cpu", False))[1]
    assert torch.equal(again["trajectory"].params, a)  # same seed, same trajectory


def test_full_baseline_reports_its_protocol(tiny_model_input, tiny_params):
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    ev = tiny_params["evaluation"]
    full = evaluate_full_set(data, ev, tiny_params["model"], "cpu", False)
    assert (full["n_nets"], full["epochs"], full["lr"], full["n_images"]) == (1, 2, ev.full_lr, 24)
    assert len(full["accs"]) == 1 and 0.0 <= full["mean"] <= 100.0


def test_summary_averages_the_experts():
    class Bank:
        def __len__(self):
            return 2

        def test_acc(self, i):
            return [10.0, 20.0 + 10 * i]

    summary, metrics = summarise_experts(Bank())
    assert summary["final_test_acc"] == [20.0, 30.0] and summary["final_test_acc_mean"] == 25.0
    assert metrics["expert_test_acc_mean"] == [{"step": 0, "value": 10.0}, {"step": 1, "value": 25.0}]


def test_longer_experts_are_grown_from_a_shorter_bank_into_a_new_one(tiny_model_input, tiny_params, tmp_path):
    from galaxy_distillation.datasets import ExpertInventoryDataset, ExpertTrajectoriesDataset

    model = tiny_params["model"]
    short, long = (tiny_params["teacher"].model_copy(update={"epochs": e, "momentum": 0.9}) for e in (1, 3))
    data, _ = prepare(tiny_model_input, short)
    folder = tmp_path / "experts"
    saver = ExpertTrajectoriesDataset(str(folder))
    first = list(train_experts(data, short, model, "cpu", False, ExpertInventoryDataset(str(folder)).load()))
    for chunk in first:
        saver.save(chunk)
    before = {p: p.read_bytes() for p in folder.rglob("expert_*.safetensors")}
    assert len(before) == 2
    keep, *grown = list(train_experts(data, long, model, "cpu", False, ExpertInventoryDataset(str(folder)).load()))
    _, *anew = list(train_experts(data, long, model, "cpu", False))
    assert keep["keep"] == [] and [o["index"] for o in grown] == [0, 1]
    for a, b in zip(grown, anew, strict=True):
        assert a["trajectory"].meta["grown_from"] == [1] and "grown_from" not in b["trajectory"].meta
        assert torch.equal(a["trajectory"].params, b["trajectory"].params)
        assert a["trajectory"].test_acc == b["trajectory"].test_acc
        assert a["bank"] == b["bank"] == keep["bank"] != first[0]["bank"]  # the longer experts' own bank
    for chunk in grown:
        saver.save(chunk)
    assert all(p.read_bytes() == data_ for p, data_ in before.items())  # the shorter bank is untouched
    assert len(list(folder.rglob("expert_*.safetensors"))) == 4  # the grown ones are new files of another bank


def test_precision_keys_only_bf16_banks(tiny_params):
    from galaxy_distillation.pipelines.teacher.nodes import _settings, bank_name

    model, teacher = tiny_params["model"], tiny_params["teacher"]
    fp32 = teacher.engine_config(model)
    bf16 = teacher.model_copy(update={"precision": "bf16"}).engine_config(model)
    assert fp32.precision == "fp32" and "precision" not in _settings(fp32)  # banks made before keep their name
    assert _settings(bf16)["precision"] == "bf16" and bank_name("d", bf16, 0) != bank_name("d", fp32, 0)


def test_shorter_experts_without_state_are_trained_anew(tiny_model_input, tiny_params, tmp_path):
    from galaxy_distillation.datasets import ExpertInventoryDataset, ExpertTrajectoriesDataset
    from galaxy_distillation.engine.trajectories import Trajectory

    model = tiny_params["model"]
    short, long = (tiny_params["teacher"].model_copy(update={"epochs": e}) for e in (1, 2))
    data, _ = prepare(tiny_model_input, short)
    folder = tmp_path / "experts"
    saver = ExpertTrajectoriesDataset(str(folder))
    for chunk in train_experts(data, short, model, "cpu", False):
        if "trajectory" in chunk:  # saved as before the state was kept
            t = chunk["trajectory"]
            chunk = {**chunk, "trajectory": Trajectory(t.params, t.test_acc, t.train_loss, t.meta)}
        saver.save(chunk)
    _, *out = list(train_experts(data, long, model, "cpu", False, ExpertInventoryDataset(str(folder)).load()))
    _, *anew = list(train_experts(data, long, model, "cpu", False))
    assert [o["index"] for o in out] == [0, 1] and all("grown_from" not in o["trajectory"].meta for o in out)
    assert all(torch.equal(a["trajectory"].params, b["trajectory"].params) for a, b in zip(out, anew, strict=True))
