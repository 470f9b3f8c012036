"""Faults and bad input (issue 11), in process: the atomic-write helper under a full disk, the
all-or-nothing run outputs, the error boundary of ``kedro run``, unknown parameters, the
tolerant mapping, empty classes, the mock sky's proof of ownership, the resource estimate,
truncated and empty files. The CLI cases that need a real ``kedro`` start are in
``test_reliability_cli.py``."""

from __future__ import annotations

import errno
import gzip
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

import galaxy_distillation.storage.atomic as gd_atomic
from galaxy_distillation.datasets import TensorDictDataset
from galaxy_distillation.engine.checkpoint import CheckpointError, load_state, save_state
from galaxy_distillation.errors import ParameterError, UserError
from galaxy_distillation.storage.atomic import atomic_write, os_error_of, write_text

ROOT = Path(__file__).resolve().parents[1]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------- one atomic-write helper


class _FullDisk:
    """A file stub that accepts ``room`` bytes, then fails like a full disk (at write and close)."""

    def __init__(self, real, room: int) -> None:
        self._real, self._room = real, room

    def write(self, data) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= n
        return self._real.write(data)

    def close(self) -> None:
        self._real.close()
        if self._room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def full_disk(monkeypatch):
    """Every file the atomic helper opens gets 200 bytes of room."""
    real_open = open
    monkeypatch.setattr(gd_atomic, "open", lambda *a, **k: _FullDisk(real_open(*a, **k), 200), raising=False)


def test_disk_full_during_a_checkpoint_shows_the_real_oserror_and_leaves_no_tmp(tmp_path, full_disk):
    with pytest.raises(CheckpointError) as info:
        save_state(tmp_path, {"images": torch.zeros(64, 64), "iteration": 3})
    message = str(info.value)
    assert "No space left on device" in message and "\n" not in message
    assert "unexpected pos" not in message and "enforce fail" not in message
    assert _leftovers(tmp_path) == [] and not (tmp_path / "state.pt").exists()


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_state(tmp_path, {"iteration": 1, "images": torch.ones(3)})
    real_open = open
    monkeypatch.setattr(gd_atomic, "open", lambda *a, **k: _FullDisk(real_open(*a, **k), 100), raising=False)
    with pytest.raises(CheckpointError, match="No space left"):
        save_state(tmp_path, {"iteration": 2, "images": torch.zeros(4096)})
    monkeypatch.undo()
    assert load_state(tmp_path)["iteration"] == 1
    assert _leftovers(tmp_path) == []


def test_any_exception_removes_the_temporary_file_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    for exc in (ValueError("boom"), RuntimeError("torch on close"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), atomic_write(target, "w") as fh:
            fh.write("half")
            raise exc
        assert target.read_text() == "old"
        assert _leftovers(tmp_path) == []


def test_a_library_wrapping_enospc_is_reported_as_the_oserror(tmp_path, monkeypatch):
    """safetensors writes from Rust and says `... (os error 28)`: the user still reads ENOSPC."""
    import galaxy_distillation.datasets as datasets

    path = tmp_path / "set.safetensors"
    TensorDictDataset(str(path)).save({"images": torch.ones(2)})
    before = path.read_bytes()

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull }) (os error 28)")

    monkeypatch.setattr(datasets, "save_file", full)
    from kedro.io import DatasetError

    from galaxy_distillation.cli import user_message

    with pytest.raises(DatasetError) as info:  # Kedro wraps what a dataset raises
        TensorDictDataset(str(path)).save({"images": torch.zeros(2)})
    cause = info.value.__cause__
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC and str(path) in str(cause)
    assert user_message(info.value)[0] == f"OSError writing or reading {path}: [Errno 28] No space left on device"
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


def test_os_error_of_reads_chains_and_messages():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 30848") from inner
    except RuntimeError as outer:
        found = os_error_of(outer, "x.pt")
    assert found is not None and found.errno == errno.ENOSPC and found.filename == "x.pt"
    assert os_error_of(ValueError("no os error here")) is None


def test_one_atomic_write_helper_in_the_source():
    """Only storage/atomic.py moves files into place (download.py renames its resumable `.part` once complete)."""
    hits = []
    for path in (ROOT / "src").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"os\.replace\(|\.replace\(path\)|\.tmp\"", line) and "outputs.py" not in path.name:
                hits.append(f"{path.relative_to(ROOT)}:{n}")
    allowed = ("src/galaxy_distillation/storage/atomic.py", "src/galaxy_distillation/curation/download.py")
    assert [h for h in hits if not h.startswith(allowed)] == []


