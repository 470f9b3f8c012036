"""MTT and STM on a generated image folder, and the ``compare`` pipeline's nodes.

The toy folder (4 classes: a shape in its own hue on a random background) is written to
disk, read back with ``load_image_folder`` and normalised with its training statistics;
two tiny experts are trained on it. At IPC 1 both MTT and STM must beat the random real
IPC 1 subset they start from (``init="real"``; the same subset for both, as the seed is the
same) when fresh networks are trained on either with the same seeds and the same step size.
Measured with this configuration over six folder seeds (distillation seed = folder seed):
margins of 5-26 points (MTT) and 5-19 (STM); with the pixels frozen (``lr_img`` 1e-3) the
test fails, as it must.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from _configs import distill_config, eval_config, expert_config
from galaxy_distillation import tracking
from galaxy_distillation.datasources import load_image_folder, make_toy_image_folder
from galaxy_distillation.engine import DistillationDivergedError, Distiller, InMemoryExperts
from galaxy_distillation.engine.data import to_float
from galaxy_distillation.engine.evaluation import evaluate_images
from galaxy_distillation.engine.experts import train_expert
from galaxy_distillation.params import ArchParams, CompareParams, DistillParams, EvaluationParams, TeacherParams
from galaxy_distillation.pipelines.compare.nodes import (
    CURVE_COLUMNS,
    compare_methods,
    lambda_ablation,
    plot_comparison,
    plot_lambda,
    run_config,
    run_curves,
    summarise_comparison,
)
from galaxy_distillation.pipelines.prepare.nodes import prepare

ARCH = {"arch": "convnet", "width": 8, "depth": 2, "norm": "instancenorm", "pooling": "avgpooling"}
N_CLASSES = 4
CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from more threads (and a loaded 2-core machine loses a lot)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict:
    """The toy folder as model input (uint8 + statistics), normalised tensors and 2 experts."""
    root = make_toy_image_folder(tmp_path_factory.mktemp("toy") / "shapes", n_classes=N_CLASSES, n_per_class=40,
                                 size=16, seed=3)
    data = load_image_folder(root, image_size=16, test_fraction=0.3, seed=0, progress=False)
    unit = data.train_x.float() / 255.0
    mean, std = unit.mean(dim=(0, 2, 3)).tolist(), unit.std(dim=(0, 2, 3)).tolist()
    train_x, test_x = to_float(data.train_x, mean, std), to_float(data.test_x, mean, std)
    config = expert_config(epochs=6, lr=0.01, batch_size=16, dsa_strategy="", arch=ARCH)
    trajectories = [train_expert(train_x, data.train_y, test_x, data.test_y, N_CLASSES, config, seed=s, device=CPU,
                                 progress=False) for s in range(2)]
    model_input = {"train_x": data.train_x, "train_y": data.train_y, "test_x": data.test_x, "test_y": data.test_y,
                   "mean": mean, "std": std, "class_names": data.class_names}
    return {"model_input": model_input, "train_x": train_x, "train_y": data.train_y, "test_x": test_x,
            "test_y": data.test_y, "experts": trajectories}


def test_toy_folder_loads_and_experts_learn(toy):
    assert toy["train_x"].shape == (N_CLASSES * 28, 3, 16, 16) and toy["test_x"].shape == (N_CLASSES * 12, 3, 16, 16)
    assert abs(float(toy["train_x"].mean())) < 0.05
    for trajectory in toy["experts"]:
        assert trajectory.test_acc[-1] > trajectory.test_acc[0] + 20.0, trajectory.test_acc


@pytest.mark.parametrize("method", ["mtt", "stm"])
def test_distilled_ipc1_beats_random_real_ipc1(toy, method):
    config = distill_config(method=method, ipc=1, syn_steps=10, iterations=40, lr_img=100.0, lr_init=0.005,
                           max_start_epoch=4, expert_epochs=2, lam=2.0, dsa_strategy="", checkpoint_every=0, seed=0)
    experts = InMemoryExperts([t.params for t in toy["experts"]])
    distiller = Distiller(experts, toy["train_x"], toy["train_y"], N_CLASSES, config, CPU, ARCH)
    random_x, random_y = distiller.images.detach().clone(), distiller.labels.clone()  # 1 random real image per class
    result = distiller.run(progress=False)
    assert result.n_rejected_steps == 0 and result.iterations_done == 40
    if method == "stm":
        assert result.T > 1, "the STM pool never grew"

    evaluation = eval_config(n_nets=5, epochs=100, dsa_strategy="", arch=ARCH)
    distilled = evaluate_images(result.images, result.labels, toy["test_x"], toy["test_y"], N_CLASSES, result.lr,
                                evaluation, seed=1, device=CPU, progress=False)
    assert torch.equal(random_y, result.labels) and not torch.equal(random_x, result.images)
    assert all(bool((toy["train_x"] == image).all(dim=(1, 2, 3)).any()) for image in random_x)  # real images
    random = evaluate_images(random_x, random_y, toy["test_x"], toy["test_y"], N_CLASSES, result.lr, evaluation, seed=1,
                             device=CPU, progress=False)
    assert distilled.mean > random.mean + 5.0, (method, distilled.accs, random.accs)


# ---- the compare pipeline's nodes --------------------------------------------------------

DISTILL = DistillParams(iterations=999, syn_steps=2, expert_epochs=2, max_start_epoch=3, lr_img=100.0, lr_lr=None,
                        lr_init=0.005, dsa_strategy="", lam=5.0, test_every=2, checkpoint_every=25,
                        checkpoint_root="must/not/be/used", eval_every=50, seed=0)
EVALUATION = EvaluationParams(n_nets=5, epochs=300, batch_size=64, dsa_strategy="", use_vmap=False, seed=0)


def test_compare_nodes_on_toy_model_input(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written (no checkpoints)
    compare = CompareParams(methods=["mtt", "stm"], seeds=[0, 1], iterations=4, eval_every=2, eval_nets=1,
                            eval_epochs=3, lambdas=[1, 10], lambda_seed=3)
    experts = InMemoryExperts([t.params for t in toy["experts"]])
    prepared, _ = prepare(toy["model_input"], TeacherParams(zca=False))
    args = (prepared, experts, compare, DISTILL, EVALUATION, ArchParams(**ARCH), 1, "cpu", False)

    curves = compare_methods(*args)
    assert list(curves.columns) == CURVE_COLUMNS
    assert len(curves) == 2 * 2 * 5  # methods x seeds x (iteration 0 + 4 iterations)
    evaluated = curves[curves["test_acc"].notna()]
    assert sorted(evaluated["iteration"].unique()) == [0, 2, 4]
    assert ((evaluated["test_acc"] >= 0) & (evaluated["test_acc"] <= 100)).all()
    assert curves[curves["method"] == "mtt"]["lam"].isna().all()
    assert (curves[curves["method"] == "stm"]["lam"] == 5.0).all()
    assert (curves[curves["method"] == "mtt"]["T"] == 3).all()
    # the same seed gives the same images at iteration 0, so MTT and STM start from the same accuracy
    start = evaluated[evaluated["iteration"] == 0].set_index(["method", "seed"])["test_acc"]
    assert start["mtt", 0] == start["stm", 0] and start["mtt", 1] == start["stm", 1]

    lambdas = lambda_ablation(*args)
    assert sorted(lambdas["lam"].unique()) == [1.0, 10.0] and (lambdas["seed"] == 3).all()
    assert (lambdas["method"] == "stm").all() and len(lambdas) == 2 * 5
    for _, run in lambdas.groupby("lam"):
        assert run["T"].is_monotonic_increasing and run["T"].iloc[0] == 1
    assert not any(tmp_path.iterdir())

    summary, metrics = summarise_comparison(curves, lambdas)
    assert set(summary["methods"]) == {"mtt", "stm"} and set(summary["lambdas"]) == {"1", "10"}
    json.dumps(summary)
    assert isinstance(plot_comparison(curves), Figure) and isinstance(plot_lambda(lambdas), Figure)


def test_compare_batched_gives_the_curves_of_separate_runs(toy, tmp_path, monkeypatch):
    """``compare.batched``: MTT and STM, two seeds, as one batched program; the curves of four runs alone."""
    monkeypatch.chdir(tmp_path)
    experts = InMemoryExperts([t.params for t in toy["experts"]])
    prepared, _ = prepare(toy["model_input"], TeacherParams(zca=False))
    curves = []
    for batched in (False, True):
        compare = CompareParams(methods=["mtt", "stm"], seeds=[0, 1], iterations=4, eval_every=2, eval_nets=1,
                                eval_epochs=3, lambdas=[], batched=batched)
        curves.append(compare_methods(prepared, experts, compare, DISTILL, EVALUATION, ArchParams(**ARCH), 1, "cpu",
                                      False))
    alone, together = curves
    assert len(together) == len(alone) == 2 * 2 * 5
    for col in ("method", "seed", "iteration", "T"):
        assert together[col].tolist() == alone[col].tolist(), col
    for col in ("loss", "val_loss", "lr"):  # float32: the batched kernels sum in another order (measured: 2e-7)
        assert together[col].fillna(-1).to_numpy() == pytest.approx(alone[col].fillna(-1).to_numpy(), rel=1e-5), col
    # the quick evaluations train nets on images equal to rounding (measured: the same accuracies)
    assert together["test_acc"].fillna(-1).to_numpy() == pytest.approx(alone["test_acc"].fillna(-1).to_numpy(), abs=5.0)


@pytest.mark.parametrize("batched", [False, True])
def test_a_diverged_comparison_run_is_named_and_batched_the_others_are_logged(toy, monkeypatch, batched):
    """One run of three diverges (lr_img inf): the node fails naming it, as a run alone raises. Batched,
    the runs after it in the group still finish and their curves are logged first (before: the batch
    stopped at the divergence and no curve came back)."""
    experts = InMemoryExperts([t.params for t in toy["experts"]])
    prepared, _ = prepare(toy["model_input"], TeacherParams(zca=False))
    compare = CompareParams(methods=["stm"], seeds=[0], iterations=4, eval_every=4, eval_nets=1, eval_epochs=1,
                            eval_at_start=False, lambdas=[], batched=batched)
    configs = [run_config(DISTILL, compare, "stm", 1, seed, 4) for seed in range(3)]
    configs[0] = dataclasses.replace(configs[0], lr_img=math.inf, max_bad_steps=2)
    runs = [(f"stm seed {k}", {"seed": k}, c) for k, c in enumerate(configs)]
    logged: list[int] = []
    monkeypatch.setattr(tracking, "log_curve", lambda rows: logged.append(len(rows)))
    with pytest.raises(DistillationDivergedError, match=r"2 consecutive non-finite steps") as err:
        run_curves(prepared, experts, runs, ArchParams(**ARCH), EVALUATION, compare, "cpu", False, None)
    if batched:
        assert str(err.value).startswith("comparison run STM seed 0 lambda 5: 2 consecutive non-finite steps")
        assert logged == [4, 4]  # runs 1 and 2: their four iterations each
    else:
        assert logged == []  # a run alone: the first run raised, as before


def _hand_made() -> tuple[pd.DataFrame, pd.DataFrame]:
    """MTT and STM, 2 seeds, evaluated at 0, 10, 20; lambdas 1 and 5 with known T steps."""
    rows = []
    accs = {("mtt", 0): [30, 40, 50], ("mtt", 1): [30, 44, 54], ("stm", 0): [30, 50, 60], ("stm", 1): [30, 46, 64]}
    for (method, seed), values in accs.items():
        for it in range(21):
            acc = values[it // 10] if it % 10 == 0 else math.nan
            rows.append({"method": method, "lam": 5.0 if method == "stm" else math.nan, "seed": seed, "iteration": it,
                         "test_acc": acc, "test_acc_std": 0.0 if acc == acc else math.nan,
                         "T": 1 + (it >= 12) if method == "stm" else 10, "loss": 1.0 / (1 + it),
                         "val_loss": math.nan, "lr": 0.01})
    compare = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    rows = []
    for lam, grow_at in ((1.0, [5, 15]), (5.0, [])):
        for it in range(21):
            rows.append({"method": "stm", "lam": lam, "seed": 0, "iteration": it,
                         "test_acc": (40 + lam + it) if it % 10 == 0 else math.nan, "test_acc_std": math.nan,
                         "T": 1 + sum(it >= g for g in grow_at), "loss": 0.5, "val_loss": 0.4, "lr": 0.01})
    return compare, pd.DataFrame(rows, columns=CURVE_COLUMNS)


def test_summary_and_figures_on_a_hand_made_table(tmp_path):
    compare, lambdas = _hand_made()
    # through CSV, as the catalog stores them (the nodes downstream read the reloaded tables)
    compare.to_csv(tmp_path / "c.csv", index=False)
    lambdas.to_csv(tmp_path / "l.csv", index=False)
    compare, lambdas = pd.read_csv(tmp_path / "c.csv"), pd.read_csv(tmp_path / "l.csv")

    summary, metrics = summarise_comparison(compare, lambdas)
    mtt, stm = summary["methods"]["mtt"], summary["methods"]["stm"]
    assert mtt["final_accs"] == [50.0, 54.0] and mtt["final_acc_mean"] == pytest.approx(52.0)
    assert mtt["final_acc_std"] == pytest.approx(2.0)  # population std, as everywhere in the project
    assert stm["final_acc_mean"] == pytest.approx(62.0) and stm["final_iteration"] == [20, 20]
    assert "best_acc_mean" not in stm and stm["reported"] == "final"  # never the max of a test curve
    assert summary["stm_minus_mtt"] == pytest.approx(10.0)
    assert summary["lambdas"]["1"] == {"seed": 0, "final_iteration": 20, "final_acc": 61.0, "final_T": 3, "max_T": 3,
                                       "growth_iterations": [5, 15]}
    assert summary["lambdas"]["5"]["growth_iterations"] == [] and summary["lambdas"]["5"]["final_T"] == 1
    json.loads(json.dumps(summary, allow_nan=False))

    assert metrics["mtt_test_acc_mean"] == [{"step": 0, "value": 30.0}, {"step": 10, "value": 42.0},
                                            {"step": 20, "value": 52.0}]
    assert metrics["stm_final_acc_mean"] == [{"step": 20, "value": 62.0}]
    assert len(metrics["lam1_T"]) == 21 and metrics["lam1_T"][-1] == {"step": 20, "value": 3.0}
    assert [p["step"] for p in metrics["lam5_test_acc"]] == [0, 10, 20]
    for history in metrics.values():
        assert all(set(p) == {"step", "value"} and math.isfinite(p["value"]) for p in history)

    fig = plot_comparison(compare)
    ax = fig.axes[0]
    assert len(ax.collections) == 2  # one std band per method
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["MTT (mean ± std, 2 seeds)",
                                                                  "STM (mean ± std, 2 seeds)"]
    assert list(ax.lines[2].get_ydata()) == [30.0, 42.0, 52.0]  # 2 seed lines, then the MTT mean
    fig.savefig(tmp_path / "compare.png")

    fig = plot_lambda(lambdas)
    acc_ax, pool_ax = fig.axes
    assert len(acc_ax.lines) == 2 and len(pool_ax.lines) == 2
    assert list(pool_ax.lines[0].get_ydata()) == [float(1 + (i >= 5) + (i >= 15)) for i in range(21)]
    fig.savefig(tmp_path / "lambda.png")
    assert (tmp_path / "compare.png").stat().st_size > 0 and (tmp_path / "lambda.png").stat().st_size > 0


def test_no_lambdas_gives_an_empty_ablation():
    compare, _ = _hand_made()
    empty = pd.DataFrame(columns=CURVE_COLUMNS)
    summary, metrics = summarise_comparison(compare, empty)
    assert summary["lambdas"] == {} and not any(k.startswith("lam") for k in metrics)
    assert isinstance(plot_lambda(empty), Figure)
    no_lambdas = CompareParams(lambdas=[], iterations=1, eval_every=1, eval_epochs=1)
    table = lambda_ablation(None, None, no_lambdas, DISTILL, EVALUATION, ArchParams(**ARCH), 1, "cpu", False)
    assert table.empty and list(table.columns) == CURVE_COLUMNS


def test_compare_parameters_are_validated():
    from galaxy_distillation.params import ParameterError, validate_parameters

    good = {"iterations": 60, "eval_every": 20, "eval_epochs": 100}
    assert validate_parameters({"compare": good})["compare"].methods == ["mtt", "stm"]
    for bad, name in (({"methods": ["dc"]}, "compare.methods.0"), ({"lambdas": [1, 0]}, "compare.lambdas"),
                      ({"eval_every": 0}, "compare.eval_every"), ({"seed": 1}, "compare.seed")):
        with pytest.raises(ParameterError, match=f"invalid parameter '{name}'"):
            validate_parameters({"compare": {**good, **bad}})
