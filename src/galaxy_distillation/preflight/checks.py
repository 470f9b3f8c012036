"""The checks before the first node that the parameters and the file system decide
(:func:`check_run`; the package docstring lists them)."""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from galaxy_distillation.errors import ParameterError, UserError
from galaxy_distillation.pipelines.sweep.cells import cell_named
from galaxy_distillation.preflight.credentials import StorageError, one_line
from galaxy_distillation.reach import resolve_reach


def _plain(value: Any) -> dict[str, Any]:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return dict(value or {})


def _distill_cells(params: dict[str, Any], pipeline: Any) -> list[tuple[str, int]]:
    """(method, ipc) of every distillation the pipeline runs: a sweep cell's from its namespace (:func:`cell_named`
    of ``mtt_ipc10_real_plain``, selected by ``sweep``), compare's methods, else the run's own."""
    sweep = _plain(params.get("sweep"))
    found: dict[tuple[str, int], None] = {}
    for n in pipeline.nodes:
        if "params:distill" not in n.inputs:
            continue
        cell = cell_named(n.namespace)
        if cell:
            method, ipc = cell.method, cell.ipc
            if (sweep.get("methods") and method not in sweep["methods"]) or (sweep.get("ipcs") and ipc not in sweep["ipcs"]):
                continue
            found[(method, ipc)] = None
        elif "params:compare" in n.inputs:
            for method in _plain(params.get("compare")).get("methods") or ():
                found[(str(method), int(params.get("ipc", 1)))] = None
        else:
            found[(str(params.get("method", "stm")), int(params.get("ipc", 1)))] = None
    return sorted(found)


def check_epochs(params: dict[str, Any], pipeline: Any) -> None:
    """When the run trains experts and distils: every distillation's start epochs fit in
    ``teacher.epochs`` (MTT: ``max_start_epoch - 1 + expert_epochs``; STM: at least 2 epochs),
    with ``preset`` values resolved per cell, so a sweep never trains every expert first.

    Raises:
        ParameterError: one line naming the parameters, the cell and the fix.
    """
    from galaxy_distillation.params import DistillParams

    trains = any(o.rsplit(".", 1)[-1] == "expert_trajectories" for n in pipeline.nodes for o in n.outputs)
    if not trains or "distill" not in params or "teacher" not in params:
        return
    epochs = int(_plain(params["teacher"])["epochs"])
    distill = DistillParams(**_plain(params["distill"]))
    for method, ipc in _distill_cells(params, pipeline):
        values, record = distill.resolved(str(params.get("dataset", "")), method, ipc)
        source = " (from the preset)" if record and {"max_start_epoch", "expert_epochs"} & set(record["applied"]) else ""
        if method == "stm" and epochs < 2:
            raise ParameterError(f"invalid parameter 'teacher.epochs' = {epochs}: STM needs experts with at least 2 "
                                 f"epochs (cell stm ipc {ipc})")
        if method == "mtt":
            start, m = int(values["max_start_epoch"]), int(values["expert_epochs"])
            if start - 1 + m > epochs:
                raise ParameterError(
                    f"invalid parameter 'distill.max_start_epoch' = {start}: with distill.expert_epochs={m}{source} "
                    f"MTT (ipc {ipc}) needs {start - 1 + m} expert epochs but teacher.epochs = {epochs}; raise "
                    f"teacher.epochs to {start - 1 + m}: experts trained with state are grown, not retrained; "
                    f"or lower distill.max_start_epoch to {max(1, epochs - m + 1)}")


def remote_cluster(address: str) -> bool:
    """Whether a Ray ``compute.address`` names a cluster on other machines (not empty, ``auto``,
    ``local``, ``localhost`` or a loopback address)."""
    text = str(address or "").strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    host = text.rsplit(":", 1)[0] if text.count(":") == 1 or text.startswith("[") else text
    host = host.strip("[]").lower()
    if host in {"", "auto", "local", "localhost"}:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: another machine


