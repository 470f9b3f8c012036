"""Checks before any node runs, for runs beyond one machine: the storage root and the Ray cluster.

``check_storage(root)`` fails with one line when ``storage_root`` is an object store that
cannot be used (its filesystem package is missing, no credentials, the endpoint or the
bucket cannot be reached). :class:`ClusterHook` runs it and connects to Ray (when
``compute.backend`` is ``ray`` and the pipeline has tasks to submit) before the first node,
exports a ``storage`` entry of ``conf/<env>/credentials.yml`` as the standard ``AWS_*``
variables (so the catalog, the driver and every Ray task use the same credentials), and
stops a local Ray at the end.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from kedro.framework.hooks import hook_impl

from galaxy_distillation.errors import UserError

log = logging.getLogger(__name__)

#: ``credentials.yml`` ``storage:`` keys -> environment variables (s3fs/botocore read these).
CREDENTIAL_ENV = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "region_name": "AWS_DEFAULT_REGION",
}


class StorageError(UserError):
    """``storage_root`` cannot be used; the message is one line naming it."""

    exit_code = 2


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def export_credentials(storage: dict[str, Any] | None) -> list[str]:
    """Set the ``AWS_*`` variables from a credentials entry (never overriding ones already set)."""
    set_now = []
    for key, env in CREDENTIAL_ENV.items():
        value = (storage or {}).get(key)
        if value and env not in os.environ:
            os.environ[env] = str(value)
            set_now.append(env)
    return set_now


def check_storage(root: str) -> None:
    """Fail with one line if ``root`` (a local path or fsspec URL) cannot be used; local roots always pass."""
    from kedro.io.core import get_protocol_and_path

    protocol, path = get_protocol_and_path(str(root))
    if protocol == "file":
        return
    import fsspec

    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        raise StorageError(f"storage_root {root!r}: no filesystem for {protocol}:// ({_one_line(exc)}); "
                           'pip install -e ".[cluster]"') from None
    bucket = path.split("/", 1)[0]
    kwargs: dict[str, Any] = {"skip_instance_cache": True}
    if protocol in {"s3", "s3a"}:
        import botocore.session

        if botocore.session.Session().get_credentials() is None:
            raise StorageError(f"storage_root {root!r}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                               "or a 'storage' entry in conf/local/credentials.yml)")
        kwargs["config_kwargs"] = {"connect_timeout": 3, "read_timeout": 10, "retries": {"max_attempts": 1}}
    try:
        fs = fsspec.filesystem(protocol, **kwargs)
        if protocol in {"s3", "s3a"}:
            fs.call_s3("head_bucket", Bucket=bucket)  # raises, where fs.exists would answer False
        else:
            fs.ls(bucket)
    except FileNotFoundError:
        raise StorageError(f"storage_root {root!r}: the bucket {bucket!r} does not exist or is not accessible") from None
    except Exception as exc:  # noqa: BLE001 - every backend raises its own kinds; report one line
        raise StorageError(f"storage_root {root!r}: cannot reach the bucket {bucket!r} ({_one_line(exc)})") from None


def _uses_compute(pipeline: Any) -> bool:
    return any("params:compute" in n.inputs for n in pipeline.nodes)


class ClusterHook:
    """Credentials, storage and Ray checks before the first node (one line and exit 2 on failure)."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._ray_started_here = False

    @hook_impl
    def after_context_created(self, context) -> None:  # noqa: ANN001 - kedro's signature
        try:
            credentials = context.config_loader["credentials"]
        except Exception:  # noqa: BLE001 - no credentials file is fine
            credentials = {}
        exported = export_credentials((credentials or {}).get("storage"))
        if exported:
            log.info("storage credentials from credentials.yml: %s", ", ".join(exported))
        self._context = context

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ANN001
        from galaxy_distillation.compute import connect

        params = self._context.params if hasattr(self, "_context") else {}
        compute = params.get("compute") or {}
        if hasattr(compute, "model_dump"):
            compute = compute.model_dump()
        # StorageError / ComputeError: printed in one line (exit 2) by galaxy_distillation.cli
        check_storage(str(params.get("storage_root", "data")))
        if compute.get("backend") == "ray" and _uses_compute(pipeline):
            ray = sys.modules.get("ray")
            already = ray is not None and ray.is_initialized()
            connect(compute)
            self._ray_started_here = not already

    def _stop_ray(self) -> None:
        if self._ray_started_here:
            import ray

            ray.shutdown()
            self._ray_started_here = False

    @hook_impl
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ANN001
        self._stop_ray()

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:  # noqa: ANN001
        self._stop_ray()
