"""The distillation checkpoint's key: the data's content, the experts' fingerprint (from their
headers) and the settings that change the numbers; never the execution-only ones."""

import pytest
import torch
from _toy_d import TINY_ARCH, fast_config, random_experts, small_problem

from galaxy_distillation.engine import Distiller
from galaxy_distillation.engine.checkpoint import CheckpointMismatchError, load_state
from galaxy_distillation.engine.trajectories import ExpertBank, Trajectory, save_trajectory


def _bank(folder, seed):
    """Two experts on disk, as the teacher writes them (``seed``: a retraining gives other ones)."""
    experts = random_experts(TINY_ARCH, 3, 3, 8, n_experts=2, epochs=5, seed=seed)
    for i in range(2):
        params = experts.load(i)
        save_trajectory(Trajectory(params, [0.0] * 6, [1.0] * 5, {"seed": seed * 10 + i, "data_sha256": "d"}),
                        folder / f"expert_{i:04d}.safetensors")
    return ExpertBank(folder)


def _distiller(experts, checkpoint, **overrides):
    x, y = small_problem()
    config = fast_config(**{"iterations": 6, "checkpoint_every": 2, **overrides})
    return Distiller(experts, x, y, 3, config, "cpu", TINY_ARCH, checkpoint_dir=checkpoint)


def test_resume_is_refused_after_the_experts_were_retrained_and_restart_moves_the_state_aside(tmp_path):
    old = _bank(tmp_path / "old", seed=0)
    _distiller(old, tmp_path / "ckpt").run(progress=False, stop_after=3)
    retrained = _bank(tmp_path / "new", seed=1)  # same count, same epochs, other experts
    with pytest.raises(CheckpointMismatchError, match="different configuration"):
        _distiller(retrained, tmp_path / "ckpt").run(progress=False)
    assert load_state(tmp_path / "ckpt")["iteration"] == 3  # refused, not touched

    result = _distiller(retrained, tmp_path / "ckpt").run(progress=False, on_mismatch="restart")
    fresh = _distiller(retrained, tmp_path / "fresh").run(progress=False)
    assert torch.equal(result.images, fresh.images) and result.iterations_done == 6
    moved = list((tmp_path / "ckpt").glob("state.*.pt"))
    assert len(moved) == 1 and torch.load(moved[0], weights_only=True)["iteration"] == 3  # kept, not deleted
    assert retrained.fingerprint() != old.fingerprint()  # from the headers: no tensor read


def test_the_data_content_is_part_of_the_key(tmp_path):
    experts = random_experts(TINY_ARCH, 3, 3, 8, epochs=5)
    _distiller(experts, tmp_path).run(progress=False, stop_after=2)
    x, y = small_problem()
    other = Distiller(experts, x.flip(0), y, 3, fast_config(iterations=6, checkpoint_every=2), "cpu", TINY_ARCH,
                      checkpoint_dir=tmp_path)  # same shape, other pixels
    with pytest.raises(CheckpointMismatchError):
        other.run(progress=False)


def test_an_execution_only_change_keeps_the_checkpoint_and_resumes_exactly(tmp_path):
    experts = random_experts(TINY_ARCH, 3, 3, 8, epochs=5)
    full = _distiller(experts, tmp_path / "full").run(progress=False)
    _distiller(experts, tmp_path / "part").run(progress=False, stop_after=3)
    # after an out-of-memory: recompute the unroll in backward, keep fewer experts in memory
    resumed = _distiller(experts, tmp_path / "part", memory_mode="checkpoint", expert_cache=1,
                         checkpoint_every=3).run(progress=False)
    assert resumed.iterations_done == 6 and len(resumed.history) == 6
    assert [r.iteration for r in resumed.history][:3] == [r.iteration for r in full.history][:3]
    torch.testing.assert_close(resumed.images, full.images)
    assert list((tmp_path / "part").glob("state.*.pt")) == []  # nothing moved aside
