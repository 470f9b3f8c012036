"""Typed project parameters: the one home of every setting's type and default.

- The YAML files in ``conf/`` carry the values; the pydantic models below carry the only
  defaults; the engine's configurations (``DistillConfig``, ``ExpertConfig``, ``EvalConfig``)
  are built from them (``engine_config`` methods) and have no defaults of their own.
- Nodes declare the models as type hints (``distill: DistillParams``): Kedro validates the
  ``params:`` inputs into these models before the run.
- ``validate_parameters(params)`` (called by the hook in :mod:`galaxy_distillation.hooks`
  before Kedro builds anything) raises :class:`ParameterError` with a one-line message naming
  the parameter and what is allowed.
- :func:`parse_flag`: the one parser of booleans such as ``augmented``. The names the run-level
  choices give files and runs (data label, variant, expert set) are in
  :mod:`galaxy_distillation.names`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError, field_validator

from galaxy_distillation.engine.distill_config import DistillConfig
from galaxy_distillation.engine.dsa import DEFAULT_DSA_STRATEGY
from galaxy_distillation.engine.evaluation import EvalConfig
from galaxy_distillation.engine.experts import ExpertConfig
from galaxy_distillation.errors import ParameterError, validation_message  # ParameterError: re-exported here
from galaxy_distillation.params_insight import ClaimParams, InsightParams  # noqa: F401 - the insight group

DATASETS = ("gz2", "cifar10", "cifar100", "imagefolder")
METHODS = ("stm", "mtt")
INITS = ("real", "noise")


_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


def parse_flag(value: Any) -> bool:
    """The project's one boolean parser (``augmented`` on the command line, in file names,
    in datasets): a bool, or one of true/false, 1/0, yes/no, y/n, on/off (any case).

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def flag_words(value: Any) -> Any:
    """A boolean word as a bool (:func:`parse_flag`); anything else as it is, for the field to refuse."""
    try:
        return parse_flag(value)
    except ValueError:
        return value


#: A boolean parameter, read by :func:`parse_flag` only (pydantic's own lax parsing, which also
#: takes ``t``/``f`` and ``1.0``, is not used): every boolean field of the parameter models.
Flag = Annotated[StrictBool, BeforeValidator(flag_words)]


# A distill value that may be the word ``preset`` (filled by galaxy_distillation.presets).
_Preset = Literal["preset"]
PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchParams(_Strict):
    """``model``: the network used by experts, distillation and evaluation (paper: ConvNet-3, width 128)."""

    arch: Literal["convnet", "mlp", "alexnet", "vgg11", "resnet18"] = "convnet"
    width: int = Field(128, gt=0)
    depth: int = Field(3, gt=0)
    norm: Literal["instancenorm", "batchnorm", "none"] = "instancenorm"
    pooling: Literal["avgpooling", "maxpooling", "none"] = "avgpooling"
    activation: Literal["relu"] = "relu"

    def spec(self) -> dict[str, Any]:
        """The engine's network spec (``networks.build_from_spec``)."""
        return self.model_dump()


class SkyParams(_Strict):
    """``sky``: the built-in mock sky."""

    out_dir: str = "{storage_root}/01_raw/mock_sky"  # "{storage_root}": replaced by storage_root (storage.rooted)
    n_galaxies: int = Field(2000, gt=0)
    seed: int = 0
    n_workers: int = Field(1, gt=0)
    progress: Flag = True


