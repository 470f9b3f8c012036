"""The ``prepare`` step: model input (uint8) -> the normalised (optionally ZCA-whitened) tensors every later stage reads."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
