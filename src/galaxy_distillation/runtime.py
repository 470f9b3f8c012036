"""Thread policy of the process, set before torch starts its OpenMP pool.

On a machine where another process is busy, torch's default (one intra-op thread per core,
OpenMP threads spinning while they wait) collapses: a 32 px STM iteration was measured x8.9
slower with 2 threads beside one busy torch process than with 1 thread. Two settings fix it:

* ``OMP_WAIT_POLICY=PASSIVE`` — waiting OpenMP threads sleep instead of spinning, so they do
  not steal the busy neighbour's core (and the neighbour does not steal theirs). The OpenMP
  runtime reads it once, when it is loaded, i.e. when ``torch`` is first imported; so it is
  set here, from the package's ``__init__`` (which Kedro imports, via ``settings.py``, before
  any node imports torch).
* the number of intra-op threads: the cores this process may use (``os.sched_getaffinity``).
  It never depends on the machine's load, because the thread count changes the order of
  floating-point reductions: with a load-dependent count the same seed would give other
  numbers on a busy machine. (With passive waiting, two threads beside a busy process were
  measured as fast as one pinned thread; docs/performance.md.)

Overrides (environment, read once at import): ``GD_THREADS`` (an integer, or ``auto``; the
run parameter ``threads`` does the same for a ``kedro run``), ``GD_OMP_WAIT_POLICY``
(``PASSIVE`` by default; ``ACTIVE`` or ``none`` to leave OpenMP's default). A variable the user
has set already (``OMP_WAIT_POLICY``, ``OMP_NUM_THREADS``) is never overwritten.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ThreadPolicyError", "available_cores", "choose_threads", "configure_environment", "apply_threads"]


class ThreadPolicyError(ValueError):
    """An invalid thread setting (``GD_THREADS``, the ``threads`` parameter)."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def choose_threads(setting: int | str | None, cores: int) -> int:
    """Intra-op thread count for ``setting`` (``"auto"``/None or a positive integer).

    ``auto``: ``cores`` (the process's CPU affinity), at least 1 - the same on a busy machine
    as on an idle one, so results do not depend on the load.
    """
    if setting is None or (isinstance(setting, str) and setting.strip().lower() in ("", "auto")):
        return max(1, int(cores))
    try:
        n = int(setting)
    except (TypeError, ValueError):
        raise ThreadPolicyError(f"threads must be 'auto' or a positive integer, got {setting!r}") from None
    if isinstance(setting, bool) or n < 1:
        raise ThreadPolicyError(f"threads must be 'auto' or a positive integer, got {setting!r}")
    return n


def configure_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set ``OMP_WAIT_POLICY`` and ``OMP_NUM_THREADS`` defaults in ``environ`` (``os.environ``).

    Only variables that are not set yet are written; returns what was written. Call it before
    ``import torch`` (the package ``__init__`` does); afterwards it has no effect on this process's
    OpenMP runtime, but still on child processes (Ray workers, benchmark children).
    """
    env = os.environ if environ is None else environ
    written: dict[str, str] = {}
    policy = env.get("GD_OMP_WAIT_POLICY", "PASSIVE").strip().upper()
    if policy not in ("PASSIVE", "ACTIVE", "NONE", ""):
        raise ThreadPolicyError(f"GD_OMP_WAIT_POLICY must be PASSIVE, ACTIVE or none, got {policy!r}")
    if policy not in ("NONE", "") and "OMP_WAIT_POLICY" not in env:
        env["OMP_WAIT_POLICY"] = written["OMP_WAIT_POLICY"] = policy
    if "OMP_NUM_THREADS" not in env:
        n = choose_threads(env.get("GD_THREADS", "auto"), available_cores())
        env["OMP_NUM_THREADS"] = written["OMP_NUM_THREADS"] = str(n)
    return written


def apply_threads(setting: int | str | None) -> int:
    """Set torch's intra-op threads from the run parameter ``threads`` (``auto`` or an integer).

    ``auto`` keeps the count chosen at import (``OMP_NUM_THREADS``, from ``GD_THREADS`` or the
    process's cores), else uses the process's cores. Returns the thread count in force.
    """
    import torch

    if setting is None or str(setting).strip().lower() == "auto":
        if "OMP_NUM_THREADS" in os.environ:  # chosen at import (or by the user): keep it
            return torch.get_num_threads()
        n = choose_threads("auto", available_cores())
    else:
        n = choose_threads(setting, available_cores())
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


if "torch" not in sys.modules:  # only meaningful before the OpenMP runtime is loaded
    try:
        configure_environment()
    except ThreadPolicyError as _err:  # a bad override: say so, keep OpenMP's defaults
        print(f"galaxy-distillation: {_err}", file=sys.stderr)
