"""Benchmark one distillation iteration (both memory modes) and one expert epoch.

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
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

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
    p.add_argument("--memory-mode", choices=["both", "unrolled", "checkpoint"], default="both")
    p.add_argument("--dsa-strategy", default="color_crop_cutout_flip_scale_rotate")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    p.add_argument("--expert-epochs-per-sec", action="store_true",
                   help="also time one expert epoch on --train-size random images")
    p.add_argument("--train-size", type=int, default=1000)
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
    t0 = time.perf_counter()
    for _ in range(args.iterations):
        d.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_rss_mb()
    sec = (time.perf_counter() - t0) / max(args.iterations, 1)
    return {"mode": mode, "device": str(device), "params": flat.numel, "sec_per_it": sec,
            "peak_mb": peak, "peak_growth_mb": peak - base,
            "note": "cuda max_memory_allocated" if device.type == "cuda" else "ru_maxrss"}


def time_expert_epoch(args: argparse.Namespace) -> float:
    """Seconds for one expert epoch (batch 256, DSA, lr 1e-3) on ``train_size`` random images."""
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
    traj = train_expert(x, y, tx, ty, C, cfg, seed=0, device=device, progress=False)
    return float(traj.meta["seconds"])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args._child:
        print("RESULT " + json.dumps(run_child(args, args._child)))
        return
    modes = ["unrolled", "checkpoint"] if args.memory_mode == "both" else [args.memory_mode]
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    results = []
    for mode in modes:
        out = subprocess.run([sys.executable, __file__, *forwarded, "--_child", mode], capture_output=True, text=True)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if out.returncode != 0 or line is None:
            print(f"{mode}: failed (rc {out.returncode})\n{out.stderr[-2000:]}")
            continue
        results.append(json.loads(line[len("RESULT "):]))
    shape = (f"{args.channels}x{args.image_size}x{args.image_size}, {args.num_classes} classes, IPC {args.ipc}, "
             f"N {args.syn_steps}, ConvNet width {args.width} depth {args.depth}, DSA '{args.dsa_strategy}'")
    print(f"shape: {shape}; threads: {args.threads or torch.get_num_threads()}")
    for r in results:
        print(f"  {r['mode']:<10} device {r['device']:<6} P={r['params']:,}  {r['sec_per_it']:.3f} s/iteration  "
              f"peak {r['peak_mb']:.0f} MiB (growth over setup {r['peak_growth_mb']:.0f} MiB, "
              f"{r['note']})")
    if len(results) == 2:
        u, c = results
        print(f"  checkpoint/unrolled: time x{c['sec_per_it'] / u['sec_per_it']:.2f}, "
              f"peak growth x{(c['peak_growth_mb'] + 1e-9) / (u['peak_growth_mb'] + 1e-9):.2f}")
    if args.expert_epochs_per_sec:
        sec = time_expert_epoch(args)
        print(f"  expert epoch: {sec:.2f} s for {args.train_size} images (batch 256, incl. a {args.num_classes}-image"
              f" test pass) -> {args.train_size / sec:.0f} images/s")


if __name__ == "__main__":
    main()
