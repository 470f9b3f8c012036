"""Shared glue for the model stages: model input (uint8) -> normalised float tensors.

Plain functions (no Kedro), used by the teacher, distill and evaluation nodes so that the
three stages see exactly the same pixels.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from galaxy_distillation.engine.data import to_float
from galaxy_distillation.engine.evaluation import EvalConfig
from galaxy_distillation.engine.zca import MTT_ZCA_EPS, ZCA


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


_ZCA_FITS: OrderedDict[str, ZCA] = OrderedDict()


def fitted_zca(train_uint8: torch.Tensor, train_x: torch.Tensor) -> ZCA:
    """MTT's ZCA fitted on ``train_x``, once per process for the same training images (the
    teacher, distill and evaluation nodes of a run all whiten the same set)."""
    key = hashlib.sha1(train_uint8.contiguous().numpy().tobytes()).hexdigest() + str(tuple(train_uint8.shape))
    if key not in _ZCA_FITS:
        _ZCA_FITS[key] = ZCA().fit(train_x, reg=MTT_ZCA_EPS)
        while len(_ZCA_FITS) > 2:
            _ZCA_FITS.popitem(last=False)
    return _ZCA_FITS[key]


def prepare_data(model_input: dict[str, Any], zca: Any = False) -> PreparedData:
    """Normalise the model input with its training-set statistics, or, with ZCA (``zca`` as
    in :func:`wants_zca`), exactly as MTT: scale to [0, 1] *without* mean/std normalisation and
    whiten with kornia's ``ZCAWhitening(eps=0.1)`` fitted on the training images. The returned
    ``mean``/``std`` are those that :func:`~galaxy_distillation.engine.data.to_display` must
    undo after the ZCA inverse (0 and 1 with ZCA)."""
    zca = wants_zca(zca, str(model_input.get("name", "")))
    mean, std = list(model_input["mean"]), list(model_input["std"])
    if zca:
        channels = int(model_input["train_x"].shape[1])
        mean, std = [0.0] * channels, [1.0] * channels
    train_x = to_float(model_input["train_x"], mean, std)
    test_x = to_float(model_input["test_x"], mean, std)
    whitener = None
    if zca:
        whitener = fitted_zca(model_input["train_x"], train_x)
        train_x, test_x = whitener.transform(train_x), whitener.transform(test_x)
    names = list(model_input["class_names"])
    return PreparedData(
        train_x=train_x,
        train_y=model_input["train_y"].long(),
        test_x=test_x,
        test_y=model_input["test_y"].long(),
        num_classes=len(names),
        class_names=names,
        mean=mean,
        std=std,
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
