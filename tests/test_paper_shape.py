"""The reproduction environments at the paper's shape, without a GPU.

``--env paper`` (GZ2 at 128x128, ConvNet-3 width 128) and ``--env cifar10`` (32x32, width 128)
run through the real ``kedro`` CLI with their presets, counts cut to the bone on the command
line (2 experts x 2 epochs, 2 iterations, N = 2; explicit ``--params`` win over presets):
mock sky -> curation -> teacher -> distill -> evaluation -> the Table 2 sweep, and teacher ->
MTT and STM -> evaluation -> the Table 1 sweep on a tiny CIFAR-10-shaped model input (whose
second run skips every finished cell).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _project import copy_project

ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))

BONE = ("teacher.n_experts=2,teacher.epochs=2,distill.iterations=2,distill.syn_steps=2,evaluation.n_nets=1,"
        "evaluation.epochs=1,evaluation.full_n_nets=1,evaluation.full_epochs=1,sweep.ipcs=[1],progress=false")
MOCK = ("votes_path=data/01_raw/mock_sky/gz2_hart16.csv,mapping_path=data/01_raw/mock_sky/gz2_filename_mapping.csv,"
        "image_dir=data/01_raw/mock_sky/images,sky.n_galaxies=110,sky.seed=3,sky.n_workers=1,sky.progress=false,"
        "curation.k_per_class=3,curation.n_train_per_class=2,curation.rotations=2,curation.n_workers=1")


def kedro(project: Path, *args: str) -> str:
    env = {**os.environ, "DO_NOT_TRACK": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore", "COLUMNS": "250"}
    proc = subprocess.run([KEDRO, *args], cwd=project, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"kedro {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def _tiny_cifar10(path: Path) -> None:
    """A CIFAR-10-shaped model input (10 classes, 3x32x32 uint8, 2 train + 1 test per class)."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10)
    model_input = {
        "train_x": torch.randint(0, 256, (20, 3, 32, 32), generator=g, dtype=torch.uint8),
        "train_y": labels.repeat_interleave(2), "test_x": torch.randint(0, 256, (10, 3, 32, 32), generator=g,
                                                                        dtype=torch.uint8),
        "test_y": labels, "class_names": [f"c{i}" for i in range(10)], "mean": [0.5] * 3, "std": [0.25] * 3,
        "name": "cifar10", "augmented": False,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(model_input))


def test_paper_env_runs_table2_at_128px_width_128(tmp_path):
    project = copy_project(tmp_path)
    out = kedro(project, "run", "--env", "paper", "--pipelines=table2", "--params", f"{BONE},{MOCK},sweep.inits=[real]")
    distilled = load_file(str(project / "data/07_model_output/mock_stm_ipc1_real_aug/distilled.safetensors"))
    assert distilled["images"].shape == (9, 3, 128, 128)
    from galaxy_distillation.engine.trajectories import ExpertBank

    (folder,) = (project / "data/06_models/experts/mock_plain").glob("bank-*")  # one bank: this data and settings
    bank = ExpertBank(folder)
    assert (len(bank), bank.num_epochs, bank.num_params) == (2, 2, 594_441)  # ConvNet-3 width 128 at 128 px
    assert not (project / "data/08_reporting/evaluation_mock_stm_ipc1_noise_plain.json").exists()  # not selected
    for cell in ("stm_ipc1_real_plain", "stm_ipc1_real_aug"):
        result = json.loads((project / f"data/08_reporting/evaluation_mock_{cell}.json").read_text())
        for key in ("distilled_acc_mean", "random_acc_mean", "full_acc_mean", "stop_reason", "selection"):
            assert key in result
        assert result["preset"]["source"] == "STM Table 3, code schedule"
        assert result["preset"]["applied"]["max_start_epoch"] == 29 and result["preset"]["applied"]["lr_img"] == 10000
        assert set(result["preset"]["explicit"]) == {"iterations", "syn_steps"}  # --params won
        assert result["selection"] == "best_train" and result["random_lr"] == 1e-4
    table = (project / "data/08_reporting/table2_mock.md").read_text()
    assert "| 1 | " in table and "(paper 53.1 ± 1.7" in table and "(paper 54.7 ± 0.7" in table
    assert "(paper 89.0 ± 0.5" in table and "(paper 27.4 ± 0.5" in table
    assert "Full: the whole training set, 1 nets x 1 epochs" in table
    assert "finished, skipped" not in out  # (the second-run skip is checked on the cheaper cifar10 shape)


def test_cifar10_env_runs_table1_with_both_methods_at_width_128(tmp_path):
    project = copy_project(tmp_path)
    _tiny_cifar10(project / "data/05_model_input/tiny_cifar10.pkl")
    (project / "conf/cifar10/catalog.yml").write_text(
        "plain.model_input: {type: pickle.PickleDataset, filepath: data/05_model_input/tiny_cifar10.pkl}\n")
    params = f"{BONE},dataset=cifar10,distill.max_start_epoch=1,distill.expert_epochs=1"
    kedro(project, "run", "--env", "cifar10", "--pipelines=table1", "--params", params)
    for method in ("mtt", "stm"):
        distilled = load_file(str(project / f"data/07_model_output/cifar10_{method}_ipc1_real_plain/distilled.safetensors"))
        assert distilled["images"].shape == (10, 3, 32, 32)
        result = json.loads((project / f"data/08_reporting/evaluation_cifar10_{method}_ipc1_real_plain.json").read_text())
        assert result["preset"]["applied"]["lr_lr"] == (1e-7 if method == "mtt" else 0.01)
        assert result["preset"]["applied"]["lr_img"] == (100.0 if method == "mtt" else 1000.0)
        assert set(result["preset"]["explicit"]) >= {"iterations", "syn_steps", "max_start_epoch"}
    table = (project / "data/08_reporting/table1_cifar10.md").read_text()
    assert "(paper 46.3 ± 0.8" in table and "(paper 47.7 ± 0.1" in table and "(paper 84.8 ± 0.1" in table
    again = kedro(project, "run", "--env", "cifar10", "--pipelines=table1", "--params", params)
    assert again.count("finished, skipped") == 2 * 2 + 1 and re.search(r"experts \(bank-[0-9a-f]+\): 2 kept, 0 to train", again)


@pytest.mark.parametrize("env", ["paper", "cifar10"])
def test_reproduction_envs_distil_with_the_papers_network(env):
    from kedro.config import OmegaConfigLoader

    from galaxy_distillation.settings import CONFIG_LOADER_ARGS

    args = {k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"}
    params = OmegaConfigLoader(str(ROOT / "conf"), default_run_env=env, **args)["parameters"]
    assert params["model"]["width"] == 128 and params["model"]["depth"] == 3
