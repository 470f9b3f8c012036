"""Credentials and the object-store root: ``credentials.yml``'s ``storage`` entry exported as the
``AWS_*`` variables, a credentials file that cannot be read named, and a ``storage_root`` that
cannot be used (no filesystem package, no credentials, bucket unreachable) refused in one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from galaxy_distillation.errors import UserError

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


def one_line(exc: BaseException) -> str:
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
    from galaxy_distillation.storage import split

    protocol, path = split(str(root))
    if protocol == "file":
        return
    import fsspec

    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        raise StorageError(f"storage_root {root!r}: no filesystem for {protocol}:// ({one_line(exc)}); "
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
        raise StorageError(f"storage_root {root!r}: cannot reach the bucket {bucket!r} ({one_line(exc)})") from None


def _yaml_ok(path: Path) -> bool:
    import yaml

    try:
        yaml.safe_load(path.read_text())
    except Exception:  # noqa: BLE001 - any reason: this is the file to name
        return False
    return True


def read_credentials(loader: Any) -> dict[str, Any]:
    """The ``credentials`` configuration; ``{}`` when there is no credentials file.

    Raises:
        StorageError: a credentials file exists but cannot be read (named, with the first line of why).
    """
    from kedro.config import MissingConfigException

    try:
        return dict(loader["credentials"] or {})
    except MissingConfigException:
        return {}
    except Exception as exc:  # noqa: BLE001 - YAML, interpolation, duplicate keys...: name the file
        conf = Path(str(getattr(loader, "conf_source", "conf")))
        envs = [getattr(loader, "base_env", None) or "base", getattr(loader, "default_run_env", None) or "local",
                getattr(loader, "env", None)]
        files = [f for env in dict.fromkeys(e for e in envs if e) for f in sorted((conf / env).glob("credentials*"))]
        broken = [f for f in files if not _yaml_ok(f)] or files
        where = ", ".join(str(f) for f in broken) or f"credentials under {conf}"
        raise StorageError(f"credentials file {where} cannot be read ({one_line(exc)})") from None
