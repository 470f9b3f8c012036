"""Plain-PyTorch engine (no Kedro, no Ray).

One home per concept: ``networks``/``functional`` (nets, flat parameters), ``dsa``, ``zca``,
``seeding`` (every seed derivation), ``experts`` (training), ``trajectories`` (the format, the
expert bank, in-memory sources), ``distill_config`` (DistillConfig, records, errors), ``schedule`` (STM's epoch-pool
schedule: trend test, stages, stop rules), ``student`` (inner unroll, memory-flat backward,
matching loss; K students at once), ``matching`` (the Distiller; its state and checkpoints:
``distill_state``), ``batched`` (several distillations as one program), ``checkpoint``, ``evaluation``, ``synthetic``.
"""

from .batched import BatchedDistiller
from .data import DataError, as_float_batch, pick_device, to_display, to_float
from .distill_config import (
    DistillationDivergedError,
    DistillationError,
    DistillConfig,
    DistillConfigError,
    DistillResult,
    IterationRecord,
)
from .dsa import DEFAULT_DSA_STRATEGY, DSA_OPERATIONS, DSAError, DSAParams, dsa_augment, parse_strategy
from .evaluation import (
    EvalConfig,
    EvalResult,
    EvaluationError,
    check_dataset,
    compute_accuracy,
    evaluate_images,
    init_network,
    quick_evaluator,
)
from .experts import ExpertConfig, grow_experts, train_expert, train_expert_group, train_experts
from .functional import FlatModel, FlatModelError
from .matching import Distiller
from .networks import (
    ARCHITECTURES,
    NetworkConfigError,
    build_from_spec,
    build_network,
    count_parameters,
    has_batchnorm,
)
from .schedule import StageDecision, StageState, STMSchedule, TrendTest, pearson_trend, trend_test
from .seeding import clone_generator, derive_seed, make_generator, mix_seed
from .student import matching_loss, matching_losses, unroll_student, unroll_students
from .trajectories import (
    ExpertBank,
    ExpertError,
    ExpertSource,
    InMemoryExperts,
    Trajectory,
    expert_path,
    has_state,
    load_trajectory,
    read_trajectory_meta,
    save_trajectory,
)
from .zca import ZCA, ZCAError

__all__ = [
    "BatchedDistiller",
    "Distiller",
    "DistillConfig",
    "DistillConfigError",
    "DistillResult",
    "DistillationDivergedError",
    "DistillationError",
    "ExpertSource",
    "InMemoryExperts",
    "IterationRecord",
    "STMSchedule",
    "StageDecision",
    "StageState",
    "TrendTest",
    "matching_loss",
    "matching_losses",
    "mix_seed",
    "pearson_trend",
    "trend_test",
    "unroll_student",
    "unroll_students",
    "ARCHITECTURES",
    "DEFAULT_DSA_STRATEGY",
    "DSA_OPERATIONS",
    "DSAError",
    "DSAParams",
    "DataError",
    "EvalConfig",
    "EvalResult",
    "EvaluationError",
    "ExpertBank",
    "ExpertConfig",
    "ExpertError",
    "FlatModel",
    "FlatModelError",
    "NetworkConfigError",
    "Trajectory",
    "ZCA",
    "ZCAError",
    "as_float_batch",
    "build_from_spec",
    "build_network",
    "check_dataset",
    "clone_generator",
    "compute_accuracy",
    "count_parameters",
    "derive_seed",
    "dsa_augment",
    "evaluate_images",
    "quick_evaluator",
    "expert_path",
    "has_batchnorm",
    "init_network",
    "load_trajectory",
    "make_generator",
    "parse_strategy",
    "pick_device",
    "read_trajectory_meta",
    "save_trajectory",
    "to_display",
    "to_float",
    "train_expert",
    "grow_experts",
    "has_state",
    "train_expert_group",
    "train_experts",
]