def check_cluster_address(params: dict[str, Any], pipeline: Any) -> str | None:
    """When the pipeline's tasks run on Ray: the cluster ``compute.address`` names exists, without
    connecting (``auto``: ``RAY_ADDRESS``, the address ``ray start`` wrote, a Ray process here;
    ``host:port``: accepts a TCP connection), so a missing cluster is named before any node.

    Returns:
        The address found (``None`` when the run submits nothing to Ray).

    Raises:
        ComputeError: one line naming ``compute.address``.
    """
    compute = _plain(params.get("compute"))
    if compute.get("backend") != "ray" or not uses_compute(pipeline):
        return None
    from galaxy_distillation.cluster import check_address

    return check_address(str(compute.get("address") or ""))


def check_cluster_storage(params: dict[str, Any], pipeline: Any, found: str | None = None) -> None:
    """Refuse a local ``storage_root`` or ``distill.checkpoint_root`` when the pipeline's tasks
    run on a remote Ray cluster (its nodes cannot see this machine's folders). ``found``: the
    address ``compute.address`` resolved to (:func:`check_cluster_address`; ``auto`` may be remote).

    Raises:
        StorageError: one line naming the root and the cluster address.
    """
    from galaxy_distillation.storage import is_local

    compute = _plain(params.get("compute"))
    address = str(compute.get("address") or "")
    target = found if found is not None else address
    if compute.get("backend") != "ray" or not uses_compute(pipeline) or not remote_cluster(target):
        return
    named = f"{address!r}" + (f" ({target})" if target != address else "")
    roots = [("storage_root", str(params.get("storage_root", "data")))]
    if any("params:distill" in n.inputs for n in pipeline.nodes) and "distill" in params:
        roots.append(("distill.checkpoint_root", str(_plain(params["distill"]).get("checkpoint_root", ""))))
    for name, root in roots:
        if root and is_local(root):
            raise StorageError(f"{name} {root!r} is a local folder but compute.address {named} is a remote Ray "
                               f"cluster whose nodes cannot read it: use an object store (s3://...) for {name}")


def check_image_size(params: dict[str, Any], runtime: dict[str, Any], pipeline: Any, catalog: Any) -> None:
    """An ``image_size`` given with ``--params`` must act: curation resizes to it (GZ2), an image
    folder is read at it; CIFAR is 32 px, and a run that reads curated GZ2 data without curating
    must find it at that size.

    Raises:
        ParameterError: one line naming ``image_size`` and why it would do nothing.
    """
    if "image_size" not in (runtime or {}):
        return
    size = runtime["image_size"]
    dataset = str(params.get("dataset", "gz2"))
    if dataset in {"cifar10", "cifar100"} and str(size) != "32":
        raise ParameterError(f"invalid parameter 'image_size' = {size!r}: {dataset} images are 32 px and are not "
                             "resized; drop image_size (it acts on GZ2 curation and image folders)")
    from galaxy_distillation.datasets import ModelInputDataset

    curates = any(o.rsplit(".", 1)[-1] == "model_input" for n in pipeline.nodes for o in n.outputs)
    inputs = [name for name in sorted(pipeline.inputs()) if name.rsplit(".", 1)[-1].startswith("model_input")]
    readers = [ds for ds in (_dataset(catalog, name) for name in inputs) if isinstance(ds, ModelInputDataset)]
    if not curates and not readers:
        raise ParameterError(f"invalid parameter 'image_size' = {size!r}: no step of this run curates or reads "
                             "images, so it would do nothing")
    if curates or dataset != "gz2":
        return
    for ds in readers:
        loc = ds._gz2
        meta = loc.join("meta.json")
        if not loc.exists(meta):
            continue
        have = json.loads(loc.read_bytes(meta)).get("image_size")
        if have is not None and str(have) != str(size):
            raise ParameterError(
                f"invalid parameter 'image_size' = {size!r}: the curated GZ2 data in {loc.url} is {have} px and this "
                f"run does not curate; run `kedro run --pipelines=curation --params image_size={size}` first")


class MissingInputError(UserError, FileNotFoundError):
    """An input file or folder the run needs is not there; the message names it and its parameter."""


