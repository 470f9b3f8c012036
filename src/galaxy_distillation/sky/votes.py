"""Simulate Galaxy Zoo 2 volunteer votes for one galaxy, volunteer by volunteer.

Each volunteer first forms an impression of the galaxy: the true class with probability
``p_correct(clarity)`` (0.30 at clarity 0, 0.95 at clarity 1), otherwise a plausibly
confused class (round <-> in-between <-> cigar, cigar <-> edge-on, bar <-> no bar,
spiral <-> no spiral, disks <-> smooth, sometimes star/artifact). The volunteer then walks
the GZ2 decision tree answering according to that impression, with an extra per-task
slip (a uniformly random answer) of probability ``0.03 + 0.07 (1 - clarity)``:

    T01 smooth -> T07 -> T06;  T01 features -> T02 edge-on: yes -> T09 -> T06;
    no -> T03 -> T04 -> [spiral: T10 -> T11] -> T05 -> T06;  T06 yes -> T08;
    T01 star/artifact ends the path.

Output columns follow the Hart et al. 2016 table (6 per answer):

* ``_count``: integer votes; ``_weight``: sum of volunteer consistency weights (1.0 for
  about 93 % of volunteers, U(0.2, 0.9) for the rest), rounded to 3 decimals;
* ``_fraction`` / ``_weighted_fraction``: count (weight) over the task's total, rounded to
  3 decimals, 0 when the task was not reached;
* ``_debiased``: fraction after a redshift-like debiasing (features, bar and spiral answers
  boosted by ``1 + k z``, a few percent of multiplicative noise), renormalised per task,
  clipped to [0, 1], 6 decimals;
* ``_flag``: 1 when debiased >= 0.8 (0.5 for the T03 bar answers) and the task received at
  least 10 votes (T01) or 5 votes (other tasks) -- an approximation of the Willett 2013 /
  Hart 2016 clean-sample flags read off the real Stripe 82 table;
* ``total_classifications`` = number of volunteers, ``total_votes`` = sum of counts;
* ``gz2_class``: Hart's short string built from the majority answers along the path:
  ``A`` (star/artifact); ``Er/Ei/Ec`` (smooth round/in-between/cigar); ``Ser/Seb/Sen``
  (edge-on, bulge rounded/boxy/none); ``S[B]<bulge d|c|b|a>[<arms 1|2|3|4|+|?><winding
  t|m|l>]`` for face-on disks; ``(x)`` appended when most said odd, x the majority odd
  feature (r ring, l lens, d disturbed, i irregular, o other, m merger, u dust lane).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .columns import ANSWER_SUFFIXES, GZ2_TASKS

STAR_CLASS = 9  # pseudo-class: star or artifact
_TASKS = list(GZ2_TASKS)
_T = {name[:3]: name for name in _TASKS}  # "t01" -> "t01_smooth_or_features"

#: Confusion weights: true class -> {perceived class: weight}; 9 = star/artifact.
CONFUSION: dict[int, dict[int, float]] = {
    0: {1: 0.78, 8: 0.14, 9: 0.08},
    1: {0: 0.45, 2: 0.27, 8: 0.2, 9: 0.08},
    2: {1: 0.5, 4: 0.37, 3: 0.05, 9: 0.08},
    3: {4: 0.5, 2: 0.3, 1: 0.12, 9: 0.08},
    4: {2: 0.5, 3: 0.42, 9: 0.08},
    5: {7: 0.45, 6: 0.37, 8: 0.1, 9: 0.08},
    6: {8: 0.55, 5: 0.22, 1: 0.15, 9: 0.08},
    7: {8: 0.47, 5: 0.35, 1: 0.1, 9: 0.08},
    8: {1: 0.35, 6: 0.25, 7: 0.2, 0: 0.12, 9: 0.08},
}

# answer index per class along the class-defining tasks
_CLASS_PATH: dict[int, dict[str, int]] = {
    0: {"t01": 0, "t07": 0},
    1: {"t01": 0, "t07": 1},
    2: {"t01": 0, "t07": 2},
    3: {"t01": 1, "t02": 0},
    4: {"t01": 1, "t02": 0, "t09": 2},
    5: {"t01": 1, "t02": 1, "t03": 0, "t04": 0},
    6: {"t01": 1, "t02": 1, "t03": 0, "t04": 1},
    7: {"t01": 1, "t02": 1, "t03": 1, "t04": 0},
    8: {"t01": 1, "t02": 1, "t03": 1, "t04": 1},
    STAR_CLASS: {"t01": 2},
}
_DEBIAS_BOOST = {("t01", 1): 1.5, ("t03", 0): 1.0, ("t04", 0): 1.5}
_FLAG_THRESHOLD = {"t03": 0.5}
_FLAG_MIN_VOTES = {"t01": 10}
_ODD_LETTERS = "rldiomu"
_BULGE_LETTERS = "dcba"
_ARM_LETTERS = "1234+?"
_WIND_LETTERS = "tml"


class VoteSimulationError(ValueError):
    """Invalid input to the vote simulator."""


def p_correct(clarity: float) -> float:
    """Probability that a volunteer perceives the true class, given clarity in [0, 1]."""
    return 0.25 + 0.70 * float(clarity) ** 0.8


def perception_probabilities(true_class: int, clarity: float, lean_class: int | None = None) -> np.ndarray:
    """Probability (10,) that a volunteer perceives each class (index 9 = star/artifact).

    ``p_correct(clarity)`` on the true class; of the rest, 60 % goes to the galaxy's
    look-alike ``lean_class`` (when given, e.g. the class across the axis-ratio boundary
    it sits near) and 40 % is spread by :data:`CONFUSION`. Ambiguous galaxies therefore
    often get a wrong majority, as in the real GZ2.
    """
    probs = np.zeros(10)
    pc = p_correct(clarity)
    probs[true_class] = pc
    conf = CONFUSION.get(true_class, {0: 1.0})
    wsum = sum(conf.values())
    share = 0.4 if lean_class is not None and lean_class != true_class else 1.0
    for k, w in conf.items():
        probs[k] += (1.0 - pc) * share * w / wsum
    if share < 1.0:
        probs[int(lean_class)] += (1.0 - pc) * (1.0 - share)
    return probs / probs.sum()


def _default_properties(true_class: int, rng: np.random.Generator) -> dict[str, Any]:
    """Plausible secondary properties when the caller gives none."""
    props: dict[str, Any] = {
        "bulge_fraction": float(rng.uniform(0.02, 0.5)),
        "n_arms": int(rng.choice([1, 2, 3, 4, 5], p=[0.05, 0.55, 0.2, 0.12, 0.08])) if true_class in (5, 7) else 0,
        "pitch_deg": float(rng.uniform(9, 32)) if true_class in (5, 7) else 0.0,
        "dust_lane": float(rng.random() < 0.4) if true_class in (3, 4) else 0.0,
        "n_neighbours": int(rng.poisson(1.2)),
        "redshift": float(rng.uniform(0.02, 0.2)),
        "lean_class": _draw_lean(true_class, rng),
    }
    if true_class == 4:
        props["bulge_fraction"] = 0.0
    return props


def _draw_lean(true_class: int, rng: np.random.Generator) -> int:
    """A look-alike class drawn from :data:`CONFUSION` (never star/artifact)."""
    conf = {k: w for k, w in CONFUSION.get(true_class, {}).items() if k != STAR_CLASS}
    if not conf:
        return true_class
    keys = list(conf)
    w = np.array([conf[k] for k in keys])
    return int(keys[int(rng.choice(len(keys), p=w / w.sum()))])


def _jitter(idx: int, n: int, rng: np.random.Generator, p: float = 0.3) -> int:
    """Shift an ordinal answer by +-1 with probability p (stays in range)."""
    if rng.random() < p:
        idx += 1 if rng.random() < 0.5 else -1
    return int(min(max(idx, 0), n - 1))


def _walk(
    perceived: int,
    clarity: float,
    props: Mapping[str, Any],
    rng: np.random.Generator,
) -> list[tuple[str, int]]:
    """One volunteer's answers as (task key, answer index) along the tree."""
    slip = 0.03 + 0.07 * (1.0 - clarity)
    path = _CLASS_PATH[perceived]
    out: list[tuple[str, int]] = []

    def ask(task: str, preferred: int) -> int:
        n = len(GZ2_TASKS[_T[task]])
        ans = int(rng.integers(n)) if rng.random() < slip else preferred
        out.append((task, ans))
        return ans

    t01 = ask("t01", path["t01"])
    if t01 == 2:
        return out
    if t01 == 0:
        ask("t07", path.get("t07", int(rng.integers(3))))
    else:
        t02 = ask("t02", path.get("t02", int(rng.integers(2))))
        if t02 == 0:
            if perceived == 3:
                pref = 0 if rng.random() < 0.75 else 1
            elif perceived == 4:
                pref = 2
            else:
                pref = 0 if props.get("bulge_fraction", 0.0) > 0.1 else 2
            ask("t09", pref)
        else:
            ask("t03", path.get("t03", int(rng.random() < 0.7)))
            t04 = ask("t04", path.get("t04", int(rng.random() < 0.5)))
            if t04 == 0:
                pitch = float(props.get("pitch_deg", 0.0))
                wind = (0 if pitch < 15 else 1 if pitch < 24 else 2) if pitch > 0 else int(rng.integers(3))
                ask("t10", _jitter(wind, 3, rng))
                n_arms = int(props.get("n_arms", 0))
                if n_arms <= 0 or rng.random() > 0.45 + 0.45 * clarity:
                    arms = 5  # can't tell
                else:
                    arms = _jitter(min(n_arms, 5) - 1, 5, rng, 0.2)
                ask("t11", arms)
            bt = float(props.get("bulge_fraction", 0.2))
            bulge = 0 if bt < 0.04 else 1 if bt < 0.14 else 2 if bt < 0.32 else 3
            ask("t05", _jitter(bulge, 4, rng))
    p_odd = 0.06 + 0.12 * (props.get("n_neighbours", 0) > 0) + 0.2 * (props.get("dust_lane", 0.0) > 0)
    t06 = ask("t06", 0 if rng.random() < p_odd else 1)
    if t06 == 0:
        w = np.array([0.1, 0.1, 0.12, 0.1, 0.3, 0.1, 0.05])
        if props.get("dust_lane", 0.0) > 0:
            w[6] += 1.2
        if props.get("n_neighbours", 0) > 0:
            w[5] += 0.4
            w[2] += 0.2
        ask("t08", int(rng.choice(7, p=w / w.sum())))
    return out


