"""Typed project parameters, validated before any compute starts.

``validate_parameters(params)`` turns the raw Kedro parameter dict into typed models and
raises :class:`ParameterError` with a one-line message naming the parameter and the allowed
values. The Kedro hook in :mod:`galaxy_distillation.hooks` calls it before every run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

DATASETS = ("gz2", "cifar10", "cifar100", "imagefolder")
METHODS = ("stm", "mtt")
INITS = ("real", "noise")


class ParameterError(ValueError):
    """An invalid parameter; the message is one line naming it and what is allowed."""


# A distill value that may be the word ``preset`` (filled by galaxy_distillation.presets).
_Preset = Literal["preset"]
PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchParams(_Strict):
    arch: Literal["convnet", "mlp", "alexnet", "vgg11", "resnet18"] = "convnet"
    width: int = Field(128, gt=0)
    depth: int = Field(3, gt=0)
    norm: Literal["instancenorm", "batchnorm", "none"] = "instancenorm"
    pooling: Literal["avgpooling", "maxpooling", "none"] = "avgpooling"
    activation: Literal["relu"] = "relu"


class SkyParams(_Strict):
    out_dir: str
    n_galaxies: int = Field(gt=0)
    seed: int = 0
    n_workers: int = Field(1, gt=0)
    progress: bool = True


class CurationParams(_Strict):
    fraction: Literal["fraction", "debiased", "weighted_fraction"] = "fraction"
    k_per_class: int = Field(gt=1)
    n_train_per_class: int = Field(gt=0)
    seed: int = 0
    on_shortfall: Literal["take", "error"] = "take"
    image_size: int = Field(gt=7)
    rotations: int = Field(10, gt=0)
    max_missing_fraction: float = Field(0.05, ge=0.0, le=1.0)
    montage_per_class: int = Field(6, gt=0)
    n_workers: int = Field(1, gt=0)
    rotation_interpolation: Literal["nearest", "bilinear"] = "nearest"   # the reference rotates with PIL nearest

    @field_validator("n_train_per_class")
    @classmethod
    def _train_below_k(cls, v: int, info: Any) -> int:
        k = info.data.get("k_per_class")
        if k is not None and v >= k:
            raise ValueError(f"must be smaller than k_per_class ({k})")
        return v


class TeacherParams(_Strict):
    n_experts: int = Field(gt=0)
    epochs: int = Field(gt=0)
    lr: float = Field(gt=0)
    batch_size: int = Field(gt=0)
    momentum: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    zca: bool | Literal["auto"] = "auto"
    seed: int = 0


class DistillParams(_Strict):
    """``distill``; the values marked ``| _Preset`` may be the word ``preset`` (see presets.py)."""

    iterations: PosInt | _Preset
    syn_steps: PosInt | _Preset
    expert_epochs: PosInt | _Preset
    max_start_epoch: PosInt | _Preset
    lr_img: PosFloat | _Preset
    lr_lr: PosFloat | _Preset | None = None
    lr_init: PosFloat | _Preset
    img_momentum: float = Field(0.5, ge=0)
    lr_momentum: float = Field(0.5, ge=0)
    batch_syn: PosInt | _Preset | None = None
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    lam: float = Field(5.0, gt=0)
    test_every: int = Field(10, gt=0)
    max_iter_stage: PosInt | _Preset = 1000
    stop_rule: Literal["paper", "code", "preset"] = "paper"
    loss_rising_rule: bool = False
    min_lr_img: PosFloat | _Preset = 50.0
    schedule: Literal["code", "paper"] = "code"     # STM preset schedule (used where a value is 'preset')
    selection: Literal["final", "best_train"] = "final"
    memory_mode: Literal["unrolled", "checkpoint"] = "unrolled"
    checkpoint_every: int = Field(50, gt=0)
    checkpoint_root: str = "data/07_model_output/checkpoints"
    eval_every: int = Field(0, ge=0)
    seed: int = 0


class EvaluationParams(_Strict):
    n_nets: int = Field(gt=0)
    epochs: int = Field(gt=0)
    full_n_nets: int = Field(gt=0)
    full_epochs: int = Field(gt=0)
    full_lr: float = Field(gt=0)
    random_lr: PosFloat | Literal["learned"] | None = None   # learned (= null) | a fixed step size
    batch_size: int = Field(256, gt=0)
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    use_vmap: bool = True
    seed: int = 0
    cross_arch: list[str] = []


class CompareParams(_Strict):
    """The ``compare`` pipeline: MTT vs STM over seeds and STM's lambda ablation."""

    methods: list[Literal["stm", "mtt"]] = Field(default_factory=lambda: ["mtt", "stm"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    iterations: int = Field(gt=0)
    eval_every: int = Field(gt=0)
    eval_nets: int = Field(2, gt=0)
    eval_epochs: int = Field(gt=0)
    eval_at_start: bool = True
    init: Literal["real", "noise"] = "real"
    lambdas: list[float] = Field(default_factory=lambda: [1.0, 3.0, 5.0, 10.0])
    lambda_seed: int = 0
    lambda_iterations: int | None = Field(None, gt=0)

    @field_validator("lambdas")
    @classmethod
    def _positive_lambdas(cls, v: list[float]) -> list[float]:
        if any(not lam > 0 for lam in v):
            raise ValueError("every lambda must be > 0")
        return v


class SweepParams(_Strict):
    """``table``/``table1``/``table2``: run only some of a table's cells (null = all)."""

    ipcs: list[PosInt] | None = None
    methods: list[Literal["stm", "mtt"]] | None = None
    inits: list[Literal["real", "noise"]] | None = None


class ProjectParams(BaseModel):
    """The top-level run parameters (``--params name=value``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    dataset: Literal["gz2", "cifar10", "cifar100", "imagefolder"] = "gz2"
    method: Literal["stm", "mtt"] = "stm"
    ipc: int = Field(1, gt=0)
    init: Literal["real", "noise"] = "real"
    augmented: StrictBool = False
    seed: int = 0
    device: str = "auto"

    @field_validator("ipc", mode="before")
    @classmethod
    def _ipc_integer(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("must be a positive integer")
        return v

    @field_validator("augmented", mode="before")
    @classmethod
    def _bool_words(cls, v: Any) -> Any:
        if isinstance(v, str) and v.lower() in {"true", "false"}:
            return v.lower() == "true"
        return v

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        ok = v in {"auto", "cpu", "cuda"} or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError("must be one of auto, cpu, cuda, cuda:<index>")
        return v


_GROUPS: dict[str, type[BaseModel]] = {
    "sky": SkyParams,
    "curation": CurationParams,
    "teacher": TeacherParams,
    "distill": DistillParams,
    "evaluation": EvaluationParams,
    "model": ArchParams,
    "compare": CompareParams,
    "sweep": SweepParams,
}

_ALLOWED_HINT = {
    "dataset": "one of " + ", ".join(DATASETS),
    "method": "one of " + ", ".join(METHODS),
    "init": "one of " + ", ".join(INITS),
    "ipc": "a positive integer (images per class), e.g. 1, 10, 50",
    "augmented": "true or false",
}


def _one_line(group: str | None, err: ValidationError, raw: dict[str, Any]) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    name = f"{group}.{loc}" if group else loc
    got = raw
    for part in first["loc"]:
        got = got.get(part) if isinstance(got, dict) else None
    hint = _ALLOWED_HINT.get(loc) if group is None else None
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown parameter"
    allowed = f"; allowed: {hint}" if hint else ""
    return f"invalid parameter '{name}' = {got!r}: {msg}{allowed}"


def validate_parameters(params: dict[str, Any]) -> dict[str, BaseModel]:
    """Validate a Kedro parameter dict.

    Args:
        params: the merged parameters (``context.params``).

    Returns:
        ``{"project": ProjectParams, "<group>": <GroupParams>, ...}`` for the groups present.

    Raises:
        ParameterError: one line naming the first invalid parameter and what is allowed.
    """
    top = {k: v for k, v in params.items() if k not in _GROUPS}
    try:
        out: dict[str, BaseModel] = {"project": ProjectParams(**top)}
    except ValidationError as err:
        raise ParameterError(_one_line(None, err, top)) from None
    for group, model in _GROUPS.items():
        if group in params:
            raw = params[group] or {}
            if not isinstance(raw, dict):
                raise ParameterError(f"invalid parameter '{group}': expected a mapping, got {raw!r}")
            try:
                out[group] = model(**raw)
            except ValidationError as err:
                raise ParameterError(_one_line(group, err, raw)) from None
    return out


def with_defaults(group: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A parameter group with every optional key filled in from its typed model's defaults.

    Nodes call this on the groups they take, so a configuration that leaves out an optional
    key (``evaluation.dsa_strategy``, say) gets the documented default rather than a KeyError.
    """
    try:
        return _GROUPS[group](**(raw or {})).model_dump()
    except ValidationError as err:
        raise ParameterError(_one_line(group, err, raw or {})) from None