def check_required_files(params: dict[str, Any], pipeline: Any) -> None:
    """The vote catalogue, the filename mapping and the image folder exist (local paths) when the
    run reads them and the mock sky of this run does not render them.

    Raises:
        MissingInputError: one line naming the path and its parameter.
    """
    from galaxy_distillation.storage import inside, is_local, local_path, rooted

    wanted = []
    if "vote_catalogue" in pipeline.inputs():
        wanted.append(("votes_path", "vote catalogue", False))
    if "filename_mapping" in pipeline.inputs():
        wanted.append(("mapping_path", "filename mapping", False))
    if any("params:image_dir" in n.inputs for n in pipeline.nodes):
        wanted.append(("image_dir", "image folder", True))
    renders = any("mock_sky_manifest" in n.outputs for n in pipeline.nodes)
    sky_dir = rooted(_plain(params.get("sky")).get("out_dir", ""), params.get("storage_root", "data"))
    mock = renders and inside(str(params.get("votes_path", "")), sky_dir)
    for name, what, folder in wanted:
        path = str(params.get(name) or "")
        if not path or not is_local(path) or (mock and inside(path, sky_dir)):
            continue
        found = local_path(path).is_dir() if folder else local_path(path).is_file()
        if not found:  # the vote catalogue's message is the one its dataset gives
            where = "" if name == "votes_path" else f" (parameter {name}; see docs/data.md)"
            raise MissingInputError(f"{what} not found: {path}{where}")


def _dataset(catalog: Any, name: str) -> Any:
    try:
        return catalog.get(name)
    except Exception:  # noqa: BLE001 - an unknown or in-memory name: nothing on disk
        return None


def _local_target(dataset: Any) -> Path | None:
    """The local file or folder a dataset writes (None for memory, remote or benchmark inputs)."""
    if dataset is None or getattr(dataset, "_protocol", "file") not in ("file", None):
        return None
    if isinstance(getattr(dataset, "_dataset", None), str) and dataset._dataset != "gz2":
        return None
    for attr in ("_filepath", "_path", "_gz2_dir"):
        value = getattr(dataset, attr, None)
        if value and "://" not in str(value):
            return Path(str(value))
    return None


def _not_writable(folder: Path) -> tuple[Path, OSError] | None:
    """The nearest existing folder at or above ``folder`` and why a file cannot be created in it."""
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".gd-write-check-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return probe, exc
    return None


def check_writable(params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
    """Every local folder the run writes into (its outputs, the distillation checkpoints) accepts
    a new file, so a read-only folder fails now, not after the compute.

    Raises:
        StorageError: one line naming the folder, the dataset and the error.
    """
    from galaxy_distillation.storage import is_local, local_path

    targets: dict[Path, str] = {}
    for name in sorted(pipeline.all_outputs()):
        path = _local_target(_dataset(catalog, name))
        if path is not None:
            targets.setdefault(path.parent.absolute(), f"dataset '{name}'")
    if any("params:distill" in n.inputs for n in pipeline.nodes) and "distill" in params:
        root = str(_plain(params["distill"]).get("checkpoint_root") or "")
        if root and is_local(root):
            targets.setdefault(local_path(root).absolute(), "distill.checkpoint_root")
    for folder, what in targets.items():
        failed = _not_writable(folder)
        if failed is not None:
            probe, exc = failed
            raise StorageError(f"output folder {probe} is not writable ({exc.strerror or one_line(exc)}; needed "
                               f"for {what}): fix its permissions or choose another storage_root")


def check_run(params: dict[str, Any], pipeline: Any, catalog: Any, runtime: dict[str, Any] | None = None) -> None:
    """Every check before the first node that the parameters and the file system decide (see the module);
    first ``teacher.epochs: reach`` becomes a number, in ``params`` and ``catalog`` (:mod:`galaxy_distillation.reach`)."""
    params = resolve_reach(params, lambda: _distill_cells(params, pipeline), catalog)
    check_epochs(params, pipeline)
    check_cluster_storage(params, pipeline)  # from the parameters alone, before any lookup
    found = check_cluster_address(params, pipeline)
    if found is not None:
        check_cluster_storage(params, pipeline, found)  # auto: judged by the address it found
    check_image_size(params, runtime or {}, pipeline, catalog)
    check_required_files(params, pipeline)
    check_writable(params, pipeline, catalog)


def uses_compute(pipeline: Any) -> bool:
    return any("params:compute" in n.inputs for n in pipeline.nodes)
