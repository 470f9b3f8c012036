"""The project's ``kedro run``: Kedro's own command behind one error boundary.

Kedro loads this module's ``cli`` group and its ``run`` replaces the built-in one, so the
command stays ``kedro run`` (and ``python -m galaxy_distillation``). Around Kedro's run it

- refuses an environment (``--env`` / ``KEDRO_ENV``) whose folder does not exist, before any
  hook runs (kedro-mlflow would otherwise fail first with an unrelated message);
- prints a user-facing failure (:class:`galaxy_distillation.errors.UserError`, an operating
  system error such as a full disk, a Kedro dataset error) as one or two lines and exits 1
  (2 for a parameter), with the full traceback only under ``--verbose`` or ``GD_VERBOSE=1``;
- runs the sweeps (``table``, ``table1``, ``table2``, ``compare``) with Kedro's
  ``ThreadRunner`` when ``compute.backend`` is ``ray`` and no ``--runner`` is given: their heavy
  nodes only wait on their Ray tasks (every cell of a table, the two training sets' teachers),
  so they wait side by side and the cluster runs their tasks at once (the engine draws every
  random number from explicit generators, so the numbers do not depend on the runner);
- turns ``SIGTERM`` (like Ctrl-C) into an interrupt, outside MLflow's store code, so a killed or Ctrl-C'd run marks its MLflow run
  ``KILLED`` and puts back the outputs it had already replaced (see
  :mod:`galaxy_distillation.outputs`), then exits 130. The first signal also stops
  :mod:`galaxy_distillation.compute`: Ray tasks pending or running are cancelled within
  seconds (finished cells, experts and checkpoints are kept); a second signal while node
  threads still finish (and save) is ignored with a note, so nothing is put back under them.

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run as _kedro_run

from galaxy_distillation.errors import UserError

__all__ = ["cli", "run", "guarded_run", "check_environment", "user_message", "configured_backend", "pick_runner"]

_PREFIX = "galaxy-distillation: "
_HINT = "(rerun with --verbose or GD_VERBOSE=1 for the full traceback)"


@click.group(name="galaxy_distillation")
def cli() -> None:
    """Commands of the galaxy-distillation project."""


def verbose_from_env() -> bool:
    """``GD_VERBOSE`` read by the project's one boolean parser (:func:`params.parse_flag`); unset,
    empty or not a boolean word: ``False`` (the last with a one-line warning)."""
    from galaxy_distillation.params import parse_flag

    value = os.environ.get("GD_VERBOSE", "").strip()
    try:
        return bool(value) and parse_flag(value)
    except ValueError:
        click.echo(f"{_PREFIX}GD_VERBOSE={value!r} is not true or false; ignored", err=True)
        return False


def check_environment(env: str | None, conf_source: str | None, project: Path | None = None) -> None:
    """Raise :class:`UserError` when ``env`` names no folder under the configuration source."""
    env = env or os.environ.get("KEDRO_ENV")
    if not env:
        return
    project = project or Path.cwd()
    conf = Path(conf_source) if conf_source else project / "conf"
    if not conf.is_dir():  # an archive (.zip, .tar.gz) or a remote source: Kedro checks it
        return
    if not (conf / env).is_dir():
        available = ", ".join(sorted(p.name for p in conf.iterdir() if p.is_dir())) or "none"
        raise UserError(
            f"environment '{env}' not found: there is no folder {conf / env}; "
            f"available environments: {available} (use --env NAME, or create the folder)"
        )


#: Pipelines whose heavy nodes only hand their work to :mod:`galaxy_distillation.compute`.
PARALLEL_PIPELINES = frozenset({"table", "table1", "table2", "compare"})


def pick_runner(kwargs: dict[str, Any]) -> str | None:
    """``ThreadRunner`` for a sweep on the Ray backend when ``--runner`` is not given, else ``None``."""
    if kwargs.get("runner"):
        return None
    names = [kwargs["pipeline"]] if kwargs.get("pipeline") else list(kwargs.get("pipelines") or [])
    if not names or not set(names) <= PARALLEL_PIPELINES:
        return None
    backend = configured_backend(kwargs.get("env"), kwargs.get("conf_source"), kwargs.get("params"))
    return "ThreadRunner" if backend == "ray" else None


def configured_backend(env: str | None, conf_source: str | None, params: dict[str, Any] | None,
                       project: Path | None = None) -> str:
    """``compute.backend`` as the run will see it (``conf/base``, the environment, ``--params``);
    empty when the configuration cannot be read here (Kedro then reports why)."""
    from kedro.config import OmegaConfigLoader

    from galaxy_distillation import settings

    conf = Path(conf_source) if conf_source else (project or Path.cwd()) / "conf"
    if not conf.is_dir():
        return ""
    try:
        loader = OmegaConfigLoader(conf_source=str(conf), env=env or os.environ.get("KEDRO_ENV"),
                                   runtime_params=params or {}, **settings.CONFIG_LOADER_ARGS)
        compute = loader["parameters"].get("compute") or {}
        return str(compute.get("backend") or "")
    except Exception:  # noqa: BLE001 - a broken configuration is Kedro's to report, with its own message
        return ""


def user_message(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit status of a user-facing failure, or ``None`` for a bug.

    Looks through the exception's cause/context chain, so an error a Kedro dataset wrapped
    is reported by its own message.
    """
    from kedro.io import DatasetError

    from galaxy_distillation.storage.atomic import os_error_of

    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for err in chain:
        if isinstance(err, UserError):
            return str(err).strip(), int(getattr(err, "exit_code", 1))
    os_err = os_error_of(exc)
    if os_err is not None:
        filename = os_err.filename or _path_in(chain)
        where = f" writing or reading {filename}" if filename else ""
        return f"OSError{where}: [Errno {os_err.errno}] {os_err.strerror}", 1
    for err in chain:
        if isinstance(err, DatasetError):
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()] or [type(err).__name__]
            root = chain[-1]  # the original error under Kedro's wrappers
            first = f"{type(root).__name__}: {lines[-1]}" if root is not err else lines[-1]
            where = f"\n  ({lines[0][:300]})" if len(lines) > 1 else ""
            return first + where, 1
    return None


