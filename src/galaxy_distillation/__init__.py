"""galaxy-distillation: curate Galaxy Zoo 2 and distil it with trajectory matching."""

# Before anything imports torch: OpenMP wait policy and thread count (see runtime.py).
from galaxy_distillation import runtime as _runtime  # noqa: F401

__version__ = "0.1.0"
