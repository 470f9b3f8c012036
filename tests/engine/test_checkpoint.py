"""Checkpoints: atomic weights_only state files; interrupted + resumed == uninterrupted."""

import pytest
import torch
from _toy_d import TINY_ARCH, fast_config, random_experts, small_problem

from galaxy_distillation.engine import Distiller
from galaxy_distillation.engine.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    check_plain,
    load_state,
    save_state,
    state_path,
)


def test_save_load_roundtrip_is_atomic_and_weights_only(tmp_path):
    state = {"images": torch.randn(2, 3), "n": 3, "hist": [{"a": 1.0, "b": None}], "s": "x"}
    path = save_state(tmp_path, state)
    assert path == state_path(tmp_path) and [p.name for p in tmp_path.iterdir()] == ["state.pt"]
    torch.load(path, weights_only=True)  # must not raise
    back = load_state(tmp_path)
    assert torch.equal(back["images"], state["images"]) and back["hist"] == state["hist"]
    assert load_state(tmp_path / "missing") is None
    with pytest.raises(CheckpointError, match="cannot be stored"):
        check_plain({"bad": object()})
    with pytest.raises(CheckpointError, match="cannot be stored"):
        save_state(tmp_path, {"bad": {1, 2}})
    assert torch.equal(load_state(tmp_path)["images"], state["images"])  # failed save left the old file intact
    (tmp_path / "state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="could not read checkpoint"):
        load_state(tmp_path)


def _make(tmp, callback=None, **overrides):
    x, y = small_problem()
    experts = random_experts(TINY_ARCH, 3, 3, 8, epochs=5)
    cfg = fast_config(iterations=12, checkpoint_every=4, lam=0.01, rising_lam=0.01, loss_rising_rule=True,
                      test_every=3, **overrides)
    return Distiller(experts, x, y, 3, cfg, "cpu", TINY_ARCH, checkpoint_dir=tmp, callback=callback)


@pytest.mark.parametrize("method", ["stm", "mtt"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, method):
    extra = {} if method == "stm" else {"expert_epochs": 2, "lr_lr": 1e-4}
    full = _make(tmp_path / "full", method=method, **extra).run(progress=False)
    assert full.stop_reason == "max_iterations" and full.iterations_done == 12
    if method == "stm":
        assert full.T > 1  # the schedule state matters for the resume

    part = _make(tmp_path / "part", method=method, **extra).run(progress=False, stop_after=5)
    assert part.stop_reason == "interrupted" and part.iterations_done == 5
    resumed = _make(tmp_path / "part", method=method, **extra).run(progress=False)
    assert resumed.iterations_done == 12 and resumed.stop_reason == "max_iterations"
    assert torch.equal(resumed.images, full.images)
    assert resumed.lr == full.lr and resumed.T == full.T
    assert [r.loss for r in resumed.history] == [r.loss for r in full.history]


def test_crash_in_callback_resumes_from_last_checkpoint(tmp_path):
    full = _make(tmp_path / "full").run(progress=False)

    def boom(rec):
        if rec.iteration == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _make(tmp_path / "crash", callback=boom).run(progress=False)
    assert load_state(tmp_path / "crash")["iteration"] == 4  # last periodic checkpoint
    resumed = _make(tmp_path / "crash").run(progress=False)
    assert torch.equal(resumed.images, full.images) and len(resumed.history) == 12
    # a finished run returns immediately; a larger budget continues it
    again = _make(tmp_path / "crash").run(progress=False)
    assert again.iterations_done == 12 and torch.equal(again.images, full.images)


def test_different_config_is_refused(tmp_path):
    _make(tmp_path).run(progress=False, stop_after=2)
    with pytest.raises(CheckpointMismatchError, match="different configuration"):
        _make(tmp_path, lr_img=11.0).run(progress=False)
    # the iteration budget is not part of the fingerprint
    d = _make(tmp_path)
    d.config.iterations = 3
    assert d.run(progress=False).iterations_done == 3
