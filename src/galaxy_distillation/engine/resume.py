"""What a resumed distillation continued: the settings stored in a checkpoint against this run's.

:class:`~galaxy_distillation.engine.matching.Distiller` stores its settings (plain values) and
who wrote it (``run_info``, e.g. the MLflow run id) in every checkpoint; on resume it reports
the iteration, the checkpoint and :func:`changed_settings` (e.g. ``iterations 400 -> 50``: the
budget is not part of the fingerprint, so a run may continue with another one).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["stored_settings", "changed_settings", "describe_changes"]


def stored_settings(state: dict[str, Any]) -> dict[str, Any] | None:
    """The settings stored in a checkpoint's state (None for a checkpoint that predates them)."""
    try:
        return json.loads(state["settings_json"]) if state.get("settings_json") else None
    except ValueError:
        return None


def _flat(settings: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(settings, dict):
        return {prefix: settings}
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = key if prefix in ("", "config") else f"{prefix}.{key}"
        out.update(_flat(value, name) if isinstance(value, dict) else {name: value})
    return out


def changed_settings(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, list[Any]]:
    """The settings that differ between a checkpoint's and this run's (:meth:`Distiller.settings`),
    as ``{name: [checkpoint's, now]}`` (config fields by their own name, e.g. ``iterations``);
    ``{}`` when equal or when the checkpoint predates stored settings."""
    if not old:
        return {}
    a, b = _flat(old), _flat(new)
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def describe_changes(changed: dict[str, list[Any]]) -> str:
    """``iterations 400 -> 50, lam 5.0 -> 3.0``."""
    return ", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in changed.items())
