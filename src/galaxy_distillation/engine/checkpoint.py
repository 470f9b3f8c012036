"""Atomic, ``weights_only``-safe checkpoints for distillation runs.

A checkpoint is one file ``state.pt`` holding only tensors and plain Python types (dict,
list, tuple, str, int, float, bool, None), so it loads with ``torch.load(weights_only=True)``.
Where it lives is a *store*: anything with ``load() -> bytes | None``, ``save(bytes)`` and
``delete()`` (:class:`CheckpointStore`). A local folder (a path) is the store
:class:`FolderStore` (``<folder>/state.pt``), written through the project's one atomic-write
helper (:func:`galaxy_distillation.storage.atomic.atomic_write`: a temporary file in the same directory,
fsync, ``os.replace``; the temporary file removed on any error), so a crash or a full disk
never leaves a half-written checkpoint or a stray ``.tmp`` behind. Other stores (an object
store: ``galaxy_distillation.storage.FileStore``) are built outside the engine, which knows
no fsspec; they must save atomically too (one PUT).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from galaxy_distillation.errors import UserError
from galaxy_distillation.storage.atomic import atomic_write, os_error_of, write_bytes
from galaxy_distillation.storage.atomic import move_aside as io_move_aside

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointStore",
    "FolderStore",
    "as_store",
    "STATE_FILE",
    "FORMAT_VERSION",
    "config_fingerprint",
    "EXECUTION_ONLY",
    "result_key",
    "tensor_sha256",
    "move_aside",
    "check_plain",
    "save_state",
    "load_state",
    "state_path",
]

STATE_FILE = "state.pt"
FORMAT_VERSION = 1

_PLAIN = (str, int, float, bool, type(None))

log = logging.getLogger(__name__)

#: Settings that change how a result is computed, never its numbers (a fast path computes the same
#: function as the plain one): left out of every result key, so switching them keeps checkpoints,
#: finished sweep cells and baselines.
EXECUTION_ONLY = frozenset({
    "memory_mode", "expert_cache", "experts_at_once", "use_vmap", "vmap_on_cpu", "vmap_max_images",
    "eval_batch_size", "devices", "checkpoint_every", "checkpoint_root", "compile",
})


class CheckpointError(UserError, RuntimeError):
    """A checkpoint could not be written or read."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint on disk was written by a run with a different configuration."""


