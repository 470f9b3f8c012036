"""Small rendered mock galaxies for the insight tests: one feature switched on or off, the same noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from galaxy_distillation.curation.images import area_resize, crop_center_half
from galaxy_distillation.params import InsightParams
from galaxy_distillation.sky.properties import draw_properties
from galaxy_distillation.sky.render import render_properties

ROOT = Path(__file__).resolve().parents[1]


def params(**overrides) -> InsightParams:
    """The project's insight parameters (conf/base/parameters_insight.yml) with ``overrides``."""
    raw = yaml.safe_load((ROOT / "conf/base/parameters_insight.yml").read_text())["insight"]
    return InsightParams(**{**raw, **overrides})


def config(**overrides):
    return params(**overrides).measure_config()


def properties(true_class: int, seed: int, **overrides) -> dict:
    props = draw_properties(true_class, np.random.default_rng(seed))
    props.update(overrides)
    return props


def render(props: dict, size: int, noise_seed: int) -> np.ndarray:
    """A curated-like display-space float image (3, size, size) = uint8 / 255: rendered at 256 px,
    its central half cropped and area-resized as curation does (less noise than a direct render)."""
    image, _ = render_properties(props, np.random.default_rng(noise_seed), 256)
    return area_resize(crop_center_half(image), size).transpose(2, 0, 1).astype(np.float64) / 255.0


def curated_set(n_per_class: int, size: int, seed: int, classes=range(9)) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, size, size) uint8 images and labels of freshly rendered galaxies, ``n_per_class`` each."""
    images, labels = [], []
    for k in classes:
        for j in range(n_per_class):
            s = seed * 100_000 + k * 1000 + j
            images.append(np.round(render(properties(k, s), size, s) * 255).astype(np.uint8))
            labels.append(k)
    return np.stack(images), np.array(labels, dtype=np.int64)
