"""Thread policy beside a busy neighbour: torch's default threading against the project's.

Starts one busy torch process (the "neighbour": conv forward/backward in a loop, torch's
default threading) and, while it runs, times STM iterations in fresh child processes, the
variants interleaved round by round:

* ``torch default``      OMP_NUM_THREADS=<cores>, OpenMP's default wait policy (before this change);
* ``2 threads passive``  OMP_NUM_THREADS=<cores>, OMP_WAIT_POLICY=PASSIVE;
* ``project auto``       the package's policy (``galaxy_distillation.runtime``: PASSIVE, threads
                         from the free cores), nothing set by hand;
* ``fair share``         1 thread pinned to one core while the neighbour is pinned to another
                         (only with >= 2 cores), the reference for "at most 1.5x".

Usage::

    python benchmarks/bench_threads.py --rounds 3 --syn-steps 10 --width 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEIGHBOUR = """
import time, torch
net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.GroupNorm(64, 64), torch.nn.ReLU(),
                          torch.nn.Conv2d(64, 64, 3, padding=1))
x = torch.randn(64, 3, 32, 32)
print('ready', flush=True)
while True:
    net(x).square().mean().backward()
"""
CHILD = """
import json, sys, time
sys.path.insert(0, {src!r})
import galaxy_distillation  # the project's thread policy (no-op where the variables are set)
import torch
from galaxy_distillation.engine import Distiller, InMemoryExperts
from galaxy_distillation.engine.functional import FlatModel
from galaxy_distillation.engine.networks import build_from_spec
from galaxy_distillation.params import DistillParams
torch.manual_seed(0)
arch = {{"arch": "convnet", "width": {width}, "depth": 3}}
flat = FlatModel(build_from_spec(arch, 3, 10, (32, 32)))
init = flat.flat_params()
g = torch.Generator().manual_seed(0)
traj = torch.cat([init[None], init[None] + 0.01 * torch.randn(2, flat.numel, generator=g).cumsum(0)])
cfg = DistillParams(syn_steps={steps}, iterations={its} + 1, lr_img=100.0, lr_init=0.01, max_start_epoch=1,
                    checkpoint_every=0, max_iter_stage=0).engine_config("stm", 1, "real")
d = Distiller(InMemoryExperts([traj]), torch.randn(10, 3, 32, 32, generator=g), torch.arange(10), 10, cfg,
              torch.device("cpu"), arch)
d.step()
t0, c0 = time.perf_counter(), time.process_time()
for _ in range({its}):
    d.step()
print("RESULT " + json.dumps({{"sec": (time.perf_counter() - t0) / {its}, "cpu": (time.process_time() - c0) / {its},
                              "threads": torch.get_num_threads()}}))
"""


def _env(extra: dict[str, str], drop: tuple[str, ...]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--syn-steps", type=int, default=10)
    p.add_argument("--width", type=int, default=32)
    args = p.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    n = len(cores)
    code = CHILD.format(src=str(ROOT / "src"), width=args.width, steps=args.syn_steps, its=args.iterations)
    omp = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GD_THREADS", "GD_OMP_WAIT_POLICY")
    variants = {
        "torch default": (_env({"OMP_NUM_THREADS": str(n), "GD_OMP_WAIT_POLICY": "none"}, omp), None, None),
        f"{n} threads passive": (_env({"OMP_NUM_THREADS": str(n), "OMP_WAIT_POLICY": "PASSIVE"}, omp), None, None),
        "project auto": (_env({}, omp), None, None),
    }
    if n >= 2:
        variants["fair share"] = (_env({"OMP_NUM_THREADS": "1"}, omp), cores[0], cores[1])
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    threads: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, (env, core, neighbour_core) in variants.items():
            nb_cmd = [sys.executable, "-c", NEIGHBOUR]
            if neighbour_core is not None:
                nb_cmd = ["taskset", "-c", str(neighbour_core), *nb_cmd]
            nb = subprocess.Popen(nb_cmd, stdout=subprocess.PIPE, text=True, env=_env({}, omp))
            nb.stdout.readline()  # wait until it is busy
            time.sleep(1.0)
            cmd = [sys.executable, "-c", code]
            if core is not None:
                cmd = ["taskset", "-c", str(core), *cmd]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            nb.kill()
            nb.wait()
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(f"{name}: failed\n{out.stderr[-1500:]}")
                continue
            r = json.loads(line[7:])
            print(f"    {name}: {r['sec']:.3f} s wall, {r['cpu']:.3f} s CPU, threads {r['threads']}", flush=True)
            times[name].append(r["sec"])
            cpu[name].append(r["cpu"])
            threads[name] = r["threads"]
    print(f"STM iteration, 3x32x32, 10 classes, IPC 1, N {args.syn_steps}, ConvNet-3 width {args.width}, "
          f"{n} cores, one busy torch neighbour; {args.rounds} interleaved rounds")
    fair = statistics.median(times.get("fair share") or [float("nan")])
    for name, ts in times.items():
        if not ts:
            continue
        med = statistics.median(ts)
        print(f"  {name:<20} threads {threads[name]}  {med:.3f} s/iteration (median of {len(ts)}; all "
              f"{', '.join(f'{t:.2f}' for t in ts)})  x{med / fair:.2f} of fair share; "
              f"CPU {statistics.median(cpu[name]):.3f} s/iteration")


if __name__ == "__main__":
    main()
