"""Table 2 (GZ2, STM) GPU-hours from measured unit costs and the project's real counts.

Counts come from ``conf/base`` overlaid with ``conf/paper`` (the paper configuration) and the
presets (:mod:`galaxy_distillation.presets`, STM rows with the configured schedule):

- experts: two banks (GZ2-Plain: classes x ``n_train_per_class`` images; GZ2-Aug: x ``rotations``),
  each ``teacher.n_experts`` x ``teacher.epochs`` epochs, at the measured expert images/s (the
  faster of one at a time and several at once); beside it the same with ``teacher.epochs: reach``
  (:mod:`galaxy_distillation.reach`: the highest expert epoch the Table 2 cells read, STM
  ``max_start_epoch + 1``), the ``*_reach`` keys;
- distillation: the Table 2 cells (IPC 1 and 10, plain/aug x real/noise) x the preset's iteration
  count (an upper bound: the stop rule may end a run earlier) x the measured seconds per iteration
  at that IPC (the faster memory mode that ran), plus the quick evaluations every ``eval_every``
  iterations (``quick_nets`` x ``quick_epochs_fraction`` of the epochs);
- evaluation: every distilled cell and the random baseline, ``n_nets`` x ``epochs`` (the faster of
  loop and vmap), and the full-set baselines (``full_n_nets`` x ``full_epochs`` over the bank's
  images, at one expert's images/s);
- beside it, ``sweep.batched: true`` (the ``*_batched`` keys): the distillation of each group of
  cells that share a shape (:func:`galaxy_distillation.pipelines.sweep.cells.shape_groups`: the 4
  cells of one IPC) at the measured per-distillation seconds of K runs as one batched program,
  where the suite measured K = the group's size at that IPC's shape (``units["s_it_batched"]``);
  a group without such a measurement stays at its cells' seconds alone and is named in
  ``batched_missing`` (the quick evaluations, evaluations and experts are the same either way).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from galaxy_distillation.pipelines.sweep.cells import shape_groups
from galaxy_distillation.presets import PAPER_TABLE2, preset_for
from galaxy_distillation.reach import epochs_read as reach_of

ROOT = Path(__file__).resolve().parents[1]


def paper_params(conf: Path = ROOT / "conf") -> dict:
    """``conf/base`` parameters with ``conf/paper`` laid over them (per group, key by key)."""
    out: dict = {}
    for env in ("base", "paper"):
        for f in sorted((conf / env).glob("parameters*.yml")):
            data = yaml.safe_load(f.read_text()) or {}
            for group, values in data.items():
                if isinstance(values, dict):
                    out.setdefault(group, {}).update(values)
                else:
                    out[group] = values
    return out


def table2_hours(units: dict, conf: Path = ROOT / "conf") -> dict:
    """Hours by part and in total. ``units``: ``s_it`` {ipc: s}, ``eval_s`` {ipc: s per n_nets x 1000 epochs
    (5 nets)}, ``expert_ips`` (best images/s), ``expert_ips_one`` (one network's images/s), optionally
    ``s_it_batched`` {ipc: (K, s per distillation-iteration with K at once)}."""
    p = paper_params(conf)
    teacher, cur, ev, dist = p["teacher"], p["curation"], p["evaluation"], p["distill"]
    classes = 9
    plain = classes * int(cur["n_train_per_class"])
    banks = {"plain": plain, "aug": plain * int(cur.get("rotations", 10))}
    schedule = str(dist.get("schedule", "code"))
    parts = {"experts": 0.0, "distill": 0.0, "quick_eval": 0.0, "evaluation": 0.0, "full_baselines": 0.0}
    epochs_read = 0
    for n_images in banks.values():
        parts["experts"] += int(teacher["n_experts"]) * int(teacher["epochs"]) * n_images / units["expert_ips"]
    eval_share = int(ev["n_nets"]) * int(ev["epochs"]) / (5 * 1000)
    quick_share = int(ev.get("quick_nets", 2)) * max(1, int(int(ev["epochs"]) * float(ev.get("quick_epochs_fraction", 0.2))))
    quick_share /= 5 * 1000
    cells = 0
    sizes = {g[0].ipc: len(g) for g in shape_groups("table2").values()}  # cells per group, by IPC
    batched_s = dict(units.get("s_it_batched") or {})
    distill_batched, batched_ipcs, missing = 0.0, [], []
    for ipc, columns in PAPER_TABLE2.items():
        row = preset_for("gz2", "stm", ipc, schedule)
        iterations = int(row["iterations"])
        k, sec = batched_s.get(ipc, (None, None))
        if sec is not None and k == sizes.get(ipc):
            batched_ipcs.append(ipc)
        else:
            why = "no batched measurement at its shape" if sec is None else f"measured K = {k}"
            missing.append(f"IPC {ipc} ({why}; its group has {sizes.get(ipc)} cells)")
            sec = units["s_it"][ipc]
        epochs_read = max(epochs_read, reach_of("stm", row))
        for col in columns:
            bank = col.split("_")[0]
            if col == "random":
                parts["evaluation"] += units["eval_s"][ipc] * eval_share
            elif col.endswith("_full"):
                parts["full_baselines"] += int(ev["full_n_nets"]) * int(ev["full_epochs"]) * banks[bank] / units["expert_ips_one"]
            else:
                cells += 1
                parts["distill"] += iterations * units["s_it"][ipc]
                distill_batched += iterations * sec
                every = int(dist.get("eval_every") or 0)
                if every > 0:
                    parts["quick_eval"] += (iterations // every) * units["eval_s"][ipc] * quick_share
                parts["evaluation"] += units["eval_s"][ipc] * eval_share
    hours = {k: v / 3600.0 for k, v in parts.items()}
    hours["total"] = sum(hours.values())
    trained = int(teacher["epochs"])
    hours["experts_reach"] = hours["experts"] * epochs_read / trained
    hours["total_reach"] = hours["total"] - hours["experts"] + hours["experts_reach"]
    hours["distill_batched"] = distill_batched / 3600.0
    hours["total_batched"] = hours["total"] - hours["distill"] + hours["distill_batched"]
    hours["batched_ipcs"] = batched_ipcs
    hours["batched_missing"] = missing
    hours["cells"] = cells
    hours["epochs_reach"] = epochs_read
    hours["epochs_trained"] = trained
    return hours
