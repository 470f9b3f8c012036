"""Tests for engine.experts (trajectory recording, storage, bank)."""

import json

import pytest
import torch

from _configs import expert_config
from galaxy_distillation.engine import (
    ExpertBank,
    ExpertError,
    FlatModel,
    build_from_spec,
    expert_path,
    load_trajectory,
    read_trajectory_meta,
    save_trajectory,
    train_expert,
    train_experts,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def toy(toy_dataset):
    return toy_dataset(num_classes=3, n_per_class=20, size=16, seed=0)


@pytest.fixture(scope="module")
def cfg():
    return expert_config(epochs=4, lr=0.01, batch_size=16, arch={"arch": "convnet", "width": 8, "depth": 2})


@pytest.fixture(scope="module")
def traj(toy, cfg):
    return train_expert(*toy, num_classes=3, config=cfg, seed=1, device=CPU, progress=False)


def test_trajectory_shape_and_learning(traj, cfg):
    net = build_from_spec(cfg.arch, 3, 3, (16, 16))
    p = FlatModel(net).numel
    assert traj.params.shape == (cfg.epochs + 1, p)
    assert traj.params.dtype == torch.float32 and traj.params.is_contiguous()
    assert len(traj.test_acc) == cfg.epochs + 1 and len(traj.train_loss) == cfg.epochs
    assert traj.test_acc[-1] >= 90.0 and traj.test_acc[-1] > traj.test_acc[0] + 20
    assert traj.train_loss[-1] < traj.train_loss[0]
    steps = (traj.params[1:] - traj.params[:-1]).norm(dim=1)
    assert (steps > 0).all()  # every epoch moved the parameters


def test_last_snapshot_is_the_trained_network(traj, toy, cfg):
    net = build_from_spec(cfg.arch, 3, 3, (16, 16))
    fm = FlatModel(net)
    _, _, test_x, test_y = toy
    acc = (fm(traj.params[-1], test_x).argmax(1) == test_y).float().mean().item() * 100
    assert acc == pytest.approx(traj.test_acc[-1])


def test_same_seed_same_trajectory_other_seed_differs(traj, toy, cfg):
    again = train_expert(*toy, num_classes=3, config=cfg, seed=1, device=CPU, progress=False)
    torch.testing.assert_close(again.params, traj.params, rtol=0, atol=0)
    other = train_expert(*toy, num_classes=3, config=cfg, seed=2, device=CPU, progress=False)
    assert not torch.allclose(other.params[0], traj.params[0])


def test_save_load_roundtrip_and_partial_load(traj, tmp_path):
    path = tmp_path / "expert_0000.safetensors"
    save_trajectory(traj, path)
    full = load_trajectory(path)
    torch.testing.assert_close(full.params, traj.params, rtol=0, atol=0)
    assert full.test_acc == pytest.approx(traj.test_acc) and full.meta["seed"] == 1
    part = load_trajectory(path, max_epoch=2)
    assert part.params.shape == (3, traj.params.shape[1])
    torch.testing.assert_close(part.params, traj.params[:3], rtol=0, atol=0)
    assert len(part.test_acc) == 3 and len(part.train_loss) == 2
    info = read_trajectory_meta(path)
    assert info["epochs"] == 4 and info["meta"]["arch"]["width"] == 8
    json.dumps(info)  # metadata is plain JSON
    with pytest.raises(ExpertError, match="out of range"):
        load_trajectory(path, max_epoch=9)
    with pytest.raises(ExpertError, match="not found"):
        load_trajectory(tmp_path / "missing.safetensors")


def test_expert_bank_and_resumable_training(toy, tmp_path):
    cfg = expert_config(epochs=2, lr=0.01, batch_size=32, dsa_strategy="flip", arch={"arch": "convnet", "width": 4, "depth": 1})
    paths = train_experts(*toy, num_classes=3, config=cfg, n_experts=3, directory=tmp_path, seed=5, device=CPU,
                          progress=False)
    assert [p.name for p in paths] == [f"expert_000{i}.safetensors" for i in range(3)]
    mtimes = [p.stat().st_mtime_ns for p in paths]
    train_experts(*toy, num_classes=3, config=cfg, n_experts=3, directory=tmp_path, seed=5, device=CPU, progress=False)
    assert [p.stat().st_mtime_ns for p in paths] == mtimes  # existing experts are not retrained
    (tmp_path / "notes.txt").write_text("ignored")
    bank = ExpertBank(tmp_path)
    assert len(bank) == 3 and bank.num_epochs == 2 and bank.meta["index"] == 0
    assert bank.load(1).shape == (3, bank.num_params)
    assert bank.load(2, max_epoch=1).shape == (2, bank.num_params)
    assert not torch.allclose(bank.load(0)[0], bank.load(1)[0])
    assert len(bank.test_acc(0)) == 3
    assert expert_path(tmp_path, 2) == paths[2]
    with pytest.raises(ExpertError, match="out of range"):
        bank.load(3)


def test_bank_and_training_errors(tmp_path, toy, cfg):
    with pytest.raises(ExpertError, match="no expert"):
        ExpertBank(tmp_path)
    with pytest.raises(ExpertError, match="not found"):
        ExpertBank(tmp_path / "nope")
    x, y, tx, ty = toy
    with pytest.raises(ValueError, match="labels must lie"):
        train_expert(x, y + 5, tx, ty, num_classes=3, config=cfg, seed=0, device=CPU, progress=False)


def test_uint8_inputs_with_mean_std(toy, cfg):
    x, y, tx, ty = toy
    to_u8 = lambda t: ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # noqa: E731
    c = expert_config(epochs=1, lr=0.01, batch_size=32, arch=cfg.arch)
    traj = train_expert(to_u8(x), y, to_u8(tx), ty, num_classes=3, config=c, seed=0, device=CPU, progress=False,
                        mean=[0.5] * 3, std=[0.5] * 3)
    assert traj.params.shape[0] == 2


def test_group_training_equals_one_at_a_time(toy):
    """K experts trained as one batched program follow their one-at-a-time trajectories."""
    from galaxy_distillation.engine import train_expert_group

    cfg = expert_config(epochs=2, lr=0.05, batch_size=16, momentum=0.9, weight_decay=1e-3,
                        arch={"arch": "convnet", "width": 8, "depth": 2})
    seeds = [3, 4, 5]
    group = train_expert_group(*toy, num_classes=3, config=cfg, seeds=seeds, device=CPU, progress=False)
    assert len(group) == 3 and group[0].meta["experts_at_once"] == 3
    for s, g in zip(seeds, group):
        one = train_expert(*toy, num_classes=3, config=cfg, seed=s, device=CPU, progress=False)
        assert g.params.shape == one.params.shape
        moved = (one.params[-1] - one.params[0]).abs().max()
        assert moved > 1e-2  # the comparison is not between two untrained networks
        torch.testing.assert_close(g.params, one.params, rtol=1e-4, atol=1e-5)
        assert g.test_acc == one.test_acc
        assert g.train_loss == pytest.approx(one.train_loss, rel=1e-5)
    assert not torch.allclose(group[0].params[-1], group[1].params[-1])  # own seed each


def test_train_experts_in_groups_matches_one_by_one(toy, tmp_path):
    from galaxy_distillation.engine.experts import experts_at_once

    cfg = expert_config(epochs=1, lr=0.01, batch_size=32, arch={"arch": "convnet", "width": 4, "depth": 1})
    one = train_experts(*toy, num_classes=3, config=cfg, n_experts=3, directory=tmp_path / "a", seed=7,
                        device=CPU, progress=False, at_once=1)
    grouped = train_experts(*toy, num_classes=3, config=cfg, n_experts=3, directory=tmp_path / "b", seed=7,
                            device=CPU, progress=False, at_once=2)
    for a, b in zip(one, grouped):
        ta, tb = load_trajectory(a), load_trajectory(b)
        torch.testing.assert_close(ta.params, tb.params, rtol=1e-4, atol=1e-5)
        assert ta.meta["index"] == tb.meta["index"]
    assert experts_at_once("auto", CPU, 5) == 1 and experts_at_once(8, CPU, 5) == 5
    assert experts_at_once("auto", torch.device("cuda"), 2) == 2
    with pytest.raises(ExpertError, match="experts_at_once"):
        experts_at_once(0, CPU, 5)
