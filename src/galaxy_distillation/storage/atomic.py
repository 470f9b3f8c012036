"""The one atomic-write helper of the whole project.

Every file the project writes itself goes through :func:`atomic_path` (for libraries that
write by file name: safetensors, pandas, ``torch.save``) or :func:`atomic_write` (an open
binary or text handle). Both write a temporary file in the destination's folder, flush and
``fsync`` it, then ``os.replace`` it onto the destination, so a reader sees the old file or
the new one, never half of one. On *any* exception (``OSError``, torch's ``RuntimeError`` on
close, ``KeyboardInterrupt``...) the temporary file is removed and nothing is replaced.

A write that failed because of the operating system (disk full, permission denied) is
re-raised as the underlying :class:`OSError` naming the destination, even when the writing
library wrapped it in its own exception (torch: ``RuntimeError: ... unexpected pos``,
safetensors: ``... (os error 28)``), so the user reads ``No space left on device``.

The API takes local paths (``str`` or ``os.PathLike``); fsspec-based datasets can call it
for the ``file`` protocol.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "write_bytes", "write_text", "os_error_of", "move_aside"]

_OS_ERROR_RE = re.compile(r"os error (\d+)|\[Errno (\d+)\]")


def os_error_of(exc: BaseException, path: str | os.PathLike[str] | None = None) -> OSError | None:
    """The operating-system error behind ``exc`` (itself, its cause/context chain, or an
    ``os error N`` in its message), as an ``OSError`` naming ``path``; ``None`` if there is none."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and all(cur is not c for c in chain):
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for err in chain:  # a real OSError first
        if isinstance(err, OSError) and err.errno is not None:
            return OSError(err.errno, err.strerror or os.strerror(err.errno), str(path or err.filename or "") or None)
    for err in chain:  # then a library's message naming one
        match = _OS_ERROR_RE.search(str(err))
        if match:
            code = int(match.group(1) or match.group(2))
            return OSError(code, os.strerror(code), str(path) if path is not None else None)
    return None


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform / filesystem can fsync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and move it onto ``path``.

    Example::

        with atomic_path("data/x.safetensors") as tmp:
            save_file(tensors, str(tmp))

    Raises:
        OSError: the write failed for an operating-system reason (disk full...), naming
            ``path``; the temporary file is gone and ``path`` is untouched.
        Exception: any other error of the writer, unchanged (temporary file removed).
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        os_err = os_error_of(exc, dest) if isinstance(exc, Exception) else None
        if os_err is not None and os_err is not exc:
            raise os_err from None
        raise
    _fsync_dir(dest.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing (``"wb"`` or ``"w"``); on success
    it is flushed, fsynced and moved onto ``path``. Same guarantees as :func:`atomic_path`."""
    if mode not in {"wb", "w"}:
        raise ValueError(f"atomic_write supports modes 'wb' and 'w', got {mode!r}")
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh
        fh.flush()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    with atomic_write(path, "w") as fh:
        fh.write(text)


def move_aside(path: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Rename ``path`` to ``target`` in the same folder (one atomic rename, then the folder is
    fsynced); refuses to replace an existing ``target``, so nothing is ever lost. Returns ``target``."""
    src, dest = Path(path), Path(target)
    if dest.exists():
        raise FileExistsError(f"{dest} exists: not replacing it")
    os.replace(src, dest)
    _fsync_dir(dest.parent)
    return dest
