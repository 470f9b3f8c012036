"""Quiet, readable run logs (no Kedro, no MLflow imports).

* :func:`quiet_third_party_warnings` filters the deprecation warnings that third-party code
  (Kedro's and kedro-mlflow's OmegaConf calls, MLflow's pyfunc import) raises on every run and
  that this project cannot fix; warnings the project itself would cause are fixed at source.
* :func:`quiet_progress_bars` turns tqdm bars off when stderr is not a terminal (a log file, CI),
  so a log file holds lines, not kilobytes of ``\\r`` redraws; the nodes log their own progress lines (one per expert, per quick
  evaluation, per evaluation set).
* :func:`stage_of` and :class:`StageHeaders` give the one-line header printed when a run enters
  a new stage (sky, curation, teacher, distill, evaluation, reporting, compare).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterable, Mapping

#: (message regex, category) of third-party warnings that every ``kedro run`` would print.
THIRD_PARTY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # OmegaConf 2.4 deprecates register_new_resolver(); Kedro 1.7 and kedro-mlflow 2.0 still call it.
    (r"register_new_resolver\(\) is deprecated", UserWarning),
    # MLflow's pyfunc module warns at import about kedro-mlflow's PythonModel without type hints.
    (r".*Add type hints to the `predict` method", UserWarning),
    # Pydantic/MLflow/pkg_resources deprecations raised while importing plugins.
    (r"pkg_resources is deprecated", UserWarning),
    # Kedro's hint when a namespaced node reads another namespace's dataset: the table sweeps
    # do so by design (every cell reads its training set's shared experts, ``plain.*``/``aug.*``).
    (r"One or more dataset names contain '\.' characters", UserWarning),
    # torch, before refusing a checkpoint that is not a plain tensor pickle: the refusal is reported in one line.
    (r"Detected pickle protocol", UserWarning),
)

#: The order of the project's stages, for the stage headers.
STAGES: tuple[str, ...] = ("sky", "curation", "teacher", "distill", "evaluation", "reporting", "insight", "compare")


def quiet_third_party_warnings() -> None:
    """Ignore :data:`THIRD_PARTY_WARNINGS` (idempotent); every other warning still shows.

    Runs from ``settings.py``, which the Kedro CLI imports (``bootstrap_project`` validates the
    settings) before it loads the plugins' commands (kedro-mlflow imports MLflow's pyfunc there).
    """
    for message, category in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    # MLflow re-enables UserWarnings inside its own catch_warnings() ("once"), which beats any
    # filter: drop the listed ones where they are shown as well.
    show = warnings.showwarning
    if not getattr(show, "_gd_filtered", False):
        patterns = [(re.compile(message, re.IGNORECASE), category) for message, category in THIRD_PARTY_WARNINGS]

        def showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            text = str(message)
            if any(issubclass(category, cat) and pat.match(text) for pat, cat in patterns):
                return
            show(message, category, filename, lineno, file, line)

        showwarning._gd_filtered = True  # type: ignore[attr-defined]
        warnings.showwarning = showwarning
    for name in ("kedro_mlflow", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)


def is_terminal(stream: object | None = None) -> bool:
    """Whether ``stream`` (default: stderr, where tqdm draws) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def quiet_progress_bars(environ: Mapping[str, str] | None = None, terminal: bool | None = None) -> bool:
    """Turn every tqdm bar off when stderr is not a terminal (a log file, CI).

    The project's nodes pass ``disable=not progress`` explicitly, which tqdm's ``TQDM_DISABLE``
    environment default cannot override, so the bar class itself is made to start disabled.
    Any ``TQDM_*`` variable in the environment (e.g. ``TQDM_MININTERVAL=30``) keeps the bars as
    they are. Idempotent; returns whether bars are off after the call.
    """
    import tqdm.std

    cls = tqdm.std.tqdm
    if getattr(cls.__init__, "_gd_quiet", False):
        return True
    env = os.environ if environ is None else environ
    if any(key.startswith("TQDM_") for key in env):
        return False
    if is_terminal() if terminal is None else terminal:
        return False
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, N807 - tqdm's signature
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    __init__._gd_quiet = True  # type: ignore[attr-defined]
    __init__._gd_original = original  # type: ignore[attr-defined]
    cls.__init__ = __init__
    return True


def restore_progress_bars() -> None:
    """Undo :func:`quiet_progress_bars` (tests, notebooks)."""
    import tqdm.std

    original = getattr(tqdm.std.tqdm.__init__, "_gd_original", None)
    if original is not None:
        tqdm.std.tqdm.__init__ = original


def stage_of(node_name: str, stage_nodes: Mapping[str, Iterable[str]]) -> str | None:
    """The first stage (in :data:`STAGES` order) whose pipeline holds ``node_name``."""
    for stage in STAGES:
        if node_name in set(stage_nodes.get(stage, ())):
            return stage
    return None


class StageHeaders:
    """Log ``== <stage> (<n> nodes) ==`` the first time the run enters a stage."""

    def __init__(self, stage_nodes: Mapping[str, Iterable[str]], selected: Iterable[str],
                 logger: logging.Logger | None = None) -> None:
        chosen = set(selected)
        self.stage_nodes = {stage: [n for n in nodes if n in chosen] for stage, nodes in stage_nodes.items()}
        self.log = logger or logging.getLogger("galaxy_distillation")
        self.current: str | None = None
        self.seen: list[str] = []

    def enter(self, node_name: str) -> str | None:
        """Log the header if ``node_name`` starts a new stage; return the header (or None)."""
        stage = stage_of(node_name, self.stage_nodes)
        if stage is None or stage == self.current or stage in self.seen:
            return None
        self.current = stage
        self.seen.append(stage)
        n = len(self.stage_nodes.get(stage, ()))
        header = f"== {stage} ({n} node{'s' if n != 1 else ''}) =="
        self.log.info(header)
        return header


#: Kedro's own records about a failed node, repeated by the project's one-line error:
#: the node's error text (``kedro.pipeline.node``) and the multi-line resume suggestion (runners).
_NODE_FAILURE_LOGGERS = ("kedro.pipeline.node", "kedro.runner.runner", "kedro.runner.sequential_runner",
                         "kedro.runner.thread_runner", "kedro.runner.parallel_runner", "kedro.runner.task")
_NODE_FAILURE_TEXT = re.compile(r"failed with error|nodes that have not run|No nodes ran")


class _NodeFailureFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _NODE_FAILURE_TEXT.search(str(record.msg))


_NODE_FAILURE_FILTER = _NodeFailureFilter()


def quiet_node_failures(on: bool = True) -> None:
    """Drop (``on``) or show again Kedro's own log records about a failed node, so a failure
    reads as the command line's one or two lines (``--verbose`` keeps them, with the traceback)."""
    for name in _NODE_FAILURE_LOGGERS:
        logger = logging.getLogger(name)
        if on:
            logger.addFilter(_NODE_FAILURE_FILTER)
        else:
            logger.removeFilter(_NODE_FAILURE_FILTER)