# ---------------------------------------------------------------- empty / truncated files


def test_zero_byte_checkpoint_says_what_to_do(tmp_path):
    (tmp_path / "state.pt").write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        load_state(tmp_path)
    assert "empty" in str(info.value) and "delete" in str(info.value) and "\n" not in str(info.value)


def test_truncated_gzip_catalogue_is_a_clear_error(tmp_path):
    from galaxy_distillation.curation.catalogue import read_vote_catalogue
    from galaxy_distillation.curation.errors import CatalogueFormatError
    from galaxy_distillation.sky.writer import simulate_catalogue

    data = gzip.compress(simulate_catalogue(300, seed=0).to_csv(index=False).encode())
    truncated = tmp_path / "votes.csv.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CatalogueFormatError) as info:
        read_vote_catalogue(truncated)
    assert "truncated or corrupt" in str(info.value) and "download it again" in str(info.value)
    assert isinstance(info.value, UserError)


# ---------------------------------------------------------------- one error type


def test_one_parameter_error_class():
    from galaxy_distillation.curation import errors as curation_errors
    from galaxy_distillation.params import ParameterError as FromParams

    assert curation_errors.ParameterError is ParameterError is FromParams
    assert issubclass(ParameterError, UserError) and issubclass(ParameterError, ValueError)
    assert issubclass(curation_errors.CurationError, UserError)


def test_unknown_top_level_params_are_refused_with_the_closest_name():
    from galaxy_distillation.params import check_known_names

    known = {"dataset", "method", "ipc", "init", "augmented", "seed", "device", "distill", "image_size"}
    with pytest.raises(ParameterError, match=r"'ipcc' = 2: unknown parameter; did you mean 'ipc'\?"):
        check_known_names({"ipcc": 2}, known)
    with pytest.raises(ParameterError) as info:
        check_known_names({"foo": 1}, known)
    assert "'foo'" in str(info.value) and "known:" in str(info.value) and "ipc" in str(info.value)
    check_known_names({"ipc": 2, "distill.iterations": 3, "image_size": 16}, known)  # all known: passes


# ---------------------------------------------------------------- the CLI boundary, in process


def test_missing_environment_is_named(tmp_path):
    from galaxy_distillation.cli import check_environment

    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    check_environment("local", None, tmp_path)
    with pytest.raises(UserError, match=r"environment 'nonexistent' not found.*available environments: base, local"):
        check_environment("nonexistent", None, tmp_path)


def test_user_message_finds_the_cause_a_kedro_dataset_wrapped():
    from kedro.io import DatasetError

    from galaxy_distillation.cli import user_message
    from galaxy_distillation.curation.errors import MissingImagesError

    try:
        try:
            raise MissingImagesError("12 of 40 selected galaxies have no image")
        except MissingImagesError as inner:
            raise DatasetError("Failed while loading data from dataset X.\n12 of 40 ...") from inner
    except DatasetError as outer:
        assert user_message(outer) == ("12 of 40 selected galaxies have no image", 1)
    assert user_message(ParameterError("invalid parameter 'ipc'")) == ("invalid parameter 'ipc'", 2)
    message, code = user_message(OSError(errno.ENOSPC, "No space left on device", "d/h.csv"))
    assert "No space left on device" in message and "d/h.csv" in message and code == 1
    assert user_message(KeyError("a bug")) is None


@pytest.fixture(scope="module")
def _mlflow_db(tmp_path_factory):
    import mlflow

    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    mlflow.search_runs(search_all_experiments=True)  # creates the store once (its log lines come now)
    return db


