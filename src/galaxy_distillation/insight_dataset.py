"""The insight report folder as one catalog dataset (``insight_report``).

Saving ``{file name: content}`` writes every file into one folder (a local path or an fsspec
URL): DataFrames as CSV, strings as text, dicts as JSON, matplotlib figures as PNG. One dataset
for the folder, so the run-outputs guard (:mod:`galaxy_distillation.outputs`) keeps or restores
the whole report together. The folder is logged as MLflow artifacts of the active run under
``artifact_path``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
from kedro.io import AbstractDataset


class ReportFolderDataset(AbstractDataset[dict[str, Any], dict[str, bytes]]):
    """A folder of report files written from ``{name: DataFrame | str | dict | Figure}``."""

    def __init__(self, path: str, artifact_path: str = "", metadata: dict[str, Any] | None = None,
                 credentials: dict[str, Any] | None = None) -> None:
        self._url = str(path)
        self._fs, self._root = fsspec.core.url_to_fs(self._url, **(credentials or {}))
        self._protocol = self._fs.protocol if isinstance(self._fs.protocol, str) else self._fs.protocol[0]
        self._path = Path(self._root) if self._protocol == "file" else None  # what the outputs guard protects
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
        self._fs.makedirs(self._root, exist_ok=True)
        for name, content in data.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"insight report: {name!r} is not a plain file name")
            with self._fs.open(f"{self._root}/{name}", "wb") as fh:
                fh.write(self._encode(name, content))
        import mlflow

        if mlflow.active_run() is None:
            return
        if self._path is not None:
            mlflow.log_artifacts(str(self._path), self._artifact_path)
            return
        with tempfile.TemporaryDirectory() as tmp:
            self._fs.get(f"{self._root}/", tmp, recursive=True)
            mlflow.log_artifacts(tmp, self._artifact_path)

    def load(self) -> dict[str, bytes]:
        return {Path(p).name: self._fs.cat_file(p) for p in self._fs.ls(self._root, detail=False)}

    def _exists(self) -> bool:
        return self._fs.exists(self._root)

    def _describe(self) -> dict[str, Any]:
        return {"path": self._url, "artifact_path": self._artifact_path}
