"""One command, one table: the project's paper-scale costs on this device, beside the authors' code.

    python benchmarks/gpu_suite.py [--reference DIR] [--out FILE] [--pipelines] [--cpu-shapes]

Prints (and with ``--out FILE`` writes as ``FILE`` Markdown and ``FILE.json``) one table:

- seconds per STM iteration, unrolled, checkpoint and graphed memory modes (graphed: checkpoint with
  each inner step a captured CUDA graph, engine/graphs.py), and the peak device memory,
  at the paper's shapes (GZ2: 9 classes at 128 px, IPC 1 N 50 and IPC 10 N 20; CIFAR: 10 classes
  at 32 px, IPC 1 N 50, IPC 10 N 30, IPC 50 N 30; ConvNet-3 width 128);
- ATen ops per inner step, host syncs and kernels per iteration (before = per-step random draws,
  the old path; after = one draw per iteration, copied once); host launches per iteration of the
  checkpoint mode (before) and the graphed mode (after);
- batched distillations (engine/batched.py): ATen ops (all; without views), kernels (CPU: aten::
  profiler events) and seconds per distillation-iteration of K = 1 and K = 4 runs advanced as one
  program (after) beside one run alone (before);
- expert training images/s (one expert, several at once) and evaluation seconds per 5 nets x 1000
  epochs (loop and vmap);
- expert training images/s of one expert eager and with ``teacher.compile`` (torch.compile of the
  training step), measured side by side in one run (the compilation is in the warm-up; its
  seconds are the row's note);
- with ``--reference DIR`` (a copy of the gpu-kit), the authors' distill.py / buffer.py figures
  beside each, run through the kit's harness at the same shapes;
- last, the estimated Table 2 GPU-hours from these unit costs and the real counts (presets, conf).

Every section is guarded (an error is printed and the table keeps the rest) and has its own time
budget inside a global one (``--budget`` seconds, default 285 on CUDA). On a machine without CUDA
(or with ``--cpu-shapes``) reduced shapes run in well under a minute; the figures are then only
a check that the suite works, not paper figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import torch  # noqa: E402

import _suite_measure as M  # noqa: E402
from _suite_estimate import table2_hours  # noqa: E402

PAPER = [M.Shape("gz2_ipc1", 128, 9, 1, 50), M.Shape("gz2_ipc10", 128, 9, 10, 20), M.Shape("cifar_ipc1", 32, 10, 1, 50),
         M.Shape("cifar_ipc10", 32, 10, 10, 30), M.Shape("cifar_ipc50", 32, 10, 50, 30)]
REDUCED = [M.Shape("gz2_ipc1", 16, 9, 1, 4), M.Shape("gz2_ipc10", 16, 9, 2, 3), M.Shape("cifar_ipc1", 8, 10, 1, 4),
           M.Shape("cifar_ipc10", 8, 10, 2, 3), M.Shape("cifar_ipc50", 8, 10, 3, 3)]
MODES = ("unrolled", "checkpoint", "graphed")
COUNTS = ("aten_per_step", "syncs", "syncs_cuda", "kernels")
BATCH_K = (1, 4)
BATCH_METRICS = ("aten", "aten_compute", "kernels", "sec")
# every row key the table has (tests/test_gpu_suite.py checks them)
ROW_KEYS = ([k for s in PAPER for m in MODES for k in (f"stm_{m}:{s.key}", f"peak_{m}:{s.key}")]
            + [f"count_{c}" for c in COUNTS] + ["count_launches"] + [f"batched_{m}:k{k}" for m in BATCH_METRICS for k in BATCH_K]
            + ["expert_one", "expert_group", "expert_eager", "expert_compiled"]
            + [f"eval_{v}:{k}" for k in ("gz2_ipc1", "gz2_ipc10") for v in ("loop", "vmap")]
            + ["table2_experts", "table2_distill", "table2_quick_eval", "table2_evaluation", "table2_full_baselines",
               "table2_total", "table2_experts_reach", "table2_total_reach", "table2_distill_batched",
               "table2_total_batched", "pipelines"])


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_shapes else "cpu")
        self.paper = self.device.type == "cuda"
        self.shapes = PAPER if self.paper else REDUCED
        self.width = 128 if self.paper else 16
        self.t0 = time.perf_counter()
        self.budget = float(args.budget or (285 if self.paper else 60))
        self.rows: dict[str, dict] = {}
        self.errors: list[str] = []
        self.estimate: dict | None = None
        kinds = {"count_aten_per_step": "ATen ops per inner step", "count_syncs": "host syncs per iteration (instrumented)",
                 "count_syncs_cuda": "host syncs per iteration (CUDA sync debug, calling thread)",
                 "count_kernels": "CUDA kernels per iteration (profiler)" if self.paper else "aten:: ops per iteration (CPU profiler)"}
        for s in self.shapes:
            for m in MODES:
                self._row(f"stm_{m}:{s.key}", f"STM s/iteration, {m}", s.label, "s")
                self._row(f"peak_{m}:{s.key}", f"peak device memory, {m}", s.label, "GiB")
        cs = self.shapes[0]
        for c in COUNTS:
            self._row(f"count_{c}", kinds[f"count_{c}"], f"{cs.label}, checkpoint", "")
        self._row("count_launches", "host launches per iteration (CUDA runtime launch calls), checkpoint -> graphed"
                  if self.paper else "aten:: ops per iteration (CPU profiler), checkpoint -> graphed", cs.label, "")
        per = {"aten": ("ATen ops", ""), "aten_compute": ("ATen ops without views", ""), "sec": ("s", "s"),
               "kernels": ("CUDA kernels" if self.paper else "aten:: profiler events", "")}
        for m in BATCH_METRICS:
            for k in BATCH_K:
                self._row(f"batched_{m}:k{k}", f"{per[m][0]} per distillation-iteration, {k} at once (before: alone)",
                          f"{cs.label}, checkpoint", per[m][1])
        self._row("expert_one", "expert training images/s, one at a time", "", "images/s")
        self._row("expert_group", "expert training images/s, several at once (all together)", "", "images/s")
        self._row("expert_eager", "expert training images/s, one expert, eager (beside compiled)", "", "images/s")
        self._row("expert_compiled", "expert training images/s, one expert, teacher.compile", "", "images/s")
        for s in self.shapes[:2]:
            for v in ("loop", "vmap"):
                self._row(f"eval_{v}:{s.key}", f"evaluation s per 5 nets x 1000 epochs, {v}", s.label, "s")
        for part in ("experts", "distill", "quick_eval", "evaluation", "full_baselines", "total"):
            self._row(f"table2_{part}", f"Table 2 estimate: {part.replace('_', ' ')}", "", "GPU-hours")
        for part in ("experts", "total"):
            self._row(f"table2_{part}_reach", f"Table 2 estimate: {part}, teacher.epochs reach", "", "GPU-hours")
        for part in ("distill", "total"):
            self._row(f"table2_{part}_batched", f"Table 2 estimate: {part}, cells batched (sweep.batched: true)", "",
                      "GPU-hours")
        self._row("pipelines", "kedro pipelines smoke run", "", "")

    def _row(self, key: str, what: str, shape: str, unit: str) -> None:
        self.rows[key] = {"key": key, "what": what, "shape": shape, "unit": unit, "before": None, "after": None,
                          "reference": None, "note": ""}

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}", flush=True)

    def section(self, name: str, budget: float, fn, always: bool = False) -> None:  # noqa: ANN001
        """Run ``fn(budget)`` guarded; skipped when less than a few seconds of the global budget are left
        (unless ``always``: the arithmetic of the estimate)."""
        budget = budget if always else min(budget, self.left())
        if budget < 3:
            self.log(f"{name}: skipped (global budget spent)")
            self.errors.append(f"{name}: skipped (budget)")
            return
        self.log(f"{name}: start (budget {budget:.0f} s)")
        t = time.perf_counter()
        try:
            fn(budget)
        except Exception as err:  # noqa: BLE001 - one failed section must not lose the table
            self.errors.append(f"{name}: {type(err).__name__}: {str(err)[:300]}")
            self.log(f"{name}: FAILED {type(err).__name__}: {err}")
            traceback.print_exc(limit=4)
            sys.stderr.flush()
            M.free(self.device)
        self.log(f"{name}: done in {time.perf_counter() - t:.1f} s")

    # ----------------------------------------------------------------- sections

    def stm(self, budget: float, batched: bool = True, shapes: list | None = None, modes=MODES) -> None:  # noqa: ANN001
        todo = [(s, m) for s in (shapes or self.shapes) for m in modes]
        end = time.perf_counter() + budget
        for i, (s, m) in enumerate(todo):
            share = (end - time.perf_counter()) / (len(todo) - i)
            if share < 1:
                self.log(f"  {s.key} {m}: skipped (section budget)")
                continue
            try:
                r = M.time_stm(s, m, self.device, self.width, iters=3, budget_s=share, batched=batched)
            except Exception as err:  # noqa: BLE001 (e.g. out of memory in unrolled mode)
                self.rows[f"stm_{m}:{s.key}"]["note"] = f"{type(err).__name__}: {str(err)[:80]}"
                self.log(f"  {s.key} {m}: FAILED {type(err).__name__}: {str(err)[:200]}")
                M.free(self.device)
                continue
            col = "after" if batched else "before"
            self.rows[f"stm_{m}:{s.key}"][col] = r["sec"]
            if batched:
                self.rows[f"peak_{m}:{s.key}"]["after"] = r["peak_gib"]
            self.log(f"  {s.key} {m} ({col}): {r['sec']} s/it over {r['n']}, peak {r['peak_gib']} GiB")

    def counts(self, budget: float) -> None:
        s = self.shapes[0]
        for batched in (False, True):
            r = M.count_iteration(s, "checkpoint", self.device, self.width, batched)
            col = "after" if batched else "before"
            for c in COUNTS:
                self.rows[f"count_{c}"][col] = r.get(c)
            self.log(f"  counts ({col}): {r}")
        row = self.rows["count_launches"]
        row["before"] = r["launches"]  # the checkpoint run just counted (one draw per iteration)
        row["after"] = M.count_launches(s, "graphed", self.device, self.width)
        if not self.paper:
            row["note"] = "CPU: aten:: events (graphs are CUDA-only: the graphed programs run eagerly here)"
        elif row["before"] and row["after"]:
            row["note"] = f"{row['after'] / row['before']:.3f}x checkpoint"
        self.log(f"  host launches per iteration: checkpoint {row['before']}, graphed {row['after']}")

    def batched(self, budget: float) -> None:
        import _suite_batched as B

        s, end = self.shapes[0], time.perf_counter() + budget
        alone = B.batched_costs(s, "checkpoint", self.device, self.width, 0, iters=3, budget_s=budget / 8)
        self.log(f"  one run alone: {alone}")
        for i, k in enumerate(BATCH_K):
            share = max(1.0, (end - time.perf_counter()) / (2 * (len(BATCH_K) - i)))
            r = B.batched_costs(s, "checkpoint", self.device, self.width, k, iters=3, budget_s=share)
            for m, got in (("aten", "aten"), ("aten_compute", "aten_compute"), ("kernels", "events"), ("sec", "sec")):
                row = self.rows[f"batched_{m}:k{k}"]
                row["before"], row["after"] = alone[got], r[got]
                if alone[got] and r[got]:
                    row["note"] = f"{r[got] / alone[got]:.2f}x alone"
            self.log(f"  {k} at once (per distillation): {r}")

    def experts(self, budget: float) -> None:
        size, classes = (128, 9) if self.paper else (16, 9)
        n, epochs, k = (4500, 2, 4) if self.paper else (512, 1, 2)
        one = M.expert_rate(size, classes, n, self.width, self.device, 1, epochs)
        self.rows["expert_one"]["after"] = one["images_per_s"]
        self.log(f"  one expert: {one}")
        group = M.expert_rate(size, classes, n, self.width, self.device, k, epochs)
        self.rows["expert_group"]["after"] = group["images_per_s"]
        self.rows["expert_group"]["what"] += f" (K = {k})"
        self.log(f"  {k} experts at once: {group}")
        for key in ("expert_one", "expert_group"):
            self.rows[key]["shape"] = f"{size}px {classes}cl, {n} images, batch 256, DSA"

    def compiled(self, budget: float) -> None:
        """One expert eager, then compiled, then eager again, in this one run (the mean of the two
        eager rates beside the compiled one, so a drifting machine shows)."""
        from galaxy_distillation.engine import training  # noqa: PLC0415

        size, classes = (128, 9) if self.paper else (16, 9)
        n, epochs = (4500, 2) if self.paper else (512, 1)
        eager = [M.expert_rate(size, classes, n, self.width, self.device, 1, epochs)]
        comp = M.expert_rate(size, classes, n, self.width, self.device, 1, epochs, compile_=True)
        eager.append(M.expert_rate(size, classes, n, self.width, self.device, 1, epochs))
        self.log(f"  eager: {eager}; compiled: {comp}")
        self.rows["expert_eager"]["after"] = sum(e["images_per_s"] for e in eager) / len(eager)
        self.rows["expert_compiled"]["after"] = comp["images_per_s"]
        fell_back = "one" in training._FAILED
        self.rows["expert_eager"]["note"] = "eager rates " + ", ".join(f"{e['images_per_s']:.0f}" for e in eager)
        self.rows["expert_compiled"]["note"] = ("COMPILATION FAILED: eager fallback" if fell_back
                                                else f"compile (warm-up) {comp['warm_sec']:.1f} s")
        for key in ("expert_eager", "expert_compiled"):
            self.rows[key]["shape"] = f"{size}px {classes}cl, {n} images, batch 256, DSA"

    def evaluation(self, budget: float) -> None:
        epochs = 20 if self.paper else 2
        for s in self.shapes[:2]:
            for v in ("loop", "vmap"):
                r = M.eval_seconds(s, self.width, self.device, epochs, v == "vmap")
                self.rows[f"eval_{v}:{s.key}"]["after"] = r["sec_1000"]
                self.rows[f"eval_{v}:{s.key}"]["note"] = f"{epochs} epochs x {1000 // epochs}"
                self.log(f"  {s.key} {v}: {r}")

    def reference(self, budget: float) -> None:
        import _suite_ref as R

        kit = Path(self.args.reference)
        work = Path(self.args.ref_work or tempfile.mkdtemp(prefix="gpu-kit-work-"))
        end = time.perf_counter() + budget
        R.ensure_buffers(kit, work, timeout=max(10.0, end - time.perf_counter()))
        jobs = [("distill", s) for s in PAPER[:2]] + [("expert", None)] + [("distill", s) for s in PAPER[2:]]
        for kind, s in jobs:
            left = end - time.perf_counter()
            if left < 15:
                self.log(f"  reference {kind} {s.key if s else ''}: skipped (section budget)")
                continue
            try:
                if kind == "expert":
                    r = R.ref_expert(kit, work, per_class=500, epochs=3, timeout=min(left, 90))
                    self.rows["expert_one"]["reference"] = r["images_per_s"]
                else:
                    r = R.ref_distill(kit, work, s.size, s.ipc, s.steps, iterations=3, timeout=min(left, 90))
                    for m in MODES:
                        self.rows[f"stm_{m}:{s.key}"]["reference"] = r["sec"]
                self.log(f"  reference {kind} {s.key if s else ''}: {r}")
            except Exception as err:  # noqa: BLE001
                self.errors.append(f"reference {kind} {s.key if s else ''}: {str(err)[:300]}")
                self.log(f"  reference {kind} {s.key if s else ''}: FAILED {err}")

    def table2(self, budget: float) -> None:
        def best(keys: list[str]) -> float:
            vals = [self.rows[k]["after"] for k in keys if self.rows[k]["after"] is not None]
            if not vals:
                raise RuntimeError(f"no measurement among {keys}")
            return min(vals)

        g1, g10 = self.shapes[0].key, self.shapes[1].key
        units = {"s_it": {1: best([f"stm_{m}:{g1}" for m in MODES]), 10: best([f"stm_{m}:{g10}" for m in MODES])},
                 "eval_s": {1: best([f"eval_{v}:{g1}" for v in ("loop", "vmap")]),
                            10: best([f"eval_{v}:{g10}" for v in ("loop", "vmap")])},
                 "expert_ips": max(r for r in (self.rows["expert_one"]["after"], self.rows["expert_group"]["after"]) if r),
                 "expert_ips_one": self.rows["expert_one"]["after"]}
        # the batched rows are measured at the first shape (GZ2 IPC 1), checkpoint mode, K = max(BATCH_K)
        k_max, batched = max(BATCH_K), self.rows[f"batched_sec:k{max(BATCH_K)}"]["after"]
        ipc_of = {"gz2_ipc1": 1, "gz2_ipc10": 10}
        units["s_it_batched"] = {ipc_of[g1]: (k_max, batched)} if batched else {}
        est = table2_hours(units)
        self.estimate = {**est, "units": units}
        for part in ("experts", "distill", "quick_eval", "evaluation", "full_baselines", "total"):
            self.rows[f"table2_{part}"]["after"] = est[part]
        for part in ("experts", "total"):
            self.rows[f"table2_{part}_reach"]["after"] = est[f"{part}_reach"]
            self.rows[f"table2_{part}_reach"]["note"] = f"teacher.epochs reach = {est['epochs_reach']}"
        self.rows["table2_experts"]["note"] = f"teacher.epochs {est['epochs_trained']}"
        self.log(f"Table 2 experts: teacher.epochs {est['epochs_trained']}: {est['experts']:.2f} GPU-h (total "
                 f"{est['total']:.2f}) | teacher.epochs reach ({est['epochs_reach']}): {est['experts_reach']:.2f} "
                 f"GPU-h (total {est['total_reach']:.2f})")
        self.rows["table2_distill"]["note"] = f"{est['cells']} cells x the preset's iterations (an upper bound)"
        for part in ("distill", "total"):
            self.rows[f"table2_{part}_batched"]["after"] = est[f"{part}_batched"]
        at = ", ".join(f"IPC {i}" for i in est["batched_ipcs"])
        self.rows["table2_distill_batched"]["note"] = "; ".join(
            ([f"{at}: groups of {k_max} at the measured {k_max}-at-once s per distillation-iteration (checkpoint)"]
             if at else [f"not measured: no batched_sec:k{k_max} row (see the batched section)"])
            + ([f"alone for {', '.join(est['batched_missing'])}"] if est["batched_missing"] else []))
        self.log(f"Table 2 cells batched (sweep.batched: true): distill {est['distill_batched']:.2f} GPU-h (alone "
                 f"{est['distill']:.2f}), total {est['total_batched']:.2f} GPU-h; "
                 f"{self.rows['table2_distill_batched']['note']}")
        if not self.paper:
            self.rows["table2_total"]["note"] = "reduced CPU shapes: a check of the arithmetic, not a paper figure"

    def pipelines(self, budget: float) -> None:
        """``kedro run --env smoke`` (the end-to-end test's tiny environment: mock sky -> curation -> teacher
        -> distill -> evaluation -> reporting) in a throw-away copy of the project, on this device."""
        row = self.rows["pipelines"]
        env = {**os.environ, "DO_NOT_TRACK": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore",
               "PYTHONPATH": os.pathsep.join(p for p in [self.args.pipelines_path, str(HERE.parent / "src"),
                                                          os.environ.get("PYTHONPATH")] if p)}
        check = subprocess.run([sys.executable, "-c", "import kedro, kedro_datasets, kedro_mlflow, mlflow, pydantic, kornia"],
                               env=env, capture_output=True, text=True, timeout=120)
        if check.returncode != 0:
            row["note"] = ("skipped: the Kedro stack is not importable here (carry it: benchmarks/fetch_device_wheels.sh "
                           f"--pipelines, 34 MiB): {check.stderr.strip().splitlines()[-1][:120] if check.stderr else ''}")
            return
        sys.path.insert(0, str(HERE.parent / "tests"))
        from _project import copy_project  # noqa: PLC0415
        from test_pipelines_e2e import SMOKE  # noqa: PLC0415

        root = copy_project(Path(tempfile.mkdtemp(prefix="gd-smoke-")), {"smoke": SMOKE})
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "kedro", "run", "--env", "smoke"], cwd=root, capture_output=True,
                              text=True, timeout=budget, env=env)
        row["after"] = time.perf_counter() - t
        row["unit"] = "s"
        row["shape"] = "kedro run --env smoke (tests/test_pipelines_e2e.py)"
        row["note"] = f"rc {proc.returncode}"
        (Path(self.args.out).parent if self.args.out else root).joinpath("kedro_smoke.log").write_text(
            proc.stdout[-20000:] + proc.stderr[-20000:])
        if proc.returncode != 0:
            raise RuntimeError(f"kedro run failed: {(proc.stdout + proc.stderr)[-800:]}")

    # ----------------------------------------------------------------- run and report

    def run(self) -> None:
        a = self.args
        self.log(f"device {self.device} ({torch.cuda.get_device_name(self.device) if self.paper else platform.processor()}), "
                 f"torch {torch.__version__}, {'paper' if self.paper else 'reduced CPU'} shapes, budget {self.budget:.0f} s")
        self.section("STM iterations (after)", 0.30 * self.budget, self.stm)
        # the authors' code right after the figures it is compared with, before the sections that may overrun
        if a.reference and self.paper:
            self.section("authors' code (gpu-kit)", 0.42 * self.budget, self.reference)
        elif a.reference:
            self.errors.append("reference: skipped at reduced CPU shapes (the authors' code runs only at the paper's)")
        self.section("STM iterations (before: per-step draws and reads)", 0.05 * self.budget,
                     lambda b: self.stm(b, batched=False, shapes=self.shapes[:2], modes=("checkpoint",)))
        self.section("op / sync / kernel counts", 0.12 * self.budget, self.counts)
        self.section("batched distillations (K at once)", 0.08 * self.budget, self.batched)
        self.section("expert training", 0.12 * self.budget, self.experts)
        self.section("expert training, eager vs compiled", 0.1 * self.budget, self.compiled)
        self.section("evaluation", 0.1 * self.budget, self.evaluation)
        self.section("Table 2 estimate", 5, self.table2, always=True)
        if a.pipelines:  # its own 120 s, beyond the global budget
            self.section("kedro pipelines", 120, self.pipelines, always=True)
        else:
            self.rows["pipelines"]["note"] = "not run (--pipelines)"
        if self.estimate is None or not math.isfinite(self.estimate.get("total", float("nan"))):
            self.errors.append("Table 2 estimate missing")

    def markdown(self) -> str:
        def fmt(v: object) -> str:
            if v is None:
                return "-"
            if isinstance(v, float):
                return f"{v:.3g}" if abs(v) < 1e5 else f"{v:,.0f}"
            return str(v)

        dev = torch.cuda.get_device_name(self.device) if self.paper else f"CPU ({platform.processor() or 'unknown'})"
        lines = [f"device: {dev}, torch {torch.__version__}, {'paper' if self.paper else 'REDUCED CPU'} shapes, "
                 f"suite wall {time.perf_counter() - self.t0:.0f} s", "",
                 "| what | shape | before | this project | authors' code | project / authors | note |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.rows.values():
            ratio = None
            if r["after"] and r["reference"]:
                ratio = r["after"] / r["reference"]
            unit = f" ({r['unit']})" if r["unit"] else ""
            lines.append(f"| {r['what']}{unit} | {r['shape']} | {fmt(r['before'])} | {fmt(r['after'])} | "
                         f"{fmt(r['reference'])} | {fmt(ratio)} | {r['note']} |")
        if self.errors:
            lines += ["", "Errors / skipped:"] + [f"- {e}" for e in self.errors]
        return "\n".join(lines) + "\n"

    def report(self) -> None:
        md = self.markdown()
        print("\n" + md, flush=True)
        if self.args.out:
            out = Path(self.args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(md)
            payload = {"device": str(self.device), "paper_shapes": self.paper, "torch": torch.__version__,
                       "rows": list(self.rows.values()), "estimate": self.estimate, "errors": self.errors,
                       "wall_s": time.perf_counter() - self.t0}
            Path(str(out) + ".json").write_text(json.dumps(payload, indent=1, default=str))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", default=None, help="a copy of the gpu-kit: time the authors' code beside ours")
    p.add_argument("--ref-work", default=None, help="work folder of the reference runs (default: a temp folder)")
    p.add_argument("--out", default=None, help="write the table to FILE (Markdown) and FILE.json")
    p.add_argument("--cpu-shapes", action="store_true", help="reduced shapes on the CPU even where CUDA exists")
    p.add_argument("--budget", type=float, default=None, help="global seconds (default 285 on CUDA, 60 on CPU; sections get shares of it)")
    p.add_argument("--pipelines", action="store_true", help="also smoke-run a tiny `kedro run` (needs the project's deps)")
    p.add_argument("--pipelines-path", default=None, help="a folder of carried packages put first on the kedro run's path")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    suite = Suite(parse_args(argv))
    try:
        suite.run()
    finally:
        suite.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
