"""The one error type for user-facing failures.

Every error a user can fix (a bad parameter, a missing or malformed input file, a full disk,
a checkpoint from another configuration...) derives from :class:`UserError`. Its message is
one or two lines naming the input, the cause and the fix. The command line
(:mod:`galaxy_distillation.cli`) catches it once, prints the message and exits non-zero,
without a traceback unless ``--verbose`` / ``GD_VERBOSE=1`` is given. Anything else that
escapes is a bug and keeps its full traceback.
"""

from __future__ import annotations

__all__ = ["UserError", "ParameterError", "Stopped"]


class UserError(Exception):
    """A failure caused by the input or the environment, with a one- or two-line message."""

    #: Exit status of the command line for this kind of failure.
    exit_code: int = 1


class ParameterError(UserError, ValueError):
    """An invalid parameter; the message names it and what is allowed."""

    exit_code = 2


class Stopped(RuntimeError):
    """The run was asked to stop (``compute.request_stop``: the first Ctrl-C or ``SIGTERM``): raised
    by the task loop and its Ray tasks (:mod:`galaxy_distillation.compute`), a distillation between
    iterations and the engine's training loop between epochs (its ``should_stop``)."""


def short(text: object, limit: int = 2) -> str:
    """At most ``limit`` lines of ``text``: the first line, and the last one when there are more
    (an exception's own multi-line text, e.g. torch's unpickling advice, is cut to its ends)."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    if len(lines) <= limit:
        return "\n".join(lines)
    return "\n".join(lines[:limit - 1] + ["  " + lines[-1]])


def _phrase(error: dict) -> str:
    """What one pydantic error of a union member expected, in a few words."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "literal_error":
        return str(ctx.get("expected", error.get("msg", "")))
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        sign = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()), "")
        return f"a number {sign} {bound:g}" if isinstance(bound, (int, float)) else f"a number {sign} {bound}"
    if kind.startswith(("float", "int")):
        return "an integer" if kind.startswith("int") else "a number"
    if kind.startswith("bool"):
        return "true or false"
    if kind == "none_required":
        return "null"
    return str(error.get("msg", kind))


def validation_message(group: str | None, errors: list[dict], raw: dict, fields: object = (),
                       hints: dict[str, str] | None = None) -> str:
    """One line for a pydantic validation failure: the dotted parameter name as the user wrote it
    (``distill.lr_img``, never pydantic's union tags such as ``constrained-float``), the value
    given, what is allowed, and for an unknown key the closest known one ("did you mean").

    Args:
        group: the parameter group (``distill``), or ``None`` for top-level parameters.
        errors: ``ValidationError.errors()``.
        raw: the values validated (the group's mapping).
        fields: the known keys at that level (for "did you mean").
        hints: allowed values of top-level parameters, by name.
    """
    import difflib

    first = errors[0]
    path: list[str] = []
    got: object = raw
    for part in first["loc"]:  # follow the location while it names keys of what was given
        if isinstance(got, dict) and part in got:
            got = got[part]
        elif isinstance(got, list) and isinstance(part, int) and part < len(got):
            got = got[part]
        else:
            break
        path.append(str(part))
    if not path:  # a model-level error: fall back to pydantic's location
        path, got = [str(p) for p in first["loc"][:1]], None
    loc = ".".join(path)
    name = f"{group}.{loc}" if group else loc
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(path[-1], sorted(str(f) for f in fields), n=1, cutoff=0.6)
        prefix = f"{group}." if group else ""
        msg = f"unknown parameter; did you mean '{prefix}{close[0]}'?" if close else "unknown parameter"
    else:
        same = [e for e in errors if tuple(e["loc"][:len(path)]) == tuple(first["loc"][:len(path)])]
        if len(same) > 1:  # a union (e.g. a number or the word 'preset'): every alternative
            msg = "expected " + " or ".join(dict.fromkeys(_phrase(e) for e in same))
        else:
            msg = first["msg"]
    hint = (hints or {}).get(loc) if group is None else None
    allowed = f"; allowed: {hint}" if hint else ""
    return f"invalid parameter '{name}' = {got!r}: {msg}{allowed}"
