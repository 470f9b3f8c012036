"""Shared test fixtures and settings for the whole suite.

pytest puts this folder on ``sys.path``, so helpers such as ``_configs`` import from any test.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_stop_request_left_over():
    """A stop request is process-wide state (``compute.request_stop``): each test starts without one."""
    from galaxy_distillation import cli, compute

    cli._STOPPING.clear()
    compute.clear_stop()
    yield


@pytest.fixture(scope="session")
def tiny_model_input() -> dict:
    """A model input of the curated-data shape: 3 classes of 8x8 RGB uint8 images with a class
    signal (a bright quadrant per class), 8 train + 6 test images per class."""
    import torch

    g = torch.Generator().manual_seed(0)

    def split(n_per_class: int) -> tuple:
        y = torch.arange(3).repeat_interleave(n_per_class)
        x = torch.randint(0, 120, (len(y), 3, 8, 8), generator=g, dtype=torch.uint8)
        for i, label in enumerate(y.tolist()):
            r, c = divmod(label, 2)
            x[i, label % 3, r * 4:(r + 1) * 4, c * 4:(c + 1) * 4] = 250
        return x, y

    train_x, train_y = split(8)
    test_x, test_y = split(6)
    unit = train_x.float() / 255
    return {"name": "toy", "train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y,
            "mean": unit.mean(dim=(0, 2, 3)).tolist(), "std": unit.std(dim=(0, 2, 3)).tolist(),
            "class_names": ["a", "b", "c"]}


@pytest.fixture(scope="session")
def tiny_params() -> dict:
    """Typed parameter groups small enough for node tests (a width-4 ConvNet-1, few epochs)."""
    from galaxy_distillation.params import ArchParams, DistillParams, EvaluationParams, TeacherParams

    return {
        "model": ArchParams(width=4, depth=1),
        "teacher": TeacherParams(n_experts=2, epochs=2, lr=0.01, batch_size=8, zca=False),
        "distill": DistillParams(iterations=4, syn_steps=2, max_start_epoch=1, lr_img=10.0, checkpoint_every=2,
                                 eval_every=2, dsa_strategy="flip"),
        "evaluation": EvaluationParams(n_nets=2, epochs=3, full_n_nets=1, full_epochs=2, quick_nets=1,
                                       quick_epochs_fraction=0.5, batch_size=16, dsa_strategy="flip"),
    }


@pytest.fixture(autouse=True)
def _no_inherited_tracking_uri(monkeypatch):
    """Each test starts without MLFLOW_TRACKING_URI (the project reads it, and mlflow.set_tracking_uri
    exports it to the environment), so `kedro run` subprocesses use their own project's store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # recorded, so whatever a test sets is undone after it
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
