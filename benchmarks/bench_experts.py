"""Expert training throughput: one expert at a time (``train_expert``) against K at once
(``train_expert_group``), interleaved in one process, plus the reference figure.

Each timed run is ``--epochs`` epochs of batch-256 SGD with DSA on ``--train-size`` random
images, with a ``--test-size``-image test pass after every epoch (as the reference code's
figure includes one). Images/s = training images x experts / seconds. The reference STM
code's figure (issue 10: 1,437 images of 32 px, batch 256, DSA, ConvNet-3 width 128, one
thread pinned: 10.4 s per epoch incl. a 360-image test pass) is printed beside it.

Usage::

    taskset -c 1 env OMP_NUM_THREADS=1 python benchmarks/bench_experts.py --experts-at-once 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from galaxy_distillation.engine.experts import train_expert, train_expert_group  # noqa: E402
from galaxy_distillation.params import ArchParams, TeacherParams  # noqa: E402

REFERENCE_IMAGES_PER_S = 1437 / 10.4  # 32 px, width 128, one thread pinned (issue 10's table)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--train-size", type=int, default=1437)
    p.add_argument("--test-size", type=int, default=360)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--experts-at-once", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = as configured)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dsa-strategy", default="color_crop_cutout_flip_scale_rotate")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    s, c = args.image_size, args.num_classes
    x = torch.randn(args.train_size, 3, s, s, generator=g)
    y = torch.randint(0, c, (args.train_size,), generator=g)
    tx = torch.randn(args.test_size, 3, s, s, generator=g)
    ty = torch.randint(0, c, (args.test_size,), generator=g)
    cfg = TeacherParams(epochs=args.epochs, lr=1e-2, batch_size=args.batch_size, dsa_strategy=args.dsa_strategy
                        ).engine_config(ArchParams(arch="convnet", width=args.width, depth=args.depth))
    k = args.experts_at_once

    def timed(fn, n_images: int) -> tuple[float, float]:  # (images/s wall, images/s CPU)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return n_images / (time.perf_counter() - t0), n_images / (time.process_time() - c0)

    def one(xx: torch.Tensor = x, yy: torch.Tensor = y) -> tuple[float, float]:
        return timed(lambda: train_expert(xx, yy, tx, ty, c, cfg, seed=0, device=device, progress=False),
                     xx.shape[0] * args.epochs)

    def group(xx: torch.Tensor = x, yy: torch.Tensor = y) -> tuple[float, float]:
        return timed(lambda: train_expert_group(xx, yy, tx, ty, c, cfg, seeds=list(range(k)), device=device,
                                                progress=False), k * xx.shape[0] * args.epochs)

    one(x[:64], y[:64]), group(x[:64], y[:64])  # warm-up (small)
    rates: dict[str, list[float]] = {"one at a time": [], f"{k} at once": []}
    cpu: dict[str, list[float]] = {"one at a time": [], f"{k} at once": []}
    for _ in range(args.rounds):
        for name, fn in (("one at a time", one), (f"{k} at once", group)):
            wall_rate, cpu_rate = fn()
            rates[name].append(wall_rate)
            cpu[name].append(cpu_rate)
    print(f"expert training: {args.train_size} images 3x{s}x{s}, {c} classes, batch {args.batch_size}, DSA, ConvNet-{args.depth}"
          f" width {args.width}, {args.epochs} epoch(s) + {args.test_size}-image test pass per epoch; device {device}, "
          f"threads {torch.get_num_threads()}; {args.rounds} interleaved rounds (median)")
    base = statistics.median(rates["one at a time"])
    base_cpu = statistics.median(cpu["one at a time"])
    for name, r in rates.items():
        med, med_cpu = statistics.median(r), statistics.median(cpu[name])
        print(f"  {name:<14} wall {med:7.1f} images/s (x{med / base:.2f} of one at a time, x{med / REFERENCE_IMAGES_PER_S:.2f}"
              f" of the reference's {REFERENCE_IMAGES_PER_S:.0f});  CPU {med_cpu:7.1f} images/s per CPU-second "
              f"(x{med_cpu / base_cpu:.2f}, x{med_cpu / REFERENCE_IMAGES_PER_S:.2f} of the reference)")


if __name__ == "__main__":
    main()
