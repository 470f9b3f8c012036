"""Joining a Ray cluster (``compute.backend: ray``): the cluster ``compute.address`` names,
checked before any node without connecting (:func:`check_address`: ``auto`` found as
``ray.init`` finds it, a ``host:port`` that accepts a connection), and :func:`connect`
(idempotent; a local Ray when the address is empty). Ray is imported only here and only when
it is used. Every failure is a :class:`ComputeError` of one line naming the setting.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from galaxy_distillation.errors import UserError

log = logging.getLogger(__name__)

#: Environment variables handed to every Ray task (tracking server, object-store credentials).
FORWARDED_ENV = (
    "MLFLOW_TRACKING_URI",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EC2_METADATA_DISABLED",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "OMP_NUM_THREADS",
)


class ComputeError(UserError):
    """The compute backend cannot be used; the message is one line naming the setting."""

    exit_code = 2


def compute_settings(compute: Any) -> dict[str, Any]:
    """The ``compute`` group (a :class:`~galaxy_distillation.params.ComputeParams`, a dict or None) as a full dict."""
    from galaxy_distillation.params import ComputeParams

    if isinstance(compute, ComputeParams):
        return compute.model_dump()
    return ComputeParams(**(compute or {})).model_dump()


def _import_ray():
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the install
        raise ComputeError(
            "compute.backend=ray needs Ray: pip install -e \".[cluster]\""
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """A ``host:port`` address must accept a TCP connection (fail in a second, not after Ray's long timeout)."""
    if address in {"", "auto", "local"} or address.startswith("ray://") and ":" not in address[6:]:
        return
    target = address[6:] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ComputeError(f"invalid compute.address {address!r}: expected host:port, auto or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except OSError as exc:
        raise ComputeError(f"compute.address {address!r}: no Ray cluster reachable ({exc.strerror or exc})") from None


def discover_address(address: str) -> tuple[str, str]:
    """The cluster ``compute.address`` names, found as ``ray.init`` finds it but without
    connecting: ``auto`` is ``RAY_ADDRESS``, else the address the last ``ray start`` on this
    machine wrote (``<tmp>/ray/ray_current_cluster``), else a Ray process running here (Ray's
    own lookup); any other value is itself.

    Returns:
        ``(address, where it was found)``; ``("", ...)`` for a Ray started by this run.

    Raises:
        ComputeError: ``auto`` and no cluster found (one line naming ``compute.address``).
    """
    address = str(address or "").strip()
    if address != "auto":
        return address, "compute.address"
    _import_ray()
    try:  # Ray's own lookup (private API: if it moves, ray.init reports a missing cluster itself)
        from ray._common.utils import get_ray_address_file
        from ray._private.services import get_ray_address_from_environment
    except ImportError:  # pragma: no cover - depends on the Ray version
        return address, "Ray"
    try:
        found = get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise ComputeError(
            "compute.address 'auto': no running Ray cluster found on this machine (no RAY_ADDRESS, no address "
            "written by `ray start`, no Ray process); start one with `ray start --head`, or set compute.address "
            "to host:port, or leave it empty for a Ray of this run") from None
    if os.environ.get("RAY_ADDRESS", "").strip():
        return str(found), "RAY_ADDRESS"
    address_file = get_ray_address_file(None)
    return str(found), address_file if os.path.exists(address_file) else "a Ray process on this machine"


def check_address(address: str) -> str:
    """What :func:`connect` will join, checked before any node without connecting to Ray:
    ``auto`` found (:func:`discover_address`) and a ``host:port`` accepting a TCP connection.

    Returns:
        The address found (``host:port``, ``ray://host:port``; empty: a Ray of this run).

    Raises:
        ComputeError: one line naming ``compute.address`` (and where ``auto`` found its address).
    """
    raw = str(address or "").strip()
    found, where = discover_address(raw)
    if found == "auto":  # Ray's lookup unavailable: ray.init reports it
        return found
    try:
        _check_reachable(found)
    except ComputeError as err:
        if raw != "auto":
            raise
        raise ComputeError(f"compute.address 'auto' is {found!r} (from {where}) but {str(err).split(': ', 1)[1]}; "
                           "a cluster stopped since? start it again or set compute.address") from None
    return found


def connect(compute: dict[str, Any] | None) -> Any:
    """Connect this process to Ray as ``compute`` says (idempotent); returns the ``ray`` module.

    ``compute.address`` empty starts a local Ray on ``compute.node_ip_address``; otherwise it
    joins the cluster at that address. Environment variables in :data:`FORWARDED_ENV` are
    handed to every task.

    Raises:
        ComputeError: Ray is not installed or the cluster cannot be reached (one line).
    """
    cfg = compute_settings(compute)
    ray = _import_ray()
    with _CONNECT:
        if not ray.is_initialized():
            _init(ray, cfg)
    return ray


_CONNECT = threading.Lock()


def _init(ray: Any, cfg: dict[str, Any]) -> None:
    address = str(cfg["address"] or "").strip()
    _check_reachable(address)
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    kwargs: dict[str, Any] = {
        "runtime_env": {"env_vars": env} if env else None,
        "log_to_driver": True,
        "configure_logging": False,
    }
    if cfg["node_ip_address"]:
        kwargs["_node_ip_address"] = str(cfg["node_ip_address"])
    if address:
        kwargs["address"] = address
    else:
        kwargs["include_dashboard"] = False
    try:
        ray.init(**kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; report one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ComputeError(f"compute.address {address or '(local Ray)'!r}: cannot connect to Ray: {first}") from None
    log.info("Ray: %s", "connected to " + address if address else "started a local Ray")
