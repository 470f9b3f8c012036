"""Channel statistics, montage and report."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from galaxy_distillation.curation.errors import ParameterError
from galaxy_distillation.curation.labels import CLASS_NAMES
from galaxy_distillation.curation.report import curation_report, make_montage
from galaxy_distillation.curation.stats import channel_stats


def test_channel_stats_matches_numpy():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (37, 3, 9, 11), generator=gen, dtype=torch.uint8)
    x[:, 1] //= 3  # channels differ
    ref = x.numpy().astype(np.float64) / 255.0
    for chunk in (1, 5, 1000):
        out = channel_stats(x, chunk=chunk)
        np.testing.assert_allclose(out["mean"], ref.mean(axis=(0, 2, 3)), rtol=1e-10)
        np.testing.assert_allclose(out["std"], ref.std(axis=(0, 2, 3)), rtol=1e-8)
    assert all(isinstance(v, float) for v in out["mean"] + out["std"])
    with pytest.raises(ParameterError, match="uint8"):
        channel_stats(x.float())


def test_montage_and_report():
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (30, 3, 8, 8), generator=gen, dtype=torch.uint8)
    labels = torch.arange(30) % 9
    labels[labels == 8] = 7  # class 8 empty: its row stays blank
    labels[6] = 7  # class 6 keeps 2 images
    fig = make_montage(images, labels, CLASS_NAMES, per_class=3, seed=0)
    axes = fig.get_axes()
    assert len(axes) == 27
    assert axes[0].get_ylabel().endswith(CLASS_NAMES[0])
    assert sum(len(ax.images) for ax in axes) == 3 * 7 + 2  # class 6 has 2 images
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"

    rep = curation_report(
        catalogue_info={"n_rows": np.int64(5)},
        label_stats={"mean_confidence": np.float64(0.5), "counts_by_label": np.arange(9)},
        selection_report={"shortfalls": {}},
        image_reports={"train": {"loaded_ids": list(range(500)), "n_loaded": 500}},
        stats={"mean": [0.1, 0.2, 0.3]},
        params=(1, 2),
    )
    text = json.dumps(rep)
    back = json.loads(text)
    assert back["catalogue"]["n_rows"] == 5
    assert back["images"]["train"]["loaded_ids"]["n"] == 500
    assert back["labels"]["counts_by_label"] == list(range(9))
    assert back["params"] == [1, 2]