@pytest.fixture
def mlflow_store(_mlflow_db, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    mlflow.set_tracking_uri(f"sqlite:///{_mlflow_db}")
    yield mlflow
    while mlflow.active_run():
        mlflow.end_run()


def _status(mlflow) -> str:
    """Status of the newest run."""
    return mlflow.search_runs(search_all_experiments=True, order_by=["start_time DESC"]).iloc[0]["status"]


def test_interrupted_run_is_marked_killed_and_outputs_put_back(mlflow_store, monkeypatch, capsys):
    import signal

    import galaxy_distillation.cli as cli

    def killed(**kwargs):
        mlflow_store.start_run()
        signal.raise_signal(signal.SIGTERM)  # as `kill PID` does

    monkeypatch.setattr(cli._kedro_run, "callback", killed)
    with pytest.raises(SystemExit) as info:
        cli.guarded_run(env=None, conf_source=None)
    assert info.value.code == 130
    assert _status(mlflow_store) == "KILLED"
    assert "interrupted; MLflow run marked KILLED" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is not cli._raise_interrupt  # handler restored


def test_user_error_is_one_line_without_traceback_unless_verbose(mlflow_store, monkeypatch, capsys):
    import galaxy_distillation.cli as cli
    from galaxy_distillation.curation.errors import EmptyDatasetError

    def failing(**kwargs):
        mlflow_store.start_run()
        raise EmptyDatasetError("class 2 (edge_on) has 0 train galaxies after curation")

    monkeypatch.setattr(cli._kedro_run, "callback", failing)
    monkeypatch.delenv("GD_VERBOSE", raising=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        cli.guarded_run(env=None, conf_source=None)
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert err.splitlines()[0] == "galaxy-distillation: class 2 (edge_on) has 0 train galaxies after curation"
    assert len(err.splitlines()) == 2 and "Traceback" not in err
    assert _status(mlflow_store) == "FAILED"
    monkeypatch.setenv("GD_VERBOSE", "1")
    with pytest.raises(EmptyDatasetError):
        cli.guarded_run(env=None, conf_source=None)


def test_kedro_finds_the_project_run_command():
    from kedro.framework.cli.utils import find_run_command

    import galaxy_distillation.cli as cli

    assert find_run_command("galaxy_distillation") is cli.run
    assert "verbose" in {p.name for p in cli.run.params} and "env" in {p.name for p in cli.run.params}


# ---------------------------------------------------------------- no partial results


def test_a_failed_run_puts_every_output_back(tmp_path, monkeypatch):
    """Node 1 rewrites a tensor file and a CSV; node 2's save fails (disk full): both come back
    as they were, the new file of node 2 is gone, no backup stays."""
    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.io import DataCatalog
    from kedro.pipeline import node, pipeline
    from kedro.runner import SequentialRunner
    from kedro_datasets.pandas import CSVDataset

    from galaxy_distillation.outputs import RunOutputsGuard

    monkeypatch.chdir(tmp_path)
    distilled = TensorDictDataset("out/distilled.safetensors")
    history = CSVDataset(filepath="out/history.csv")
    report = TensorDictDataset("out/report.safetensors")
    distilled.save({"images": torch.ones(2)})
    history.save(pd.DataFrame({"loss": [1.0]}))
    old = {p: p.read_bytes() for p in Path("out").iterdir()}
    monkeypatch.setattr(TensorDictDataset, "save", _fail_for("report", TensorDictDataset.save))

    catalog = DataCatalog({"distilled": distilled, "history": history, "report": report})
    pipe = pipeline([
        node(lambda: ({"images": torch.zeros(3)}, pd.DataFrame({"loss": [9.0]})), None, ["distilled", "history"],
             name="distill"),
        node(lambda d: {"images": d["images"]}, "distilled", "report", name="report"),
    ])
    guard = RunOutputsGuard()
    hooks = _create_hook_manager()
    hooks.register(guard)
    guard.before_pipeline_run(run_params={}, pipeline=pipe, catalog=catalog)
    with pytest.raises(Exception, match="No space left"):
        try:
            SequentialRunner().run(pipe, catalog, hooks)
        except Exception as error:
            guard.on_pipeline_error(error=error, run_params={}, pipeline=pipe, catalog=catalog)
            raise
    assert {p: p.read_bytes() for p in Path("out").iterdir()} == old


def _fail_for(name, real_save):
    def save(self, data):
        if name in str(self._filepath):
            Path(self._filepath).write_bytes(b"")  # what a full disk leaves: a 0-byte file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, data)

    return save


def test_a_successful_run_keeps_the_new_outputs_and_no_backup(tmp_path, monkeypatch):
    from kedro.io import DataCatalog

    from galaxy_distillation.outputs import RunOutputsGuard

    monkeypatch.chdir(tmp_path)
    ds = TensorDictDataset("out/a.safetensors")
    ds.save({"x": torch.ones(1)})
    catalog = DataCatalog({"a": ds})
    guard = RunOutputsGuard()
    guard.before_pipeline_run(run_params={}, pipeline=None, catalog=catalog)
    guard.before_dataset_saved(dataset_name="a", data=None, node=None)
    ds.save({"x": torch.zeros(1)})
    guard.after_pipeline_run(run_params={}, run_result={}, pipeline=None, catalog=catalog)
    assert ds.load()["x"].item() == 0.0
    assert sorted(p.name for p in Path("out").iterdir()) == ["a.safetensors"]


# ---------------------------------------------------------------- curation


def _labelled(counts: list[int]) -> pd.DataFrame:
    rows = [(10_000 + 100 * c + i, c, 0.9 - 0.001 * i) for c, n in enumerate(counts) for i in range(n)]
    return pd.DataFrame(rows, columns=["dr7objid", "label", "confidence"])


def test_a_bad_mapping_row_is_dropped_counted_and_reported(tmp_path):
    from galaxy_distillation.pipelines.curation.nodes import locate_images

    (tmp_path / "img").mkdir()
    for asset in (1, 2, 3):
        (tmp_path / "img" / f"{asset}.jpg").write_bytes(b"x")
    selection = pd.DataFrame({"dr7objid": [11, 12, 13], "label": [0, 1, 2]})
    mapping = pd.DataFrame({"objid": ["11", "notanumber", "12", "13"], "sample": ["o"] * 4,
                            "asset_id": ["1", "9", "2", "3"]})  # as the catalog reads it: text
    from galaxy_distillation.params import CurationParams

    params = CurationParams(k_per_class=4, n_train_per_class=3, image_size=8, max_missing_fraction=0.0)
    train, _test, report = locate_images(selection, selection.iloc[:0], mapping, str(tmp_path / "img"), params)
    assert train["asset_id"].tolist() == [1, 2, 3]
    assert report["mapping"]["n_dropped_bad_id"] == 1 and report["mapping"]["bad_rows_sample"] == [3]


def test_the_catalog_reads_the_mapping_as_text():
    import yaml

    entry = yaml.safe_load((ROOT / "conf/base/catalog.yml").read_text())["filename_mapping"]
    assert entry["load_args"]["dtype"] == "str"


def test_a_class_with_no_galaxy_fails_in_curation():
    from galaxy_distillation.curation.errors import EmptyDatasetError
    from galaxy_distillation.params import CurationParams
    from galaxy_distillation.pipelines.curation.nodes import package_model_input, select_galaxies

    params = CurationParams(k_per_class=4, n_train_per_class=3, image_size=8, rotations=1)
    with pytest.raises(EmptyDatasetError, match=r"class 2 \(.*\) has 0 train galaxies after curation"):
        select_galaxies(_labelled([5, 5, 0, 5, 5, 5, 5, 5, 5]), params)
    select_galaxies(_labelled([5] * 9), params)  # every class present: passes
    images = torch.zeros(8, 3, 8, 8, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 3, 4, 5, 6, 7, 8])  # class 2 lost its images
    split = {"images": images, "labels": labels}
    with pytest.raises(EmptyDatasetError, match=r"class 2 .* missing or unreadable"):
        package_model_input(split, split, split, params)


def test_the_console_summary_counts_what_was_dropped():
    from galaxy_distillation.curation.report import summary_line

    report = {"catalogue": {"n_dropped_bad_id": 2, "n_dropped_nan": 1, "n_duplicates": 4},
              "images": {"mapping": {"n_dropped_bad_id": 1}, "located_train": {"n_no_mapping": 3, "n_no_file": 1},
                         "located_test": {"n_no_file": 1}, "train": {"n_unreadable": 2}, "test": {}}}
    line, total = summary_line(report)
    assert "\n" not in line and total == 2 + 1 + 4 + 1 + 5 + 2
    assert "catalogue rows dropped 3" in line and "mapping rows dropped 1" in line
    assert "without image 5" in line and "unreadable images 2" in line


# ---------------------------------------------------------------- mock sky


def test_mock_sky_refuses_a_marked_folder_whose_catalogue_it_did_not_write(tmp_path):
    from galaxy_distillation.sky.writer import RealDataProtectedError, write_mock_sky

    out = tmp_path / "sky"
    write_mock_sky(out, 10, seed=1, progress=False)
    marker = json.loads((out / "MOCK_SKY.json").read_text())
    assert set(marker["sha256"]) == {"gz2_hart16.csv", "gz2_filename_mapping.csv", "mock_truth.csv"}
    write_mock_sky(out, 11, seed=1, progress=False)  # its own files: re-rendered
    foreign = "dr7objid,t01_smooth_or_features_a01_smooth_fraction\n587722981741363294,0.5\n"
    (out / "gz2_hart16.csv").write_text(foreign)
    images = sorted(p.name for p in (out / "images").iterdir())
    with pytest.raises(RealDataProtectedError, match="gz2_hart16.csv: its checksum differs"):
        write_mock_sky(out, 12, seed=1, progress=False)
    assert (out / "gz2_hart16.csv").read_text() == foreign
    assert sorted(p.name for p in (out / "images").iterdir()) == images
    (out / "gz2_hart16.csv").unlink()
    (out / "real_votes.csv.gz").write_bytes(b"x")
    with pytest.raises(RealDataProtectedError, match="real_votes.csv.gz: its checksum is not recorded"):
        write_mock_sky(out, 12, seed=1, progress=False)


# ---------------------------------------------------------------- resources


def test_resource_estimate_refuses_an_impossible_run_before_any_compute():
    from galaxy_distillation.engine.resources import ResourceError, check_fits, estimate_distill_bytes

    huge = estimate_distill_bytes(10**9, 9, (3, 16, 16), num_params=20_000, syn_steps=20, expert_epochs=2)
    assert huge.synthetic == 3 * 10**9 * 9 * 3 * 16 * 16 * 4
    with pytest.raises(ResourceError) as info:
        check_fits(huge, "cpu", available=16 * 10**9)
    assert "82.9 TB" in str(info.value) and "lower ipc" in str(info.value) and "16.0 GB" in str(info.value)
    small = estimate_distill_bytes(1, 9, (3, 16, 16), num_params=20_000, syn_steps=20, expert_epochs=2)
    check_fits(small, "cpu", available=16 * 10**9)
    long_unroll = estimate_distill_bytes(1, 9, (3, 16, 16), num_params=10**8, syn_steps=80, expert_epochs=2)
    with pytest.raises(ResourceError, match="syn_steps"):
        check_fits(long_unroll, "cpu", available=10**9)


def test_the_distill_node_checks_resources_before_distilling(monkeypatch, tiny_params, tiny_model_input):
    import galaxy_distillation.pipelines.distill.nodes as distill_nodes
    from galaxy_distillation.engine.resources import ResourceError
    from galaxy_distillation.pipelines.prepare.nodes import prepare

    class Bank:
        num_params, num_epochs = 5_000, 3

    def no_compute(*args, **kwargs):
        raise AssertionError("the distiller must not start")

    monkeypatch.setattr(distill_nodes, "Distiller", no_compute)
    data, _ = prepare(tiny_model_input, tiny_params["teacher"])
    with pytest.raises(ResourceError, match="lower ipc"):
        distill_nodes.distill_dataset(data, Bank(), tiny_params["distill"], tiny_params["evaluation"],
                                      tiny_params["model"], "stm", 10**9, "noise", "v", "cpu", False)


def test_readme_serves_kedro_viz_on_loopback_only():
    lines = [ln for ln in (ROOT / "README.md").read_text().splitlines() if "http.server" in ln]
    assert lines and all("--bind 127.0.0.1" in ln for ln in lines)


def test_an_interrupt_never_lands_inside_mlflow_store_code(monkeypatch):
    """A signal arriving while MLflow writes its database is re-sent shortly after, not raised
    there (that would leave the store locked and the run impossible to mark KILLED)."""
    import sys

    import galaxy_distillation.cli as cli

    later = []
    monkeypatch.setattr(cli.threading, "Timer", lambda delay, fn, args: later.append((delay, args)) or _NoTimer())
    inside = compile("handler(15, sys._getframe())", "/venv/site-packages/sqlalchemy/engine/base.py", "eval")
    eval(inside, {"handler": cli._raise_interrupt, "sys": sys})  # returns: deferred
    assert later and later[0][1][1] == 15
    with pytest.raises(KeyboardInterrupt):
        cli._raise_interrupt(15, sys._getframe())


class _NoTimer:
    def start(self) -> None:
        pass