class CurationParams(_Strict):
    """``curation``: GZ2 votes + images -> the balanced 9-class benchmark (paper: 600 per class, 500/100)."""

    fraction: Literal["fraction", "debiased", "weighted_fraction"] = "fraction"
    k_per_class: int = Field(600, gt=1)
    n_train_per_class: int = Field(500, gt=0)
    seed: int = 0
    on_shortfall: Literal["take", "error"] = "take"
    image_size: int = Field(128, gt=7)
    rotations: int = Field(10, gt=0)
    max_missing_fraction: float = Field(0.05, ge=0.0, le=1.0)
    montage_per_class: int = Field(6, gt=0)
    n_workers: int = Field(1, gt=0)
    rotation_interpolation: Literal["nearest", "bilinear"] = "nearest"  # the reference rotates with PIL nearest

    @field_validator("n_train_per_class")
    @classmethod
    def _train_below_k(cls, v: int, info: Any) -> int:
        k = info.data.get("k_per_class")
        if k is not None and v >= k:
            raise ValueError(f"must be smaller than k_per_class ({k})")
        return v


class TeacherParams(_Strict):
    """``teacher``: expert trajectories (paper GZ2: 100 experts x 50 epochs, lr 1e-3, batch 256)."""

    n_experts: int = Field(100, gt=0)
    epochs: PosInt | Literal["reach"] = 50  # reach: what distillation reads, resolved before any node (reach.py)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(256, gt=0)
    momentum: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    dsa_strategy: str = DEFAULT_DSA_STRATEGY
    eval_batch_size: int = Field(256, gt=0)
    zca: Flag | Literal["auto"] = "auto"
    seed: int = 0
    experts_at_once: int | Literal["auto"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: Flag = False  # the training step through torch.compile (execution only; equal to float tolerance)

    @field_validator("experts_at_once")
    @classmethod
    def _at_once_positive(cls, v: int | str) -> int | str:
        if v != "auto" and (isinstance(v, bool) or int(v) < 1):
            raise ValueError("must be 'auto' or a positive integer")
        return v

    def engine_config(self, model: ArchParams) -> ExpertConfig:
        """The engine's expert-training configuration (``epochs: reach`` must be resolved first)."""
        if self.epochs == "reach":
            raise ParameterError("teacher.epochs 'reach' is resolved before the run (galaxy_distillation.reach)")
        return ExpertConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, momentum=self.momentum,
                            weight_decay=self.weight_decay, dsa_strategy=self.dsa_strategy, arch=model.spec(),
                            eval_batch_size=self.eval_batch_size, precision=self.precision, compile=self.compile)


