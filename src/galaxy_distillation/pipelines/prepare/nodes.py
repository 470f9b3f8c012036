"""The one prepare step: model input (uint8) -> normalised (optionally ZCA-whitened) float tensors.

Its outputs are catalog datasets: ``prepared_data`` (the tensors, in memory) for the teacher,
distill, evaluation and compare stages, so they all see exactly the same pixels, and
``data_transform`` (the statistics and the ZCA state, on disk) with which reporting maps
distilled images back to display colours without refitting anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from galaxy_distillation.engine.data import to_display, to_float
from galaxy_distillation.engine.zca import MTT_ZCA_EPS, ZCA
from galaxy_distillation.params import TeacherParams, parse_flag

_ZCA_PREFIX = "zca."


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


def wants_zca(zca: Any, dataset_name: str) -> bool:
    """``teacher.zca``: ``true``/``false`` (:func:`~galaxy_distillation.params.parse_flag`), or
    ``auto`` = on for CIFAR (as in the paper), off for galaxies and image folders."""
    if isinstance(zca, str) and zca.lower() == "auto":
        return dataset_name.startswith("cifar")
    return zca is not None and parse_flag(zca)


def prepare_data(model_input: dict[str, Any], zca: Any = False) -> PreparedData:
    """Normalise the model input with its training-set statistics, or, with ZCA (``zca`` as
    in :func:`wants_zca`), exactly as MTT: scale to [0, 1] *without* mean/std normalisation and
    whiten with kornia's ``ZCAWhitening(eps=0.1)`` fitted on the training images. The returned
    ``mean``/``std`` are those :func:`display_images` undoes after the ZCA inverse (0 and 1
    with ZCA)."""
    zca = wants_zca(zca, str(model_input.get("name", "")))
    mean, std = list(model_input["mean"]), list(model_input["std"])
    if zca:
        channels = int(model_input["train_x"].shape[1])
        mean, std = [0.0] * channels, [1.0] * channels
    train_x = to_float(model_input["train_x"], mean, std)
    test_x = to_float(model_input["test_x"], mean, std)
    whitener = None
    if zca:
        whitener = ZCA().fit(train_x, reg=MTT_ZCA_EPS)
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


def prepare(model_input: dict[str, Any], teacher: TeacherParams) -> tuple[PreparedData, dict[str, Any]]:
    """The prepare node: the prepared tensors and the transform that produced them.

    Returns:
        ``prepared_data`` and ``data_transform`` (``{"mean", "std", "zca.<name>"...: tensors,
        "meta": {...}}``, see :func:`display_images`).
    """
    data = prepare_data(model_input, zca=teacher.zca)
    transform: dict[str, Any] = {
        "mean": torch.tensor(data.mean, dtype=torch.float32),
        "std": torch.tensor(data.std, dtype=torch.float32),
        "meta": {"zca": data.zca is not None, "class_names": data.class_names,
                 "dataset": str(model_input.get("name", ""))},
    }
    if data.zca is not None:
        transform.update({_ZCA_PREFIX + k: v for k, v in data.zca.state_dict().items()})
    return data, transform


def display_images(images: torch.Tensor, data_transform: dict[str, Any]) -> torch.Tensor:
    """Model-space images -> display colours, (N, C, H, W) float in [0, 1]: undo ZCA (with the
    saved state, when the run used it) and the normalisation, then clamp."""
    x = images.detach().float()
    zca_state = {k[len(_ZCA_PREFIX):]: v for k, v in data_transform.items() if k.startswith(_ZCA_PREFIX)}
    if zca_state:
        x = ZCA.from_state_dict(zca_state).inverse_transform(x)
    return to_display(x, data_transform["mean"].tolist(), data_transform["std"].tolist())
