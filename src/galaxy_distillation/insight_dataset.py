"""The insight report folder as one catalog dataset (``insight_report``).

Saving ``{file name: content}`` writes every file into one folder (a local path or an fsspec
URL, a :class:`galaxy_distillation.storage.Location`; each file written atomically): DataFrames
as CSV, strings as text, dicts as JSON, matplotlib figures as PNG. One dataset for the folder,
so the run-outputs guard (:mod:`galaxy_distillation.outputs`) keeps or restores the whole
report together. The folder is logged as MLflow artifacts of the active run under
``artifact_path``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset

from galaxy_distillation.storage import Location


class ReportFolderDataset(AbstractDataset[dict[str, Any], dict[str, bytes]]):
    """A folder of report files written from ``{name: DataFrame | str | dict | Figure}``."""

    def __init__(self, path: str, artifact_path: str = "", metadata: dict[str, Any] | None = None,
                 credentials: dict[str, Any] | None = None) -> None:
        self._loc = Location(path, credentials)
        self._url = self._loc.url
        self._protocol = self._loc.protocol
        self._path = Path(self._loc.path) if self._loc.local else None  # what the outputs guard protects
        self._artifact_path = artifact_path or None
        self.metadata = metadata

    @staticmethod
    def _encode(name: str, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        if isinstance(content, pd.DataFrame):
            return content.to_csv(index=False).encode()
        if isinstance(content, str):
            return content.encode()
        if isinstance(content, dict | list):
            return json.dumps(content, indent=2, default=float).encode()
        if hasattr(content, "savefig"):
            import io

            buf = io.BytesIO()  # a matplotlib Figure (no pyplot state to close)
            content.savefig(buf, format="png", dpi=100)  # the figures lay themselves out (one draw, not two)
            return buf.getvalue()
        raise TypeError(f"insight report: cannot write {name!r} of type {type(content).__name__}")

    def save(self, data: dict[str, Any]) -> None:
        loc = self._loc
        loc.fs.makedirs(loc.path, exist_ok=True)
        for name, content in data.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"insight report: {name!r} is not a plain file name")
            loc.write_bytes(self._encode(name, content), loc.join(name))  # atomic (Location.write_bytes)
        loc.invalidate()
        import mlflow

        if mlflow.active_run() is None:
            return
        if self._path is not None:
            mlflow.log_artifacts(str(self._path), self._artifact_path)
            return
        with tempfile.TemporaryDirectory() as tmp:
            loc.fs.get(f"{loc.path}/", tmp, recursive=True)
            mlflow.log_artifacts(tmp, self._artifact_path)

    def load(self) -> dict[str, bytes]:
        loc = self._loc
        loc.invalidate()
        return {Path(p).name: loc.read_bytes(p) for p in loc.fs.ls(loc.path, detail=False)}

    def _exists(self) -> bool:
        return self._loc.exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": self._url, "artifact_path": self._artifact_path}
