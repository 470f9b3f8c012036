"""STM schedule: trend test, growth of the epoch pool, stop rules, start-epoch cycling."""

import math

import pytest
import torch
from _toy_d import TINY_ARCH, fast_config, random_experts, small_problem

from galaxy_distillation.engine import (
    DistillConfigError,
    Distiller,
    STMSchedule,
    pearson_trend,
    trend_test,
)


def _feed(schedule: STMSchedule, values, lr_img=1000.0):
    """Feed values one per iteration; return the list of decisions."""
    out = []
    for it, v in enumerate(values):
        d = schedule.observe(it, v, lr_img)
        lr_img = d.lr_img
        out.append(d)
    return out


def test_pearson_trend_basics():
    assert pearson_trend([3.0, 2.0, 1.0, 0.0]) == pytest.approx(-1.0)
    assert pearson_trend([0.0, 1.0, 2.0]) == pytest.approx(1.0)
    assert pearson_trend([5.0, 5.0, 5.0]) == 0.0  # flat series: no trend
    tt = trend_test(list(range(100, 0, -1)), lam=5.0)
    assert tt.sigma == pytest.approx(math.sqrt(1 / 98)) and tt.falling
    assert tt.threshold == pytest.approx(-5 / math.sqrt(98))
    with pytest.raises(DistillConfigError, match="at least 3"):
        trend_test([1.0, 2.0], lam=5.0)


def test_grows_on_decreasing_series_not_on_noise_or_flat():
    g = torch.Generator().manual_seed(0)
    decreasing = (torch.linspace(1.0, 0.5, 200) + 0.01 * torch.randn(200, generator=g)).tolist()
    s = STMSchedule(T_max=10, max_iter_stage=10_000)
    _feed(s, decreasing)
    assert s.T >= 3  # grew several times

    noise = torch.randn(300, generator=g).tolist()
    s = STMSchedule(T_max=10, max_iter_stage=10_000)
    _feed(s, noise)
    assert s.T == 1

    s = STMSchedule(T_max=10, max_iter_stage=10_000)
    _feed(s, [0.7] * 300)
    assert s.T == 1
    # a rising series does not grow without the loss-rising rule, and does with it
    rising = torch.linspace(0.5, 1.0, 60).tolist()
    s = STMSchedule(T_max=10, max_iter_stage=10_000)
    _feed(s, rising)
    assert s.T == 1
    s = STMSchedule(T_max=10, max_iter_stage=10_000, loss_rising_rule=True)
    decisions = _feed(s, rising)
    # checks at n = 10, 30, 50, ...; 3 * sigma > 1 at n = 10, so the first possible firing is n = 30
    assert s.T > 1 and decisions[29].grew and not any(d.grew for d in decisions[:29])


def test_no_growth_before_n30_at_lambda5_exhaustive():
    """A perfectly decreasing series first grows exactly at n = 30 (checks at n = 10, 20, 30)."""
    for n in range(1, 30):
        s = STMSchedule(T_max=10, lam=5.0, max_iter_stage=10_000)
        decisions = _feed(s, [float(-i) for i in range(n)])
        assert s.T == 1 and not any(d.grew for d in decisions), n
    s = STMSchedule(T_max=10, lam=5.0, max_iter_stage=10_000)
    decisions = _feed(s, [float(-i) for i in range(30)])
    assert s.T == 2 and decisions[29].grew and decisions[29].r == pytest.approx(-1.0)
    assert s.state.val_history == []  # reset after growth
    # the threshold alone would already pass at n = 28; the n % test_every gate prevents it
    assert trend_test([float(-i) for i in range(28)], 5.0).falling
    assert not trend_test([float(-i) for i in range(27)], 5.0).falling
    # and no series at all can pass before n = 28: |r| <= 1 < 5 / sqrt(n - 2)
    assert all(5.0 * math.sqrt(1 / (n - 2)) >= 1.0 for n in range(3, 28))


def test_growth_capped_by_T_max():
    s = STMSchedule(T_max=2, max_iter_stage=10_000)
    _feed(s, [float(-i) for i in range(200)])
    assert s.T == 2


def test_paper_stop_rule():
    s = STMSchedule(T_max=5, max_iter_stage=25, stop_rule="paper")
    decisions = _feed(s, [0.5] * 40)
    stops = [i for i, d in enumerate(decisions) if d.stop]
    assert stops[0] == 24 and decisions[24].stop == "no_expansion"
    # an expansion restarts the stage clock
    s = STMSchedule(T_max=5, max_iter_stage=35, stop_rule="paper")
    decisions = _feed(s, [float(-i) for i in range(30)] + [0.5] * 40)
    assert decisions[29].grew
    assert [i for i, d in enumerate(decisions) if d.stop][0] == 30 + 34


def test_code_stop_rule_freezes_and_decays():
    s = STMSchedule(T_max=5, max_iter_stage=5, stop_rule="code", lr_img_decay=0.5, lr_img_decay_every=2,
                    min_lr_img=100.0)
    decisions = _feed(s, [0.5] * 30, lr_img=1000.0)
    assert s.state.frozen and s.state.frozen_at == 5  # n = 6 > 5 at iteration 5
    lrs = [d.lr_img for d in decisions]
    assert lrs[5] == 1000.0 and lrs[7] == 500.0 and lrs[9] == 250.0 and lrs[11] == 125.0 and lrs[13] == 62.5
    assert decisions[13].stop == "lr_img_below_min" and all(d.stop is None for d in decisions[:13])


def test_distiller_cycles_start_epochs_and_grows(monkeypatch):
    """Inside the Distiller: t = it mod T, T grows on a falling validation series, M = 1."""
    x, y = small_problem()
    experts = random_experts(TINY_ARCH, 3, 3, 8, epochs=6)
    cfg = fast_config(iterations=45, lam=1.0, test_every=5, dsa_strategy="", max_start_epoch=4)
    d = Distiller(experts, x, y, 3, cfg, "cpu", TINY_ARCH)
    counter = iter(range(10_000))
    monkeypatch.setattr(d, "validation_loss", lambda it, expert: 10.0 - next(counter))
    res = d.run(progress=False)
    assert res.T == 4 == cfg.max_start_epoch  # grew to the cap
    for rec in res.history:
        assert rec.start_epoch == rec.iteration % rec.T
    assert [r.iteration for r in res.history if r.grew] == [4, 9, 14]
    assert cfg.effective_expert_epochs == 1
