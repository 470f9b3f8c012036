"""Expert trajectories on disk and in memory: the format, the expert bank, in-memory sources.

A trajectory is one contiguous float32 tensor ``params`` of shape (E+1, P): row 0 is the
initialisation, row e the flat parameters (order of ``named_parameters``, see
:class:`~.functional.FlatModel`) after epoch e. On disk an expert is one safetensors file
``expert_NNNN.safetensors`` holding the tensor ``"params"`` plus string metadata
(``epochs``, ``num_params``, JSON ``meta`` with architecture, seed, config, test accuracies,
train losses). Experts trained since engine/training.py also hold ``state.*`` tensors: what the
last row needs to be trained further exactly (both generators' states, the SGD momentum,
module buffers; :attr:`Trajectory.state`); files without them (older banks) read the same and
cannot be grown. :func:`load_trajectory` with ``max_epoch=k`` reads only rows 0..k from disk
(``safe_open(...).get_slice``); ``with_state=True`` also reads the state. The distiller reads experts through :class:`ExpertSource`
(:class:`ExpertBank` for a folder, :class:`InMemoryExperts` for tensors).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from galaxy_distillation.errors import UserError
from galaxy_distillation.storage.atomic import atomic_path

from .distill_config import DistillConfigError

__all__ = [
    "ExpertError",
    "Trajectory",
    "save_trajectory",
    "load_trajectory",
    "read_trajectory_meta",
    "has_state",
    "expert_path",
    "ExpertBank",
    "ExpertSource",
    "InMemoryExperts",
]

TRAJECTORY_FORMAT = "galaxy_distillation.trajectory/1"
STATE_PREFIX = "state."
_EXPERT_RE = re.compile(r"^expert_(\d+)\.safetensors$")


class ExpertError(UserError, ValueError):
    """Raised for bad expert settings, files or requests."""


@dataclass
class Trajectory:
    """One expert's recorded training run.

    Attributes:
        params: (E+1, P) float32 contiguous; row 0 = initialisation, row e = after epoch e.
        test_acc: test accuracy (%) at each row, length E+1.
        train_loss: mean training loss of each epoch 1..E, length E.
        meta: free-form JSON-able metadata (arch, seed, config, num_classes, image shape, ...).
        state: what training needs to continue from the last row exactly (CPU tensors:
            ``perm_generator``, ``dsa_generator``, ``momentum``, ``buffer.<name>``), or ``None``
            (an older file: the expert cannot be grown).
    """

    params: torch.Tensor
    test_acc: list[float]
    train_loss: list[float]
    meta: dict[str, Any] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None

    @property
    def num_epochs(self) -> int:
        """E (number of recorded epochs; rows = E + 1)."""
        return int(self.params.shape[0]) - 1


def expert_path(directory: str | Path, index: int) -> Path:
    """Canonical file name of expert ``index`` in ``directory``: ``expert_0007.safetensors``."""
    return Path(directory) / f"expert_{int(index):04d}.safetensors"


def save_trajectory(traj: Trajectory, path: str | Path) -> None:
    """Write ``traj`` to one safetensors file (tensor ``params`` + string metadata); atomic rename."""
    p = traj.params
    if p.dim() != 2 or p.shape[0] < 1:
        raise ExpertError(f"trajectory params must be (E+1, P), got shape {tuple(p.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": TRAJECTORY_FORMAT,
        "epochs": str(p.shape[0] - 1),
        "num_params": str(p.shape[1]),
        "test_acc": json.dumps([float(a) for a in traj.test_acc]),
        "train_loss": json.dumps([float(a) for a in traj.train_loss]),
        "meta": json.dumps(traj.meta),
    }
    tensors = {"params": p.detach().to("cpu", torch.float32).contiguous()}
    for key, value in (traj.state or {}).items():
        tensors[STATE_PREFIX + key] = value.detach().cpu().contiguous()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def has_state(path: str | Path) -> bool:
    """Whether the expert file at ``path`` holds the training state needed to grow it."""
    with safe_open(str(path), framework="pt") as f:
        return any(key.startswith(STATE_PREFIX) for key in f.keys())


def read_trajectory_meta(path: str | Path) -> dict[str, Any]:
    """Metadata of a saved trajectory without reading its tensor: epochs, num_params, test_acc, train_loss, meta."""
    path = Path(path)
    if not path.is_file():
        raise ExpertError(f"expert file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise ExpertError(f"cannot read expert file {path}: {exc}") from None
    if md.get("format") != TRAJECTORY_FORMAT:
        raise ExpertError(f"{path} is not a trajectory file (format {md.get('format')!r})")
    return {
        "epochs": int(md["epochs"]),
        "num_params": int(md["num_params"]),
        "test_acc": json.loads(md["test_acc"]),
        "train_loss": json.loads(md["train_loss"]),
        "meta": json.loads(md["meta"]),
    }


def load_trajectory(path: str | Path, max_epoch: int | None = None, with_state: bool = False) -> Trajectory:
    """Load a trajectory; with ``max_epoch=k`` only rows 0..k are read (params (k+1, P)).
    ``with_state``: also read its training state (only with all rows; ``None`` in an older file).

    Raises ``ExpertError`` if ``k`` exceeds the recorded epochs.
    """
    info = read_trajectory_meta(path)
    e = info["epochs"]
    k = e if max_epoch is None else int(max_epoch)
    if k < 0 or k > e:
        raise ExpertError(f"max_epoch {max_epoch} out of range: {path} has epochs 0..{e}")
    if with_state and k != e:
        raise ExpertError(f"the training state of {path} belongs to its last epoch {e}, not {k}")
    state = None
    with safe_open(str(path), framework="pt") as f:
        params = f.get_slice("params")[0 : k + 1]
        if with_state:
            keys = [key for key in f.keys() if key.startswith(STATE_PREFIX)]
            state = {key[len(STATE_PREFIX):]: f.get_tensor(key) for key in keys} or None
    return Trajectory(
        params=params.contiguous(),
        test_acc=info["test_acc"][: k + 1],
        train_loss=info["train_loss"][:k],
        meta=info["meta"],
        state=state,
    )


class ExpertBank:
    """Lazily loads expert trajectories from ``directory/expert_*.safetensors`` (sorted by index).

    ``len(bank)``; ``bank.load(i, max_epoch=None)`` -> (E+1, P) float32 CPU tensor (the distiller
    moves and caches what it uses); ``bank.num_epochs`` and ``bank.num_params`` (minimum over experts); ``bank.meta``
    (the first expert's metadata dict); ``bank.test_acc(i)``.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ExpertError(f"expert directory not found: {self.directory}")
        found = []
        for p in self.directory.iterdir():
            m = _EXPERT_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        if not found:
            raise ExpertError(f"no expert_*.safetensors files in {self.directory}")
        self.paths: list[Path] = [p for _, p in sorted(found)]
        self._infos = [read_trajectory_meta(p) for p in self.paths]
        sizes = {info["num_params"] for info in self._infos}
        if len(sizes) != 1:
            raise ExpertError(f"experts in {self.directory} have different parameter counts {sorted(sizes)}")
        self.num_params: int = sizes.pop()
        self.num_epochs: int = min(info["epochs"] for info in self._infos)
        self.meta: dict[str, Any] = self._infos[0]["meta"]

    def __len__(self) -> int:
        return len(self.paths)

    def fingerprint(self) -> str:
        """SHA-256 of the experts' names and metadata (headers only, no tensor read): changes when
        any expert used is retrained, replaced, added or removed."""
        items = [[p.name, info] for p, info in zip(self.paths, self._infos, strict=True)]
        return hashlib.sha256(json.dumps(items, sort_keys=True, default=repr).encode()).hexdigest()

    def first(self, n: int) -> ExpertBank:
        """The same bank limited to its first ``n`` experts (by index); nothing on disk changes."""
        if not 0 < n <= len(self.paths):
            raise ExpertError(f"{self.directory} has {len(self.paths)} experts, {n} asked for")
        view = object.__new__(type(self))  # not copy.copy: a subclass may pickle itself as a reopening
        view.__dict__.update(self.__dict__)
        view.paths, view._infos = self.paths[:n], self._infos[:n]
        view.num_epochs = min(info["epochs"] for info in view._infos)
        return view

    def test_acc(self, i: int) -> list[float]:
        """Per-epoch test accuracy (%) of expert ``i``."""
        return list(self._infos[i]["test_acc"])

    def load(self, i: int, max_epoch: int | None = None) -> torch.Tensor:
        """Parameters of expert ``i``: (k+1, P) float32 for ``max_epoch=k`` (all epochs if None)."""
        if not 0 <= i < len(self.paths):
            raise ExpertError(f"expert index {i} out of range (bank has {len(self.paths)})")
        return load_trajectory(self.paths[i], max_epoch=max_epoch).params


# --------------------------------------------------------------------------- in-memory sources


class ExpertSource(Protocol):
    """What the distiller needs from an expert bank (``ExpertBank`` satisfies it)."""

    num_epochs: int

    def __len__(self) -> int: ...

    def load(self, i: int, max_epoch: int | None = None) -> torch.Tensor: ...


class InMemoryExperts:
    """Expert trajectories held in memory, with :class:`ExpertBank`'s ``load`` interface.

    Args:
        trajectories: list of ``(E+1, P)`` tensors (row 0 = initialisation), same shape.
    """

    def __init__(self, trajectories: Sequence[torch.Tensor]) -> None:
        if not trajectories:
            raise DistillConfigError("need at least one expert trajectory")
        shape = tuple(trajectories[0].shape)
        for k, t in enumerate(trajectories):
            if t.dim() != 2 or tuple(t.shape) != shape:
                raise DistillConfigError(f"expert {k} has shape {tuple(t.shape)}, expected {shape} (E+1, P)")
        self._trajs = [t.detach() for t in trajectories]
        self.num_epochs = shape[0] - 1
        self.meta: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._trajs)

    def fingerprint(self) -> str:
        """SHA-256 of the trajectories' contents (they are in memory)."""
        digest = hashlib.sha256()
        for t in self._trajs:
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def load(self, i: int, max_epoch: int | None = None) -> torch.Tensor:
        """Rows ``0 .. max_epoch`` of expert ``i``, shape ``(max_epoch+1, P)``."""
        t = self._trajs[i]
        return t if max_epoch is None else t[: max_epoch + 1]
