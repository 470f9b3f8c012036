"""Benchmark one distillation iteration (unrolled and checkpoint; graphed with ``--memory-mode all``), an expert epoch, an evaluation.

With ``--baseline-rev REV`` every measurement is also taken with the project's ``src`` at git
revision ``REV`` (exported to a temporary folder), the old and new children interleaved round
by round in this one invocation, and the ratio new/old printed. Times are wall-clock and the
process's CPU time (``time.process_time``): on a shared machine the CPU time of a one-thread
pinned child is the steadier figure (the wall time includes the time other jobs held the core).

Usage (CPU default shape, then a reduced GZ2 IPC 1 shape)::

    python benchmarks/bench_distill.py
    python benchmarks/bench_distill.py --image-size 128 --num-classes 9 --syn-steps 50 --width 128 \
        --iterations 1 --expert-epochs-per-sec --train-size 512

Each memory mode runs in a fresh subprocess so its peak memory is measured on its own:
CUDA: ``torch.cuda.max_memory_allocated``; CPU: growth of the process's peak resident set
(``resource.getrusage(...).ru_maxrss``) during the timed iterations. Experts are random
walks of the right shape (timing does not depend on their values). The first iteration
is a warm-up and is not timed (its memory is counted: "growth" = peak during the
iterations minus the level after building experts, data and network).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("GD_BENCH_SRC") or str(ROOT / "src"))  # the baseline's src in "old" children

import torch  # noqa: E402

from galaxy_distillation.engine import Distiller, InMemoryExperts  # noqa: E402
from galaxy_distillation.engine.data import pick_device  # noqa: E402
from galaxy_distillation.engine.experts import train_expert  # noqa: E402
from galaxy_distillation.engine.functional import FlatModel  # noqa: E402
from galaxy_distillation.engine.networks import build_from_spec  # noqa: E402
from galaxy_distillation.params import ArchParams, DistillParams, TeacherParams  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--ipc", type=int, default=1)
    p.add_argument("--syn-steps", type=int, default=20)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--iterations", type=int, default=3, help="timed iterations (after 1 warm-up)")
    p.add_argument("--memory-mode", choices=["both", "all", "unrolled", "checkpoint", "graphed"], default="both",
                   help="both: unrolled and checkpoint; all: also graphed (CUDA graphs on a GPU, eager programs on CPU)")
    p.add_argument("--dsa-strategy", default="color_crop_cutout_flip_scale_rotate")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    p.add_argument("--expert-epochs-per-sec", action="store_true",
                   help="also time one expert epoch on --train-size random images")
    p.add_argument("--train-size", type=int, default=1000)
    p.add_argument("--experts-at-once", type=int, default=1,
                   help="also time K experts trained at once (train_expert_group), beside one at a time")
    p.add_argument("--eval-epochs", type=int, default=0,
                   help="also time evaluating the IPC set: --eval-nets nets x this many epochs (extrapolated to 1000)")
    p.add_argument("--eval-nets", type=int, default=5)
    p.add_argument("--baseline-rev", default=None, help="git revision to compare against (old/new side by side)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved old/new rounds (median reported)")
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _arch(args: argparse.Namespace) -> dict:
    return {"arch": "convnet", "width": args.width, "depth": args.depth}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_child(args: argparse.Namespace, mode: str) -> dict:
    """Time ``args.iterations`` distillation iterations in ``mode``; return figures."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(0)
    size, C = args.image_size, args.num_classes
    flat = FlatModel(build_from_spec(_arch(args), args.channels, C, (size, size)))
    init = flat.flat_params()
    g = torch.Generator().manual_seed(0)
    traj = torch.cat([init[None], init[None] + 0.01 * torch.randn(2, flat.numel, generator=g).cumsum(0)])
    experts = InMemoryExperts([traj])
    train_x = torch.randn(C * args.ipc, args.channels, size, size, generator=g)
    train_y = torch.arange(C).repeat_interleave(args.ipc)
    cfg = DistillParams(syn_steps=args.syn_steps, iterations=args.iterations + 1, lr_img=100.0, lr_init=0.01,
                        max_start_epoch=1, memory_mode=mode, checkpoint_every=0, dsa_strategy=args.dsa_strategy,
                        max_iter_stage=0).engine_config("stm", args.ipc, "real")
    d = Distiller(experts, train_x, train_y, C, cfg, device, _arch(args))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.max_memory_allocated() / 2**20
    else:
        base = _peak_rss_mb()
    d.step()  # warm-up (counted in the peak, not in the time)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.iterations):
        d.step()
    cpu = (time.process_time() - c0) / max(args.iterations, 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_rss_mb()
    sec = (time.perf_counter() - t0) / max(args.iterations, 1)
    return {"mode": mode, "device": str(device), "params": flat.numel, "sec_per_it": sec, "cpu_per_it": cpu,
            "peak_mb": peak, "peak_growth_mb": peak - base,
            "note": "cuda max_memory_allocated" if device.type == "cuda" else "ru_maxrss"}


def time_expert_epoch(args: argparse.Namespace, at_once: int = 1) -> dict:
    """Seconds (wall, CPU) per expert for one epoch (batch 256, DSA, lr 1e-3) on ``train_size`` random images."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    g = torch.Generator().manual_seed(0)
    size, C = args.image_size, args.num_classes
    x = torch.randn(args.train_size, args.channels, size, size, generator=g)
    y = torch.randint(0, C, (args.train_size,), generator=g)
    tx, ty = x[:C], torch.arange(C)
    cfg = TeacherParams(epochs=1, lr=1e-3, batch_size=256, dsa_strategy=args.dsa_strategy).engine_config(
        ArchParams(**_arch(args)))
    t0, c0 = time.perf_counter(), time.process_time()
    if at_once > 1:
        from galaxy_distillation.engine.experts import train_expert_group

        train_expert_group(x, y, tx, ty, C, cfg, seeds=list(range(at_once)), device=device, progress=False)
    else:
        train_expert(x, y, tx, ty, C, cfg, seed=0, device=device, progress=False)
    return {"sec": (time.perf_counter() - t0) / at_once, "cpu": (time.process_time() - c0) / at_once}


def time_evaluation(args: argparse.Namespace, use_vmap: bool) -> dict:
    """Seconds (wall, CPU) to train ``eval_nets`` nets for ``eval_epochs`` epochs on an IPC set (+ a test pass)."""
    from galaxy_distillation.engine.evaluation import evaluate_images
    from galaxy_distillation.params import EvaluationParams

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    g = torch.Generator().manual_seed(0)
    size, C = args.image_size, args.num_classes
    x = torch.randn(C * args.ipc, args.channels, size, size, generator=g)
    y = torch.arange(C).repeat_interleave(args.ipc)
    cfg = dataclasses.replace(
        EvaluationParams(dsa_strategy=args.dsa_strategy).engine_config(_arch(args), args.eval_nets, args.eval_epochs),
        use_vmap=use_vmap, vmap_on_cpu=use_vmap)
    warm = dataclasses.replace(cfg, epochs=1)
    evaluate_images(x, y, x[:C], y[:C], C, 0.01, warm, seed=0, device=device, progress=False)  # warm-up, not timed
    t0, c0 = time.perf_counter(), time.process_time()
    res = evaluate_images(x, y, x[:C], y[:C], C, 0.01, cfg, seed=0, device=device, progress=False)
    return {"sec": time.perf_counter() - t0, "cpu": time.process_time() - c0, "used_vmap": res.used_vmap}


def _child_main(args: argparse.Namespace) -> dict:
    kind, _, arg = args._child.partition(":")
    if kind == "expert":
        return time_expert_epoch(args, int(arg))
    if kind == "eval":
        return time_evaluation(args, arg == "vmap")
    return run_child(args, kind)


def _run(forwarded: list[str], child: str, src: str | None) -> dict | None:
    env = dict(os.environ)
    if src is not None:
        env["GD_BENCH_SRC"] = src
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, __file__, *forwarded, "--_child", child], capture_output=True, text=True,
                         env=env)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        print(f"{child} ({'old' if src else 'new'}): failed (rc {out.returncode})\n{out.stderr[-2000:]}")
        return None
    return json.loads(line[len("RESULT "):])


def _export(rev: str) -> str:
    """The project's ``src`` at git revision ``rev``, in a temporary folder; returns that ``src`` path."""
    tmp = tempfile.mkdtemp(prefix="gd-baseline-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
    return str(Path(tmp) / "src")


def _strip(argv: list[str], names: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in names:
            skip = True
            continue
        if any(a.startswith(n + "=") for n in names):
            continue
        out.append(a)
    return out


def _med(rs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rs)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args._child:
        print("RESULT " + json.dumps(_child_main(args)))
        return
    modes = {"both": ["unrolled", "checkpoint"], "all": ["unrolled", "checkpoint", "graphed"]}.get(
        args.memory_mode, [args.memory_mode])
    forwarded = _strip(list(argv if argv is not None else sys.argv[1:]), ("--baseline-rev", "--rounds"))
    sources: dict[str, str | None] = {"new": None}
    if args.baseline_rev:
        sources = {"old": _export(args.baseline_rev), "new": None}
    children = [m for m in modes if args.iterations > 0]
    if args.expert_epochs_per_sec:
        children.append("expert:1")
        if args.experts_at_once > 1:
            children.append(f"expert:{args.experts_at_once}")
    if args.eval_epochs > 0:
        children += ["eval:loop", "eval:vmap"]
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.rounds):
        for child in children:
            for name, src in sources.items():
                if src is not None and child.startswith("expert:") and child != "expert:1":
                    continue  # the baseline has no group training
                r = _run(forwarded, child, src)
                if r is not None:
                    results.setdefault((child, name), []).append(r)
    shape = (f"{args.channels}x{args.image_size}x{args.image_size}, {args.num_classes} classes, IPC {args.ipc}, "
             f"N {args.syn_steps}, ConvNet width {args.width} depth {args.depth}, DSA '{args.dsa_strategy}'")
    print(f"shape: {shape}; threads: {args.threads or torch.get_num_threads()}; rounds: {args.rounds} (median)"
          + (f"; old = {args.baseline_rev}, new = working tree" if args.baseline_rev else ""))
    for mode in modes:
        for name in sources:
            rs = results.get((mode, name))
            if not rs:
                continue
            r = rs[-1]
            print(f"  {name:<3} {mode:<10} device {r['device']:<6} P={r['params']:,}  {_med(rs, 'sec_per_it'):.3f} s/iteration"
                  f"  (CPU {_med(rs, 'cpu_per_it'):.3f} s)  peak {r['peak_mb']:.0f} MiB (growth over setup "
                  f"{r['peak_growth_mb']:.0f} MiB, {r['note']})")
        if len(sources) == 2 and results.get((mode, "old")) and results.get((mode, "new")):
            o, n = results[(mode, "old")], results[(mode, "new")]
            print(f"  new/old {mode}: wall x{_med(n, 'sec_per_it') / _med(o, 'sec_per_it'):.2f}, "
                  f"CPU x{_med(n, 'cpu_per_it') / _med(o, 'cpu_per_it'):.2f}")
    if results.get(("checkpoint", "new")) and results.get(("graphed", "new")):
        c, g = results[("checkpoint", "new")], results[("graphed", "new")]
        print(f"  graphed/checkpoint: wall x{_med(g, 'sec_per_it') / _med(c, 'sec_per_it'):.2f}, "
              f"CPU x{_med(g, 'cpu_per_it') / _med(c, 'cpu_per_it'):.2f}")
    if "unrolled" in modes and results.get(("unrolled", "new")) and results.get(("checkpoint", "new")):
        u, c = results[("unrolled", "new")][-1], results[("checkpoint", "new")][-1]
        print(f"  checkpoint/unrolled: time x{c['sec_per_it'] / u['sec_per_it']:.2f}, "
              f"peak growth x{(c['peak_growth_mb'] + 1e-9) / (u['peak_growth_mb'] + 1e-9):.2f}")
    for child in [c for c in children if c.startswith("expert:")]:
        k = int(child.split(":")[1])
        for name in sources:
            rs = results.get((child, name))
            if not rs:
                continue
            sec, cpu = _med(rs, "sec"), _med(rs, "cpu")
            label = "one at a time" if k == 1 else f"{k} at once"
            print(f"  {name:<3} expert epoch: {sec:.2f} s for {args.train_size} images (CPU {cpu:.2f} s; {label}, batch 256,"
                  f" incl. a {args.num_classes}-image test pass) -> {args.train_size / sec:.0f} images/s "
                  f"(CPU: {args.train_size / cpu:.0f} images/s)")
    if args.eval_epochs > 0:
        scale = 1000.0 / args.eval_epochs
        for child in ("eval:loop", "eval:vmap"):
            for name in sources:
                rs = results.get((child, name))
                if not rs:
                    continue
                sec, cpu = _med(rs, "sec"), _med(rs, "cpu")
                print(f"  {name:<3} evaluation ({child[5:]}, used vmap: {rs[-1]['used_vmap']}): {args.eval_nets} nets x "
                      f"{args.eval_epochs} epochs {sec:.2f} s (CPU {cpu:.2f} s) -> x1000 epochs: {sec * scale:.0f} s "
                      f"(CPU {cpu * scale:.0f} s); reference 74 s per 5 nets x 1000 epochs at 32 px")


if __name__ == "__main__":
    main()
