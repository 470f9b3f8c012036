"""Rotation interpolation is a curation parameter; the default is the reference's PIL nearest."""

import numpy as np
import pytest

from galaxy_distillation.curation.errors import ParameterError
from galaxy_distillation.curation.images import rotate_then_crop
from galaxy_distillation.params import CurationParams


def test_nearest_rotation_only_moves_pixels_bilinear_blends_them():
    rng = np.random.default_rng(0)
    img = (rng.integers(0, 8, (40, 40, 3)) * 32).astype(np.uint8)  # 8 grey levels only
    nearest = rotate_then_crop(img, 36.0, 20, "nearest")  # central half of 40 px = 20 px: no resize
    bilinear = rotate_then_crop(img, 36.0, 20, "bilinear")
    assert set(np.unique(nearest)) <= set(np.unique(img))  # nearest: pixels moved, no new values
    assert len(set(np.unique(bilinear))) > len(set(np.unique(img)))
    assert not np.array_equal(nearest, bilinear)
    with pytest.raises(ParameterError, match="interpolation"):
        rotate_then_crop(img, 36.0, 20, "cubic")
    assert CurationParams().rotation_interpolation == "nearest"
