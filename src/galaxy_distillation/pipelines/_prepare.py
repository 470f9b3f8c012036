"""Shared glue for the model stages: model input (uint8) -> normalised float tensors.

Plain functions (no Kedro), used by the teacher, distill and evaluation nodes so that the
three stages see exactly the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from galaxy_distillation.engine.data import to_float
from galaxy_distillation.engine.evaluation import EvalConfig
from galaxy_distillation.engine.zca import ZCA


@dataclass(frozen=True)
class PreparedData:
    """Normalised (and optionally ZCA-whitened) float tensors of one dataset.

    Shapes: ``train_x`` (N, C, H, W) float32, ``train_y`` (N,) int64, likewise for test.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    class_names: list[str]
    mean: list[float]
    std: list[float]
    zca: ZCA | None

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def im_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])


def wants_zca(zca: Any, dataset_name: str) -> bool:
    """``teacher.zca``: ``true``/``false``, or ``auto`` = on for CIFAR (as in the paper), off
    for galaxies and image folders."""
    if isinstance(zca, str) and zca.lower() == "auto":
        return dataset_name.startswith("cifar")
    return bool(zca)


def prepare_data(model_input: dict[str, Any], zca: Any = False) -> PreparedData:
    """Normalise the model input with its training-set statistics; fit ZCA on train if asked
    (``zca`` as in :func:`wants_zca`)."""
    zca = wants_zca(zca, str(model_input.get("name", "")))
    train_x = to_float(model_input["train_x"], model_input["mean"], model_input["std"])
    test_x = to_float(model_input["test_x"], model_input["mean"], model_input["std"])
    whitener = None
    if zca:
        whitener = ZCA().fit(train_x)
        train_x, test_x = whitener.transform(train_x), whitener.transform(test_x)
    names = list(model_input["class_names"])
    return PreparedData(
        train_x=train_x,
        train_y=model_input["train_y"].long(),
        test_x=test_x,
        test_y=model_input["test_y"].long(),
        num_classes=len(names),
        class_names=names,
        mean=list(model_input["mean"]),
        std=list(model_input["std"]),
        zca=whitener,
    )


def eval_config(evaluation: dict[str, Any], model: dict[str, Any], n_nets: int, epochs: int,
                arch: dict[str, Any] | None = None) -> EvalConfig:
    """The engine's evaluation settings from the ``evaluation`` and ``model`` parameter groups,
    for ``n_nets`` nets trained ``epochs`` epochs (``arch`` overrides the network)."""
    return EvalConfig(
        n_nets=int(n_nets), epochs=int(epochs), batch_size=int(evaluation["batch_size"]),
        dsa_strategy=str(evaluation["dsa_strategy"]), arch=dict(arch or model),
        use_vmap=bool(evaluation["use_vmap"]),
    )
