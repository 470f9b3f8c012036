"""Per-class accuracy and confusion matrices from the evaluation networks' test predictions.

For a morphology study the first question is which classes a distilled set teaches and which
it confuses. :func:`confusion_counts` turns the final predictions of ``n`` networks on the test
set into ``n`` confusion matrices (rows: true class, columns: predicted class);
:func:`class_report` averages them over the networks, both as counts and row-normalised (each
row divided by that class's number of test images, so the diagonal is the per-class accuracy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["confusion_counts", "class_report"]


def confusion_counts(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """Confusion counts per network: ``(n_nets, K, K)`` int, ``[net, true class, predicted class]``.

    Args:
        predictions: ``(n_nets, M)`` (or ``(M,)`` for one network) predicted classes.
        labels: ``(M,)`` true classes in ``[0, num_classes)``.
        num_classes: ``K``.
    """
    pred = torch.as_tensor(predictions).detach().cpu().long()
    if pred.dim() == 1:
        pred = pred.unsqueeze(0)
    true = torch.as_tensor(labels).detach().cpu().long()
    if pred.shape[-1] != true.shape[0]:
        raise ValueError(f"{pred.shape[-1]} predictions per net for {true.shape[0]} test labels")
    k = int(num_classes)
    flat = true.unsqueeze(0) * k + pred  # (n, M): index of the (true, pred) cell
    counts = torch.stack([torch.bincount(row, minlength=k * k) for row in flat])
    return counts.view(-1, k, k).numpy().astype(np.int64)


def class_report(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """Per-class accuracy (%) and the confusion matrix, mean over the networks.

    Returns:
        ``{"support", "per_class_acc", "per_class_acc_std", "confusion", "confusion_counts"}``:
        the test images per class; per class the mean and population std over nets of its
        accuracy (%); the row-normalised confusion (fractions, rows sum to 1 for classes with
        test images) and the raw counts, both averaged over the nets (``[true][predicted]``).
    """
    counts = confusion_counts(predictions, labels, num_classes).astype(np.float64)  # (n, K, K)
    support = counts[0].sum(axis=1)  # identical for every net
    rows = np.where(support > 0, support, 1.0)[None, :, None]
    normalised = counts / rows
    per_class = 100.0 * np.diagonal(normalised, axis1=1, axis2=2)  # (n, K)
    return {
        "support": [int(s) for s in support],
        "per_class_acc": [float(v) for v in per_class.mean(axis=0)],
        "per_class_acc_std": [float(v) for v in per_class.std(axis=0)],
        "confusion": normalised.mean(axis=0).round(6).tolist(),
        "confusion_counts": counts.mean(axis=0).round(6).tolist(),
    }
