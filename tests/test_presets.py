"""Every reproduction preset against the tables in ../shared/docs/REFERENCE.md, and how presets
are resolved (explicit parameters win; MTT never gets STM's log-space lr_lr)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from galaxy_distillation.params import DistillParams, ParameterError
from galaxy_distillation.presets import (
    MTT_PRESETS,
    PAPER_TABLE1,
    PAPER_TABLE2,
    STM_PRESETS,
    PresetError,
    preset_for,
    resolve_distill,
)

ROOT = Path(__file__).resolve().parents[1]


def _reference() -> str:
    for d in (ROOT.parent / "shared", Path("/work/shared")):
        if (d / "docs/REFERENCE.md").exists():
            return (d / "docs/REFERENCE.md").read_text()
    raise AssertionError("REFERENCE.md not found beside the checkout (../shared/docs) nor in /work/shared/docs")


def _rows(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


_DATASET = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100"}


def _range(text: str) -> tuple[float, float]:
    nums = [float(v) for v in re.findall(r"[\d.]+(?:e-?\d+)?", text.split("(")[0])]
    return min(nums), max(nums)


def test_mtt_presets_are_mtts_published_table():
    rows = _rows(_reference(), "| dataset | IPC | N | M | T+ |")
    assert len(rows) == 6
    for dataset, ipc, n, m, t_plus, batch, zca, lr_img, lr_lr, alpha0 in rows:
        p = MTT_PRESETS[(_DATASET[dataset], int(ipc))]
        assert p["syn_steps"] == int(n) and p["expert_epochs"] == int(m) and p["max_start_epoch"] == int(t_plus)
        assert p["batch_syn"] == (None if batch == "full" else int(batch))
        assert p["zca"] == (zca == "yes")
        lo, hi = _range(lr_img)
        assert lo <= p["lr_img"] <= hi, (dataset, ipc, lr_img)
        assert p["lr_lr"] == float(lr_lr) and p["lr_init"] == float(alpha0)
        assert p["lr_lr"] <= 1e-5  # linear alpha: never STM's 0.01


def test_stm_presets_are_table3_with_the_codes_schedule():
    text = " ".join(_reference().split())
    specs = {
        "cifar10": re.search(r"CIFAR-10 IPC 1/10/50: N (\d+)/(\d+)/(\d+), lr_img (\d+),\s*alpha0 ([\d.e-]+), lr_lr ([\d.]+)", text),
        "cifar100": re.search(r"CIFAR-100 IPC 1/10: N (\d+)/(\d+), same rates", text),
        "gz2": re.search(r"GZoo2 IPC 1/10: N (\d+)/(\d+), lr_img (\d+), alpha0 ([\d.e-]+), lr_lr ([\d.]+), no ZCA", text),
    }
    c10 = specs["cifar10"].groups()
    for ipc, n in zip((1, 10, 50), c10[:3], strict=True):
        p = STM_PRESETS[("cifar10", ipc)]
        assert (p["syn_steps"], p["lr_img"], p["lr_init"], p["lr_lr"], p["zca"]) == (
            int(n), float(c10[3]), float(c10[4]), float(c10[5]), True)
    for ipc, n in zip((1, 10), specs["cifar100"].groups(), strict=True):
        p = STM_PRESETS[("cifar100", ipc)]
        assert (p["syn_steps"], p["lr_img"], p["lr_init"], p["lr_lr"], p["zca"]) == (
            int(n), float(c10[3]), float(c10[4]), float(c10[5]), True)
    g = specs["gz2"].groups()
    for ipc, n in zip((1, 10), g[:2], strict=True):
        p = STM_PRESETS[("gz2", ipc)]
        assert (p["syn_steps"], p["lr_img"], p["lr_init"], p["lr_lr"], p["zca"]) == (
            int(n), float(g[2]), float(g[3]), float(g[4]), False)
    assert set(STM_PRESETS) == {("cifar10", 1), ("cifar10", 10), ("cifar10", 50), ("cifar100", 1),
                                ("cifar100", 10), ("gz2", 1), ("gz2", 10)}
    assert "max_start_epoch` 29" in _reference() and "20,001 iterations" in _reference()
    code = preset_for("gz2", "stm", 1, "code")
    assert (code["max_start_epoch"], code["iterations"], code["stop_rule"]) == (29, 20001, "code")
    assert (code["max_iter_stage"], code["min_lr_img"]) == (1000, 50.0)
    assert preset_for("gz2", "stm", 1, "paper")["stop_rule"] == "paper"


def _paper_numbers(cell: str) -> tuple[float, float]:
    mean, std = cell.split("+-")
    return float(mean), float(std)


def test_paper_results_are_reference_tables_1_and_2():
    text = _reference()
    t1 = _rows(text, "| dataset | IPC | Random | MTT | STM | Full |")
    assert len(t1) == len(PAPER_TABLE1)
    for dataset, ipc, *cells in t1:
        ours = PAPER_TABLE1[(_DATASET[dataset], int(ipc))]
        for name, cell in zip(("random", "mtt", "stm", "full"), cells, strict=True):
            assert ours.get(name) == (_paper_numbers(cell) if cell else None), (dataset, ipc, name)
    t2 = _rows(text, "| IPC | Random | GZ2 real init |")
    cols = ("random", "plain_real", "plain_noise", "plain_full", "aug_real", "aug_noise", "aug_full")
    for ipc, *cells in t2:
        for name, cell in zip(cols, cells, strict=True):
            assert PAPER_TABLE2[int(ipc)].get(name) == (_paper_numbers(cell) if cell else None)


def test_preset_values_fill_only_the_keys_that_ask_and_explicit_values_win():
    distill = {"syn_steps": "preset", "lr_lr": "preset", "lr_img": 123.0, "iterations": "preset"}
    out, record = resolve_distill(distill, "gz2", "stm", 10)
    assert out["syn_steps"] == 20 and out["lr_lr"] == 0.01 and out["iterations"] == 20001
    assert out["lr_img"] == 123.0  # explicit (e.g. --params distill.lr_img=123) wins
    assert record["applied"] == {"syn_steps": 20, "lr_lr": 0.01, "iterations": 20001}
    assert record["explicit"] == ["lr_img"] and record["source"].startswith("STM Table 3")
    mtt, _ = resolve_distill(distill, "cifar10", "mtt", 1)
    assert mtt["lr_lr"] == 1e-7 and mtt["syn_steps"] == 50
    assert resolve_distill({"syn_steps": 7}, "gz2", "stm", 1) == ({"syn_steps": 7}, None)
    with pytest.raises(PresetError, match="no published STM setting for dataset=imagefolder"):
        resolve_distill({"syn_steps": "preset"}, "imagefolder", "stm", 1)


def distill_config(distill: dict, method: str, ipc: int, init: str, dataset: str | None = None):
    return DistillParams(**distill).engine_config(method, ipc, init, dataset=dataset)


def _env_distill(env: str) -> dict:
    from kedro.config import OmegaConfigLoader

    from galaxy_distillation.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(str(ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return loader["parameters"]["distill"]


@pytest.mark.parametrize("env, dataset", [("paper", "gz2"), ("cifar10", "cifar10"), ("cifar10", "cifar100")])
def test_reproduction_envs_take_every_setting_from_the_presets(env, dataset):
    distill = _env_distill(env)
    assert distill["lr_lr"] == "preset" and distill["syn_steps"] == "preset"
    for (ds, ipc) in [k for k in STM_PRESETS if k[0] == dataset]:
        stm = distill_config(distill, "stm", ipc, "real", dataset=ds)
        mtt = distill_config(distill, "mtt", ipc, "real", dataset=ds)
        assert stm.effective_lr_lr == 0.01 and stm.effective_log_lr and stm.max_start_epoch == 29
        assert stm.stop_rule == "code" and stm.iterations == 20001 and stm.syn_steps == STM_PRESETS[(ds, ipc)]["syn_steps"]
        assert mtt.effective_lr_lr <= 1e-5 and not mtt.effective_log_lr
        assert mtt.syn_steps == MTT_PRESETS[(ds, ipc)]["syn_steps"]
        assert mtt.max_start_epoch == MTT_PRESETS[(ds, ipc)]["max_start_epoch"]


def test_mtt_never_silently_gets_stms_log_space_rate():
    with pytest.raises(ParameterError, match="MTT learns its step size linearly"):
        distill_config({"iterations": 2, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 1, "lr_img": 1.0,
                        "lr_lr": 0.01, "lr_init": 0.01}, "mtt", 1, "real")
    base = distill_config({"iterations": 2, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 1, "lr_img": 1.0,
                           "lr_lr": None, "lr_init": 0.01}, "mtt", 1, "real")
    assert base.effective_lr_lr == 1e-5


def test_bad_presets_and_stms_rate_for_mtt_fail_before_any_compute():
    from galaxy_distillation.params import validate_parameters

    with pytest.raises(ParameterError, match="MTT learns its step size linearly"):
        validate_parameters({"method": "mtt", "distill": {"lr_lr": 0.01}})
    with pytest.raises(ParameterError, match="no published STM setting for dataset=imagefolder"):
        validate_parameters({"dataset": "imagefolder", "distill": {"syn_steps": "preset"}})
    validate_parameters({"dataset": "gz2", "method": "mtt", "ipc": 10, "distill": {"lr_lr": "preset"}})