def state_path(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """Path of the state file inside ``checkpoint_dir``."""
    return Path(checkpoint_dir) / STATE_FILE


@runtime_checkable
class CheckpointStore(Protocol):
    """Where one checkpoint lives; ``str(store)`` names it in messages."""

    def load(self) -> bytes | None:
        """The stored bytes, or ``None`` when there is no checkpoint."""

    def save(self, data: bytes) -> None:
        """Replace the checkpoint with ``data`` atomically."""

    def delete(self) -> None:
        """Remove the checkpoint (no error when there is none)."""


class FolderStore:
    """``<folder>/state.pt`` on the local disk (the store of a checkpoint folder path)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = state_path(self.folder)

    def __str__(self) -> str:
        return str(self.path)

    def load(self) -> bytes | None:
        return self.path.read_bytes() if self.path.exists() else None

    def save(self, data: bytes) -> None:
        write_bytes(self.path, data)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def move_aside(self, suffix: str) -> str:
        """Rename ``state.pt`` to ``state.<suffix>.pt`` beside it (kept, never deleted); the new name."""
        return str(io_move_aside(self.path, self.path.with_name(f"{self.path.stem}.{suffix}{self.path.suffix}")))


def as_store(checkpoint: str | os.PathLike[str] | CheckpointStore | None) -> CheckpointStore | None:
    """A store for ``checkpoint``: a folder path becomes a :class:`FolderStore`; a store is kept."""
    if checkpoint is None or isinstance(checkpoint, CheckpointStore):
        return checkpoint
    return FolderStore(checkpoint)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


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


def _without_execution_only(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _without_execution_only(v) for k, v in obj.items() if k not in EXECUTION_ONLY}
    if isinstance(obj, (list, tuple)):
        return [_without_execution_only(v) for v in obj]
    return obj


def result_key(**parts: Any) -> str:
    """The one key of a result (a distillation checkpoint, a sweep cell, the Full baseline, an
    evaluation): SHA-256 hex of everything it depends on, e.g. ``data=<data fingerprint>``,
    ``experts=<experts fingerprint>`` and the settings. Settings in :data:`EXECUTION_ONLY` are
    dropped at any depth, so they never invalidate a result."""
    return config_fingerprint(_without_execution_only(parts))


def tensor_sha256(*tensors: torch.Tensor) -> str:
    """SHA-256 of the tensors' contents (bytes in order, no copy for contiguous CPU tensors).
    Equals hashing ``t.cpu().contiguous().numpy().tobytes()`` of each in turn."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def move_aside(store: CheckpointStore, key: str) -> str | None:
    """Move a checkpoint that no longer matches its run aside (``state.<UTC time>-<key[:12]>.pt``),
    never deleting it; logs one line. Returns the new name, ``None`` when the store cannot rename
    (the checkpoint then stays and the caller must refuse)."""
    mover = getattr(store, "move_aside", None)
    if mover is None:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = mover(f"{stamp}-{str(key)[:12]}")
    log.warning("checkpoint %s was made from other data, experts or settings: moved aside to %s, starting afresh",
                store, moved)
    return moved


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


def save_state(checkpoint: str | os.PathLike[str] | CheckpointStore, state: Mapping[str, Any]) -> Path | str:
    """Atomically write ``state`` to the checkpoint: ``<folder>/state.pt`` for a folder path, or a store.

    Args:
        checkpoint: folder (created if missing) or a :class:`CheckpointStore`.
        state: mapping of tensors and plain types; tensors are moved to CPU.

    Returns:
        The path written (a folder), or the store's name (``str(store)``).

    Raises:
        CheckpointError: ``state`` holds a non-plain object or the write failed.
    """
    store = as_store(checkpoint)
    payload = {"format_version": FORMAT_VERSION, **_to_cpu(dict(state))}
    check_plain(payload)
    where = str(store)
    try:
        if isinstance(store, FolderStore):  # streamed to disk through the atomic-write helper
            store.folder.mkdir(parents=True, exist_ok=True)
            with atomic_write(store.path) as fh:
                torch.save(payload, fh)
        else:
            buffer = io.BytesIO()
            torch.save(payload, buffer)
            store.save(buffer.getvalue())
    except Exception as exc:  # torch reports a full disk as RuntimeError on close
        os_err = os_error_of(exc, where)
        if os_err is None and isinstance(store, FolderStore):
            raise
        cause = _one_line(exc) if os_err is None else f"OSError: {os_err.strerror} (errno {os_err.errno})"
        raise CheckpointError(
            f"could not write checkpoint {where}: {cause}; "
            f"free space or set distill.checkpoint_root elsewhere, then rerun to resume"
        ) from None
    return store.path if isinstance(store, FolderStore) else where


def load_state(checkpoint: str | os.PathLike[str] | CheckpointStore) -> dict[str, Any] | None:
    """Load the checkpoint (``<folder>/state.pt`` or a store) with ``weights_only=True`` (tensors on CPU).

    Returns:
        The state dict, or ``None`` if there is no checkpoint.

    Raises:
        CheckpointError: the checkpoint exists but is unreadable or has an unknown format version.
    """
    store = as_store(checkpoint)
    where = str(store)
    advice = f"delete {where} to start this variant from scratch (or restore a good copy)"
    try:
        data = store.load()
    except Exception as exc:  # noqa: BLE001 - every filesystem raises its own kinds; report one line
        raise CheckpointError(f"could not read checkpoint {where} ({_one_line(exc)})") from None
    if data is None:
        return None
    if len(data) == 0:
        raise CheckpointError(f"checkpoint {where} is empty (0 bytes; an interrupted write?): {advice}")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types; report one line
        raise CheckpointError(f"could not read checkpoint {where} ({type(exc).__name__}: {exc}): {advice}") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {where} has an unknown format (expected version {FORMAT_VERSION})")
    return state