class DistillParams(_Strict):
    """``distill``: trajectory matching (defaults: STM on CIFAR-like scale; ``docs/method.md``).

    The values typed ``| _Preset`` may be the word ``preset``: :meth:`engine_config` fills them
    from :mod:`galaxy_distillation.presets` for (dataset, method, ipc); a value given on the
    command line replaces the word first, so explicit parameters win.
    """

    iterations: PosInt | _Preset = 5000
    syn_steps: PosInt | _Preset = 20
    expert_epochs: PosInt | _Preset = 3
    max_start_epoch: PosInt | _Preset = 25
    lr_img: PosFloat | _Preset = 1000.0
    lr_lr: PosFloat | _Preset | None = None
    lr_init: PosFloat | _Preset = 0.01
    log_lr: Flag | None = None
    img_momentum: float = Field(0.5, ge=0)
    lr_momentum: float = Field(0.5, ge=0)
    batch_syn: PosInt | _Preset | None = None
    dsa_strategy: str = DEFAULT_DSA_STRATEGY
    lam: float = Field(5.0, gt=0)
    rising_lam: float = Field(3.0, gt=0)
    test_every: int = Field(10, gt=0)
    max_iter_stage: Annotated[int, Field(ge=0)] | _Preset = 1000  # 0: no stage limit (paper rule never fires)
    stop_rule: Literal["paper", "code", "preset"] = "paper"
    loss_rising_rule: Flag = False
    min_lr_img: PosFloat | _Preset = 50.0
    lr_img_decay: float = Field(0.8, gt=0, le=1)
    lr_img_decay_every: int = Field(50, gt=0)
    max_bad_steps: int = Field(10, gt=0)
    bad_step_lr_factor: float = Field(0.5, gt=0, le=1)
    memory_mode: Literal["unrolled", "checkpoint", "graphed", "auto"] = "unrolled"  # auto: CPU unrolled; CUDA by a probe
    expert_cache: int = Field(4, gt=0)
    checkpoint_every: int = Field(50, ge=0)
    checkpoint_root: str = "data/07_model_output/checkpoints"
    eval_every: int = Field(0, ge=0)
    seed: int = 0
    schedule: Literal["code", "paper"] = "code"  # STM's preset schedule, where a value is 'preset'
    selection: Literal["final", "best_train"] = "final"

    #: Fields of the node only (not of the engine's ``DistillConfig``).
    NODE_ONLY: ClassVar[frozenset[str]] = frozenset({"checkpoint_root", "schedule"})
    #: MTT learns alpha linearly: a larger step-size rate is STM's log-space value.
    MTT_LR_LR_LIMIT: ClassVar[float] = 1e-3

    def resolved(self, dataset: str | None, method: str, ipc: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The group's values with every ``preset`` filled for (dataset, method, ipc), and the
        record of the preset used (``None`` when no value asked for one).

        Raises:
            ParameterError: a ``preset`` without a published setting, or MTT with an ``lr_lr``
                above 1e-3 (STM's log-space rate used for MTT's linear step size).
        """
        from galaxy_distillation.presets import PresetError, resolve_distill

        try:
            values, record = resolve_distill(self.model_dump(), str(dataset or ""), method, int(ipc))
        except PresetError as err:
            raise ParameterError(str(err)) from None
        lr_lr = values.get("lr_lr")
        if method == "mtt" and lr_lr is not None and float(lr_lr) > self.MTT_LR_LR_LIMIT and not values.get("log_lr"):
            raise ParameterError(
                f"invalid parameter 'distill.lr_lr' = {lr_lr}: MTT learns its step size linearly (published "
                f"1e-5..1e-7); {lr_lr} is STM's log-space rate. Use 'preset' or null."
            )
        return values, record

    def engine_config(self, method: str, ipc: int, init: str, dataset: str | None = None,
                      **overrides: Any) -> DistillConfig:
        """The engine's configuration for one run: ``preset`` values resolved for ``dataset``
        (see :meth:`resolved`), then ``overrides`` replace single fields."""
        values, _ = self.resolved(dataset, method, ipc)
        values = {k: v for k, v in values.items() if k not in self.NODE_ONLY}
        values.update(method=method, ipc=int(ipc), init=init)
        values.update(overrides)
        return DistillConfig(**values)


class EvaluationParams(_Strict):
    """``evaluation``: the paper's protocol (5 nets x 1000 epochs, SGD momentum 0.9, wd 5e-4, lr x0.1 at half)."""

    n_nets: int = Field(5, gt=0)
    epochs: int = Field(1000, gt=0)
    full_n_nets: int = Field(2, gt=0)
    full_epochs: int = Field(50, gt=0)
    full_lr: float = Field(0.01, gt=0)
    random_lr: PosFloat | Literal["learned"] | None = None  # learned (= null) | a fixed step size (reference GZ2: 1e-4)
    quick_nets: int = Field(2, gt=0)
    quick_epochs_fraction: float = Field(0.2, gt=0, le=1)
    batch_size: int = Field(256, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(5e-4, ge=0)
    lr_decay_at: float = Field(0.5, gt=0)
    dsa_strategy: str = DEFAULT_DSA_STRATEGY
    use_vmap: Flag | Literal["auto"] = "auto"  # auto: CPU the loop; CUDA the faster by a short timed probe
    vmap_on_cpu: Flag = False
    eval_batch_size: int = Field(256, gt=0)
    vmap_max_images: int = Field(1024, gt=0)
    compile: Flag = False  # the training step through torch.compile (execution only; equal to float tolerance)
    seed: int = 0
    cross_arch: list[Literal["convnet", "mlp", "alexnet", "vgg11", "resnet18"]] = []

    def engine_config(self, model: ArchParams | dict[str, Any], n_nets: int | None = None,
                      epochs: int | None = None, curve_every: int = 0) -> EvalConfig:
        """The engine's evaluation settings for ``n_nets`` nets x ``epochs`` epochs (default: the
        protocol's) of the network ``model`` (an :class:`ArchParams` or a spec dict)."""
        arch = model.spec() if isinstance(model, ArchParams) else dict(model)
        return EvalConfig(n_nets=int(n_nets or self.n_nets), epochs=int(epochs or self.epochs),
                          batch_size=self.batch_size, momentum=self.momentum, weight_decay=self.weight_decay,
                          lr_decay_at=self.lr_decay_at, dsa_strategy=self.dsa_strategy, arch=arch,
                          use_vmap=self.use_vmap, vmap_on_cpu=self.vmap_on_cpu, eval_batch_size=self.eval_batch_size,
                          vmap_max_images=self.vmap_max_images, curve_every=int(curve_every), compile=self.compile)

    def quick_config(self, model: ArchParams) -> EvalConfig:
        """The quick evaluation during distillation: ``quick_nets`` nets, ``quick_epochs_fraction`` of the epochs."""
        return self.engine_config(model, self.quick_nets, max(1, int(self.epochs * self.quick_epochs_fraction + 1e-9)))


class ReportingParams(_Strict):
    """``reporting``: figures and tables."""

    grid_max_per_class: int = Field(10, gt=0)


class CompareParams(_Strict):
    """The ``compare`` pipeline: MTT vs STM over seeds and STM's lambda ablation."""

    methods: list[Literal["stm", "mtt"]] = Field(default_factory=lambda: ["mtt", "stm"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    iterations: int = Field(gt=0)
    eval_every: int = Field(gt=0)
    eval_nets: int = Field(2, gt=0)
    eval_epochs: int = Field(gt=0)
    eval_at_start: Flag = True
    init: Literal["real", "noise"] = "real"
    lambdas: list[float] = Field(default_factory=lambda: [1.0, 3.0, 5.0, 10.0])
    lambda_seed: int = 0
    lambda_iterations: int | None = Field(None, gt=0)
    batched: Flag = False  # the runs that share a shape as one batched program (engine.BatchedDistiller)

    @field_validator("lambdas")
    @classmethod
    def _positive_lambdas(cls, v: list[float]) -> list[float]:
        if any(not lam > 0 for lam in v):
            raise ValueError("every lambda must be > 0")
        return v


class ComputeParams(_Strict):
    """Where independent tasks (experts, sweep runs) run: this process or a Ray cluster."""

    backend: Literal["local", "ray"] = "local"
    address: str = ""             # Ray cluster address (auto, host:port, ray://host:port); empty = a local Ray
    node_ip_address: str = ""     # this node's address as Ray should see it (tests: 127.0.0.2); empty = Ray's choice
    cpus_per_task: float = Field(1.0, gt=0)
    gpus_per_task: float = Field(0.0, ge=0)
    max_retries: int = Field(3, ge=0)

    @field_validator("address", "node_ip_address", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return "" if v is None else str(v)


class SweepParams(_Strict):
    """``sweep``: run only some cells of ``table``/``table1``/``table2`` (null = all); ``batched``:
    the cells that share a shape distil as one batched program (pipelines/sweep/batched.py)."""

    ipcs: list[PosInt] | None = None
    methods: list[Literal["stm", "mtt"]] | None = None
    inits: list[Literal["real", "noise"]] | None = None
    batched: Flag = False  # execution only: the same numbers to float rounding (engine.BatchedDistiller)


class ProjectParams(BaseModel):
    """The top-level run parameters (``--params name=value``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    dataset: Literal["gz2", "cifar10", "cifar100", "imagefolder"] = "gz2"
    method: Literal["stm", "mtt"] = "stm"
    ipc: int = Field(1, gt=0)
    init: Literal["real", "noise"] = "real"
    augmented: Flag = False
    seed: int = 0
    device: str = "auto"
    storage_root: str = Field("data", min_length=1)
    threads: int | Literal["auto"] = "auto"

    @field_validator("threads")
    @classmethod
    def _threads_positive(cls, v: int | str) -> int | str:
        if v != "auto" and (isinstance(v, bool) or int(v) < 1):
            raise ValueError("must be 'auto' or a positive integer")
        return v

    @field_validator("ipc", mode="before")
    @classmethod
    def _ipc_integer(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("must be a positive integer")
        return v

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        ok = v in {"auto", "cpu", "cuda"} or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError("must be one of auto, cpu, cuda, cuda:<index>")
        return v


PARAMETER_GROUPS: dict[str, type[BaseModel]] = {
    "sky": SkyParams,
    "curation": CurationParams,
    "teacher": TeacherParams,
    "distill": DistillParams,
    "evaluation": EvaluationParams,
    "model": ArchParams,
    "compare": CompareParams,
    "compute": ComputeParams,
    "reporting": ReportingParams,
    "sweep": SweepParams,
    "insight": InsightParams,
}

_ALLOWED_HINT = {
    "dataset": "one of " + ", ".join(DATASETS),
    "method": "one of " + ", ".join(METHODS),
    "init": "one of " + ", ".join(INITS),
    "ipc": "a positive integer (images per class), e.g. 1, 10, 50",
    "augmented": "true or false",
}


def _one_line(group: str | None, err: ValidationError, raw: dict[str, Any], model: type[BaseModel]) -> str:
    return validation_message(group, err.errors(), raw, model.model_fields, _ALLOWED_HINT)


def validate_parameters(params: dict[str, Any]) -> dict[str, BaseModel]:
    """Validate a Kedro parameter dict.

    Args:
        params: the merged parameters (``context.params``).

    Returns:
        ``{"project": ProjectParams, "<group>": <GroupParams>, ...}`` for the groups present.

    Raises:
        ParameterError: one line naming the first invalid parameter and what is allowed.
    """
    top = {k: v for k, v in params.items() if k not in PARAMETER_GROUPS}
    try:
        out: dict[str, BaseModel] = {"project": ProjectParams(**top)}
    except ValidationError as err:
        raise ParameterError(_one_line(None, err, top, ProjectParams)) from None
    for group, model in PARAMETER_GROUPS.items():
        if group in params:
            raw = params[group] or {}
            if not isinstance(raw, dict):
                raise ParameterError(f"invalid parameter '{group}': expected a mapping, got {raw!r}")
            try:
                out[group] = model(**raw)
            except ValidationError as err:
                raise ParameterError(_one_line(group, err, raw, model)) from None
    if "distill" in out:  # presets exist and MTT's rate is not STM's, before any compute
        project = out["project"]
        out["distill"].resolved(project.dataset, project.method, project.ipc)
    return out


def check_known_names(runtime_params: dict[str, Any], known: set[str]) -> None:
    """Refuse ``--params`` keys whose top-level name is not a configured parameter.

    Args:
        runtime_params: the ``--params`` given on the command line (``{"ipcc": 2}``; a dotted
            ``distill.iterations`` counts by its first part).
        known: the top-level parameter names of the configuration (parameters and globals).

    Raises:
        ParameterError: one line naming the unknown key and the closest known name.
    """
    import difflib

    for key in runtime_params or {}:
        top = str(key).split(".", 1)[0]
        if top in known:
            continue
        close = difflib.get_close_matches(top, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "known: " + ", ".join(sorted(n for n in known if n in _ALLOWED_HINT))
        raise ParameterError(f"invalid parameter '{top}' = {runtime_params[key]!r}: unknown parameter; {hint}")
