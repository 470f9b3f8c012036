"""Atomic, ``weights_only``-safe checkpoints for distillation runs.

A checkpoint is one file ``<checkpoint_dir>/state.pt`` holding only tensors and plain
Python types (dict, list, tuple, str, int, float, bool, None), so it loads with
``torch.load(weights_only=True)``. Writes go through the project's one atomic-write helper
(:func:`galaxy_distillation.io.atomic_write`: a temporary file in the same directory, fsync,
``os.replace``; the temporary file removed on any error), so a crash or a full disk never
leaves a half-written checkpoint or a stray ``.tmp`` behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from galaxy_distillation.errors import UserError
from galaxy_distillation.io import atomic_write, os_error_of

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "STATE_FILE",
    "FORMAT_VERSION",
    "config_fingerprint",
    "check_plain",
    "save_state",
    "load_state",
    "state_path",
]

STATE_FILE = "state.pt"
FORMAT_VERSION = 1

_PLAIN = (str, int, float, bool, type(None))


class CheckpointError(UserError, RuntimeError):
    """A checkpoint could not be written or read."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint on disk was written by a run with a different configuration."""


def state_path(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """Path of the state file inside ``checkpoint_dir``."""
    return Path(checkpoint_dir) / STATE_FILE


def config_fingerprint(payload: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of a JSON-serialisable mapping (keys sorted; floats via ``repr``).

    Raises:
        CheckpointError: the payload is not JSON-serialisable.
    """
    try:
        text = json.dumps(payload, sort_keys=True, default=repr)
    except (TypeError, ValueError) as exc:  # pragma: no cover - default=repr covers most
        raise CheckpointError(f"configuration is not serialisable for fingerprinting: {exc}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_plain(obj: Any, where: str = "state") -> None:
    """Raise :class:`CheckpointError` if ``obj`` holds anything but tensors and plain types."""
    if isinstance(obj, torch.Tensor) or isinstance(obj, _PLAIN):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise CheckpointError(f"{where}: dict key {k!r} is not str/int")
            check_plain(v, f"{where}.{k}")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise CheckpointError(f"{where}: type {type(obj).__name__} cannot be stored in a weights_only checkpoint")


def _to_cpu(obj: Any) -> Any:
    """Recursively move tensors to CPU (so checkpoints load on machines without the device)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_cpu(v) for v in obj)
    return obj


def save_state(checkpoint_dir: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Atomically write ``state`` to ``checkpoint_dir/state.pt``.

    Args:
        checkpoint_dir: folder (created if missing).
        state: mapping of tensors and plain types; tensors are moved to CPU.

    Returns:
        The path written.

    Raises:
        CheckpointError: ``state`` holds a non-plain object or the write failed.
    """
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, **_to_cpu(dict(state))}
    check_plain(payload)
    try:
        with atomic_write(state_path(folder)) as fh:
            torch.save(payload, fh)
    except Exception as exc:  # torch reports a full disk as RuntimeError on close
        os_err = os_error_of(exc, state_path(folder))
        if os_err is None:
            raise
        raise CheckpointError(
            f"could not write checkpoint {state_path(folder)}: OSError: {os_err.strerror} "
            f"(errno {os_err.errno}); free space or set distill.checkpoint_root elsewhere, then rerun to resume"
        ) from None
    return state_path(folder)


def load_state(checkpoint_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Load ``checkpoint_dir/state.pt`` with ``weights_only=True`` (tensors on CPU).

    Returns:
        The state dict, or ``None`` if there is no checkpoint.

    Raises:
        CheckpointError: the file exists but is unreadable or has an unknown format version.
    """
    path = state_path(checkpoint_dir)
    if not path.exists():
        return None
    advice = f"delete {path} to start this variant from scratch (or restore a good copy)"
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes; an interrupted write?): {advice}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types; report one line
        raise CheckpointError(f"could not read checkpoint {path} ({type(exc).__name__}: {exc}): {advice}") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has an unknown format (expected version {FORMAT_VERSION})")
    return state
