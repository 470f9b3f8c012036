"""Plain-PyTorch engine: networks, flat parameters, DSA, ZCA, experts, evaluation (no Kedro)."""

from .data import DataError, derive_seed, make_generator, pick_device, to_display, to_float
from .dsa import DEFAULT_DSA_STRATEGY, DSAError, DSAParams, dsa_augment
from .functional import FlatModel, FlatModelError
from .networks import NetworkConfigError, build_from_spec, build_network, count_parameters, has_batchnorm
