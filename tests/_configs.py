"""Engine configurations built the project's way in tests: the typed parameters' defaults
(``galaxy_distillation.params``, the one home of defaults) plus the fields a test sets."""

from __future__ import annotations

from galaxy_distillation.engine import DistillConfig, EvalConfig, ExpertConfig
from galaxy_distillation.params import ArchParams, DistillParams, EvaluationParams, TeacherParams


def distill_config(method: str = "stm", ipc: int = 1, init: str = "real", **fields) -> DistillConfig:
    """An engine DistillConfig built the project's way: the typed parameters' defaults + ``fields``."""
    return DistillParams(**fields).engine_config(method, ipc, init)


def expert_config(arch: dict | None = None, **fields) -> ExpertConfig:
    """An engine ExpertConfig from the typed parameters' defaults + ``fields``."""
    return TeacherParams(**fields).engine_config(ArchParams(**(arch or {})))


def eval_config(arch: dict | None = None, n_nets: int | None = None, epochs: int | None = None,
                curve_every: int = 0, **fields) -> EvalConfig:
    """An engine EvalConfig from the typed parameters' defaults + ``fields``."""
    return EvaluationParams(**fields).engine_config(arch or ArchParams().spec(), n_nets, epochs, curve_every)