def _class_string(counts: dict[str, np.ndarray]) -> str:
    """Hart-style gz2_class string from majority answers (see module docstring)."""
    def major(task: str) -> int | None:
        c = counts[task]
        return int(np.argmax(c)) if c.sum() > 0 else None

    t01 = major("t01")
    if t01 is None or t01 == 2:
        return "A"
    if t01 == 0:
        s = "E" + "ric"[major("t07") or 0]
    elif major("t02") == 0:
        t09 = major("t09")
        s = "Se" + "rbn"[t09 if t09 is not None else 2]
    else:
        s = "S" + ("B" if major("t03") == 0 else "")
        t05 = major("t05")
        s += _BULGE_LETTERS[t05 if t05 is not None else 0]
        if major("t04") == 0:
            t11, t10 = major("t11"), major("t10")
            s += _ARM_LETTERS[t11 if t11 is not None else 5] + _WIND_LETTERS[t10 if t10 is not None else 1]
    if major("t06") == 0 and major("t08") is not None:
        s += f"({_ODD_LETTERS[major('t08')]})"
    return s


def simulate_votes(
    true_class: int,
    clarity: float,
    rng: np.random.Generator,
    n_volunteers: int,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, float | int | str]:
    """Simulate the GZ2 vote record of one galaxy.

    Args:
        true_class: 0..8 (9 = star/artifact is accepted too).
        clarity: 0 (hopelessly ambiguous) .. 1 (textbook example).
        rng: the only source of randomness.
        n_volunteers: number of classifications (GZ2 median about 44).
        properties: optional galaxy properties (``lean_class``, ``bulge_fraction``,
            ``n_arms``, ``pitch_deg``, ``dust_lane``, ``n_neighbours``, ``redshift``) that drive
            the secondary tasks; drawn plausibly when omitted.

    Returns:
        ``{<answer>_<suffix>: value}`` for all 37 answers x 6 suffixes, plus
        ``total_classifications``, ``total_votes`` and ``gz2_class``.
    """
    if isinstance(true_class, bool) or not isinstance(true_class, (int, np.integer)) or not 0 <= true_class <= 9:
        raise VoteSimulationError(f"true_class must be an int in 0..9, got {true_class!r}")
    if not isinstance(clarity, (float, int, np.floating)) or not 0.0 <= float(clarity) <= 1.0:
        raise VoteSimulationError(f"clarity must be a number in [0, 1], got {clarity!r}")
    if isinstance(n_volunteers, bool) or not isinstance(n_volunteers, (int, np.integer)) or n_volunteers < 1:
        raise VoteSimulationError(f"n_volunteers must be a positive int, got {n_volunteers!r}")
    true_class, clarity = int(true_class), float(clarity)
    props = dict(properties) if properties is not None else _default_properties(true_class, rng)

    counts_l = {k: [0] * len(GZ2_TASKS[_T[k]]) for k in _T}
    weights_l = {k: [0.0] * len(GZ2_TASKS[_T[k]]) for k in _T}
    probs = perception_probabilities(true_class, clarity, props.get("lean_class"))
    perceived_all = rng.choice(len(probs), size=n_volunteers, p=probs)
    vol_w = np.where(rng.random(n_volunteers) < 0.93, 1.0, rng.uniform(0.2, 0.9, n_volunteers))
    for i in range(n_volunteers):
        wi = float(vol_w[i])
        for task, ans in _walk(int(perceived_all[i]), clarity, props, rng):
            counts_l[task][ans] += 1
            weights_l[task][ans] += wi
    counts = {k: np.asarray(v, dtype=np.int64) for k, v in counts_l.items()}
    weights = {k: np.asarray(v, dtype=np.float64) for k, v in weights_l.items()}

    z = float(props.get("redshift", 0.1))
    out: dict[str, float | int | str] = {}
    total_votes = 0
    for key, task in _T.items():
        c, w = counts[key], weights[key]
        n, wsum = int(c.sum()), float(w.sum())
        total_votes += n
        frac = c / n if n else np.zeros_like(c, dtype=np.float64)
        wfrac = w / wsum if wsum > 0 else np.zeros_like(w)
        boost = np.array([_DEBIAS_BOOST.get((key, a), 0.0) for a in range(len(c))])
        deb = frac * (1.0 + boost * z) * np.exp(rng.normal(0.0, 0.03, len(c)))
        deb = np.clip(deb / deb.sum(), 0.0, 1.0) if deb.sum() > 0 else deb
        thr = _FLAG_THRESHOLD.get(key, 0.8)
        min_votes = _FLAG_MIN_VOTES.get(key, 5)
        for a, answer in enumerate(GZ2_TASKS[task]):
            values = (
                int(c[a]),
                round(float(w[a]), 3),
                round(float(frac[a]), 3),
                round(float(wfrac[a]), 3),
                round(float(deb[a]), 6),
                int(deb[a] >= thr and n >= min_votes),
            )
            for suffix, value in zip(ANSWER_SUFFIXES, values):
                out[f"{task}_{answer}_{suffix}"] = value
    out["total_classifications"] = int(n_volunteers)
    out["total_votes"] = int(total_votes)
    out["gz2_class"] = _class_string(counts)
    return out