_PATH_RE = re.compile(r"\b(?:filepath|path|gz2_dir)=(?:\w*Path\()?['\"]?([^,()'\"\s]+)")


def _path_in(chain: list[BaseException]) -> str | None:
    """The file a Kedro dataset error names (``...(filepath=PurePosixPath('/x/history.csv'), ...)``), for an OS
    error that carries no file name (a full disk while pandas writes through a file handle)."""
    for err in chain:
        match = _PATH_RE.search(str(err))
        if match:
            return match.group(1)
    return None


#: code an interrupt must not land in: MLflow's store (SQLAlchemy / sqlite) would stay locked
_UNSAFE = ("sqlalchemy", "sqlite3", f"mlflow{os.sep}store", f"mlflow{os.sep}tracking")


def _in_store_code(frame: Any) -> bool:
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _UNSAFE):
            return True
        frame = frame.f_back
    return False


#: set by the first SIGTERM / SIGINT of a run: later ones are noted, not raised
_STOPPING = threading.Event()


def _raise_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM / SIGINT: stop the run's Ray tasks (:func:`galaxy_distillation.compute.request_stop`)
    and raise ``KeyboardInterrupt``, but never inside MLflow's store code (an interrupted database
    write leaves the store locked and the run unmarkable): there, the signal is sent again 0.1 s
    later. Once the run is stopping, another signal only prints a note: the interrupt already on
    its way waits for the node threads (which may be saving) before anything is put back."""
    from galaxy_distillation import compute

    compute.request_stop()
    if _STOPPING.is_set():
        print(f"{_PREFIX}stopping: waiting for the running nodes to end (their Ray tasks are cancelled)",
              file=sys.stderr, flush=True)
        return
    if _in_store_code(frame):
        threading.Timer(0.1, os.kill, (os.getpid(), signum)).start()
        return
    _STOPPING.set()
    raise KeyboardInterrupt(f"signal {signum}")


def _close_mlflow_runs(status: str) -> int:
    """End every active MLflow run with ``status``; the number ended."""
    try:
        import mlflow
    except ImportError:  # pragma: no cover - mlflow is a dependency
        return 0
    n = 0
    while mlflow.active_run() is not None and n < 10:
        mlflow.end_run(status)
        n += 1
    return n


def guarded_run(verbose: bool = False, **kwargs: Any) -> Any:
    """Kedro's ``run`` (same options) behind the error boundary described in the module."""
    from galaxy_distillation import compute
    from galaxy_distillation.errors import short
    from galaxy_distillation.logs import quiet_node_failures
    from galaxy_distillation.outputs import OUTPUTS

    verbose = verbose or verbose_from_env()
    _STOPPING.clear()
    compute.clear_stop()
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    quiet_node_failures(not verbose)  # Kedro's own node-failure records: the message below says it once
    OUTPUTS.last_restored = 0
    try:
        check_environment(kwargs.get("env"), kwargs.get("conf_source"))
        kwargs["runner"] = pick_runner(kwargs) or kwargs.get("runner")  # a sweep's tasks in flight side by side
        return _kedro_run.callback(**kwargs)
    except KeyboardInterrupt:
        restored = OUTPUTS.rollback()
        mlflow_note = "MLflow run marked KILLED; " if _close_mlflow_runs("KILLED") else ""
        click.echo(f"{_PREFIX}interrupted; {mlflow_note}{restored} output(s) put back as before the run", err=True)
        sys.exit(130)
    except Exception as exc:
        found = user_message(exc)
        if found is None or verbose:
            raise
        message, code = found
        _close_mlflow_runs("FAILED")  # kedro-mlflow already does after a node failed; not after a hook
        restored = OUTPUTS.last_restored
        click.echo(f"{_PREFIX}{short(message, 2)}", err=True)
        note = f"{restored} output(s) put back as before the run; " if restored else ""
        click.echo(f"({note}{_HINT[1:]}", err=True)
        sys.exit(code)
    finally:
        quiet_node_failures(False)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _STOPPING.clear()  # the run is over: a later run or task in this process starts unstopped
        compute.clear_stop()


#: ``kedro run`` (also what ``python -m galaxy_distillation`` finds through ``find_run_command``).
run = click.Command(
    name="run",
    callback=guarded_run,
    params=[
        *_kedro_run.params,
        click.Option(["--verbose"], is_flag=True, default=False, help="print the full traceback of a failure"),
    ],
    help=_kedro_run.help,
    short_help=_kedro_run.short_help,
)
cli.add_command(run)
